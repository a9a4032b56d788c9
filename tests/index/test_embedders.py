"""Embedder backends: torch and ONNX Runtime (fp32, int8) agree; bad models are explained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ragtune.errors import EmbedderError
from ragtune.index import SentenceTransformerEmbedder

TEXTS = [
    "Returns are accepted within 30 days of delivery.",
    "The kettle holds 1.7 litres.",
    "A much longer sentence about shipping to Ireland, France and Germany that takes a week.",
]


@pytest.mark.parametrize(("backend", "min_cosine"), [("onnx", 0.9999), ("onnx-int8", 0.9)])
def test_onnx_backends_match_torch(backend, min_cosine, tiny_model_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    torch_vectors = SentenceTransformerEmbedder(str(tiny_model_dir), device="cpu").embed(TEXTS)
    onnx = SentenceTransformerEmbedder(str(tiny_model_dir), backend=backend, cache_dir=tmp_path)
    vectors = onnx.embed(TEXTS)
    assert vectors.shape == torch_vectors.shape and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = (vectors * torch_vectors).sum(axis=1)
    assert cosines.min() >= min_cosine
    assert np.allclose(onnx.embed_query(TEXTS[0]), vectors[0], atol=1e-3)  # padding shifts fp sums
    assert onnx.dimension == 32 and onnx.count_tokens("hello world") == 2
    # The export is made once and reused.
    exported = sorted(p.name for p in next(tmp_path.iterdir()).iterdir())
    assert "model.onnx" in exported
    again = SentenceTransformerEmbedder(str(tiny_model_dir), backend=backend, cache_dir=tmp_path)
    assert np.allclose(again.embed(TEXTS), vectors, atol=1e-6)


def test_unknown_model_and_backend_are_explained(tmp_path):
    with pytest.raises(EmbedderError, match="never downloaded"):
        SentenceTransformerEmbedder("sentence-transformers/all-mpnet-base-v2")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmbedderError, match="holds no"):
        SentenceTransformerEmbedder(str(tmp_path / "empty"))
    with pytest.raises(EmbedderError, match="torch, onnx or onnx-int8"):
        SentenceTransformerEmbedder(backend="tensorrt")


def test_a_broken_model_folder_is_explained(tmp_path: Path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text("{not json")
    embedder = SentenceTransformerEmbedder(str(folder), device="cpu")
    with pytest.raises(EmbedderError, match="cannot load embedder"):
        embedder.embed(["x"])


def test_onnx_query_backend_gives_the_torch_vectors(tiny_model_dir, tmp_path):
    """Queries through ONNX Runtime search an index built with torch the same way."""
    torch_only = SentenceTransformerEmbedder(
        str(tiny_model_dir), device="cpu", query_backend="same"
    )
    fast = SentenceTransformerEmbedder(
        str(tiny_model_dir), device="cpu", query_backend="auto", cache_dir=tmp_path
    )
    for query in ["refund policy", "How many days do I have to return an opened kettle?"]:
        a, b = torch_only.embed_query(query), fast.embed_query(query)
        assert np.abs(a - b).max() < 1e-5
    assert type(fast._query()).__name__ == "OnnxEncoder"
    assert type(torch_only._query()).__name__ == "_TorchEncoder"
    # Documents still go through the main backend.
    assert type(fast._load()).__name__ == "_TorchEncoder"


def test_unknown_query_backend_is_explained(tiny_model_dir):
    with pytest.raises(EmbedderError, match="unknown query backend 'gpu'"):
        SentenceTransformerEmbedder(str(tiny_model_dir), query_backend="gpu")
