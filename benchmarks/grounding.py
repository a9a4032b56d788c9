"""Grounded answers out of the box (issue 15): the shipped default config on squad-dev articles
the grounding adapter never saw, one question at a time.

The held-back articles of ``benchmarks/_common.article_part`` (neither trained on nor used for
the answerability fit) give a seeded sample of answerable and unanswerable questions; ``ragtune
eval`` answers them with ``configs/default.yaml`` over an index of every squad-dev passage (as a
deployed assistant's would hold), so every figure comes with its bootstrap 95% interval. The
SQuAD 2.0 summary (HasAns F1, NoAns accuracy, overall F1) is computed the standard way. With
``--compare-base`` the same questions are answered with the grounding adapter turned off
(``generator.grounding: none``), and the difference is a paired bootstrap.

Rerun (from the repository root, alone on the machine)::

    .venv/bin/python benchmarks/grounding.py --data ../shared/data/squad-dev --questions 300

Results go to ``benchmarks/out/grounding.json`` and the run folders under
``benchmarks/out/grounding/runs/``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

GOALS = {
    "answer.f1": 0.55,
    "answer.em": 0.45,
    "abstention.on_unanswerable": 0.60,
    "answered answerable": 0.85,
    "citations.precision": 0.95,
    "citations.recall": 0.90,
    "latency p50 s": 1.5,
}


def main(argv: Sequence[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--questions", type=int, default=300, help="from each file (answerable, not)")
    p.add_argument("--compare-base", action="store_true", help="also run without grounding")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    data = _common.require_data(
        args.data, ["passages.jsonl", "questions.jsonl", "unanswerable.jsonl"]
    )
    from ragtune import load_config
    from ragtune.eval import compare_runs, evaluate, read_records

    work = args.out / "grounding"
    files = _common.write_article_split(data, work / "split", seed=args.seed)
    config = load_config(args.config)
    index = _common.squad_index(data, args.out, config)
    # The very call of notebooks/grounding_quality.ipynb, so the notebook reads this run.
    raw = config.model_dump(mode="json")
    runs = {"default": raw}
    if args.compare_base:
        base = json.loads(json.dumps(raw))
        base["generator"]["grounding"] = "none"
        base["generator"]["max_passages"] = 5
        base["generator"]["passage_tokens"] = 4096
        runs["no grounding"] = base
    summaries: dict[str, dict[str, Any]] = {}
    for name, run_config in runs.items():
        folder = work / "runs" / name.replace(" ", "-")
        _common.wait_for_quiet(args.max_wait, label=name)
        evaluate(
            run_config,
            files["held_answerable"],
            folder,
            unanswerable=files["held_unanswerable"],
            limit=args.questions,
            seed=args.seed,
            index=index.resolve(),
        )
        summaries[name] = json.loads((folder / "summary.json").read_text())
    default = summaries["default"]
    rows = _rows(default)
    results: dict[str, Any] = {
        "figure": "grounding",
        "machine": _common.machine_info(),
        "settings": vars(args) | {"data": str(args.data), "out": str(args.out)},
        "held_back_articles": sorted(
            {r["title"] for r in _common.read_jsonl(files["held_answerable"])}
        ),
        "default": rows,
        "summary": default,
    }
    if args.compare_base:
        a = read_records(work / "runs" / "no-grounding")
        b = read_records(work / "runs" / "default")
        comparison = compare_runs(a, b, seed=args.seed)
        results["vs_no_grounding"] = {
            d.name: {"delta": round(d.delta.value, 4), "ci95": [d.delta.low, d.delta.high]}
            for d in comparison.metrics
            if d.delta is not None
        }
        results["no_grounding"] = _rows(summaries["no grounding"])
    path = _common.write_results(args.out, "grounding", results)
    print(_common.markdown_table(["figure", "value", "95% interval", "goal"], _table(rows)))
    print(f"results: {path}")
    return 0


def _rows(summary: dict[str, Any]) -> dict[str, Any]:
    ci = summary["ci95"]
    latency = summary["latency_ms"]
    answered = 1.0 - (summary["abstention"]["on_answerable"] or 0.0)
    low, high = ci["abstention.on_answerable"]
    return {
        "answer.f1": [summary["answer"]["f1"], ci["answer.f1"]],
        "answer.em": [summary["answer"]["em"], ci["answer.em"]],
        "abstention.on_unanswerable": [
            summary["abstention"]["on_unanswerable"],
            ci["abstention.on_unanswerable"],
        ],
        "answered answerable": [round(answered, 4), [round(1 - high, 4), round(1 - low, 4)]],
        "citations.precision": [summary["citations"]["precision"], ci["citations.precision"]],
        "citations.recall": [summary["citations"]["recall"], ci["citations.recall"]],
        "squad2.has_ans_f1": [summary["answer"]["f1"], ci["answer.f1"]],
        "squad2.no_ans_accuracy": [
            summary["abstention"]["on_unanswerable"],
            ci["abstention.on_unanswerable"],
        ],
        "squad2.overall_f1": [summary["squad2"]["overall_f1"], ci["squad2.overall_f1"]],
        "squad2.overall_em": [summary["squad2"]["overall_em"], ci["squad2.overall_em"]],
        "latency p50 s": [round(latency["p50"] / 1000, 3), None],
        "latency p95 s": [round(latency["p95"] / 1000, 3), None],
        "stages p50 ms": {k: v["p50"] for k, v in latency["by_stage"].items()},
        "abstain reasons": summary.get("abstain_reasons", {}),
    }


def _table(rows: dict[str, Any]) -> list[list[Any]]:
    table = []
    for name, value in rows.items():
        if not isinstance(value, list):
            continue
        point, interval = value
        goal = GOALS.get(name)
        if goal is None:
            verdict = "-"
        elif name.startswith("latency"):
            verdict = f"<= {goal}: {'met' if point <= goal else 'missed'}"
        else:
            verdict = f">= {goal}: {'met' if point >= goal else 'missed'}"
        shown = "-" if interval is None else f"[{interval[0]:.3f}, {interval[1]:.3f}]"
        table.append([name, point, shown, verdict])
    return table


if __name__ == "__main__":
    sys.exit(main())
