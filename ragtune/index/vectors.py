"""The FAISS part of an index: ID-mapped inner-product search over unit vectors (cosine).

Ids are the SQLite chunk row ids, so a hit maps straight to its chunk. Filtering (tenant,
metadata) passes an id selector to FAISS, so a filtered query is exact, not a post-filter that
can come back short.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ragtune.errors import IndexCorruptError, IndexError_

if TYPE_CHECKING:
    import faiss

__all__ = ["VectorIndex", "VectorIndexSpec"]


@dataclass(frozen=True)
class VectorIndexSpec:
    """Which FAISS structure to build, with its parameters."""

    kind: str = "flat"  # flat | hnsw | ivf-pq
    m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    nlist: int = 1024
    nbits: int = 8
    nprobe: int = 16

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VectorIndexSpec:
        return cls(**data)


def _faiss() -> Any:
    import faiss

    return faiss


class VectorIndex:
    """A FAISS index keyed by int64 chunk ids."""

    def __init__(self, index: faiss.Index, spec: VectorIndexSpec) -> None:
        self._index: Any = index  # an IndexIDMap2; faiss' stubs do not know its members
        self.spec = spec
        self._apply_search_params()

    @classmethod
    def empty(cls, dimension: int, spec: VectorIndexSpec) -> VectorIndex:
        faiss = _faiss()
        if spec.kind == "flat":
            inner = faiss.IndexFlatIP(dimension)
        elif spec.kind == "hnsw":
            inner = faiss.IndexHNSWFlat(dimension, spec.m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = spec.ef_construction
        elif spec.kind == "ivf-pq":
            if dimension % spec.m:
                raise IndexError_(
                    f"ivf-pq needs m ({spec.m}) to divide the embedding dimension ({dimension}); "
                    "pick m from its divisors"
                )
            quantiser = faiss.IndexFlatIP(dimension)
            inner = faiss.IndexIVFPQ(
                quantiser, dimension, spec.nlist, spec.m, spec.nbits, faiss.METRIC_INNER_PRODUCT
            )
        else:
            raise IndexError_(f"unknown vector index kind {spec.kind!r}; use flat, hnsw or ivf-pq")
        return cls(faiss.IndexIDMap2(inner), spec)

    @classmethod
    def load(cls, path: Path, spec: VectorIndexSpec) -> VectorIndex:
        faiss = _faiss()
        try:
            index = faiss.read_index(str(path))
        except Exception as exc:  # FAISS raises RuntimeError with a C++ message
            raise IndexCorruptError(
                f"{path} is not a readable FAISS index ({str(exc).splitlines()[0][:200]}); "
                "rebuild the index with `ragtune index build`"
            ) from exc
        return cls(index, spec)

    def save(self, path: Path) -> None:
        _faiss().write_index(self._index, str(path))

    @property
    def dimension(self) -> int:
        return int(self._index.d)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def nbytes(self) -> int:
        """Approximate memory held by the index (vectors, graph and id map)."""
        faiss = _faiss()
        return int(faiss.serialize_index(self._index).nbytes)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape[1] != self.dimension:
            raise IndexError_(
                f"vectors of dimension {vectors.shape[1]} cannot go into an index of dimension "
                f"{self.dimension}"
            )
        inner = _faiss().downcast_index(self._index.index)
        if not inner.is_trained:
            self._train(inner, vectors)
        self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def _train(self, inner: Any, vectors: np.ndarray) -> None:
        needed = 39 * self.spec.nlist
        if len(vectors) < needed or len(vectors) < 2**self.spec.nbits:
            raise IndexError_(
                f"ivf-pq with nlist={self.spec.nlist} needs at least {max(needed, 2**self.spec.nbits)} "
                f"chunks to train and the first batch has {len(vectors)}; "
                "use `vectors: {type: flat}` or hnsw for a corpus this size, or lower nlist"
            )
        inner.train(vectors)

    def remove(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        faiss = _faiss()
        id_array = np.asarray(list(ids), dtype=np.int64)
        if self.spec.kind == "hnsw":
            # HNSW graphs cannot drop nodes: rebuild from the kept vectors (exact copies).
            keep = np.setdiff1d(self.ids(), id_array)
            vectors = (
                np.vstack([self._index.reconstruct(int(i)) for i in keep]) if len(keep) else None
            )
            rebuilt = VectorIndex.empty(self.dimension, self.spec)
            if vectors is not None:
                rebuilt.add(keep, vectors)
            self._index = rebuilt._index
            self._apply_search_params()
            return
        inner = faiss.downcast_index(self._index.index)
        if self.spec.kind == "ivf-pq":
            inner.set_direct_map_type(faiss.DirectMap.NoMap)  # FAISS removes only without it
        self._index.remove_ids(faiss.IDSelectorBatch(id_array))
        if self.spec.kind == "ivf-pq":
            inner.set_direct_map_type(faiss.DirectMap.Hashtable)

    def ids(self) -> np.ndarray:
        """Every id in the index."""
        return _faiss().vector_to_array(self._index.id_map).astype(np.int64)

    def search(
        self, query: np.ndarray, k: int, *, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` ids and cosine scores for one query; ``allowed`` restricts the ids."""
        faiss = _faiss()
        if len(self) == 0 or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        if allowed is None:
            scores, ids = self._index.search(q, min(k, len(self)))
        else:
            if len(allowed) == 0:
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
            params = self._search_params(faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64)))
            scores, ids = self._index.search(q, min(k, len(allowed)), params=params)
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)

    def scores(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Exact cosine between the query and the stored vectors of ``ids``."""
        if len(ids) == 0:
            return np.zeros(0, dtype=np.float32)
        stored = np.vstack([self._index.reconstruct(int(i)) for i in ids])
        return (stored @ query.astype(np.float32)).astype(np.float32)

    def _search_params(self, selector: Any) -> Any:
        faiss = _faiss()
        if self.spec.kind == "hnsw":
            return faiss.SearchParametersHNSW(sel=selector, efSearch=self.spec.ef_search)
        if self.spec.kind == "ivf-pq":
            return faiss.SearchParametersIVF(sel=selector, nprobe=self.spec.nprobe)
        return faiss.SearchParameters(sel=selector)

    def _apply_search_params(self) -> None:
        faiss = _faiss()
        inner = faiss.downcast_index(self._index.index)
        if self.spec.kind == "hnsw":
            inner.hnsw.efSearch = self.spec.ef_search
        elif self.spec.kind == "ivf-pq":
            inner.nprobe = self.spec.nprobe
            # A hash-table direct map lets scores() reconstruct vectors and still allows removal.
            inner.set_direct_map_type(faiss.DirectMap.Hashtable)
