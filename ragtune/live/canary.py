"""A running canary judged at its looks, and the status ``ragtune adapters status`` prints.

After each answer on a canary's canary arm, :func:`judge` counts the canary's answers; when a
look is due (``min_requests`` times the look's number), it tests every watched metric on both
arms (:func:`ragtune.live.stats.decide_look`) and acts: a metric worse beyond its allowed drop
ends the canary at once (the current version takes all traffic from the next request), with the
reason and the numbers in the adapter's history; otherwise the look and its numbers are
recorded, and the status says "ready to promote" once a look showed every metric within its
allowed drop, "inconclusive" when the last look did not. The registry's lock
and the canary's id make a look happen once even when several processes serve the tenant.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ragtune.errors import CanaryError
from ragtune.generate.canary import METRICS, Canary, CanaryStatus
from ragtune.live.stats import CanaryDecision, RatioEstimate, decide_look, summarise
from ragtune.live.store import LiveStore
from ragtune.types import AdapterRef, CanaryArm, parse_adapter_ref

if TYPE_CHECKING:
    from ragtune.generate.registry import AdapterRegistry, HistoryEvent

__all__ = ["AdapterStatus", "VersionReport", "adapter_status", "format_status", "judge"]

log = logging.getLogger(__name__)


def judge(registry: AdapterRegistry, store: LiveStore, arm: CanaryArm) -> CanaryDecision | None:
    """Run the look that is due for the canary ``arm`` belongs to, and act on it; None when no
    look is due (or the canary ended meanwhile)."""
    ref = parse_adapter_ref(arm.adapter)
    pointer = registry.pointer(ref.tenant, ref.name)
    canary = pointer.canary
    if canary is None or canary.id != arm.canary_id or pointer.current is None:
        return None
    if not canary.look_due(store.canary_requests(canary.id, "canary")):
        return None
    units = store.arm_units(canary.id)
    decision = decide_look(
        canary.plan,
        canary.looks_done + 1,
        (pointer.current, canary.version),
        units["current"],
        units["canary"],
    )
    if decision.action == "rollback":
        try:
            registry.end_canary(
                ref,
                reason=f"automatic rollback: {decision.reason}",
                canary_id=canary.id,
                detail={"decision": decision.to_json()},
            )
        except CanaryError:
            return None  # another process ended it first
        log.warning("canary %s@v%d rolled back: %s", arm.adapter, canary.version, decision.reason)
        return decision
    status: CanaryStatus = (
        "ready to promote"
        if decision.action == "ready to promote" or canary.status == "ready to promote"
        else "inconclusive"
        if decision.action == "inconclusive"
        else "collecting"
    )
    recorded = registry.record_look(
        ref, canary.id, decision.look, status, decision.reason, {"decision": decision.to_json()}
    )
    return decision if recorded else None


def decision_event(tenant: str | None, canary_id: str, decision: CanaryDecision) -> dict[str, Any]:
    """The telemetry event of a look (numbers only)."""
    return {"event": "canary_look", "tenant": tenant, "canary_id": canary_id, **decision.to_json()}


# -- status ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionReport:
    """The live metrics of one version."""

    version: int | None
    role: Literal["current", "canary", "other"]
    requests: int
    units: int
    """Users (and requests without a user id) it answered."""
    metrics: Mapping[str, RatioEstimate]


@dataclass(frozen=True)
class AdapterStatus:
    """What ``ragtune adapters status`` shows for one adapter name."""

    ref: str
    current: int | None
    canary: Canary | None
    versions: tuple[VersionReport, ...]
    """During a canary: its split traffic per arm; otherwise every stored answer per version."""
    last_look: HistoryEvent | None
    """The latest canary decision (look or rollback) in the history."""
    history: tuple[HistoryEvent, ...] = field(default_factory=tuple)
    live_root: Path | None = None


def adapter_status(
    registry: AdapterRegistry, live_root: Path | None, ref: AdapterRef, *, events: int = 8
) -> AdapterStatus:
    """The status of ``tenant/name``: pointer, canary, live metrics, latest decision."""
    registry.cards(ref.tenant, ref.name)  # an unknown name is refused here, with the fix
    pointer = registry.pointer(ref.tenant, ref.name)
    history = registry.history(ref)
    looks = [e for e in history if e.action in ("canary look", "canary rolled back")]
    reports: list[VersionReport] = []
    if live_root is not None and (live_root / ref.tenant).is_dir():
        store = LiveStore(live_root, ref.tenant)
        canary = pointer.canary
        by_version = store.version_units(
            f"{ref.tenant}/{ref.name}", canary_id=canary.id if canary else None
        )
        for version in sorted(by_version, key=lambda v: (v is None, v or 0)):
            units = by_version[version]
            role: Literal["current", "canary", "other"] = (
                "current"
                if version == pointer.current
                else "canary"
                if canary is not None and version == canary.version
                else "other"
            )
            reports.append(
                VersionReport(
                    version,
                    role,
                    sum(u.requests for u in units),
                    len(units),
                    summarise(units),
                )
            )
    return AdapterStatus(
        f"{ref.tenant}/{ref.name}",
        pointer.current,
        pointer.canary,
        tuple(reports),
        looks[-1] if looks else None,
        tuple(history[-events:]),
        live_root,
    )


def format_status(status: AdapterStatus) -> str:
    """The status as ``ragtune adapters status`` prints it."""
    lines = [f"{status.ref}: current v{status.current}" if status.current else status.ref]
    canary = status.canary
    if canary is not None:
        plan = canary.plan
        drops = ", ".join(f"{k}={v:g}" for k, v in sorted(plan.max_drop.items()))
        lines.append(
            f"canary v{canary.version}: share {plan.share:g}, seed {plan.seed}, since "
            f"{canary.started}; looks {canary.looks_done}/{plan.looks} every {plan.min_requests} "
            f"canary requests; max drop {drops}; alpha {plan.alpha:g} "
            f"({plan.test_alpha:.2g} per test); status: {canary.status}"
        )
    else:
        lines.append("no canary running")
    if not status.versions:
        where = status.live_root if status.live_root is not None else "(none given)"
        lines.append(f"no live metrics in the live store {where}")
    else:
        scope = "this canary's split traffic" if canary else "every stored answer"
        lines.append(f"live metrics ({scope}; value ± 95% interval, variance over users):")
        header = ["version", "role", "requests", "users", *METRICS]
        rows = [header]
        for report in status.versions:
            rows.append(
                [
                    f"v{report.version}" if report.version is not None else "-",
                    report.role,
                    str(report.requests),
                    str(report.units),
                    *(_cell(report.metrics[m]) for m in METRICS),
                ]
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines += [
            ("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))).rstrip()
            for r in rows
        ]
    if status.last_look is not None:
        e = status.last_look
        lines.append(f"last decision ({e.time}, {e.action}, v{e.version}): {e.reason}")
    if status.history:
        lines.append("history:")
        lines += [
            f"  {e.time}  {e.action:<18} v{e.version}  {e.reason}".rstrip() for e in status.history
        ]
    return "\n".join(lines)


def _cell(estimate: RatioEstimate) -> str:
    if estimate.units == 0:
        return "-"
    half = 1.96 * estimate.variance**0.5
    return f"{estimate.value:.3f}±{half:.3f}"
