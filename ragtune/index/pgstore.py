"""A pgvector index open for search: dense (pgvector, cosine), lexical (PostgreSQL full-text
search) and the chunk rows, all in one database.

Satisfies the ``SearchIndex`` protocol of :mod:`ragtune.retrieve`, so the dense, lexical and
hybrid retrievers run on it unchanged. Differences from the folder store, by design:

- a filter is a SQL condition (:class:`PgFilter`), not a list of allowed ids: the tenant (and
  metadata) condition sits in the ``WHERE`` clause of every search, so a query for one tenant
  never reads another tenant's rows, however many chunks there are;
- lexical scores are PostgreSQL's ``ts_rank`` (normalised by document length) over an OR of the
  query's terms, not BM25; rankings agree on clear matches, the scores' scale does not (hybrid
  fusion divides each list by its best score, so the scale does not matter there). Scripts
  written without spaces (Chinese, Japanese, Thai) get no character bigrams here;
- with an HNSW graph, a filtered query that the graph cannot fill (a small tenant among many
  rows) is answered again exactly, so it is never cut short.

Each thread has its own read-only connection. :meth:`PgIndexStore.snapshot` starts a
``REPEATABLE READ`` transaction that every call of one query shares, so a query reads one
committed state; :meth:`PgIndexStore.passages`, the retrievers' last call, ends it.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ragtune.index.chunkdb import PASSAGE_COLUMNS, StoredDocument, ranked_passages
from ragtune.index.manifest import Manifest, refuse_other_embedder
from ragtune.index.pgschema import PgStoreSettings, connect, hnsw_ef_search, read_manifest
from ragtune.types import Passage

__all__ = ["PgFilter", "PgIndexStore"]

# Postgres's websearch/plain parsers AND the terms; BM25 (and the folder store) ORs them.
_QUERY = (
    "(SELECT replace(plainto_tsquery(%(config)s::regconfig, %(query)s)::text, ' & ', ' | ')"
    "::tsquery AS terms)"
)
_HYDRATE_BATCH = 500
"""Chunks hydrated per query when a whole tenant is read."""
_FIRST_SOURCE = (
    "LEFT JOIN LATERAL (SELECT source, modified_at FROM sources WHERE doc_id = c.doc_id "
    "ORDER BY seq LIMIT 1) s ON true"
)


@dataclass(frozen=True)
class PgFilter:
    """Which chunks a query may see: one tenant's, and those whose document metadata holds
    every ``key: value`` pair given."""

    tenant: str | None
    metadata: tuple[tuple[str, Any], ...] = ()

    def sql(self, chunk: str) -> tuple[str, dict[str, Any]]:
        """A condition on the chunk id column ``chunk`` (and the row's ``tenant`` column)."""
        clauses, params = [], {}
        if self.tenant is not None:
            clauses.append("tenant = %(tenant)s")
            params["tenant"] = self.tenant
        if self.metadata:
            clauses.append(
                "EXISTS (SELECT 1 FROM chunks fc JOIN documents fd ON fd.doc_id = fc.doc_id "
                f"WHERE fc.id = {chunk} AND fd.metadata @> %(metadata)s::jsonb)"
            )
            params["metadata"] = json.dumps(dict(self.metadata))
        return " AND ".join(clauses) or "true", params


class PgIndexStore:
    """A pgvector index open for search (see the module docstring)."""

    def __init__(self, settings: PgStoreSettings, manifest: Manifest, text_search: str) -> None:
        self.settings = settings
        self.path = settings  # what messages name, as the folder store's path
        self._manifest = manifest
        self._text_search = text_search
        self._ef_search = hnsw_ef_search(manifest)
        self._local = threading.local()
        self._open: list[Any] = []
        self._lock = threading.Lock()

    @classmethod
    def open(cls, settings: PgStoreSettings, *, embedder: str | None = None) -> PgIndexStore:
        """Open the index ``settings`` names; ``embedder`` (a model name) must match its own.

        Raises :class:`~ragtune.errors.IndexUnavailableError` (server unreachable, login
        refused), :class:`~ragtune.errors.IndexNotFoundError` (no index in that schema) or
        :class:`~ragtune.errors.IndexFormatError` (written by another ragtune version).
        """
        conn = connect(settings)
        try:
            manifest, text_search = read_manifest(conn, settings)
            conn.rollback()
            if embedder is not None:
                refuse_other_embedder(str(settings), manifest.embedder, embedder)
        except BaseException:
            conn.close()
            raise
        store = cls(settings, manifest, text_search)
        store._adopt(conn)
        return store

    def _adopt(self, conn: Any) -> None:
        from psycopg import IsolationLevel

        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        self._local.conn = conn
        with self._lock:
            self._open.append(conn)

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = connect(self.settings)
            self._adopt(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(Exception):
                    conn.close()
            self._open.clear()

    def __enter__(self) -> PgIndexStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the SearchIndex protocol -------------------------------------------------------------

    def snapshot(self) -> PgIndexStore:
        """Start this thread's read of one committed state (ends the previous one)."""
        self._conn().rollback()
        return self

    @property
    def embedder_name(self) -> str:
        return self._manifest.embedder.name

    @property
    def manifest(self) -> Manifest:
        """The manifest as committed now (counts change with every update)."""
        manifest, _ = read_manifest(self._conn(), self.settings)
        return manifest

    def allowed_ids(
        self, *, tenant: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> PgFilter | None:
        """The SQL filter for a tenant and metadata, or ``None`` when nothing is filtered."""
        if tenant is None and not metadata:
            return None
        return PgFilter(tenant, tuple(sorted((metadata or {}).items())))

    def search_dense(
        self, query_vector: np.ndarray, k: int, *, allowed: PgFilter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` chunks by their best vector's cosine with the query (max-sim)."""
        where, params = (allowed or PgFilter(None)).sql("v.chunk")
        params["q"] = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        depth = k * 4 + 16
        conn = self._conn()
        while True:
            hits = self._nearest(conn, where, params, depth, exact=False)
            if self._ef_search and allowed is not None and len(hits) < depth:
                # The graph's candidates may hold too few of this filter's rows: ask again,
                # exactly, so a small tenant among many rows is never cut short.
                hits = self._nearest(conn, where, params, depth, exact=True)
            ids, scores = _best_per_chunk(hits)
            if len(ids) >= k or len(hits) < depth:
                return ids[:k], scores[:k]
            depth *= 4

    def _nearest(
        self, conn: Any, where: str, params: dict[str, Any], depth: int, *, exact: bool
    ) -> list[tuple[int, float]]:
        if self._ef_search:
            conn.execute(
                "SELECT set_config('hnsw.ef_search', %s, true), "
                "set_config('enable_indexscan', %s, true)",
                (str(min(max(self._ef_search, depth), 1000)), "off" if exact else "on"),
            )
        rows = conn.execute(
            f"SELECT v.chunk, 1 - (v.embedding <=> %(q)s) FROM vectors v WHERE {where} "
            "ORDER BY v.embedding <=> %(q)s LIMIT %(depth)s",
            params | {"depth": depth},
        ).fetchall()
        return [(int(r[0]), float(r[1])) for r in rows]

    def search_lexical(
        self, query: str, k: int, *, allowed: PgFilter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` chunks by ``ts_rank`` of any of the query's terms."""
        where, params = (allowed or PgFilter(None)).sql("c.id")
        rows = (
            self._conn()
            .execute(
                f"SELECT c.id, ts_rank(c.terms, q.terms, 1) AS score FROM chunks c, {_QUERY} q "
                f"WHERE c.terms @@ q.terms AND {where} ORDER BY score DESC, c.id LIMIT %(k)s",
                params | {"config": self._text_search, "query": query, "k": k},
            )
            .fetchall()
        )
        return _arrays(rows)

    def dense_scores(self, query_vector: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Each chunk's best cosine with the query over its vectors (0 for an unknown id)."""
        if len(ids) == 0:
            return np.zeros(0, dtype=np.float32)
        rows = (
            self._conn()
            .execute(
                "SELECT chunk, max(1 - (embedding <=> %s)) FROM vectors WHERE chunk = ANY(%s::bigint[]) "
                "GROUP BY chunk",
                (np.asarray(query_vector, dtype=np.float32).reshape(-1), [int(i) for i in ids]),
            )
            .fetchall()
        )
        return _in_order(rows, ids)

    def lexical_scores(self, query: str, ids: np.ndarray) -> np.ndarray:
        """``ts_rank`` of the query for each of these chunks (0 where no term matches)."""
        if len(ids) == 0:
            return np.zeros(0, dtype=np.float32)
        rows = (
            self._conn()
            .execute(
                "SELECT c.id, CASE WHEN c.terms @@ q.terms THEN ts_rank(c.terms, q.terms, 1) "
                f"ELSE 0 END FROM chunks c, {_QUERY} q WHERE c.id = ANY(%(ids)s::bigint[])",
                {"config": self._text_search, "query": query, "ids": [int(i) for i in ids]},
            )
            .fetchall()
        )
        return _in_order(rows, ids)

    def passages(
        self, ids: np.ndarray | list[int], scores: np.ndarray | list[float]
    ) -> list[Passage]:
        """Hits (ids in rank order) as passages with provenance; ends the query's snapshot."""
        conn = self._conn()
        wanted = [int(i) for i in ids]
        rows = conn.execute(
            f"SELECT {PASSAGE_COLUMNS} FROM chunks c JOIN documents d ON d.doc_id = c.doc_id "
            f"{_FIRST_SOURCE} WHERE c.id = ANY(%s::bigint[])",
            (wanted,),
        ).fetchall()
        conn.rollback()  # a read-only transaction: ending it releases its snapshot
        return ranked_passages(
            {int(r[0]): r for r in rows}, wanted, [float(s) for s in scores], self.settings
        )

    # ---- what `index info` and `ask --document` read ------------------------------------------

    def document_passages(self, key: str, *, tenant: str | None = None) -> list[Passage]:
        """Every chunk of the documents ``key`` names (a JSONL ``id``, a doc id, a source or a
        file path), in text order; empty when the index holds none."""
        rows = (
            self._conn()
            .execute(
                "SELECT c.id FROM chunks c JOIN documents d ON d.doc_id = c.doc_id "
                "WHERE d.tenant = %(tenant)s AND (d.doc_id = %(key)s OR d.metadata->>'id' = %(key)s "
                "OR d.doc_id IN (SELECT doc_id FROM sources WHERE tenant = %(tenant)s "
                "AND (source = %(key)s OR file = %(key)s))) ORDER BY c.doc_id, c.ordinal",
                {"tenant": tenant or "", "key": key},
            )
            .fetchall()
        )
        found = [int(r[0]) for r in rows]
        return self.passages(found, [1.0] * len(found))

    # ---- what `ragtune synth` and the `lm` training objective read ------------------------------

    def tenants(self) -> dict[str, int]:
        """Chunks per tenant (``(none)``: chunks indexed without a tenant)."""
        conn = self._conn()
        rows = conn.execute("SELECT tenant, count(*) FROM chunks GROUP BY tenant").fetchall()
        conn.rollback()
        return {(r[0] or "(none)"): int(r[1]) for r in rows}

    def tenant_passages(self, tenant: str | None) -> list[Passage]:
        """Every chunk a query of ``tenant`` may see (None: every chunk), in the order they were
        indexed (a document's chunks in text order), each with score 1.0."""
        where, params = PgFilter(tenant).sql("id")
        conn = self._conn()
        ids = [
            int(r[0])
            for r in conn.execute(f"SELECT id FROM chunks WHERE {where} ORDER BY id", params)
        ]
        found: list[Passage] = []
        for lo in range(0, len(ids), _HYDRATE_BATCH):
            part = ids[lo : lo + _HYDRATE_BATCH]
            found += self.passages(part, [1.0] * len(part))
        return found

    def documents(self) -> Iterator[StoredDocument]:
        """Every document with its number of chunks and its sources, oldest first."""
        rows = (
            self._conn()
            .execute(
                "SELECT d.doc_id, d.tenant, d.sha256, d.title, d.metadata, d.ingested_at, "
                "(SELECT count(*) FROM chunks c WHERE c.doc_id = d.doc_id), "
                "(SELECT array_agg(s.source ORDER BY s.seq) FROM sources s WHERE s.doc_id = d.doc_id) "
                "FROM documents d ORDER BY d.seq"
            )
            .fetchall()
        )
        for r in rows:
            yield StoredDocument(
                r[0], r[1] or None, r[2], r[3], r[4], r[5], int(r[6]), tuple(r[7] or ())
            )

    def bytes_on_disk(self) -> dict[str, int]:
        """Bytes each table takes with its indexes (``pg_total_relation_size``)."""
        rows = (
            self._conn()
            .execute(
                "SELECT t, pg_total_relation_size(t::regclass) FROM unnest(ARRAY['documents', "
                "'sources', 'chunks', 'vectors']) AS t"
            )
            .fetchall()
        )
        return {str(r[0]): int(r[1]) for r in rows}


def _best_per_chunk(hits: list[tuple[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Each chunk's first (best) hit, in rank order."""
    seen: dict[int, float] = {}
    for chunk, score in hits:
        seen.setdefault(chunk, score)
    return _arrays(list(seen.items()))


def _arrays(rows: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.fromiter((int(r[0]) for r in rows), dtype=np.int64, count=len(rows))
    scores = np.fromiter((float(r[1]) for r in rows), dtype=np.float32, count=len(rows))
    return ids, scores


def _in_order(rows: list[Any], ids: np.ndarray) -> np.ndarray:
    by_id = {int(r[0]): float(r[1]) for r in rows}
    return np.asarray([by_id.get(int(i), 0.0) for i in ids], dtype=np.float32)
