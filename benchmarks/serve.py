"""The serving figure (issue 7): throughput and p50/p95 latency of ``ragtune serve`` at 1, 4 and 16
concurrent clients, each client on a different adapter, against the same requests sent one at a
time; then a soak at the highest of those loads that keeps p95 under 10 s, counting requests
lost or failed (goal: 0).

Everything runs on loopback with the embedded default (SmolLM2-135M-Instruct and
all-MiniLM-L6-v2) over the sample corpus ``examples/acme``: the server is the real
``ragtune serve`` command in a child process; clients are httpx over HTTP. The 16 adapters
(prompt, prefix and LoRA in turn, tenant ``bench``) are initialised, not trained: the
figure measures serving cost, not answer quality. Each client sends its requests one after
another (a closed loop), with questions drawn in turn from a fixed list.

Side by side in one run: for each load, the same requests (same questions, same adapters) sent
one at a time by a single client, which is what a server without batching would do at best.

Rerun (from the repository root)::

    .venv/bin/python benchmarks/serve.py --levels 1,4,16 --requests 4 --soak 300

Results go to ``benchmarks/out/serve.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common
import _generation

from ragtune.serve.child import served

if TYPE_CHECKING:
    import httpx

QUESTIONS = [
    "How long is the motor of the Cascade blender covered by the warranty?",
    "How long does the K5 kettle hold a chosen temperature?",
    "What is the wattage of the Cascade C700 blender?",
    "How much does express shipping cost?",
    "How long do European deliveries take?",
    "Which temperature preset suits green tea?",
    "How long are gift cards valid?",
    "When is the Leeds showroom open?",
    "How many days do I have to return an item?",
    "Do you ship to post-office boxes?",
    "Who delivers large items such as the range cooker?",
    "How much does standard shipping cost below 40 pounds?",
    "Is there a price match?",
    "How many litres does the K5 kettle boil?",
    "Which countries do you ship to?",
    "What happens when the kettle boils dry?",
]
KEY = "rt-bench-serve-key"
KINDS = ("prompt", "prefix", "lora")


def _write_config(args: argparse.Namespace, work: Path, index: Path) -> Path:
    import yaml

    from ragtune import load_config

    raw = load_config(args.config).model_dump(mode="json")
    raw["retriever"]["index"] = str(index)
    raw["adapters"]["root"] = str(work / "adapters")
    raw["generator"]["max_batch_size"] = args.batch
    raw["telemetry"]["events"] = None
    raw["serve"] = {
        "keys": [{"tenant": "bench", "key_env": "RAGTUNE_BENCH_KEY"}],
        "max_queue": 64,
        "request_timeout_s": 600,
    }
    path = work / "serve.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


async def _one(client: httpx.AsyncClient, url: str, model: str, question: str) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        response = await client.post(
            f"{url}/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": question}]},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        body = response.json()
        ok = response.status_code == 200 and bool(body["choices"][0]["message"]["content"])
        status: int | str = response.status_code
        extension = body.get("ragtune", {}) if ok else {}
    except Exception as exc:  # a lost request: counted, never hidden
        ok, status, extension = False, type(exc).__name__, {}
    return {
        "ok": ok,
        "status": status,
        "seconds": time.perf_counter() - started,
        "adapter": extension.get("adapter"),
        "abstained": extension.get("abstained"),
        "queue_ms": extension.get("timings_ms", {}).get("queue"),
    }


async def _clients(
    url: str, plan: Sequence[Sequence[tuple[str, str]]], *, until: float | None = None
) -> tuple[list[dict[str, Any]], float]:
    """Each entry of ``plan`` is one client's (model, question) list, sent one after another;
    with ``until`` a client starts its list again until that time."""
    import httpx

    async with httpx.AsyncClient(timeout=900, limits=httpx.Limits(max_connections=64)) as client:

        async def run(requests: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
            results: list[dict[str, Any]] = []
            while True:
                for model, question in requests:
                    if until is not None and time.perf_counter() >= until:
                        return results
                    results.append(await _one(client, url, model, question))
                if until is None:
                    return results

        started = time.perf_counter()
        per_client = await asyncio.gather(*(run(p) for p in plan))
        return [r for rs in per_client for r in rs], time.perf_counter() - started


def _summary(results: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    seconds = [r["seconds"] for r in results if r["ok"]]
    return {
        "requests": len(results),
        "failed": sum(not r["ok"] for r in results),
        "statuses": sorted({str(r["status"]) for r in results}),
        "wall_s": round(wall, 1),
        "requests_per_s": round(len(seconds) / wall, 3) if wall else 0.0,
        "p50_s": round(_common.percentile(seconds, 50), 2) if seconds else None,
        "p95_s": round(_common.percentile(seconds, 95), 2) if seconds else None,
        "abstained": sum(bool(r["abstained"]) for r in results),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--levels", default="1,4,16", help="concurrent clients, comma-separated")
    p.add_argument("--requests", type=int, default=4, help="requests per client per level")
    p.add_argument("--soak", type=float, default=300.0, help="soak seconds (0: no soak)")
    p.add_argument("--batch", type=int, default=8, help="generator.max_batch_size")
    p.add_argument("--p95-limit", type=float, default=10.0)
    p.add_argument(
        "--soak-clients",
        type=int,
        help="clients in the soak (default: the most of --levels whose p95 stayed under the limit)",
    )
    args = p.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",") if x]

    from ragtune import load_config
    from ragtune.indexing import build_index

    work = args.out / "serve"
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
    names = [(f"a{i:02d}", KINDS[i % 3]) for i in range(max(levels))]
    _generation.make_adapters(work, names)
    config_path = _write_config(args, work, index)

    quiet = _common.wait_for_quiet(args.max_wait, label="serve")
    results: dict[str, Any] = {
        "figure": "serve",
        "machine": _common.machine_info(),
        "quiet": quiet,
        "settings": vars(args) | {"out": str(args.out), "config": str(args.config), "data": None},
        "levels": {},
    }
    rows = []
    with served(
        config_path,
        work / "server.log",
        env={"RAGTUNE_BENCH_KEY": KEY, "HF_HUB_OFFLINE": "1"},
        extra_args=("--log-level", "warning"),
    ) as url:
        import httpx

        # warm-up: every adapter loaded once, weights paged in
        asyncio.run(_clients(url, [[(f"bench/{n}", QUESTIONS[0])] for n, _k in names[:16]]))
        for level in levels:
            plan = [
                [
                    (f"bench/{names[c][0]}", QUESTIONS[(c + r) % len(QUESTIONS)])
                    for r in range(args.requests)
                ]
                for c in range(level)
            ]
            together, wall = asyncio.run(_clients(url, plan))
            sequential = [pair for requests in plan for pair in requests]
            alone, alone_wall = asyncio.run(_clients(url, [sequential]))
            row = {
                "concurrent": _summary(together, wall),
                "one_at_a_time": _summary(alone, alone_wall),
            }
            rate = row["concurrent"]["requests_per_s"] / max(
                row["one_at_a_time"]["requests_per_s"], 1e-9
            )
            row["throughput_ratio"] = round(rate, 2)
            results["levels"][str(level)] = row
            print(f"{level} clients: {json.dumps(row)}", flush=True)
            rows.append(
                [
                    level,
                    row["concurrent"]["requests"],
                    row["concurrent"]["requests_per_s"],
                    row["one_at_a_time"]["requests_per_s"],
                    f"{rate:.2f}x",
                    row["concurrent"]["p50_s"],
                    row["concurrent"]["p95_s"],
                    row["one_at_a_time"]["p50_s"],
                    row["one_at_a_time"]["p95_s"],
                    row["concurrent"]["failed"],
                ]
            )

        within = [
            lv
            for lv in levels
            if (results["levels"][str(lv)]["concurrent"]["p95_s"] or 1e9) < args.p95_limit
        ]
        if args.soak > 0 and (within or args.soak_clients):
            level = args.soak_clients or max(within)
            plan = [
                [(f"bench/{names[c][0]}", q) for q in QUESTIONS[c % 4 :] + QUESTIONS[: c % 4]]
                for c in range(level)
            ]
            soak, wall = asyncio.run(_clients(url, plan, until=time.perf_counter() + args.soak))
            results["soak"] = {"clients": level, **_summary(soak, wall)}
            print(f"soak: {json.dumps(results['soak'])}", flush=True)
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        results["server_metrics"] = [
            line
            for line in metrics.splitlines()
            if line.startswith(
                (
                    "ragtune_batch_size_sum",
                    "ragtune_batch_size_count",
                    "ragtune_adapter_switches_total",
                    "ragtune_rejected_total",
                    "ragtune_cancelled_total",
                )
            )
        ]
    path = _common.write_results(args.out, "serve", results)
    print("\n### Serving (loopback, embedded default, each client on its own adapter)\n")
    print(
        _common.markdown_table(
            [
                "clients",
                "requests",
                "req/s together",
                "req/s one at a time",
                "ratio",
                "p50 s",
                "p95 s",
                "p50 s alone",
                "p95 s alone",
                "failed",
            ],
            rows,
        )
    )
    if "soak" in results:
        s = results["soak"]
        print(
            f"\nsoak: {s['clients']} clients for {s['wall_s']} s: {s['requests']} requests, "
            f"{s['failed']} failed, p50 {s['p50_s']} s, p95 {s['p95_s']} s"
        )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
