"""Answer quality of the whole pipeline (issue 4): EM, F1, citations, abstention, latency per stage.

The Assistant built from the config (default: the embedded SmolLM2 with no adapter, hybrid
retrieval, the calibrated checker) answers a seeded sample of answerable questions
(``questions.jsonl``) and unanswerable ones (``unanswerable.jsonl``) over an index of
``passages.jsonl``, one question at a time so the latencies are a user's. It is exactly
``ragtune eval`` (same code, same summary.json); this script adds the index build, the F1 of the
raw drafts (before the checker) and a Markdown table. The run folder is resumable: rerunning
the same command after an interruption continues it.

Rerun (from the repository root)::

    .venv/bin/python benchmarks/answer_quality.py --data ../shared/data/squad-dev --answerable 300

Results go to ``benchmarks/out/answer_quality.json``; the run (records.jsonl, summary.json) to
``benchmarks/out/runs/answer_quality-seed<S>``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common


def main(argv: Sequence[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--answerable", type=int, default=300, help="questions from each file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--on-unsupported", choices=["abstain", "flag", "drop"], help="override the config"
    )
    args = p.parse_args(argv)
    data = _common.require_data(
        args.data, ["passages.jsonl", "questions.jsonl", "unanswerable.jsonl"]
    )

    from ragtune import load_config
    from ragtune.check.citations import strip_markers
    from ragtune.eval import evaluate
    from ragtune.eval.metrics import token_f1
    from ragtune.eval.summary import METRICS, value

    config = load_config(args.config)
    if args.on_unsupported:
        import dataclasses

        checker = dataclasses.replace(config.checker, on_unsupported=args.on_unsupported)
        config = config.model_copy(update={"checker": checker})
    index = args.out / "indexes" / "squad-passages"
    _common.ensure_index(
        [data / "passages.jsonl"],
        index,
        embedder=config.embedder.build(),
        settings=config.build_settings(),
        rebuild=False,
    )
    suffix = f"-{args.on_unsupported}" if args.on_unsupported else ""
    run_dir = args.out / "runs" / f"answer_quality-seed{args.seed}{suffix}"
    started = time.perf_counter()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] > 30 or done == total:
            last[0] = now
            print(f"  {done}/{total} questions, {now - started:.0f}s", flush=True)

    result = evaluate(
        config,
        data / "questions.jsonl",
        run_dir,
        unanswerable=data / "unanswerable.jsonl",
        limit=args.answerable,
        seed=args.seed,
        index=index,
        progress=progress,
    )
    from ragtune.eval import read_records

    records = read_records(run_dir)
    answerable = [r for r in records if r["answerable"]]
    draft_f1 = sum(token_f1(strip_markers(r["draft"]), r["answers"]) for r in answerable) / max(
        len(answerable), 1
    )
    summary = result.summary
    results = {
        "figure": "answer_quality",
        "machine": _common.machine_info(),
        "run": str(run_dir),
        "seed": args.seed,
        "draft_f1": round(draft_f1, 4),
        "summary": {k: v for k, v in summary.items() if k not in ("config",)},
        "config": summary["config"],
    }
    path = _common.write_results(args.out, "answer_quality", results)
    print(
        f"\n### Answer quality ({summary['answerable']} answerable + {summary['unanswerable']} "
        f"unanswerable, seed {args.seed})\n"
    )
    rows = []
    for metric in METRICS:
        v = value(summary, metric.name)
        low, high = summary["ci95"][metric.name]
        rows.append(
            [
                metric.name,
                "-" if v is None else v,
                f"[{low}, {high}]",
                summary["counts"][metric.name],
            ]
        )
    rows.append(["F1 of the raw drafts", round(draft_f1, 4), "", len(answerable)])
    print(_common.markdown_table(["metric", "value", "95% interval", "n"], rows))
    latency = summary["latency_ms"]
    print("\nLatency (ms):")
    print(
        _common.markdown_table(
            ["stage", "p50", "p95"],
            [[s, v["p50"], v["p95"]] for s, v in latency["by_stage"].items()],
        )
    )
    print(f"abstain reasons: {summary['abstain_reasons']}")
    print(f"attributed sentences: {summary['attributed_sentences']}")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
