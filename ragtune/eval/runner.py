"""Run an evaluation into a folder, resumably.

A run folder holds ``run.json`` (what is being run: the question files and their hashes, the
sample, the seed, the config's hash, and the chosen question ids in order), ``records.jsonl``
(one line per answered question, appended and flushed as each is done) and, once every question
is answered, ``summary.json``. Running the same command again continues after the last record;
a run folder made with other settings is refused rather than mixed. A line cut short by a kill
is dropped on resume; a damaged line elsewhere stops the run with its line number.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.errors import EvalError, RequestError
from ragtune.eval.questions import EvalQuestion
from ragtune.eval.records import record_for
from ragtune.eval.summary import summarise
from ragtune.types import TENANT_DEFAULT, AdapterRequest, TenantDefault

if TYPE_CHECKING:
    from ragtune.assistant import Assistant
    from ragtune.config import RagtuneConfig

__all__ = [
    "RUN_FILE",
    "RunResult",
    "evaluate",
    "file_sha256",
    "read_records",
    "run_eval",
    "versions",
]

RUN_FILE = "run.json"
RECORDS = "records.jsonl"
SUMMARY = "summary.json"
RANKING_DEPTH = 10


@dataclass(frozen=True)
class RunResult:
    folder: Path
    answered: int
    """Questions answered by this call (the rest were in the folder already)."""
    total: int
    summary: dict[str, Any]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def versions() -> dict[str, str]:
    """Versions of what produced the numbers."""
    import importlib.metadata as md

    found = {"python": platform.python_version(), "platform": platform.platform()}
    for package in (
        "ragtune",
        "torch",
        "transformers",
        "peft",
        "sentence-transformers",
        "faiss-cpu",
    ):
        try:
            found[package] = md.version(package)
        except md.PackageNotFoundError:
            continue
    return found


def read_records(folder: Path, *, repair: bool = False) -> list[dict[str, Any]]:
    """The records of a run folder. With ``repair`` a last line cut short is removed from the
    file (a run killed mid-write); otherwise any bad line is an error."""
    path = folder / RECORDS
    if not path.is_file():
        if not (folder / RUN_FILE).is_file():
            raise EvalError(
                f"{folder} is not an eval run folder (no {RUN_FILE}); run `ragtune eval` first"
            )
        return []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    records = []
    offset = 0
    for number, line in enumerate(lines, start=1):
        end = offset + len(line) + 1
        if line.strip():
            try:
                records.append(json.loads(line))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                last = all(not rest.strip() for rest in lines[number:])
                if repair and last:
                    with open(path, "r+b") as handle:
                        handle.truncate(offset)
                    break
                raise EvalError(
                    f"{path}:{number} is damaged ({exc}); remove that line and rerun to redo it"
                ) from exc
        offset = end
    return records


def _prepare(folder: Path, spec: Mapping[str, Any], ids: Sequence[str], overwrite: bool) -> None:
    run_file = folder / RUN_FILE
    wanted = {"format": "ragtune-eval-run", "version": 1, "spec": dict(spec), "ids": list(ids)}
    if run_file.is_file() and not overwrite:
        try:
            found = json.loads(run_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise EvalError(f"{run_file} cannot be read ({exc}); use another --out") from exc
        if found.get("spec") != wanted["spec"] or found.get("ids") != wanted["ids"]:
            old = found.get("spec", {})
            differs = sorted(k for k in set(old) | set(spec) if old.get(k) != spec.get(k))
            raise EvalError(
                f"{folder} holds a run with other settings (differing: "
                f"{', '.join(differs) or 'the questions'}); use another --out, or --overwrite "
                "to start this one again"
            )
        return
    if folder.exists() and not folder.is_dir():
        raise EvalError(f"{folder} is a file; give a folder for the run")
    folder.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for name in (RECORDS, SUMMARY, RUN_FILE):
            (folder / name).unlink(missing_ok=True)
    elif any(folder.iterdir()):
        raise EvalError(f"{folder} is not empty and holds no eval run; give an empty or new --out")
    tmp = run_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(wanted, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, run_file)


def run_eval(
    assistant: Assistant,
    questions: Sequence[EvalQuestion],
    folder: Path,
    *,
    spec: Mapping[str, Any],
    tenant: str | None = None,
    adapter: AdapterRequest = TENANT_DEFAULT,
    batch_size: int = 1,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    seed: int = 0,
    config: Mapping[str, Any] | None = None,
) -> RunResult:
    """Answer ``questions`` into ``folder`` (continuing a run cut short) and write the summary.

    ``spec`` describes the run for ``run.json``: a rerun must describe it the same way.
    ``config`` (the config as a mapping) is copied into the summary.
    ``progress(done, total)`` is called after each question.
    """
    ids = [q.id for q in questions]
    _prepare(folder, spec, ids, overwrite)
    done = {r["id"] for r in read_records(folder, repair=True)}
    todo = [q for q in questions if q.id not in done]
    total = len(questions)
    if progress is not None:
        progress(len(done), total)
    depth = max(RANKING_DEPTH, assistant.policy.top_k)
    answered = 0
    with open(folder / RECORDS, "a", encoding="utf-8") as handle:
        for start in range(0, len(todo), max(1, batch_size)):
            batch = todo[start : start + max(1, batch_size)]
            for record in _answer(assistant, batch, tenant, adapter, depth):
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                handle.flush()
                answered += 1
                if progress is not None:
                    progress(len(done) + answered, total)
    records = read_records(folder)
    order = {qid: i for i, qid in enumerate(ids)}
    records.sort(key=lambda r: order.get(r["id"], len(order)))
    summary = summarise(
        records,
        config=config,
        versions=versions(),
        run=dict(spec),
        seed=seed,
    )
    tmp = folder / (SUMMARY + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, folder / SUMMARY)
    return RunResult(folder, answered, total, summary)


def _answer(
    assistant: Assistant,
    batch: Sequence[EvalQuestion],
    tenant: str | None,
    adapter: AdapterRequest,
    depth: int,
) -> list[dict[str, Any]]:
    rankings = [assistant.retriever.retrieve(q.question, depth, tenant=tenant) for q in batch]
    try:
        answers = assistant.ask_many([q.question for q in batch], tenant=tenant, adapter=adapter)
    except RequestError as exc:
        if len(batch) == 1:
            return [_refused(batch[0], rankings[0], str(exc))]
        return [record for q in batch for record in _answer(assistant, [q], tenant, adapter, depth)]
    return [
        record_for(q, answer, ranking)
        for q, answer, ranking in zip(batch, answers, rankings, strict=True)
    ]


def _refused(question: EvalQuestion, ranking: Sequence[Any], why: str) -> dict[str, Any]:
    """The record of a question the assistant refused to take (too long, for instance)."""
    from ragtune.types import Answer, StageTimings

    refusal = Answer(
        question=question.question,
        text="",
        sentences=(),
        grounded=False,
        abstained=True,
        abstain_reason="refused",
        passages=(),
        cited=(),
        timings=StageTimings(),
        flags=(why,),
    )
    return record_for(question, refusal, ranking)


def evaluate(
    config: str | Path | Mapping[str, Any] | RagtuneConfig,
    questions: str | Path,
    out: str | Path,
    *,
    unanswerable: str | Path | None = None,
    limit: int | None = None,
    seed: int = 0,
    tenant: str | None = None,
    adapter: AdapterRequest = TENANT_DEFAULT,
    index: str | Path | None = None,
    batch_size: int = 1,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """``ragtune eval`` as a function: sample the questions, build the Assistant from
    ``config``, answer into ``out`` (continuing a run cut short) and summarise.

    ``limit`` caps the questions taken from each file (drawn with ``seed``).
    """
    from ragtune.assistant import Assistant
    from ragtune.config import RagtuneConfig, load_config
    from ragtune.eval.questions import read_questions, select_questions

    if limit is not None and limit < 1:
        raise EvalError(f"--limit must be at least 1, not {limit}")
    if batch_size < 1:
        raise EvalError(f"--batch-size must be at least 1, not {batch_size}")
    cfg = config if isinstance(config, RagtuneConfig) else load_config(config)
    files = [Path(questions)] + ([Path(unanswerable)] if unanswerable is not None else [])
    groups = [read_questions(files[0])]
    if unanswerable is not None:
        groups.append(read_questions(files[1], answerable=False))
    chosen = select_questions(groups, limit=limit, seed=seed)
    dumped = cfg.model_dump(mode="json")
    spec = {
        "config_sha256": hashlib.sha256(json.dumps(dumped, sort_keys=True).encode()).hexdigest(),
        "questions_sha256": [file_sha256(f) for f in files],
        "limit": limit,
        "seed": seed,
        "tenant": tenant,
        "adapter": None if isinstance(adapter, TenantDefault) else str(adapter),
        "index": str(index) if index is not None else None,
    }
    with Assistant.from_config(cfg, index=Path(index) if index is not None else None) as assistant:
        return run_eval(
            assistant,
            chosen,
            Path(out),
            spec=spec,
            tenant=tenant,
            adapter=adapter,
            batch_size=batch_size,
            overwrite=overwrite,
            progress=progress,
            seed=seed,
            config=dumped,
        )
