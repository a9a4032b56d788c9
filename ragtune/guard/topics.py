"""Input guardrails: a length limit and denied topics (keywords, patterns, similarity).

A denied topic has a name, keywords (whole words, case-insensitive), regular expressions and a
description; with an embedder, a question whose embedding is within ``similarity`` of the
description is denied too. The decision names the topic and what matched.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Protocol

import numpy as np
from annotated_types import Ge, Le, MinLen

from ragtune.settings import check_bounds

__all__ = ["DeniedTopic", "InputDecision", "InputGuard"]


class _Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class DeniedTopic:
    """A topic the assistant refuses: matched by keyword, regular expression or similarity."""

    name: Annotated[str, MinLen(1)]
    keywords: tuple[str, ...] = ()
    """Whole words, case-insensitive."""
    patterns: tuple[str, ...] = ()
    """Regular expressions (Python syntax), case-insensitive."""
    description: str = ""
    """With an embedder, a question this similar to the description is denied."""
    similarity: Annotated[float, Ge(0.0), Le(1.0)] = 0.6

    def __post_init__(self) -> None:
        check_bounds(self)
        if not (self.keywords or self.patterns or self.description):
            raise ValueError("give keywords, patterns or a description to match the topic")
        for pattern in self.patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"pattern {pattern!r} is not a valid regular expression: {exc}"
                ) from exc


@dataclass(frozen=True)
class InputDecision:
    allowed: bool
    topic: str | None = None
    matched: str = ""
    """The keyword, pattern or similarity that decided."""
    scores: dict[str, float] = field(default_factory=dict)


class InputGuard:
    """Decides whether a question may be answered (the length limit is the caller's error)."""

    def __init__(
        self, topics: Sequence[DeniedTopic] = (), *, embedder: _Embedder | None = None
    ) -> None:
        self.topics = list(topics)
        self.embedder = embedder
        self._keywords = [
            [re.compile(rf"(?<!\w){re.escape(k)}(?!\w)", re.IGNORECASE) for k in t.keywords]
            for t in self.topics
        ]
        self._patterns = [[re.compile(p, re.IGNORECASE) for p in t.patterns] for t in self.topics]
        described = [t for t in self.topics if t.description]
        self._described = described
        self._vectors = (
            embedder.embed([t.description for t in described]) if embedder and described else None
        )

    def check(self, question: str) -> InputDecision:
        for topic, keywords, patterns in zip(
            self.topics, self._keywords, self._patterns, strict=True
        ):
            for keyword, compiled in zip(topic.keywords, keywords, strict=True):
                if compiled.search(question):
                    return InputDecision(False, topic.name, f"keyword {keyword!r}")
            for pattern, compiled in zip(topic.patterns, patterns, strict=True):
                if compiled.search(question):
                    return InputDecision(False, topic.name, f"pattern {pattern!r}")
        if self._vectors is None or self.embedder is None:
            return InputDecision(True)
        query = self.embedder.embed([question])[0]
        scores = {
            t.name: float(np.dot(v, query))
            for t, v in zip(self._described, self._vectors, strict=True)
        }
        for topic in self._described:
            if scores[topic.name] >= topic.similarity:
                return InputDecision(
                    False, topic.name, f"similarity {scores[topic.name]:.2f}", scores
                )
        return InputDecision(True, scores=scores)
