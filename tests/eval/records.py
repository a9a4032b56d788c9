"""Hand-made records, shaped as ``ragtune.eval.records.record_for`` writes them."""

from __future__ import annotations

import json
from pathlib import Path
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


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def tiny_pipeline(root: Path, embedder_dir: Path) -> dict[str, Any]:
    """A config on tiny models over the tiny passage set, its index built under ``root``."""
    from ragtune.config import load_config
    from ragtune.indexing import build_index
    from tests.generate.tiny import save_tiny

    corpus = write_jsonl(root / "passages.jsonl", PASSAGES)
    raw: dict[str, Any] = {
        "embedder": {"model": str(embedder_dir), "device": "cpu"},
        "chunking": {"chunk_tokens": 64, "overlap_tokens": 8},
        "retriever": {"type": "hybrid", "index": str(root / "index"), "top_k": 2},
        "generator": {
            "model": str(save_tiny(root / "llama")),
            "grounding": "none",
            "device": "cpu",
            "max_new_tokens": 6,
        },
        "adapters": {"root": str(root / "adapters")},
        "checker": {"signals": []},
    }
    config = load_config(raw)
    build_index(
        [corpus], root / "index", embedder=config.embedder.build(), settings=config.build_settings()
    )
    return raw
