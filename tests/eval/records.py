"""Hand-made records, shaped as ``ragtune.eval.records.record_for`` writes them."""

from __future__ import annotations

from typing import Any


def passage(doc: str, text: str = "filler text") -> dict[str, Any]:
    return {
        "id": doc,
        "chunk_id": f"{doc}-c",
        "score": 1.0,
        "source": f"{doc}.md",
        "span": [0, len(text)],
        "title": doc.upper(),
        "text": text,
    }


def record(
    qid: str,
    *,
    answerable: bool = True,
    answers: tuple[str, ...] = ("30 days",),
    answer: str = "",
    abstained: bool = False,
    ranking: tuple[str, ...] = ("gold", "other"),
    gold: str | None = "gold",
    sentences: tuple[tuple[bool, float], ...] = (),
    recall: float = 0.0,
    precision: float = 0.0,
    total_ms: float = 100.0,
    passage_text: str = "Returns take 30 days.",
) -> dict[str, Any]:
    return {
        "v": 1,
        "id": qid,
        "question": f"question {qid}?",
        "answerable": answerable,
        "answers": list(answers) if answerable else [],
        "passage_id": gold,
        "answer": answer,
        "draft": answer,
        "abstained": abstained,
        "abstain_reason": "unsupported" if abstained else None,
        "grounded": not abstained,
        "sentences": [
            {
                "claim": "c",
                "citations": [1],
                "attributed": False,
                "support": score,
                "supported": ok,
                "verdict": "supported" if ok else "unsupported",
            }
            for ok, score in sentences
        ],
        "citation_recall": recall,
        "citation_precision": precision,
        "ranking": [passage(d, passage_text if d == gold else "filler text") for d in ranking],
        "cited": [passage(d, passage_text if d == gold else "filler text") for d in ranking[:2]],
        "timings_ms": {"retrieve": 5.0, "generate": total_ms - 10, "check": 5.0, "total": total_ms},
        "adapter": None,
        "adapter_version": None,
        "flags": [],
    }
