"""Text helpers shared by the stages: sentence spans and a question's content terms.

Content terms are what a question asks about: its words, lower-cased, without English stop
words (bm25s's list, the one the BM25 index uses) and stemmed with the Snowball stemmer
(PyStemmer), so "founded" and "founding" meet. Light to import: bm25s and PyStemmer load on
first use.

>>> sorted(content_terms("When was the university founded?"))
['found', 'univers']
>>> [text[a:b] for text in ["It opened in 1636. Harvard grew."] for a, b in sentence_spans(text)]
['It opened in 1636.', 'Harvard grew.']
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

__all__ = ["content_terms", "sentence_spans"]

_WORD = re.compile(r"\w+", re.UNICODE)
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n\s*\n")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` character offsets of each sentence of ``text``, blanks trimmed."""
    spans: list[tuple[int, int]] = []
    position = 0
    for match in _BOUNDARY.finditer(text):
        _add(text, position, match.start(), spans)
        position = match.end()
    _add(text, position, len(text), spans)
    return spans


def _add(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    piece = text[start:end]
    if piece.strip():
        start += len(piece) - len(piece.lstrip())
        end -= len(piece) - len(piece.rstrip())
        spans.append((start, end))


def content_terms(text: str) -> frozenset[str]:
    """The stemmed content words of ``text`` (stop words and single characters left out)."""
    stop, stem = _tools()
    words = [w for w in _WORD.findall(text.lower()) if len(w) > 1 and w not in stop]
    return frozenset(stem(words))


@lru_cache(maxsize=1)
def _tools() -> tuple[frozenset[str], Any]:
    import Stemmer
    from bm25s.stopwords import STOPWORDS_EN

    stemmer = Stemmer.Stemmer("english")
    return frozenset(STOPWORDS_EN), stemmer.stemWords
