"""Telemetry: one JSON event per question, and OpenTelemetry spans per stage when installed.

Events hold no question text and no answer text, only a hash of the question; retrieved ids and
scores, timings, verdicts, abstention, the response id and the canary arm with its hashed split
key (so the split can be checked from the log). Live recording adds ``feedback`` events (the
rating, never the correction) and ``canary_look`` events (a canary's tests and decision). Lines are appended under a lock, one ``write`` each, so
concurrent askers never interleave a line.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragtune.types import Answer

__all__ = ["Telemetry", "TelemetrySettings", "answer_event", "question_hash"]


def question_hash(question: str) -> str:
    return hashlib.sha256(question.strip().encode("utf-8")).hexdigest()[:16]


def answer_event(answer: Answer) -> dict[str, Any]:
    """The event for one answered question (no personal data: hashes, ids, numbers)."""
    return {
        "event": "ask",
        "time": time.time(),
        "question_sha256": question_hash(answer.question),
        "question_chars": len(answer.question),
        "tenant": answer.tenant,
        "adapter": answer.adapter,
        "adapter_version": answer.adapter_version,
        "retrieved": [
            {"chunk_id": p.chunk_id, "score": round(p.score, 4)} for p in answer.passages
        ],
        "timings_ms": {k: round(v * 1000, 1) for k, v in vars(answer.timings).items()},
        "verdicts": [
            {
                "verdict": s.verdict,
                "support": s.support,
                "citations": [c.number for c in s.citations],
            }
            for s in answer.sentences
        ],
        "grounded": answer.grounded,
        "abstained": answer.abstained,
        "abstain_reason": answer.abstain_reason,
        "citation_recall": answer.citation_recall,
        "citation_precision": answer.citation_precision,
        "flags": list(answer.flags),
        "answer_chars": len(answer.text),
        "response_id": answer.response_id,
        "canary": (
            None
            if answer.canary is None
            else {
                "id": answer.canary.canary_id,
                "arm": answer.canary.arm,
                "version": answer.canary.version,
                "key": answer.canary.key,
                "sticky": answer.canary.sticky,
            }
        ),
    }


@dataclass(frozen=True)
class TelemetrySettings:
    """Where answer events go, and whether stages open OpenTelemetry spans."""

    events: Path | None = None
    """A JSON-lines file with one event per question (no question text); None: no file."""
    spans: bool = True
    """OpenTelemetry spans per stage, when opentelemetry is installed."""


class Telemetry:
    """Writes events to ``path`` (None: no file) and opens OpenTelemetry spans if available."""

    def __init__(self, path: Path | str | None, *, spans: bool) -> None:
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._tracer: Any = None
        if spans and importlib.util.find_spec("opentelemetry") is not None:
            trace: Any = importlib.import_module("opentelemetry.trace")
            self._tracer = trace.get_tracer("ragtune")
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, event: Mapping[str, Any]) -> None:
        if self.path is None:
            return
        line = json.dumps(event, default=str, ensure_ascii=False) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)

    @contextlib.contextmanager
    def span(self, name: str, **attributes: Any) -> Iterator[None]:
        if self._tracer is None:
            yield
            return
        with self._tracer.start_as_current_span(f"ragtune.{name}") as span:
            for key, value in attributes.items():
                if value is not None:
                    span.set_attribute(f"ragtune.{key}", value)
            yield
