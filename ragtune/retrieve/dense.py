"""Dense retrieval: the query's embedding against the FAISS index."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ragtune.errors import EmbedderMismatchError
from ragtune.retrieve.base import QueryEmbedder, SearchIndex, check_query
from ragtune.types import Passage

__all__ = ["DenseRetriever"]


class DenseRetriever:
    """Cosine similarity between the query and chunk embeddings."""

    def __init__(self, index: SearchIndex[Any], embedder: QueryEmbedder) -> None:
        if embedder.name.lower() != index.embedder_name.lower():
            raise EmbedderMismatchError(
                f"the index was built with {index.embedder_name!r} but the query embedder is "
                f"{embedder.name!r}; queries must use the index's embedder"
            )
        self.index = index
        self.embedder = embedder

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
        ids, scores = index.search_dense(self.embedder.embed_query(query), k, allowed=allowed)
        return index.passages(ids, scores)
