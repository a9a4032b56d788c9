"""Building and updating indexes: sources → documents → chunks → vectors → an index folder.

This module joins :mod:`ragtune.ingest` and :mod:`ragtune.index`; neither knows the other.
Every function is one all-or-nothing update: on any error the index is left as it was. An
index is a folder (a path) or a schema in PostgreSQL (:class:`PgStoreSettings`); the same
functions write both.

Example::

    embedder = SentenceTransformerEmbedder()
    report = build_index(["docs/"], "indexes/handbook", embedder=embedder)
    report = sync_index("docs/", "indexes/handbook", embedder=embedder)
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeAlias

import numpy as np

from ragtune.errors import EmptySourceError, IndexError_, IngestError
from ragtune.index.chunkdb import SourceRecord
from ragtune.index.embedders import Embedder
from ragtune.index.lexical import LexicalSpec
from ragtune.index.location import IndexLocation
from ragtune.index.manifest import EmbedderInfo, Manifest
from ragtune.index.pgschema import PgStoreSettings
from ragtune.index.pgupdate import PgIndexUpdate
from ragtune.index.store import IndexUpdate, fault_point
from ragtune.index.units import vector_ids
from ragtune.index.vectors import FlatSpec, VectorIndexSpec, vector_spec_to_dict
from ragtune.ingest import canonical_path, canonical_source, discover
from ragtune.ingest.chunking import ChunkingSettings, IngestSettings
from ragtune.reading import FileRead, ReadDocument, ReadPlan, read_file
from ragtune.types import SkippedSource

__all__ = [
    "BuildSettings",
    "IndexLocation",
    "NullProgress",
    "Progress",
    "UpdateReport",
    "add_to_index",
    "build_index",
    "remove_from_index",
    "sync_index",
]


StoreUpdate: TypeAlias = IndexUpdate | PgIndexUpdate


def _open_update(index: IndexLocation, *, new: Manifest | None = None) -> StoreUpdate:
    if isinstance(index, PgStoreSettings):
        return PgIndexUpdate(index, new=new)
    return IndexUpdate(index, new=new)


def _where(index: IndexLocation) -> str | Path:
    return index if isinstance(index, str | Path) else str(index)


class Progress(Protocol):
    """Receives progress of an indexing run (the CLI draws bars from it)."""

    def phase(self, name: str, total: int | None) -> None:
        """A new phase starts: ``name`` with ``total`` steps (None if unknown)."""
        ...

    def advance(self, n: int = 1) -> None: ...


class IngestEngine(Protocol):
    """Reads, chunks and embeds files into an open update: :data:`LOCAL` in this process, or
    :class:`ragtune.indexing_ray.RayDataEngine` as Ray Data stages."""

    def ingest(
        self,
        update: StoreUpdate,
        files: Sequence[Path],
        embedder: Embedder,
        tenant: str | None,
        run: RunTally,
        progress: Progress,
    ) -> None: ...


class NullProgress:
    """Reports nothing."""

    def phase(self, name: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass


@dataclass(frozen=True)
class BuildSettings(ChunkingSettings, IngestSettings):
    """What a new index fixes for its lifetime (all recorded in the manifest): the chunking
    and ingest settings, the vector index and the BM25 index."""

    vectors: VectorIndexSpec = field(default_factory=FlatSpec)
    lexical: LexicalSpec = field(default_factory=LexicalSpec)


@dataclass(frozen=True)
class UpdateReport:
    """What one build or update did."""

    index: str
    files: int
    documents_added: int
    documents_unchanged: int
    duplicates: int
    """Sources whose text was already stored (in this tenant) and were linked, not re-embedded."""
    documents_removed: int
    chunks_added: int
    chunks_removed: int
    skipped: tuple[SkippedSource, ...]
    pii: dict[str, int]
    seconds: float
    embed_seconds: float
    manifest: Manifest | None
    sources_removed: int = 0
    """Sources (files, JSONL lines) a remove unlinked; their documents go with their last one."""

    @property
    def changed(self) -> bool:
        return bool(self.documents_added or self.documents_removed or self.chunks_removed)


@dataclass
class RunTally:
    """Mutable tallies of one update, turned into an :class:`UpdateReport` at the end."""

    started: float = field(default_factory=time.perf_counter)
    files: int = 0
    added: int = 0
    unchanged: int = 0
    duplicates: int = 0
    removed: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    embed_seconds: float = 0.0
    sources_removed: int = 0
    skipped: list[SkippedSource] = field(default_factory=list)
    pii: dict[str, int] = field(default_factory=dict)

    def report(self, index: IndexLocation, manifest: Manifest | None) -> UpdateReport:
        return UpdateReport(
            index=str(index),
            files=self.files,
            documents_added=self.added,
            documents_unchanged=self.unchanged,
            duplicates=self.duplicates,
            documents_removed=self.removed,
            chunks_added=self.chunks_added,
            chunks_removed=self.chunks_removed,
            skipped=tuple(self.skipped),
            pii=dict(self.pii),
            seconds=time.perf_counter() - self.started,
            embed_seconds=self.embed_seconds,
            manifest=manifest,
            sources_removed=self.sources_removed,
        )


class _LocalEngine:
    """Reads, chunks and embeds in this process (the default engine)."""

    def ingest(
        self,
        update: StoreUpdate,
        files: Sequence[Path],
        embedder: Embedder,
        tenant: str | None,
        run: RunTally,
        progress: Progress,
    ) -> None:
        _ingest_files(update, files, embedder, tenant, run, progress)


LOCAL: IngestEngine = _LocalEngine()
"""The default engine: this process."""


def build_index(
    sources: Sequence[str | Path],
    out: IndexLocation,
    *,
    embedder: Embedder,
    settings: BuildSettings | None = None,
    tenant: str | None = None,
    strict: bool = False,
    progress: Progress | None = None,
    engine: IngestEngine = LOCAL,
) -> UpdateReport:
    """Build a new index at ``out`` from files, folders and globs (replacing one already there).

    ``engine`` reads, chunks and embeds: :data:`LOCAL` in this process; a
    :class:`ragtune.indexing_ray.RayDataEngine` runs those steps as Ray Data stages and
    writes the same index. Raises :class:`EmptySourceError` when nothing can be indexed;
    ``strict`` turns any skipped source into an error. The previous index at ``out``, if any,
    stays until the new one is complete.
    """
    settings = settings or BuildSettings()
    out = out if isinstance(out, PgStoreSettings) else Path(out)
    _check_chunk_size(embedder, settings.chunk_tokens)
    manifest = Manifest(
        embedder=_embedder_info(embedder),
        chunking={
            "chunk_tokens": settings.chunk_tokens,
            "overlap_tokens": settings.overlap_tokens,
            "title_in_text": settings.title_in_text,
            "dense_units": "sentence" if settings.sentence_vectors else "chunk",
            "splitter": "langchain RecursiveCharacterTextSplitter",
        },
        ingest={"scrub_pii": settings.scrub_pii},
        vectors=vector_spec_to_dict(settings.vectors),
        lexical=settings.lexical.to_dict(),
    )
    created = isinstance(out, Path) and not out.exists()
    discovery = discover(sources)  # a missing path fails here, before anything is written
    run = RunTally(skipped=list(discovery.skipped))
    try:
        with _open_update(out, new=manifest) as update:
            engine.ingest(
                update, discovery.files, embedder, tenant, run, progress or NullProgress()
            )
            _finish(update, run, strict=strict, require_documents=True)
            return run.report(out, update.commit())
    except BaseException:
        if created and isinstance(out, Path):
            _remove_if_empty(out)
        raise


def add_to_index(
    sources: Sequence[str | Path],
    index: IndexLocation,
    *,
    embedder: Embedder,
    tenant: str | None = None,
    strict: bool = False,
    progress: Progress | None = None,
) -> UpdateReport:
    """Add (or refresh) the documents of these sources; others are untouched."""
    discovery = discover(sources)
    run = RunTally(skipped=list(discovery.skipped))
    with _open_update(index) as update:
        update.check_embedder(embedder)
        _ingest_files(update, discovery.files, embedder, tenant, run, progress or NullProgress())
        _finish(update, run, strict=strict, require_documents=False)
        return run.report(index, update.commit())


def sync_index(
    folder: str | Path,
    index: IndexLocation,
    *,
    embedder: Embedder,
    tenant: str | None = None,
    strict: bool = False,
    progress: Progress | None = None,
) -> UpdateReport:
    """Make the index match ``folder``: add new and changed files, remove deleted ones.

    Files whose size and modification time are unchanged are not read again.
    """
    root = canonical_path(folder)
    if not root.is_dir():
        raise IngestError(
            f"{folder} is not a folder; `index sync` takes the folder the index mirrors"
        )
    discovery = discover([root])
    run = RunTally(skipped=list(discovery.skipped))
    with _open_update(index) as update:
        update.check_embedder(embedder)
        known = _known_files(update, folder, root, tenant)
        to_read = []
        legacy: list[tuple[str, str | None]] = []
        for path in discovery.files:
            records = known.pop(str(path), None)
            stat = path.stat()
            if records and all(
                r.size == stat.st_size and r.modified_at == stat.st_mtime for r in records
            ):
                run.unchanged += len(records)
                run.files += 1
                continue
            to_read.append(path)
            # Read again, it is linked under its canonical name; drop any older spelling.
            legacy += [(r.source, r.tenant) for r in records or [] if r.file != str(path)]
        # Files still in `known` are gone from the folder.
        gone = [(r.source, r.tenant) for records in known.values() for r in records]
        _ingest_files(
            update,
            to_read,
            embedder,
            tenant,
            run,
            progress or NullProgress(),
            extra_unlinks=gone + legacy,
        )
        _finish(update, run, strict=strict, require_documents=False)
        # Nothing to read and nothing gone: keep the current generation as it is.
        manifest = update.commit() if (to_read or gone) else None
        return run.report(index, manifest)


def _known_files(
    update: StoreUpdate, folder: str | Path, root: Path, tenant: str | None
) -> dict[str, list[SourceRecord]]:
    """The index's sources below ``root``, keyed by their file's canonical path.

    Indexes written before paths were canonical hold the folder as it was named (through a
    symlink, say): those records are found under that name too, and matched by what it
    resolves to.
    """
    records = update.db.sources(tenant=tenant, under=str(root))
    named = Path(os.path.abspath(os.path.expanduser(folder)))
    if named != root:
        records += update.db.sources(tenant=tenant, under=str(named))
    known: dict[str, list[SourceRecord]] = {}
    for record in records:
        known.setdefault(str(canonical_path(record.file)), []).append(record)
    return known


def remove_from_index(
    keys: Sequence[str], index: IndexLocation, *, tenant: str | None = None
) -> UpdateReport:
    """Remove sources by file path or source (``file#L3``), or documents by doc id or JSONL ``id``.

    A path removes only that source: a document stored once for several identical files
    stays while another of them still holds it. Every key must match something, or nothing
    is removed.
    """
    run = RunTally()
    with _open_update(index) as update:
        sources: dict[tuple[str, str | None], None] = {}
        doc_ids: set[str] = set()
        missing = []
        for key in keys:
            named = update.db.sources_named(key, tenant=tenant)
            if not named and key != canonical_source(key):
                named = update.db.sources_named(canonical_source(key), tenant=tenant)
            found = update.db.documents_named(key, tenant=tenant)
            if not named and not found:
                missing.append(key)
            sources.update(((r.source, r.tenant), None) for r in named)
            doc_ids.update(found)
        if missing:
            where = f" for tenant {tenant!r}" if tenant else ""
            tenants = sorted(t for t in update.db.tenants() if t != "(none)")
            hint = (
                f" (a tenant's documents are named with --tenant; this index holds tenants "
                f"{', '.join(tenants)})"
                if tenant is None and tenants
                else ""
            )
            raise IndexError_(
                f"nothing in {_where(index)}{where} matches {', '.join(map(repr, missing))}; "
                f"nothing was removed{hint}. See `ragtune index info` for what is there"
            )
        # A path names a source: the document goes only with its last source, so an
        # identical file elsewhere stays searchable. A doc id or a user's id names the
        # document itself.
        removed_ids: list[tuple[int, int]] = []
        for doc_id in sorted(doc_ids):
            removed_ids += update.db.delete_document(doc_id)
        update.db.unlink_sources(sources)
        n_orphans, orphan_ids = update.db.delete_orphans()
        removed_ids += orphan_ids
        update.vectors.remove(_vector_ids_of(removed_ids))
        run.removed, run.chunks_removed = len(doc_ids) + n_orphans, len(removed_ids)
        run.sources_removed = len(sources)
        return run.report(index, update.commit())


# ---- the shared core ---------------------------------------------------------------------


@dataclass
class Admitted:
    """What a run adds: new documents (in reading order), the sources to link and unlink."""

    pending: dict[str, ReadDocument] = field(default_factory=dict)
    links: list[SourceRecord] = field(default_factory=list)
    stale: list[tuple[str, str | None]] = field(default_factory=list)


def _ingest_files(
    update: StoreUpdate,
    files: Iterable[Path],
    embedder: Embedder,
    tenant: str | None,
    run: RunTally,
    progress: Progress,
    *,
    extra_unlinks: Sequence[tuple[str, str | None]] = (),
) -> None:
    """Read, chunk, embed and store ``files``; replaces what the index had for them."""
    files = list(files)
    if not files and not extra_unlinks:
        return  # nothing to read: do not even load the model
    plan = ReadPlan.of(update.manifest)
    chunker = plan.chunker(embedder) if files else None
    admitted = Admitted(stale=list(extra_unlinks))
    progress.phase("reading", len(files))
    for path in files:
        assert chunker is not None
        read = read_file(
            path,
            plan,
            chunker,
            tenant=tenant,
            known=lambda doc_id: doc_id in admitted.pending or update.db.has_document(doc_id),
        )
        admit(update, read, tenant, run, admitted)
        progress.advance(1)

    units = [plan.units(c) for item in admitted.pending.values() for c in item.chunks or ()]
    texts = [text for unit_texts in units for text in unit_texts]
    # Overlapping chunks share sentences: embed each distinct text once.
    distinct = list(dict.fromkeys(texts))
    progress.phase("embedding", len(distinct))
    started = time.perf_counter()
    vectors = embedder.embed(distinct, progress=progress.advance) if texts else np.zeros((0, 1))
    if len(distinct) < len(texts):
        position = {text: i for i, text in enumerate(distinct)}
        vectors = vectors[[position[text] for text in texts]]
    run.embed_seconds += time.perf_counter() - started
    store(update, admitted, [len(u) for u in units], vectors, tenant, run)


def admit(
    update: StoreUpdate, read: FileRead, tenant: str | None, run: RunTally, admitted: Admitted
) -> None:
    """Take one file's documents: new ones into ``admitted.pending``, one already stored (or
    read earlier in this run) counted as a duplicate and only linked; sources the file no
    longer holds become stale."""
    run.skipped += read.skipped
    run.files += 1
    new_sources = set()
    for item in read.documents:
        doc = item.doc
        new_sources.add(doc.source)
        record = SourceRecord(
            doc.source, tenant, str(read.path), item.doc_id, read.modified_at, read.size
        )
        if item.doc_id in admitted.pending or update.db.has_document(item.doc_id):
            run.duplicates += 1
            admitted.links.append(record)
            continue
        if not item.chunks:
            run.skipped.append(SkippedSource(doc.source, "no text to index after extraction"))
            continue
        admitted.links.append(record)
        admitted.pending[item.doc_id] = item
    # Lines of a JSONL file that are no longer in it, or a file that now fails to load.
    admitted.stale += [
        (r.source, r.tenant)
        for r in update.db.sources_of_file(str(read.path), tenant=tenant)
        if r.source not in new_sources
    ]


def store(
    update: StoreUpdate,
    admitted: Admitted,
    counts: Sequence[int],
    vectors: np.ndarray,
    tenant: str | None,
    run: RunTally,
) -> None:
    """Write the admitted documents with their ``vectors`` (``counts[i]`` rows for the i-th
    chunk, in reading order), link and unlink sources, and drop documents left without one."""
    fault_point("after-embed")
    now = time.time()
    all_ids: list[int] = []
    all_counts: list[int] = []
    chunk_counts = iter(counts)
    for item in admitted.pending.values():
        chunks = item.chunks or ()
        per_chunk = [next(chunk_counts) for _ in chunks]
        ids = update.db.add_document(
            doc_id=item.doc_id,
            tenant=tenant,
            sha256=item.sha256,
            title=item.doc.title,
            metadata=item.doc.metadata,
            ingested_at=now,
            pii=dict(item.pii),
            chunks=chunks,
            n_vectors=per_chunk,
        )
        all_ids += ids
        all_counts += per_chunk
        for kind, n in item.pii.items():
            run.pii[kind] = run.pii.get(kind, 0) + n
    if all_ids:
        update.vectors.add(vector_ids(np.asarray(all_ids), np.asarray(all_counts)), vectors)
    for record in admitted.links:
        update.db.link_source(record)
    update.db.unlink_sources(admitted.stale)
    n_removed, removed_ids = update.db.delete_orphans()
    update.vectors.remove(_vector_ids_of(removed_ids))
    run.added += len(admitted.pending)
    run.chunks_added += len(all_ids)
    run.chunks_removed += len(removed_ids)
    run.removed += n_removed


def _vector_ids_of(chunks: Sequence[tuple[int, int]]) -> list[int]:
    """FAISS ids of deleted chunks given as (row id, number of vectors)."""
    if not chunks:
        return []
    rows, counts = zip(*chunks, strict=True)
    return [int(i) for i in vector_ids(np.asarray(rows), np.asarray(counts))]


def _finish(update: StoreUpdate, run: RunTally, *, strict: bool, require_documents: bool) -> None:
    if strict and run.skipped:
        listed = "\n".join(f"  {s.source}: {s.reason}" for s in run.skipped)
        raise IngestError(f"{len(run.skipped)} source(s) could not be read (--strict):\n{listed}")
    if require_documents and update.db.counts()["chunks"] == 0:
        listed = "\n".join(f"  {s.source}: {s.reason}" for s in run.skipped[:20])
        raise EmptySourceError(
            "nothing to index: no readable document in the sources"
            + (f"; skipped:\n{listed}" if listed else "")
        )


def _embedder_info(embedder: Embedder) -> EmbedderInfo:
    return EmbedderInfo(
        name=embedder.name,
        dimension=embedder.dimension,
        model=str(getattr(embedder, "model", embedder.name)),
        normalized=True,
        backend=str(getattr(embedder, "backend", "unknown")),
        max_tokens=getattr(embedder, "max_tokens", None),
    )


def _check_chunk_size(embedder: Embedder, chunk_tokens: int) -> None:
    limit = getattr(embedder, "max_tokens", None)
    if limit is not None and chunk_tokens > limit - 2:
        raise IndexError_(
            f"chunk_tokens ({chunk_tokens}) exceeds what {embedder.name} reads ({limit} tokens "
            f"with 2 special tokens); set chunking.chunk_tokens to at most {limit - 2}"
        )


def _remove_if_empty(folder: Path) -> None:
    try:
        leftovers = [p for p in folder.iterdir() if p.name != ".lock"]
        if not leftovers:
            (folder / ".lock").unlink(missing_ok=True)
            folder.rmdir()
    except OSError:
        pass
