"""Bootstrap intervals for per-question metrics, alone and paired between two runs. Pure.

A metric is a ratio of sums over questions: a plain mean has a denominator of 1 per question,
and a share such as "supported sentences" has the question's sentence count. Resampling whole
questions keeps the questions' sentences together, as they were produced.

>>> e = bootstrap([1.0, 0.0, 1.0, 1.0], [1.0] * 4, resamples=2000, seed=0)
>>> e.value, 0.0 <= e.low <= e.value <= e.high <= 1.0
(0.75, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Estimate", "bootstrap", "paired_bootstrap", "ratio"]

RESAMPLES = 1000


@dataclass(frozen=True)
class Estimate:
    """A value and its bootstrap interval (``level`` two-sided, percentile method)."""

    value: float
    low: float
    high: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0.0 or self.high < 0.0


def ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """Sum of numerators over sum of denominators (0.0 when there is nothing to divide by)."""
    total = float(sum(denominators))
    return float(sum(numerators)) / total if total else 0.0


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.nanpercentile(samples, [tail, 100.0 - tail])
    return float(low), float(high)


def _resampled_ratios(num: np.ndarray, den: np.ndarray, picks: np.ndarray) -> np.ndarray:
    totals = den[picks].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, num[picks].sum(axis=1) / totals, np.nan)


def bootstrap(
    numerators: Sequence[float],
    denominators: Sequence[float],
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> Estimate:
    """The ratio of sums and its bootstrap interval over questions."""
    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    if num.shape != den.shape:
        raise ValueError("numerators and denominators differ in length")
    value = ratio(numerators, denominators)
    if len(num) < 2:
        return Estimate(value, value, value, len(num))
    picks = np.random.default_rng(seed).integers(0, len(num), size=(resamples, len(num)))
    low, high = _interval(_resampled_ratios(num, den, picks), level)
    return Estimate(value, low, high, len(num))


def paired_bootstrap(
    a: tuple[Sequence[float], Sequence[float]],
    b: tuple[Sequence[float], Sequence[float]],
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> Estimate:
    """The difference ``b - a`` of a metric measured on the same questions, in the same order,
    with an interval from resampling questions (both runs together, so the pairing holds)."""
    a_num, a_den = (np.asarray(x, dtype=np.float64) for x in a)
    b_num, b_den = (np.asarray(x, dtype=np.float64) for x in b)
    if not (a_num.shape == a_den.shape == b_num.shape == b_den.shape):
        raise ValueError("a paired comparison needs the same questions in both runs")
    value = ratio(b_num.tolist(), b_den.tolist()) - ratio(a_num.tolist(), a_den.tolist())
    if len(a_num) < 2:
        return Estimate(value, value, value, len(a_num))
    picks = np.random.default_rng(seed).integers(0, len(a_num), size=(resamples, len(a_num)))
    diffs = _resampled_ratios(b_num, b_den, picks) - _resampled_ratios(a_num, a_den, picks)
    low, high = _interval(diffs, level)
    return Estimate(value, low, high, len(a_num))
