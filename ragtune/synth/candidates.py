"""Answer candidates in a chunk: the short spans a question can be written *for* (answer first).

Four kinds, found per sentence by patterns (pure, no model):

- ``date``: a full or partial date ("14 July 1789", "March 1974", "2021-03-04") or a year
  ("in 1889", "the 1990s");
- ``number``: a quantity with its unit or currency ("30 days", "9.99 dollars", "$12 million",
  "3 to 5 business days", "two-year", "15%");
- ``name``: a run of capitalised words ("Orbix Inc.", "University of Notre Dame"); a run at the
  start of a sentence only when it is two words or more, or the same words appear capitalised
  inside a sentence too (so "Shipping takes ..." does not make "Shipping" a name);
- ``phrase``: the short noun phrase after "is", "was", "became", "called", "known as" ...
  ("a people", "the capital").

Each sentence gives at most one candidate of each kind; a shorter span inside a longer one of a
stronger kind is left out (the year inside a date). Candidates are then taken round-robin over
the sentences, strongest kind first, so a chunk's questions spread over its sentences. A
sentence shorter than four words (a heading, a list label) gives none.

>>> [(c.text, c.kind) for c in extract_candidates(
...     "The Northfield library opens at 9 am. Visitors pay 20 euros a year since March 2019.", 4)]
[('9 am', 'number'), ('20 euros', 'number'), ('Northfield', 'name'), ('March 2019', 'date')]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ragtune.eval.metrics import normalise
from ragtune.text import sentence_spans

__all__ = ["ANSWER_KINDS", "Candidate", "extract_candidates", "name_spans"]

ANSWER_KINDS = ("number", "date", "name", "phrase")
"""The kinds of answer candidate, in the order they are preferred."""


@dataclass(frozen=True)
class Candidate:
    """A span of a chunk that a question can be written for."""

    text: str
    """The answer as the chunk writes it."""
    kind: str
    """One of :data:`ANSWER_KINDS`."""
    sentence: str
    """The sentence that states it (what the teacher sees)."""
    start: int
    end: int
    """Character offsets of ``text`` in the chunk's text."""


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_MONTHS = (
    "January|February|March|April|May|June|July|August|September|October|November|December|"
    "Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
)
_DAYS = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_YEAR = r"(?:1[0-9]{3}|20[0-9]{2})"
_DATE = re.compile(
    rf"\b(?:\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTHS})\.?,?\s+{_YEAR}"  # 14 July 1789
    rf"|(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+{_YEAR}"  # July 14, 1789
    rf"|(?:{_MONTHS})\.?\s+{_YEAR}"  # March 1974
    rf"|(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?\b"  # July 14
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTHS})\b"  # 14 July
    rf"|{_YEAR}-\d{{2}}-\d{{2}}"  # 2021-03-04
    rf"|(?<![\d.,$£€¥-]){_YEAR}s?(?![\d.,]\d|\s*%))\b"  # 1889, the 1990s
)
_NUMBER_WORDS = (
    "(?i:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|"
    "forty|fifty|sixty|hundred|thousand|million|billion|dozen)"
)
_MULTIPLIER = r"(?:\s+(?:thousand|million|billion|trillion))?"
_FIGURE = (
    rf"(?:(?:US|A|C|NZ|HK)?[$£€¥]\s?)?\d[\d,]*(?:\.\d+)?(?:st|nd|rd|th)?(?![A-Za-z]){_MULTIPLIER}"
)
_QUANTITY = rf"(?:{_FIGURE}|\b{_NUMBER_WORDS}\b{_MULTIPLIER})"
_UNIT = (
    r"(?!(?:of|and|or|nor|but|the|a|an|in|on|at|to|for|by|with|from|into|onto|over|under|as|"
    r"is|was|were|are|be|been|being|has|have|had|do|does|did|will|would|can|could|may|might|"
    r"that|which|who|whom|whose|what|when|where|while|why|how|after|before|since|until|"
    r"during|because|if|then|than|so|not|per|each|every|this|these|those|it|its|their)\b)"
    r"(?![a-z]+ly\b)[a-z][a-z-]*\b"
)
_UNIT_MODIFIER = "(?:business|working|calendar|square|cubic|metric|light|nautical|fluid|full)"
"""A unit of two words starts with one of these ("5 business days"); any other second word is
the sentence going on ("300 people live")."""
_NUMBER = re.compile(
    rf"(?<![\w.]){_QUANTITY}(?:\s*(?:to|-|–|and|or)\s*{_QUANTITY})?"  # 3 to 5
    rf"(?:\s?%|\s(?:percent|per cent)\b|-[a-z]+\b|\s+(?:{_UNIT_MODIFIER}\s+)?{_UNIT})?"  # 30 days
)
_BARE_YEAR = re.compile(rf"{_YEAR}s?(?:\s|$)")
_CAPITAL = r"[A-Z][\w'’.-]*"
_NAME = re.compile(
    rf"(?<![\w]){_CAPITAL}(?:\s+(?:(?:of|the|de|la|von|van|and|&)\s+)*{_CAPITAL})*",
)
_NOT_NAMES = (
    _word_set(
        "I A An The This That These Those It Its He She They We You His Her Their Our Your "
        "In On At By For From With Of And Or But If When Where While After Before Since Until "
        "During Also However There Here What Which Who Why How Each Every Some Many Most All"
    )
    | _word_set(_MONTHS.replace("|", " "))
    | _word_set(_DAYS.replace("|", " "))
)
_PHRASE = re.compile(
    r"\b(?:is|are|was|were|became|becomes|become|called|named|known as|remains|remained)\s+"
    r"(?=((?:(?:a|an|the)\s+)?[a-z][\w-]*(?:\s+[a-z][\w-]*){0,3}))"  # ahead: "is called X"
)
_PHRASE_BREAK = _word_set(
    "that which who whom whose when where while and or but because as with by for from to in "
    "on at of than not also being been very"
)
_MIN_SENTENCE_WORDS = 4
_MAX_ANSWER_WORDS = 6
_WORD = re.compile(r"\S+")


def extract_candidates(text: str, limit: int) -> list[Candidate]:
    """At most ``limit`` answer candidates of ``text`` (see the module doc), no two with the
    same normalised answer."""
    if limit < 1:
        return []
    per_sentence = [_sentence_candidates(text, start, end) for start, end in sentence_spans(text)]
    chosen: list[Candidate] = []
    seen: set[str] = set()
    depth = max((len(found) for found in per_sentence), default=0)
    for rank in range(depth):
        for found in per_sentence:
            if rank < len(found) and len(chosen) < limit:
                key = normalise(found[rank].text)
                if key and key not in seen:
                    seen.add(key)
                    chosen.append(found[rank])
    return chosen


def _sentence_candidates(text: str, start: int, end: int) -> list[Candidate]:
    """One candidate of each kind in ``text[start:end]``, strongest kind first."""
    sentence = text[start:end]
    if len(sentence.split()) < _MIN_SENTENCE_WORDS:
        return []
    spans: dict[str, tuple[int, int]] = {}
    taken: list[tuple[int, int]] = []
    # Dates before numbers and names before phrases: the longer, more specific span wins.
    for kind, found in (
        ("date", _dates(sentence)),
        ("number", _numbers(sentence)),
        ("name", name_spans(sentence, text)),
        ("phrase", _phrases(sentence)),
    ):
        for lo, hi in found:
            clean = _trim(sentence, lo, hi)
            if clean is None or any(clean[0] < b and a < clean[1] for a, b in taken):
                continue
            spans[kind] = clean
            taken.append(clean)
            break
    return [
        Candidate(sentence[lo:hi], kind, sentence, start + lo, start + hi)
        for kind in ANSWER_KINDS
        if kind in spans
        for lo, hi in [spans[kind]]
    ]


def _trim(sentence: str, lo: int, hi: int) -> tuple[int, int] | None:
    """The span without surrounding spaces and a trailing full stop; None when it is not a
    usable answer (too long, the whole sentence, a placeholder of scrubbed personal data)."""
    while lo < hi and sentence[lo] in " \t\n,;:":
        lo += 1
    while hi > lo and sentence[hi - 1] in " \t\n,;:.":
        hi -= 1
    answer = sentence[lo:hi]
    words = answer.split()
    if not words or len(words) > _MAX_ANSWER_WORDS or "[" in answer or "]" in answer:
        return None
    if sentence[lo - 1 : lo] == "[" or sentence[hi : hi + 1] == "]":  # a placeholder: [EMAIL]
        return None
    if len(words) >= len(sentence.split()) - 1:
        return None
    return lo, hi


def _dates(sentence: str) -> list[tuple[int, int]]:
    """Dates, the longest first ("October 1973" before a bare "1973")."""
    spans = [m.span() for m in _DATE.finditer(sentence)]
    return sorted(spans, key=lambda span: span[0] - span[1])


def _numbers(sentence: str) -> list[tuple[int, int]]:
    """Quantities; a number written in words counts only with its unit ("two years"), and a
    bare year is a date ("the 1973 oil crisis"), not a quantity."""
    found = []
    for match in _NUMBER.finditer(sentence):
        written = match.group().strip()
        if _BARE_YEAR.match(written):
            continue
        if any(ch.isdigit() for ch in written) or " " in written or "-" in written:
            found.append(match.span())
    return found


def name_spans(sentence: str, context: str) -> list[tuple[int, int]]:
    """Spans of the names in ``sentence`` (see the module doc); a single capitalised word at
    its start counts only when it appears capitalised inside a sentence of ``context`` too."""
    found = []
    for match in _NAME.finditer(sentence):
        words = [(w.group(), w.start(), w.end()) for w in _WORD.finditer(match.group())]
        while words and words[0][0].rstrip(".") in _NOT_NAMES:
            words = words[1:]
        while words and words[-1][0].rstrip(".") in _NOT_NAMES:
            words = words[:-1]
        if not words:
            continue
        lo, hi = match.start() + words[0][1], match.start() + words[-1][2]
        glued = sentence[hi : hi + 1]
        if glued and (glued in "$£€¥" or glued.isdigit()):  # "US$3" is an amount, not a name
            continue
        at_start = sentence[:lo].strip() == ""
        if at_start and len(words) == 1 and not _capitalised_inside(words[0][0], context):
            continue
        found.append((lo, hi))
    return found


def _capitalised_inside(word: str, chunk: str) -> bool:
    """Whether ``word`` appears capitalised after another word somewhere in ``chunk``."""
    return re.search(rf"[\w,;:][ \t]+{re.escape(word.rstrip('.'))}\b", chunk) is not None


def _phrases(sentence: str) -> list[tuple[int, int]]:
    found = []
    for match in _PHRASE.finditer(sentence):
        words = [(w.group(), w.start(), w.end()) for w in _WORD.finditer(match.group(1))]
        kept = []
        for i, word in enumerate(words):
            if i > 0 and word[0].strip(",.;:") in _PHRASE_BREAK:
                break
            kept.append(word)
            if word[0][-1:] in ",.;:":
                break
        content = [w for w in kept if w[0] not in ("a", "an", "the")]
        if not content or content[0][0] in _PHRASE_BREAK or content[0][0].endswith(("ed", "ing")):
            continue
        found.append((match.start(1) + kept[0][1], match.start(1) + kept[-1][2]))
    return found
