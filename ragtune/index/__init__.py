"""Index storage: embedders, the FAISS vectors, the BM25 index, the SQLite chunk table; or
all of it in PostgreSQL with pgvector."""

from ragtune.index.embedders import (
    Embedder,
    EmbedderSettings,
    SentenceTransformerEmbedder,
    resolve_embedder_path,
)
from ragtune.index.generation import IndexGeneration
from ragtune.index.lexical import LexicalIndex, LexicalSpec
from ragtune.index.location import IndexLocation, open_index
from ragtune.index.manifest import EmbedderInfo, Manifest
from ragtune.index.pgschema import PgStoreSettings
from ragtune.index.pgstore import PgIndexStore
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
    "IndexLocation",
    "IndexStore",
    "IndexUpdate",
    "LexicalIndex",
    "LexicalSpec",
    "Manifest",
    "PgIndexStore",
    "PgStoreSettings",
    "SentenceTransformerEmbedder",
    "VectorIndex",
    "VectorIndexSpec",
    "open_index",
    "resolve_embedder_path",
]
