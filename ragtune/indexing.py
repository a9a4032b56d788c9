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

import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeAlias

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
from ragtune.index.units import dense_units, vector_ids
from ragtune.index.vectors import FlatSpec, VectorIndexSpec, vector_spec_to_dict
from ragtune.ingest import (
    Chunker,
    canonical_path,
    canonical_source,
    discover,
    load,
    token_counter_for,
)
from ragtune.ingest.chunking import ChunkingSettings, IngestSettings
from ragtune.types import Chunk, Document, SkippedSource

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


_Update: TypeAlias = IndexUpdate | PgIndexUpdate


def _open_update(index: IndexLocation, *, new: Manifest | None = None) -> _Update:
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
class _Run:
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


def build_index(
    sources: Sequence[str | Path],
    out: IndexLocation,
    *,
    embedder: Embedder,
    settings: BuildSettings | None = None,
    tenant: str | None = None,
    strict: bool = False,
    progress: Progress | None = None,
) -> UpdateReport:
    """Build a new index at ``out`` from files, folders and globs (replacing one already there).

    Raises :class:`EmptySourceError` when nothing can be indexed; ``strict`` turns any skipped
    source into an error. The previous index at ``out``, if any, stays until the new one is
    complete.
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
    run = _Run(skipped=list(discovery.skipped))
    try:
        with _open_update(out, new=manifest) as update:
            _ingest_files(
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
    run = _Run(skipped=list(discovery.skipped))
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
    run = _Run(skipped=list(discovery.skipped))
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
    update: _Update, folder: str | Path, root: Path, tenant: str | None
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
    run = _Run()
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
            raise IndexError_(
                f"nothing in {_where(index)}{where} matches {', '.join(map(repr, missing))}; "
                "nothing was removed. See `ragtune index info` for what is there"
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


@dataclass(frozen=True)
class _Pending:
    doc: Document
    doc_id: str
    sha256: str
    chunks: tuple[Chunk, ...]
    pii: dict[str, int]


def _ingest_files(
    update: _Update,
    files: Iterable[Path],
    embedder: Embedder,
    tenant: str | None,
    run: _Run,
    progress: Progress,
    *,
    extra_unlinks: Sequence[tuple[str, str | None]] = (),
) -> None:
    """Read, chunk, embed and store ``files``; replaces what the index had for them."""
    files = list(files)
    if not files and not extra_unlinks:
        return  # nothing to read: do not even load the model
    settings = update.manifest
    tokenizer = getattr(embedder, "tokenizer", None) if files else None
    chunker = Chunker(
        token_counter_for(tokenizer) if tokenizer is not None else embedder.count_tokens,
        chunk_tokens=int(settings.chunking["chunk_tokens"]),
        overlap_tokens=int(settings.chunking["overlap_tokens"]),
    )
    scrub = bool(settings.ingest.get("scrub_pii", True))
    with_title = bool(settings.chunking.get("title_in_text", False))
    sentences = settings.chunking.get("dense_units", "chunk") == "sentence"

    pending: dict[str, _Pending] = {}
    links: list[SourceRecord] = []
    stale: list[tuple[str, str | None]] = list(extra_unlinks)
    progress.phase("reading", len(files))
    for path in files:
        stat = path.stat()
        loaded = load(path)
        run.skipped += loaded.skipped
        run.files += 1
        new_sources = set()
        for doc in loaded.documents:
            sha = hashlib.sha256(doc.text.encode("utf-8")).hexdigest()
            doc_id = _doc_id(sha, tenant, doc.metadata)
            new_sources.add(doc.source)
            links.append(
                SourceRecord(doc.source, tenant, str(path), doc_id, stat.st_mtime, stat.st_size)
            )
            if doc_id in pending or update.db.has_document(doc_id):
                run.duplicates += 1
                continue
            split = chunker.split(doc, doc_id=doc_id, scrub=scrub)
            if not split.chunks:
                run.skipped.append(SkippedSource(doc.source, "no text to index after extraction"))
                links.pop()
                continue
            pending[doc_id] = _Pending(doc, doc_id, sha, split.chunks, dict(split.pii_counts))
        # Lines of a JSONL file that are no longer in it, or a file that now fails to load.
        stale += [
            (r.source, r.tenant)
            for r in update.db.sources_of_file(str(path), tenant=tenant)
            if r.source not in new_sources
        ]
        progress.advance(1)

    units = {
        c.chunk_id: dense_units(c.title, c.text, sentences=sentences, with_title=with_title)
        for p in pending.values()
        for c in p.chunks
    }
    texts = [text for unit_texts in units.values() for text in unit_texts]
    # Overlapping chunks share sentences: embed each distinct text once.
    distinct = list(dict.fromkeys(texts))
    progress.phase("embedding", len(distinct))
    started = time.perf_counter()
    vectors = embedder.embed(distinct, progress=progress.advance) if texts else np.zeros((0, 1))
    if len(distinct) < len(texts):
        position = {text: i for i, text in enumerate(distinct)}
        vectors = vectors[[position[text] for text in texts]]
    run.embed_seconds += time.perf_counter() - started
    fault_point("after-embed")

    now = time.time()
    all_ids: list[int] = []
    all_counts: list[int] = []
    for item in pending.values():
        counts = [len(units[c.chunk_id]) for c in item.chunks]
        ids = update.db.add_document(
            doc_id=item.doc_id,
            tenant=tenant,
            sha256=item.sha256,
            title=item.doc.title,
            metadata=item.doc.metadata,
            ingested_at=now,
            pii=item.pii,
            chunks=item.chunks,
            n_vectors=counts,
        )
        all_ids += ids
        all_counts += counts
        for kind, n in item.pii.items():
            run.pii[kind] = run.pii.get(kind, 0) + n
    if all_ids:
        update.vectors.add(vector_ids(np.asarray(all_ids), np.asarray(all_counts)), vectors)
    for record in links:
        update.db.link_source(record)
    update.db.unlink_sources(stale)
    n_removed, removed_ids = update.db.delete_orphans()
    update.vectors.remove(_vector_ids_of(removed_ids))
    run.added += len(pending)
    run.chunks_added += len(all_ids)
    run.chunks_removed += len(removed_ids)
    run.removed += n_removed


def _vector_ids_of(chunks: Sequence[tuple[int, int]]) -> list[int]:
    """FAISS ids of deleted chunks given as (row id, number of vectors)."""
    if not chunks:
        return []
    rows, counts = zip(*chunks, strict=True)
    return [int(i) for i in vector_ids(np.asarray(rows), np.asarray(counts))]


def _finish(update: _Update, run: _Run, *, strict: bool, require_documents: bool) -> None:
    if strict and run.skipped:
        listed = "\n".join(f"  {s.source}: {s.reason}" for s in run.skipped)
        raise IngestError(f"{len(run.skipped)} source(s) could not be read (--strict):\n{listed}")
    if require_documents and update.db.counts()["chunks"] == 0:
        listed = "\n".join(f"  {s.source}: {s.reason}" for s in run.skipped[:20])
        raise EmptySourceError(
            "nothing to index: no readable document in the sources"
            + (f"; skipped:\n{listed}" if listed else "")
        )


def _doc_id(sha256: str, tenant: str | None, metadata: Mapping[str, Any]) -> str:
    """Content-addressed: the same text is one document per tenant, never shared across them.

    What a user can name or filter on is part of the identity: two JSONL records with the
    same text but their own ``id`` or metadata stay two documents, so de-duplication never
    loses one of them (files carry no metadata and are de-duplicated by text alone).
    """
    key = sha256 if tenant is None else f"{tenant}\0{sha256}"
    if metadata:
        key += "\0" + json.dumps(dict(metadata), sort_keys=True, default=str)
    if key == sha256:
        return sha256[:16]
    return hashlib.sha256(key.encode()).hexdigest()[:16]


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
