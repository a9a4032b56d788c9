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
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import numpy as np

from ragtune.durable import fsync_dir
from ragtune.errors import (
    EmbedderMismatchError,
    IndexCorruptError,
    IndexError_,
)
from ragtune.index.chunkdb import ChunkDB
from ragtune.index.generation import BM25_FOLDER, FAISS_FILE, SQLITE_FILE, IndexGeneration
from ragtune.index.lexical import LexicalIndex, LexicalSpec
from ragtune.index.manifest import MANIFEST, Manifest, refuse_other_embedder
from ragtune.index.vectors import VectorIndex, vector_spec_from_dict
from ragtune.types import Passage

__all__ = ["IndexStore", "IndexUpdate"]

_GEN = re.compile(r"^gen-(\d{6})$")
_FAISS, _SQLITE, _BM25 = FAISS_FILE, SQLITE_FILE, BM25_FOLDER


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class IndexStore:
    """An index folder open for search, following its newest committed generation.

    A writer commits by renaming ``manifest.json``. :meth:`snapshot` (what the retrievers
    call at the start of each query) notices a new manifest with one ``stat`` call, opens the
    generation it names in full and only then swaps it in under a lock; a query already
    running finishes on the generation it started with. So a long-running server serves what
    ``index add``/``remove``/``sync`` committed from its next query on, never a half-read
    state. The other methods read the generation current at the time (no refresh).

    Satisfies the ``SearchIndex`` protocol of :mod:`ragtune.retrieve`.
    """

    # A replaced generation is closed this long after it was replaced (at the next swap or
    # at close()): queries holding it take milliseconds.
    RETIRE_SECONDS = 60.0

    def __init__(self, path: Path, generation: IndexGeneration) -> None:
        self.path = path
        self._current = generation
        self._signature = _manifest_signature(path)
        self._swap = threading.Lock()
        self._retired: list[tuple[float, IndexGeneration]] = []

    @classmethod
    def open(cls, path: str | Path, *, embedder: str | None = None) -> IndexStore:
        """Open an index; ``embedder`` (a model name) must match the one it was built with."""
        folder = Path(path)
        signature = _manifest_signature(folder)
        manifest = Manifest.read(folder)
        if embedder is not None and embedder.lower() != manifest.embedder.name.lower():
            raise EmbedderMismatchError(
                f"{folder} was built with the embedder {manifest.embedder.name!r}, not {embedder!r}; "
                "use the same embedder, or rebuild the index with the new one"
            )
        store = cls(folder, IndexGeneration.open(folder, manifest))
        store._signature = signature
        return store

    def close(self) -> None:
        with self._swap:
            for _when, old in self._retired:
                old.close()
            self._retired.clear()
            self._current.close()

    def __enter__(self) -> IndexStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- following commits -------------------------------------------------------------------

    def snapshot(self) -> IndexGeneration:
        """The newest committed generation, for every call of one query."""
        signature = _manifest_signature(self.path)
        if signature != self._signature and self._swap.acquire(blocking=False):
            # Another thread already loading the new generation: serve the current one.
            try:
                self._follow(signature)
            finally:
                self._swap.release()
        return self._current

    def _follow(self, signature: tuple[int, int, int] | None) -> None:
        if signature is None:
            return  # the manifest is being replaced (or the folder went away): keep serving
        try:
            manifest = Manifest.read(self.path)
            if manifest.generation != self._current.manifest.generation:
                if manifest.embedder.name.lower() != self.embedder_name.lower():
                    raise EmbedderMismatchError(
                        f"{self.path} was rebuilt with the embedder {manifest.embedder.name!r}; "
                        f"this process embeds queries with {self.embedder_name!r}. Restart it "
                        "with a config for the new embedder"
                    )
                fresh = IndexGeneration.open(self.path, manifest)
                now = time.monotonic()
                self._retired.append((now, self._current))
                self._current = fresh  # one reference swap: readers see old or new, whole
                self._close_retired(now - self.RETIRE_SECONDS)
        except IndexCorruptError:
            return  # swept by a newer commit meanwhile: the next query tries again
        self._signature = signature

    def _close_retired(self, before: float) -> None:
        keep = []
        for when, old in self._retired:
            if when < before:
                old.close()
            else:
                keep.append((when, old))
        self._retired = keep

    # ---- the current generation's parts -----------------------------------------------------

    @property
    def manifest(self) -> Manifest:
        return self._current.manifest

    @property
    def db(self) -> ChunkDB:
        return self._current.db

    @property
    def vectors(self) -> VectorIndex:
        return self._current.vectors

    @property
    def lexical(self) -> LexicalIndex:
        return self._current.lexical

    @property
    def embedder_name(self) -> str:
        return self._current.embedder_name

    @property
    def title_in_text(self) -> bool:
        return self._current.title_in_text

    def allowed_ids(
        self, *, tenant: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> np.ndarray | None:
        """Ids a filtered query may see, or ``None`` when nothing is filtered."""
        return self._current.allowed_ids(tenant=tenant, metadata=metadata)

    def search_dense(
        self, query_vector: np.ndarray, k: int, *, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` chunks by their best vector (max-sim over a chunk's sentences)."""
        return self._current.search_dense(query_vector, k, allowed=allowed)

    def search_lexical(
        self, query: str, k: int, *, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return self._current.search_lexical(query, k, allowed=allowed)

    def dense_scores(self, query_vector: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Each chunk's best cosine with the query over its vectors."""
        return self._current.dense_scores(query_vector, ids)

    def lexical_scores(self, query: str, ids: np.ndarray) -> np.ndarray:
        return self._current.lexical_scores(query, ids)

    def passages(
        self, ids: np.ndarray | list[int], scores: np.ndarray | list[float]
    ) -> list[Passage]:
        return self._current.passages(ids, scores)

    def document_passages(self, key: str, *, tenant: str | None = None) -> list[Passage]:
        """Every chunk of the documents ``key`` names (a JSONL ``id``, a doc id, a source or a
        file path), in text order; empty when the index holds none."""
        return self._current.document_passages(key, tenant=tenant)

    def tenants(self) -> dict[str, int]:
        """Chunks per tenant (``(none)``: chunks indexed without a tenant)."""
        return self.db.tenants()

    def tenant_passages(self, tenant: str | None) -> list[Passage]:
        """Every chunk a query of ``tenant`` may see (None: every chunk), in the order they were
        indexed; what ``ragtune synth`` and the ``lm`` training objective read."""
        return self._current.tenant_passages(tenant)


def _manifest_signature(folder: Path) -> tuple[int, int, int] | None:
    """What changes when a writer renames a new manifest into place (None while missing)."""
    try:
        stat = os.stat(folder / MANIFEST)
    except OSError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


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
            spec = vector_spec_from_dict(self.base.vectors)
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
                current / _FAISS, vector_spec_from_dict(self.base.vectors)
            )
        self.db.begin()

    @property
    def manifest(self) -> Manifest:
        """The manifest this update started from (or will create)."""
        return self._new or self.base

    def check_embedder(self, embedder: _Named) -> None:
        """Refuse to mix vectors of two embedders in one index (by name; the dimension is
        checked when vectors are added, so a no-op update never loads the model)."""
        refuse_other_embedder(str(self.path), self.manifest.embedder, embedder.name)

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
