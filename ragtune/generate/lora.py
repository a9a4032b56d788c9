"""LoRA adapters on the serving model through PEFT: loading, unloading, and routing each forward
pass the cheapest way the batch allows.

Prefixes and soft prompts are injected per row by :mod:`ragtune.generate.batching`; LoRA
changes the model's linear layers, so all LoRA adapters live in one shared ``PeftModel`` around
the base model, each under its own name, and a forward pass says which row uses which.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ragtune.errors import AdapterError
from ragtune.generate.batching import BASE_ADAPTER

__all__ = ["LoraRouter"]


class LoraRouter:
    """The LoRA adapters loaded into one base model, and the forward pass that routes them."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self._peft: Any = None
        self._count = 0
        self._state = ""  # which routing the model is set for (see _route)

    @property
    def active(self) -> bool:
        """Whether any LoRA adapter was ever loaded (rows then name their adapter)."""
        return self._peft is not None

    def load(self, folder: Path, label: str) -> str:
        """Load the PEFT LoRA files in ``folder``; returns the adapter's name inside PEFT."""
        from peft import PeftModel

        from ragtune.generate.adapters import peft_quietly

        self._count += 1
        name = f"lora{self._count}"
        try:
            with peft_quietly():
                if self._peft is None:
                    self._peft = PeftModel.from_pretrained(
                        self._model, str(folder), adapter_name=name, is_trainable=False
                    )
                    self._peft.eval()
                else:
                    self._peft.load_adapter(str(folder), adapter_name=name, is_trainable=False)
        except Exception as exc:  # shapes were checked; anything left is a damaged file
            if self._peft is not None and name in getattr(self._peft, "peft_config", {}):
                with peft_quietly():
                    self._peft.delete_adapter(name)
            raise AdapterError(f"adapter {label}: PEFT could not load it ({exc})") from exc
        finally:
            self._state = ""
        return name

    def unload(self, name: str) -> None:
        from ragtune.generate.adapters import peft_quietly

        if self._peft is not None:
            with peft_quietly():  # PEFT's notice that the evicted adapter was the active one
                self._peft.delete_adapter(name)
            self._state = ""

    def forward(self, names: list[str] | None, *, logits_to_keep: int, **inputs: Any) -> Any:
        """One forward pass of the model; ``names`` gives each row's LoRA (or ``__base__``).

        PEFT's per-row ``adapter_names`` path registers hooks on every LoRA layer and splits
        each layer's input by adapter on every call, which costs about a third of a decode step
        at this size even for rows without LoRA. So a batch whose rows all use the same LoRA
        (or none) runs with that adapter set active (or LoRA layers disabled) through the plain
        model; only a batch that really mixes LoRA adapters takes PEFT's per-row path.
        """
        if self._peft is not None and names:
            distinct = set(names)
            if len(distinct) > 1:
                self._route("mixed")
                return self._peft(
                    **inputs, adapter_names=names, use_cache=True, logits_to_keep=logits_to_keep
                )
            self._route(next(iter(distinct)))
        return self._model(**inputs, use_cache=True, logits_to_keep=logits_to_keep)

    def _route(self, mode: str) -> None:
        """Disable LoRA layers (``__base__``), activate one adapter, or enable all for mixing."""
        if mode == self._state:
            return
        lora_model = self._peft.base_model
        if mode == BASE_ADAPTER:
            lora_model.disable_adapter_layers()
        else:
            lora_model.enable_adapter_layers()
            if mode != "mixed":
                lora_model.set_adapter(mode, inference_mode=True)
        self._state = mode
