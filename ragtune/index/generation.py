"""One committed generation of an index folder, open for search (FAISS, SQLite and BM25).

A generation never changes once committed; :class:`~ragtune.index.store.IndexStore` swaps
whole generations when a writer commits a new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.errors import IndexCorruptError
from ragtune.index.chunkdb import ChunkDB
from ragtune.index.lexical import LexicalIndex
from ragtune.index.manifest import Manifest
from ragtune.index.units import chunk_rows, vector_ids
from ragtune.index.vectors import VectorIndex, vector_spec_from_dict
from ragtune.types import Passage

__all__ = ["BM25_FOLDER", "FAISS_FILE", "SQLITE_FILE", "IndexGeneration"]

FAISS_FILE = "index.faiss"
SQLITE_FILE = "chunks.sqlite"
BM25_FOLDER = "bm25"
_FAISS, _SQLITE, _BM25 = FAISS_FILE, SQLITE_FILE, BM25_FOLDER
_HYDRATE_BATCH = 500
"""Chunks read per SQL query when a whole tenant is read (SQLite limits the query's variables)."""


class IndexGeneration:
    """One committed generation of an index, open for search; it never changes.

    Satisfies the ``SearchIndex`` protocol of :mod:`ragtune.retrieve`. :class:`IndexStore`
    hands one out per query (:meth:`IndexStore.snapshot`), so a query reads one generation
    from its first call to its last.
    """

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        db: ChunkDB,
        vectors: VectorIndex,
        lexical: LexicalIndex,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.db = db
        self.vectors = vectors
        self.lexical = lexical
        self._allowed_cache: dict[tuple[Any, ...], np.ndarray] = {}
        # Chunk rows (ascending) and how many vectors each has, to map filters and scores
        # between chunks and their sentence vectors.
        self._rows, self._counts = db.vector_counts()
        self._expanded: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def open(cls, folder: Path, manifest: Manifest) -> IndexGeneration:
        """Open the generation ``manifest`` names, checking that its parts agree."""
        gen = folder / manifest.generation
        if not gen.is_dir():
            raise IndexCorruptError(f"{gen} is missing; the index is damaged, rebuild it")
        for name in (_FAISS, _SQLITE, _BM25):
            if not (gen / name).exists():
                raise IndexCorruptError(
                    f"{gen / name} is missing; the index is damaged, rebuild it"
                )
        db = ChunkDB(gen / _SQLITE)
        try:
            vectors = VectorIndex.load(gen / _FAISS, vector_spec_from_dict(manifest.vectors))
            lexical = LexicalIndex.load(gen / _BM25)
            generation = cls(folder, manifest, db, vectors, lexical)
            generation._check_consistent()
        except BaseException:
            db.close()
            raise
        return generation

    def _check_consistent(self) -> None:
        n_rows = len(self._rows)
        n_vectors = int(self._counts.sum())
        if self.vectors.dimension != self.manifest.embedder.dimension:
            raise IndexCorruptError(
                f"{self.path}: index.faiss has dimension {self.vectors.dimension} but the manifest's "
                f"embedder has {self.manifest.embedder.dimension}; rebuild the index"
            )
        if len(self.vectors) != n_vectors or len(self.lexical) != n_rows:
            raise IndexCorruptError(
                f"{self.path}: {len(self.vectors)} vectors (expected {n_vectors}), "
                f"{len(self.lexical)} BM25 entries and {n_rows} chunk rows disagree; rebuild the index"
            )

    def close(self) -> None:
        self.db.close()

    # ---- the SearchIndex protocol ----------------------------------------------------------

    def snapshot(self) -> IndexGeneration:
        """This generation itself: it is already one consistent view."""
        return self

    @property
    def embedder_name(self) -> str:
        return self.manifest.embedder.name

    @property
    def title_in_text(self) -> bool:
        return bool(self.manifest.chunking.get("title_in_text", False))

    def allowed_ids(
        self, *, tenant: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> np.ndarray | None:
        """Ids a filtered query may see, or ``None`` when nothing is filtered."""
        if tenant is None and not metadata:
            return None
        key = (tenant, tuple(sorted((metadata or {}).items())))
        if key not in self._allowed_cache:
            self._allowed_cache[key] = self.db.chunk_ids(tenant=tenant, metadata=metadata)
        return self._allowed_cache[key]

    def search_dense(
        self, query_vector: np.ndarray, k: int, *, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` chunks by their best vector (max-sim over a chunk's sentences)."""
        allowed_vectors = self._vectors_of_allowed(allowed)
        depth = k * 4 + 16
        while True:
            ids, scores = self.vectors.search(query_vector, depth, allowed=allowed_vectors)
            rows = chunk_rows(ids)
            _, first = np.unique(rows, return_index=True)
            keep = np.sort(first)  # hits are best first, so a chunk's first hit is its best
            if len(keep) >= k or len(ids) < depth:
                return rows[keep][:k], scores[keep][:k]
            depth *= 4

    def search_lexical(
        self, query: str, k: int, *, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.lexical.search(query, k, allowed=allowed)

    def dense_scores(self, query_vector: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Each chunk's best cosine with the query over its vectors."""
        if len(ids) == 0:
            return np.zeros(0, dtype=np.float32)
        counts = self._counts_of(ids)
        scores = self.vectors.scores(query_vector, vector_ids(ids, counts))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        return np.maximum.reduceat(scores, starts).astype(np.float32)

    def _counts_of(self, rows: np.ndarray) -> np.ndarray:
        positions = np.searchsorted(self._rows, rows)
        positions = np.clip(positions, 0, max(len(self._rows) - 1, 0))
        if len(self._rows) == 0 or not np.array_equal(self._rows[positions], rows):
            raise IndexCorruptError(f"{self.path}: a chunk id has no row; rebuild the index")
        return self._counts[positions]

    def _vectors_of_allowed(self, allowed: np.ndarray | None) -> np.ndarray | None:
        """Vector ids of the allowed chunks; the last expansion is kept (filters repeat)."""
        if allowed is None:
            return None
        expanded = self._expanded
        if expanded is not None and expanded[0] is allowed:
            return expanded[1]
        vectors = vector_ids(allowed, self._counts_of(allowed)) if len(allowed) else allowed
        self._expanded = (allowed, vectors)
        return vectors

    def lexical_scores(self, query: str, ids: np.ndarray) -> np.ndarray:
        return self.lexical.scores(query, ids)

    def passages(
        self, ids: np.ndarray | list[int], scores: np.ndarray | list[float]
    ) -> list[Passage]:
        return self.db.passages([int(i) for i in ids], [float(s) for s in scores])

    def document_passages(self, key: str, *, tenant: str | None = None) -> list[Passage]:
        """Every chunk of the documents ``key`` names (a JSONL ``id``, a doc id, a source or a
        file path), in text order; empty when the index holds none."""
        rows = self.db.chunks_of(self.db.find_documents(key, tenant=tenant))
        return self.passages(rows, [1.0] * len(rows))

    def tenant_passages(self, tenant: str | None) -> list[Passage]:
        """Every chunk a query of ``tenant`` may see (None: every chunk), in the order they were
        indexed (a document's chunks in text order), each with score 1.0."""
        rows = np.sort(self.db.chunk_ids(tenant=tenant))
        found: list[Passage] = []
        for lo in range(0, len(rows), _HYDRATE_BATCH):
            part = rows[lo : lo + _HYDRATE_BATCH]
            found += self.passages(part, [1.0] * len(part))
        return found
