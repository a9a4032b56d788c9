"""Citation recall and precision as ALCE defines them (Gao et al., 2023, "Enabling Large Language
Models to Generate Text with Citations"). Pure: the entailment judge is passed in.

For each sentence *s* with citation set *C*:

* **recall** is 1 when *C* is non-empty and the cited passages together entail *s*, else 0;
* each citation *c* in *C* is **precise** when *C* entails *s* and *c* is not irrelevant, where
  *c* is irrelevant if *c* alone does not entail *s* and *C* without *c* still does. A
  citation of a sentence that *C* does not support is not precise.

The answer's recall is the mean over its sentences; its precision is precise citations over
all citations (1.0 by convention when it cites nothing, since nothing cited is wrong; the
caller sees ``citations == 0``). An out-of-range marker counts as a citation that supports
nothing: it lowers precision and, alone, gives recall 0.

>>> judge = lambda passages, sentence: 1 in passages        # only passage 1 supports anything
>>> score = alce_scores([(1,), (1, 2), (2,), ()], judge)
>>> score.recall, score.precision, score.citations
(0.5, 0.5, 4)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["AlceScore", "alce_scores"]

Judge = Callable[[frozenset[int], int], bool]
"""``judge(passages, sentence_index)``: do these passages together entail that sentence?"""


@dataclass(frozen=True)
class AlceScore:
    recall: float
    precision: float
    sentences: int
    citations: int
    sentence_recall: tuple[int, ...]
    """1 or 0 per sentence."""


def alce_scores(cited: Sequence[Sequence[int]], judge: Judge) -> AlceScore:
    """Score an answer whose sentence *i* cites passages ``cited[i]`` (invalid numbers included)."""
    recalls: list[int] = []
    precise = total = 0
    for index, citations in enumerate(cited):
        full = frozenset(citations)
        total += len(citations)
        supported = bool(full) and judge(full, index)
        recalls.append(1 if supported else 0)
        if not supported:
            continue
        for c in citations:
            if len(full) == 1:
                precise += 1
                continue
            alone = judge(frozenset([c]), index)
            rest = judge(full - {c}, index)
            if alone or not rest:
                precise += 1
    recall = sum(recalls) / len(recalls) if recalls else 0.0
    precision = precise / total if total else 1.0
    return AlceScore(recall, precision, len(recalls), total, tuple(recalls))
