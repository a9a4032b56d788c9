"""ONNX Runtime backend for sentence-transformers models (fp32 or dynamic int8).

sentence-transformers' own ONNX backend goes through optimum, which requires transformers 4;
ragtune is on transformers 5, so the export is done here with ``torch.onnx.export`` and the
quantisation with ``onnxruntime.quantization.quantize_dynamic``. Inference tokenises with the
model's own tokenizer, runs the transformer in ONNX Runtime and pools and normalises in numpy,
as the sentence-transformers pipeline does.

An export is made once per model into a cache folder and reused.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.errors import EmbedderError

__all__ = ["OnnxEncoder", "export_onnx"]

_FP32 = "model.onnx"
_INT8 = "model_qint8.onnx"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _require_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise EmbedderError(
            "the onnx and onnx-int8 embedder backends need ONNX Runtime: pip install 'ragtune[onnx]'"
        ) from exc
    return onnxruntime


def _transformer_folder(model_dir: Path) -> Path:
    """The Hugging Face model inside a sentence-transformers folder (module 0)."""
    modules = model_dir / "modules.json"
    if modules.is_file():
        for module in json.loads(modules.read_text()):
            if module.get("type", "").endswith("Transformer"):
                return model_dir / module.get("path", "")
    return model_dir


def _pooling(model_dir: Path) -> str:
    for candidate in sorted(model_dir.glob("*Pooling/config.json")):
        config = json.loads(candidate.read_text())
        if config.get("pooling_mode_cls_token"):
            return "cls"
        return "mean"
    return "mean"


def export_onnx(model_dir: Path, out_dir: Path, *, quantised: bool) -> Path:
    """Export a sentence-transformers folder's transformer to ONNX (and int8) under ``out_dir``.

    Writes into a temporary folder and renames it into place, so an interrupted export leaves
    nothing half-written. Returns the path of the requested model file.
    """
    target = out_dir / (_INT8 if quantised else _FP32)
    if target.is_file():
        return target
    ort = _require_onnxruntime()
    import torch
    from transformers import AutoModel, AutoTokenizer

    staging = out_dir.with_name(f"{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        if (out_dir / _FP32).is_file():
            shutil.copy2(out_dir / _FP32, staging / _FP32)
        else:
            hf_dir = _transformer_folder(model_dir)
            tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
            # Eager attention exports to plain MatMul/Softmax, which quantises and fuses well.
            model = AutoModel.from_pretrained(str(hf_dir), attn_implementation="eager").eval()
            sample = tokenizer(
                ["a short one", "and a somewhat longer sentence"], padding=True, return_tensors="pt"
            )
            names = [n for n in _INPUTS if n in sample]

            class _Hidden(torch.nn.Module):
                def __init__(self, inner: torch.nn.Module) -> None:
                    super().__init__()
                    self.inner = inner

                def forward(self, *args: torch.Tensor) -> torch.Tensor:
                    return self.inner(**dict(zip(names, args, strict=True))).last_hidden_state

            axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
            # The TorchScript exporter needs no onnxscript and handles BERT-style models fully;
            # torch marks it deprecated in favour of torch.export. Its tracer warnings are about
            # shape checks that become constants; the tests compare padded batches of several
            # lengths against torch, which is what would break if that mattered.
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    _Hidden(model),
                    tuple(sample[n] for n in names),
                    str(staging / _FP32),
                    input_names=names,
                    output_names=["last_hidden_state"],
                    dynamic_axes=axes,
                    opset_version=17,
                    dynamo=False,
                )
        if quantised:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            logging.getLogger("onnxruntime").setLevel(logging.ERROR)
            quantize_dynamic(
                str(staging / _FP32),
                str(staging / _INT8),
                weight_type=QuantType.QInt8,
                per_channel=True,
            )
        del ort
    except EmbedderError:
        raise
    except Exception as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise EmbedderError(f"exporting {model_dir} to ONNX failed: {exc}") from exc
    for name in (
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "vocab.txt",
        "config.json",
    ):
        source = _transformer_folder(model_dir) / name
        if source.is_file():
            shutil.copy2(source, staging / name)
    (staging / "pooling.json").write_text(json.dumps({"mode": _pooling(model_dir)}))
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, out_dir)
    return target


class OnnxEncoder:
    """Runs an exported model: tokenise, transformer in ONNX Runtime, pool, normalise."""

    def __init__(
        self, folder: Path, *, quantised: bool, max_seq_length: int, threads: int | None = None
    ) -> None:
        ort = _require_onnxruntime()
        from transformers import AutoTokenizer

        started = time.perf_counter()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        # ONNX Runtime's threads spin while idle by default; on a laptop or a shared server that
        # burns cores between batches and starves everything else.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = folder / (_INT8 if quantised else _FP32)
        try:
            self._session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise EmbedderError(
                f"cannot load {path} ({exc}); delete {folder} to export again"
            ) from exc
        self._inputs = {i.name for i in self._session.get_inputs()}
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.max_seq_length = max_seq_length
        self._pooling = json.loads((folder / "pooling.json").read_text())["mode"]
        self.dimension = int(self._session.get_outputs()[0].shape[-1])
        self.load_seconds = time.perf_counter() - started

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for lo in range(0, len(texts), batch_size):
            idx = order[lo : lo + batch_size]
            out[idx] = self._batch([texts[i] for i in idx])
        return out

    def _batch(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_seq_length,
            return_tensors="np",
        )
        feed = {k: enc[k].astype(np.int64) for k in _INPUTS if k in self._inputs}
        hidden = self._session.run(None, feed)[0]
        if self._pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = enc["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
