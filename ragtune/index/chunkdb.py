"""The SQLite part of an index: documents, the sources that hold them, and their chunks.

A document is stored once per tenant however many sources hold the same text (``sources``
maps each file, or JSONL line, to its document). Chunk row ids double as FAISS ids and are
never reused (AUTOINCREMENT), so a stale id cannot point at another chunk.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.errors import IndexCorruptError
from ragtune.types import Chunk, Passage, Provenance

__all__ = [
    "PASSAGE_COLUMNS",
    "ChunkDB",
    "SourceRecord",
    "StoredDocument",
    "ranked_passages",
    "searchable_text",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id      TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL DEFAULT '',
    sha256      TEXT NOT NULL,
    title       TEXT NOT NULL DEFAULT '',
    metadata    TEXT NOT NULL DEFAULT '{}',
    ingested_at REAL NOT NULL,
    pii         TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS sources (
    source      TEXT NOT NULL,
    tenant      TEXT NOT NULL DEFAULT '',
    file        TEXT NOT NULL,
    doc_id      TEXT NOT NULL REFERENCES documents(doc_id),
    modified_at REAL,
    size        INTEGER,
    PRIMARY KEY (source, tenant)
);
CREATE INDEX IF NOT EXISTS sources_doc ON sources(doc_id);
CREATE INDEX IF NOT EXISTS sources_file ON sources(file);
CREATE TABLE IF NOT EXISTS chunks (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    chunk_id  TEXT NOT NULL UNIQUE,
    doc_id    TEXT NOT NULL REFERENCES documents(doc_id),
    tenant    TEXT NOT NULL DEFAULT '',
    ordinal   INTEGER NOT NULL,
    start     INTEGER NOT NULL,
    end       INTEGER NOT NULL,
    title     TEXT NOT NULL DEFAULT '',
    text      TEXT NOT NULL,
    n_vectors INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE INDEX IF NOT EXISTS chunks_tenant ON chunks(tenant);
"""


@dataclass(frozen=True)
class SourceRecord:
    """One file (or JSONL line) known to the index."""

    source: str
    tenant: str | None
    file: str
    doc_id: str
    modified_at: float | None
    size: int | None


@dataclass(frozen=True)
class StoredDocument:
    """A document row with the number of chunks and sources it has."""

    doc_id: str
    tenant: str | None
    sha256: str
    title: str
    metadata: Mapping[str, Any]
    ingested_at: float
    n_chunks: int
    sources: tuple[str, ...]


_SOURCE_COLUMNS = "source, tenant, file, doc_id, modified_at, size"
_SOURCES_OF_TENANT = f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE tenant = ?"
_SOURCES_UNDER = f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE tenant = ? AND (file = ? OR (file >= ? AND file < ?))"
_SOURCES_OF_FILE = f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE file = ? AND tenant = ?"
_SOURCES_NAMED = (
    f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE tenant = ? AND (source = ? OR file = ?)"
)
_DOCUMENTS_NAMED = (
    "SELECT doc_id FROM documents WHERE tenant = ? AND "
    "(doc_id = ? OR json_extract(metadata, '$.id') = ?)"
)
_LOOKUPS = {
    "sources_of_file": _SOURCES_OF_FILE,
    "sources_under": _SOURCES_UNDER,
    "sources_named": _SOURCES_NAMED,
}


def _source_record(row: Sequence[Any]) -> SourceRecord:
    return SourceRecord(row[0], _untenant(row[1]), row[2], row[3], row[4], row[5])


def _tenant(value: str | None) -> str:
    return value or ""


def _untenant(value: str) -> str | None:
    return value or None


def _missing_columns(db: sqlite3.Connection) -> list[str]:
    """Columns of :data:`_SCHEMA` that an existing database lacks, as ``table.column``."""
    expected = re.findall(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\n\);", _SCHEMA, re.S)
    missing = []
    for table, body in expected:
        wanted = [line.split()[0] for line in body.strip().splitlines() if line.strip()]
        wanted = [name for name in wanted if name.isidentifier() and name.upper() != "PRIMARY"]
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        missing += [f"{table}.{name}" for name in wanted if name not in have]
    return missing


class ChunkDB:
    """A connection to ``chunks.sqlite``; writes happen inside :meth:`transaction`."""

    def __init__(self, path: Path, *, create: bool = False) -> None:
        if not create and not path.is_file():
            raise IndexCorruptError(
                f"{path} is missing; rebuild the index with `ragtune index build`"
            )
        self.path = path
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA foreign_keys = ON")
            if create:
                self._db.executescript(_SCHEMA)
            else:
                self._db.execute("SELECT count(*) FROM chunks").fetchone()
                missing = _missing_columns(self._db)
        except sqlite3.DatabaseError as exc:
            raise IndexCorruptError(
                f"{path} is not a readable chunk table ({exc}); rebuild the index"
            ) from exc
        if not create and missing:
            self._db.close()
            raise IndexCorruptError(
                f"{path} lacks the columns {', '.join(missing)}: the index was built by an older "
                "ragtune; rebuild it with `ragtune index build`"
            )

    def close(self) -> None:
        self._db.close()

    def begin(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._db.execute("COMMIT")

    # ---- writes -------------------------------------------------------------------------

    def has_document(self, doc_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        return row is not None

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
        """Insert a document and its chunks; returns the chunks' new row ids.

        ``n_vectors`` says how many vectors (sentences) each chunk has in FAISS (default 1).
        """
        self._db.execute(
            "INSERT INTO documents (doc_id, tenant, sha256, title, metadata, ingested_at, pii) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                doc_id,
                _tenant(tenant),
                sha256,
                title,
                json.dumps(dict(metadata)),
                ingested_at,
                json.dumps(dict(pii)),
            ),
        )
        ids = []
        counts = n_vectors if n_vectors is not None else [1] * len(chunks)
        for chunk, count in zip(chunks, counts, strict=True):
            cursor = self._db.execute(
                "INSERT INTO chunks (chunk_id, doc_id, tenant, ordinal, start, end, title, text, "
                "n_vectors) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    chunk.chunk_id,
                    doc_id,
                    _tenant(tenant),
                    chunk.ordinal,
                    chunk.start,
                    chunk.end,
                    chunk.title,
                    chunk.text,
                    int(count),
                ),
            )
            ids.append(int(cursor.lastrowid or 0))
        return ids

    def link_source(self, record: SourceRecord) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO sources (source, tenant, file, doc_id, modified_at, size) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                record.source,
                _tenant(record.tenant),
                record.file,
                record.doc_id,
                record.modified_at,
                record.size,
            ),
        )

    def unlink_sources(self, sources: Iterable[tuple[str, str | None]]) -> None:
        """Forget sources; their documents stay until :meth:`delete_orphans`."""
        self._db.executemany(
            "DELETE FROM sources WHERE source = ? AND tenant = ?",
            [(source, _tenant(tenant)) for source, tenant in sources],
        )

    def delete_orphans(self) -> tuple[int, list[tuple[int, int]]]:
        """Delete documents no source holds any more: (documents removed, their chunks)."""
        orphans = [
            r[0]
            for r in self._db.execute(
                "SELECT doc_id FROM documents d WHERE NOT EXISTS "
                "(SELECT 1 FROM sources s WHERE s.doc_id = d.doc_id)"
            )
        ]
        chunks: list[tuple[int, int]] = []
        for doc_id in orphans:
            chunks += self.delete_document(doc_id)
        return len(orphans), chunks

    def delete_document(self, doc_id: str) -> list[tuple[int, int]]:
        """Delete a document; returns its chunks as (row id, number of vectors)."""
        ids = [
            (int(r[0]), int(r[1]))
            for r in self._db.execute(
                "SELECT id, n_vectors FROM chunks WHERE doc_id = ?", (doc_id,)
            )
        ]
        self._db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        self._db.execute("DELETE FROM sources WHERE doc_id = ?", (doc_id,))
        self._db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
        return ids

    # ---- reads --------------------------------------------------------------------------

    def sources(self, *, tenant: str | None = None, under: str | None = None) -> list[SourceRecord]:
        """Sources of one tenant, optionally only files below a folder (an indexed range)."""
        if under is None:
            rows = self._db.execute(_SOURCES_OF_TENANT, (_tenant(tenant),)).fetchall()
        else:
            folder = under.rstrip("/")
            # Paths below "a/b" sort between "a/b/" and "a/b0" ("0" follows "/").
            rows = self._db.execute(
                _SOURCES_UNDER, (_tenant(tenant), folder, folder + "/", folder + "0")
            ).fetchall()
        return [_source_record(r) for r in rows]

    def sources_of_file(self, file: str, *, tenant: str | None = None) -> list[SourceRecord]:
        """The sources read from one file (one, or one per JSONL line); uses ``sources_file``."""
        rows = self._db.execute(_SOURCES_OF_FILE, (file, _tenant(tenant))).fetchall()
        return [_source_record(r) for r in rows]

    def sources_named(self, key: str, *, tenant: str | None = None) -> list[SourceRecord]:
        """Sources a user names by their source (``file#L3``) or file path."""
        rows = self._db.execute(_SOURCES_NAMED, (_tenant(tenant), key, key)).fetchall()
        return [_source_record(r) for r in rows]

    def documents_named(self, key: str, *, tenant: str | None = None) -> list[str]:
        """Documents a user names by their doc id or their own id (JSONL ``id``)."""
        rows = self._db.execute(_DOCUMENTS_NAMED, (_tenant(tenant), key, key)).fetchall()
        return sorted(r[0] for r in rows)

    def find_documents(self, key: str, *, tenant: str | None = None) -> list[str]:
        """Documents matching a doc id, a user-given id (JSONL ``id``), a source or a file path."""
        found = set(self.documents_named(key, tenant=tenant))
        found |= {r.doc_id for r in self.sources_named(key, tenant=tenant)}
        return sorted(found)

    def query_plan(self, lookup: str) -> str:
        """SQLite's plan for one of the store's named lookups (``sources_of_file`` ...), so a
        test can check that it uses an index rather than scanning a table."""
        sql = _LOOKUPS[lookup]
        args = [""] * sql.count("?")
        rows = self._db.execute(f"EXPLAIN QUERY PLAN {sql}", args).fetchall()
        return "\n".join(str(r[-1]) for r in rows)

    def chunk_row_ids(self) -> dict[str, int]:
        """Every chunk's id and its row id (the id its vectors are stored under)."""
        return {r[0]: int(r[1]) for r in self._db.execute("SELECT chunk_id, id FROM chunks")}

    def chunks_of(self, doc_ids: Sequence[str]) -> list[int]:
        """Row ids of the documents' chunks, document by document, in text order."""
        if not doc_ids:
            return []
        marks = ",".join("?" * len(doc_ids))
        rows = self._db.execute(
            f"SELECT id FROM chunks WHERE doc_id IN ({marks}) ORDER BY doc_id, ordinal",
            list(doc_ids),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def documents(self) -> Iterator[StoredDocument]:
        rows = self._db.execute(
            "SELECT d.doc_id, d.tenant, d.sha256, d.title, d.metadata, d.ingested_at, "
            "(SELECT count(*) FROM chunks c WHERE c.doc_id = d.doc_id), "
            "(SELECT group_concat(s.source, char(10)) FROM sources s WHERE s.doc_id = d.doc_id) "
            "FROM documents d ORDER BY d.rowid"
        )
        for r in rows:
            yield StoredDocument(
                r[0],
                _untenant(r[1]),
                r[2],
                r[3],
                json.loads(r[4]),
                r[5],
                r[6],
                tuple((r[7] or "").split("\n")) if r[7] else (),
            )

    def all_chunk_texts(self, *, with_title: bool) -> tuple[list[int], list[str]]:
        """Every chunk's id and searchable text, in id order (for rebuilding BM25)."""
        ids, texts = [], []
        for rid, title, text in self._db.execute("SELECT id, title, text FROM chunks ORDER BY id"):
            ids.append(int(rid))
            texts.append(searchable_text(title, text, with_title=with_title))
        return ids, texts

    def vector_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Every chunk row id (ascending) and its number of vectors."""
        rows = self._db.execute("SELECT id, n_vectors FROM chunks ORDER BY id").fetchall()
        data = np.asarray(rows, dtype=np.int64).reshape(-1, 2)
        return data[:, 0].copy(), data[:, 1].copy()

    def chunk_ids(
        self, *, tenant: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> np.ndarray:
        """Row ids allowed by a tenant and metadata equality filter."""
        query = "SELECT c.id FROM chunks c"
        clauses, args = [], []
        if metadata:
            query += " JOIN documents d ON d.doc_id = c.doc_id"
            for key, value in metadata.items():
                clauses.append("json_extract(d.metadata, ?) = ?")
                args += [f"$.{key}", value]
        if tenant is not None:
            clauses.append("c.tenant = ?")
            args.append(tenant)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        rows = self._db.execute(query, args).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def passages(self, ids: Sequence[int], scores: Sequence[float]) -> list[Passage]:
        """Hydrate hits (ids in rank order) into passages with their provenance."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = self._db.execute(
            f"SELECT {PASSAGE_COLUMNS} FROM chunks c JOIN documents d ON d.doc_id = c.doc_id "
            "LEFT JOIN sources s ON s.rowid = "
            "(SELECT min(rowid) FROM sources WHERE doc_id = c.doc_id) "
            f"WHERE c.id IN ({marks})",
            [int(i) for i in ids],
        ).fetchall()
        return ranked_passages(
            {r[0]: (*r[:10], json.loads(r[10]), *r[11:]) for r in rows}, ids, scores, self.path
        )

    def counts(self) -> dict[str, int]:
        one = self._db.execute
        return {
            "documents": one("SELECT count(*) FROM documents").fetchone()[0],
            "sources": one("SELECT count(*) FROM sources").fetchone()[0],
            "chunks": one("SELECT count(*) FROM chunks").fetchone()[0],
        }

    def tenants(self) -> dict[str, int]:
        rows = self._db.execute("SELECT tenant, count(*) FROM chunks GROUP BY tenant")
        return {(r[0] or "(none)"): r[1] for r in rows}

    def pii_totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for (raw,) in self._db.execute("SELECT pii FROM documents"):
            for kind, n in json.loads(raw).items():
                totals[kind] = totals.get(kind, 0) + int(n)
        return totals


PASSAGE_COLUMNS = (
    'c.id, c.chunk_id, c.doc_id, c.text, c.start, c."end", c.title, c.tenant, '
    "d.sha256, d.ingested_at, d.metadata, s.source, s.modified_at"
)
"""The columns :func:`ranked_passages` reads, in its order (``c`` chunks, ``d`` documents,
``s`` the document's first source)."""


def ranked_passages(
    rows: Mapping[int, Sequence[Any]],
    ids: Sequence[int],
    scores: Sequence[float],
    where: object,
) -> list[Passage]:
    """Passages in rank order from chunk rows of :data:`PASSAGE_COLUMNS` keyed by row id
    (metadata already decoded); an id without a row means the index's parts disagree."""
    passages = []
    for rank, (cid, score) in enumerate(zip(ids, scores, strict=True), start=1):
        r = rows.get(int(cid))
        if r is None:
            raise IndexCorruptError(
                f"{where}: vector id {cid} has no chunk row; the index files disagree, rebuild it"
            )
        provenance = Provenance(
            source=r[11] or "",
            sha256=r[8],
            modified_at=r[12],
            ingested_at=r[9],
            tenant=_untenant(r[7]),
            metadata=r[10],
        )
        passages.append(
            Passage(
                chunk_id=r[1],
                doc_id=r[2],
                text=r[3],
                score=float(score),
                rank=rank,
                source=r[11] or "",
                start=r[4],
                end=r[5],
                title=r[6],
                provenance=provenance,
            )
        )
    return passages


def searchable_text(title: str, text: str, *, with_title: bool) -> str:
    """The text embedded and BM25-indexed for a chunk: its title first, when asked."""
    if with_title and title and not text.startswith(title):
        return f"{title}\n\n{text}"
    return text
