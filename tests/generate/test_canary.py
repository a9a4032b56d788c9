"""Canaries in the registry: the plan's checks, starting, looks, ending by promote or rollback,
the history, and refusals that leave the pointer as it was; the split itself (seeded, sticky,
within tolerance of its share)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.errors import AdapterNotFoundError, CanaryError
from ragtune.generate.canary import Canary, CanaryPlan, parse_max_drop, split, split_key
from ragtune.generate.registry import AdapterRegistry
from ragtune.types import AdapterRef
from tests.fakes import register_fake

SUPPORT = AdapterRef("acme", "support")


@pytest.fixture
def registry(tmp_path: Path) -> AdapterRegistry:
    """acme/support with v1 current and v2, v3 registered."""
    registry = AdapterRegistry(tmp_path / "adapters")
    for version in (1, 2, 3):
        assert register_fake(registry, tmp_path / f"v{version}", "acme", "support") == version
    return registry


def pointer_text(registry: AdapterRegistry) -> str:
    return (registry.root / "acme" / "support" / "current.json").read_text()


def test_parse_max_drop_names_the_fix() -> None:
    assert parse_max_drop("abstain_rate=0.05,support=0.03") == {
        "abstain_rate": 0.05,
        "support": 0.03,
    }
    for bad, said in [
        ("abstain_rate", "is not metric=number"),
        ("abstain_rate=lots", "is not a number"),
        ("accuracy=0.1", "is not a metric a canary watches"),
        ("support=-0.1", "must be a number >= 0"),
        ("support=0.1,support=0.2", "twice"),
        ("", "not metric=number"),
    ]:
        with pytest.raises(ValueError, match=said) as refused:
            parse_max_drop(bad)
        assert "e.g. abstain_rate=0.05,support=0.03" in str(refused.value)


@pytest.mark.parametrize("share", [0.0, 1.0, -0.5, 1.5])
def test_a_share_outside_zero_one_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="share must be"):
        CanaryPlan(share=share)


def test_start_canary_and_its_refusals_leave_the_pointer_as_it_was(
    registry: AdapterRegistry,
) -> None:
    before = pointer_text(registry)
    with pytest.raises(AdapterNotFoundError, match=r"no version v9 \(versions: v1, v2, v3\)"):
        registry.start_canary(SUPPORT, 9, CanaryPlan())
    with pytest.raises(CanaryError, match="v1 is already current"):
        registry.start_canary(SUPPORT, 1, CanaryPlan())
    assert pointer_text(registry) == before
    assert [(e.action, e.version, e.reason) for e in registry.history(SUPPORT)] == [
        ("promoted", 1, "the first version")
    ]
    canary = registry.start_canary(SUPPORT, 2, CanaryPlan(share=0.2, seed=7))
    running = pointer_text(registry)
    with pytest.raises(CanaryError, match=r"already running .* \(share 0\.2\).*adapters rollback"):
        registry.start_canary(SUPPORT, 3, CanaryPlan())
    with pytest.raises(CanaryError, match="promote v2 to end it"):
        registry.promote(SUPPORT, 3)
    assert pointer_text(registry) == running
    pointer = registry.pointer("acme", "support")
    assert pointer.current == 1 and pointer.canary == canary
    assert json.loads(running)["canary"]["plan"]["seed"] == 7
    [entry] = registry.list("acme")
    assert entry.canary == canary
    event = registry.history(SUPPORT)[-1]
    assert (event.action, event.version) == ("canary started", 2)
    assert event.detail["plan"]["share"] == 0.2


def test_promoting_the_canary_ends_it_and_history_says_so(registry: AdapterRegistry) -> None:
    registry.start_canary(SUPPORT, 2, CanaryPlan())
    registry.promote(SUPPORT, 2)
    pointer = registry.pointer("acme", "support")
    assert (pointer.current, pointer.history, pointer.canary) == (2, (1,), None)
    actions = [e.action for e in registry.history(SUPPORT)]
    assert actions == ["promoted", "canary started", "canary promoted"]


def test_rollback_during_a_canary_ends_it_and_keeps_current(registry: AdapterRegistry) -> None:
    registry.promote(SUPPORT, 3)
    registry.start_canary(SUPPORT, 2, CanaryPlan())
    assert registry.rollback(SUPPORT).card.version == 3  # the canary ends; v3 stays
    pointer = registry.pointer("acme", "support")
    assert (pointer.current, pointer.canary) == (3, None)
    assert registry.rollback(SUPPORT).card.version == 1  # without a canary: the usual rollback
    actions = [e.action for e in registry.history(SUPPORT)]
    assert actions == [
        "promoted",
        "promoted",
        "canary started",
        "canary rolled back",
        "rolled back",
    ]
    with pytest.raises(CanaryError, match="no canary is running"):
        registry.end_canary(SUPPORT, reason="again")


def test_looks_are_recorded_once_per_canary(registry: AdapterRegistry) -> None:
    canary = registry.start_canary(SUPPORT, 2, CanaryPlan(min_requests=20, looks=2))
    assert not canary.look_due(19) and canary.look_due(20)
    assert registry.record_look(SUPPORT, canary.id, 1, "ready to promote", "fine", {"n": 20})
    assert not registry.record_look(SUPPORT, canary.id, 1, "collecting", "again", {})
    assert not registry.record_look(SUPPORT, "canary-other", 2, "collecting", "other", {})
    now = registry.pointer("acme", "support").canary
    assert now is not None and (now.looks_done, now.status) == (1, "ready to promote")
    assert not now.look_due(39) and now.look_due(40)
    assert registry.history(SUPPORT)[-1].detail == {"n": 20}


def test_a_damaged_history_line_is_skipped(registry: AdapterRegistry) -> None:
    registry.start_canary(SUPPORT, 2, CanaryPlan())
    with open(registry.root / "acme" / "support" / "history.jsonl", "a") as handle:
        handle.write('{"time": "2026-12-01T00:00:00+00:00", "act')  # torn by a crash
    assert [e.action for e in registry.history(SUPPORT)] == ["promoted", "canary started"]


def test_the_split_is_seeded_sticky_and_near_its_share() -> None:
    canary = Canary(2, CanaryPlan(share=0.1, seed=3))
    arms = {}
    for i in range(4000):
        key, sticky = split_key(f"user-{i}", f"resp-{i}")
        pinned, arm = split(SUPPORT, 1, canary, key, sticky=sticky)
        assert sticky and pinned.version == arm.version
        arms[i] = arm.arm
        again = split(SUPPORT, 1, canary, split_key(f"user-{i}", "resp-other")[0], sticky=True)
        assert again[1].arm == arm.arm  # the same user, another request: the same arm
    share = sum(a == "canary" for a in arms.values()) / len(arms)
    assert abs(share - 0.1) < 0.02  # 4.2 standard errors of a binomial share
    other_seed = Canary(2, CanaryPlan(share=0.1, seed=4), id=canary.id)
    moved = sum(
        split(SUPPORT, 1, other_seed, split_key(f"user-{i}", "r")[0], sticky=True)[1].arm != arms[i]
        for i in range(4000)
    )
    assert moved > 400  # another seed picks another set of users
