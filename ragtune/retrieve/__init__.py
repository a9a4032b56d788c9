"""Retrievers: dense (FAISS), lexical (BM25) and hybrid (fusion), behind one protocol."""

from ragtune.retrieve.base import QueryEmbedder, Retriever, SearchIndex
from ragtune.retrieve.dense import DenseRetriever
from ragtune.retrieve.hybrid import FusionSettings, HybridRetriever
from ragtune.retrieve.lexical import LexicalRetriever

__all__ = [
    "DenseRetriever",
    "FusionSettings",
    "HybridRetriever",
    "LexicalRetriever",
    "QueryEmbedder",
    "Retriever",
    "SearchIndex",
]
