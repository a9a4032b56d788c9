"""The filters a generated question must pass, pure, in the order they run:

1. :func:`gives_away_answer`: the question must not contain its answer;
2. :func:`round_trip`: the retriever must rank the question's source chunk in its top k (a
   question the index cannot find its way back from would teach from the wrong passages);
3. :func:`answer_matches`: the grounded model's answer over the retrieved passages must match
   the candidate (token F1, SQuAD's, at least a threshold): the question asks what we think;
4. :class:`NearDuplicates`: a question too close to one already kept is dropped.

>>> gives_away_answer("Is the warranty two years long?", "two years")
True
>>> answer_matches("Two years [1].", "two years", 0.5)
True
>>> answer_matches("I don't know: the documents I have do not answer this.", "two years", 0.5)
False
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from ragtune.check.citations import strip_markers
from ragtune.eval.metrics import contains_answer, normalise, token_f1
from ragtune.generate.prompts import is_abstention
from ragtune.text import content_terms

__all__ = [
    "NearDuplicates",
    "answer_matches",
    "gives_away_answer",
    "jaccard",
    "round_trip",
]


def gives_away_answer(question: str, answer: str) -> bool:
    """Whether ``answer`` appears word for word (after SQuAD normalisation) in ``question``."""
    return contains_answer(question, [answer]) > 0.0


def round_trip(ranked: Sequence[str], source: str, k: int) -> bool:
    """Whether the chunk id ``source`` is among the first ``k`` of ``ranked`` chunk ids.

    >>> round_trip(["a", "b", "c"], "c", 2), round_trip(["a", "b", "c"], "b", 2)
    (False, True)
    """
    return source in ranked[:k]


def answer_matches(prediction: str, answer: str, threshold: float) -> bool:
    """Whether the grounded model's ``prediction`` (markers dropped) reaches token F1
    ``threshold`` against ``answer``; an abstention never does."""
    if is_abstention(prediction):
        return False
    return token_f1(strip_markers(prediction), [answer]) >= threshold


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a ∩ b| / |a ∪ b| (1.0 for two empty sets).

    >>> jaccard(frozenset("ab"), frozenset("bc"))
    0.3333333333333333
    """
    union = a | b
    return len(a & b) / len(union) if union else 1.0


class NearDuplicates:
    """The questions kept so far, to tell a near-duplicate: content words (stemmed, stop words
    out; :func:`ragtune.text.content_terms`) overlapping one kept question's by
    ``max_similarity`` or more (Jaccard), or the same normalised text.

    An inverted index over content words means a new question is compared only with the kept
    questions that share a word with it.
    """

    def __init__(self, max_similarity: float, questions: Iterable[str] = ()) -> None:
        self._max = max_similarity
        self._terms: list[frozenset[str]] = []
        self._texts: set[str] = set()
        self._by_term: defaultdict[str, list[int]] = defaultdict(list)
        for question in questions:
            self.add(question)

    def __len__(self) -> int:
        return len(self._terms)

    def is_duplicate(self, question: str) -> bool:
        if normalise(question) in self._texts:
            return True
        terms = content_terms(question)
        near = {i for term in terms for i in self._by_term.get(term, ())}
        return any(jaccard(terms, self._terms[i]) >= self._max for i in near)

    def add(self, question: str) -> None:
        terms = content_terms(question)
        for term in terms:
            self._by_term[term].append(len(self._terms))
        self._terms.append(terms)
        self._texts.add(normalise(question))
