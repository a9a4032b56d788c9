"""The grounding adapter: a LoRA adapter that teaches the base model to answer from numbered
passages in a few words with the passage's marker, and to say the abstention sentence when the
passages do not hold the answer. It is merged into the base weights once, at load.

ragtune ships one for its embedded model (``shipped/<model>/``, trained on squad-dev; see the
card there and ``scripts/train_grounding.py``); ``generator.grounding: none`` turns it off, and a
folder with a LoRA adapter of your own (made for the same base model) replaces it.

**How tenant adapters relate to it.** The merged weights are the base every adapter trains and
serves on: a tenant's prompt, prefix or LoRA adapter is trained on the grounded base (``ragtune
train`` loads it the same way) and applied on top of it per request, so mixed-adapter batches
work as before and every tenant keeps the grounding behaviour. The grounded base has its own
weights hash (the bare base's and the grounding adapter's, hashed together); an adapter's card
records the hash it was trained on, so an adapter trained on the bare base (or under another
grounding adapter) is refused with a message that says which, rather than silently misapplied.
Merging costs nothing per token: decoding reads the same weights as before.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.errors import AdapterError, ModelError

if TYPE_CHECKING:
    from ragtune.generate.models import LoadedModel

__all__ = [
    "SHIPPED",
    "grounded_sha256",
    "grounding_folder",
    "merge_grounding",
    "shipped_grounding",
]

SHIPPED = Path(__file__).parent / "shipped"
"""Where the shipped grounding adapters live: one folder per embedded model name."""


def shipped_grounding(model_name: str) -> Path:
    """The shipped grounding adapter for the embedded model ``model_name``.

    Raises :class:`~ragtune.errors.ModelError` naming the fix when ragtune ships none for it.
    """
    folder = SHIPPED / model_name
    if not (folder / "adapter.json").is_file():
        shipped = (
            sorted(p.name for p in SHIPPED.iterdir() if p.is_dir()) if SHIPPED.is_dir() else []
        )
        raise ModelError(
            f"generator.grounding is 'shipped', but ragtune ships a grounding adapter only for "
            f"{', '.join(shipped) or 'no model'} (not {model_name!r}): set generator.grounding: "
            "none, or give the folder of a grounding LoRA adapter made for this model"
        )
    return folder


def grounding_folder(grounding: str, model_name: str) -> Path | None:
    """The folder ``generator.grounding`` names for ``model_name``: the shipped adapter, a
    folder, or None for ``none``."""
    if grounding == "none":
        return None
    if grounding == "shipped":
        return shipped_grounding(model_name)
    folder = Path(grounding)
    if not folder.is_dir():
        raise ModelError(f"generator.grounding {grounding!r} is neither shipped, none nor a folder")
    return folder


def grounded_sha256(bare_sha256: str, grounding_sha256: str) -> str:
    """The weights hash of a base model with a grounding adapter merged in."""
    return hashlib.sha256(f"{bare_sha256}+grounding:{grounding_sha256}".encode()).hexdigest()


def merge_grounding(base: LoadedModel, folder: Path) -> LoadedModel:
    """``base`` with the LoRA adapter in ``folder`` merged into its weights (in place).

    The adapter must be a LoRA adapter made for ``base`` (its card's weights hash); anything
    else raises :class:`~ragtune.errors.ModelError` before the weights change.
    """
    import torch

    from ragtune.generate.adapters import check_compatible, read_adapter
    from ragtune.generate.lora import lora_updates
    from ragtune.generate.models import weights_sha256

    try:
        stored = read_adapter(folder)
    except AdapterError as exc:
        raise ModelError(f"the grounding adapter in {folder} cannot be read: {exc}") from exc
    card = stored.card
    if card.kind != "lora":
        raise ModelError(
            f"the grounding adapter in {folder} is a {card.kind} adapter; only LoRA merges into "
            "the base weights: train it with train.adapter.type: lora"
        )
    if card.base_weights_sha256 != base.weights_sha256:
        raise ModelError(
            f"the grounding adapter in {folder} was made for another base model (weights "
            f"{card.base_weights_sha256[:12]}, this one {base.weights_sha256[:12]}): set "
            "generator.grounding: none, or train one for this model"
        )
    try:
        check_compatible(stored, base)  # every tensor fits a linear layer of this model
        updates = lora_updates(stored)
    except AdapterError as exc:
        raise ModelError(f"the grounding adapter in {folder} does not fit: {exc}") from exc
    # W += scale * B @ A on each adapted layer, in the weights' own dtype.
    with torch.no_grad():
        for update in updates:
            weight: Any = base.model.get_submodule(update.module).weight
            delta = update.scale * (update.b.float() @ update.a.float())
            weight.add_(delta.to(device=weight.device, dtype=weight.dtype))
    identity = grounded_sha256(base.weights_sha256, weights_sha256(folder))
    return replace(
        base,
        weights_sha256=identity,
        bare_weights_sha256=base.weights_sha256,
        grounding=card.ref,
    )
