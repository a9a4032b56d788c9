"""Index storage: embedders, the FAISS vectors, the BM25 index, the SQLite chunk table."""

from ragtune.index.embedders import (
    Embedder,
    EmbedderSettings,
    SentenceTransformerEmbedder,
    resolve_embedder_path,
)
from ragtune.index.generation import IndexGeneration
from ragtune.index.lexical import LexicalIndex, LexicalSpec
from ragtune.index.manifest import EmbedderInfo, Manifest
from ragtune.index.store import IndexStore, IndexUpdate
from ragtune.index.vectors import FlatSpec, HNSWSpec, IVFPQSpec, VectorIndex, VectorIndexSpec

__all__ = [
    "Embedder",
    "EmbedderInfo",
    "EmbedderSettings",
    "FlatSpec",
    "HNSWSpec",
    "IVFPQSpec",
    "IndexGeneration",
    "IndexStore",
    "IndexUpdate",
    "LexicalIndex",
    "LexicalSpec",
    "Manifest",
    "SentenceTransformerEmbedder",
    "VectorIndex",
    "VectorIndexSpec",
    "resolve_embedder_path",
]
