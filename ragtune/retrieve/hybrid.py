"""Hybrid retrieval: dense and BM25 candidates fused into one ranking."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ragtune.errors import EmbedderMismatchError, RetrievalError
from ragtune.retrieve.base import QueryEmbedder, SearchIndex, check_query
from ragtune.retrieve.fusion import convex_fusion, reciprocal_rank_fusion
from ragtune.types import Passage

__all__ = ["HybridRetriever"]


class HybridRetriever:
    """Both retrievers look ``candidates`` deep; their lists are fused and cut to ``k``.

    ``fusion="score"`` (the default) adds each retriever's score divided by its best score
    among the candidates, weighted; ``"rrf"`` is weighted reciprocal-rank fusion. On SQuAD-dev
    score fusion beats RRF at rank 1 by about 0.1 (benchmarks/RESULTS.md).
    """

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
        index = self.index.snapshot()  # one committed state for the whole query
        allowed = index.allowed_ids(tenant=tenant, metadata=metadata)
        depth = max(k, self.candidates)
        query_vector = self.embedder.embed_query(query)
        dense = index.search_dense(query_vector, depth, allowed=allowed)
        lexical = index.search_lexical(query, depth, allowed=allowed)
        if self.fusion == "rrf":
            ids, scores = reciprocal_rank_fusion([dense, lexical], self.weights, k=self.rrf_k)
        else:
            # Score every candidate by both retrievers, so one missing from a list is not
            # treated as scoring zero there.
            candidates = np.unique(np.concatenate([dense[0], lexical[0]]))
            ids, scores = convex_fusion(
                candidates,
                index.dense_scores(query_vector, candidates),
                index.lexical_scores(query, candidates),
                self.weights,
            )
        return index.passages(ids[:k], scores[:k])
