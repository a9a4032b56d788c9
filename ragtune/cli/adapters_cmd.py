"""``ragtune adapters``: list, show, promote, roll back and compare registered adapter versions."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(help="List, inspect, promote and roll back adapters.", no_args_is_help=True)

_ROOT = typer.Option(Path("adapters"), "--root", help="The adapter registry folder.")


def _registry(root: Path):  # type: ignore[no-untyped-def]
    from ragtune.generate import AdapterRegistry

    return AdapterRegistry(root)


def _version(text: str) -> int:
    from ragtune.errors import AdapterNotFoundError

    digits = text.strip().lower().removeprefix("v")
    if not digits.isdigit() or int(digits) < 1:
        raise AdapterNotFoundError(f"{text!r} is not a version: write v1, v2, ...")
    return int(digits)


@app.command("list")
def list_(
    tenant: str | None = typer.Option(None, "--tenant", "-t"),
    root: Path = _ROOT,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Every adapter name, its versions and the current one."""
    entries = _registry(root).list(tenant)
    if as_json:
        print(json.dumps([e.__dict__ for e in entries], indent=2))
        return
    if not entries:
        print(f"no adapters under {root}" + (f" for tenant {tenant}" if tenant else ""))
    for e in entries:
        versions = " ".join(f"*v{v}" if v == e.current else f"v{v}" for v in e.versions)
        print(f"{e.tenant}/{e.name}  {e.kind:<6}  {versions}")


@app.command("show")
def show(
    ref: str = typer.Argument(..., help="tenant/name or tenant/name@vN"), root: Path = _ROOT
) -> None:
    """The card of a version (the current one by default): kind, base model, data hash, metrics."""
    resolved = _registry(root).resolve(ref)
    card = json.loads(resolved.card.to_json())
    card["current"] = resolved.current
    card["folder"] = str(resolved.folder)
    print(json.dumps(card, indent=2, sort_keys=True))


@app.command("promote")
def promote(
    ref: str = typer.Argument(..., help="tenant/name"),
    version: str = typer.Argument(..., help="vN"),
    root: Path = _ROOT,
) -> None:
    """Make version vN current; running assistants use it from their next request."""
    resolved = _registry(root).promote(ref, _version(version))
    print(f"{resolved.card.ref} is now current")


@app.command("rollback")
def rollback(ref: str = typer.Argument(..., help="tenant/name"), root: Path = _ROOT) -> None:
    """Return to the version that was current before."""
    resolved = _registry(root).rollback(ref)
    print(f"rolled back: {resolved.card.ref} is now current")


@app.command("diff")
def diff(
    ref: str = typer.Argument(..., help="tenant/name"),
    a: str = typer.Argument(..., help="vA"),
    b: str = typer.Argument(..., help="vB"),
    root: Path = _ROOT,
) -> None:
    """Metrics and settings of two versions side by side."""
    registry = _registry(root)
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
