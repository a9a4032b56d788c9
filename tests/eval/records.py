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


# A tiny question set in the format of ../shared/data/squad-dev.
PASSAGES = [
    {
        "id": "returns#0",
        "title": "Returns",
        "text": "Items can be returned within 30 days of delivery.",
    },
    {
        "id": "warranty#0",
        "title": "Warranty",
        "text": "The blender motor is covered for five years.",
    },
    {
        "id": "shipping#0",
        "title": "Shipping",
        "text": "Express shipping costs 8.50 pounds in the UK.",
    },
]
QUESTIONS = [
    {
        "id": "q1",
        "question": "How long can items be returned?",
        "answers": ["30 days"],
        "passage_id": "returns#0",
    },
    {
        "id": "q2",
        "question": "How long is the motor covered?",
        "answers": ["five years"],
        "passage_id": "warranty#0",
    },
    {
        "id": "q3",
        "question": "What does express shipping cost?",
        "answers": ["8.50 pounds"],
        "passage_id": "shipping#0",
    },
]
UNANSWERABLE = [
    {"id": "u1", "question": "Who founded the company?", "answers": [], "answerable": False},
    {"id": "u2", "question": "What colour is the logo?", "answers": [], "answerable": False},
]
