"""The adapter registry: versioned adapters per tenant, with a ``current`` pointer.

Layout (in a folder, or under ``s3://bucket/prefix``: see :mod:`.registry_storage`)::

    adapters/
      acme/                       tenant
        support/                  adapter name
          v1/  v2/  v3/           versions: PEFT files + adapter.json, never changed once written
          current.json            {"current": 3, "history": [1, 2], "seq": 7, "canary": {...}}
          history.jsonl           what happened and why (on S3: history/<seq>-<id>.json objects)

``register`` stores an adapter folder as the next version (published whole: a folder is renamed
into place, an upload writes its card last, so a crash leaves no half version), ``promote``
points ``current`` at a version, ``rollback`` returns to the version that was current before.
The pointer moves only by compare-and-swap (read it with its tag, write it only if the tag still
holds, retry otherwise): two processes, or two machines, promoting at once cannot both win, and
a reader sees the old or the new pointer, never a torn one. A running generator reads the
pointer on every request, so a promotion takes effect on the next request without a restart
(see :class:`~ragtune.generate.generator.HFGenerator`).

A version is refused before the pointer moves when it fails ``check`` (for a generator: it loads
and fits the base model); the version that was serving keeps serving.

A canary (:mod:`ragtune.generate.canary`) lives in the same pointer file, so a running server
sees one start, get judged and end at its next request, and a restarted one finds it where it
was. While a canary runs, promoting its version ends it by promoting, rolling back ends it by
dropping it; promoting any other version is refused. Every change of the pointer, and every
canary decision with its numbers, is added to the history, numbered by the pointer write
(``seq``) it came with, and read back in that order.
"""

from __future__ import annotations

import builtins
import json
import logging
import random
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

from ragtune.errors import (
    AdapterCorruptError,
    AdapterError,
    AdapterNotFoundError,
    CanaryError,
    RegistryUnavailableError,
)
from ragtune.generate.adapters import CARD_FILE, AdapterCard, read_adapter
from ragtune.generate.canary import Canary, CanaryPlan, CanaryStatus
from ragtune.generate.registry_storage import (
    DEFAULT_CACHE,
    DEFAULT_POINTER_MAX_AGE,
    MAX_POINTER_AGE,
    Blob,
    RegistryStorage,
    folder_root,
    open_storage,
)
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
    damaged: str = ""
    """Why the pointer cannot be read ("" when it can): the entry's current and history are then
    empty, and promoting a version rewrites it."""


@dataclass(frozen=True)
class Pointer:
    """What ``current.json`` holds."""

    current: int | None
    history: tuple[int, ...] = ()
    """The versions current before, oldest first: what rollback returns to."""
    canary: Canary | None = None
    seq: int = 0
    """How many times the pointer has been written: orders the history's events, which writers
    append after their compare-and-swap (so not always in the order the swaps happened)."""


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
    seq: int = 0
    """The pointer write this event came with (:attr:`Pointer.seq`; 0 in older histories)."""


_Change = Callable[[Pointer], "tuple[Pointer, builtins.list[_Event]] | None"]
"""What a pointer update does: the new pointer and the events to log, or None to write nothing.
It may raise to refuse (nothing is written)."""

_SWAP_TRIES = 50
_OUTAGE_RETRY_SECONDS = 5.0
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Event:
    action: str
    version: int | None
    reason: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)
    seq: int = 0


class AdapterRegistry:
    """Adapters under ``root`` (a folder, or ``s3://bucket/prefix``); safe to share between
    processes and machines: the pointer only moves by compare-and-swap.

    ``cache`` is where versions of an object-storage registry are downloaded (unused for a folder).
    """

    def __init__(
        self,
        root: Path | str,
        *,
        cache: Path = DEFAULT_CACHE,
        pointer_max_age: float = DEFAULT_POINTER_MAX_AGE,
    ) -> None:
        if not 0 <= pointer_max_age <= MAX_POINTER_AGE:
            raise ValueError(
                f"pointer_max_age is {pointer_max_age}: give seconds from 0 to {MAX_POINTER_AGE:g}"
            )
        self.storage: RegistryStorage = open_storage(root, cache)
        self.pointer_max_age = pointer_max_age
        """Seconds a served request may reuse this process's last read of a pointer (0: read it
        every time; at most :data:`MAX_POINTER_AGE`). Writes through this registry refresh it at
        once."""
        self._served: dict[str, tuple[float, Pointer]] = {}
        """The last pointer a served request read, per adapter name, and when: reused within
        ``pointer_max_age``, and while the storage cannot be reached."""
        self._views = threading.local()
        """The pointers read inside :meth:`one_view` on this thread, or no attribute outside."""
        self._unreachable_until = 0.0
        """Until when (monotonic seconds) served requests skip a storage that just failed."""
        folder = folder_root(root)
        self.root: Path | str = folder if folder is not None else str(root)

    # -- reading ---------------------------------------------------------------------------------

    def resolve(self, ref: str | AdapterRef) -> ResolvedAdapter:
        """The version ``ref`` names (its current one when no version is given); for object
        storage its files are downloaded to the local cache first (once per version)."""
        parsed, key, version, current = self._locate(ref)
        # Served requests come here every time: a pointer read and, for a version seen before,
        # nothing else (object storage: one GET). Listing happens only to explain a miss.
        folder = self.storage.version_folder(key, version) if version is not None else None
        if version is None or folder is None:
            self._explain_miss(parsed, key, version)
        card = AdapterCard.from_json(
            (folder / CARD_FILE).read_text(encoding="utf-8"), where=str(folder / CARD_FILE)
        )
        return ResolvedAdapter(card=card, folder=folder, current=version == current)

    def card(self, ref: str | AdapterRef) -> AdapterCard:
        """The card of the version ``ref`` names, without its weights: what a front end checks
        on every request before sending it to a model replica (object storage: the pointer's
        GET, and the card's once per process). Raises as :meth:`resolve` does."""
        parsed = parse_ref(ref)
        version: int | None = parsed.version
        if version is not None:  # a pinned version: its card alone, no pointer read
            key = self._key(parsed.tenant, parsed.name)
        else:
            parsed, key, version, _ = self._locate(parsed)
        text = self.storage.card_text(key, version) if version is not None else None
        if version is None or text is None:
            self._explain_miss(parsed, key, version)
        return AdapterCard.from_json(text, where=f"{self.storage.location}/{key}/v{version}")

    def _locate(self, ref: str | AdapterRef) -> tuple[AdapterRef, str, int | None, int | None]:
        """``ref`` parsed, its storage key, the version it names and the current version."""
        parsed = parse_ref(ref)
        key = self._key(parsed.tenant, parsed.name)
        try:
            current = self._serving_pointer(key).current
        except (AdapterCorruptError, RegistryUnavailableError):
            if parsed.version is None:
                raise
            # A pinned version still reads (and promoting it repairs a damaged pointer).
            current = None
        return parsed, key, parsed.version if parsed.version is not None else current, current

    def _explain_miss(self, parsed: AdapterRef, key: str, version: int | None) -> NoReturn:
        versions = self.storage.versions(key)
        if not versions:
            known = ", ".join(f"{e.tenant}/{e.name}" for e in self.list(parsed.tenant))
            raise AdapterNotFoundError(
                f"no adapter {parsed.tenant}/{parsed.name} under {self.storage.location} "
                f"(registered for {parsed.tenant}: {known or 'none'})"
            )
        if version is None:
            raise AdapterNotFoundError(
                f"{parsed.tenant}/{parsed.name} has no current version: promote one with "
                f"`ragtune adapters promote {parsed.tenant}/{parsed.name} vN`"
            )
        listed = ", ".join(f"v{v}" for v in versions)
        raise AdapterNotFoundError(
            f"{parsed.tenant}/{parsed.name} has no version v{version} (versions: {listed})"
        )

    def current_version(self, tenant: str, name: str) -> int | None:
        """The current version number: one small file read, cheap enough for every request."""
        return self.pointer(tenant, name).current

    def pointer(self, tenant: str, name: str) -> Pointer:
        """The current version, its history and the running canary: one small file read, cheap
        enough for every request (an adapter that does not exist has an empty pointer)."""
        return self._serving_pointer(self._key(tenant, name))

    def history(self, ref: str | AdapterRef) -> builtins.list[HistoryEvent]:
        """What happened to ``tenant/name`` and why, oldest first."""
        parsed = parse_ref(ref)
        return self._events(self._key(parsed.tenant, parsed.name))

    def _events(self, key: str) -> builtins.list[HistoryEvent]:
        events = []
        for line in self.storage.events(key):
            try:
                data = json.loads(line)
                events.append(
                    HistoryEvent(
                        str(data["time"]),
                        str(data["action"]),
                        data.get("version"),
                        str(data.get("reason", "")),
                        dict(data.get("detail", {})),
                        int(data.get("seq", 0)),
                    )
                )
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a line torn by a crash mid-append: the others still read
        # Concurrent writers append in the order they finish, not the order their swaps won.
        return sorted(events, key=lambda e: e.seq)

    def list(self, tenant: str | None = None) -> builtins.list[AdapterEntry]:
        """Every adapter name (of one tenant, or all), sorted."""
        try:
            tenants = [check_name(tenant, "tenant")] if tenant else self.storage.children("")
        except ValueError as exc:
            raise AdapterNotFoundError(str(exc)) from exc
        entries = []
        for owner in tenants:
            for name in self.storage.children(owner):
                key = f"{owner}/{name}"
                versions = self.storage.versions(key)
                if not versions:
                    continue
                damaged = ""
                try:
                    state = self._read_pointer(key)
                except AdapterCorruptError as exc:
                    state, damaged = Pointer(None), str(exc)
                kind = self._card(key, versions[-1]).kind
                entries.append(
                    AdapterEntry(
                        owner,
                        name,
                        tuple(versions),
                        state.current,
                        state.history,
                        kind,
                        state.canary,
                        damaged,
                    )
                )
        return entries

    def cards(self, tenant: str, name: str) -> builtins.list[AdapterCard]:
        """The cards of every version of ``tenant/name``, oldest first."""
        key = self._key(tenant, name)
        versions = self.storage.versions(key)
        if not versions:
            raise AdapterNotFoundError(f"no adapter {tenant}/{name} under {self.storage.location}")
        return [self._card(key, v) for v in versions]

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
        tenant, name = tenant or stored.card.tenant, name or stored.card.name
        key = self._key(tenant, name)
        running = self._read_pointer(key).canary
        if promote and running is not None:
            raise CanaryError(
                f"a canary of v{running.version} is running for {tenant}/{name}: register "
                "without promoting, or end the canary first (ragtune adapters promote or "
                "rollback)"
            )

        def card_for(version: int) -> str:
            return replace(stored.card, tenant=tenant, name=name, version=version).to_json()

        staging = self.storage.staging_folder(key)
        try:
            shutil.copytree(stored.folder, staging, dirs_exist_ok=True)
            (staging / CARD_FILE).write_text(
                card_for((self.storage.versions(key) or [0])[-1] + 1), encoding="utf-8"
            )
            if check is not None:
                check(staging)
            version = self.storage.publish(key, staging, card_for)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

        def make_current(state: Pointer) -> tuple[Pointer, builtins.list[_Event]] | None:
            if state.current is not None and not promote:
                return None
            if state.canary is not None:  # started while the version uploaded: it stays put
                return None
            why = "the first version" if state.current is None else "registered with promote"
            return _moved(state, version), [_Event("promoted", version, why)]

        state = self._update(key, make_current)
        card = replace(stored.card, tenant=tenant, name=name, version=version)
        folder = self.storage.version_folder(key, version)
        assert folder is not None, "a version just published has its card"
        return ResolvedAdapter(card=card, folder=folder, current=state.current == version)

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

        def make_current(state: Pointer) -> tuple[Pointer, builtins.list[_Event]] | None:
            canary = state.canary
            if canary is not None and canary.version != version:
                raise CanaryError(
                    f"a canary of v{canary.version} is running for {parsed.tenant}/{parsed.name}: "
                    f"promote v{canary.version} to end it, or end it first with "
                    f"`ragtune adapters rollback {parsed.tenant}/{parsed.name}`"
                )
            if state.current == version and canary is None:
                return None
            action = "canary promoted" if canary is not None else "promoted"
            return _moved(state, version), [
                _Event(action, version, "promoted by hand", _plan(canary))
            ]

        self._update(self._key(parsed.tenant, parsed.name), make_current, repair=True)
        return replace(target, current=True)

    def rollback(
        self, ref: str | AdapterRef, *, check: Callable[[Path], None] | None = None
    ) -> ResolvedAdapter:
        """Return ``tenant/name`` to the version that was current before the current one; while
        a canary runs, end it instead (the current version stays current)."""
        parsed = parse_ref(ref)
        key = self._key(parsed.tenant, parsed.name)
        if self._read_pointer(key).canary is not None:
            self.end_canary(parsed, reason="rolled back by hand")
            return self.resolve(parsed.unversioned)
        versions: set[int] = set(self.storage.versions(key))
        checked: dict[int, ResolvedAdapter] = {}

        def step_back(state: Pointer) -> tuple[Pointer, builtins.list[_Event]] | None:
            if state.canary is not None:
                raise CanaryError(
                    f"a canary of {parsed.tenant}/{parsed.name} started meanwhile: run the "
                    "rollback again to end it"
                )
            history = list(state.history)
            while history and history[-1] not in versions:  # a deleted version is skipped
                history = history[:-1]
            if not history:
                raise AdapterError(
                    f"{parsed.tenant}/{parsed.name} has nothing to roll back to: the pointer "
                    f"records no version current before v{state.current} (promote one by "
                    "number instead: ragtune adapters promote TENANT/NAME vN)"
                )
            previous = history[-1]
            if previous not in checked:
                target = self.resolve(AdapterRef(parsed.tenant, parsed.name, previous))
                if check is not None:
                    check(target.folder)
                checked[previous] = target
            event = _Event("rolled back", previous, f"from v{state.current}")
            return Pointer(previous, tuple(history[:-1])), [event]

        state = self._update(key, step_back)
        assert state.current is not None
        return replace(checked[state.current], current=True)

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
        canary = Canary(version, plan)

        def start(state: Pointer) -> tuple[Pointer, builtins.list[_Event]] | None:
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
            reason = f"{plan.share:g} of traffic, against v{state.current}"
            event = _Event("canary started", version, reason, canary.to_json())
            return replace(state, canary=canary), [event]

        self._update(self._key(parsed.tenant, parsed.name), start)
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
        recorded = False

        def record(state: Pointer) -> tuple[Pointer, builtins.list[_Event]] | None:
            nonlocal recorded
            canary = state.canary
            recorded = not (canary is None or canary.id != canary_id or canary.looks_done >= look)
            if canary is None or not recorded:
                return None
            updated = replace(canary, looks_done=look, status=status)
            return replace(state, canary=updated), [
                _Event("canary look", canary.version, reason, detail)
            ]

        self._update(self._key(parsed.tenant, parsed.name), record)
        return recorded

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
        ended: list[Canary] = []

        def end(state: Pointer) -> tuple[Pointer, builtins.list[_Event]] | None:
            canary = state.canary
            if canary is None or (canary_id is not None and canary.id != canary_id):
                raise CanaryError(f"no canary is running for {name}: nothing to end")
            ended[:] = [canary]
            event = _Event(
                "canary rolled back", canary.version, reason, {**_plan(canary), **(detail or {})}
            )
            return replace(state, canary=None), [event]

        self._update(self._key(parsed.tenant, parsed.name), end)
        return ended[0]

    # -- internals -------------------------------------------------------------------------------

    @staticmethod
    def _key(tenant: str, name: str) -> str:
        try:
            return f"{check_name(tenant, 'tenant')}/{check_name(name, 'adapter name')}"
        except ValueError as exc:
            raise AdapterNotFoundError(str(exc)) from exc

    def _card(self, key: str, version: int) -> AdapterCard:
        where = f"{self.storage.location}/{key}/v{version}/{CARD_FILE}"
        blob = self.storage.read(f"{key}/v{version}/{CARD_FILE}")
        if blob is None:
            raise AdapterCorruptError(f"{where} is missing: re-register the version")
        return AdapterCard.from_json(blob.text, where=where)

    @contextmanager
    def one_view(self) -> Iterator[None]:
        """Within the block, on this thread, each pointer is read at most once: the steps of
        one request (its adapter check, canary split, load and generation) see one state of the
        registry and cost one read, whatever ``pointer_max_age``. Nested blocks share the
        outer view; writes through this registry drop the pointers they change from it."""
        if getattr(self._views, "pointers", None) is not None:
            yield
            return
        self._views.pointers = {}
        try:
            yield
        finally:
            self._views.pointers = None

    def _serving_pointer(self, key: str) -> Pointer:
        """The pointer as a served request reads it: from the request's view (:meth:`one_view`),
        else from this process's last read while it is younger than ``pointer_max_age``, else
        read now."""
        view: dict[str, Pointer] | None = getattr(self._views, "pointers", None)
        if view is not None and key in view:
            return view[key]
        pointer = self._fresh_pointer(key)
        if view is not None:
            view[key] = pointer
        return pointer

    def _fresh_pointer(self, key: str) -> Pointer:
        seen = self._served.get(key)
        now = time.monotonic()
        if seen is not None and now - seen[0] < self.pointer_max_age:
            return seen[1]
        if seen is not None and now < self._unreachable_until:
            return seen[1]  # storage down a moment ago: do not make every request wait on it
        try:
            pointer = self._read_pointer(key)
        except RegistryUnavailableError as exc:
            if seen is None:
                raise
            # An outage of the storage (for this process at least): serve on with the pointer
            # read last, and retry in a few seconds; a promotion made meanwhile by someone who
            # does reach it arrives when this process does again.
            self._unreachable_until = time.monotonic() + _OUTAGE_RETRY_SECONDS
            _log.warning("adapter registry unreachable, %s keeps its last pointer: %s", key, exc)
            return seen[1]
        self._served[key] = (time.monotonic(), pointer)
        return pointer

    def _read_pointer(self, key: str) -> Pointer:
        return _parse_pointer(self.storage.read(f"{key}/{POINTER}"), self._where(key))

    def _where(self, key: str) -> str:
        return f"{self.storage.location}/{key}/{POINTER}"

    def _update(self, key: str, change: _Change, *, repair: bool = False) -> Pointer:
        """Apply ``change`` to the pointer of ``key`` by compare-and-swap, retried while other
        writers get in first; its events are logged once the pointer is written, numbered by
        the pointer's new ``seq``. Returns the pointer as it stands after (unchanged where
        ``change`` returned None). With ``repair``, a damaged pointer counts as empty (and is
        replaced) instead of raising :class:`AdapterCorruptError`."""
        path = f"{key}/{POINTER}"
        for attempt in range(_SWAP_TRIES):
            blob = self.storage.read(path)
            try:
                state = _parse_pointer(blob, self._where(key))
            except AdapterCorruptError:
                if not repair:
                    raise
                # Number on from the history, so the repair and what follows read back last.
                state = Pointer(None, seq=max((e.seq for e in self._events(key)), default=0))
            outcome = change(state)
            if outcome is None:
                return state
            new, events = outcome
            new = replace(new, seq=state.seq + 1)
            events = [replace(e, seq=new.seq) for e in events]
            text = _pointer_text(new)
            written = (
                self.storage.create(path, text)
                if blob is None
                else self.storage.swap(path, text, blob.tag)
            )
            if written:
                self._served.pop(key, None)  # this process sees its own change at once
                view = getattr(self._views, "pointers", None)
                if view is not None:
                    view.pop(key, None)
                for event in events:
                    self._log(key, event)
                return new
            time.sleep(min(0.5, 0.005 * 2**attempt) * random.random())
        raise AdapterError(
            f"{key}'s pointer kept changing under {_SWAP_TRIES} tries (other writers): try again"
        )

    def _log(self, key: str, event: _Event) -> None:
        """Append one event to the history, durably."""
        line = {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "action": event.action,
            "version": event.version,
            "reason": event.reason,
            "detail": dict(event.detail),
            "seq": event.seq,
        }
        self.storage.append_event(key, json.dumps(line, default=str), event.seq)


def _moved(state: Pointer, version: int) -> Pointer:
    """``version`` made current (the old current goes to history); any canary ends."""
    history = state.history
    if state.current is not None and state.current != version:
        history = (*history, state.current)
    return Pointer(version, history)


def _pointer_text(pointer: Pointer) -> str:
    data: dict[str, Any] = {
        "current": pointer.current,
        "history": list(pointer.history[-50:]),
        "seq": pointer.seq,
    }
    if pointer.canary is not None:
        data["canary"] = pointer.canary.to_json()
    return json.dumps(data) + "\n"


def _parse_pointer(blob: Blob | None, where: str) -> Pointer:
    """The pointer a file holds (empty where there is none); :class:`AdapterCorruptError`, with
    the fix, for anything but the shape :func:`_pointer_text` writes."""
    if blob is None:
        return Pointer(None)
    fix = "promote a version to rewrite it (ragtune adapters promote TENANT/NAME vN)"
    try:
        data = json.loads(blob.text)
    except ValueError as exc:
        raise AdapterCorruptError(f"{where} is damaged ({exc}): {fix}") from exc
    if not isinstance(data, dict):
        raise AdapterCorruptError(f"{where} is damaged (not a JSON object): {fix}")
    current, history = data.get("current"), data.get("history", [])
    seq, canary_data = data.get("seq", 0), data.get("canary")
    if not (current is None or _is_version(current)):
        raise AdapterCorruptError(f"{where} is damaged (current is {current!r}): {fix}")
    if not isinstance(history, list) or not all(_is_version(v) for v in history):
        raise AdapterCorruptError(f"{where} is damaged (history is {history!r}): {fix}")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise AdapterCorruptError(f"{where} is damaged (seq is {seq!r}): {fix}")
    canary = None
    if canary_data is not None:
        try:
            if not isinstance(canary_data, dict):
                raise TypeError(f"a canary is an object, not {canary_data!r}")
            canary = Canary.from_json(canary_data)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AdapterCorruptError(
                f"{where} holds a damaged canary ({exc}): end it with `ragtune adapters "
                "promote` of a version, which rewrites the pointer"
            ) from exc
    return Pointer(current, tuple(history), canary, seq)


def _is_version(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _plan(canary: Canary | None) -> dict[str, Any]:
    return {} if canary is None else {"canary": canary.to_json()}
