"""Domain adapters from documents alone (issue 17): ``ragtune synth`` on squad-dev articles the
shipped grounding adapter never saw, a tenant LoRA trained on what it wrote, and ``ragtune eval``
on those articles' real questions against the grounding adapter alone.

1. Articles: ``--articles`` of the ``held`` part of ``benchmarks/_common.article_part`` (never
   trained on nor tuned on by the grounding work), in a seeded order. Their passages make the
   tenant's index (tenant ``bench``); nothing else is in it.
2. ``ragtune synth`` writes questions and unanswerable questions from those passages only; the
   articles' real questions are never read until the evaluation. The adapters train on the
   output of ``--teacher`` (default ``cloze``: the embedded model writes questions about the
   topic rather than the answer, and few survive the filters; see ``ragtune/synth/cloze.py``);
   the ``local`` teacher (the embedded model) also runs on the first ``--local-chunks`` chunks,
   for its figures. Each report gives: candidates, kept after each filter, questions per chunk,
   answer kinds, seconds per kept question on this machine.
3. A LoRA adapter per objective (``qa``, ``lm``, ``mixed``; ``configs/train-lora.yaml`` with
   ``--steps`` optimiser steps of ``--batch-size`` examples) is trained on the synth output and
   the index, through ``ragtune.train.train_adapter``.
4. ``ragtune eval`` answers the same seeded sample of the articles' real questions (``--eval``
   answerable and as many unanswerable, from ``unanswerable.jsonl``) with the grounding adapter
   alone and with each tenant adapter; each adapter is compared with the grounding adapter on
   the same questions (paired bootstrap, 95%). Goals: F1 gain >= +0.05, abstention on
   unanswerable not lower than the grounding adapter's.

Every stage is cached under ``benchmarks/out/synth/`` (the index, the synth output, which
resumes, the adapters, the eval runs, which continue); rerunning the command picks up where it
stopped. On 2 CPU cores the defaults are meant to take some 35-40 minutes (an estimate from
short probes, not a measurement: about 5 s per chunk of synth, some 8 minutes for the 75
passages of the 3 default articles and 2 for the local teacher's chunks; 6 minutes of training
per objective; 3 per eval run).

Rerun (from the repository root)::

    .venv/bin/python benchmarks/synth.py --data ../shared/data/squad-dev --articles 3 --steps 40 --eval 60

Results go to ``benchmarks/out/synth.json``; a markdown table is printed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

if TYPE_CHECKING:
    from ragtune.config import RagtuneConfig
    from ragtune.generate import AdapterRegistry

TENANT = "bench"
OBJECTIVES = ("qa", "lm", "mixed")
GOAL_F1_GAIN = 0.05


def main(argv: Sequence[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--articles", type=int, default=3, help="held-back articles to use")
    p.add_argument("--limit", type=int, help="synth only the first N chunks (default: all)")
    p.add_argument("--per-chunk", type=int, default=3, help="synth questions per chunk at most")
    p.add_argument("--steps", type=int, default=40, help="optimiser steps per adapter")
    p.add_argument("--batch-size", type=int, default=4, help="examples per step (no accumulation)")
    p.add_argument(
        "--learning-rate", type=float, default=None, help="default: configs/train-lora.yaml's"
    )
    p.add_argument(
        "--gold-share", type=float, default=None, help="train.data.gold_share (default: config's)"
    )
    p.add_argument(
        "--unanswerable-share",
        type=float,
        default=None,
        help="train.data.unanswerable_share (default: config's)",
    )
    p.add_argument(
        "--min-answer-f1", type=float, default=None, help="synth.min_answer_f1 (default: config's)"
    )
    p.add_argument("--eval", type=int, default=60, help="real questions from each file")
    p.add_argument("--teacher", default="cloze", help="the synth teacher the adapters train on")
    p.add_argument(
        "--local-chunks", type=int, default=16, help="chunks the local teacher runs on (0: none)"
    )
    p.add_argument("--objectives", default=",".join(OBJECTIVES))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    data = _common.require_data(
        args.data, ["passages.jsonl", "questions.jsonl", "unanswerable.jsonl"]
    )
    from ragtune import load_config

    work = args.out / "synth"
    work.mkdir(parents=True, exist_ok=True)
    titles = _articles(data, args.articles, args.seed)
    print(f"articles ({len(titles)}): {', '.join(titles)}", flush=True)
    config = load_config(args.config)
    raw = config.model_dump(mode="json")
    raw["adapters"]["root"] = str(work / "registry")
    raw["synth"]["per_chunk"] = args.per_chunk
    index = _index(data, titles, work, config)
    raw["retriever"]["index"] = str(index)

    synth = _synth(raw, index, work, args.teacher, args.limit, args)
    local = (
        _synth(raw, index, work, "local", args.local_chunks, args)
        if args.local_chunks and args.teacher != "local"
        else None
    )
    if synth["report"]["kept"] == 0:
        print("synth kept no question: the qa and mixed objectives cannot train", flush=True)
        args.objectives = ",".join(o for o in args.objectives.split(",") if o == "lm")
    trained = {
        objective: _train(raw, index, work, synth, objective, args)
        for objective in [o for o in args.objectives.split(",") if o]
    }
    questions = _real_questions(data, titles, work)
    runs = {"grounding": _evaluate(raw, index, work, questions, "none", "grounding", args)}
    for objective, info in trained.items():
        runs[objective] = _evaluate(raw, index, work, questions, info["ref"], objective, args)
    rows = _compare(runs, trained, args.seed)
    results = {
        "figure": "synth",
        "machine": _common.machine_info(),
        "settings": vars(args)
        | {"data": str(args.data), "out": str(args.out), "config": str(args.config)},
        "articles": titles,
        "index_chunks": synth["report"]["chunks"],
        "synth": synth["report"],
        "synth_wall_seconds": synth["wall_seconds"],
        "synth_local_teacher": None if local is None else local["report"],
        "eval_questions": {k: str(v) for k, v in questions.items()},
        "rows": rows,
        "goals": {
            "f1_gain": f">= +{GOAL_F1_GAIN}",
            "abstention_on_unanswerable": "not lower than the grounding adapter's",
        },
    }
    path = _common.write_results(args.out, "synth", results)
    print(_synth_table(synth["report"], None if local is None else local["report"]))
    print()
    print(_table(rows))
    print(f"results: {path}")
    return 0


# ---- the data ---------------------------------------------------------------------------------


def _articles(data: Path, count: int, seed: int) -> list[str]:
    """``count`` held-back article titles, in an order seeded by ``seed``."""
    titles = sorted({r["title"] for r in _common.read_jsonl(data / "passages.jsonl")})
    held = [t for t in titles if _common.article_part(t, seed) == "held"]

    def draw(title: str) -> str:
        return hashlib.sha256(f"synth:{seed}:{title}".encode()).hexdigest()

    chosen = sorted(held, key=draw)[:count]
    if not chosen:
        print("skipped: no held-back article in the data")
        sys.exit(0)
    return chosen


def _index(data: Path, titles: Sequence[str], work: Path, config: RagtuneConfig) -> Path:
    """The tenant's index of the articles' passages (rebuilt only when they change)."""
    from ragtune.indexing import build_index

    chosen = set(titles)
    rows = [r for r in _common.read_jsonl(data / "passages.jsonl") if r["title"] in chosen]
    docs = work / "passages.jsonl"
    text = "".join(json.dumps({k: r[k] for k in ("id", "title", "text")}) + "\n" for r in rows)
    index = work / "index"
    stamp = work / "index.sources.json"
    key = {"passages": hashlib.sha256(text.encode()).hexdigest(), "tenant": TENANT}
    key["settings"] = json.loads(json.dumps(asdict(config.build_settings()), default=str))
    fresh = (index / "manifest.json").is_file() and stamp.is_file()
    if fresh and json.loads(stamp.read_text()) == key:
        return index
    docs.write_text(text, encoding="utf-8")
    stamp.unlink(missing_ok=True)
    started = time.perf_counter()
    build_index(
        [docs],
        index,
        embedder=config.embedder.build(),
        settings=config.build_settings(),
        tenant=TENANT,
    )
    stamp.write_text(json.dumps(key))
    print(f"index: {len(rows)} passages in {time.perf_counter() - started:.0f}s", flush=True)
    return index


def _real_questions(data: Path, titles: Sequence[str], work: Path) -> dict[str, Path]:
    """The articles' own questions (answerable, unanswerable), for the evaluation only."""
    chosen = set(titles)
    files = {}
    for name, source in (("answerable", "questions.jsonl"), ("unanswerable", "unanswerable.jsonl")):
        rows = [r for r in _common.read_jsonl(data / source) if r["title"] in chosen]
        path = work / f"real_{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        files[name] = path
    return files


# ---- synth, train, eval -----------------------------------------------------------------------


def _synth(
    raw: dict[str, Any],
    index: Path,
    work: Path,
    teacher: str,
    limit: int | None,
    args: argparse.Namespace,
) -> dict[str, Any]:
    from ragtune.synth import synthesize

    run_raw = json.loads(json.dumps(raw))
    run_raw["synth"]["teacher"] = teacher
    tag = ""
    if args.min_answer_f1 is not None:
        run_raw["synth"]["min_answer_f1"] = args.min_answer_f1
        tag = f"-f{args.min_answer_f1:g}"
    out = work / f"synth-{teacher}-pc{args.per_chunk}{tag}.jsonl"
    _common.wait_for_quiet(args.max_wait, label=f"synth {teacher}")
    started = time.perf_counter()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] > 30 or done == total:
            last[0] = now
            print(f"  synth {teacher}: {done}/{total} chunks, {now - started:.0f}s", flush=True)

    result = synthesize(
        run_raw, index=index, tenant=TENANT, out=out, limit=limit, progress=progress
    )
    report = result.report.to_dict()
    print(
        f"synth {teacher}: {report['kept']} questions, {report['unanswerable']} unanswerable from "
        f"{report['chunks_done']} chunks; {report['seconds_per_kept_question']} s per kept question",
        flush=True,
    )
    return {
        "questions": result.files.questions,
        "unanswerable": result.files.unanswerable,
        "report": report,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def _train(
    raw: dict[str, Any],
    index: Path,
    work: Path,
    synth: dict[str, Any],
    objective: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """The tenant adapter for ``objective`` (reused when the same one was trained before)."""
    import yaml

    from ragtune.generate import AdapterRegistry
    from ragtune.train import train_adapter

    recipe = yaml.safe_load((_common.ROOT / "configs" / "train-lora.yaml").read_text())["train"]
    recipe["data"]["objective"] = objective
    if args.gold_share is not None:
        recipe["data"]["gold_share"] = args.gold_share
    if args.unanswerable_share is not None:
        recipe["data"]["unanswerable_share"] = args.unanswerable_share
    loop = recipe["loop"]
    if args.learning_rate is not None:
        loop["learning_rate"] = args.learning_rate
    loop.update(
        max_steps=args.steps,
        batch_size=args.batch_size,
        grad_accum=1,
        eval_every=max(1, args.steps // 2),
        checkpoint_every=max(1, args.steps // 4),
    )
    run_raw = json.loads(json.dumps(raw)) | {"train": recipe}
    uses_questions = objective != "lm"
    key = {
        "recipe": recipe,
        "questions": _sha256(synth["questions"]) if uses_questions else None,
        "unanswerable": _sha256(synth["unanswerable"]) if uses_questions else None,
        "index": json.loads((index / "manifest.json").read_text())["generation"],
    }
    stamp = work / f"trained-{objective}.json"
    registry = AdapterRegistry(Path(raw["adapters"]["root"]))
    if stamp.is_file():
        saved = json.loads(stamp.read_text())
        if saved["key"] == key and _registered(registry, saved["ref"]):
            print(f"{objective}: reusing {saved['ref']}", flush=True)
            return dict(saved["info"], ref=saved["ref"])
    _common.wait_for_quiet(args.max_wait, label=f"train {objective}")
    started = time.perf_counter()
    result = train_adapter(
        run_raw,
        synth["questions"] if uses_questions else None,
        tenant=TENANT,
        name=objective,
        index=index,
        unanswerable=synth["unanswerable"] if uses_questions else None,
        promote=True,
        on_data=lambda counts: print(f"{objective}: examples {dict(counts)}", flush=True),
    )
    card = result.registered.card
    ref = f"{TENANT}/{objective}@v{card.version}"
    info = {
        "examples": dict(result.examples),
        "steps": card.metrics["steps"],
        "train_seconds": card.metrics["train_seconds"],
        "tokens_per_second": card.metrics["tokens_per_second"],
        "validation_loss": card.metrics["validation_loss"],
        "trainable_parameters": card.trainable_parameters,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    stamp.write_text(json.dumps({"key": key, "ref": ref, "info": info}, default=str))
    print(f"{objective}: trained {ref} {info}", flush=True)
    return dict(info, ref=ref)


def _registered(registry: AdapterRegistry, ref: str) -> bool:
    from ragtune.errors import AdapterError

    try:
        registry.resolve(ref)
    except AdapterError:
        return False
    return True


def _evaluate(
    raw: dict[str, Any],
    index: Path,
    work: Path,
    questions: dict[str, Path],
    adapter: str,
    name: str,
    args: argparse.Namespace,
) -> Path:
    from ragtune.eval import evaluate

    # The config goes into the name: a rerun with other settings (a learning rate, say) gets a
    # run of its own instead of a refusal, and the same settings resume theirs.
    settings = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()
    label = adapter.replace("/", "_").replace("@", "-")
    folder = work / "runs" / f"{name}-{label}-{settings[:8]}"
    _common.wait_for_quiet(args.max_wait, label=f"eval {name}")
    started = time.perf_counter()
    evaluate(
        raw,
        questions["answerable"],
        folder,
        unanswerable=questions["unanswerable"],
        limit=args.eval,
        seed=args.seed,
        tenant=TENANT,
        adapter=adapter,
        index=index,
    )
    print(f"eval {name}: {time.perf_counter() - started:.0f}s", flush=True)
    return folder


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- figures ----------------------------------------------------------------------------------


def _compare(runs: dict[str, Path], trained: dict[str, Any], seed: int) -> dict[str, Any]:
    from ragtune.eval import compare_runs, read_records
    from ragtune.eval.summary import value

    base = read_records(runs["grounding"])
    rows: dict[str, Any] = {}
    for name, folder in runs.items():
        summary = json.loads((folder / "summary.json").read_text())
        row: dict[str, Any] = {
            "f1": value(summary, "answer.f1"),
            "em": value(summary, "answer.em"),
            "abstain_unanswerable": value(summary, "abstention.on_unanswerable"),
            "abstain_answerable": value(summary, "abstention.on_answerable"),
            "citation_precision": value(summary, "citations.precision"),
            "latency_p50_ms": summary["latency_ms"]["p50"],
            "n": summary.get("counts", {}).get("answer.f1"),
        }
        if name != "grounding":
            deltas = {
                d.name: d.delta for d in compare_runs(base, read_records(folder), seed=seed).metrics
            }
            for metric, key in (
                ("answer.f1", "f1_delta"),
                ("abstention.on_unanswerable", "abstain_unanswerable_delta"),
            ):
                delta = deltas.get(metric)
                row[key] = None if delta is None else round(delta.value, 4)
                row[f"{key}_ci95"] = (
                    None if delta is None else [round(delta.low, 4), round(delta.high, 4)]
                )
            row["f1_goal_met"] = (row["f1_delta"] or 0.0) >= GOAL_F1_GAIN
            row["abstention_goal_met"] = (row["abstain_unanswerable_delta"] or 0.0) >= 0.0
            row |= {k: v for k, v in trained[name].items() if k != "examples"}
            row["train_examples"] = trained[name]["examples"]
        rows[name] = row
    return rows


def _synth_table(report: dict[str, Any], local: dict[str, Any] | None) -> str:
    """The synth figures, the teacher the adapters trained on first, the local one beside it."""
    reports = [report] + ([local] if local is not None else [])

    def rows_of(r: dict[str, Any]) -> list[Any]:
        return [
            f"{r['chunks_done']} of {r['chunks']}",
            *r["kept_after"].values(),
            *r["dropped"].values(),
            r["unanswerable"],
            json.dumps(r["questions_per_chunk"]),
            json.dumps(r["answer_kinds"]),
            r["seconds_per_kept_question"] if r["seconds_per_kept_question"] is not None else "-",
        ]

    names = [
        "chunks",
        *[f"kept after {stage}" for stage in report["kept_after"]],
        *[f"dropped: {reason}" for reason in report["dropped"]],
        "unanswerable written",
        "questions per chunk",
        "answer kinds (kept)",
        "seconds per kept question",
    ]
    columns = [rows_of(r) for r in reports]
    table = [[name, *(column[i] for column in columns)] for i, name in enumerate(names)]
    return _common.markdown_table(["synth", *(r["teacher"] for r in reports)], table)


def _table(rows: dict[str, Any]) -> str:
    def interval(row: dict[str, Any], key: str) -> str:
        if row.get(key) is None:
            return "-"
        low, high = row[f"{key}_ci95"]
        return f"{row[key]:+.3f} [{low:+.3f}, {high:+.3f}]"

    table = []
    for name, row in rows.items():
        table.append(
            [
                "grounding adapter alone" if name == "grounding" else f"+ tenant LoRA ({name})",
                row["f1"],
                row["em"],
                interval(row, "f1_delta"),
                "-" if name == "grounding" else ("met" if row["f1_goal_met"] else "missed"),
                row["abstain_unanswerable"],
                interval(row, "abstain_unanswerable_delta"),
                "-" if name == "grounding" else ("met" if row["abstention_goal_met"] else "missed"),
                row["abstain_answerable"],
                row.get("train_seconds", "-"),
            ]
        )
    headers = [
        "run",
        "F1",
        "EM",
        "F1 gain [95%]",
        f"gain >= {GOAL_F1_GAIN}",
        "abstain unans.",
        "change [95%]",
        "not lower",
        "abstain ans.",
        "train s",
    ]
    return _common.markdown_table(headers, table)


if __name__ == "__main__":
    sys.exit(main())
