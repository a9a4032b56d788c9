"""Ingest: read sources into documents, scrub personal data, split into chunks.

- :mod:`~ragtune.ingest.loaders`: :func:`discover` and :func:`load` (txt, md, html, pdf, jsonl)
- :mod:`~ragtune.ingest.pii`: :func:`scrub` personal data, with offsets mapped back
- :mod:`~ragtune.ingest.chunking`: :class:`Chunker`, chunks sized in embedder tokens
"""

from ragtune.ingest.chunking import ChunkedDocument, Chunker, TokenCounter, token_counter_for
from ragtune.ingest.loaders import (
    SUPPORTED_SUFFIXES,
    Discovery,
    LoadResult,
    canonical_path,
    canonical_source,
    discover,
    load,
)
from ragtune.ingest.pii import PII_KINDS, Edit, ScrubResult, scrub

__all__ = [
    "PII_KINDS",
    "SUPPORTED_SUFFIXES",
    "ChunkedDocument",
    "Chunker",
    "Discovery",
    "Edit",
    "LoadResult",
    "ScrubResult",
    "TokenCounter",
    "canonical_path",
    "canonical_source",
    "discover",
    "load",
    "scrub",
    "token_counter_for",
]
