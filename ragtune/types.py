"""The values that travel between stages. All frozen: a stage never edits what it was given."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Chunk", "Document", "Passage", "Provenance", "SkippedSource"]


@dataclass(frozen=True)
class Provenance:
    """Where a chunk came from: enough to find, re-check and audit the original."""

    source: str
    """Path of the source file (for JSONL, the file plus ``#line``)."""
    sha256: str
    """Hash of the document text as read, before personal data was scrubbed."""
    modified_at: float | None
    """The source file's modification time (POSIX seconds), when it is a file."""
    ingested_at: float
    """When this document entered the index (POSIX seconds)."""
    tenant: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Document:
    """One document as a loader read it.

    ``text`` is the text the citations point into: the file's characters for .txt and .md,
    the extracted text for .html and .pdf, the ``text`` field for a JSONL line.
    """

    doc_id: str
    text: str
    source: str
    title: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    modified_at: float | None = None


@dataclass(frozen=True)
class Chunk:
    """A piece of a document, the unit that is embedded, indexed and cited.

    ``start`` and ``end`` are character offsets into the document's source text
    (:attr:`Document.text` before scrubbing), so ``document.text[start:end]`` is the span a
    citation points at. ``text`` is that span with personal data replaced by placeholders
    when scrubbing is on.
    """

    chunk_id: str
    doc_id: str
    ordinal: int
    text: str
    start: int
    end: int
    title: str = ""


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk: what a retriever returns and a generator reads."""

    chunk_id: str
    doc_id: str
    text: str
    score: float
    rank: int
    """1-based position in the result list."""
    source: str
    start: int
    end: int
    title: str = ""
    provenance: Provenance | None = None


@dataclass(frozen=True)
class SkippedSource:
    """A source an ingest run did not take, and why."""

    source: str
    reason: str
