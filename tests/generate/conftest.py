"""Fixtures for the generator tests: the tiny Llama on disk and adapters of every kind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ragtune.generate import (
    AdapterPool,
    AdapterRegistry,
    GeneratorSettings,
    HFGenerator,
    PoolSettings,
)
from ragtune.generate.adapters import (
    AdapterCard,
    LoraSpec,
    PrefixSpec,
    PromptSpec,
    new_adapter,
    save_adapter,
    trainable_parameters,
)
from ragtune.generate.models import LoadedModel, load_base_model
from tests.generate.tiny import save_tiny

KINDS = ("prompt", "prefix", "lora")


def make_generator(
    base_dir: Path | str | None,
    root: Path,
    *,
    context_window: int = 512,
    max_loaded: int = 32,
    quantize: str = "none",
    prompt_cache: bool = True,
    grounding: str = "none",
) -> tuple[HFGenerator, AdapterPool]:
    """A generator on a fresh load of the model in ``base_dir`` (None: the embedded default)
    with ``grounding`` merged, and its adapter pool over the registry at ``root``. Full
    precision unless ``quantize`` says otherwise, so that outputs can be compared with PEFT's."""
    base = (
        load_base_model(base_dir, device="cpu", grounding=grounding, quantize=quantize)
        if base_dir is not None
        else load_base_model(device="cpu", grounding=grounding, quantize=quantize)
    )
    pool = AdapterPool(base, AdapterRegistry(root), PoolSettings(root, max_loaded=max_loaded))
    settings = GeneratorSettings(context_window=context_window, prompt_cache=prompt_cache)
    return HFGenerator(base, pool, settings), pool


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny-llama-gen"))


@pytest.fixture
def tiny_base(tiny_llama_dir: Path) -> LoadedModel:
    """A fresh copy in memory for every test (LoRA changes the model it is put on)."""
    return load_base_model(tiny_llama_dir, device="cpu", grounding="none", quantize="none")


def spec_for(kind: str, **overrides: Any) -> Any:
    if kind == "prompt":
        return PromptSpec(
            num_virtual_tokens=overrides.get("tokens", 6), init_text=overrides.get("text")
        )
    if kind == "prefix":
        return PrefixSpec(
            num_virtual_tokens=overrides.get("tokens", 5), init_text=overrides.get("text")
        )
    return LoraSpec(
        r=overrides.get("r", 4),
        alpha=8,
        dropout=0.0,
        target_modules=("q_proj", "v_proj", "down_proj"),
    )


def perturb(peft_model: Any, seed: int, scale: float = 0.5) -> None:
    """Move an adapter away from its initialisation so it changes the output (stands in for training)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if p.requires_grad:
                noise = (
                    torch.randn(p.shape, generator=generator)
                    * scale
                    * (p.std() if p.numel() > 1 and float(p.std()) > 0 else 1.0)
                )
                p.add_(
                    noise
                    if "lora_B" not in name
                    else torch.randn(p.shape, generator=generator) * scale
                )


MakeAdapter = Callable[..., Path]


def build_adapter(
    base_dir: Path,
    folder: Path,
    kind: str,
    *,
    seed: int = 1,
    tenant: str = "acme",
    name: str = "support",
    **spec: Any,
) -> Path:
    """Build, perturb and save an adapter of a kind on a fresh copy of the base in ``base_dir``."""
    base = load_base_model(base_dir, device="cpu", grounding="none", quantize="none")
    peft_model = new_adapter(base, spec_for(kind, **spec))
    perturb(peft_model, seed)
    card = AdapterCard(
        name=name,
        tenant=tenant,
        kind=kind,  # type: ignore[arg-type]
        base_model=base.name,
        base_weights_sha256=base.weights_sha256,
        trainable_parameters=trainable_parameters(peft_model),
        settings={"seed": seed},
    )
    return save_adapter(peft_model, folder, card)


@pytest.fixture
def make_adapter(tiny_llama_dir: Path, tmp_path: Path) -> MakeAdapter:
    """:func:`build_adapter` on the tiny base, each into its own folder under ``tmp_path``."""
    counter = iter(range(10_000))

    def make(kind: str, *, base_dir: Path | None = None, **options: Any) -> Path:
        folder = tmp_path / f"made-{kind}-{next(counter)}"
        return build_adapter(base_dir or tiny_llama_dir, folder, kind, **options)

    return make
