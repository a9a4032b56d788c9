"""Where an index lives, and opening it wherever that is: a folder, or a PostgreSQL schema.

The one place that tells the two stores apart; callers hold an :data:`IndexLocation` parsed at
the edge (config, CLI) and pass it on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeAlias

from ragtune.index.manifest import Manifest
from ragtune.index.pgschema import PgStoreSettings
from ragtune.index.pgstore import PgIndexStore
from ragtune.index.store import IndexStore

__all__ = ["IndexLocation", "open_index", "read_index_manifest"]

IndexLocation: TypeAlias = str | Path | PgStoreSettings
"""A folder (a path), or a schema of a PostgreSQL database with pgvector."""


def open_index(
    location: IndexLocation, *, embedder: str | None = None
) -> IndexStore | PgIndexStore:
    """Open an index for search; ``embedder`` (a model name) must match its own."""
    if isinstance(location, PgStoreSettings):
        return PgIndexStore.open(location, embedder=embedder)
    return IndexStore.open(location, embedder=embedder)


def read_index_manifest(location: IndexLocation) -> Manifest:
    """The manifest of the index at ``location`` (what it was built with, what it holds)."""
    if isinstance(location, PgStoreSettings):
        with PgIndexStore.open(location) as store:
            return store.manifest
    return Manifest.read(Path(location))
