"""One chunk's way from text to training questions: candidates, the teacher's questions, the
filters (:mod:`ragtune.synth.filters`) and the unanswerable variants.

:func:`synthesize_chunk` takes its models as plain callables (the teacher, a retrieval, the
grounded model's answers, an absence check), so a test can run it on fakes and the caller
decides how they batch and which tenant they see.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ragtune.synth.candidates import Candidate, extract_candidates
from ragtune.synth.filters import NearDuplicates, answer_matches, gives_away_answer, round_trip
from ragtune.synth.settings import SynthSettings
from ragtune.synth.teacher import QuestionRequest, Teacher, parse_question
from ragtune.synth.unanswerable import entity_swap
from ragtune.types import Passage

__all__ = ["ChunkOutcome", "SourceChunk", "synthesize_chunk"]

Search = Callable[[str], Sequence[Passage]]
"""``search(question)``: the tenant's top passages for the question, best first (at least
``round_trip_k`` of them when the index has that many)."""
Answer = Callable[[Sequence[tuple[str, Sequence[Passage]]]], list[str]]
"""``answer([(question, passages), ...])``: the grounded model's answer to each."""
Absent = Callable[[str], bool]
"""``absent(word)``: True when no chunk of the tenant holds ``word``."""


@dataclass(frozen=True)
class SourceChunk:
    """The chunk questions are made from, and how the question files name it."""

    chunk_id: str
    title: str
    text: str
    passage_id: str
    """What a question row's ``passage_id`` holds (the chunk's document, as ``train`` and
    ``eval`` look it up)."""


@dataclass(frozen=True)
class ChunkOutcome:
    """The rows one chunk gave, and what it counted (see :mod:`ragtune.synth.report`)."""

    rows: tuple[Mapping[str, Any], ...]
    unanswerable: tuple[Mapping[str, Any], ...]
    counts: Mapping[str, int]
    kinds: Mapping[str, int]
    """Kept questions by answer kind."""
    candidate_kinds: Mapping[str, int]


def synthesize_chunk(
    chunk: SourceChunk,
    settings: SynthSettings,
    *,
    teacher: Teacher,
    fallback: Teacher | None,
    search: Search,
    answer: Answer,
    absent: Absent,
    duplicates: NearDuplicates,
) -> ChunkOutcome:
    """Questions for ``chunk`` (see the module doc). Kept questions are added to
    ``duplicates``, so later chunks do not repeat them.

    ``fallback`` (None: none) writes a second question for each candidate whose ``teacher``
    question the filters dropped, filtered the same way; its stage counts carry the prefix
    ``fallback_`` (its ``fallback_candidates`` are the candidates the teacher did not keep).
    """
    candidates = extract_candidates(chunk.text, settings.per_chunk * settings.candidate_factor)
    counts: Counter[str] = Counter()
    items = list(enumerate(candidates))
    steps = (teacher, ""), (fallback, "fallback_")
    kept: list[tuple[int, Candidate, str, str]] = []
    for writer, prefix in steps:
        if writer is None or len(kept) >= settings.per_chunk:
            continue
        done = {i for i, *_ in kept}
        left = [(i, c) for i, c in items if i not in done]
        room = settings.per_chunk - len(kept)
        passed = _through_filters(left, writer, chunk, settings, search, answer, duplicates, room)
        counts.update({prefix + k: v for k, v in passed.counts.items()})
        kept += [(i, c, q, writer.name) for i, c, q in passed.kept]
    rows = [_row(chunk, i, c, q, name) for i, c, q, name in sorted(kept)]
    unanswerable = _unanswerable(chunk, rows, settings.unanswerable_per_chunk, absent)
    counts["unanswerable"] = len(unanswerable)
    return ChunkOutcome(
        tuple(rows),
        tuple(unanswerable),
        dict(counts),
        dict(Counter(str(r["answer_kind"]) for r in rows)),
        dict(Counter(c.kind for c in candidates)),
    )


@dataclass(frozen=True)
class _Passed:
    kept: list[tuple[int, Candidate, str]]
    counts: Counter[str]


def _through_filters(
    items: Sequence[tuple[int, Candidate]],
    teacher: Teacher,
    chunk: SourceChunk,
    settings: SynthSettings,
    search: Search,
    answer: Answer,
    duplicates: NearDuplicates,
    room: int,
) -> _Passed:
    """``teacher``'s questions for ``items`` (index, candidate) through every filter, at most
    ``room`` kept; the count left after each stage of :data:`~ragtune.synth.report.STAGES`."""
    counts: Counter[str] = Counter(candidates=len(items))
    replies = teacher.write([QuestionRequest(chunk.title, c.sentence, c.text) for _i, c in items])
    written: list[tuple[int, Candidate, str]] = []
    for (i, candidate), reply in zip(items, replies, strict=True):
        question = parse_question(reply, candidate.text)
        if question is not None:
            written.append((i, candidate, question))
    counts["written"] = len(written)
    honest = [w for w in written if not gives_away_answer(w[2], w[1].text)]
    counts["answer_not_given"] = len(honest)
    found = {i: search(question) for i, _c, question in honest}
    reachable = [
        w
        for w in honest
        if round_trip([p.chunk_id for p in found[w[0]]], chunk.chunk_id, settings.round_trip_k)
    ]
    counts["round_trip"] = len(reachable)
    answers = answer([(question, found[i]) for i, _c, question in reachable]) if reachable else []
    matching = [
        w
        for w, said in zip(reachable, answers, strict=True)
        if answer_matches(said, w[1].text, settings.min_answer_f1)
    ]
    counts["answer_match"] = len(matching)
    kept: list[tuple[int, Candidate, str]] = []
    for i, candidate, question in matching:
        if duplicates.is_duplicate(question):
            continue
        counts["not_duplicate"] += 1
        if len(kept) < room:
            duplicates.add(question)
            kept.append((i, candidate, question))
    counts["kept"] = len(kept)
    return _Passed(kept, counts)


def _row(
    chunk: SourceChunk, index: int, candidate: Candidate, question: str, teacher: str
) -> dict[str, Any]:
    return {
        "id": f"synth:{chunk.chunk_id}:{index}",
        "question": question,
        "answers": [candidate.text],
        "passage_id": chunk.passage_id,
        "answerable": True,
        "chunk_id": chunk.chunk_id,
        "answer_kind": candidate.kind,
        "teacher": teacher,
    }


def _unanswerable(
    chunk: SourceChunk, rows: Sequence[Mapping[str, Any]], most: int, absent: Absent
) -> list[dict[str, Any]]:
    made: list[dict[str, Any]] = []
    for row in rows:
        if len(made) >= most:
            break
        swap = entity_swap(str(row["question"]), str(row["id"]), absent)
        if swap is not None:
            made.append(
                {
                    "id": f"{row['id']}:u",
                    "question": swap.question,
                    "answers": [],
                    "passage_id": chunk.passage_id,
                    "answerable": False,
                    "chunk_id": chunk.chunk_id,
                    "swapped": [swap.original, swap.replacement],
                }
            )
    return made
