"""Should the assistant answer at all? Cheap signals that separate answerable questions from
those the passages do not answer, and the calibrated model that combines them.

A grounded model's own abstention alone does not separate the two well: unanswerable questions
written against the very paragraph that is retrieved (SQuAD 2.0's kind) look answerable, and
the model trades abstentions on them for abstentions on answerable ones almost one for one. So
the generator is asked for its probability of starting the abstention sentence, decodes its
best answer anyway, and the decision combines that probability with what the answer and the
passage say:

* ``abstain_logit``: log-odds of the model's probability of starting the abstention sentence;
* ``type_fit``: whether the answer has the kind of value the question asks for ("how many"
  wants a number, "when" a date, "who" a name): +1 fits, -1 does not, 0 no expectation;
* ``key_terms``: the share of the question's content terms found in the passage sentence that
  holds the answer (a question about a detail the passage does not state misses one);
* ``in_passage``: whether the answer's words appear, in order, in the passage it cites.

They are combined by a logistic model (:class:`~ragtune.check.support.Calibration`) fitted on
labelled questions, shipped with the grounding adapter it was fitted for. All functions here
are pure.

>>> expected_type("How many members does the parliament have?")
'number'
>>> answer_signals("When did the war end?", "1763 [2].", ["", "The war ended in 1763."], 0.1)
{'abstain_logit': -2.1972, 'type_fit': 1.0, 'key_terms': 1.0, 'in_passage': 1.0}
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from ragtune.check.citations import markers, strip_markers
from ragtune.check.support import Calibration
from ragtune.errors import ConfigError
from ragtune.text import content_terms, sentence_spans

__all__ = [
    "ANSWERABILITY_FILE",
    "ANSWERABILITY_SIGNALS",
    "AnswerType",
    "answer_signals",
    "expected_type",
    "load_answerability",
    "type_fit",
]

ANSWERABILITY_FILE = "answerability.json"
ANSWERABILITY_SIGNALS = ("abstain_logit", "type_fit", "key_terms", "in_passage")

AnswerType = Literal["number", "date", "person", "place", "any"]

_TYPES: tuple[tuple[AnswerType, re.Pattern[str]], ...] = (
    (
        "date",
        re.compile(
            r"^(when\b|(in |on |by |since |until )?(what|which) (year|years|date|day|month|"
            r"century|decade|era|period|time)\b|what time\b|how long ago\b)",
            re.IGNORECASE,
        ),
    ),
    (
        "number",
        re.compile(
            r"^(how (many|much|long|far|old|large|big|high|tall|wide|deep|fast|often|heavy|"
            r"small)\b|(what|which) (percentage|percent|number|amount|fraction|proportion|"
            r"share|rate|size|population|age|cost|price)\b)",
            re.IGNORECASE,
        ),
    ),
    ("person", re.compile(r"^(who|whom|whose)\b", re.IGNORECASE)),
    (
        "place",
        re.compile(
            r"^(where\b|(in |from |to )?(what|which) (city|country|state|region|place|"
            r"town|continent|nation|location)\b)",
            re.IGNORECASE,
        ),
    ),
)
_NUMBER_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "seventy",
    "eighty",
    "ninety",
    "hundred",
    "thousand",
    "million",
    "billion",
    "trillion",
    "dozen",
    "half",
    "quarter",
    "third",
    "several",
    "few",
    "many",
]
_NUMBER = re.compile(r"\d|\b(" + "|".join(_NUMBER_WORDS) + r")\b", re.IGNORECASE)
_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "spring",
    "summer",
    "autumn",
    "fall",
    "winter",
]
_DATE = re.compile(
    r"\b(1\d{3}|20\d{2}|\d{1,2}(st|nd|rd|th)|\d0s|\d{3}s|century|centuries|decade|bc|ad|"
    r"today|yesterday|ago|" + "|".join(_MONTHS) + r")\b",
    re.IGNORECASE,
)
_NAME = re.compile(r"\b[A-Z][\w'’-]+")


def expected_type(question: str) -> AnswerType:
    """The kind of value a question asks for, from its opening words (``any`` when unclear)."""
    text = question.strip()
    for kind, pattern in _TYPES:
        if pattern.search(text):
            return kind
    return "any"


def type_fit(question: str, answer: str) -> float:
    """+1 when ``answer`` has the kind of value ``question`` asks for, -1 when it does not,
    0 when the question sets no expectation."""
    kind = expected_type(question)
    if kind == "any":
        return 0.0
    if kind == "number":
        ok = bool(_NUMBER.search(answer))
    elif kind == "date":
        ok = bool(_DATE.search(answer)) or bool(re.search(r"\d", answer))
    else:  # a person, group or place is named: a capitalised word
        ok = bool(_NAME.search(answer))
    return 1.0 if ok else -1.0


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _answer_sentence(answer: str, passage: str) -> tuple[str, bool]:
    """The passage sentence holding the answer's words in order, and whether one does;
    otherwise the sentence sharing most words with the answer."""
    wanted = _words(answer)
    spans = [passage[a:b] for a, b in sentence_spans(passage)] or [passage]
    if wanted:
        for sentence in spans:
            words = _words(sentence)
            n = len(wanted)
            if any(words[i : i + n] == wanted for i in range(len(words) - n + 1)):
                return sentence, True
    best = max(spans, key=lambda s: len(set(_words(s)) & set(wanted)))
    return best, False


def answer_signals(
    question: str,
    answer: str,
    passages: Sequence[str],
    abstain_probability: float,
) -> dict[str, float]:
    """The signals of :data:`ANSWERABILITY_SIGNALS` for a drafted ``answer`` (with its ``[n]``
    markers) over the ``passages`` the prompt showed, ``[1]`` first. Without a valid marker the
    first passage is the one it is read against."""
    claim = strip_markers(answer).rstrip(".").strip()
    numbers = [n for n in markers(answer) if 1 <= n <= len(passages)]
    passage = passages[numbers[0] - 1] if numbers else (passages[0] if passages else "")
    sentence, found = _answer_sentence(claim, passage) if passage else ("", False)
    terms = content_terms(question)
    covered = len(terms & content_terms(sentence)) / len(terms) if terms else 1.0
    p = min(max(abstain_probability, 1e-6), 1 - 1e-6)
    return {
        "abstain_logit": round(math.log(p / (1 - p)), 4),
        "type_fit": type_fit(question, claim),
        "key_terms": round(covered, 4),
        "in_passage": 1.0 if found else 0.0,
    }


def load_answerability(path: Path) -> Calibration:
    """Read a fitted answerability model (``answerability.json``); a missing or damaged file is
    a :class:`~ragtune.errors.ConfigError` naming the fix."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        calibration = Calibration(
            signals=tuple(data["signals"]),
            weights=tuple(float(w) for w in data["weights"]),
            bias=float(data["bias"]),
            threshold=float(data["threshold"]),
            means=tuple(float(m) for m in data["means"]),
            scales=tuple(float(s) for s in data["scales"]),
            source=str(data.get("source", "")),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            str(path),
            [
                (
                    "",
                    f"not a readable answerability model ({exc}); refit it with "
                    "scripts/train_grounding.py, or set abstain.answerability: false",
                )
            ],
        ) from exc
    if set(calibration.signals) - set(ANSWERABILITY_SIGNALS):
        raise ConfigError(
            str(path), [("signals", f"unknown signals in {list(calibration.signals)}")]
        )
    return calibration
