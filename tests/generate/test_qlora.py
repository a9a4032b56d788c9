"""QLoRA-style training on the CPU: LoRA in float32 on an int8 base; int4 refused with the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.errors import ModelError
from ragtune.generate import LoraSpec, load_base_model
from ragtune.generate.adapters import (
    AdapterCard,
    new_adapter,
    read_adapter,
    save_adapter,
    trainable_parameters,
)
from ragtune.generate.lora import RowLora, lora_tensors
from tests.generate.conftest import spec_for
from tests.generate.tiny import train

torch = pytest.importorskip("torch")

from ragtune.generate.qlora import QuantizedLoraLinear  # noqa: E402  (after the torch skip)
from ragtune.generate.quantize import QuantizedLinear, dequantize  # noqa: E402

EXAMPLE = ("Question: how long is the warranty?\nAnswer:", " The motor for two years. [2]")


def test_gradient_through_an_int8_layer_is_that_of_its_quantized_weight() -> None:
    """dx = dy W_q, W_q the weight the codes stand for."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(96, 48)
    layer = QuantizedLinear(linear, "int8")
    x = torch.randn(2, 7, 96, requires_grad=True)
    grad_out = torch.randn(2, 7, 48)
    layer(x).backward(grad_out)
    assert x.grad is not None
    weight = layer.codes.float() * layer.scales.float()[:, None]  # W_q, exactly
    assert torch.allclose(x.grad, grad_out @ weight, atol=1e-5, rtol=1e-5)
    # ... the weight the forward multiplies by (read back through the kernel, in bfloat16)
    assert torch.allclose(weight, dequantize(layer), atol=1e-2, rtol=1e-2)
    assert layer.codes.grad is None and layer.scales.grad is None


def test_int4_layers_and_bases_refuse_training_naming_int8(tiny_llama_dir: Path) -> None:
    layer = QuantizedLinear(torch.nn.Linear(64, 32), "int4")
    x = torch.randn(3, 64, requires_grad=True)
    with pytest.raises(ModelError, match="base_quantize: int8"):
        layer(x)
    with torch.no_grad():
        assert layer(x).shape == (3, 32)  # inference is unaffected
    int4 = load_base_model(tiny_llama_dir, device="cpu", grounding="none", quantize="int4")
    with pytest.raises(ValueError, match="quantize='int8' or 'none'"):
        new_adapter(int4, LoraSpec())


def test_lora_trains_on_an_int8_base_and_serves_as_trained(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    """The loss falls; the saved files are PEFT's usual ones, and the per-row LoRA on an int8
    base gives the logits the training model gives."""
    base = load_base_model(tiny_llama_dir, device="cpu", grounding="none", quantize="int8")
    torch.manual_seed(0)
    peft_model = new_adapter(base, spec_for("lora"))
    wrapped = [m for m in peft_model.modules() if isinstance(m, QuantizedLoraLinear)]
    assert len(wrapped) == 2 * 3  # q, v, down on both layers
    assert all(isinstance(m.get_base_layer(), QuantizedLinear) for m in wrapped)
    assert all(p.dtype == torch.float32 for p in peft_model.parameters() if p.requires_grad)
    losses = train(peft_model, [EXAMPLE], base.tokenizer, steps=12, lr=1e-2)
    assert losses[-1] < losses[0] * 0.9, losses

    card = AdapterCard(
        name="qlora",
        tenant="acme",
        kind="lora",
        base_model=base.name,
        base_weights_sha256=base.weights_sha256,
        trainable_parameters=trainable_parameters(peft_model),
    )
    stored = read_adapter(save_adapter(peft_model, tmp_path / "qlora", card))
    assert stored.tensors and all("lora_" in key for key in stored.tensors)
    ids = torch.tensor([base.tokenizer(EXAMPLE[0] + EXAMPLE[1])["input_ids"]])
    with torch.no_grad():
        trained = peft_model(input_ids=ids).logits

    served = load_base_model(tiny_llama_dir, device="cpu", grounding="none", quantize="int8")
    with torch.no_grad():
        plain = served.model(input_ids=ids).logits
    lora = RowLora(served.model)
    lora.add("qlora", lora_tensors(stored, dtype=torch.float32, device="cpu"))
    with torch.no_grad():
        out = lora.forward(["qlora"], logits_to_keep=0, input_ids=ids).logits
    assert (trained - plain).abs().max() > 1e-2  # the adapter changed something
    assert torch.allclose(out, trained, atol=1e-3, rtol=1e-3)
