"""Two runs side by side: a paired A/B comparison, and a drift check for regressions. Pure.

``compare_runs`` pairs the runs on the questions both answered and gives, per metric, the
difference B - A with a paired bootstrap 95% interval; a difference whose interval excludes 0
is called a change. ``drift`` compares two summaries (the runs may hold different questions)
and lists each metric that got worse by more than ``max_drop`` (absolute), and the latency
when it rose by more than a given share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ragtune.eval.stats import Estimate, paired_bootstrap
from ragtune.eval.summary import METRICS, metric_parts, value

__all__ = ["Comparison", "MetricDelta", "Regression", "compare_runs", "comparison_table", "drift"]

Record = Mapping[str, Any]


@dataclass(frozen=True)
class MetricDelta:
    name: str
    a: float | None
    b: float | None
    delta: Estimate | None
    """B - A on the questions where the metric applies in both runs (None: no such question)."""
    higher_is_better: bool

    @property
    def verdict(self) -> str:
        """``better``, ``worse`` or ``no change`` (the interval holds 0)."""
        if self.delta is None or not self.delta.excludes_zero:
            return "no change"
        improved = (self.delta.value > 0) == self.higher_is_better
        return "better" if improved else "worse"


@dataclass(frozen=True)
class Comparison:
    metrics: tuple[MetricDelta, ...]
    paired: int
    """Questions in both runs."""
    only_a: int
    only_b: int


def compare_runs(a: Sequence[Record], b: Sequence[Record], *, seed: int = 0) -> Comparison:
    """Run A against run B, paired on question ids."""
    a_ids = {r["id"] for r in a}
    b_ids = {r["id"] for r in b}
    common = a_ids & b_ids
    deltas = []
    for metric in METRICS:
        a_parts = metric_parts(metric, (r for r in a if r["id"] in common))
        b_parts = metric_parts(metric, (r for r in b if r["id"] in common))
        both = sorted(set(a_parts) & set(b_parts))
        if not both:
            deltas.append(MetricDelta(metric.name, None, None, None, metric.higher_is_better))
            continue
        a_pair = ([a_parts[i][0] for i in both], [a_parts[i][1] for i in both])
        b_pair = ([b_parts[i][0] for i in both], [b_parts[i][1] for i in both])
        estimate = paired_bootstrap(a_pair, b_pair, seed=seed)
        a_value = sum(a_pair[0]) / sum(a_pair[1]) if sum(a_pair[1]) else 0.0
        b_value = sum(b_pair[0]) / sum(b_pair[1]) if sum(b_pair[1]) else 0.0
        deltas.append(MetricDelta(metric.name, a_value, b_value, estimate, metric.higher_is_better))
    return Comparison(tuple(deltas), len(common), len(a_ids - common), len(b_ids - common))


@dataclass(frozen=True)
class Regression:
    name: str
    before: float
    after: float

    @property
    def change(self) -> float:
        return self.after - self.before


def drift(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    *,
    max_drop: float,
    max_latency_increase: float | None = None,
) -> list[Regression]:
    """The metrics of ``after`` worse than ``before`` by more than ``max_drop``; with
    ``max_latency_increase`` (a share, 0.2 = 20%) also the p50 and p95 latency."""
    if max_drop < 0:
        raise ValueError("max_drop must be >= 0")
    found = []
    for metric in METRICS:
        old, new = value(before, metric.name), value(after, metric.name)
        if old is None or new is None:
            continue
        loss = (old - new) if metric.higher_is_better else (new - old)
        if loss > max_drop + 1e-12:
            found.append(Regression(metric.name, old, new))
    if max_latency_increase is not None:
        for key in ("p50", "p95"):
            old = before.get("latency_ms", {}).get(key)
            new = after.get("latency_ms", {}).get(key)
            if old and new is not None and new > old * (1.0 + max_latency_increase):
                found.append(Regression(f"latency_ms.{key}", old, new))
    return found


def comparison_table(result: Comparison, a: str = "A", b: str = "B") -> str:
    """A comparison as a Markdown table: A, B, B - A with its 95% interval, and the verdict."""
    lines = [
        f"| metric | {a} | {b} | {b} - {a} | 95% interval | n | |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in result.metrics:
        if d.delta is None or d.a is None or d.b is None:
            lines.append(f"| {d.name} | - | - | - | - | 0 | |")
            continue
        verdict = "" if d.verdict == "no change" else f"**{d.verdict}**"
        lines.append(
            f"| {d.name} | {d.a:.3f} | {d.b:.3f} | {d.delta.value:+.3f} | "
            f"[{d.delta.low:+.3f}, {d.delta.high:+.3f}] | {d.delta.n} | {verdict} |"
        )
    lines.append(f"\nPaired on {result.paired} questions.")
    return "\n".join(lines)
