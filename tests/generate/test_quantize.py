"""Weight-only quantization: the layers, the agreement with float32, the setting's choices.

Tolerance stated here (tiny Llama, greedy): teacher-forced along float32's own greedy answers,
the quantized model picks float32's token at >= 90% of positions, and the mean KL divergence of
its next-token distribution from float32's is below 1e-3 nats (int8) / 0.05 nats (int4).
Measured when written: 95/96 and 7e-5 (int8), 96/96 and 8e-3 (int4).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.errors import ModelError
from ragtune.generate import DecodeSettings, GenerationRequest, load_base_model
from ragtune.generate.models import _resolve_quantization
from ragtune.types import NO_ADAPTER
from tests.generate.conftest import MakeAdapter, make_generator
from tests.generate.test_generator import PASSAGES, QUESTIONS

torch = pytest.importorskip("torch")

from ragtune.generate.quantize import (  # noqa: E402  (after the torch skip)
    INT4_GROUP,
    QuantizedLinear,
    dequantize,
    quantize_linears,
)

MAX_KL = {"int8": 1e-3, "int4": 0.05}


@pytest.mark.parametrize("scheme", ["int8", "int4"])
def test_a_quantized_layer_multiplies_by_its_quantized_weight(scheme: str) -> None:
    """The kernel computes x W_q^T for the W_q the codes stand for, and W_q is close to W."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(128, 48, bias=True)
    layer = QuantizedLinear(linear, scheme)  # type: ignore[arg-type]
    weight = linear.weight.detach()
    quantized = dequantize(layer)
    assert quantized.shape == weight.shape
    if scheme == "int8":  # half a step, plus half a bfloat16 ulp of the kernel's output
        step = weight.abs().amax(dim=1, keepdim=True) / 127
        assert bool(((quantized - weight).abs() <= step).all())
    else:  # asymmetric per group of 32: half a step, plus bfloat16 rounding of scale and offset
        groups = weight.reshape(48, -1, INT4_GROUP)
        step = (groups.amax(-1) - groups.amin(-1)) / 15
        error = (quantized - weight).reshape(48, -1, INT4_GROUP).abs().amax(-1)
        assert bool((error <= 0.5 * step + 0.01 * groups.abs().amax(-1)).all())
    x = torch.randn(3, 5, 128)
    expected = x.to(torch.bfloat16).float() @ quantized.t() + linear.bias.detach()
    assert torch.allclose(layer(x), expected, atol=0.05, rtol=0.02)
    assert layer(x).shape == (3, 5, 48) and layer(x).dtype == torch.float32


@pytest.mark.parametrize("scheme", ["int8", "int4"])
def test_quantized_decode_agrees_with_float32(
    tiny_llama_dir: Path, tmp_path: Path, scheme: str
) -> None:
    full, _pool = make_generator(tiny_llama_dir, tmp_path / "a", quantize="none")
    settings = DecodeSettings(max_new_tokens=16, min_new_tokens=16)
    requests = [
        GenerationRequest(q, PASSAGES[: 1 + i % 2], NO_ADAPTER, settings)
        for i, q in enumerate(QUESTIONS)
    ]
    answers = full.generate_many(requests)
    reference = load_base_model(tiny_llama_dir, device="cpu", grounding="none", quantize="none")
    quantized = load_base_model(tiny_llama_dir, device="cpu", grounding="none", quantize=scheme)
    assert quantized.quantize == scheme
    agree = total = 0
    divergences = []
    for request, answer in zip(requests, answers, strict=True):
        prompt = list(full.prompt(request.question, request.passages, reserve=16).token_ids)
        ids = torch.tensor([prompt + list(answer.token_ids)])
        with torch.no_grad():
            want = torch.log_softmax(
                reference.model(input_ids=ids).logits[0, len(prompt) - 1 :], -1
            )
            got = torch.log_softmax(quantized.model(input_ids=ids).logits[0, len(prompt) - 1 :], -1)
        agree += int((want.argmax(-1) == got.argmax(-1)).sum())
        total += want.shape[0]
        divergences.append(float((want.exp() * (want - got)).sum(-1).mean()))
    assert agree >= 0.9 * total, (agree, total)
    assert max(divergences) < MAX_KL[scheme], divergences
    # And end to end, the quantized generator decodes through the same code path.
    fast, _ = make_generator(tiny_llama_dir, tmp_path / "b", quantize=scheme)
    assert all(g.output_tokens == 16 for g in fast.generate_many(requests))


def test_auto_is_int8_on_the_cpu_with_a_grounding_adapter_merged(
    tiny_llama_dir: Path, make_adapter: MakeAdapter
) -> None:
    grounding = make_adapter("lora", seed=3)
    auto = load_base_model(tiny_llama_dir, device="cpu", grounding=str(grounding))
    assert auto.grounded and auto.quantize == "int8"
    layers = [m for m in auto.model.modules() if isinstance(m, QuantizedLinear)]
    assert len(layers) == 2 * 7 + 1 and {m.scheme for m in layers} == {"int8"}


def test_auto_is_int4_on_the_cpu_and_none_keeps_float_layers(tiny_llama_dir: Path) -> None:
    auto = load_base_model(tiny_llama_dir, device="cpu", grounding="none")
    assert auto.quantize == "int4"
    layers = [m for m in auto.model.modules() if isinstance(m, QuantizedLinear)]
    assert len(layers) == 2 * 7 + 1  # every projection of both layers, and the output layer
    assert {m.scheme for m in layers} == {"int4", "int8"}
    assert auto.model.get_output_embeddings().scheme == "int8"  # it decides near ties
    assert isinstance(auto.model.get_input_embeddings(), torch.nn.Embedding)  # lookups stay float
    plain = load_base_model(tiny_llama_dir, device="cpu", grounding="none", quantize="none")
    assert plain.quantize == "none"
    assert not any(isinstance(m, QuantizedLinear) for m in plain.model.modules())
    assert auto.weights_sha256 == plain.weights_sha256  # adapters of the base serve on either


def test_bad_quantize_choices_name_the_fix(tiny_llama_dir: Path) -> None:
    with pytest.raises(ModelError, match="choose one of auto, none, int8, int4"):
        load_base_model(tiny_llama_dir, device="cpu", grounding="none", quantize="int3")
    with pytest.raises(ModelError, match="CPU only"):
        _resolve_quantization("int8", "cuda:0", grounded=False)
    assert _resolve_quantization("auto", "cuda:0", grounded=True) == "none"


def test_layers_the_kernel_cannot_take_stay_in_full_precision() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(64, 40), torch.nn.Linear(40, 32))
    assert quantize_linears(model, "int4") == 0  # 40 outputs: not a multiple of 16; 40 inputs
    assert quantize_linears(model, "int8") == 2
    assert all(isinstance(m, QuantizedLinear) for m in model)
