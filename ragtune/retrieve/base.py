"""What a retriever is, and what it needs from an index and an embedder.

The retrievers depend on these protocols, not on :mod:`ragtune.index`, so stage packages stay
independent and a test can hand a retriever any object that fits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol, TypeVar, runtime_checkable

import numpy as np
from annotated_types import Ge, Le

from ragtune.errors import RetrievalError
from ragtune.settings import check_bounds
from ragtune.types import Passage

__all__ = [
    "MAX_QUERY_CHARS",
    "QueryEmbedder",
    "Retriever",
    "RetrieverSettings",
    "SearchIndex",
    "check_query",
]

MAX_QUERY_CHARS = 8192


@dataclass(frozen=True)
class RetrieverSettings:
    """Which index a retriever searches and how many passages a question gets."""

    index: Path = Path("indexes/default")
    """The index folder (relative to the working directory)."""
    top_k: Annotated[int, Ge(1), Le(1000)] = 5
    """Passages retrieved per question."""

    def __post_init__(self) -> None:
        check_bounds(self)


@runtime_checkable
class Retriever(Protocol):
    """Finds the passages that best answer a query."""

    def retrieve(
        self,
        query: str,
        k: int,
        *,
        tenant: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[Passage]:
        """Top ``k`` passages, best first. ``tenant`` and ``metadata`` restrict the chunks seen."""
        ...


FilterT = TypeVar("FilterT")


class SearchIndex(Protocol[FilterT]):
    """The searches an index offers (implemented by :class:`ragtune.index.IndexStore` and
    :class:`ragtune.index.pgstore.PgIndexStore`).

    A retriever calls :meth:`snapshot` once per query and makes every other call on what it
    returns, so one query reads one committed state of an index that may change meanwhile.
    What a filter is belongs to the index: :meth:`allowed_ids` makes one and the searches take
    it back (the folder store: an array of allowed chunk ids; the pgvector store: a SQL
    condition).
    """

    def snapshot(self) -> SearchIndex[FilterT]:
        """A view of the index as committed now, unchanged for as long as it is used."""
        ...

    @property
    def embedder_name(self) -> str: ...

    def allowed_ids(
        self, *, tenant: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> FilterT | None:
        """The filter for a tenant and metadata, or ``None`` when nothing is filtered."""
        ...

    def search_dense(
        self, query_vector: np.ndarray, k: int, *, allowed: FilterT | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def search_lexical(
        self, query: str, k: int, *, allowed: FilterT | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def dense_scores(self, query_vector: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Cosine of the query with each of these chunks."""
        ...

    def lexical_scores(self, query: str, ids: np.ndarray) -> np.ndarray:
        """BM25 score of the query for each of these chunks."""
        ...

    def passages(self, ids: np.ndarray, scores: np.ndarray) -> list[Passage]: ...


class QueryEmbedder(Protocol):
    """Embeds a query into the index's vector space."""

    @property
    def name(self) -> str: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def check_query(query: str, k: int) -> str:
    """Validate a query at the boundary; returns it stripped."""
    if not isinstance(query, str) or not query.strip():
        raise RetrievalError("the query is empty; ask something")
    if len(query) > MAX_QUERY_CHARS:
        raise RetrievalError(
            f"the query has {len(query)} characters; the limit is {MAX_QUERY_CHARS}. Shorten it"
        )
    if k < 1:
        raise RetrievalError(f"k must be at least 1, not {k}")
    return query.strip()
