"""The adapter registry: versioned adapters per tenant on disk, with a ``current`` pointer.

Layout::

    adapters/
      acme/                       tenant
        support/                  adapter name
          v1/  v2/  v3/           versions: PEFT files + adapter.json, never changed once written
          current.json            {"current": 3, "history": [1, 2]}

``register`` copies an adapter folder into the next version (staged in a temporary folder and
renamed into place, so a crash leaves no half version), ``promote`` points ``current`` at a
version, ``rollback`` returns to the version that was current before. The pointer is replaced
atomically (write, fsync, rename); readers see the old or the new pointer, never a torn one. A
running generator reads the pointer on every request, so a promotion takes effect on the next
request without a restart (see :class:`~ragtune.generate.generator.HFGenerator`).

A version is refused before the pointer moves when it fails ``check`` (for a generator: it loads
and fits the base model); the version that was serving keeps serving.
"""

from __future__ import annotations

import builtins
import fcntl
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from ragtune.errors import AdapterCorruptError, AdapterError, AdapterNotFoundError
from ragtune.generate.adapters import CARD_FILE, AdapterCard, read_adapter
from ragtune.types import AdapterRef, check_name, parse_adapter_ref

__all__ = ["AdapterEntry", "AdapterRef", "AdapterRegistry", "ResolvedAdapter", "parse_ref"]

POINTER = "current.json"
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
    """One adapter name: its versions and which is current."""

    tenant: str
    name: str
    versions: tuple[int, ...]
    current: int | None
    history: tuple[int, ...]
    kind: str


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
        current, _history = self._read_pointer(folder)
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
        return self._read_pointer(self._name_dir(tenant, name))[0]

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
                current, history = self._read_pointer(ndir)
                kind = self._card(ndir / f"v{versions[-1]}").kind
                entries.append(
                    AdapterEntry(
                        tdir.name, ndir.name, tuple(versions), current, tuple(history), kind
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
            current, history = self._read_pointer(folder)
            if current is None or promote:
                self._write_pointer(folder, version, [*history, current] if current else history)
                current = version
        return ResolvedAdapter(card=card, folder=folder / f"v{version}", current=current == version)

    def promote(
        self,
        ref: str | AdapterRef,
        version: int | None = None,
        *,
        check: Callable[[Path], None] | None = None,
    ) -> ResolvedAdapter:
        """Make ``version`` (or the version in ``ref``) current; the old current goes to history."""
        parsed = parse_ref(ref)
        version = version if version is not None else parsed.version
        if version is None:
            raise AdapterError(f"say which version of {parsed} to promote, e.g. {parsed}@v2")
        target = self.resolve(AdapterRef(parsed.tenant, parsed.name, version))
        if check is not None:
            check(target.folder)  # refuse before the pointer moves
        folder = self._name_dir(parsed.tenant, parsed.name)
        with self._lock(folder):
            current, history = self._read_pointer(folder)
            if current != version:
                self._write_pointer(folder, version, [*history, current] if current else history)
        return replace(target, current=True)

    def rollback(
        self, ref: str | AdapterRef, *, check: Callable[[Path], None] | None = None
    ) -> ResolvedAdapter:
        """Return ``tenant/name`` to the version that was current before the current one."""
        parsed = parse_ref(ref)
        folder = self._name_dir(parsed.tenant, parsed.name)
        with self._lock(folder):
            current, history = self._read_pointer(folder)
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
            self._write_pointer(folder, previous, history[:-1])
        return replace(target, current=True)

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
    def _read_pointer(folder: Path) -> tuple[int | None, builtins.list[int]]:
        path = folder / POINTER
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None, []
        except ValueError as exc:
            raise AdapterCorruptError(
                f"{path} is damaged ({exc}); promote a version again to rewrite it"
            ) from exc
        current = data.get("current") if isinstance(data, dict) else None
        history = data.get("history", []) if isinstance(data, dict) else None
        if not (current is None or isinstance(current, int)) or not isinstance(history, list):
            raise AdapterCorruptError(f"{path} is damaged; promote a version again to rewrite it")
        return current, [int(v) for v in history]

    @staticmethod
    def _write_pointer(folder: Path, current: int, history: builtins.list[int]) -> None:
        text = json.dumps({"current": current, "history": history[-50:]}) + "\n"
        _write_atomic(folder / POINTER, text)
        _fsync_dir(folder)

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
