"""The FAISS part of an index: ID-mapped inner-product search over unit vectors (cosine).

Ids are the SQLite chunk row ids, so a hit maps straight to its chunk. Filtering (tenant,
metadata) passes an id selector to FAISS rather than filtering afterwards. On the approximate
kinds that alone can still come back short: IVF-PQ only looks in ``nprobe`` of its lists, and
HNSW only walks part of its graph, so a small tenant's vectors may lie where the search never
goes. Whenever a search returns fewer than ``k`` hits while the filter allows ``k`` vectors,
it is repeated exhaustively (every IVF list; every allowed vector for HNSW), so a filtered
query fills ``k`` whenever the tenant has ``k`` chunks, on every index kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from annotated_types import Ge, Le

from ragtune.errors import IndexCorruptError, IndexError_
from ragtune.settings import check_bounds

if TYPE_CHECKING:
    import faiss

__all__ = [
    "FlatSpec",
    "HNSWSpec",
    "IVFPQSpec",
    "VectorIndex",
    "VectorIndexSpec",
    "vector_spec_from_dict",
    "vector_spec_to_dict",
]


@dataclass(frozen=True)
class FlatSpec:
    """Exact search. Best up to a few hundred thousand chunks."""

    type: Literal["flat"] = "flat"


@dataclass(frozen=True)
class HNSWSpec:
    """Graph-based approximate search: fast queries on large corpora, more memory."""

    type: Literal["hnsw"] = "hnsw"
    m: Annotated[int, Ge(4), Le(256)] = 32
    """Neighbours per graph node (FAISS's M)."""
    ef_construction: Annotated[int, Ge(8)] = 200
    ef_search: Annotated[int, Ge(8)] = 128
    """Candidates a query keeps while walking the graph: more is slower and closer to exact."""

    def __post_init__(self) -> None:
        check_bounds(self)


@dataclass(frozen=True)
class IVFPQSpec:
    """Inverted lists with product quantisation: least memory for millions of chunks."""

    type: Literal["ivf-pq"] = "ivf-pq"
    nlist: Annotated[int, Ge(1)] = 1024
    """Coarse clusters; training needs about 39 x nlist chunks."""
    m: Annotated[int, Ge(1)] = 16
    """Sub-quantisers (FAISS's M for PQ); must divide the embedding dimension."""
    nbits: Annotated[int, Ge(4), Le(12)] = 8
    nprobe: Annotated[int, Ge(1)] = 16
    """Lists a query looks in."""

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.nprobe > self.nlist:
            raise ValueError(f"nprobe ({self.nprobe}) cannot exceed nlist ({self.nlist})")


VectorIndexSpec = FlatSpec | HNSWSpec | IVFPQSpec
"""Which FAISS structure to build, with its parameters (one dataclass per kind, so a field means
one thing: ``m`` is HNSW's neighbours or PQ's sub-quantisers, never both)."""

_SPECS: dict[str, type[FlatSpec] | type[HNSWSpec] | type[IVFPQSpec]] = {
    "flat": FlatSpec,
    "hnsw": HNSWSpec,
    "ivf-pq": IVFPQSpec,
}


def vector_spec_to_dict(spec: VectorIndexSpec) -> dict[str, Any]:
    """The manifest's form of ``spec``."""
    return asdict(spec)


def vector_spec_from_dict(data: dict[str, Any]) -> VectorIndexSpec:
    """Read a manifest's vector spec; manifests of earlier versions held every field of every
    kind under ``kind`` and are read too."""
    kind = data.get("type", data.get("kind"))
    cls = _SPECS.get(str(kind))
    if cls is None:
        raise IndexCorruptError(f"unknown vector index kind {kind!r}; use flat, hnsw or ivf-pq")
    names = {f.name for f in fields(cls)} - {"type"}
    return cls(**{k: v for k, v in data.items() if k in names})


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
        if isinstance(spec, FlatSpec):
            inner = faiss.IndexFlatIP(dimension)
        elif isinstance(spec, HNSWSpec):
            inner = faiss.IndexHNSWFlat(dimension, spec.m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = spec.ef_construction
        elif isinstance(spec, IVFPQSpec):
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
            raise IndexError_(f"unknown vector index spec {spec!r}; use flat, hnsw or ivf-pq")
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
        spec = self.spec
        assert isinstance(spec, IVFPQSpec)  # only IVF-PQ needs training
        needed = 39 * spec.nlist
        if len(vectors) < needed or len(vectors) < 2**spec.nbits:
            raise IndexError_(
                f"ivf-pq with nlist={spec.nlist} needs at least {max(needed, 2**spec.nbits)} "
                f"chunks to train and the first batch has {len(vectors)}; "
                "use `vectors: {type: flat}` or hnsw for a corpus this size, or lower nlist"
            )
        inner.train(vectors)

    def remove(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        faiss = _faiss()
        id_array = np.asarray(list(ids), dtype=np.int64)
        if isinstance(self.spec, HNSWSpec):
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
        if isinstance(self.spec, IVFPQSpec):
            inner.set_direct_map_type(faiss.DirectMap.NoMap)  # FAISS removes only without it
        self._index.remove_ids(faiss.IDSelectorBatch(id_array))
        if isinstance(self.spec, IVFPQSpec):
            inner.set_direct_map_type(faiss.DirectMap.Hashtable)

    def ids(self) -> np.ndarray:
        """Every id in the index."""
        return _faiss().vector_to_array(self._index.id_map).astype(np.int64)

    def search(
        self, query: np.ndarray, k: int, *, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` ids and cosine scores for one query; ``allowed`` restricts the ids.

        Returns ``min(k, number of allowed vectors)`` hits on every index kind.
        """
        empty = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if len(self) == 0 or k <= 0 or (allowed is not None and len(allowed) == 0):
            return empty
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        available = len(self) if allowed is None else len(allowed)
        ids, scores = self._search(q, min(k, available), allowed, exhaustive=False)
        if len(ids) < min(k, available) and not isinstance(self.spec, FlatSpec):
            ids, scores = self._search(q, min(k, available), allowed, exhaustive=True)
        return ids, scores

    def _search(
        self, q: np.ndarray, k: int, allowed: np.ndarray | None, *, exhaustive: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        if exhaustive and isinstance(self.spec, HNSWSpec):
            return self._exact(q, k, self.ids() if allowed is None else allowed)
        faiss = _faiss()
        selector = (
            faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
            if allowed is not None
            else None
        )
        if selector is None and not exhaustive:
            scores, ids = self._index.search(q, k)
        else:
            params = self._search_params(selector, exhaustive=exhaustive)
            scores, ids = self._index.search(q, k, params=params)
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)

    def _exact(self, q: np.ndarray, k: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Brute force over the stored vectors of ``ids`` (HNSW keeps them exactly)."""
        ids = np.asarray(ids, dtype=np.int64)
        scores = self._index.reconstruct_batch(ids) @ q[0]
        top = np.argsort(-scores, kind="stable")[:k]
        return ids[top], scores[top].astype(np.float32)

    def scores(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Exact cosine between the query and the stored vectors of ``ids``."""
        if len(ids) == 0:
            return np.zeros(0, dtype=np.float32)
        stored = np.vstack([self._index.reconstruct(int(i)) for i in ids])
        return (stored @ query.astype(np.float32)).astype(np.float32)

    def _search_params(self, selector: Any, *, exhaustive: bool = False) -> Any:
        faiss = _faiss()
        spec = self.spec
        if isinstance(spec, HNSWSpec):
            return faiss.SearchParametersHNSW(sel=selector, efSearch=spec.ef_search)
        if isinstance(spec, IVFPQSpec):
            nprobe = spec.nlist if exhaustive else spec.nprobe
            return faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
        return faiss.SearchParameters(sel=selector)

    def _apply_search_params(self) -> None:
        faiss = _faiss()
        inner = faiss.downcast_index(self._index.index)
        spec = self.spec
        if isinstance(spec, HNSWSpec):
            inner.hnsw.efSearch = spec.ef_search
        elif isinstance(spec, IVFPQSpec):
            inner.nprobe = spec.nprobe
            # A hash-table direct map lets scores() reconstruct vectors and still allows removal.
            inner.set_direct_map_type(faiss.DirectMap.Hashtable)
