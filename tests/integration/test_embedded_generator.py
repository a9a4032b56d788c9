"""The real embedded SmolLM2 with an adapter of every kind: train a step, save, serve mixed."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.generate import (
    AdapterCard,
    AdapterRegistry,
    DecodeSettings,
    GenerationRequest,
    LoraSpec,
    PrefixSpec,
    PromptSpec,
    load_base_model,
    new_adapter,
    save_adapter,
)
from ragtune.types import NO_ADAPTER, AdapterRef, Passage
from tests.generate.conftest import make_generator

pytestmark = pytest.mark.integration

PASSAGE = Passage(
    "c1",
    "d1",
    "Unused items can be returned within 30 days of delivery for a full refund.",
    1.0,
    1,
    "returns-policy.md",
    0,
    76,
    title="Returns policy",
)
EXAMPLE = (
    "How many days do I have to return an item?",
    "You can return an unused item within 30 days of delivery. [1]",
)


def _train_one_step(peft_model, tokenizer) -> None:  # type: ignore[no-untyped-def]
    import torch

    from ragtune.generate.prompts import build_prompt

    prompt = build_prompt(tokenizer, EXAMPLE[0], [PASSAGE], context_window=1024, reserve=64)
    answer = tokenizer(EXAMPLE[1], add_special_tokens=False)["input_ids"]
    ids = torch.tensor([list(prompt.token_ids) + answer])
    labels = torch.tensor([[-100] * len(prompt.token_ids) + answer])
    optimiser = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-3)
    peft_model.train()
    before = peft_model(input_ids=ids, labels=labels).loss.detach().item()
    for _ in range(2):
        loss = peft_model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    peft_model.eval()
    with torch.no_grad():
        after = float(peft_model(input_ids=ids, labels=labels).loss)
    assert after < before


def test_every_adapter_kind_trains_and_generates_on_the_embedded_model(tmp_path: Path) -> None:
    registry = AdapterRegistry(tmp_path / "adapters")
    specs = {
        "prompt": PromptSpec(),
        "prefix": PrefixSpec(),
        "lora": LoraSpec(r=4, target_modules=("q_proj", "v_proj")),
    }
    # Tenant adapters train and serve on the grounded base (the shipped default).
    for kind, spec in specs.items():
        # LoRA changes the model it is put on; adapters train on the grounded full weights
        trainer = load_base_model(device="cpu", quantize="none")
        assert trainer.grounded
        peft_model = new_adapter(trainer, spec)
        _train_one_step(peft_model, trainer.tokenizer)
        card = AdapterCard(
            name=kind,
            tenant="acme",
            kind=kind,  # type: ignore[arg-type]
            base_model=trainer.name,
            base_weights_sha256=trainer.weights_sha256,
        )
        registry.register(save_adapter(peft_model, tmp_path / "out" / kind, card))

    # Served on the grounded base on int4 weights (the bare base's automatic choice; the
    # grounded base's is int8): every kind works on the quantized kernels.
    generator, _pool = make_generator(
        None, tmp_path / "adapters", context_window=2048, grounding="shipped", quantize="int4"
    )
    ten = DecodeSettings(max_new_tokens=10)
    requests = [
        GenerationRequest(EXAMPLE[0], [PASSAGE], a, ten)
        for a in (
            AdapterRef("acme", "prompt"),
            AdapterRef("acme", "prefix"),
            AdapterRef("acme", "lora"),
            NO_ADAPTER,
        )
    ]
    alone = [generator.generate_many([r])[0] for r in requests]
    mixed = generator.generate_many(requests)
    for one, many in zip(alone, mixed, strict=True):
        assert one.text and one.output_tokens > 0
        assert many.token_ids == one.token_ids
    assert [g.adapter for g in mixed] == ["acme/prompt", "acme/prefix", "acme/lora", None]
    assert all(g.adapter_version == 1 for g in mixed[:3])


@pytest.mark.parametrize(
    ("scheme", "grounding"), [("int8", "none"), ("int4", "none"), ("int8", "shipped")]
)
def test_quantized_weights_agree_with_float32_on_the_embedded_model(
    tmp_path: Path, scheme: str, grounding: str
) -> None:
    """Teacher-forced along float32's greedy answer, the quantized model picks the same token at
    >= 90% of positions: the bare base on either scheme, the grounded one (the default) on int8,
    its automatic choice."""
    import torch

    full, _pool = make_generator(
        None, tmp_path / "a", context_window=2048, quantize="none", grounding=grounding
    )
    answer = full.generate(
        EXAMPLE[0], [PASSAGE], adapter=NO_ADAPTER, settings=DecodeSettings(max_new_tokens=16)
    )
    prompt = list(full.prompt(EXAMPLE[0], [PASSAGE], reserve=16).token_ids)
    ids = torch.tensor([prompt + list(answer.token_ids)])
    quantized = load_base_model(device="cpu", grounding=grounding, quantize=scheme)
    keep = len(answer.token_ids) + 1
    with torch.inference_mode():
        want = full._model(input_ids=ids, logits_to_keep=keep).logits[0].argmax(-1)
        got = quantized.model(input_ids=ids, logits_to_keep=keep).logits[0].argmax(-1)
    assert int((want == got).sum()) >= 0.9 * keep, (want.tolist(), got.tolist())
