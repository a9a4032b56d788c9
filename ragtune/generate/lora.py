"""LoRA for serving, applied per row by ragtune itself: plain A/B tensors, hooks set up once.

PEFT stays for training and for the saved format (``adapter_model.safetensors``); serving does
not go through a ``PeftModel``. Loading PEFT's ``load_adapter`` into a live model walked the
module tree and injected a layer into each of 210 projections (440 ms per load on SmolLM2, and
slower with every adapter held), and its per-row ``adapter_names`` path registered 210 hooks on
every forward pass, so a batch of rows on different adapters cost as much as running them one by
one. Here:

* :func:`lora_updates` reads a stored adapter's layers (A, B and PEFT's scale for each); the
  grounding adapter is merged into the base weights from them
  (:func:`~ragtune.generate.grounding.merge_grounding`), and a served adapter becomes
* :class:`LoraTensors`: for each adapted layer ``A^T`` ``(in, r)`` and ``B^T * scaling``
  ``(r, out)``, made by :func:`lora_tensors` (read + check + copy; the model is not touched);
* :class:`RowLora` puts one forward hook on each linear layer of the model, once, the first time
  a LoRA adapter is added; a hook adds ``(x @ A^T) @ B^T`` to the layer's output for the rows
  whose adapter adapts that layer;
* each forward pass is told which adapter each row uses (``names``, ``__base__`` for none). When
  every row uses the same adapter the update is two plain products over all rows; when rows
  differ, the adapters' A and B are stacked once per batch, one ``(in, r_max)`` / ``(r_max, out)``
  pair per row (zeros for rows without LoRA and beyond a smaller rank, which add nothing), and
  each layer does one batched product for all rows: the cost of a layer's update does not grow
  with the number of adapters in the batch.

Outputs equal PEFT's ``base(x) + lora_B(lora_A(x)) * scaling`` within float rounding (tested
against PEFT on the tiny model). Served: LoRA on linear layers with ``lora_alpha``, ``r``,
``use_rslora``, ``rank_pattern`` and ``alpha_pattern``; refused with the reason: DoRA, LoRA
biases, ``modules_to_save``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ragtune.errors import AdapterCorruptError, AdapterMismatchError

if TYPE_CHECKING:
    import torch

    from ragtune.generate.adapters import StoredAdapter

__all__ = ["LoraTensors", "LoraUpdate", "RowLora", "lora_scaling", "lora_tensors", "lora_updates"]

_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<part>[AB])\.weight$")


@dataclass(frozen=True)
class LoraTensors:
    """One LoRA adapter, ready to apply: per adapted layer (its module path in the model),
    ``A^T`` ``(in, r)`` and ``B^T * scaling`` ``(r, out)`` (transposed views of the stored
    layout), in the model's dtype."""

    layers: Mapping[str, tuple[torch.Tensor, torch.Tensor]]
    rank: int
    """The largest rank over the layers."""

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes + b.nbytes for a, b in self.layers.values())


def lora_scaling(config: Mapping[str, Any], module: str) -> tuple[int, float]:
    """The rank and scaling PEFT uses for ``module`` under the saved LoRA ``config``.

    ``rank_pattern`` / ``alpha_pattern`` keys match a module path by its end, as in PEFT
    (``(.*\\.)?key$``); scaling is ``alpha / r``, or ``alpha / sqrt(r)`` with ``use_rslora``.

    >>> lora_scaling({"r": 8, "lora_alpha": 16}, "model.layers.0.self_attn.q_proj")
    (8, 2.0)
    >>> lora_scaling({"r": 8, "lora_alpha": 16, "rank_pattern": {"q_proj": 4}},
    ...              "model.layers.0.self_attn.q_proj")
    (4, 4.0)
    """
    rank = int(_by_pattern(config.get("rank_pattern") or {}, module, config.get("r", 8)))
    alpha = float(
        _by_pattern(config.get("alpha_pattern") or {}, module, config.get("lora_alpha", 8))
    )
    if rank < 1:
        raise AdapterMismatchError(f"LoRA rank {rank} for {module} is not a positive number")
    return rank, alpha / (math.sqrt(rank) if config.get("use_rslora") else rank)


def _by_pattern(patterns: Mapping[str, Any], module: str, default: Any) -> Any:
    for key, value in patterns.items():
        if re.fullmatch(rf"(.*\.)?({key})", module):
            return value
    return default


@dataclass(frozen=True)
class LoraUpdate:
    """One linear layer's low-rank update, as stored: ``W + scale * B @ A``.

    ``a`` is ``(r, in_features)``, ``b`` is ``(out_features, r)``; ``module`` is the layer's
    path in the base model (``model.layers.3.self_attn.q_proj``).
    """

    module: str
    a: torch.Tensor
    b: torch.Tensor
    scale: float


def lora_updates(stored: StoredAdapter) -> list[LoraUpdate]:
    """The per-layer updates of a stored LoRA adapter, from PEFT's files, in module order.

    The scale is PEFT's (:func:`lora_scaling`: ``lora_alpha / r``, ``/ sqrt(r)`` with rsLoRA,
    per-module patterns). What neither the merge nor the per-row LoRA reproduces (DoRA, LoRA
    biases, ``modules_to_save``) raises :class:`~ragtune.errors.AdapterMismatchError`; an A
    without its B (or the other way round), :class:`~ragtune.errors.AdapterCorruptError`.
    """
    config = stored.peft_config
    ref = stored.card.ref
    for flag, what in (("use_dora", "DoRA"), ("lora_bias", "LoRA biases")):
        if config.get(flag):
            raise AdapterMismatchError(
                f"adapter {ref} uses {what}, which ragtune does not serve: retrain it without"
            )
    if config.get("modules_to_save"):
        raise AdapterMismatchError(
            f"adapter {ref} saves whole modules (modules_to_save), which ragtune does not serve: "
            "retrain it with LoRA on the projections only"
        )
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in stored.tensors.items():
        match = _KEY.match(key)
        if match is not None:
            parts.setdefault(match["module"], {})[match["part"]] = tensor
    updates = []
    for module, pair in sorted(parts.items()):
        if set(pair) != {"A", "B"}:
            raise AdapterCorruptError(
                f"adapter {ref}: {module} has lora_{''.join(pair)} without its pair; "
                "re-register the adapter"
            )
        updates.append(LoraUpdate(module, pair["A"], pair["B"], lora_scaling(config, module)[1]))
    if not updates:
        raise AdapterMismatchError(f"adapter {ref} holds no LoRA A/B weights; re-export it")
    return updates


def lora_tensors(stored: StoredAdapter, *, dtype: torch.dtype, device: Any) -> LoraTensors:
    """The serving tensors of a stored LoRA adapter (see :class:`LoraTensors`): read + copy.

    Shapes against the model are checked before, by
    :func:`~ragtune.generate.adapters.check_compatible`; refusals as :func:`lora_updates`.
    """
    layers: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for update in lora_updates(stored):
        # Transposed views, no copy: matrix products read either layout at the same speed.
        a_t = update.a.to(device=device, dtype=dtype).t()
        b_t = (update.b.to(device=device, dtype=dtype) * update.scale).t()
        layers[update.module] = (a_t, b_t)
    return LoraTensors(layers, max(int(a.shape[1]) for a, _b in layers.values()))


@dataclass(frozen=True)
class _Update:
    """What one layer adds in the current forward passes: ``a`` / ``b`` are ``(in, r)`` /
    ``(r, out)`` (every row on one adapter) or ``(rows, in, r)`` / ``(rows, r, out)`` (per row)."""

    a: torch.Tensor
    b: torch.Tensor
    per_row: bool


class RowLora:
    """The LoRA adapters held for one serving model and the forward pass that applies them per
    row (see the module doc). Not thread-safe by itself: the generator serialises calls."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self._adapters: dict[str, LoraTensors] = {}
        self._hooked: frozenset[str] | None = None  # layer paths with a hook, once installed
        self._names: tuple[str, ...] = ()
        self._plan: dict[str, _Update] = {}

    @property
    def active(self) -> bool:
        """Whether a LoRA adapter was ever added (rows then name their adapter)."""
        return self._hooked is not None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._adapters)

    @property
    def hooked_layers(self) -> int:
        """How many layers carry a hook (set up once, whatever the number of adapters)."""
        return len(self._hooked or ())

    def add(self, name: str, tensors: LoraTensors) -> None:
        """Hold ``tensors`` under ``name`` (the first add sets up the hooks). Raises
        :class:`~ragtune.errors.AdapterMismatchError` when it adapts a layer the model lacks."""
        hooked = self._hooked if self._hooked is not None else frozenset(_linear_paths(self._model))
        missing = sorted(set(tensors.layers) - hooked)
        if missing:
            raise AdapterMismatchError(
                f"adapter {name} adapts {missing[0]}, which is not a linear layer of this model"
            )
        if self._hooked is None:
            self._install(hooked)
        self._adapters[name] = tensors
        self._names = ()  # the next forward pass plans again

    def remove(self, name: str) -> None:
        self._adapters.pop(name, None)
        self._names, self._plan = (), {}

    def forward(self, names: Sequence[str] | None, *, logits_to_keep: int, **inputs: Any) -> Any:
        """One forward pass of the model; ``names`` gives each row's adapter (``__base__`` for
        none), or None when no row can have one."""
        self._route(tuple(names) if names else ())
        return self._model(**inputs, use_cache=True, logits_to_keep=logits_to_keep)

    # -- internals -------------------------------------------------------------------------------

    def _install(self, paths: frozenset[str]) -> None:
        modules = dict(self._model.named_modules())
        for path in paths:
            modules[path].register_forward_hook(self._hook(path))
        self._hooked = paths

    def _hook(self, path: str) -> Callable[[Any, tuple[Any, ...], Any], Any]:
        import torch

        def add_update(_module: Any, args: tuple[Any, ...], out: torch.Tensor) -> Any:
            update = self._plan.get(path)
            if update is None:
                return None
            x = args[0]
            if update.per_row:  # x (rows, seq, in), out (rows, seq, out)
                return torch.baddbmm(out, torch.bmm(x, update.a), update.b)
            flat = out.reshape(-1, out.shape[-1])
            low = x.reshape(-1, x.shape[-1]) @ update.a
            return torch.addmm(flat, low, update.b).reshape(out.shape)

        return add_update

    def _route(self, names: tuple[str, ...]) -> None:
        if names == self._names:
            return
        self._names = names
        self._plan = _plan_updates([self._adapters.get(n) for n in names])


def _plan_updates(rows: Sequence[LoraTensors | None]) -> dict[str, _Update]:
    """Per layer path, the update the rows of a batch need (``rows[i]``: row i's adapter or
    None). Empty when no row has LoRA; shared tensors when every row has the same adapter;
    else per-row stacks, zero-padded to the largest rank."""
    import torch

    used = [r for r in rows if r is not None]
    if not used:
        return {}
    if len(used) == len(rows) and all(r is used[0] for r in used):
        return {p: _Update(a, b, per_row=False) for p, (a, b) in used[0].layers.items()}
    rank = max(r.rank for r in used)
    plan: dict[str, _Update] = {}
    for path in sorted({p for r in used for p in r.layers}):
        a0, b0 = next(r.layers[path] for r in used if path in r.layers)
        a = torch.zeros(len(rows), a0.shape[0], rank, dtype=a0.dtype, device=a0.device)
        b = torch.zeros(len(rows), rank, b0.shape[1], dtype=b0.dtype, device=b0.device)
        for i, row in enumerate(rows):
            if row is not None and path in row.layers:
                ra, rb = row.layers[path]
                a[i, :, : ra.shape[1]] = ra
                b[i, : rb.shape[0]] = rb
        plan[path] = _Update(a, b, per_row=True)
    return plan


def _linear_paths(model: Any) -> list[str]:
    """The paths of the model's linear layers a LoRA adapter may adapt: every module with
    ``in_features`` / ``out_features`` and no children (``torch.nn.Linear`` or a quantized one),
    except the output layer."""
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return [
        path
        for path, module in model.named_modules()
        if hasattr(module, "in_features")
        and hasattr(module, "out_features")
        and not any(True for _ in module.children())
        and module is not output
    ]
