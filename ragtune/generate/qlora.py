"""QLoRA-style training on the CPU: a LoRA adapter in float32 trained on a base whose linear
layers hold int8 weights (:mod:`ragtune.generate.quantize`), as Dettmers et al. (2023, "QLoRA:
Efficient Finetuning of Quantized LLMs") train on a 4-bit base.

What is supported where:

* **CPU, int8 base** (``train.loop.base_quantize: int8``): the frozen base multiplies with
  PyTorch's int8 kernel and passes the gradient back through the weight dequantized for the
  moment each product takes (``_Int8Product`` in :mod:`~ragtune.generate.quantize`); the
  adapter's A and B train in float32. PEFT's own LoRA layer wraps each quantized projection
  (:class:`QuantizedLoraLinear`, registered through PEFT's custom-module hook), so the saved
  files are PEFT's usual ones and serve on any base quantization. The base takes about a
  quarter of float32's memory; whether it also trains faster depends on the CPU's int8 kernel
  for long sequences, which is not measured yet.
* **CPU, int4 base**: not supported. PyTorch's int4 CPU kernel has no backward, and its packed
  weight layout depends on the CPU's vector width, so ragtune cannot form ``dy W`` without a
  second copy of the weights (as large as the int8 base). Train on int8; the adapter then
  serves on int4.
* **CUDA**: not implemented by ragtune. ragtune's int8/int4 layers are CPU kernels; on a GPU
  the usual QLoRA path is bitsandbytes' 4-bit layers through PEFT (a base loaded with
  ``BitsAndBytesConfig(load_in_4bit=True)``), which ragtune does not wire up: on a GPU, train
  with ``base_quantize: none``.
"""

from __future__ import annotations

from typing import Any

from peft.tuners.lora import Linear as LoraLinear

from ragtune.generate.quantize import QuantizedLinear

__all__ = ["QuantizedLoraLinear", "register_quantized_layers"]


class QuantizedLoraLinear(LoraLinear):
    """PEFT's LoRA layer around a :class:`~ragtune.generate.quantize.QuantizedLinear`:
    ``base(x) + B(A(dropout(x))) * scaling``, with A and B in float32.

    PEFT reads a base layer's width from known layer types only; this tells it the quantized
    layer's. Merging into the base weights is not offered (they are int8 codes).
    """

    def _get_in_out_features(self, module: Any) -> tuple[int, int]:
        return int(module.in_features), int(module.out_features)


def register_quantized_layers(config: Any) -> Any:
    """``config`` (a PEFT ``LoraConfig``) set to wrap quantized layers with
    :class:`QuantizedLoraLinear`; returns it."""
    config._register_custom_module({QuantizedLinear: QuantizedLoraLinear})
    return config
