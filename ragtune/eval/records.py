"""One line of ``records.jsonl``: a question, what the assistant answered, and what it read.

A record holds the raw facts (answer text, verdicts, the ranking, timings), not scores: the
metrics of :mod:`ragtune.eval.summary` are computed from records, so a metric fixed later can
be recomputed on old runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ragtune.eval.questions import EvalQuestion
from ragtune.types import Answer, Passage

__all__ = ["RECORD_VERSION", "passage_key", "passage_row", "record_for"]

RECORD_VERSION = 1


def passage_key(passage: Passage) -> str:
    """The id a question file's ``passage_id`` names: the JSONL ``id`` of the document the
    chunk came from, else its source path."""
    metadata = passage.provenance.metadata if passage.provenance is not None else {}
    found = metadata.get("id")
    return str(found) if found is not None else passage.source


def passage_row(passage: Passage, *, text: bool = True) -> dict[str, Any]:
    """A passage as a record stores it."""
    row: dict[str, Any] = {
        "id": passage_key(passage),
        "chunk_id": passage.chunk_id,
        "score": round(float(passage.score), 5),
        "source": passage.source,
        "span": [passage.start, passage.end],
        "title": passage.title,
    }
    if text:
        row["text"] = passage.text
    return row


def record_for(
    question: EvalQuestion, answer: Answer, ranking: Sequence[Passage]
) -> dict[str, Any]:
    """The record of one asked question; ``ranking`` is the retriever's top passages (k >= 10)."""
    return {
        "v": RECORD_VERSION,
        "id": question.id,
        "question": question.question,
        "answerable": question.answerable,
        "answers": list(question.answers),
        "passage_id": question.passage_id,
        "answer": answer.text,
        "draft": answer.draft,
        "abstained": answer.abstained,
        "abstain_reason": answer.abstain_reason,
        "grounded": answer.grounded,
        "sentences": [
            {
                "claim": s.claim,
                "citations": [c.number for c in s.citations],
                "attributed": s.attributed,
                "support": s.support,
                "supported": s.supported,
                "verdict": s.verdict,
            }
            for s in answer.checked
        ],
        "citation_recall": answer.citation_recall,
        "citation_precision": answer.citation_precision,
        "ranking": [passage_row(p) for p in ranking],
        "cited": [passage_row(p) for p in answer.cited],
        "timings_ms": {k: round(v * 1000.0, 2) for k, v in vars(answer.timings).items()},
        "adapter": answer.adapter,
        "adapter_version": answer.adapter_version,
        "flags": list(answer.flags),
        "answerability": dict(answer.answerability),
    }
