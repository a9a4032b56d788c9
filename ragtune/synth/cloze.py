"""The ``cloze`` teacher: no model, a question made from the sentence itself by rule.

The answer is cut out of its sentence (with a preposition right before a date or a place) and a
question word for its kind goes in front: "Items can be returned within 30 days of delivery."
with the answer "30 days" becomes "How long can Items be returned within of delivery?". The
word order stays the sentence's, so such questions read badly, but they ask for exactly the
answer and share the sentence's words, as many real questions do. Lewis et al. (2019,
"Unsupervised Question Answering by Cloze Translation") trained extractive readers on such
"identity-mapped" cloze questions to a useful share of supervised accuracy.

It exists because the embedded model is too small to write questions for a given answer: on the
first four squad-dev chunks it wrote 20 usable questions for 21 candidates, mostly about the
article's topic ("What is the 1973 oil crisis?"), and the grounded model's answer matched the
intended answer for none of them. On the first eight chunks, 7 of the 41 cloze questions passed
every filter.
Deterministic and instant; nothing leaves the machine.

>>> ClozeTeacher().write([QuestionRequest("Warranty", "The warranty is valid for two years.",
...                                       "two years")])
['How long is the warranty valid for?']
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ragtune.synth.teacher import QuestionRequest

__all__ = ["ClozeTeacher", "cloze_question"]

_TIME_UNITS = re.compile(
    r"\b(?:seconds?|minutes?|hours?|days?|weeks?|months?|years?|decades?|centuries|century)\b", re.I
)
_MONEY = re.compile(
    r"[$£€¥]|\b(?:dollars?|euros?|pounds?|cents?|yen|francs?|marks?)\b|%|percent", re.I
)
_DATE = re.compile(
    r"\b(?:1[0-9]{3}|20[0-9]{2})s?\b|\b(?:January|February|March|April|May|June|"
    r"July|August|September|October|November|December)\b"
)
_PREPOSITION = re.compile(
    r"\b(?:in|on|at|since|by|from|until|during|before|after|of)\s+(?:the\s+)?$", re.I
)
_ORDINAL_ERA = re.compile(r"\d+(?:st|nd|rd|th)\b.*\b(?:century|centuries)\b", re.I)
_ORGANISATION = re.compile(
    r"\b(?:Industries|Inc|Ltd|Company|Corporation|University|College|Council|Party|"
    r"Organi[sz]ation|Association|Bank|Group|Church|Army|Navy|Museum|Library|School|"
    r"Institute|Agency|Ministry)\b"
)
_AUXILIARY = re.compile(
    r"^(?P<subject>.+?)\s+(?P<aux>is|are|was|were|can|could|will|would|has|have|had|may|might|"
    r"must|should|does|do|did)\s+(?P<rest>.+)$"
)


def cloze_question(sentence: str, answer: str) -> str:
    """The question for ``answer`` in ``sentence`` (see the module doc); empty when the
    sentence does not hold the answer."""
    at = sentence.find(answer)
    if at < 0 or not answer.strip():
        return ""
    before, after = sentence[:at], sentence[at + len(answer) :]
    word = _question_word(answer, before)
    if word in ("When", "Where"):
        before = _PREPOSITION.sub("", before)
    rest = " ".join(f"{before.strip()} {after.strip()}".split()).rstrip(" .;:!,")
    rest = re.sub(r"\s+([,;:])", r"\1", rest).strip(" ,;:")
    if not rest:
        return ""
    rest = rest[0].lower() + rest[1:] if _plain_start(rest) else rest
    inverted = _AUXILIARY.match(rest)  # "the warranty is valid" -> "is the warranty valid"
    if inverted and before.strip() and len(inverted["subject"].split()) <= 8:
        rest = f"{inverted['aux']} {inverted['subject']} {inverted['rest']}"
    return f"{word} {rest}?"


def _question_word(answer: str, before: str) -> str:
    if _DATE.search(answer) or _ORDINAL_ERA.search(answer):
        return "When"
    if any(ch.isdigit() for ch in answer) or re.match(
        r"(?i)(?:one|two|three|four|five|six|"
        r"seven|eight|nine|ten|twelve|twenty|"
        r"hundred|thousand|million)\b",
        answer,
    ):
        if _TIME_UNITS.search(answer):
            return "How long"
        return "How much" if _MONEY.search(answer) else "How many"
    if answer[:1].isupper() and re.search(r"\b(?:in|at|from|to|near)\s+$", before):
        return "Where"
    words = answer.split()
    person = 2 <= len(words) <= 3 and all(w[:1].isupper() and w[1:].islower() for w in words)
    return "Who" if person and not _ORGANISATION.search(answer) else "What"


def _plain_start(text: str) -> bool:
    """Whether ``text`` starts with a function word, lower-cased inside a question (any other
    capitalised word may be a name and keeps its capital)."""
    return text.split()[0] in _OPENERS


_OPENER_WORDS = (
    "The A An This That These Those It Its They Their There In On At By For From With After "
    "Before During Since When While Although However Some Many Most All Every Each About Around "
    "Nearly Almost Over Under"
)
_OPENERS = frozenset(_OPENER_WORDS.split())


class ClozeTeacher:
    """Questions by rule from the sentence (see the module doc)."""

    @property
    def name(self) -> str:
        return "cloze"

    def write(self, requests: Sequence[QuestionRequest]) -> list[str]:
        return [cloze_question(r.sentence, r.answer) for r in requests]
