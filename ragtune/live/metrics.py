"""What one answer contributes to the live metrics a canary watches, and how a unit's totals
become each metric's numerator and denominator. Pure.

Every metric is a ratio of sums over the requests of one version: the abstention rate is
abstentions over requests; the share of supported sentences is supported sentences over checked
sentences; feedback is "up" ratings over ratings. The unit of the statistics is the unit the
split randomises, a user (or a request sent without a user id), so a unit's totals are the sums
over its requests (see :mod:`ragtune.live.stats`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ragtune.generate.canary import METRICS
from ragtune.types import Answer

__all__ = ["Observation", "UnitTotals", "observe", "pairs", "totals_of"]


@dataclass(frozen=True)
class Observation:
    """The numbers of one answer that the live metrics use (no text)."""

    abstained: bool
    sentences: int
    """Sentences the checker judged: those kept and those dropped."""
    supported: int
    support_sum: float
    """Sum of the checked sentences' support probabilities."""
    citation_precision: float
    latency_s: float
    """Seconds from the question's arrival at the Assistant to its answer."""


def observe(answer: Answer) -> Observation:
    """The observation of one answer."""
    checked = answer.checked
    return Observation(
        abstained=answer.abstained,
        sentences=len(checked),
        supported=sum(1 for s in checked if s.supported),
        support_sum=float(sum(s.support for s in checked)),
        citation_precision=float(answer.citation_precision),
        latency_s=float(answer.timings.total),
    )


@dataclass(frozen=True)
class UnitTotals:
    """Sums over the requests of one unit (a user, or one request without a user id)."""

    requests: int
    abstained: int
    sentences: int
    supported: int
    support_sum: float
    checked_answers: int
    """Answers with at least one checked sentence (citation precision is over these)."""
    precision_sum: float
    latency_sum: float
    rated: int
    up: int


def totals_of(observations: Sequence[tuple[Observation, str | None]]) -> UnitTotals:
    """One unit's totals from its observations and their ratings (``up``, ``down`` or None)."""
    return UnitTotals(
        requests=len(observations),
        abstained=sum(o.abstained for o, _ in observations),
        sentences=sum(o.sentences for o, _ in observations),
        supported=sum(o.supported for o, _ in observations),
        support_sum=sum(o.support_sum for o, _ in observations),
        checked_answers=sum(1 for o, _ in observations if o.sentences),
        precision_sum=sum(o.citation_precision for o, _ in observations if o.sentences),
        latency_sum=sum(o.latency_s for o, _ in observations),
        rated=sum(1 for _, r in observations if r is not None),
        up=sum(1 for _, r in observations if r == "up"),
    )


def pairs(units: Sequence[UnitTotals], metric: str) -> list[tuple[float, float]]:
    """Each unit's ``(numerator, denominator)`` of ``metric`` (a name of :data:`METRICS`).

    >>> unit = UnitTotals(4, 1, 6, 3, 4.2, 3, 2.5, 2.0, 2, 1)
    >>> pairs([unit], "abstain_rate"), pairs([unit], "support"), pairs([unit], "feedback")
    ([(1.0, 4.0)], [(3.0, 6.0)], [(1.0, 2.0)])
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; the metrics are {', '.join(METRICS)}")
    pick = {
        "abstain_rate": lambda u: (u.abstained, u.requests),
        "support": lambda u: (u.supported, u.sentences),
        "support_score": lambda u: (u.support_sum, u.sentences),
        "citation_precision": lambda u: (u.precision_sum, u.checked_answers),
        "latency_s": lambda u: (u.latency_sum, u.requests),
        "feedback": lambda u: (u.up, u.rated),
    }[metric]
    return [(float(x), float(y)) for x, y in map(pick, units)]
