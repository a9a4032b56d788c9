"""``ragtune synth`` as a function: a tenant's chunks in, training questions out.

1. Open the index and read the tenant's chunks only (an index of other tenants only is refused,
   as ``ragtune train`` refuses it).
2. Open the output (:mod:`ragtune.synth.output`): a finished chunk is skipped, so the same call
   after an interruption continues where it stopped.
3. Load the base model once: the ``local`` teacher writes with it, and the answer filter asks
   it (with the grounding adapter merged) over the retriever's passages for each question.
4. Chunk by chunk (:func:`~ragtune.synth.pipeline.synthesize_chunk`): write the rows, then the
   chunk's state line; the report (``<out>.report.json``) is written when the run ends, however
   it ends.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.errors import SynthError, TeacherError
from ragtune.settings import pick
from ragtune.synth.cloze import ClozeTeacher
from ragtune.synth.endpoint import EndpointTeacher, check_endpoint
from ragtune.synth.filters import NearDuplicates
from ragtune.synth.output import ChunkRecord, SynthFiles, SynthOutput
from ragtune.synth.pipeline import SourceChunk, synthesize_chunk
from ragtune.synth.report import SynthReport, build_report, write_report
from ragtune.synth.settings import EndpointSettings, SynthSettings
from ragtune.synth.teacher import Teacher
from ragtune.types import Passage, check_name

if TYPE_CHECKING:
    from ragtune.config import RagtuneConfig
    from ragtune.generate.generator import HFGenerator
    from ragtune.generate.models import LoadedModel
    from ragtune.index import IndexStore
    from ragtune.index.location import IndexLocation
    from ragtune.index.pgstore import PgIndexStore

__all__ = ["SynthResult", "synthesize"]


@dataclass(frozen=True)
class SynthResult:
    files: SynthFiles
    report: SynthReport
    chunks_now: int
    """Chunks finished by this call (the others were finished before, or are past ``limit``)."""


def synthesize(
    config: str | Path | Mapping[str, Any] | RagtuneConfig,
    *,
    index: str | Path,
    tenant: str,
    out: str | Path,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> SynthResult:
    """Generate training questions from ``tenant``'s chunks of ``index`` into ``out`` (and the
    files beside it, see :mod:`ragtune.synth.output`), with ``config.synth``'s settings.

    ``limit`` takes the tenant's first ``limit`` chunks only (None: all); a later call with a
    higher limit continues. ``progress(done, total)`` follows the chunks. ``environ`` holds
    the endpoint's key variable (``synth.endpoint.api_key_env``).

    Raises :class:`~ragtune.errors.SynthError` for an index without chunks of the tenant, an
    output of other settings, a forbidden endpoint; :class:`~ragtune.errors.TeacherError` when
    the teacher fails (the chunks finished before stay written).
    """
    from ragtune.config import RagtuneConfig, load_config
    from ragtune.index.location import open_index

    cfg = config if isinstance(config, RagtuneConfig) else load_config(config)
    settings = pick(SynthSettings, cfg.synth)
    endpoint = pick(EndpointSettings, cfg.synth.endpoint)
    if settings.teacher == "openai":  # refuse a forbidden endpoint before any work
        check_endpoint(endpoint, allow_external=settings.allow_external)
    if limit is not None and limit < 1:
        raise SynthError(f"--limit must be at least 1, not {limit}")
    files = SynthFiles.for_output(Path(out))  # an --out that cannot be a file, refused first
    try:
        tenant = check_name(tenant, "tenant")
    except ValueError as exc:
        raise SynthError(str(exc)) from None
    location = cfg.index.location(index)
    with open_index(location) as store:
        key = _tenant_key(store.tenants(), tenant, index)
        chunks = store.tenant_passages(key)
        if not chunks:
            raise SynthError(
                f"{location} holds no chunks: index the tenant's documents first (ragtune "
                f"index build DOCS --out {index} --tenant {tenant})"
            )
        output = SynthOutput.open(files, _header(cfg, settings, endpoint, tenant))
        chosen = chunks[:limit] if limit is not None else chunks
        todo = [c for c in chosen if c.chunk_id not in output.done]
        finished = len(chosen) - len(todo)
        if progress is not None:
            progress(finished, len(chosen))
        now = 0
        try:
            if todo:
                steps = _Steps(finished, len(chosen), progress)
                now = _run(
                    cfg, settings, endpoint, (location, store), key, todo, output, environ, steps
                )
        except TeacherError as exc:
            said = str(exc).rstrip()
            stop = "" if said.endswith((".", "?", "!")) else "."
            raise TeacherError(
                f"{said}{stop} The {len(output.records)} chunks finished so far are kept in "
                f"{files.questions}; the same command continues from there"
            ) from exc
        finally:
            report = build_report(
                output.records,
                tenant=tenant,
                teacher=str(output.header.get("teacher")),
                chunks=len(chunks),
            )
            write_report(
                files.report,
                report,
                index=str(location),
                files={"questions": str(files.questions), "unanswerable": str(files.unanswerable)},
                settings=asdict(settings),
            )
    return SynthResult(files, report, now)


def _run(
    cfg: RagtuneConfig,
    settings: SynthSettings,
    endpoint: EndpointSettings,
    index: tuple[IndexLocation, IndexStore | PgIndexStore],
    tenant: str | None,
    todo: Sequence[Passage],
    output: SynthOutput,
    environ: Mapping[str, str],
    steps: _Steps,
) -> int:
    """Synthesize ``todo``'s chunks into ``output``; the number finished."""
    from ragtune.eval.records import passage_key
    from ragtune.retrieve import LexicalRetriever

    base = cfg.load_base_model()
    generator = cfg.generator_on(base)
    teacher = _teacher(cfg, settings, endpoint, base, generator, environ)
    fallback = ClozeTeacher() if settings.fallback == "cloze" and teacher.name != "cloze" else None
    location, store = index
    retriever = cfg.retriever.build(store, cfg.embedder_for_index(location))
    depth = max(settings.round_trip_k, cfg.generator.max_passages)
    words = LexicalRetriever(store)

    def search(question: str) -> list[Passage]:
        return retriever.retrieve(question, depth, tenant=tenant)

    def absent(word: str) -> bool:
        pattern = re.compile(rf"\b{re.escape(word)}\b", re.IGNORECASE)
        hits = words.retrieve(word, 5, tenant=tenant)
        return not any(pattern.search(f"{p.title}\n{p.text}") for p in hits)

    answer = _answerer(cfg, settings, generator)
    duplicates = NearDuplicates(
        settings.max_similarity, [r["question"] for r in output.questions()]
    )
    for chunk in todo:
        started = time.perf_counter()
        source = SourceChunk(chunk.chunk_id, chunk.title, chunk.text, passage_key(chunk))
        outcome = synthesize_chunk(
            source,
            settings,
            teacher=teacher,
            fallback=fallback,
            search=search,
            answer=answer,
            absent=absent,
            duplicates=duplicates,
        )
        record = ChunkRecord(
            chunk.chunk_id,
            outcome.counts,
            outcome.kinds,
            outcome.candidate_kinds,
            time.perf_counter() - started,
        )
        output.append(record, outcome.rows, outcome.unanswerable)
        steps.advance()
    return len(todo)


@dataclass
class _Steps:
    """Reports progress over the chosen chunks, the finished ones included."""

    done: int
    total: int
    progress: Callable[[int, int], None] | None

    def advance(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


def _teacher(
    cfg: RagtuneConfig,
    settings: SynthSettings,
    endpoint: EndpointSettings,
    base: LoadedModel,
    generator: HFGenerator,
    environ: Mapping[str, str],
) -> Teacher:
    from ragtune.generate.decoding import DecodeSettings
    from ragtune.synth.local import LocalTeacher

    if settings.teacher == "cloze":
        return ClozeTeacher()
    if settings.teacher == "openai":
        return EndpointTeacher(
            endpoint,
            allow_external=settings.allow_external,
            key=environ.get(endpoint.api_key_env) or None,
            max_tokens=settings.question_tokens,
        )
    decoding = pick(DecodeSettings, cfg.generator, max_new_tokens=settings.question_tokens)
    if base.grounded:
        # The grounding adapter answers from passages or abstains: asked to write a question it
        # replies "I don't know" (six probes of six on the embedded model). The bare base writes.
        from ragtune.generate import load_base_model
        from ragtune.generate.models import ModelSettings

        bare = asdict(pick(ModelSettings, cfg.generator)) | {"grounding": "none"}
        base = load_base_model(**bare)
        generator = cfg.generator_on(base)
    return LocalTeacher(generator, base.tokenizer, model=base.name, decoding=decoding)


def _answerer(
    cfg: RagtuneConfig, settings: SynthSettings, generator: HFGenerator
) -> Callable[[Sequence[tuple[str, Sequence[Passage]]]], list[str]]:
    """The grounded model's answers to questions over their passages, batched."""
    from ragtune.generate.decoding import DecodeSettings
    from ragtune.generate.protocol import GenerationRequest
    from ragtune.types import NO_ADAPTER

    decoding = pick(DecodeSettings, cfg.generator, max_new_tokens=settings.answer_tokens)

    def answer(items: Sequence[tuple[str, Sequence[Passage]]]) -> list[str]:
        asks = [GenerationRequest(q, passages, NO_ADAPTER, decoding) for q, passages in items]
        return [g.text for g in generator.generate_many(asks)]

    return answer


def _header(
    cfg: RagtuneConfig, settings: SynthSettings, endpoint: EndpointSettings, tenant: str
) -> dict[str, Any]:
    """The output's header: who writes, for whom, and a fingerprint of everything that shapes
    the questions (a run with another fingerprint is refused). The endpoint's URL is not part
    of it: a run stopped by a wrong URL continues once the URL is fixed."""
    models = {"openai": endpoint.model, "local": cfg.generator.model, "cloze": "rules"}
    teacher = f"{settings.teacher}:{models[settings.teacher]}"
    idle = {"allow_external"} | ({"fallback"} if settings.teacher == "cloze" else set())
    shaping = {
        "synth": {k: v for k, v in asdict(settings).items() if k not in idle},
        "teacher": teacher,
        "tenant": tenant,
        "generator": [cfg.generator.model, cfg.generator.grounding],
        "retriever": cfg.retriever.type,
    }
    text = json.dumps(shaping, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode())
    return {
        "fingerprint": digest.hexdigest()[:16],
        "teacher": teacher,
        "tenant": tenant,
        "settings": json.loads(text),  # to name what changed when a rerun differs
    }


def _tenant_key(tenants: Mapping[str, int], tenant: str, index: str | Path) -> str | None:
    """The tenant to read the index as: ``tenant`` when it has chunks there, None for an index
    without tenants; an index of other tenants only is refused (never read another's chunks)."""
    if tenant in tenants:
        return tenant
    if set(tenants) <= {"(none)"}:
        return None
    raise SynthError(
        f"{index} holds chunks of the tenants {', '.join(sorted(set(tenants) - {'(none)'}))} "
        f"but none of {tenant!r}; index the tenant's documents (ragtune index add DOCS "
        f"--index {index} --tenant {tenant}) or name one of those tenants"
    )
