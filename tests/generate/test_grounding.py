"""The grounding adapter merged into the base: same outputs as the adapter unmerged, its own
weights hash, adapters of the bare base refused with the reason, bad grounding folders refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.errors import AdapterMismatchError, ModelError
from ragtune.generate import load_base_model
from ragtune.generate.grounding import grounding_folder, shipped_grounding
from ragtune.types import NO_ADAPTER, AdapterFolder
from tests.generate.conftest import MakeAdapter, make_generator

torch = pytest.importorskip("torch")


def test_merged_grounding_answers_as_the_unmerged_adapter(
    tiny_llama_dir: Path, tmp_path: Path, make_adapter: MakeAdapter
) -> None:
    lora = make_adapter("lora", seed=3, tenant="ragtune", name="grounding")
    plain, _pool = make_generator(tiny_llama_dir, tmp_path / "a")
    grounded_base = load_base_model(
        tiny_llama_dir, device="cpu", grounding=str(lora), quantize="none"
    )
    bare = load_base_model(tiny_llama_dir, device="cpu", grounding="none")
    assert grounded_base.grounded and grounded_base.grounding == "ragtune/grounding"
    assert grounded_base.bare_weights_sha256 == bare.weights_sha256
    assert grounded_base.weights_sha256 != bare.weights_sha256
    prompt, answer = plain.tokenize("Question: how long?"), plain.tokenize(" Two years. [1]")
    [unmerged] = plain.log_likelihoods([(prompt, answer)], adapter=AdapterFolder(lora))
    ids = torch.tensor([prompt + answer])
    with torch.no_grad():
        logits = grounded_base.model(input_ids=ids).logits[0]
    logp = torch.log_softmax(logits[len(prompt) - 1 : -1].float(), -1)
    merged = float(logp.gather(1, torch.tensor(answer)[:, None]).sum())
    assert merged == pytest.approx(unmerged, abs=1e-3)


def test_adapters_of_the_bare_base_are_refused_on_the_grounded_one(
    tiny_llama_dir: Path, tmp_path: Path, make_adapter: MakeAdapter
) -> None:
    from ragtune.generate import (
        AdapterPool,
        AdapterRegistry,
        GeneratorSettings,
        HFGenerator,
        PoolSettings,
    )

    grounding = make_adapter("lora", seed=3, tenant="ragtune", name="grounding")
    tenant_adapter = make_adapter("prompt", seed=4)  # made on the bare base
    base = load_base_model(tiny_llama_dir, device="cpu", grounding=str(grounding))
    pool = AdapterPool(base, AdapterRegistry(tmp_path / "r"), PoolSettings(tmp_path / "r"))
    generator = HFGenerator(base, pool, GeneratorSettings(context_window=512))
    with pytest.raises(AdapterMismatchError, match="trained on the bare base model"):
        generator.load_adapter(AdapterFolder(tenant_adapter))
    assert generator.load_adapter(NO_ADAPTER) is None


def test_bad_grounding_settings_name_the_fix(
    tiny_llama_dir: Path, tmp_path: Path, make_adapter: MakeAdapter
) -> None:
    with pytest.raises(ModelError, match="set generator.grounding: none"):
        load_base_model(tiny_llama_dir, device="cpu", grounding="shipped")
    with pytest.raises(ModelError, match="neither shipped, none nor a folder"):
        grounding_folder(str(tmp_path / "missing"), "x")
    prompt = make_adapter("prompt", seed=1)
    with pytest.raises(ModelError, match="only LoRA merges"):
        load_base_model(tiny_llama_dir, device="cpu", grounding=str(prompt))
    from tests.generate.tiny import save_tiny

    other = make_adapter("lora", seed=2, base_dir=save_tiny(tmp_path / "other", seed=9))
    with pytest.raises(ModelError, match="made for another base model"):
        load_base_model(tiny_llama_dir, device="cpu", grounding=str(other))
    with pytest.raises(ModelError, match="ships a grounding adapter only for"):
        shipped_grounding("my-llama")
