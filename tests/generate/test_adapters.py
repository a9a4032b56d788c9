"""Adapters of every kind on the tiny Llama: initialisation, training, save/load, refusals.

This file pins the PEFT + transformers pair: prefix tuning has broken with several cache
changes, so every kind is trained and then generated from here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.errors import AdapterCorruptError, AdapterMismatchError, AdapterNotFoundError
from ragtune.generate.adapters import (
    AdapterCard,
    LoraSpec,
    PrefixSpec,
    PromptSpec,
    check_compatible,
    new_adapter,
    read_adapter,
    save_adapter,
    trainable_parameters,
)
from ragtune.generate.models import LoadedModel, load_base_model
from ragtune.types import NO_ADAPTER, AdapterFolder
from tests.generate.conftest import KINDS, MakeAdapter, make_generator, spec_for
from tests.generate.tiny import save_tiny, train

EXAMPLE = (
    "Question: how long is the warranty?\nAnswer:",
    " The warranty covers the motor for two years. [2]",
)


def _loss(model: object, prompt: str, answer: str, tokenizer: object) -> float:
    import torch

    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    a = tokenizer(answer, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    with torch.no_grad():
        return float(
            model(input_ids=torch.tensor([p + a]), labels=torch.tensor([[-100] * len(p) + a])).loss
        )  # type: ignore[operator]


@pytest.mark.parametrize("kind", ["prompt", "prefix"])
def test_text_initialised_adapter_equals_the_text_in_front(
    tiny_base: LoadedModel, kind: str
) -> None:
    text = "Answer the question using only the numbered passages."
    ids = tiny_base.tokenizer(text, add_special_tokens=False)["input_ids"]
    in_front = _loss(tiny_base.model, text + EXAMPLE[0], EXAMPLE[1], tiny_base.tokenizer)
    peft_model = new_adapter(
        tiny_base, PromptSpec(init_text=text) if kind == "prompt" else PrefixSpec(init_text=text)
    )
    assert peft_model.peft_config["default"].num_virtual_tokens == len(ids)
    with_adapter = _loss(peft_model, EXAMPLE[0], EXAMPLE[1], tiny_base.tokenizer)
    assert with_adapter == pytest.approx(in_front, abs=1e-4)


def test_virtual_token_count_repeats_or_cuts_the_text(tiny_base: LoadedModel) -> None:
    peft_model = new_adapter(tiny_base, PrefixSpec(num_virtual_tokens=40, init_text="short text"))
    assert tuple(peft_model.prompt_encoder["default"].embedding.weight.shape) == (
        40,
        2 * 2 * 2 * 16,
    )


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_trains_and_its_loss_falls(tiny_base: LoadedModel, kind: str) -> None:
    peft_model = new_adapter(tiny_base, spec_for(kind))
    lr = {"prompt": 3e-2, "prefix": 1e-1, "lora": 1e-2}[kind]
    losses = train(peft_model, [EXAMPLE], tiny_base.tokenizer, steps=12, lr=lr)
    assert losses[-1] < losses[0] * 0.9, losses
    assert 0 < trainable_parameters(peft_model) < 20_000


@pytest.mark.parametrize("kind", KINDS)
def test_trained_adapter_saves_loads_and_generates_with_identical_logits(
    tiny_llama_dir: Path, tmp_path: Path, kind: str
) -> None:
    """Train, save in PEFT's format, load into the generator: same log-likelihood as PEFT's own model."""
    import torch

    trainer_base = load_base_model(tiny_llama_dir, device="cpu", grounding="none", quantize="none")
    peft_model = new_adapter(trainer_base, spec_for(kind))
    train(peft_model, [EXAMPLE], trainer_base.tokenizer, steps=6, lr=1e-2)
    card = AdapterCard(
        name="support",
        tenant="acme",
        kind=kind,
        base_model=trainer_base.name,  # type: ignore[arg-type]
        base_weights_sha256=trainer_base.weights_sha256,
    )
    folder = save_adapter(peft_model, tmp_path / kind, card)
    assert {p.name for p in folder.iterdir()} >= {
        "adapter.json",
        "adapter_config.json",
        "adapter_model.safetensors",
    }
    assert (
        json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"]
        == trainer_base.name
    )

    tokenizer = trainer_base.tokenizer
    prompt = tokenizer(EXAMPLE[0], add_special_tokens=False)["input_ids"]
    answer = tokenizer(EXAMPLE[1], add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = peft_model(input_ids=torch.tensor([prompt + answer])).logits[0]
    if kind == "prompt":  # PEFT returns the virtual tokens' logits too
        logits = logits[peft_model.peft_config["default"].num_virtual_tokens :]
    logp = torch.log_softmax(logits[len(prompt) - 1 : -1].float(), -1)
    peft_score = float(logp.gather(1, torch.tensor(answer)[:, None]).sum())

    generator, pool = make_generator(tiny_llama_dir, tmp_path / "registry")
    card = generator.load_adapter(AdapterFolder(folder))
    assert card is not None and card.kind == kind and pool.loaded[0].nbytes > 0
    [ours] = generator.log_likelihoods([(prompt, answer)], adapter=AdapterFolder(folder))
    assert ours == pytest.approx(peft_score, abs=1e-3)
    [base_score] = generator.log_likelihoods([(prompt, answer)], adapter=NO_ADAPTER)
    assert abs(base_score - ours) > 1e-2  # the adapter really changed the model
    generation = generator.generate("How long is the warranty?", [], adapter=AdapterFolder(folder))
    assert generation.output_tokens > 0 and generation.finish_reason in {"eos", "length"}


def test_lora_on_embeddings_is_refused(tiny_base: LoadedModel) -> None:
    with pytest.raises(ValueError, match="embed_tokens is not supported"):
        new_adapter(tiny_base, LoraSpec(target_modules=("q_proj", "embed_tokens")))


# --- refusals ------------------------------------------------------------------------------------


def test_adapter_for_another_base_model_is_refused(
    make_adapter: MakeAdapter, tmp_path: Path, tiny_base: LoadedModel
) -> None:
    other_dir = save_tiny(tmp_path / "other-base", seed=7)
    folder = make_adapter("lora", base_dir=other_dir)
    with pytest.raises(AdapterMismatchError, match="retrain it on this base model"):
        check_compatible(read_adapter(folder), tiny_base)


@pytest.mark.parametrize("kind", ["prompt", "prefix", "lora"])
def test_adapter_with_wrong_shapes_is_refused(
    make_adapter: MakeAdapter, tiny_base: LoadedModel, kind: str
) -> None:
    """Same base hash on the card (as if edited), tensors of another architecture."""
    import torch
    from safetensors.torch import load_file, save_file

    folder = make_adapter(kind)
    weights = folder / "adapter_model.safetensors"
    tensors = {
        k: torch.cat([v, v], dim=-1).contiguous() for k, v in load_file(str(weights)).items()
    }
    save_file(tensors, str(weights))
    with pytest.raises(AdapterMismatchError, match="this base model needs"):
        check_compatible(read_adapter(folder), tiny_base)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_lora_adapter_holding_nan_or_infinity_is_refused_with_the_tensor_named(
    make_adapter: MakeAdapter, tiny_base: LoadedModel, value: float
) -> None:
    from safetensors.torch import load_file, save_file

    folder = make_adapter("lora")
    weights = folder / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    key = sorted(tensors)[-1]
    tensors[key][0, 0] = value
    save_file(tensors, str(weights))
    with pytest.raises(AdapterCorruptError, match=rf"{key} holds NaN or infinity"):
        check_compatible(read_adapter(folder), tiny_base)


@pytest.mark.parametrize(
    ("damage", "error", "message"),
    [
        (lambda f: (f / "adapter.json").unlink(), AdapterCorruptError, "has no adapter.json"),
        (
            lambda f: (f / "adapter.json").write_text("{not json"),
            AdapterCorruptError,
            "not valid JSON",
        ),
        (
            lambda f: (f / "adapter_model.safetensors").write_bytes(b"\x00" * 10),
            AdapterCorruptError,
            "damaged",
        ),
        (lambda f: (f / "adapter_model.safetensors").unlink(), AdapterCorruptError, "is missing"),
        (
            lambda f: (f / "adapter_config.json").write_text('{"peft_type": "IA3"}'),
            AdapterCorruptError,
            "not supported",
        ),
        (
            lambda f: (f / "adapter.json").write_text(
                json.dumps(json.loads((f / "adapter.json").read_text()) | {"kind": "prefix"})
            ),
            AdapterCorruptError,
            "the card says 'prefix'",
        ),
        (
            lambda f: (f / "adapter.json").write_text(
                json.dumps(json.loads((f / "adapter.json").read_text()) | {"tenant": "../etc"})
            ),
            AdapterCorruptError,
            "not a valid name",
        ),
    ],
)
def test_damaged_adapter_is_refused_with_the_problem_named(
    make_adapter: MakeAdapter, damage: object, error: type[Exception], message: str
) -> None:
    folder = make_adapter("lora")
    damage(folder)  # type: ignore[operator]
    with pytest.raises(error, match=message):
        read_adapter(folder)


def test_missing_folder_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(AdapterNotFoundError, match="no adapter folder"):
        read_adapter(tmp_path / "nothing")


def test_card_round_trips_and_rejects_unknown_fields() -> None:
    card = AdapterCard(
        name="support",
        tenant="acme",
        kind="prefix",
        base_model="m",
        base_weights_sha256="ab" * 32,
        version=3,
        metrics={"f1": 0.5},
        settings={"num_virtual_tokens": 20},
    )
    assert AdapterCard.from_json(card.to_json()) == card
    assert card.ref == "acme/support@v3"
    data = json.loads(card.to_json()) | {"colour": "blue"}
    with pytest.raises(AdapterCorruptError, match="unknown colour"):
        AdapterCard.from_json(json.dumps(data))
