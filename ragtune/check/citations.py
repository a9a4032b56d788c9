"""Citation markers in an answer: sentences, the passages each cites, and what is wrong with them.

Pure functions. An answer is split into sentences; a marker group after a sentence's final
punctuation (``It lasts two years. [2]``) belongs to that sentence, as does one before it
(``It lasts two years [2].``). Markers may be ``[1]``, ``[1, 3]``, ``[1][2]`` or ``[1-3]``.
A marker that points past the passage list is kept as *invalid*, and a sentence without any
marker is kept with no citations: both are reported, never silently dropped.

>>> [(s.claim, s.cited, s.invalid) for s in parse_answer("Returns take 30 days [1]. Fees apply. [2][7]", 3)]
[('Returns take 30 days.', (1,), ()), ('Fees apply.', (2,), (7,))]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ragtune.text import sentence_spans

__all__ = ["ParsedSentence", "markers", "parse_answer", "split_sentences", "strip_markers"]

_GROUP = r"\[\s*\d+(?:\s*(?:,|-|–)\s*\d+)*\s*\]"
MARKER_GROUP = re.compile(_GROUP)
_TRAILING = re.compile(rf"(?:\s*{_GROUP})+")


@dataclass(frozen=True)
class ParsedSentence:
    """One sentence of an answer."""

    text: str
    """The sentence as written, markers included."""
    claim: str
    """The sentence without its markers: what the cited passages must support."""
    start: int
    end: int
    """Character offsets of ``text`` in the answer."""
    cited: tuple[int, ...]
    """Valid passage numbers (1-based), in order of first mention, without repeats."""
    invalid: tuple[int, ...]
    """Numbers that point past the passage list (or are 0)."""

    @property
    def has_marker(self) -> bool:
        return bool(self.cited or self.invalid)


def markers(text: str) -> list[int]:
    """Every passage number in the marker groups of ``text``, in order (ranges expanded).

    >>> markers("a [1] b [2, 3][5-6]")
    [1, 2, 3, 5, 6]
    """
    numbers: list[int] = []
    for group in MARKER_GROUP.findall(text):
        for part in group.strip("[] ").split(","):
            bounds = re.split(r"\s*[-–]\s*", part.strip())
            if len(bounds) == 2:
                lo, hi = int(bounds[0]), int(bounds[1])
                if lo <= hi and hi - lo < 50:
                    numbers.extend(range(lo, hi + 1))
                    continue
            numbers.extend(int(b) for b in bounds if b)
    return numbers


def strip_markers(text: str) -> str:
    """``text`` without marker groups, with the spacing and punctuation mended.

    >>> strip_markers("It lasts two years [2]. ")
    'It lasts two years.'
    """
    cleaned = MARKER_GROUP.sub("", text)
    cleaned = re.sub(r"\s+([.,;:!?])", r"\1", cleaned)
    return " ".join(cleaned.split())


def split_sentences(text: str) -> list[tuple[str, int, int]]:
    """(sentence, start, end) for each sentence of ``text``; trailing markers stay with it.

    The shared segmenter (:func:`ragtune.text.sentence_spans`, syntok) knows abbreviations,
    initials and decimals, so "Orbix Inc. offers a two-year warranty [1]." is one claim with
    its marker.
    """
    spans: list[tuple[str, int, int]] = []
    for start, end in sentence_spans(text):
        sentence = text[start:end]
        # A marker group alone (the model put it on its own line) belongs to the sentence before.
        if spans and _TRAILING.fullmatch(sentence):
            _prev, prev_start, _ = spans[-1]
            spans[-1] = (text[prev_start:end], prev_start, end)
        else:
            spans.append((sentence, start, end))
    return spans


def parse_answer(text: str, passage_count: int) -> list[ParsedSentence]:
    """Split ``text`` into sentences and resolve each one's markers against ``passage_count``."""
    parsed = []
    for sentence, start, end in split_sentences(text):
        valid: list[int] = []
        invalid: list[int] = []
        for number in markers(sentence):
            target = valid if 1 <= number <= passage_count else invalid
            if number not in target:
                target.append(number)
        claim = strip_markers(sentence)
        if not claim and not valid and not invalid:
            continue
        parsed.append(ParsedSentence(sentence, claim, start, end, tuple(valid), tuple(invalid)))
    return parsed
