"""``ragtune adapters``: list, show, promote, roll back and compare registered adapter versions;
start a canary and follow it (``canary``, ``status``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ragtune.generate.canary import METRICS as _METRICS
from ragtune.generate.canary import CanaryPlan
from ragtune.generate.registry_storage import DEFAULT_CACHE, DEFAULT_ROOT
from ragtune.types import AdapterRef

_PLAN = CanaryPlan()
"""The plan's defaults, declared once in :class:`CanaryPlan`."""

app = typer.Typer(
    help="List, inspect, promote, roll back and canary-release adapters.", no_args_is_help=True
)

_ROOT = typer.Option(
    DEFAULT_ROOT, "--root", help="The adapter registry: a folder, or s3://bucket/prefix."
)
_CACHE = typer.Option(
    DEFAULT_CACHE,
    "--cache",
    help="Where versions of an s3:// registry are downloaded (the config's adapters.cache).",
)
_LIVE = typer.Option(
    Path("live"), "--live", help="The live store folder (the server config's live.root)."
)


def _registry(root: str, cache: Path):  # type: ignore[no-untyped-def]
    from ragtune.generate import AdapterRegistry

    return AdapterRegistry(root, cache=cache)


def _running_canary(registry: Any, ref: AdapterRef) -> Any:
    """The canary running for ``ref``, if any; none when its pointer is damaged (promoting a
    version is how that pointer is repaired, so it must not stop at reading it)."""
    from ragtune.errors import AdapterCorruptError

    try:
        return registry.pointer(ref.tenant, ref.name).canary
    except AdapterCorruptError:
        return None


def _name(text: str, *, strict: bool = True) -> AdapterRef:
    """``tenant/name``; a version in it is an error when ``strict`` (the command takes the
    version as its own argument), else dropped."""
    from ragtune.errors import AdapterNotFoundError
    from ragtune.generate import parse_ref

    parsed = parse_ref(text)
    if not strict:
        return parsed.unversioned
    if parsed.version is not None:
        raise AdapterNotFoundError(
            f"{text!r} names a version: give tenant/name and the version as its own argument"
        )
    return parsed


def _version(text: str) -> int:
    from ragtune.errors import AdapterNotFoundError

    digits = text.strip().lower().removeprefix("v")
    if not digits.isdigit() or int(digits) < 1:
        raise AdapterNotFoundError(f"{text!r} is not a version: write v1, v2, ...")
    return int(digits)


@app.command("list")
def list_(
    tenant: str | None = typer.Option(None, "--tenant", "-t"),
    root: str = _ROOT,
    cache: Path = _CACHE,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Every adapter name, its versions and the current one."""
    entries = _registry(root, cache).list(tenant)
    if as_json:
        rows = [e.__dict__ | {"canary": e.canary.to_json() if e.canary else None} for e in entries]
        print(json.dumps(rows, indent=2))
        return
    if not entries:
        print(f"no adapters under {root}" + (f" for tenant {tenant}" if tenant else ""))
    for e in entries:
        versions = " ".join(f"*v{v}" if v == e.current else f"v{v}" for v in e.versions)
        canary = (
            f"  (canary v{e.canary.version}, share {e.canary.plan.share:g})" if e.canary else ""
        )
        damaged = f"  (no current version: {e.damaged})" if e.damaged else ""
        print(f"{e.tenant}/{e.name}  {e.kind:<6}  {versions}{canary}{damaged}")


@app.command("show")
def show(
    ref: str = typer.Argument(..., help="tenant/name or tenant/name@vN"),
    root: str = _ROOT,
    cache: Path = _CACHE,
) -> None:
    """The card of a version (the current one by default): kind, base model, data hash, metrics.

    Reads the card alone: on object storage the weights are not downloaded.
    """
    from ragtune.errors import AdapterCorruptError

    registry = _registry(root, cache)
    with registry.one_view():  # one pointer read for the card and "current"
        card = registry.card(ref)
        try:
            current = registry.current_version(card.tenant, card.name) == card.version
        except AdapterCorruptError:  # a pinned version of a name whose pointer is damaged
            current = False
    shown = json.loads(card.to_json())
    shown["current"] = current
    shown["location"] = f"{registry.storage.location}/{card.tenant}/{card.name}/v{card.version}"
    print(json.dumps(shown, indent=2, sort_keys=True))


@app.command("promote")
def promote(
    ref: str = typer.Argument(..., help="tenant/name"),
    version: str = typer.Argument(..., help="vN"),
    root: str = _ROOT,
    cache: Path = _CACHE,
) -> None:
    """Make version vN current; running assistants use it from their next request.

    While a canary runs, promoting its version ends the canary by promoting it.
    """
    registry = _registry(root, cache)
    parsed = _name(ref, strict=False)
    canary = _running_canary(registry, parsed)
    resolved = registry.promote(parsed, _version(version))
    ended = f" (canary v{canary.version} ended by promoting it)" if canary else ""
    print(f"{resolved.card.ref} is now current{ended}")


@app.command("rollback")
def rollback(
    ref: str = typer.Argument(..., help="tenant/name"), root: str = _ROOT, cache: Path = _CACHE
) -> None:
    """Return to the version that was current before; while a canary runs, end it instead."""
    registry = _registry(root, cache)
    parsed = _name(ref, strict=False)
    canary = _running_canary(registry, parsed)
    resolved = registry.rollback(parsed)
    if canary is not None:
        print(f"canary v{canary.version} ended: {resolved.card.ref} stays current")
    else:
        print(f"rolled back: {resolved.card.ref} is now current")


@app.command("canary")
def canary(
    ref: str = typer.Argument(..., help="tenant/name"),
    version: str = typer.Argument(..., help="vN, the candidate"),
    share: float = typer.Option(
        ..., "--share", help="Share of the name's traffic sent to vN, strictly between 0 and 1."
    ),
    min_requests: int = typer.Option(
        _PLAN.min_requests, "--min-requests", help="Canary requests before the first look."
    ),
    max_drop: str = typer.Option(
        ",".join(f"{k}={v:g}" for k, v in _PLAN.max_drop.items()),
        "--max-drop",
        help="Watched metrics and the drop each may take, e.g. abstain_rate=0.05,support=0.03 "
        "(metrics: " + ", ".join(_METRICS) + ").",
    ),
    looks: int = typer.Option(_PLAN.looks, "--looks", help="How many times it is judged."),
    alpha: float = typer.Option(
        _PLAN.alpha, "--alpha", help="Chance of a false rollback over all looks and metrics."
    ),
    seed: int = typer.Option(_PLAN.seed, "--seed", help="Picks which users see the canary."),
    root: str = _ROOT,
    cache: Path = _CACHE,
) -> None:
    """Send a share of tenant/name's traffic to vN, judge it live, roll it back by itself.

    Requests naming tenant/name (or the tenant, when it is its default) are split, sticky per
    user; requests pinning a version (@vN) are not. Every min-requests canary requests, each
    watched metric is tested against the current version; one worse beyond its allowed drop
    rolls the canary back (the reason goes to the history). `ragtune adapters status` follows
    it; `promote` or `rollback` ends it. Servers judge it only with live.root in their config.
    """
    from ragtune.errors import CanaryError
    from ragtune.generate.canary import CanaryPlan, parse_max_drop

    parsed = _name(ref)
    try:
        plan = CanaryPlan(
            share=share,
            min_requests=min_requests,
            max_drop=parse_max_drop(max_drop),
            alpha=alpha,
            looks=looks,
            seed=seed,
        )
    except ValueError as exc:
        raise CanaryError(f"{exc}; nothing was changed") from None
    started = _registry(root, cache).start_canary(parsed, _version(version), plan)
    current = _registry(root, cache).pointer(parsed.tenant, parsed.name).current
    print(
        f"canary {started.id}: v{started.version} gets {plan.share:g} of {parsed}'s traffic "
        f"against v{current} (seed {plan.seed}); first look after {plan.min_requests} canary "
        f"requests, {plan.looks} looks, each test at {plan.test_alpha:.2g}"
    )


@app.command("status")
def status(
    ref: str = typer.Argument(..., help="tenant/name"),
    root: str = _ROOT,
    cache: Path = _CACHE,
    live: Path = _LIVE,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Current version, canary, live metrics per version, and the decision so far."""
    from dataclasses import asdict

    from ragtune.live.canary import adapter_status, format_status

    found = adapter_status(_registry(root, cache), live, _name(ref))
    if as_json:
        data = asdict(found)
        data["canary"] = found.canary.to_json() if found.canary else None
        print(json.dumps(data, indent=2, default=str))
        return
    print(format_status(found))


@app.command("diff")
def diff(
    ref: str = typer.Argument(..., help="tenant/name"),
    a: str = typer.Argument(..., help="vA"),
    b: str = typer.Argument(..., help="vB"),
    root: str = _ROOT,
    cache: Path = _CACHE,
) -> None:
    """Metrics and settings of two versions side by side."""
    registry = _registry(root, cache)
    base = ref.split("@")[0]
    one = registry.resolve(f"{base}@v{_version(a)}").card
    two = registry.resolve(f"{base}@v{_version(b)}").card
    for section in ("metrics", "settings"):
        left, right = dict(getattr(one, section)), dict(getattr(two, section))
        for key in sorted(set(left) | set(right)):
            x, y = left.get(key, "-"), right.get(key, "-")
            change = (
                f"  ({y - x:+.4f})"
                if isinstance(x, int | float) and isinstance(y, int | float)
                else ""
            )
            print(f"{section}.{key}: {x} -> {y}{change}")
    for field in ("kind", "base_model", "training_data_sha256", "created"):
        x, y = getattr(one, field), getattr(two, field)
        if x != y:
            print(f"{field}: {x} -> {y}")
