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

__all__ = [
    "answer_recall_at_k",
    "contains_answer",
    "exact_match",
    "normalise",
    "percentile",
    "recall_at_k",
    "reciprocal_rank",
    "token_f1",
]

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


def contains_answer(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when a gold answer appears, word for word after normalisation, in ``prediction``
    (ALCE's string exact match: fair to answers written as whole sentences).

    >>> contains_answer("The tower opened in 1889 [1].", ["1889", "March 1889"])
    1.0
    >>> contains_answer("It opened in 18890.", ["1889"])
    0.0
    """
    words = normalise(prediction).split()
    for gold in golds:
        wanted = normalise(gold).split()
        if wanted and any(
            words[i : i + len(wanted)] == wanted for i in range(len(words) - len(wanted) + 1)
        ):
            return 1.0
    return 0.0


def recall_at_k(ranked: Sequence[str], gold: str, k: int) -> float:
    """1.0 when ``gold`` is among the first ``k`` ids of ``ranked``.

    >>> recall_at_k(["a", "b", "c"], "b", 1), recall_at_k(["a", "b", "c"], "b", 2)
    (0.0, 1.0)
    """
    return float(gold in ranked[:k])


def reciprocal_rank(ranked: Sequence[str], gold: str) -> float:
    """1 / the rank of the first ``gold`` in ``ranked`` (0.0 when absent).

    >>> reciprocal_rank(["a", "b", "b"], "b"), reciprocal_rank(["a"], "z")
    (0.5, 0.0)
    """
    for rank, found in enumerate(ranked, start=1):
        if found == gold:
            return 1.0 / rank
    return 0.0


def answer_recall_at_k(texts: Sequence[str], golds: Sequence[str], k: int) -> float:
    """1.0 when a gold answer appears (normalised, word for word) in one of the first ``k`` texts.

    >>> answer_recall_at_k(["Paris is big.", "It opened in 1889."], ["1889"], 1)
    0.0
    >>> answer_recall_at_k(["Paris is big.", "It opened in 1889."], ["1889"], 2)
    1.0
    """
    return max((contains_answer(text, golds) for text in texts[:k]), default=0.0)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), interpolating linearly between closest ranks.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([5.0], 95)
    (2.5, 5.0)
    """
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
