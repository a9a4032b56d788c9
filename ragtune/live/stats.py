"""The statistics of a canary: ratio estimates with their variance, the one-sided test of each
watched metric, and the decision at a look. Pure.

**Estimate.** A metric is a ratio of sums over requests (:mod:`ragtune.live.metrics`). The split
randomises units (users; a request without a user id is its own unit), and one user's requests
are not independent, so the variance is taken over units: with unit totals ``(x_i, y_i)`` and
``R = sum(x) / sum(y)``, the delta method gives ::

    Var(R) ~= sum_i (x_i - R * y_i)**2 / (n - 1) / n / mean(y)**2

(Deng, Knoblich & Lu, "Applying the Delta Method in Metric Analytics", KDD 2018, section 3:
ratio metrics whose analysis unit differs from the randomisation unit; Cochran, *Sampling
Techniques*, 3rd ed., 1977, section 6.3.)

**Tests.** For each watched metric, ``drop`` is how much worse the canary is than current in
the metric's worse direction, ``se = sqrt(Var_current + Var_canary)`` (Welch's unequal
variances, normal approximation, large samples), and two one-sided tests at the same level:

- *worse*: H0 ``drop <= allowed`` is rejected, ``(drop - allowed) / se > z(1 - level)``: the
  canary is worse beyond its allowed drop, and is rolled back;
- *within*: H0 ``drop >= allowed`` is rejected, i.e. the upper confidence bound
  ``drop + z(1 - level) * se`` is below ``allowed`` (a non-inferiority test): the data show the
  canary is not worse beyond its drop;
- neither: *unsure*, more data are needed. Not being shown worse is not being shown fine: an
  underpowered canary is never called "ready to promote". An allowed drop of 0 can only be
  shown by a canary that is better.

A canary equal to current has ``drop = 0``, so with an allowed drop above zero a false rollback
is much rarer than the level.

**Repeated looks.** A canary is judged at ``looks`` checkpoints (after ``min_requests``,
``2 * min_requests`` ... canary requests) on ``M`` metrics. Testing every look at level
``alpha`` would roll back equal canaries far more often than ``alpha`` (Armitage, McPherson &
Rowe, JRSS A 132, 1969: five looks at 5% give about 14%). Each test therefore runs at
``alpha / (looks * M)``: by Bonferroni's inequality (Dunn, JASA 56, 1961) the chance of any
false rollback over the whole canary is at most ``alpha``, whatever the dependence between
looks and metrics. Group-sequential boundaries (Pocock, Biometrika 64, 1977; O'Brien & Fleming,
Biometrics 35, 1979) spend ``alpha`` less conservatively, but rely on independent increments at
known information fractions, which a live split with clustered users and correlated metrics does
not give; Bonferroni holds without them, at a small cost in power (five looks: 1% per look
instead of Pocock's 1.6%, two-sided).

**Decision.** At a look: roll back when any metric is worse beyond its allowed drop; "ready to
promote" when every metric is shown within its allowed drop; else keep collecting, and after
the last look "inconclusive" (a person decides, or starts a canary with more requests). A metric
with fewer than :data:`MIN_UNITS` units with data in either arm is not tested. Both errors are
bounded by ``alpha`` over the whole canary: rolling back a canary that is within its drops, and
calling one "ready" that is worse beyond them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Literal

from ragtune.generate.canary import METRICS, CanaryPlan
from ragtune.live.metrics import UnitTotals, pairs

__all__ = [
    "MIN_UNITS",
    "CanaryDecision",
    "MetricTest",
    "RatioEstimate",
    "decide_look",
    "drop_test",
    "ratio_estimate",
    "summarise",
]

MIN_UNITS = 20
"""Units with data (a denominator above 0) each arm needs before a metric is tested: below it
the normal approximation is not to be trusted."""

_NORMAL = NormalDist()


@dataclass(frozen=True)
class RatioEstimate:
    """A ratio of sums over units and its delta-method variance."""

    value: float
    variance: float
    units: int
    """Units with a denominator above 0."""


def ratio_estimate(unit_pairs: Sequence[tuple[float, float]]) -> RatioEstimate:
    """``sum(x) / sum(y)`` over units ``(x, y)`` and its variance (see the module doc).

    >>> e = ratio_estimate([(1, 1), (0, 1), (1, 1), (0, 1)])
    >>> e.value, round(e.variance, 4), e.units
    (0.5, 0.0833, 4)
    """
    n = len(unit_pairs)
    total_y = sum(y for _, y in unit_pairs)
    units = sum(1 for _, y in unit_pairs if y > 0)
    if n == 0 or total_y <= 0:
        return RatioEstimate(0.0, 0.0, 0)
    value = sum(x for x, _ in unit_pairs) / total_y
    if n < 2:
        return RatioEstimate(value, 0.0, units)
    mean_y = total_y / n
    spread = sum((x - value * y) ** 2 for x, y in unit_pairs) / (n - 1)
    return RatioEstimate(value, spread / n / mean_y**2, units)


Verdict = Literal["worse", "within", "unsure", "too few"]


@dataclass(frozen=True)
class MetricTest:
    """The test of one watched metric at one look (see the module doc)."""

    metric: str
    current: float
    canary: float
    drop: float
    """How much worse the canary is, in the metric's unit (negative: better)."""
    allowed: float
    upper: float
    """One-sided upper confidence bound of the drop at level ``alpha``: "within" when it is
    below ``allowed``."""
    z: float
    p: float
    """One-sided p-value of "the drop is larger than allowed"."""
    alpha: float
    units_current: int
    units_canary: int
    verdict: Verdict


def drop_test(
    metric: str,
    current: RatioEstimate,
    canary: RatioEstimate,
    *,
    allowed: float,
    alpha: float,
    min_units: int = MIN_UNITS,
) -> MetricTest:
    """Whether the canary is worse than current on ``metric`` by more than ``allowed`` (worse),
    shown not to be (within), or neither yet (unsure); see the module doc.

    >>> same = RatioEstimate(0.30, 0.0001, 4000)
    >>> drop_test("abstain_rate", same, RatioEstimate(0.31, 0.0001, 400), allowed=0.05, alpha=0.005).verdict
    'within'
    >>> drop_test("abstain_rate", same, RatioEstimate(0.31, 0.002, 60), allowed=0.05, alpha=0.005).verdict
    'unsure'
    >>> drop_test("abstain_rate", same, RatioEstimate(0.70, 0.003, 60), allowed=0.05, alpha=0.005).verdict
    'worse'
    """
    sign = 1.0 if METRICS[metric].higher_is_worse else -1.0
    drop = sign * (canary.value - current.value)
    se = max(math.sqrt(current.variance + canary.variance), 1e-12)
    z = (drop - allowed) / se
    p = 1.0 - _NORMAL.cdf(z)
    upper = drop + _NORMAL.inv_cdf(1.0 - alpha) * se
    verdict: Verdict = (
        "too few"
        if min(current.units, canary.units) < min_units
        else "worse"
        if p < alpha
        else "within"
        if upper < allowed
        else "unsure"
    )
    return MetricTest(
        metric,
        round(current.value, 6),
        round(canary.value, 6),
        round(drop, 6),
        allowed,
        round(upper, 6),
        round(z, 4),
        p,
        alpha,
        current.units,
        canary.units,
        verdict,
    )


Action = Literal["rollback", "ready to promote", "collecting", "inconclusive"]


@dataclass(frozen=True)
class CanaryDecision:
    """What a look found: every watched metric's test and the action it leads to."""

    look: int
    looks: int
    current_version: int
    canary_version: int
    current_requests: int
    canary_requests: int
    tests: tuple[MetricTest, ...]

    @property
    def action(self) -> Action:
        if any(t.verdict == "worse" for t in self.tests):
            return "rollback"
        if all(t.verdict == "within" for t in self.tests):
            return "ready to promote"
        return "inconclusive" if self.look >= self.looks else "collecting"

    @property
    def reason(self) -> str:
        """One line: the metrics that failed and their numbers, or why it goes on."""
        where = f"look {self.look}/{self.looks} at {self.canary_requests} canary requests"
        worse = [t for t in self.tests if t.verdict == "worse"]
        if worse:
            parts = [
                f"{t.metric} worse by {t.drop:.4g} (v{self.current_version} {t.current:.4g}, "
                f"v{self.canary_version} {t.canary:.4g}; allowed {t.allowed:g}; "
                f"p={t.p:.2g} < {t.alpha:.2g})"
                for t in worse
            ]
            return f"{where}: " + "; ".join(parts)
        bounds = "; ".join(
            f"{t.metric} drop <= {t.upper:.3g} (allowed {t.allowed:g})"
            if t.verdict != "too few"
            else f"{t.metric}: too few users with data ({min(t.units_current, t.units_canary)}"
            f" < {MIN_UNITS})"
            for t in self.tests
        )
        if self.action == "ready to promote":
            return f"{where}: every metric within its allowed drop; {bounds}"
        if self.action == "inconclusive":
            return (
                f"{where}: the last look, and not every metric is shown within its allowed "
                f"drop (promote or roll back by hand, or run a canary with more requests); "
                f"{bounds}"
            )
        return f"{where}: not yet shown within the allowed drops, collecting; {bounds}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["tests"] = [asdict(t) for t in self.tests]
        data["action"], data["reason"] = self.action, self.reason
        return data


def decide_look(
    plan: CanaryPlan,
    look: int,
    versions: tuple[int, int],
    current: Sequence[UnitTotals],
    canary: Sequence[UnitTotals],
) -> CanaryDecision:
    """Test every metric ``plan`` watches on the units of both arms, at the corrected level.

    ``versions`` is ``(current, canary)``.
    """
    tests = tuple(
        drop_test(
            metric,
            ratio_estimate(pairs(current, metric)),
            ratio_estimate(pairs(canary, metric)),
            allowed=allowed,
            alpha=plan.test_alpha,
        )
        for metric, allowed in sorted(plan.max_drop.items())
    )
    return CanaryDecision(
        look,
        plan.looks,
        versions[0],
        versions[1],
        sum(u.requests for u in current),
        sum(u.requests for u in canary),
        tests,
    )


def summarise(units: Sequence[UnitTotals]) -> Mapping[str, RatioEstimate]:
    """Every metric's estimate over ``units`` (for status reports)."""
    return {metric: ratio_estimate(pairs(units, metric)) for metric in METRICS}
