"""Choosing the grounding adapter's kind and size (issue 15): short training runs of each variant
on the training articles, each evaluated on the development articles.

The squad-dev articles are split three ways by :func:`_common.article_split`: held back (never
used here; the final figures come from them), development (this sweep's evaluation and the
abstention calibration) and training. Each variant is trained with ``ragtune train`` itself on
RAFT examples from the training articles for ``--steps`` optimiser steps, then answers the same
seeded sample of development questions through the Assistant (hybrid retrieval, the prompt
layout of the variant, the checker). Both the checked answers and the raw drafts are scored.

Each variant's result is written as soon as it is done and a rerun skips finished variants
(training itself resumes from its checkpoint), so the sweep survives an interruption.

Rerun (from the repository root, alone on the machine)::

    .venv/bin/python benchmarks/grounding_sweep.py --data ../shared/data/squad-dev --steps 150 --eval 120

Results go to ``benchmarks/out/grounding_sweep/<variant>.json`` and a table is printed.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

if TYPE_CHECKING:
    from ragtune.train import TrainProgress

LORA_ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

VARIANTS: dict[str, dict[str, Any]] = {
    "lora-r16-lr1e-3": {"adapter": {"type": "lora", "r": 16, "alpha": 32}, "lr": 1e-3},
    "lora-r16-lr3e-4": {"adapter": {"type": "lora", "r": 16, "alpha": 32}, "lr": 3e-4},
    "lora-r16-lr2e-3": {"adapter": {"type": "lora", "r": 16, "alpha": 32}, "lr": 2e-3},
    "lora-r16-top15-lr1e-3": {
        "adapter": {"type": "lora", "r": 16, "alpha": 32, "first_layer": 15},
        "lr": 1e-3,
    },
    "lora-r32-lr1e-3": {"adapter": {"type": "lora", "r": 32, "alpha": 64}, "lr": 1e-3},
    "lora-r8-lr1e-3": {"adapter": {"type": "lora", "r": 8, "alpha": 16}, "lr": 1e-3},
    "prefix-32-lr1e-2": {"adapter": {"type": "prefix", "num_virtual_tokens": 32}, "lr": 1e-2},
}


def _train_config(variant: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    adapter = dict(variant["adapter"])
    if adapter["type"] == "lora":
        adapter.setdefault("target_modules", LORA_ALL)
        adapter.setdefault("dropout", 0.0)
    return {
        "adapter": adapter,
        "data": {
            "passages": args.passages,
            "gold_share": 0.8,
            "unanswerable_share": args.unanswerable_share,
            "validation_share": 0.03,
        },
        "loop": {
            "learning_rate": variant["lr"],
            "schedule": "linear",
            "warmup_share": 0.05,
            "batch_size": args.batch_size,
            "grad_accum": 1,
            "max_steps": args.steps,
            "eval_every": args.steps,
            "checkpoint_every": 25,
            "patience": 3,
            "max_length": 1024,
            "seed": 0,
        },
    }


def _print_examples(variant: str, counts: Mapping[str, int]) -> None:
    print(f"{variant}: examples {dict(counts)}", flush=True)


def _print_progress(variant: str, progress: TrainProgress) -> None:
    if progress.step % 10 == 0:
        print(
            f"{variant}: step {progress.step}/{progress.max_steps} loss {progress.loss:.3f} "
            f"{progress.tokens_per_second:.0f} tok/s",
            flush=True,
        )


def main(argv: Sequence[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--steps", type=int, default=150, help="optimiser steps per variant")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--eval", type=int, default=120, help="development questions from each file")
    p.add_argument("--passages", type=int, default=3, help="passages per prompt (and example)")
    p.add_argument("--passage-tokens", type=int, default=128, help="tokens per passage window")
    p.add_argument("--unanswerable-share", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    data = _common.require_data(
        args.data, ["passages.jsonl", "questions.jsonl", "unanswerable.jsonl"]
    )

    from ragtune import load_config
    from ragtune.eval import evaluate, read_records
    from ragtune.eval.metrics import exact_match, token_f1
    from ragtune.eval.summary import value
    from ragtune.train import train_adapter

    work = args.out / "grounding_sweep"
    work.mkdir(parents=True, exist_ok=True)
    files = _common.write_article_split(data, work / "split", seed=args.seed)
    base_config = load_config(args.config)
    index = _common.squad_index(data, args.out, base_config)
    raw = base_config.model_dump(mode="json")
    raw["retriever"]["index"] = str(index)
    raw["adapters"]["root"] = str(work / "registry")
    raw["generator"]["max_new_tokens"] = 32
    raw["generator"]["max_passages"] = args.passages
    raw["generator"]["passage_tokens"] = args.passage_tokens

    rows = []
    for name in [v for v in args.variants.split(",") if v]:
        result_file = work / f"{name}.json"
        if result_file.is_file():
            row = json.loads(result_file.read_text())
        else:
            run_raw = json.loads(json.dumps(raw))
            run_raw["train"] = _train_config(VARIANTS[name], args)
            started = time.perf_counter()
            trained = train_adapter(
                run_raw,
                files["train_answerable"],
                tenant="grounding",
                name=name,
                unanswerable=files["train_unanswerable"],
                promote=True,
                on_data=functools.partial(_print_examples, name),
                progress=functools.partial(_print_progress, name),
            )
            train_wall = time.perf_counter() - started
            card = trained.registered.card
            folder = work / "runs" / name
            evaluate(
                run_raw,
                files["dev_answerable"],
                folder,
                unanswerable=files["dev_unanswerable"],
                limit=args.eval,
                seed=args.seed,
                adapter=f"grounding/{name}",
            )
            summary = json.loads((folder / "summary.json").read_text())
            records = read_records(folder)
            answerable = [r for r in records if r["answerable"]]
            row = {
                "variant": name,
                "trainable_parameters": card.trainable_parameters,
                "train_seconds": card.metrics["train_seconds"],
                "train_wall_seconds": round(train_wall, 1),
                "tokens_per_second": card.metrics["tokens_per_second"],
                "validation_loss": card.metrics["validation_loss"],
                "train_examples": card.metrics["train_examples"],
                "f1": value(summary, "answer.f1"),
                "em": value(summary, "answer.em"),
                "draft_f1": round(
                    sum(token_f1(r["draft"], r["answers"]) for r in answerable)
                    / max(1, len(answerable)),
                    4,
                ),
                "draft_em": round(
                    sum(exact_match(r["draft"], r["answers"]) for r in answerable)
                    / max(1, len(answerable)),
                    4,
                ),
                "abstain_unanswerable": value(summary, "abstention.on_unanswerable"),
                "abstain_answerable": value(summary, "abstention.on_answerable"),
                "citation_precision": value(summary, "citations.precision"),
                "citation_recall": value(summary, "citations.recall"),
                "latency_p50_ms": summary["latency_ms"]["p50"],
                "settings": vars(args) | {"data": str(args.data), "out": str(args.out)},
                "machine": _common.machine_info(),
            }
            result_file.write_text(json.dumps(row, indent=2, default=str) + "\n")
        rows.append(row)
        print(
            f"{name}: {json.dumps({k: v for k, v in row.items() if k not in ('settings', 'machine')})}"
        )
    headers = [
        "variant",
        "trainable params",
        "tokens/s",
        "val loss",
        "F1",
        "EM",
        "draft F1",
        "abstain unans.",
        "abstain ans.",
        "latency p50 ms",
    ]
    table = [
        [
            r["variant"],
            r["trainable_parameters"],
            r["tokens_per_second"],
            r["validation_loss"],
            r["f1"],
            r["em"],
            r["draft_f1"],
            r["abstain_unanswerable"],
            r["abstain_answerable"],
            r["latency_p50_ms"].get("total")
            if isinstance(r["latency_p50_ms"], dict)
            else r["latency_p50_ms"],
        ]
        for r in rows
    ]
    print(_common.markdown_table(headers, table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
