"""Shared set-up for the generator figures: the embedded model, adapters of each kind, prompts.

The adapters are made here, untrained (prefix and soft prompt from the instruction text, LoRA
with a random B so it is not a no-op): speed and memory do not depend on what was learned.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from ragtune.generate import (
        AdapterPool,
        AdapterRegistry,
        GeneratorSettings,
        HFGenerator,
        LoadedModel,
    )
    from ragtune.generate.adapters import AdapterSpec
    from ragtune.types import AdapterRef, Passage

T = TypeVar("T")

PASSAGES = [
    (
        "Returns policy",
        "Unused items can be returned within 30 days of delivery for a full refund. "
        "Opened small appliances can be returned within 14 days if they are undamaged and complete, "
        "with the original packaging; a restocking fee of 10 percent applies to opened items.",
    ),
    (
        "Shipping",
        "Standard shipping takes three to five business days and is free on orders over "
        "50 pounds. Express shipping takes one business day and costs 6.95 pounds. Orders placed "
        "before 2 pm on a weekday leave the warehouse the same day.",
    ),
    (
        "Warranty",
        "The Cascade blender motor is covered for five years and the jar for two years. "
        "The warranty covers manufacturing defects, not wear from normal use or damage from "
        "dropping the jar. Keep the receipt: it is the proof of purchase.",
    ),
    (
        "Kettle K5",
        "The K5 kettle has five temperature settings: 70, 80, 85, 90 and 100 degrees. "
        "Use 80 degrees for green tea and 100 degrees for black tea. The keep-warm function holds "
        "the temperature for 30 minutes.",
    ),
    (
        "FAQ",
        "The Leeds store is open Monday to Saturday from 9 am to 6 pm and on Sunday from 10 "
        "am to 4 pm. Customer service answers the phone on weekdays from 8 am to 8 pm.",
    ),
]
QUESTION = "How many days do I have to return an opened kettle, and is there a fee?"


def passages() -> list[Passage]:
    from ragtune.types import Passage

    return [
        Passage(f"c{i}", f"d{i}", text, 1.0, i + 1, f"doc{i}.md", 0, len(text), title=title)
        for i, (title, text) in enumerate(PASSAGES)
    ]


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def make_adapters(
    root: Path, kinds: Sequence[tuple[str, str]], *, virtual_tokens: int = 20, lora_r: int = 8
) -> AdapterRegistry:
    """Make, save and register adapters ``(name, kind)`` for tenant ``bench``; the registry."""
    import torch

    from ragtune.generate import (
        AdapterCard,
        AdapterRegistry,
        LoraSpec,
        PrefixSpec,
        PromptSpec,
        load_base_model,
        new_adapter,
        save_adapter,
    )
    from ragtune.generate.adapters import trainable_parameters

    registry = AdapterRegistry(root / "adapters")
    for seed, (name, kind) in enumerate(kinds):
        base = load_base_model(device="cpu", quantize="none")  # adapters train on full weights
        specs: dict[str, AdapterSpec] = {
            "prompt": PromptSpec(num_virtual_tokens=virtual_tokens),
            "prefix": PrefixSpec(num_virtual_tokens=virtual_tokens),
            "lora": LoraSpec(
                r=lora_r,
                dropout=0.0,
                target_modules=(
                    "q_proj",
                    "k_proj",
                    "v_proj",
                    "o_proj",
                    "gate_proj",
                    "up_proj",
                    "down_proj",
                ),
            ),
        }
        model = new_adapter(base, specs[kind])
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if p.requires_grad and "lora_B" in pname:
                    p.copy_(torch.randn(p.shape, generator=generator) * 0.01)
        card = AdapterCard(
            name=name,
            tenant="bench",
            kind=kind,  # type: ignore[arg-type]
            base_model=base.name,
            base_weights_sha256=base.weights_sha256,
            trainable_parameters=trainable_parameters(model),
        )
        registry.register(save_adapter(model, root / "made" / name, card))
        del model, base
    return registry


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def make_generator(
    registry: AdapterRegistry,
    *,
    base: LoadedModel | None = None,
    max_loaded: int = 32,
    settings: GeneratorSettings | None = None,
) -> tuple[HFGenerator, AdapterPool]:
    """An ``HFGenerator`` on the embedded model in its default quantization (or ``base``) with
    its pool over ``registry``, under ``settings`` (default: ``GeneratorSettings()``)."""
    from ragtune.generate import (
        AdapterPool,
        GeneratorSettings,
        HFGenerator,
        PoolSettings,
        load_base_model,
    )

    base = base if base is not None else load_base_model(device="cpu")
    pool = AdapterPool(base, registry, PoolSettings(str(registry.root), max_loaded=max_loaded))
    return HFGenerator(base, pool, settings or GeneratorSettings()), pool


def bench(name: str) -> AdapterRef:
    """The registered benchmark adapter ``bench/NAME``."""
    from ragtune.types import AdapterRef

    return AdapterRef("bench", name)
