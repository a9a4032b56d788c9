"""Lexical retrieval: BM25 over the chunk texts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ragtune.retrieve.base import SearchIndex, check_query
from ragtune.types import Passage

__all__ = ["LexicalRetriever"]


class LexicalRetriever:
    """BM25 keyword matching; strong on names, numbers and rare terms."""

    def __init__(self, index: SearchIndex[Any]) -> None:
        self.index = index

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
        ids, scores = index.search_lexical(query, k, allowed=allowed)
        return index.passages(ids, scores)
