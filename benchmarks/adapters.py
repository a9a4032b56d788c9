"""The proof that adapters help (issue 6): train prompt, prefix and LoRA adapters on some
squad-dev articles and evaluate base and each adapter on held-back articles.

Articles are split by a seeded hash of their title: about 70% train, 30% are held back. The
training questions (answerable and unanswerable) of the training articles become RAFT examples
(``ragtune train``, configs/train-<kind>.yaml, with ``--steps`` overriding the step count);
``ragtune eval`` then answers the same seeded sample of held-back questions with the base model
and with each adapter, and each adapter is compared with the base model on the same questions
(paired bootstrap). The index holds every passage, as a deployed assistant's would.

On a CPU use few steps (the default 40 of 4 x 2 examples takes minutes per adapter on 2 cores)
and say so; on a GPU raise ``--steps``. The question subsets are written under the output
folder (benchmarks/out, not the project).

Rerun (from the repository root)::

    .venv/bin/python benchmarks/adapters.py --data ../shared/data/squad-dev --steps 40 --eval 60

Results go to ``benchmarks/out/adapters.json``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

GOALS = {"lora": 0.25, "prefix": 0.15, "prompt": 0.10}
KINDS = ("prompt", "prefix", "lora")


def _held_back(title: str, seed: int, share: float = 0.3) -> bool:
    digest = hashlib.sha256(f"{seed}:{title}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _print_examples(kind: str, counts: Mapping[str, int]) -> None:
    print(f"{kind}: examples {dict(counts)}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--steps", type=int, default=40, help="optimiser steps per adapter")
    p.add_argument("--train-questions", type=int, default=2000, help="cap on training questions")
    p.add_argument("--eval", type=int, default=60, help="held-back questions from each file")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--batch-size", type=int, help="override the train configs' batch size")
    p.add_argument("--grad-accum", type=int, help="override the train configs' accumulation")
    p.add_argument("--passages", type=int, help="override the passages per training example")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    data = _common.require_data(
        args.data, ["passages.jsonl", "questions.jsonl", "unanswerable.jsonl"]
    )

    import yaml

    from ragtune import load_config
    from ragtune.eval import compare_runs, evaluate, read_records
    from ragtune.eval.summary import value
    from ragtune.train import train_adapter

    work = args.out / "adapters"
    shutil.rmtree(work / "registry", ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    answerable = _common.read_jsonl(data / "questions.jsonl")
    unanswerable = _common.read_jsonl(data / "unanswerable.jsonl")
    split: dict[str, dict[str, list[dict[str, Any]]]] = {"train": {}, "held": {}}
    for name, rows in (("answerable", answerable), ("unanswerable", unanswerable)):
        for part in split.values():
            part[name] = []
        for row in rows:
            part_name = "held" if _held_back(row["title"], args.seed) else "train"
            split[part_name][name].append(row)
    files = {
        f"{part}_{name}": _write(work / f"{part}_{name}.jsonl", rows)
        for part, groups in split.items()
        for name, rows in groups.items()
    }
    titles = {part: len({r["title"] for r in g["answerable"]}) for part, g in split.items()}
    print(f"articles: {titles['train']} train, {titles['held']} held back")

    base_config = load_config(args.config)
    index = args.out / "indexes" / "squad-passages"
    _common.ensure_index(
        [data / "passages.jsonl"],
        index,
        embedder=base_config.embedder.build(),
        settings=base_config.build_settings(),
        rebuild=False,
    )
    raw = base_config.model_dump(mode="json")
    raw["generator"]["max_new_tokens"] = args.max_new_tokens
    raw["adapters"]["root"] = str(work / "registry")
    raw["retriever"]["index"] = str(index)

    trained: dict[str, dict[str, Any]] = {}
    for kind in [k for k in args.kinds.split(",") if k]:
        train_cfg = yaml.safe_load((_common.ROOT / "configs" / f"train-{kind}.yaml").read_text())
        run_raw = json.loads(json.dumps(raw))
        run_raw["train"] = train_cfg["train"]
        run_raw["train"]["loop"]["max_steps"] = args.steps
        run_raw["train"]["loop"]["eval_every"] = max(1, args.steps // 2)
        run_raw["train"]["loop"]["checkpoint_every"] = max(1, args.steps // 2)
        run_raw["train"]["data"]["max_questions"] = args.train_questions
        for section, key, override in (
            ("loop", "batch_size", args.batch_size),
            ("loop", "grad_accum", args.grad_accum),
            ("data", "passages", args.passages),
        ):
            if override is not None:
                run_raw["train"][section][key] = override
        started = time.perf_counter()
        result = train_adapter(
            run_raw,
            files["train_answerable"],
            tenant="bench",
            name=kind,
            unanswerable=files["train_unanswerable"],
            promote=True,
            on_data=functools.partial(_print_examples, kind),
        )
        card = result.registered.card
        trained[kind] = {
            "ref": card.ref,
            "trainable_parameters": card.trainable_parameters,
            "seconds": round(time.perf_counter() - started, 1),
            "train_seconds": card.metrics["train_seconds"],
            "tokens_per_second": card.metrics["tokens_per_second"],
            "steps": card.metrics["steps"],
            "validation_loss": card.metrics["validation_loss"],
            "device": card.settings["device"],
        }
        print(f"{kind}: {trained[kind]}", flush=True)

    runs: dict[str, Path] = {}
    for name in ["base", *trained]:
        folder = work / "runs" / name
        adapter = "none" if name == "base" else f"bench/{name}"
        started = time.perf_counter()
        evaluate(
            raw,
            files["held_answerable"],
            folder,
            unanswerable=files["held_unanswerable"],
            limit=args.eval,
            seed=args.seed,
            adapter=adapter,
            overwrite=True,
        )
        runs[name] = folder
        print(f"eval {name}: {time.perf_counter() - started:.0f}s", flush=True)

    base_records = read_records(runs["base"])
    table = []
    rows_out: dict[str, Any] = {}
    for name, folder in runs.items():
        summary = json.loads((folder / "summary.json").read_text())
        comparison = compare_runs(base_records, read_records(folder), seed=args.seed)
        f1_delta = next(d for d in comparison.metrics if d.name == "answer.f1").delta
        info = trained.get(name, {})
        row = {
            "em": value(summary, "answer.em"),
            "f1": value(summary, "answer.f1"),
            "f1_delta": None if name == "base" or f1_delta is None else round(f1_delta.value, 4),
            "f1_delta_ci95": None
            if name == "base" or f1_delta is None
            else [round(f1_delta.low, 4), round(f1_delta.high, 4)],
            "contains": value(summary, "answer.contains"),
            "citation_precision": value(summary, "citations.precision"),
            "citation_recall": value(summary, "citations.recall"),
            "abstain_unanswerable": value(summary, "abstention.on_unanswerable"),
            "abstain_answerable": value(summary, "abstention.on_answerable"),
            "latency_p50_ms": summary["latency_ms"]["p50"],
            **info,
        }
        rows_out[name] = row
        goal = GOALS.get(name)
        table.append(
            [
                name,
                row["em"],
                row["f1"],
                "-"
                if row["f1_delta"] is None
                else f"{row['f1_delta']:+.3f} [{row['f1_delta_ci95'][0]:+.3f}, {row['f1_delta_ci95'][1]:+.3f}]",
                "-"
                if goal is None
                else f"+{goal:.2f} {'met' if (row['f1_delta'] or 0) >= goal else 'missed'}",
                row["citation_precision"] if row["citation_precision"] is not None else "-",
                row["citation_recall"] if row["citation_recall"] is not None else "-",
                row["abstain_unanswerable"],
                row["abstain_answerable"],
                info.get("trainable_parameters", "-"),
                info.get("train_seconds", "-"),
                info.get("tokens_per_second", "-"),
            ]
        )
    results = {
        "figure": "adapters",
        "machine": _common.machine_info(),
        "settings": vars(args)
        | {"data": str(args.data), "out": str(args.out), "config": str(args.config)},
        "articles": titles,
        "rows": rows_out,
    }
    path = _common.write_results(args.out, "adapters", results)
    print(
        f"\n### Adapters ({args.steps} steps each; {args.eval} + {args.eval} held-back questions)\n"
    )
    print(
        _common.markdown_table(
            [
                "run",
                "EM",
                "F1",
                "F1 vs base [95% CI]",
                "goal",
                "citation P",
                "citation R",
                "abstain (unanswerable)",
                "abstain (answerable)",
                "trainable params",
                "train s",
                "tokens/s",
            ],
            table,
        )
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
