"""Ray Data index build against the local build, same machine, same sources (issue 19).

Builds the squad-dev corpus (``corpus/``: 24 article files) into a folder index three ways,
one after the other in one run: the local engine (this process), and ``--engine ray`` with 1
and 2 embedding workers on a local Ray started for the run. Each Ray build is timed whole
(what a user waits for); Ray's own start (``ray.init``, once) is reported apart, as on a
cluster it is paid once, not per build. Every Ray build is checked equal to the local one
(same counts and chunk ids; vectors within 1e-5).

On 2 cores parity is the most to expect: the overhead is the figure.

Rerun (from the repository root)::

    .venv/bin/python benchmarks/ray_build.py --data ../shared/data/squad-dev

Results go to ``benchmarks/out/ray_build.json``.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common


def main(argv: Sequence[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--workers", default="1,2", help="Ray embedding workers, comma-separated")
    p.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    args = p.parse_args(argv)
    data = _common.require_data(args.data, ["corpus"])

    import numpy as np

    from ragtune import load_config
    from ragtune.index import IndexStore
    from ragtune.indexing import build_index
    from ragtune.indexing_ray import RayDataEngine

    config = load_config(args.config)
    settings = config.build_settings()
    work = args.out / "ray_build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    sources = [data / "corpus"]

    def contents(index: Path) -> tuple[dict[str, int], list[str], Any]:
        with IndexStore.open(index) as store:
            rows, _ = store.db.vector_counts()
            chunk_ids = sorted(
                p.chunk_id for p in store.passages([int(r) for r in rows], [0.0] * len(rows))
            )
            ids = np.sort(store.vectors.ids())
            axes = np.eye(store.vectors.dimension, dtype=np.float32)
            vectors = np.stack([store.vectors.scores(a, ids) for a in axes], axis=1)
            return dict(store.manifest.counts), chunk_ids, vectors

    quiet = _common.wait_for_quiet(args.max_wait, label="ray build")
    results: dict[str, Any] = {
        "figure": "ray_build",
        "machine": _common.machine_info(),
        "quiet": quiet,
        "sources": str(data / "corpus"),
        "builds": {},
    }
    # The local build first: it also loads the embedding model once for this process, which
    # the Ray workers each do for themselves (counted in their time).
    embedder = config.embedder.build()
    embedder.embed(["warm up"])
    started = time.perf_counter()
    local = build_index(sources, work / "local", embedder=embedder, settings=settings)
    results["builds"]["local"] = {
        "seconds": round(time.perf_counter() - started, 2),
        "embed_seconds": round(local.embed_seconds, 2),
        "chunks": local.chunks_added,
    }
    print(f"local: {results['builds']['local']}", flush=True)
    reference = contents(work / "local")

    import ray

    started = time.perf_counter()
    ray.init(
        num_cpus=args.cpus,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1"}},
    )
    results["ray_init_seconds"] = round(time.perf_counter() - started, 2)
    try:
        for workers in [int(w) for w in args.workers.split(",") if w]:
            out = work / f"ray-{workers}"
            started = time.perf_counter()
            report = build_index(
                sources,
                out,
                embedder=embedder,
                settings=settings,
                engine=RayDataEngine(workers=workers),
            )
            seconds = time.perf_counter() - started
            counts, chunk_ids, vectors = contents(out)
            same = counts == reference[0] and chunk_ids == reference[1]
            diff = float(np.abs(vectors - reference[2]).max()) if same else None
            row = {
                "seconds": round(seconds, 2),
                "chunks": report.chunks_added,
                "ratio_to_local": round(seconds / results["builds"]["local"]["seconds"], 2),
                "same_chunks": same,
                "max_vector_difference": diff,
            }
            results["builds"][f"ray-{workers}"] = row
            print(f"ray, {workers} worker(s): {row}", flush=True)
    finally:
        ray.shutdown()
    results["conditions_after"] = _common.load_average()
    path = _common.write_results(args.out, "ray_build", results)
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
