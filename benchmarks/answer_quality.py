"""Answer quality of the whole pipeline (issue 4): EM, F1, citations, abstention, latency per stage.

The Assistant built from the config (default: the embedded SmolLM2 with no adapter, hybrid
retrieval, the calibrated checker) answers a seeded sample of answerable questions
(``questions.jsonl``) and unanswerable ones (``unanswerable.jsonl``) over an index of
``passages.jsonl``, one question at a time so the latencies are a user's. Reported: SQuAD EM and
token F1 on answerable questions (an abstention scores 0), ALCE citation recall and precision,
the share of sentences the checker supports, abstention on answerable and on unanswerable
questions, and p50/p95 latency per stage.

Rerun (from the repository root)::

    .venv/bin/python benchmarks/answer_quality.py --data ../shared/data/squad-dev --answerable 300 --unanswerable 300

Results go to ``benchmarks/out/answer_quality.json`` (and one line per question in
``answer_quality.records.jsonl``).
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common


def main(argv: Sequence[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--answerable", type=int, default=300)
    p.add_argument("--unanswerable", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--on-unsupported", choices=["abstain", "flag", "drop"], help="override the config"
    )
    args = p.parse_args(argv)
    data = _common.require_data(
        args.data, ["passages.jsonl", "questions.jsonl", "unanswerable.jsonl"]
    )

    from ragtune import Assistant, load_config
    from ragtune.check.citations import strip_markers
    from ragtune.eval.metrics import exact_match, token_f1

    config = load_config(args.config)
    if args.on_unsupported:
        config = config.model_copy(
            update={
                "checker": config.checker.model_copy(update={"on_unsupported": args.on_unsupported})
            }
        )
    index = args.out / "indexes" / "squad-passages"
    _common.ensure_index(
        [data / "passages.jsonl"],
        index,
        embedder=config.embedder.build(),
        settings=config.build_settings(),
        rebuild=False,
    )
    rng = random.Random(args.seed)
    answerable = _common.read_jsonl(data / "questions.jsonl")
    unanswerable = _common.read_jsonl(data / "unanswerable.jsonl")
    sample = rng.sample(answerable, args.answerable) + rng.sample(unanswerable, args.unanswerable)
    rng.shuffle(sample)

    records = []
    started = time.perf_counter()
    with Assistant.from_config(config, index=index) as assistant:
        assistant.ask("warm-up question about the data?")
        for n, q in enumerate(sample, 1):
            answer = assistant.ask(q["question"])
            prediction = "" if answer.abstained else strip_markers(answer.text)
            golds = q.get("answers") or []
            records.append(
                {
                    "id": q["id"],
                    "answerable": bool(golds),
                    "abstained": answer.abstained,
                    "abstain_reason": answer.abstain_reason,
                    "em": exact_match(prediction, golds) if golds else None,
                    "f1": token_f1(prediction, golds) if golds else None,
                    "draft_f1": token_f1(strip_markers(answer.draft), golds) if golds else None,
                    "citation_recall": answer.citation_recall,
                    "citation_precision": answer.citation_precision,
                    "sentences": len(answer.sentences),
                    "supported": sum(s.supported for s in answer.sentences),
                    "grounded": answer.grounded,
                    "retrieved": [p.chunk_id for p in answer.passages],
                    "gold_passage": q.get("passage_id"),
                    "timings": vars(answer.timings),
                    "text": answer.text,
                    "draft": answer.draft,
                }
            )
            if n % 10 == 0:
                print(
                    f"  {n}/{len(sample)} questions, {time.perf_counter() - started:.0f}s",
                    flush=True,
                )
    ans = [r for r in records if r["answerable"]]
    una = [r for r in records if not r["answerable"]]
    checked = [r for r in records if r["sentences"] and not r["abstained"]]
    answered = [r for r in records if not r["abstained"] and r["sentences"]]

    def mean(values: list[float]) -> float:
        return round(sum(values) / len(values), 4) if values else 0.0

    stages = ["guard", "retrieve", "generate", "prefill", "decode", "check", "total"]
    latency = {
        s: {
            "p50": round(1000 * _common.percentile([r["timings"][s] for r in records], 50), 1),
            "p95": round(1000 * _common.percentile([r["timings"][s] for r in records], 95), 1),
        }
        for s in stages
    }
    summary = {
        "n": {"answerable": len(ans), "unanswerable": len(una)},
        "em": mean([r["em"] for r in ans]),
        "f1": mean([r["f1"] for r in ans]),
        "draft_f1": mean([r["draft_f1"] for r in ans]),
        "citation_recall": mean([r["citation_recall"] for r in answered]),
        "citation_precision": mean([r["citation_precision"] for r in answered]),
        "supported_sentences": round(
            sum(r["supported"] for r in checked) / max(sum(r["sentences"] for r in checked), 1), 4
        ),
        "abstention_on_answerable": mean([float(r["abstained"]) for r in ans]),
        "abstention_on_unanswerable": mean([float(r["abstained"]) for r in una]),
        "abstain_reasons": {
            k: sum(r["abstain_reason"] == k for r in records)
            for k in {r["abstain_reason"] for r in records}
            if k
        },
        "latency_ms": latency,
    }
    results = {
        "figure": "answer_quality",
        "machine": _common.machine_info(),
        "config": config.model_dump(mode="json"),
        "seed": args.seed,
        "summary": summary,
    }
    path = _common.write_results(args.out, "answer_quality", results)
    with open(args.out / "answer_quality.records.jsonl", "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    print(
        f"\n### Answer quality ({len(ans)} answerable + {len(una)} unanswerable, seed {args.seed})\n"
    )
    print(
        _common.markdown_table(
            [
                "EM",
                "F1",
                "F1 of drafts",
                "citation recall",
                "citation precision",
                "supported sentences",
                "abstain (answerable)",
                "abstain (unanswerable)",
            ],
            [
                [
                    summary["em"],
                    summary["f1"],
                    summary["draft_f1"],
                    summary["citation_recall"],
                    summary["citation_precision"],
                    summary["supported_sentences"],
                    summary["abstention_on_answerable"],
                    summary["abstention_on_unanswerable"],
                ]
            ],
        )
    )
    print("\nLatency (ms):")
    print(
        _common.markdown_table(
            ["stage", "p50", "p95"], [[s, v["p50"], v["p95"]] for s, v in latency.items()]
        )
    )
    print(f"abstain reasons: {summary['abstain_reasons']}")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
