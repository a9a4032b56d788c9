"""Text conventions every stage shares: scripts written without spaces, sentences, and a
question's content terms.

Stage packages do not import each other; what they must agree on about text lives here, beside
:mod:`ragtune.types` and :mod:`ragtune.errors`.

Content terms are what a question asks about: its words, lower-cased, without English stop
words (bm25s's list, the one the BM25 index uses, with question words and auxiliaries) and
stemmed with the Snowball stemmer (PyStemmer), so "founded" and "founding" meet. bm25s and
PyStemmer load on first use.

>>> sorted(content_terms("When was the university founded?"))
['found', 'universiti']
"""

from __future__ import annotations

import functools
import re
from typing import Any

__all__ = ["SPACELESS", "content_terms", "sentence_spans", "split_sentences"]

SPACELESS = (
    "\u0e00-\u0e7f"  # Thai
    "\u0e80-\u0eff"  # Lao
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u3040-\u309f"  # Hiragana
    "\u30a0-\u30ff"  # Katakana
    "\u3400-\u4dbf"  # CJK Unified Ideographs Extension A
    "\u4e00-\u9fff"  # CJK Unified Ideographs
    "\uac00-\ud7af"  # Hangul syllables
    "\uf900-\ufaff"  # CJK Compatibility Ideographs
    "\uff66-\uff9f"  # half-width Katakana
)
"""Character ranges (for a regex class) of scripts whose words are not separated by spaces:
Chinese, Japanese, Thai, Lao, Khmer, Myanmar; and Korean Hangul, whose spaced words carry
their particles attached. Word-based text processing needs another unit for them."""


# ---- sentences ------------------------------------------------------------------------------

# Structure the segmenter does not see: blank lines, and lines that start a list item or a
# Markdown heading, always end a sentence.
_BLOCK_BREAK = re.compile(r"\n[ \t]*\n\s*|\n(?=[ \t]*(?:[-*•]|\d+[.)]|#+)[ \t])")
# Full-width sentence ends (Chinese, Japanese) are never abbreviations; syntok does not know them.
_FULL_STOP = re.compile(r"[。！？]+[」』”’）)\]]*")
# A domain or file name: dotted labels, the last of two letters or more (not "U.S", "e.g").
_DOTTED = re.compile(r"[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")
# Citation markers written after a sentence's full stop belong to that sentence.
_LEADING_MARKERS = re.compile(r"(?:\[\s*\d+(?:\s*[,–-]\s*\d+)*\s*\]\s*)+")


@functools.lru_cache(maxsize=4096)
def sentence_spans(text: str) -> tuple[tuple[int, int], ...]:
    """``(start, end)`` of each sentence of ``text``, in order, without surrounding spaces.

    syntok finds the sentence ends (it knows abbreviations such as "Inc.", "approx." and
    "No.", initials, decimal numbers and ellipses); blank lines, list items and headings end
    a sentence too, as do full-width stops (。！？). Citation markers after a full stop
    ("It lasts two years. [2]") stay with the sentence they follow.

    >>> [("Orbix Inc. offers a warranty [1]. It lasts approx. 2 years."[a:b]) for a, b in
    ...  sentence_spans("Orbix Inc. offers a warranty [1]. It lasts approx. 2 years.")]
    ['Orbix Inc. offers a warranty [1].', 'It lasts approx. 2 years.']
    """
    spans: list[tuple[int, int]] = []
    block_start = 0
    for brk in [*_BLOCK_BREAK.finditer(text), None]:
        block_end = brk.start() if brk is not None else len(text)
        for start, end in _block_sentences(text[block_start:block_end]):
            spans.append((block_start + start, block_start + end))
        block_start = brk.end() if brk is not None else len(text)
    return tuple(spans)


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` (see :func:`sentence_spans`)."""
    return [text[start:end] for start, end in sentence_spans(text)]


def _block_sentences(block: str) -> list[tuple[int, int]]:
    from syntok.segmenter import analyze

    starts = []
    for paragraph in analyze(block):
        for sentence in paragraph:
            starts.append(sentence[0].offset)
            # syntok keeps "Visit acme.com. Returns ..." together, as it would "U.S. Army":
            # a full stop after a domain or file name, before a capital, ends a sentence.
            for before, stop, after in zip(sentence, sentence[1:], sentence[2:], strict=False):
                if (
                    stop.value == "."
                    and _DOTTED.fullmatch(before.value)
                    and after.value[:1].isupper()
                ):
                    starts.append(after.offset)
    spans: list[tuple[int, int]] = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(block)
        end = start + len(block[start:end].rstrip())  # sentences tile the block
        for piece in _full_stop_pieces(block, start, end):
            marker = _LEADING_MARKERS.match(block, piece[0], piece[1])
            if spans and marker:  # "[2]" after the previous sentence's full stop
                moved = block[marker.start() : marker.end()].rstrip()
                spans[-1] = (spans[-1][0], marker.start() + len(moved))
                piece = (marker.end(), piece[1])
            if piece[0] < piece[1]:
                spans.append(piece)
    return spans


def _full_stop_pieces(block: str, start: int, end: int) -> list[tuple[int, int]]:
    pieces = []
    for stop in _FULL_STOP.finditer(block, start, end):
        if stop.end() < end:
            pieces.append((start, stop.end()))
            start = stop.end() + (
                len(block[stop.end() : end]) - len(block[stop.end() : end].lstrip())
            )
    pieces.append((start, end))
    return pieces


# ---- content terms --------------------------------------------------------------------------

_WORD = re.compile(r"\w+", re.UNICODE)


def content_terms(text: str) -> frozenset[str]:
    """The stemmed content words of ``text`` (stop words and single characters left out)."""
    stop, stem = _term_tools()
    words = [w for w in _WORD.findall(text.lower()) if len(w) > 1 and w not in stop]
    return frozenset(stem(words))


@functools.lru_cache(maxsize=1)
def _term_tools() -> tuple[frozenset[str], Any]:
    import Stemmer
    from bm25s.stopwords import STOPWORDS_EN

    stemmer = Stemmer.Stemmer("english")
    return frozenset(STOPWORDS_EN) | _QUESTION_WORDS, stemmer.stemWords


_QUESTION_WORDS = frozenset(
    [
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "whose",
        "why",
        "how",
        "many",
        "much",
        "do",
        "does",
        "did",
        "done",
        "doing",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "am",
        "has",
        "have",
        "had",
        "having",
        "can",
        "could",
        "would",
        "should",
        "will",
        "shall",
        "may",
        "might",
        "must",
    ]
)
"""Question words and auxiliaries: they shape a question but do not say what it is about."""
