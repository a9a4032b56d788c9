"""The key/value cache of a prompt's fixed head, kept per adapter.

Every grounded prompt starts with the same tokens: the system instruction and, for the bare base
model, the two worked examples (:func:`~ragtune.generate.prompts.prompt_head`). Their keys and
values depend only on those tokens and the adapter, so the generator computes them once per
adapter and prefills only what follows (the passages and the question). A cached head travels
into a batch as the row's prefix (:class:`~ragtune.generate.batching.Row`): the adapter's own
prefix and soft prompt are inside it, and the row's positions start after it, so the row
computes what it computes without the cache, up to float rounding.

On SmolLM2 the head is 56 tokens with an adapter and about 250 for the bare base model with its
examples, out of a default prompt of about 600; prefill time grows with every token prefilled.

Example::

    cache = HeadCache(capacity=34)
    head = cache.get(adapter_key, adapter, head_ids)      # None on a miss
    cache.put(CachedHead(adapter_key, adapter, head_ids, kv))
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["CachedHead", "HeadCache", "head_length"]


def head_length(prompt_ids: Sequence[int], head_ids: Sequence[int]) -> int:
    """How many leading tokens of ``prompt_ids`` a cached ``head_ids`` stands for: its length
    when the prompt starts with it and goes on after it (a row needs at least one token to
    prefill), else 0. Pure.

    >>> head_length([1, 2, 3, 4], [1, 2])
    2
    >>> head_length([1, 2], [1, 2]), head_length([1, 5, 3], [1, 2]), head_length([1, 2, 3], [])
    (0, 0, 0)
    """
    n = len(head_ids)
    if n == 0 or len(prompt_ids) <= n:
        return 0
    return n if tuple(prompt_ids[:n]) == tuple(head_ids) else 0


@dataclass(frozen=True)
class CachedHead:
    """The keys and values of a prompt head under one adapter."""

    key: str
    """The adapter's key in the pool (``""`` for the base model)."""
    adapter: Any
    """The :class:`~ragtune.generate.pool.LoadedAdapter` it was computed with (None: the base):
    a reloaded adapter is another object, so a head is never served across a reload."""
    token_ids: tuple[int, ...]
    kv: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    """One ``(K, V)`` pair of ``(kv_heads, virtual + len(token_ids), head_dim)`` per layer:
    the adapter's prefix or soft prompt positions, then the head's."""

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + v.nbytes for k, v in self.kv)


class HeadCache:
    """The cached heads, least recently used dropped beyond ``capacity``. Not thread-safe by
    itself: the generator holds its lock around every use."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a head cache needs room for at least one head, not {capacity}")
        self._capacity = capacity
        self._heads: OrderedDict[tuple[str, tuple[int, ...]], CachedHead] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._heads)

    def get(self, key: str, adapter: Any, token_ids: Sequence[int]) -> CachedHead | None:
        """The head cached for ``token_ids`` under this very ``adapter`` object, or None."""
        slot = (key, tuple(token_ids))
        head = self._heads.get(slot)
        if head is None or head.adapter is not adapter:
            self.misses += 1
            return None
        self._heads.move_to_end(slot)
        self.hits += 1
        return head

    def put(self, head: CachedHead) -> None:
        self._heads[(head.key, head.token_ids)] = head
        self._heads.move_to_end((head.key, head.token_ids))
        while len(self._heads) > self._capacity:
            self._heads.popitem(last=False)
