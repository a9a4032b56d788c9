"""Reading one file into chunked documents: the part of an index build that needs no index.

Both build engines call :func:`read_file`: the local one in its own process, the Ray one in
Ray Data workers (:mod:`ragtune.indexing_ray`). What it returns is plain, picklable data, and
:class:`ReadPlan` holds everything a worker needs to read exactly as the index says (chunk
sizes, scrubbing, title in the dense text, sentence vectors), so both engines write the same
chunks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragtune.index.manifest import Manifest
from ragtune.index.units import dense_units
from ragtune.ingest import Chunker, load, token_counter_for
from ragtune.types import Chunk, Document, SkippedSource

__all__ = ["FileRead", "ReadDocument", "ReadPlan", "doc_id_of", "read_file"]


@dataclass(frozen=True)
class ReadPlan:
    """How an index reads files (from its manifest): chunk sizes, scrubbing, dense units."""

    chunk_tokens: int
    overlap_tokens: int
    scrub_pii: bool
    title_in_text: bool
    sentence_vectors: bool

    @classmethod
    def of(cls, manifest: Manifest) -> ReadPlan:
        return cls(
            chunk_tokens=int(manifest.chunking["chunk_tokens"]),
            overlap_tokens=int(manifest.chunking["overlap_tokens"]),
            scrub_pii=bool(manifest.ingest.get("scrub_pii", True)),
            title_in_text=bool(manifest.chunking.get("title_in_text", False)),
            sentence_vectors=manifest.chunking.get("dense_units", "chunk") == "sentence",
        )

    def chunker(self, embedder: Any) -> Chunker:
        """A chunker counting tokens the way ``embedder`` reads them."""
        tokenizer = getattr(embedder, "tokenizer", None)
        counter = token_counter_for(tokenizer) if tokenizer is not None else embedder.count_tokens
        return Chunker(counter, chunk_tokens=self.chunk_tokens, overlap_tokens=self.overlap_tokens)

    def units(self, chunk: Chunk) -> list[str]:
        """The texts embedded for ``chunk``: the chunk, or each of its sentences."""
        return dense_units(
            chunk.title,
            chunk.text,
            sentences=self.sentence_vectors,
            with_title=self.title_in_text,
        )


@dataclass(frozen=True)
class ReadDocument:
    """One document of a file, with its identity and (unless it was already known) chunks."""

    doc: Document
    doc_id: str
    sha256: str
    chunks: tuple[Chunk, ...] | None
    """None: the index already held this document, so it was not chunked again."""
    pii: Mapping[str, int]


@dataclass(frozen=True)
class FileRead:
    """What reading one file gave: its documents, what was skipped, and its size and time."""

    path: Path
    modified_at: float
    size: int
    documents: tuple[ReadDocument, ...]
    skipped: tuple[SkippedSource, ...]


def read_file(
    path: Path,
    plan: ReadPlan,
    chunker: Chunker,
    *,
    tenant: str | None,
    known: Callable[[str], bool] = lambda doc_id: False,
) -> FileRead:
    """Load ``path``, scrub and chunk each document not ``known`` (by its doc id).

    Never raises for a bad file: it comes back in ``skipped`` with the reason.
    """
    stat = path.stat()
    loaded = load(path)
    documents = []
    for doc in loaded.documents:
        sha = hashlib.sha256(doc.text.encode("utf-8")).hexdigest()
        doc_id = doc_id_of(sha, tenant, doc.metadata)
        if known(doc_id):
            documents.append(ReadDocument(doc, doc_id, sha, None, {}))
            continue
        split = chunker.split(doc, doc_id=doc_id, scrub=plan.scrub_pii)
        documents.append(ReadDocument(doc, doc_id, sha, split.chunks, dict(split.pii_counts)))
    return FileRead(path, stat.st_mtime, stat.st_size, tuple(documents), loaded.skipped)


def doc_id_of(sha256: str, tenant: str | None, metadata: Mapping[str, Any]) -> str:
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
