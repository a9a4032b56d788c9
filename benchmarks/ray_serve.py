"""Ray Serve with N model replicas against the plain server, same machine, same requests
(issue 19): throughput ratio, p50/p95, and the share of requests routed to a replica that
already held their adapter.

Both servers are the real ``ragtune serve`` command in a child process (``--engine local``,
then ``--engine ray --replicas N`` on a local Ray it starts), on the embedded default over
``examples/acme``, with the adapters of ``serve.py`` (prompt, prefix and LoRA in turn,
initialised, not trained: the figure is serving cost). Clients are httpx over HTTP in closed
loops, each client on its own adapter, the same plan for both servers. The held share comes
from the Ray ingress's ``/healthz`` (counted per request by the replica that answered).

Rerun (from the repository root)::

    .venv/bin/python benchmarks/ray_serve.py --clients 8 --requests 4 --replicas 2

Results go to ``benchmarks/out/ray_serve.json``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common
import _generation
import serve as plain

from ragtune.serve.child import ServerFailedError, served


def main(argv: Sequence[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=8, help="concurrent clients, one adapter each")
    p.add_argument("--requests", type=int, default=4, help="requests per client")
    p.add_argument("--replicas", type=int, default=2, help="Ray Serve model replicas")
    p.add_argument("--batch", type=int, default=8, help="generator.max_batch_size")
    args = p.parse_args(argv)

    from ragtune import load_config
    from ragtune.indexing import build_index

    work = args.out / "ray_serve"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    config = load_config(args.config)
    index = work / "index"
    build_index(
        [_common.ROOT / "examples" / "acme"],
        index,
        embedder=config.embedder.build(),
        settings=config.build_settings(),
        tenant="bench",
    )
    names = [(f"a{i:02d}", plain.KINDS[i % 3]) for i in range(args.clients)]
    _generation.make_adapters(work, names)
    config_path = plain._write_config(args, work, index)
    plan = [
        [
            (f"bench/{names[c][0]}", plain.QUESTIONS[(c + r) % len(plain.QUESTIONS)])
            for r in range(args.requests)
        ]
        for c in range(args.clients)
    ]
    warm = [[(f"bench/{n}", plain.QUESTIONS[0])] for n, _k in names]

    quiet = _common.wait_for_quiet(args.max_wait, label="ray serve")
    results: dict[str, Any] = {
        "figure": "ray_serve",
        "machine": _common.machine_info(),
        "quiet": quiet,
        "settings": vars(args) | {"out": str(args.out), "config": str(args.config), "data": None},
        "servers": {},
    }
    env = {"RAGTUNE_BENCH_KEY": plain.KEY, "HF_HUB_OFFLINE": "1"}
    engines = {
        "plain": ("--log-level", "warning"),
        f"ray-{args.replicas}": (
            *("--log-level", "warning", "--engine", "ray"),
            *("--replicas", str(args.replicas)),
        ),
    }
    for label, extra in engines.items():
        row: dict[str, Any] = {}
        try:
            _measure(config_path, work / f"{label}.log", env, extra, warm, plan, row)
        except ServerFailedError as exc:
            if not row:
                raise
            row["stop_error"] = str(exc).splitlines()[0]  # measured; it did not stop cleanly
        results["servers"][label] = row
        print(f"{label}: {json.dumps(row)}", flush=True)
        _common.write_results(args.out, "ray_serve", results)  # what is measured so far
    plain_rate = results["servers"]["plain"]["requests_per_s"]
    ray_row = results["servers"][f"ray-{args.replicas}"]
    results["throughput_ratio"] = round(ray_row["requests_per_s"] / max(plain_rate, 1e-9), 2)
    results["conditions_after"] = _common.load_average()
    path = _common.write_results(args.out, "ray_serve", results)
    print(f"throughput ratio ray/plain: {results['throughput_ratio']}x\nresults: {path}")
    return 0


def _measure(
    config: Path,
    log: Path,
    env: dict[str, str],
    extra: tuple[str, ...],
    warm: list[list[tuple[str, str]]],
    plan: list[list[tuple[str, str]]],
    row: dict[str, Any],
) -> None:
    """Fill ``row`` with one server's figures as they are measured (a server that fails to
    stop leaves them there): throughput and latency of ``plan`` after ``warm``, the held share
    (Ray), and how long the server took to stop after SIGINT."""
    import httpx

    with served(config, log, env=env, extra_args=extra) as url:
        asyncio.run(plain._clients(url, warm))  # every adapter loaded once somewhere
        before = httpx.get(f"{url}/healthz", timeout=30).json()
        together, wall = asyncio.run(plain._clients(url, plan))
        after = httpx.get(f"{url}/healthz", timeout=30).json()
        row.update(plain._summary(together, wall))
        if "routed_to_holding_replica" in after:
            held = after["routed_to_holding_replica"] - before["routed_to_holding_replica"]
            loaded = after["routed_and_loaded"] - before["routed_and_loaded"]
            row["held_share"] = round(held / max(held + loaded, 1), 3)
            row["routed"] = {"held": held, "loaded": loaded}
            row["replica_retries"] = after["replica_retries"]
        stopping = time.monotonic()
    row["stop_seconds"] = round(time.monotonic() - stopping, 1)


if __name__ == "__main__":
    raise SystemExit(main())
