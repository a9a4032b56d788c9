"""An index folder: open it for search, or change it in an all-or-nothing update.

Layout::

    indexes/handbook/
      manifest.json        the commit point: names the current generation
      gen-000004/          index.faiss, chunks.sqlite, bm25/
      gen-000003/          the previous generation, kept so readers that opened it finish
      .lock                held by the one writer

An update copies the current generation into a new folder, changes the copy, writes it out
and renames the manifest over the old one. A process killed at any point leaves the old
manifest naming the old, untouched generation; the next writer sweeps the leftovers.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import numpy as np

from ragtune.errors import (
    EmbedderMismatchError,
    IndexCorruptError,
    IndexError_,
)
from ragtune.index.chunkdb import ChunkDB
from ragtune.index.lexical import LexicalIndex, LexicalSpec
from ragtune.index.manifest import MANIFEST, Manifest, fsync_dir
from ragtune.index.units import chunk_rows, vector_ids
from ragtune.index.vectors import VectorIndex, VectorIndexSpec
from ragtune.types import Passage

__all__ = ["IndexStore", "IndexUpdate"]

_GEN = re.compile(r"^gen-(\d{6})$")
_FAISS = "index.faiss"
_SQLITE = "chunks.sqlite"
_BM25 = "bm25"


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class IndexStore:
    """A read-only view of one generation of an index.

    Satisfies the ``SearchIndex`` protocol of :mod:`ragtune.retrieve`.
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
    def open(cls, path: str | Path, *, embedder: str | None = None) -> IndexStore:
        """Open an index; ``embedder`` (a model name) must match the one it was built with."""
        folder = Path(path)
        manifest = Manifest.read(folder)
        if embedder is not None and embedder.lower() != manifest.embedder.name.lower():
            raise EmbedderMismatchError(
                f"{folder} was built with the embedder {manifest.embedder.name!r}, not {embedder!r}; "
                "use the same embedder, or rebuild the index with the new one"
            )
        gen = folder / manifest.generation
        if not gen.is_dir():
            raise IndexCorruptError(f"{gen} is missing; the index is damaged, rebuild it")
        for name in (_FAISS, _SQLITE, _BM25):
            if not (gen / name).exists():
                raise IndexCorruptError(
                    f"{gen / name} is missing; the index is damaged, rebuild it"
                )
        db = ChunkDB(gen / _SQLITE)
        vectors = VectorIndex.load(gen / _FAISS, VectorIndexSpec.from_dict(manifest.vectors))
        lexical = LexicalIndex.load(gen / _BM25)
        store = cls(folder, manifest, db, vectors, lexical)
        store._check_consistent()
        return store

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

    def __enter__(self) -> IndexStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the SearchIndex protocol ----------------------------------------------------------

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
        if self._expanded is not None and self._expanded[0] is allowed:
            return self._expanded[1]
        expanded = vector_ids(allowed, self._counts_of(allowed)) if len(allowed) else allowed
        self._expanded = (allowed, expanded)
        return expanded

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


class IndexUpdate:
    """One all-or-nothing change to an index folder (a context manager).

    >>> with IndexUpdate(path, new=manifest) as update:   # doctest: +SKIP
    ...     ids = update.db.add_document(...)
    ...     update.vectors.add(np.array(ids), vectors)
    ...     update.commit()

    Leaving the block without :meth:`commit` (or by an exception) discards every change.
    ``new`` starts from an empty index (a build); otherwise the current generation is copied.
    """

    def __init__(self, path: str | Path, *, new: Manifest | None = None) -> None:
        self.path = Path(path)
        self._new = new
        self._lock_fd: int | None = None
        self.committed = False

    def __enter__(self) -> IndexUpdate:
        self._lock()
        try:
            self._begin()
        except BaseException:
            self._discard()
            self._unlock()
            raise
        return self

    def _begin(self) -> None:
        previous: Manifest | None = None
        if self._new is None:
            previous = Manifest.read(self.path)
            self.base = previous
        else:
            if (self.path / MANIFEST).is_file():
                try:
                    previous = Manifest.read(self.path)
                    self._new = self._new.evolve(created_at=previous.created_at)
                except IndexError_:
                    previous = None  # a damaged index is replaced whole by a build
            self.base = self._new
        # The current generation stays whole until the new manifest replaces it.
        self.previous_generation = previous.generation if previous else ""
        self._sweep(keep={self.previous_generation})
        number = max([_gen_number(p.name) for p in self.path.iterdir() if _GEN.match(p.name)] + [0])
        self.generation = f"gen-{number + 1:06d}"
        self.work = self.path / f".{self.generation}.tmp"
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir()
        if self._new is not None:
            self.db = ChunkDB(self.work / _SQLITE, create=True)
            spec = VectorIndexSpec.from_dict(self.base.vectors)
            self.vectors = VectorIndex.empty(self.base.embedder.dimension, spec)
        else:
            current = self.path / self.base.generation
            if not (current / _SQLITE).is_file() or not (current / _FAISS).is_file():
                raise IndexCorruptError(
                    f"{current} is incomplete; the index is damaged, rebuild it"
                )
            shutil.copy2(current / _SQLITE, self.work / _SQLITE)
            self.db = ChunkDB(self.work / _SQLITE)
            self.vectors = VectorIndex.load(
                current / _FAISS, VectorIndexSpec.from_dict(self.base.vectors)
            )
        self.db.begin()

    @property
    def manifest(self) -> Manifest:
        """The manifest this update started from (or will create)."""
        return self._new or self.base

    def check_embedder(self, embedder: _Named) -> None:
        """Refuse to mix vectors of two embedders in one index (by name; the dimension is
        checked when vectors are added, so a no-op update never loads the model)."""
        have = self.manifest.embedder
        if embedder.name.lower() != have.name.lower():
            raise EmbedderMismatchError(
                f"{self.path} was built with {have.name!r} ({have.dimension} dimensions); the "
                f"configured embedder is {embedder.name!r}. Use the index's embedder, or rebuild "
                "the index with `ragtune index build`"
            )

    def commit(self) -> Manifest:
        """Write the new generation and make it current. Returns the new manifest."""
        fault_point("before-write")
        self.db.commit()
        with_title = bool(self.manifest.chunking.get("title_in_text", False))
        ids, texts = self.db.all_chunk_texts(with_title=with_title)
        lexical = LexicalIndex.build(ids, texts, LexicalSpec.from_dict(self.manifest.lexical))
        lexical.save(self.work / _BM25)
        self.vectors.save(self.work / _FAISS)
        counts = self.db.counts()
        expected = int(self.db.vector_counts()[1].sum())
        if len(self.vectors) != expected:
            raise IndexCorruptError(
                f"internal error: {len(self.vectors)} vectors where the chunks have {expected}; "
                "nothing was changed"
            )
        counts["vectors"] = expected
        now = time.time()
        manifest = self.manifest.evolve(
            generation=self.generation,
            created_at=self.manifest.created_at or now,
            updated_at=now,
            counts=counts,
            tenants=self.db.tenants(),
            pii=self.db.pii_totals(),
        )
        self.db.close()
        _fsync_tree(self.work)
        final = self.path / self.generation
        os.replace(self.work, final)
        fsync_dir(self.path)
        fault_point("before-commit")
        manifest.write(self.path)  # the commit point
        self.committed = True
        fault_point("after-commit")
        self._sweep(keep={manifest.generation, self.previous_generation})
        return manifest

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if not self.committed:
                self._discard()
        finally:
            self._unlock()

    def _discard(self) -> None:
        """Drop the unfinished generation; the current one was never touched."""
        db = getattr(self, "db", None)
        if db is not None:
            with contextlib.suppress(Exception):
                db.close()
        work = getattr(self, "work", None)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)

    def _sweep(self, keep: set[str]) -> None:
        """Remove leftovers of killed writers and generations older than the previous one."""
        for entry in self.path.iterdir():
            stale_tmp = entry.name.startswith(".gen-") and entry.name.endswith(".tmp")
            old_gen = _GEN.match(entry.name) and entry.name not in keep
            if entry.is_dir() and (stale_tmp or old_gen):
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.name.startswith(f".{MANIFEST}.tmp-"):
                entry.unlink(missing_ok=True)

    def _lock(self) -> None:
        if self._new is not None:
            if self.path.exists() and not _is_index_or_empty(self.path):
                raise IndexError_(
                    f"{self.path} exists and is not a ragtune index; refusing to write into it. "
                    "Choose an empty or new folder for --out"
                )
            self.path.mkdir(parents=True, exist_ok=True)
        elif not self.path.is_dir():
            Manifest.read(self.path)  # raises the right "no index" error
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise IndexError_(
                f"{self.path} is being changed by another process; wait for it to finish"
            ) from None
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None


def _gen_number(name: str) -> int:
    match = _GEN.match(name)
    return int(match.group(1)) if match else 0


def _is_index_or_empty(path: Path) -> bool:
    if not path.is_dir():
        return False
    names = {p.name for p in path.iterdir()}
    return (
        not names
        or MANIFEST in names
        or names <= {".lock"}
        or all(_GEN.match(n) or n.startswith(".") for n in names)
    )


def _fsync_tree(folder: Path) -> None:
    for root, _dirs, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(root))


def fault_point(name: str) -> None:
    """Pause here when ``RAGTUNE_FAULT_PAUSE`` names this point (crash tests kill us here).

    The process writes ``RAGTUNE_FAULT_FILE`` (if set) to signal it has arrived, then sleeps
    until killed. Costs one environment lookup otherwise.
    """
    if os.environ.get("RAGTUNE_FAULT_PAUSE") != name:
        return
    signal_file = os.environ.get("RAGTUNE_FAULT_FILE")
    if signal_file:
        Path(signal_file).write_text(name)
    while True:
        time.sleep(1)
