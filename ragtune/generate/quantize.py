"""Weight-only quantization of a model's linear layers for decoding on a CPU.

Decoding one token reads every weight once, so on a CPU a decode step costs what its weights
weigh. :func:`quantize_linears` replaces each ``torch.nn.Linear`` of a loaded model (the output
layer included) by a :class:`QuantizedLinear` that keeps the weight in fewer bits and multiplies
with PyTorch's own CPU kernels:

* ``int8``: one int8 per weight and one scale per output row (symmetric), multiplied by
  ``torch._weight_int8pack_mm``;
* ``int4``: two 4-bit codes per byte in groups of 32 along the input, a scale and an offset per
  group (asymmetric), multiplied by ``torch._weight_int4pack_mm_for_cpu``; the output layer
  stays int8 (see :func:`quantize_linears`).

Only the weights are quantized: the activations stay in floating point (both kernels read them in
bfloat16), so each row's output depends on that row alone and a mixed batch decodes what each of
its requests decodes alone. Measured on SmolLM2-135M, one thread (2-core machine shared with a
training run): the 211 projections of a decode step take 38 ms in float32, 19 ms in int8 and
8 ms in int4; a whole step 53 / 34 / 21 ms (tokens/s 19 / 29 / 47). Greedy agreement with
float32, teacher-forced along float32's answers to six grounded questions (24 tokens each):
int8 104 of 105 tokens, int4 105 of 105; with a LoRA merged into the weights first, 107 and 109
of 112. PyTorch's dynamic int8 (``quantize_dynamic``, fbgemm) multiplies faster still (9 ms)
but quantizes activations per tensor: SmolLM2's activation outliers made its first greedy token
wrong, and a row's scale would depend on the other rows of its batch. torchao 0.18's int8
weight-only tensor runs the same kernel as ``int8`` here behind a tensor subclass (45 ms a
step); its int4 CPU layout is gone from that release.

The embedded model is itself a 4-bit GGUF file (Q4_1: groups of 32, a scale and a minimum), so
``int4`` with groups of 32 nearly reproduces the float32 weights it was converted to. A layer the
kernels cannot take (int4: output width not a multiple of 16, input width not a multiple of 32)
stays in full precision.

Quantize after anything that changes the weights (the grounding adapter is merged first by
:func:`~ragtune.generate.models.load_base_model`); adapters are applied on top, per row (see
:mod:`ragtune.generate.lora`).
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from ragtune.errors import ModelError

__all__ = [
    "INT4_GROUP",
    "QuantizedLinear",
    "Scheme",
    "dequantize",
    "quantize_linears",
]

Scheme = Literal["none", "int8", "int4"]
"""A concrete quantization; the setting (``generator.quantize``) adds ``auto``, resolved by
:func:`~ragtune.generate.models.load_base_model`."""
INT4_GROUP = 32
"""Input columns that share one int4 scale and offset (the GGUF Q4_1 block size)."""


class QuantizedLinear(torch.nn.Module):
    """A linear layer ``y = x W^T + b`` with ``W`` held in int8 or int4 (see the module doc).

    ``forward`` takes ``(..., in_features)`` floats and returns ``(..., out_features)`` in the
    input's dtype. The weight is frozen. A gradient flows back to the input through ``int8``
    layers (what QLoRA-style training of an adapter on a quantized base needs; see
    :class:`_Int8Product`); through ``int4`` layers it raises :class:`ModelError`, since
    PyTorch's int4 CPU kernel has no backward and its packed layout depends on the CPU.
    """

    def __init__(self, linear: torch.nn.Linear, scheme: Literal["int8", "int4"]) -> None:
        super().__init__()
        self.in_features = int(linear.in_features)
        self.out_features = int(linear.out_features)
        self.scheme = scheme
        weight = linear.weight.detach().float().contiguous()
        codes, scales = _int8_codes(weight) if scheme == "int8" else _int4_codes(weight)
        self.codes: torch.Tensor
        self.scales: torch.Tensor
        self.register_buffer("codes", codes)
        self.register_buffer("scales", scales)
        bias = linear.bias
        self.bias = None if bias is None else torch.nn.Parameter(bias.detach().clone(), False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        if self.scheme == "int8":
            y = _Int8Product.apply(flat, self.codes, self.scales)
        elif flat.requires_grad and torch.is_grad_enabled():
            raise ModelError(
                "a gradient cannot flow through int4 weights (PyTorch's int4 CPU kernel has no "
                "backward): train the adapter on a base quantized to int8 (train.loop."
                "base_quantize: int8) or in full precision; it then serves on int4 as well"
            )
        else:
            flat = flat.to(torch.bfloat16)
            y = torch._weight_int4pack_mm_for_cpu(flat, self.codes, INT4_GROUP, self.scales)
            y = y.to(x.dtype)
        y = y.reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias

    @property
    def qweight(self) -> torch.Tensor:
        """The weight codes, under the name PEFT reads to put a LoRA layer wrapping this one on
        the same device (:mod:`ragtune.generate.qlora`)."""
        return self.codes

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, {self.scheme}"


class _Int8Product(torch.autograd.Function):
    """``x W_q^T`` for the frozen ``W_q = codes * scales[:, None]``: forward on PyTorch's int8
    kernel (``x`` read in bfloat16), backward ``dx = dy W_q`` on the weight dequantized for the
    moment the product takes (one ``(N, K)`` float tensor per layer at a time). No gradient
    for the codes and scales. ``x`` is ``(M, K)``; the result ``(M, N)`` in ``x``'s dtype."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor) -> Any:
        ctx.save_for_backward(codes, scales)
        return torch._weight_int8pack_mm(x.to(torch.bfloat16), codes, scales).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        codes, scales = ctx.saved_tensors
        weight = codes.to(grad.dtype) * scales.to(grad.dtype)[:, None]
        return grad @ weight, None, None


def _int8_codes(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8: ``W ≈ codes * scales[:, None]``; codes (N, K) int8, scales (N,)
    bfloat16 (the kernel wants the activations' dtype). Codes are rounded against the bfloat16
    scales, so each weight is off by at most half a step."""
    scales = (weight.abs().amax(dim=1) / 127.0).clamp(min=1e-12).to(torch.bfloat16)
    codes = torch.round(weight / scales.float()[:, None]).clamp(-127, 127).to(torch.int8)
    return codes.contiguous(), scales


def _int4_codes(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Asymmetric int4 in groups of :data:`INT4_GROUP` along the input, in the CPU kernel's
    layout: ``W[n, g*32 + j] ≈ (q - 8) * scale[g, n] + zero[g, n]`` with ``q`` in 0..15.

    Returns the packed codes ``(N, K / 2)`` uint8 and ``scales_and_zeros`` ``(K / 32, N, 2)``
    bfloat16. Codes are rounded against the bfloat16 scale and offset the kernel will use.
    """
    n, k = weight.shape
    groups = weight.reshape(n, k // INT4_GROUP, INT4_GROUP)
    low = groups.amin(dim=-1, keepdim=True)
    high = groups.amax(dim=-1, keepdim=True)
    scale = ((high - low) / 15.0).clamp(min=1e-8).to(torch.bfloat16).float()
    zero = (low + 8.0 * scale).to(torch.bfloat16).float()
    codes = torch.round((groups - zero) / scale + 8.0).clamp(0, 15).to(torch.int32).reshape(n, k)
    scales_zeros = torch.cat([scale, zero], dim=-1).transpose(0, 1).contiguous()
    packed = torch._convert_weight_to_int4pack_for_cpu(codes.contiguous(), 1)
    return packed, scales_zeros.to(torch.bfloat16)


def _fits(linear: torch.nn.Linear, scheme: str) -> bool:
    if scheme == "int4":
        return linear.out_features % 16 == 0 and linear.in_features % INT4_GROUP == 0
    return True


def quantize_linears(model: torch.nn.Module, scheme: Scheme) -> int:
    """Replace every ``torch.nn.Linear`` in ``model`` (on the CPU) by a :class:`QuantizedLinear`
    of ``scheme``, in place; returns how many were replaced (0 for ``none``).

    With ``int4`` the output layer (``get_output_embeddings()``, when the model has one) gets
    ``int8``: it scores every token of the vocabulary from the last hidden state, and its
    rounding decides near ties. On SmolLM2, teacher-forced along float32's greedy answers to
    six questions, int4 everywhere picked float32's token at 100 of 105 positions (mean KL
    0.040 nats at worst); with the output layer in int8, at 105 of 105 (0.0025), for 2 ms more
    per decode step. A tied output layer gets its own quantized copy; the input embedding keeps
    its floats (a lookup reads a few rows). Layers the kernel cannot take stay as they are.
    """
    if scheme == "none":
        return 0
    if next(model.parameters()).device.type != "cpu":
        raise ModelError(f"quantize {scheme} runs on the CPU only; load the model on the CPU")
    output = getattr(model, "get_output_embeddings", lambda: None)()
    replaced = 0
    with torch.no_grad():
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if not isinstance(child, torch.nn.Linear):
                    continue
                kind: Scheme = "int8" if child is output else scheme
                if _fits(child, kind):
                    setattr(parent, name, QuantizedLinear(child, kind))  # type: ignore[arg-type]
                    replaced += 1
    return replaced


def dequantize(module: QuantizedLinear) -> torch.Tensor:
    """The float32 weight ``(out_features, in_features)`` a :class:`QuantizedLinear` stands for
    (for tests and checks: the product of an identity matrix with the layer)."""
    eye = torch.eye(int(module.in_features), dtype=torch.float32)
    bias = getattr(module, "bias", None)
    with torch.no_grad():
        out = module(eye)
        if bias is not None:
            out = out - bias
    return out.t().contiguous()
