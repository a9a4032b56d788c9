"""Answer metrics, pure: SQuAD's normalisation, exact match and token F1 (best over gold answers).

>>> normalise("The  Eiffel-Tower!")
'eiffel tower'
>>> exact_match("the Eiffel Tower", ["Eiffel Tower", "Paris"])
1.0
>>> round(token_f1("It opened in 1889 in Paris", ["1889"]), 3)
0.286
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

__all__ = ["exact_match", "normalise", "token_f1"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalise(text: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, squash white space (SQuAD)."""
    text = "".join(" " if ch in _PUNCT else ch for ch in text.lower())
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    target = normalise(prediction)
    return float(any(target == normalise(g) for g in golds))


def token_f1(prediction: str, golds: Sequence[str]) -> float:
    predicted = normalise(prediction).split()
    best = 0.0
    for gold in golds:
        wanted = normalise(gold).split()
        common = sum((Counter(predicted) & Counter(wanted)).values())
        if not predicted or not wanted:
            best = max(best, float(predicted == wanted))
            continue
        if common:
            precision, recall = common / len(predicted), common / len(wanted)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best
