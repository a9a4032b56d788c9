"""One forward pass over requests that use different adapters: the tensor layout, nothing else.

PEFT can serve only one prompt-learning adapter at a time, and it ignores position ids for them.
ragtune therefore injects prefixes and soft prompts itself, row by row (LoRA rows are applied by
:class:`~ragtune.generate.lora.RowLora`, told each row's adapter name). A cached prompt head
(:mod:`ragtune.generate.prompt_cache`) travels as a row's prefix too. A batch of rows is laid out so that
each row computes exactly what it computes alone, up to float rounding::

    cache columns : [ 0 ... 0 | prefix_i (p_i) ]                  one (B, H, P, D) pair per layer
    input columns : [ pad ... | soft_prompt_i (s_i) | tokens_i ]  inputs_embeds (B, S, hidden)
    attention_mask: 0 on every padding column, 1 elsewhere        (B, P + S)
    position_ids  : row i's content at p_i, p_i + 1, ...          where it sits when alone

Positions matter for prefixes: their keys were stored at positions 0..p-1 and carry no rotation
relative to the query, so a row must see its own prefix length, not the batch's longest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["BASE_ADAPTER", "Batch", "Row", "make_batch", "select_rows", "step_inputs"]

BASE_ADAPTER = "__base__"
"""The adapter name of a row that uses no LoRA adapter."""

PrefixKV = Sequence[tuple["torch.Tensor", "torch.Tensor"]]


@dataclass(frozen=True)
class Row:
    """One request's input: prompt tokens and at most one adapter's weights."""

    token_ids: Sequence[int]
    prefix: PrefixKV | None = None
    """One (K, V) pair of shape (kv_heads, p, head_dim) per layer."""
    soft_prompt: torch.Tensor | None = None
    """(s, hidden) embeddings put before the tokens."""
    lora: str | None = None
    """The adapter's name in the pool's :class:`~ragtune.generate.lora.RowLora`."""

    @property
    def prefix_length(self) -> int:
        return 0 if not self.prefix else int(self.prefix[0][0].shape[1])


@dataclass
class Batch:
    """Model inputs for a first (prefill) forward pass; ``next_positions`` for the decode steps."""

    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    cache: Any
    """A fresh :class:`~ragtune.generate.kv_cache.GrowingCache`, holding the prefixes when rows
    have them, with room for ``reserve`` more positions."""
    adapter_names: list[str] | None
    next_positions: torch.Tensor


def make_batch(
    rows: Sequence[Row],
    embed: Callable[[torch.Tensor], torch.Tensor],
    *,
    num_layers: int,
    any_lora: bool,
    reserve: int = 0,
) -> Batch:
    """Lay ``rows`` out for one forward pass (see the module doc); the cache has room for
    ``reserve`` positions after the prompt (the answer's tokens) before it must grow."""
    import torch

    from ragtune.generate.kv_cache import GrowingCache

    if not rows:
        raise ValueError("a batch needs at least one row")
    if any(len(r.token_ids) == 0 for r in rows):
        raise ValueError("every row needs at least one prompt token")
    embedded = [embed(torch.tensor([int(t) for t in r.token_ids], dtype=torch.long)) for r in rows]
    dtype, device = embedded[0].dtype, embedded[0].device
    contents = [
        torch.cat([r.soft_prompt.to(device=device, dtype=dtype), e])
        if r.soft_prompt is not None
        else e
        for r, e in zip(rows, embedded, strict=True)
    ]
    batch, longest = len(rows), max(len(c) for c in contents)
    width = contents[0].shape[-1]
    prefix_width = max(r.prefix_length for r in rows)

    inputs = torch.zeros(batch, longest, width, dtype=dtype, device=device)
    mask = torch.zeros(batch, prefix_width + longest, dtype=torch.long, device=device)
    positions = torch.zeros(batch, longest, dtype=torch.long, device=device)
    for i, (row, content) in enumerate(zip(rows, contents, strict=True)):
        n, p = len(content), row.prefix_length
        inputs[i, longest - n :] = content
        mask[i, prefix_width + longest - n :] = 1
        mask[i, prefix_width - p : prefix_width] = 1
        positions[i, longest - n :] = torch.arange(p, p + n, device=device)

    pairs = []
    if prefix_width:
        template = next(r.prefix for r in rows if r.prefix)
        assert template is not None
        heads, head_dim = template[0][0].shape[0], template[0][0].shape[2]
        for layer in range(num_layers):
            keys = torch.zeros(batch, heads, prefix_width, head_dim, dtype=dtype, device=device)
            values = torch.zeros_like(keys)
            for i, row in enumerate(rows):
                if row.prefix:
                    k, v = row.prefix[layer]
                    keys[i, :, prefix_width - k.shape[1] :] = k
                    values[i, :, prefix_width - v.shape[1] :] = v
            pairs.append((keys, values))
    # Fresh every batch: forward passes grow a cache in place.
    room = reserve + (longest if prefix_width else 0)
    cache = GrowingCache(num_layers, reserve=room, pairs=pairs)
    names = [r.lora or BASE_ADAPTER for r in rows] if any_lora else None
    next_positions = positions[:, -1] + 1
    return Batch(inputs, mask, positions, cache, names, next_positions)


def step_inputs(
    attention_mask: torch.Tensor, next_positions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mask and position ids for one decode step (one new token per row)."""
    import torch

    ones = torch.ones(
        attention_mask.shape[0], 1, dtype=attention_mask.dtype, device=attention_mask.device
    )
    return torch.cat([attention_mask, ones], dim=1), next_positions[:, None]


def select_rows(cache: Any, keep: torch.Tensor) -> None:
    """Drop finished rows from a ``DynamicCache`` in place (``keep``: row indices to keep)."""
    for layer in cache.layers:
        layer.batch_select_indices(keep)
