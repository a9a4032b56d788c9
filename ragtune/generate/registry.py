"""The adapter registry: versioned adapters per tenant on disk, with a ``current`` pointer.

Layout::

    adapters/
      acme/                       tenant
        support/                  adapter name
          v1/  v2/  v3/           versions: PEFT files + adapter.json, never changed once written
          current.json            {"current": 3, "history": [1, 2], "canary": {...} or absent}
          history.jsonl           what happened and why: promotions, rollbacks, canary decisions

``register`` copies an adapter folder into the next version (staged in a temporary folder and
renamed into place, so a crash leaves no half version), ``promote`` points ``current`` at a
version, ``rollback`` returns to the version that was current before. The pointer is replaced
atomically (write, fsync, rename); readers see the old or the new pointer, never a torn one. A
running generator reads the pointer on every request, so a promotion takes effect on the next
request without a restart (see :class:`~ragtune.generate.generator.HFGenerator`).

A version is refused before the pointer moves when it fails ``check`` (for a generator: it loads
and fits the base model); the version that was serving keeps serving.

A canary (:mod:`ragtune.generate.canary`) lives in the same pointer file, so a running server
sees one start, get judged and end at its next request, and a restarted one finds it where it
was. While a canary runs, promoting its version ends it by promoting, rolling back ends it by
dropping it; promoting any other version is refused. Every change of the pointer, and every
canary decision with its numbers, is appended to ``history.jsonl``.
"""

from __future__ import annotations

import builtins
import fcntl
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ragtune.errors import AdapterCorruptError, AdapterError, AdapterNotFoundError, CanaryError
from ragtune.generate.adapters import CARD_FILE, AdapterCard, read_adapter
from ragtune.generate.canary import Canary, CanaryPlan, CanaryStatus
from ragtune.types import AdapterRef, check_name, parse_adapter_ref

__all__ = [
    "AdapterEntry",
    "AdapterRef",
    "AdapterRegistry",
    "HistoryEvent",
    "Pointer",
    "ResolvedAdapter",
    "parse_ref",
]

POINTER = "current.json"
HISTORY = "history.jsonl"
_VERSION_DIR = re.compile(r"^v([1-9][0-9]*)$")


def parse_ref(text: str | AdapterRef) -> AdapterRef:
    """Parse ``tenant/name`` or ``tenant/name@vN`` (:class:`AdapterNotFoundError` otherwise).

    >>> parse_ref("acme/support@v3")
    AdapterRef(tenant='acme', name='support', version=3)
    >>> str(parse_ref("acme/support"))
    'acme/support'
    """
    if isinstance(text, AdapterRef):
        return text
    try:
        return parse_adapter_ref(text)
    except ValueError as exc:
        raise AdapterNotFoundError(str(exc)) from exc


@dataclass(frozen=True)
class ResolvedAdapter:
    """A registered version: its card and folder."""

    card: AdapterCard
    folder: Path
    current: bool

    @property
    def key(self) -> str:
        """``tenant/name@vN``: the same on every machine, used to keep loaded adapters apart."""
        return self.card.ref


@dataclass(frozen=True)
class AdapterEntry:
    """One adapter name: its versions, which is current, and its canary if one runs."""

    tenant: str
    name: str
    versions: tuple[int, ...]
    current: int | None
    history: tuple[int, ...]
    kind: str
    canary: Canary | None = None


@dataclass(frozen=True)
class Pointer:
    """What ``current.json`` holds."""

    current: int | None
    history: tuple[int, ...] = ()
    """The versions current before, oldest first: what rollback returns to."""
    canary: Canary | None = None


@dataclass(frozen=True)
class HistoryEvent:
    """One line of an adapter name's ``history.jsonl``."""

    time: str
    """ISO 8601, UTC."""
    action: str
    """``promoted``, ``rolled back``, ``canary started``, ``canary look``, ``canary promoted``,
    ``canary rolled back``."""
    version: int | None
    reason: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)
    """The numbers behind the action (a canary's plan, a decision's tests)."""


class AdapterRegistry:
    """Adapters on disk under ``root``; safe to share between processes (writes take a lock)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # -- reading ---------------------------------------------------------------------------------

    def resolve(self, ref: str | AdapterRef) -> ResolvedAdapter:
        """The version ``ref`` names (its current one when no version is given)."""
        parsed = parse_ref(ref)
        folder = self._name_dir(parsed.tenant, parsed.name)
        if not folder.is_dir():
            known = ", ".join(f"{e.tenant}/{e.name}" for e in self.list(parsed.tenant)) or "none"
            raise AdapterNotFoundError(
                f"no adapter {parsed.tenant}/{parsed.name} under {self.root} "
                f"(registered for {parsed.tenant}: {known})"
            )
        current = self._read_pointer(folder).current
        version = parsed.version if parsed.version is not None else current
        if version is None:
            raise AdapterNotFoundError(
                f"{parsed.tenant}/{parsed.name} has no current version: promote one with "
                f"`ragtune adapters promote {parsed.tenant}/{parsed.name} vN`"
            )
        vdir = folder / f"v{version}"
        if not (vdir / CARD_FILE).is_file():
            versions = ", ".join(f"v{v}" for v in self._versions(folder)) or "none"
            raise AdapterNotFoundError(
                f"{parsed.tenant}/{parsed.name} has no version v{version} (versions: {versions})"
            )
        card = AdapterCard.from_json(
            (vdir / CARD_FILE).read_text(encoding="utf-8"), where=str(vdir / CARD_FILE)
        )
        return ResolvedAdapter(card=card, folder=vdir, current=version == current)

    def current_version(self, tenant: str, name: str) -> int | None:
        """The current version number: one small file read, cheap enough for every request."""
        return self.pointer(tenant, name).current

    def pointer(self, tenant: str, name: str) -> Pointer:
        """The current version, its history and the running canary: one small file read, cheap
        enough for every request (an adapter that does not exist has an empty pointer)."""
        return self._read_pointer(self._name_dir(tenant, name))

    def history(self, ref: str | AdapterRef) -> builtins.list[HistoryEvent]:
        """What happened to ``tenant/name`` and why, oldest first."""
        parsed = parse_ref(ref)
        path = self._name_dir(parsed.tenant, parsed.name) / HISTORY
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        events = []
        for line in lines:
            try:
                data = json.loads(line)
                events.append(
                    HistoryEvent(
                        str(data["time"]),
                        str(data["action"]),
                        data.get("version"),
                        str(data.get("reason", "")),
                        dict(data.get("detail", {})),
                    )
                )
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a crash mid-append: the others still read
        return events

    def list(self, tenant: str | None = None) -> builtins.list[AdapterEntry]:
        """Every adapter name (of one tenant, or all), sorted."""
        if not self.root.is_dir():
            return []
        tenants = (
            [self.root / tenant] if tenant else sorted(p for p in self.root.iterdir() if p.is_dir())
        )
        entries = []
        for tdir in tenants:
            if not tdir.is_dir():
                continue
            for ndir in sorted(
                p for p in tdir.iterdir() if p.is_dir() and not p.name.startswith(".")
            ):
                versions = self._versions(ndir)
                if not versions:
                    continue
                state = self._read_pointer(ndir)
                kind = self._card(ndir / f"v{versions[-1]}").kind
                entries.append(
                    AdapterEntry(
                        tdir.name,
                        ndir.name,
                        tuple(versions),
                        state.current,
                        state.history,
                        kind,
                        state.canary,
                    )
                )
        return entries

    def cards(self, tenant: str, name: str) -> builtins.list[AdapterCard]:
        """The cards of every version of ``tenant/name``, oldest first."""
        folder = self._name_dir(tenant, name)
        versions = self._versions(folder)
        if not versions:
            raise AdapterNotFoundError(f"no adapter {tenant}/{name} under {self.root}")
        return [self._card(folder / f"v{v}") for v in versions]

    # -- writing ---------------------------------------------------------------------------------

    def register(
        self,
        source: Path | str,
        *,
        tenant: str | None = None,
        name: str | None = None,
        promote: bool | None = None,
        check: Callable[[Path], None] | None = None,
    ) -> ResolvedAdapter:
        """Copy the adapter folder ``source`` in as the next version of ``tenant/name``.

        Tenant and name default to the card's. The first version becomes current; later ones
        only with ``promote=True``. ``check`` runs on the staged copy first (e.g. a load into
        the serving model); if it raises, nothing is registered.
        """
        stored = read_adapter(source)  # integrity first: nothing is written for a broken adapter
        tenant = check_name(tenant or stored.card.tenant, "tenant")
        name = check_name(name or stored.card.name, "adapter name")
        folder = self._name_dir(tenant, name)
        folder.mkdir(parents=True, exist_ok=True)
        with self._lock(folder):
            running = self._read_pointer(folder).canary
            if promote and running is not None:
                raise CanaryError(
                    f"a canary of v{running.version} is running for {tenant}/{name}: register "
                    "without promoting, or end the canary first (ragtune adapters promote or "
                    "rollback)"
                )
            version = (self._versions(folder) or [0])[-1] + 1
            staging = folder / f".staging-{uuid.uuid4().hex}"
            try:
                shutil.copytree(stored.folder, staging)
                card = replace(stored.card, tenant=tenant, name=name, version=version)
                _write_atomic(staging / CARD_FILE, card.to_json())
                if check is not None:
                    check(staging)
                os.replace(staging, folder / f"v{version}")
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            _fsync_dir(folder)
            state = self._read_pointer(folder)
            current = state.current
            if current is None or promote:
                self._move_pointer(folder, state, version)
                why = "the first version" if current is None else "registered with promote"
                self._log(folder, "promoted", version, why)
                current = version
        return ResolvedAdapter(card=card, folder=folder / f"v{version}", current=current == version)

    def promote(
        self,
        ref: str | AdapterRef,
        version: int | None = None,
        *,
        check: Callable[[Path], None] | None = None,
    ) -> ResolvedAdapter:
        """Make ``version`` (or the version in ``ref``) current; the old current goes to history.

        While a canary runs, promoting its version ends the canary by promoting it; any other
        version is refused (:class:`CanaryError`) and nothing changes.
        """
        parsed = parse_ref(ref)
        version = version if version is not None else parsed.version
        if version is None:
            raise AdapterError(f"say which version of {parsed} to promote, e.g. {parsed}@v2")
        target = self.resolve(AdapterRef(parsed.tenant, parsed.name, version))
        if check is not None:
            check(target.folder)  # refuse before the pointer moves
        folder = self._name_dir(parsed.tenant, parsed.name)
        with self._lock(folder):
            state = self._read_pointer(folder)
            canary = state.canary
            if canary is not None and canary.version != version:
                raise CanaryError(
                    f"a canary of v{canary.version} is running for {parsed.tenant}/{parsed.name}: "
                    f"promote v{canary.version} to end it, or end it first with "
                    f"`ragtune adapters rollback {parsed.tenant}/{parsed.name}`"
                )
            if state.current != version or canary is not None:
                self._move_pointer(folder, state, version)
                action = "canary promoted" if canary is not None else "promoted"
                self._log(folder, action, version, "promoted by hand", _plan(canary))
        return replace(target, current=True)

    def rollback(
        self, ref: str | AdapterRef, *, check: Callable[[Path], None] | None = None
    ) -> ResolvedAdapter:
        """Return ``tenant/name`` to the version that was current before the current one; while
        a canary runs, end it instead (the current version stays current)."""
        parsed = parse_ref(ref)
        folder = self._name_dir(parsed.tenant, parsed.name)
        if self._read_pointer(folder).canary is not None:
            self.end_canary(parsed, reason="rolled back by hand")
            return self.resolve(parsed.unversioned)
        with self._lock(folder):
            state = self._read_pointer(folder)
            if state.canary is not None:
                raise CanaryError(
                    f"a canary of {parsed.tenant}/{parsed.name} started meanwhile: run the "
                    "rollback again to end it"
                )
            current, history = state.current, list(state.history)
            versions: set[int] = set(self._versions(folder))
            while history and history[-1] not in versions:  # a deleted version is skipped
                history = history[:-1]
            if not history:
                raise AdapterError(
                    f"{parsed.tenant}/{parsed.name} has nothing to roll back to: "
                    f"v{current} is the only version that was ever current"
                )
            previous = history[-1]
            target = self.resolve(AdapterRef(parsed.tenant, parsed.name, previous))
            if check is not None:
                check(target.folder)
            self._write_pointer(folder, Pointer(previous, tuple(history[:-1])))
            self._log(folder, "rolled back", previous, f"from v{current}")
        return replace(target, current=True)

    # -- canaries --------------------------------------------------------------------------------

    def start_canary(self, ref: str | AdapterRef, version: int, plan: CanaryPlan) -> Canary:
        """Send ``plan.share`` of ``tenant/name``'s unversioned traffic to ``version``.

        Refused, with nothing written, for a version that does not exist
        (:class:`AdapterNotFoundError`), for a name without a current version, for the current
        version itself, and while another canary runs (:class:`CanaryError`).
        """
        parsed = parse_ref(ref)
        name = f"{parsed.tenant}/{parsed.name}"
        self.resolve(AdapterRef(parsed.tenant, parsed.name, version))
        folder = self._name_dir(parsed.tenant, parsed.name)
        with self._lock(folder):
            state = self._read_pointer(folder)
            if state.canary is not None:
                raise CanaryError(
                    f"a canary of v{state.canary.version} is already running for {name} (share "
                    f"{state.canary.plan.share:g}): end it first with `ragtune adapters promote "
                    f"{name} v{state.canary.version}` or `ragtune adapters rollback {name}`"
                )
            if state.current is None:
                raise CanaryError(
                    f"{name} has no current version to compare a canary with: promote one "
                    f"first (`ragtune adapters promote {name} vN`)"
                )
            if state.current == version:
                raise CanaryError(
                    f"v{version} is already current for {name}: a canary needs another version "
                    "(`ragtune adapters list` shows them)"
                )
            canary = Canary(version, plan)
            self._write_pointer(folder, replace(state, canary=canary))
            self._log(
                folder,
                "canary started",
                version,
                f"{plan.share:g} of traffic, against v{state.current}",
                canary.to_json(),
            )
        return canary

    def record_look(
        self,
        ref: str | AdapterRef,
        canary_id: str,
        look: int,
        status: CanaryStatus,
        reason: str,
        detail: Mapping[str, Any],
    ) -> bool:
        """Record look number ``look`` of canary ``canary_id`` and its numbers; False (and
        nothing written) when that canary has ended or the look was recorded already (by
        another process that got there first)."""
        parsed = parse_ref(ref)
        folder = self._name_dir(parsed.tenant, parsed.name)
        with self._lock(folder):
            state = self._read_pointer(folder)
            canary = state.canary
            if canary is None or canary.id != canary_id or canary.looks_done >= look:
                return False
            updated = replace(canary, looks_done=look, status=status)
            self._write_pointer(folder, replace(state, canary=updated))
            self._log(folder, "canary look", canary.version, reason, detail)
        return True

    def end_canary(
        self,
        ref: str | AdapterRef,
        *,
        reason: str,
        canary_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> Canary:
        """Drop the running canary (the current version keeps all traffic) and say why in the
        history. With ``canary_id``, only that canary: :class:`CanaryError` when it has ended."""
        parsed = parse_ref(ref)
        name = f"{parsed.tenant}/{parsed.name}"
        folder = self._name_dir(parsed.tenant, parsed.name)
        with self._lock(folder):
            state = self._read_pointer(folder)
            canary = state.canary
            if canary is None or (canary_id is not None and canary.id != canary_id):
                raise CanaryError(f"no canary is running for {name}: nothing to end")
            self._write_pointer(folder, replace(state, canary=None))
            self._log(
                folder,
                "canary rolled back",
                canary.version,
                reason,
                {**_plan(canary), **(detail or {})},
            )
        return canary

    # -- internals -------------------------------------------------------------------------------

    def _name_dir(self, tenant: str, name: str) -> Path:
        try:
            return self.root / check_name(tenant, "tenant") / check_name(name, "adapter name")
        except ValueError as exc:
            raise AdapterNotFoundError(str(exc)) from exc

    @staticmethod
    def _versions(folder: Path) -> builtins.list[int]:
        if not folder.is_dir():
            return []
        found = []
        for child in folder.iterdir():
            match = _VERSION_DIR.match(child.name)
            if match and (child / CARD_FILE).is_file():
                found.append(int(match[1]))
        return sorted(found)

    @staticmethod
    def _card(vdir: Path) -> AdapterCard:
        return AdapterCard.from_json(
            (vdir / CARD_FILE).read_text(encoding="utf-8"), where=str(vdir / CARD_FILE)
        )

    @staticmethod
    def _read_pointer(folder: Path) -> Pointer:
        path = folder / POINTER
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return Pointer(None)
        except ValueError as exc:
            raise AdapterCorruptError(
                f"{path} is damaged ({exc}); promote a version again to rewrite it"
            ) from exc
        current = data.get("current") if isinstance(data, dict) else None
        history = data.get("history", []) if isinstance(data, dict) else None
        if not (current is None or isinstance(current, int)) or not isinstance(history, list):
            raise AdapterCorruptError(f"{path} is damaged; promote a version again to rewrite it")
        canary = None
        if data.get("canary") is not None:
            try:
                canary = Canary.from_json(data["canary"])
            except (ValueError, KeyError, TypeError) as exc:
                raise AdapterCorruptError(
                    f"{path} holds a damaged canary ({exc}); end it with `ragtune adapters "
                    "promote` of a version, which rewrites the pointer"
                ) from exc
        return Pointer(current, tuple(int(v) for v in history), canary)

    @staticmethod
    def _write_pointer(folder: Path, pointer: Pointer) -> None:
        data: dict[str, Any] = {"current": pointer.current, "history": list(pointer.history[-50:])}
        if pointer.canary is not None:
            data["canary"] = pointer.canary.to_json()
        _write_atomic(folder / POINTER, json.dumps(data) + "\n")
        _fsync_dir(folder)

    def _move_pointer(self, folder: Path, state: Pointer, version: int) -> None:
        """Make ``version`` current (the old current goes to history); any canary ends."""
        history = state.history
        if state.current is not None and state.current != version:
            history = (*history, state.current)
        self._write_pointer(folder, Pointer(version, history))

    @staticmethod
    def _log(
        folder: Path,
        action: str,
        version: int | None,
        reason: str = "",
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one event to the history (called with the lock held): one ``write``, synced."""
        event = {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "action": action,
            "version": version,
            "reason": reason,
            "detail": dict(detail or {}),
        }
        with open(folder / HISTORY, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(event, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    @staticmethod
    @contextmanager
    def _lock(folder: Path) -> Iterator[None]:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _plan(canary: Canary | None) -> dict[str, Any]:
    return {} if canary is None else {"canary": canary.to_json()}


def _write_atomic(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(temp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
