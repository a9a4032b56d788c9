"""The adapters one base model holds in memory: resolution, loading, eviction, checks.

A request names its adapter as a concrete :data:`~ragtune.types.AdapterChoice`: the base model,
a registry reference or a folder. A reference without a version follows the registry's
``current`` pointer, re-read on every request, so a promotion or rollback takes effect on the
next request without a restart. Loaded adapters stay in memory; beyond ``max_loaded`` the least
recently used is dropped.

Loading refuses an adapter made for another base model, one whose tensors do not fit, and a
damaged one (:func:`~ragtune.generate.adapters.check_compatible`) before anything in memory
changes. When the current pointer moves to a version that is refused, the version that was
serving keeps serving and a warning is logged once per bad version (the promotion check).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from annotated_types import Ge, Le

from ragtune.errors import AdapterError, AdapterNotFoundError
from ragtune.generate.adapters import (
    AdapterCard,
    AdapterKind,
    StoredAdapter,
    check_compatible,
    model_shape,
    prefix_kv,
    read_adapter,
)
from ragtune.generate.batching import Row
from ragtune.generate.lora import RowLora, lora_tensors
from ragtune.generate.registry import AdapterRegistry
from ragtune.generate.registry_storage import (
    DEFAULT_CACHE,
    DEFAULT_POINTER_MAX_AGE,
    DEFAULT_ROOT,
    MAX_POINTER_AGE,
    check_root,
)
from ragtune.settings import check_bounds
from ragtune.types import AdapterChoice, AdapterFolder, AdapterRef, NoAdapter

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch

    from ragtune.generate.models import LoadedModel

__all__ = ["AdapterPool", "LoadedAdapter", "PoolSettings"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolSettings:
    """Where registered adapters live and how many stay loaded."""

    root: str = DEFAULT_ROOT
    """The adapter registry: a folder (relative to the working directory; shared over NFS for
    replicas on several machines), or ``s3://bucket/prefix`` (object storage; needs
    ``ragtune[s3]``; endpoint and credentials from ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``...)."""
    cache: Path = DEFAULT_CACHE
    """Where versions of an object-storage registry are downloaded and kept (a version never
    changes once published); unused for a folder registry."""
    pointer_max_age: Annotated[float, Ge(0.0), Le(MAX_POINTER_AGE)] = DEFAULT_POINTER_MAX_AGE
    """Seconds a served request may reuse a process's last read of an adapter's pointer: 0
    reads it on every request (a promotion reaches the next request); a few seconds cuts an
    ``s3://`` registry's GETs to one per adapter per interval, and a promotion, rollback or
    canary then reaches each process within that time."""
    max_loaded: Annotated[int, Ge(1)] = 32
    """Adapters kept in memory; beyond it the least recently used is dropped."""

    def __post_init__(self) -> None:
        check_bounds(self)
        try:
            check_root(self.root)
        except AdapterError as exc:
            raise ValueError(str(exc)) from None

    def registry(self) -> AdapterRegistry:
        """The registry these settings name, opened."""
        return AdapterRegistry(self.root, cache=self.cache, pointer_max_age=self.pointer_max_age)


@dataclass(frozen=True)
class LoadedAdapter:
    """An adapter held in memory, ready to be used by any row of a batch."""

    key: str
    card: AdapterCard
    folder: Path
    prefix: tuple[tuple[torch.Tensor, torch.Tensor], ...] | None = None
    soft_prompt: torch.Tensor | None = None
    lora_name: str | None = None
    """The name its LoRA tensors are held under in the pool's :class:`RowLora` (its key)."""
    nbytes: int = 0
    load_seconds: float = 0.0

    @property
    def kind(self) -> AdapterKind:
        return self.card.kind

    @property
    def virtual_tokens(self) -> int:
        if self.prefix:
            return int(self.prefix[0][0].shape[1])
        return 0 if self.soft_prompt is None else int(self.soft_prompt.shape[0])

    def row(self, token_ids: Sequence[int]) -> Row:
        return Row(token_ids, prefix=self.prefix, soft_prompt=self.soft_prompt, lora=self.lora_name)


class AdapterPool:
    """See the module doc. Thread-safe; ``lora`` is the router the forward passes go through."""

    def __init__(
        self, base: LoadedModel, registry: AdapterRegistry, settings: PoolSettings
    ) -> None:
        self.base = base
        self.registry = registry
        self.settings = settings
        self.lora = RowLora(base.model)
        self.loads = 0
        """How many times an adapter version was brought into memory (first use, a promotion or
        rollback picked up, a reload after eviction): the serving metric of adapter switches."""
        self._shape = model_shape(base.model)
        self._loaded: OrderedDict[str, LoadedAdapter] = OrderedDict()
        self._serving: dict[AdapterRef, str] = {}  # unversioned ref -> key last served
        self._warned: set[tuple[AdapterRef, str]] = set()
        self._lock = threading.RLock()

    @property
    def loaded(self) -> tuple[LoadedAdapter, ...]:
        with self._lock:
            return tuple(self._loaded.values())

    def card(self, choice: AdapterChoice) -> AdapterCard | None:
        """The card of the adapter ``choice`` names, read from disk (None for the base model).

        Raises :class:`AdapterNotFoundError` when there is no such adapter or version.
        """
        return adapter_card(self.registry, choice)

    def get(self, choice: AdapterChoice) -> LoadedAdapter | None:
        """The loaded adapter for a request (None for the base model), loading it when needed.

        An unversioned reference follows the current pointer; when the current version is
        refused, the version last served under that reference is used (see the module doc).
        """
        if isinstance(choice, NoAdapter):
            return None
        with self._lock:
            if isinstance(choice, AdapterFolder):
                return self._load_folder(choice.path)
            if choice.version is not None:
                pinned = self._loaded.get(str(choice))  # a version never changes: no lookup
                if pinned is not None:
                    self._loaded.move_to_end(pinned.key)
                    return pinned
                return self._load_version(choice)
            try:
                loaded = self._load_version(choice)
            except AdapterError as exc:
                # The current version was refused, or the registry could not be read (a storage
                # outage): keep serving what this reference served last.
                previous = self._serving.get(choice)
                if previous is None or previous not in self._loaded:
                    raise
                if (choice, str(exc)) not in self._warned:
                    self._warned.add((choice, str(exc)))
                    log.warning(
                        "adapter %s: %s; still serving %s", choice, exc, previous, exc_info=True
                    )
                loaded = self._loaded[previous]
                self._loaded.move_to_end(previous)
                return loaded
            self._serving[choice] = loaded.key
            return loaded

    def check(self, folder: Path) -> None:
        """Raise unless the adapter in ``folder`` loads into this base model (nothing is kept)."""
        check_compatible(read_adapter(folder), self.base)

    def unload(self, key: str) -> None:
        with self._lock:
            loaded = self._loaded.pop(key, None)
            if loaded is None:
                raise AdapterNotFoundError(f"adapter {key} is not loaded")
            if loaded.lora_name:
                self.lora.remove(loaded.lora_name)

    # -- internals -------------------------------------------------------------------------------

    def _load_version(self, ref: AdapterRef) -> LoadedAdapter:
        resolved = self.registry.resolve(ref)
        return self._load(resolved.key, resolved.folder)

    def _load_folder(self, path: Path) -> LoadedAdapter:
        if not path.is_dir():
            raise AdapterNotFoundError(f"adapter folder {path} does not exist")
        return self._load(f"folder:{path.resolve()}", path)

    def _load(self, key: str, folder: Path) -> LoadedAdapter:
        if key in self._loaded:
            self._loaded.move_to_end(key)
            return self._loaded[key]
        started = time.perf_counter()
        stored = read_adapter(folder)
        check_compatible(stored, self.base)  # refuse before anything in memory changes
        loaded = replace(self._materialise(stored, key), load_seconds=time.perf_counter() - started)
        self._loaded[key] = loaded
        self.loads += 1
        while len(self._loaded) > self.settings.max_loaded:  # never the newest one
            self.unload(next(iter(self._loaded)))
        return loaded

    def _materialise(self, stored: StoredAdapter, key: str) -> LoadedAdapter:
        card = stored.card
        device, dtype = self.base.model.device, self.base.model.dtype
        if card.kind == "lora":
            # Read + check + copy: the tensors go to the per-row LoRA, the model is not touched.
            self.lora.add(key, lora_tensors(stored, dtype=dtype, device=device))
            return LoadedAdapter(key, card, stored.folder, lora_name=key, nbytes=stored.nbytes)
        weight = stored.tensors["prompt_embeddings"].to(device=device, dtype=dtype)
        if card.kind == "prefix":
            s = self._shape
            pairs = tuple(prefix_kv(weight, s["layers"], s["kv_heads"], s["head_dim"]))
            return LoadedAdapter(key, card, stored.folder, prefix=pairs, nbytes=stored.nbytes)
        return LoadedAdapter(
            key, card, stored.folder, soft_prompt=weight.contiguous(), nbytes=stored.nbytes
        )


def adapter_card(registry: AdapterRegistry, choice: AdapterChoice) -> AdapterCard | None:
    """The card of the adapter ``choice`` names, read from disk without loading it (None for
    the base model). Raises :class:`AdapterNotFoundError` for an unknown adapter or version."""
    if isinstance(choice, NoAdapter):
        return None
    if isinstance(choice, AdapterRef):
        return registry.card(choice)
    return read_adapter(choice.path).card
