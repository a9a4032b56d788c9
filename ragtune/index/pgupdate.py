"""One all-or-nothing change to a pgvector index: a single PostgreSQL transaction.

:class:`PgIndexUpdate` offers what :class:`~ragtune.index.store.IndexUpdate` offers the
indexing functions (``db``, ``vectors``, ``manifest``, ``check_embedder``, ``commit``), so
``build_index``, ``add_to_index``, ``remove_from_index`` and ``sync_index`` run unchanged on
either store. Everything happens in one transaction: a process killed at any point, or an
error, leaves the server to roll it back, and readers keep seeing the previous state. A build
drops and recreates the schema inside that transaction (PostgreSQL's DDL is transactional);
readers of the old tables wait for its commit rather than seeing a half-built index.

One writer at a time per index: a second one is refused (a transaction-scoped advisory lock),
as the folder store refuses a second writer.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

import numpy as np

from ragtune.errors import EmbedderMismatchError, IndexCorruptError, IndexError_
from ragtune.index.chunkdb import SourceRecord, searchable_text
from ragtune.index.lexical import LexicalSpec
from ragtune.index.manifest import Manifest, refuse_other_embedder
from ragtune.index.pgschema import (
    PgStoreSettings,
    connect,
    create_tables,
    create_vector_index,
    read_manifest,
    text_search_config,
    write_manifest,
)
from ragtune.index.store import fault_point
from ragtune.index.units import MAX_UNITS, chunk_rows
from ragtune.types import Chunk

__all__ = ["PgChunkWriter", "PgIndexUpdate", "PgVectorWriter"]

_SOURCE_COLUMNS = "source, tenant, file, doc_id, modified_at, size"


class PgIndexUpdate:
    """One transaction on a pgvector index (a context manager).

    >>> with PgIndexUpdate(settings) as update:   # doctest: +SKIP
    ...     ids = update.db.add_document(...)
    ...     update.vectors.add(vector_ids, vectors)
    ...     update.commit()

    Leaving the block without :meth:`commit` (or by an exception) rolls everything back.
    ``new`` replaces the index with an empty one built for that manifest (a build).
    """

    def __init__(self, settings: PgStoreSettings, *, new: Manifest | None = None) -> None:
        self.settings = settings
        self.path = settings  # what reports and messages name
        self._new = new
        self.committed = False

    def __enter__(self) -> PgIndexUpdate:
        self._conn = connect(self.settings)
        try:
            self._begin()
        except BaseException:
            self._end()
            raise
        return self

    def _begin(self) -> None:
        conn = self._conn
        locked = conn.execute(
            "SELECT pg_try_advisory_xact_lock(hashtext(%s))", (f"ragtune:{self.settings.schema}",)
        ).fetchone()[0]
        if not locked:
            raise IndexError_(
                f"{self.settings} is being changed by another process; wait for it to finish"
            )
        if self._new is None:
            self.base, text_search = read_manifest(conn, self.settings)
            self._generation = _generation_number(self.base.generation)
        else:
            previous: Manifest | None = None
            with contextlib.suppress(IndexError_):  # a missing or foreign-version index
                previous, _ = read_manifest(conn, self.settings)
            if previous is not None:
                self._new = self._new.evolve(created_at=previous.created_at)
            self._generation = _generation_number(previous.generation) if previous else 0
            create_tables(conn, self.settings.schema, self._new)
            self.base = self._new
            text_search = text_search_config(LexicalSpec.from_dict(self._new.lexical))
        with_title = bool(self.base.chunking.get("title_in_text", False))
        self.db = PgChunkWriter(conn, text_search=text_search, with_title=with_title)
        self.vectors = PgVectorWriter(conn, dimension=self.base.embedder.dimension)

    @property
    def manifest(self) -> Manifest:
        """The manifest this update started from (or will create)."""
        return self._new or self.base

    def check_embedder(self, embedder: Any) -> None:
        """Refuse to mix vectors of two embedders in one index (by name)."""
        refuse_other_embedder(str(self.settings), self.manifest.embedder, embedder.name)

    def commit(self) -> Manifest:
        """Finish the transaction; the new state becomes visible at once. Returns the manifest."""
        fault_point("before-write")
        if self._new is not None:
            create_vector_index(self._conn, self._new)
        counts = self.db.counts()
        expected = self.db.vector_total()
        have = len(self.vectors)
        if have != expected:
            raise IndexCorruptError(
                f"internal error: {have} vectors where the chunks have {expected}; nothing was "
                "changed"
            )
        counts["vectors"] = expected
        now = time.time()
        manifest = self.manifest.evolve(
            generation=f"pg-{self._generation + 1:06d}",
            created_at=self.manifest.created_at or now,
            updated_at=now,
            counts=counts,
            tenants=self.db.tenants(),
            pii=self.db.pii_totals(),
        )
        write_manifest(self._conn, manifest)
        fault_point("before-commit")
        self._conn.commit()  # the commit point
        self.committed = True
        fault_point("after-commit")
        return manifest

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._end()

    def _end(self) -> None:
        with contextlib.suppress(Exception):
            if not self.committed:
                self._conn.rollback()
        with contextlib.suppress(Exception):
            self._conn.close()


def _generation_number(name: str) -> int:
    digits = name.rsplit("-", 1)[-1]
    return int(digits) if digits.isdigit() else 0


class PgChunkWriter:
    """Documents, sources and chunks of a pgvector index, changed inside one transaction.

    The same methods as :class:`~ragtune.index.chunkdb.ChunkDB` offers the indexing functions.
    """

    def __init__(self, conn: Any, *, text_search: str, with_title: bool) -> None:
        self._conn = conn
        self._text_search = text_search
        self._with_title = with_title

    def has_document(self, doc_id: str) -> bool:
        row = self._conn.execute("SELECT 1 FROM documents WHERE doc_id = %s", (doc_id,))
        return row.fetchone() is not None

    def add_document(
        self,
        *,
        doc_id: str,
        tenant: str | None,
        sha256: str,
        title: str,
        metadata: Mapping[str, Any],
        ingested_at: float,
        pii: Mapping[str, int],
        chunks: Sequence[Chunk],
        n_vectors: Sequence[int] | None = None,
    ) -> list[int]:
        """Insert a document and its chunks; returns the chunks' new row ids."""
        self._conn.execute(
            "INSERT INTO documents (doc_id, tenant, sha256, title, metadata, ingested_at, pii) "
            "VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s::jsonb)",
            (
                doc_id,
                tenant or "",
                sha256,
                title,
                json.dumps(dict(metadata)),
                ingested_at,
                json.dumps(dict(pii)),
            ),
        )
        counts = n_vectors if n_vectors is not None else [1] * len(chunks)
        rows = [
            (
                c.chunk_id,
                doc_id,
                tenant or "",
                c.ordinal,
                c.start,
                c.end,
                c.title,
                c.text,
                int(n),
                self._text_search,
                searchable_text(c.title, c.text, with_title=self._with_title),
            )
            for c, n in zip(chunks, counts, strict=True)
        ]
        if not rows:
            return []
        ids: list[int] = []
        with self._conn.cursor() as cur:
            cur.executemany(
                'INSERT INTO chunks (chunk_id, doc_id, tenant, ordinal, start, "end", title, '
                "text, n_vectors, terms) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, "
                "to_tsvector(%s::regconfig, %s)) RETURNING id",
                rows,
                returning=True,
            )
            while True:
                ids.append(int(cur.fetchone()[0]))
                if not cur.nextset():
                    break
        return ids

    def link_source(self, record: SourceRecord) -> None:
        self._conn.execute(
            f"INSERT INTO sources ({_SOURCE_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (source, tenant) DO UPDATE SET file = excluded.file, "
            "doc_id = excluded.doc_id, modified_at = excluded.modified_at, size = excluded.size",
            (
                record.source,
                record.tenant or "",
                record.file,
                record.doc_id,
                record.modified_at,
                record.size,
            ),
        )

    def unlink_sources(self, sources: Iterable[tuple[str, str | None]]) -> None:
        """Forget sources; their documents stay until :meth:`delete_orphans`."""
        pairs = [(source, tenant or "") for source, tenant in sources]
        if pairs:
            with self._conn.cursor() as cur:
                cur.executemany("DELETE FROM sources WHERE source = %s AND tenant = %s", pairs)

    def delete_orphans(self) -> tuple[int, list[tuple[int, int]]]:
        """Delete documents no source holds any more: (documents removed, their chunks)."""
        orphans = [
            r[0]
            for r in self._conn.execute(
                "SELECT doc_id FROM documents d WHERE NOT EXISTS "
                "(SELECT 1 FROM sources s WHERE s.doc_id = d.doc_id)"
            )
        ]
        chunks: list[tuple[int, int]] = []
        for doc_id in orphans:
            chunks += self.delete_document(doc_id)
        return len(orphans), chunks

    def delete_document(self, doc_id: str) -> list[tuple[int, int]]:
        """Delete a document with its sources, chunks and vectors; returns its chunks as
        (row id, number of vectors)."""
        ids = [
            (int(r[0]), int(r[1]))
            for r in self._conn.execute(
                "SELECT id, n_vectors FROM chunks WHERE doc_id = %s", (doc_id,)
            )
        ]
        self._conn.execute("DELETE FROM documents WHERE doc_id = %s", (doc_id,))
        return ids

    def sources(self, *, tenant: str | None = None, under: str | None = None) -> list[SourceRecord]:
        """Sources of one tenant, optionally only files below a folder."""
        if under is None:
            return self._records("tenant = %s", (tenant or "",))
        folder = under.rstrip("/")
        # Paths below "a/b" sort between "a/b/" and "a/b0" ("0" follows "/"; file is COLLATE "C").
        return self._records(
            "tenant = %s AND (file = %s OR (file >= %s AND file < %s))",
            (tenant or "", folder, folder + "/", folder + "0"),
        )

    def sources_of_file(self, file: str, *, tenant: str | None = None) -> list[SourceRecord]:
        return self._records("file = %s AND tenant = %s", (file, tenant or ""))

    def sources_named(self, key: str, *, tenant: str | None = None) -> list[SourceRecord]:
        """Sources a user names by their source (``file#L3``) or file path."""
        return self._records("tenant = %s AND (source = %s OR file = %s)", (tenant or "", key, key))

    def documents_named(self, key: str, *, tenant: str | None = None) -> list[str]:
        """Documents a user names by their doc id or their own id (JSONL ``id``)."""
        rows = self._conn.execute(
            "SELECT doc_id FROM documents WHERE tenant = %s AND "
            "(doc_id = %s OR metadata->>'id' = %s)",
            (tenant or "", key, key),
        )
        return sorted(r[0] for r in rows)

    def _records(self, where: str, args: tuple[Any, ...]) -> list[SourceRecord]:
        rows = self._conn.execute(f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE {where}", args)
        return [SourceRecord(r[0], r[1] or None, r[2], r[3], r[4], r[5]) for r in rows]

    def counts(self) -> dict[str, int]:
        row = self._conn.execute(
            "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM sources), "
            "(SELECT count(*) FROM chunks)"
        ).fetchone()
        return {"documents": int(row[0]), "sources": int(row[1]), "chunks": int(row[2])}

    def vector_total(self) -> int:
        """How many vectors the chunks say they have."""
        return int(
            self._conn.execute("SELECT coalesce(sum(n_vectors), 0) FROM chunks").fetchone()[0]
        )

    def tenants(self) -> dict[str, int]:
        rows = self._conn.execute("SELECT tenant, count(*) FROM chunks GROUP BY tenant")
        return {(r[0] or "(none)"): int(r[1]) for r in rows}

    def pii_totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for (found,) in self._conn.execute("SELECT pii FROM documents"):
            for kind, n in found.items():
                totals[kind] = totals.get(kind, 0) + int(n)
        return totals


class PgVectorWriter:
    """The vectors table of a pgvector index, changed inside one transaction.

    Takes the vector ids of :mod:`ragtune.index.units` (chunk row and sentence number packed in
    one integer), as :class:`~ragtune.index.vectors.VectorIndex` does.
    """

    def __init__(self, conn: Any, *, dimension: int) -> None:
        self._conn = conn
        self.dimension = dimension

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Store ``vectors`` (n × dimension, unit length) under vector ``ids`` (n,)."""
        if len(ids) == 0:
            return
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise EmbedderMismatchError(
                f"vectors of shape {vectors.shape} do not fit this index's {self.dimension} "
                "dimensions; use the index's embedder, or rebuild the index"
            )
        ids = np.asarray(ids, dtype=np.int64)
        rows = chunk_rows(ids)
        units = ids & MAX_UNITS
        with self._conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO vectors (chunk, unit, tenant, embedding) "
                "SELECT %s, %s, tenant, %s FROM chunks WHERE id = %s",
                [
                    (int(r), int(u), v, int(r))
                    for r, u, v in zip(rows.tolist(), units.tolist(), vectors, strict=True)
                ],
            )

    def remove(self, ids: Iterable[int]) -> None:
        """Drop these vector ids (deleting a chunk drops its vectors already)."""
        rows = sorted({int(i) for i in chunk_rows(np.asarray(list(ids), dtype=np.int64))})
        if rows:
            self._conn.execute("DELETE FROM vectors WHERE chunk = ANY(%s::bigint[])", (rows,))

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM vectors").fetchone()[0])
