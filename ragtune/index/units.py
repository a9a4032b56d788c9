"""What gets a vector: a whole chunk, or each of its sentences.

Sentence vectors score a chunk by its best sentence (max-sim). A question usually matches one
sentence; averaging it into a 200-token chunk blurs it. On SQuAD-dev this lifts dense recall@1
from 0.63 to 0.70 and hybrid recall@1 by about 0.03 (benchmarks/RESULTS.md), for about five
vectors per chunk.

Vector ids pack the chunk's row id and the sentence's number: ``row << 12 | sentence``, so a
hit maps back to its chunk with a shift, and FAISS needs no extra table.
"""

from __future__ import annotations

import numpy as np

from ragtune.text import split_sentences as sentences_of

__all__ = [
    "MAX_UNITS",
    "chunk_rows",
    "dense_units",
    "split_sentences",
    "vector_ids",
]

_SHIFT = 12
MAX_UNITS = (1 << _SHIFT) - 1
_MIN_CHARS = 16  # shorter pieces (headings, "Yes.") join the next sentence


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences (and paragraphs, list items); tiny pieces join the next.

    Sentences are those of the shared segmenter (:func:`ragtune.text.sentence_spans`).

    >>> split_sentences("# Returns\\n\\nItems go back within approx. 30 days. Refunds take 5 days.")
    ['# Returns Items go back within approx. 30 days.', 'Refunds take 5 days.']
    """
    pieces = sentences_of(text)
    merged: list[str] = []
    carry = ""
    for piece in pieces:
        piece = " ".join(piece.split())
        if carry:
            piece = f"{carry} {piece}"
            carry = ""
        if len(piece) < _MIN_CHARS:
            carry = piece
            continue
        merged.append(piece)
    if carry:
        if merged:
            merged[-1] = f"{merged[-1]} {carry}"
        else:
            merged.append(carry)
    if len(merged) > MAX_UNITS:
        merged = [*merged[: MAX_UNITS - 1], " ".join(merged[MAX_UNITS - 1 :])]
    return merged


def dense_units(title: str, text: str, *, sentences: bool, with_title: bool) -> list[str]:
    """The texts embedded for one chunk: the chunk itself, or each sentence, with its title."""
    if not sentences:
        if with_title and title and not text.startswith(title):
            return [f"{title}\n\n{text}"]
        return [text]
    units = split_sentences(text) or [text]
    if with_title and title:
        units = [f"{title}: {u}" for u in units]
    return units


def vector_ids(rows: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Every vector id of these chunk rows, given how many vectors each has.

    >>> vector_ids(np.array([1, 3]), np.array([2, 1])).tolist()
    [4096, 4097, 12288]
    """
    rows = np.asarray(rows, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.repeat(rows << _SHIFT, counts)
    group_start = np.repeat(np.cumsum(counts) - counts, counts)
    return starts + (np.arange(int(counts.sum()), dtype=np.int64) - group_start)


def chunk_rows(ids: np.ndarray) -> np.ndarray:
    """The chunk row of each vector id."""
    return np.asarray(ids, dtype=np.int64) >> _SHIFT
