"""What ``ragtune synth`` kept, and why it dropped the rest: summed over the finished chunks.

Each chunk counts what is left after each stage, in order (:data:`STAGES`):

========================  =========================================================
``candidates``            answer candidates found in the chunk
``written``               the teacher wrote a usable question for it
``answer_not_given``      the question does not contain its answer
``round_trip``            the retriever finds the source chunk in its top k
``answer_match``          the grounded model's answer matches the candidate
``not_duplicate``         no near-duplicate of a question already kept
``kept``                  within the chunk's ``per_chunk`` questions
========================  =========================================================

``dropped`` is the difference between neighbouring stages, named by the filter that dropped.
With a fallback writer (``synth.fallback``), its pass over the candidates the teacher did not
keep is counted the same way in ``fallback_kept_after`` / ``fallback_dropped``; ``kept`` is
both passes' sum.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ragtune.synth.output import ChunkRecord

__all__ = ["DROPPED_BY", "STAGES", "SynthReport", "build_report", "write_report"]

STAGES = (
    "candidates",
    "written",
    "answer_not_given",
    "round_trip",
    "answer_match",
    "not_duplicate",
    "kept",
)
"""What each chunk counts, stage by stage (see the module doc)."""
DROPPED_BY = (
    "no_usable_question",
    "answer_in_question",
    "round_trip_missed",
    "answer_mismatch",
    "near_duplicate",
    "over_per_chunk",
)
"""Why a candidate was dropped, one name per stage after ``candidates``."""


@dataclass(frozen=True)
class SynthReport:
    """The report of one output (``<out>.report.json``)."""

    tenant: str
    teacher: str
    chunks: int
    """Chunks of the tenant in the index."""
    chunks_done: int
    """Chunks finished (all of them once the run is complete)."""
    kept_after: Mapping[str, int]
    """The teacher's questions left after each stage of :data:`STAGES`, summed over the
    chunks."""
    dropped: Mapping[str, int]
    """Candidates dropped, by the reason of :data:`DROPPED_BY`."""
    fallback_kept_after: Mapping[str, int]
    """The same for the fallback writer's pass (all zero without one)."""
    fallback_dropped: Mapping[str, int]
    unanswerable: int
    questions_per_chunk: Mapping[str, int]
    """How many chunks kept 0, 1, 2 ... questions."""
    answer_kinds: Mapping[str, int]
    """Kept questions by the kind of their answer (number, date, name, phrase)."""
    candidate_kinds: Mapping[str, int]
    seconds: float
    """Wall time over the finished chunks (the runs' sum; a resumed run adds up)."""
    seconds_per_kept_question: float | None
    """``seconds`` over the kept questions (None before any is kept)."""

    @property
    def kept(self) -> int:
        """Questions kept, both passes."""
        return self.kept_after.get("kept", 0) + self.fallback_kept_after.get("kept", 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"kept": self.kept, "complete": self.chunks_done >= self.chunks}


def build_report(
    records: Sequence[ChunkRecord], *, tenant: str, teacher: str, chunks: int
) -> SynthReport:
    """The report of the finished chunks' ``records``; pure."""
    totals: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    candidate_kinds: Counter[str] = Counter()
    per_chunk: Counter[int] = Counter()
    seconds = 0.0
    for record in records:
        totals.update(record.counts)
        kinds.update(record.kinds)
        candidate_kinds.update(record.candidate_kinds)
        per_chunk[record.counts.get("kept", 0) + record.counts.get("fallback_kept", 0)] += 1
        seconds += record.seconds
    kept_after = {stage: totals.get(stage, 0) for stage in STAGES}
    fallback_after = {stage: totals.get(f"fallback_{stage}", 0) for stage in STAGES}
    kept = kept_after["kept"] + fallback_after["kept"]
    return SynthReport(
        tenant=tenant,
        teacher=teacher,
        chunks=chunks,
        chunks_done=len(records),
        kept_after=kept_after,
        dropped=_dropped(kept_after),
        fallback_kept_after=fallback_after,
        fallback_dropped=_dropped(fallback_after),
        unanswerable=totals.get("unanswerable", 0),
        questions_per_chunk={str(n): per_chunk[n] for n in sorted(per_chunk)},
        answer_kinds=dict(sorted(kinds.items())),
        candidate_kinds=dict(sorted(candidate_kinds.items())),
        seconds=round(seconds, 2),
        seconds_per_kept_question=round(seconds / kept, 3) if kept else None,
    )


def _dropped(kept_after: Mapping[str, int]) -> dict[str, int]:
    return {
        reason: kept_after[before] - kept_after[after]
        for reason, before, after in zip(DROPPED_BY, STAGES[:-1], STAGES[1:], strict=True)
    }


def write_report(path: Path, report: SynthReport, **extra: Any) -> None:
    """Write ``report`` (and ``extra`` fields) as JSON, replacing the file whole."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    body: Mapping[str, Any] = report.to_dict() | extra
    partial.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)
