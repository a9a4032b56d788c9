"""Hybrid retrieval: dense and BM25 candidates fused into one ranking."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ragtune.errors import EmbedderMismatchError, RetrievalError
from ragtune.retrieve.base import QueryEmbedder, SearchIndex, check_query
from ragtune.retrieve.fusion import reciprocal_rank_fusion, score_fusion
from ragtune.types import Passage

__all__ = ["HybridRetriever"]


class HybridRetriever:
    """Both retrievers look ``candidates`` deep; their lists are fused and cut to ``k``."""

    def __init__(
        self,
        index: SearchIndex,
        embedder: QueryEmbedder,
        *,
        fusion: str = "score",
        dense_weight: float = 0.5,
        lexical_weight: float = 0.5,
        candidates: int = 50,
        rrf_k: int = 60,
    ) -> None:
        if fusion not in ("score", "rrf"):
            raise RetrievalError(f"unknown fusion {fusion!r}; use score or rrf")
        if embedder.name.lower() != index.embedder_name.lower():
            raise EmbedderMismatchError(
                f"the index was built with {index.embedder_name!r} but the query embedder is "
                f"{embedder.name!r}; queries must use the index's embedder"
            )
        self.index = index
        self.embedder = embedder
        self.fusion = fusion
        self.weights = (dense_weight, lexical_weight)
        self.candidates = candidates
        self.rrf_k = rrf_k

    def retrieve(
        self,
        query: str,
        k: int,
        *,
        tenant: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[Passage]:
        query = check_query(query, k)
        allowed = self.index.allowed_ids(tenant=tenant, metadata=metadata)
        depth = max(k, self.candidates)
        dense = self.index.search_dense(self.embedder.embed_query(query), depth, allowed=allowed)
        lexical = self.index.search_lexical(query, depth, allowed=allowed)
        if self.fusion == "rrf":
            ids, scores = reciprocal_rank_fusion([dense, lexical], self.weights, k=self.rrf_k)
        else:
            ids, scores = score_fusion([dense, lexical], self.weights)
        return self.index.passages(ids[:k], scores[:k])
