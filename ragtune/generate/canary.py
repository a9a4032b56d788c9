"""Canary releases of a registered adapter: the plan, the state the registry keeps for a running
canary, and the traffic split. Pure, except for the clock read when a canary starts.

A canary sends a share of one adapter name's unversioned traffic (``acme/support``, or the
tenant's default when that is ``acme/support``) to a candidate version while the current
version serves the rest. The split is a hash, not a draw::

    u = first 8 bytes of SHA-256("{seed}|{tenant}/{name}@v{canary}|{key}") / 2**64
    canary arm  <=>  u < share

``key`` is itself a hash (:func:`split_key`) of the user id the client sent (the OpenAI
``user`` field, ``user=`` in Python), so a user stays on one arm for the whole canary, or of
the response id when there is none. Each answer records its arm and key, so anyone holding the
plan's seed can recompute every assignment from the logs, without raw user ids. Requests that
pin a version (``acme/support@v3``) are never split.

The plan fixes, before any traffic is seen, when the canary is judged and how (the watched
metrics, the drop each may take, the error rate, the number of looks): a rule chosen after
looking at the data would not hold its error rate. The test itself is in
:mod:`ragtune.live.stats`.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Le, Lt

from ragtune.settings import check_bounds
from ragtune.types import AdapterRef, CanaryArm

__all__ = [
    "DEFAULT_MAX_DROP",
    "METRICS",
    "Canary",
    "CanaryPlan",
    "WatchedMetric",
    "parse_max_drop",
    "split",
    "split_key",
]


@dataclass(frozen=True)
class WatchedMetric:
    """A live metric a canary can be judged on."""

    name: str
    higher_is_worse: bool
    unit: str
    description: str


METRICS: Mapping[str, WatchedMetric] = {
    m.name: m
    for m in (
        WatchedMetric("abstain_rate", True, "share of requests", "answers that abstained"),
        WatchedMetric(
            "support", False, "share of sentences", "checked sentences their citations support"
        ),
        WatchedMetric(
            "support_score", False, "probability", "mean support score of checked sentences"
        ),
        WatchedMetric(
            "citation_precision",
            False,
            "share",
            "ALCE citation precision, over answers with checked sentences",
        ),
        WatchedMetric("latency_s", True, "seconds", "mean seconds from question to answer"),
        WatchedMetric("feedback", False, "share of ratings", "user ratings that were 'up'"),
    )
}
"""Every metric a canary can watch, by name; the drop a plan allows is in the metric's unit,
in its worse direction (an abstention rate higher by 0.05, a support share lower by 0.03)."""

DEFAULT_MAX_DROP: Mapping[str, float] = {"abstain_rate": 0.05, "support": 0.05}
"""What a canary watches when the plan names nothing: abstaining more, and citing worse."""


def parse_max_drop(text: str) -> dict[str, float]:
    """``abstain_rate=0.05,support=0.03`` as a mapping; ``ValueError`` says what to write.

    >>> parse_max_drop("abstain_rate=0.05, support=0.03")
    {'abstain_rate': 0.05, 'support': 0.03}
    """
    known = ", ".join(METRICS)
    how = f"write metric=number pairs separated by commas, e.g. abstain_rate=0.05,support=0.03 (metrics: {known})"
    found: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--max-drop {text!r}: {part.strip()!r} is not metric=number; {how}")
        if name in found:
            raise ValueError(f"--max-drop {text!r} names {name} twice; {how}")
        try:
            found[name] = float(value)
        except ValueError:
            raise ValueError(
                f"--max-drop {text!r}: {value.strip()!r} is not a number; {how}"
            ) from None
    _check_drops(found, how)
    return found


def _check_drops(drops: Mapping[str, float], how: str) -> None:
    if not drops:
        raise ValueError(f"the canary watches no metric; {how}")
    for name, value in drops.items():
        if name not in METRICS:
            raise ValueError(f"{name!r} is not a metric a canary watches; {how}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(
                f"the allowed drop of {name} must be a number >= 0 (in {METRICS[name].unit}), "
                f"got {value}; {how}"
            )


@dataclass(frozen=True)
class CanaryPlan:
    """How a canary runs and is judged, fixed when it starts (see the module doc)."""

    share: Annotated[float, Gt(0.0), Lt(1.0)] = 0.1
    """Share of the name's unversioned traffic (of its users, when clients send user ids)
    sent to the canary, strictly between 0 and 1."""
    min_requests: Annotated[int, Ge(20)] = 200
    """Canary requests before the first look; the k-th look comes at k times as many."""
    max_drop: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MAX_DROP))
    """The watched metrics and how much worse than current each may be (see :data:`METRICS`)."""
    alpha: Annotated[float, Gt(0.0), Le(0.5)] = 0.05
    """The chance of rolling back a canary that is not worse beyond the allowed drops, over all
    looks and metrics together (each test runs at ``alpha / (looks * metrics)``)."""
    looks: Annotated[int, Ge(1), Le(100)] = 5
    """How many times the canary is judged; after the last it keeps its share until a person
    promotes or rolls it back."""
    seed: int = 0
    """Picks which users land on the canary; another seed picks another set of users."""

    def __post_init__(self) -> None:
        check_bounds(self)
        _check_drops(self.max_drop, "give e.g. {'abstain_rate': 0.05}")

    @property
    def test_alpha(self) -> float:
        """The level of each one-sided test: ``alpha`` split evenly over looks and metrics."""
        return self.alpha / (self.looks * len(self.max_drop))

    def to_json(self) -> dict[str, Any]:
        return {
            "share": self.share,
            "min_requests": self.min_requests,
            "max_drop": dict(self.max_drop),
            "alpha": self.alpha,
            "looks": self.looks,
            "seed": self.seed,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CanaryPlan:
        return cls(
            share=float(data["share"]),
            min_requests=int(data["min_requests"]),
            max_drop={str(k): float(v) for k, v in dict(data["max_drop"]).items()},
            alpha=float(data["alpha"]),
            looks=int(data["looks"]),
            seed=int(data["seed"]),
        )


CanaryStatus = Literal["collecting", "ready to promote", "inconclusive"]
STATUSES: tuple[CanaryStatus, ...] = ("collecting", "ready to promote", "inconclusive")


@dataclass(frozen=True)
class Canary:
    """A running canary, as the registry's pointer file holds it."""

    version: int
    plan: CanaryPlan
    id: str = field(default_factory=lambda: "canary-" + uuid.uuid4().hex[:12])
    """Tells this canary's traffic from an earlier canary's of the same version."""
    started: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )
    looks_done: int = 0
    status: CanaryStatus = "collecting"
    """``collecting`` until a look shows every watched metric within its allowed drop, then
    ``ready to promote`` (later looks still run, and can still roll it back); ``inconclusive``
    when the last look has shown neither (see :mod:`ragtune.live.stats`)."""

    def look_due(self, canary_requests: int) -> bool:
        """Whether a look is due with this many canary requests recorded."""
        return self.looks_done < self.plan.looks and canary_requests >= self.plan.min_requests * (
            self.looks_done + 1
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "id": self.id,
            "started": self.started,
            "plan": self.plan.to_json(),
            "looks_done": self.looks_done,
            "status": self.status,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Canary:
        status = data.get("status", "collecting")
        if status not in STATUSES:
            raise ValueError(f"unknown canary status {status!r}")
        return cls(
            version=int(data["version"]),
            plan=CanaryPlan.from_json(data["plan"]),
            id=str(data["id"]),
            started=str(data["started"]),
            looks_done=int(data.get("looks_done", 0)),
            status=status,
        )


def split_key(user: str | None, response_id: str) -> tuple[str, bool]:
    """The hashed key a request is split by, and whether it is a user's (sticky).

    >>> split_key("alice", "resp-1") == split_key("alice", "resp-2")
    True
    >>> split_key(None, "resp-1")[1]
    False
    """
    if user is not None and user.strip():
        text, sticky = f"user:{user.strip()}", True
    else:
        text, sticky = f"request:{response_id}", False
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24], sticky


def _unit_interval(seed: int, ref: AdapterRef, version: int, key: str) -> float:
    text = f"{seed}|{ref.tenant}/{ref.name}@v{version}|{key}"
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split(
    ref: AdapterRef, current: int, canary: Canary, key: str, *, sticky: bool
) -> tuple[AdapterRef, CanaryArm]:
    """Pin an unversioned reference to the current or the canary version for one request.

    ``key`` comes from :func:`split_key`. Deterministic: the same key always lands on the same
    arm of the same canary.

    >>> plan = CanaryPlan(share=0.5)
    >>> pinned, arm = split(AdapterRef("acme", "support"), 3, Canary(4, plan), "k", sticky=True)
    >>> pinned.version in (3, 4) and arm.version == pinned.version
    True
    """
    to_canary = _unit_interval(canary.plan.seed, ref, canary.version, key) < canary.plan.share
    version = canary.version if to_canary else current
    arm = CanaryArm(
        canary.id,
        f"{ref.tenant}/{ref.name}",
        "canary" if to_canary else "current",
        version,
        key,
        sticky,
    )
    return AdapterRef(ref.tenant, ref.name, version), arm
