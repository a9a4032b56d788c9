"""Where a pgvector index lives, how ragtune connects to it, and the tables it keeps there.

One index is one PostgreSQL schema::

    ragtune_meta   key → jsonb: format, schema_version, written_by, manifest, text_search
    documents      one row per document and tenant (content-addressed doc_id), metadata jsonb
    sources        the files (and JSONL lines) that hold each document
    chunks         text, offsets, title, tenant, and ``terms`` (a tsvector with a GIN index)
    vectors        one row per chunk (or per sentence): vector(d), tenant, and an HNSW index
                   (cosine) when the index's ``vectors.type`` is ``hnsw``; ``flat`` is exact

Every row carries its tenant, and every search names it in its ``WHERE`` clause, so a query for
one tenant cannot read another's rows. Two stronger fences fit on top without a change here:

- **row-level security**: ``ALTER TABLE chunks ENABLE ROW LEVEL SECURITY`` (and ``vectors``,
  ``documents``, ``sources``) with a policy ``USING (tenant = current_setting('app.tenant'))``
  and one database role per serving process that is not the tables' owner; then even a
  hand-written query of that role sees one tenant's rows;
- **a schema per tenant**: ``index.store.schema`` names the schema, so a tenant that must be
  kept apart gets its own index (``schema: acme``), its own grants, and can be dropped or moved
  whole. Thousands of tenants are better served by one schema with RLS (one HNSW graph, not
  thousands).

The password never sits in the config: libpq reads ``PGPASSWORD`` or ``~/.pgpass``, or the
variable named by ``password_env``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Annotated, Any

from annotated_types import Ge, Le

from ragtune.errors import (
    IndexCorruptError,
    IndexError_,
    IndexFormatError,
    IndexNotFoundError,
    IndexUnavailableError,
)
from ragtune.index.lexical import LexicalSpec
from ragtune.index.manifest import Manifest
from ragtune.settings import check_bounds

__all__ = [
    "FORMAT",
    "SCHEMA_VERSION",
    "PgStoreSettings",
    "connect",
    "create_tables",
    "create_vector_index",
    "hnsw_ef_search",
    "read_manifest",
    "text_search_config",
    "write_manifest",
]

FORMAT = "ragtune-pgvector"
SCHEMA_VERSION = 1
"""Bumped whenever the tables change; an index of another version is refused, not migrated."""

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_INSTALL = "pip install 'ragtune[pgvector]'"


@dataclass(frozen=True)
class PgStoreSettings:
    """Where a pgvector index lives: a PostgreSQL database and the schema that is the index."""

    dsn: str
    """libpq connection string or URI, without the password (``host=db.internal dbname=rag
    user=ragtune`` or ``postgresql://ragtune@db.internal/rag``)."""
    schema: str = "ragtune"
    """The schema holding this index (lower-case letters, digits and ``_``)."""
    password_env: str = "PGPASSWORD"
    """Environment variable holding the password (libpq also reads ``~/.pgpass``)."""
    connect_timeout_s: Annotated[int, Ge(1), Le(600)] = 10
    """Seconds to wait for the server before reporting it unreachable."""

    def __post_init__(self) -> None:
        check_bounds(self)
        if not self.dsn.strip():
            raise ValueError("dsn is empty; name the database (host=... dbname=... user=...)")
        if not _IDENTIFIER.match(self.schema):
            raise ValueError(
                f"schema {self.schema!r} is not a plain identifier; use lower-case letters, "
                "digits and _ (at most 63), starting with a letter or _"
            )
        if _has_password(self.dsn):
            raise ValueError(
                f"the dsn holds a password; remove it and set {self.password_env} (or use "
                "~/.pgpass) instead, so the config can be shared"
            )

    def __str__(self) -> str:
        return f"pgvector schema {self.schema!r} at {_where(self.dsn)}"


def _has_password(dsn: str) -> bool:
    if re.search(r"(^|\s)password\s*=", dsn):
        return True
    uri = re.match(r"^postgres(?:ql)?://([^@/]*)@", dsn)
    return bool(uri and ":" in uri.group(1)) or "password=" in dsn.split("?", 1)[-1]


def _where(dsn: str) -> str:
    """The dsn as shown in messages (it holds no password: the settings refuse one)."""
    return dsn if "://" in dsn else f"'{dsn}'"


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise IndexError_(
            f"the pgvector index store needs psycopg and pgvector; {_INSTALL}"
        ) from exc
    return psycopg


def connect(settings: PgStoreSettings) -> Any:
    """A new connection (not in autocommit) with the index's schema first on the search path
    and pgvector's types registered.

    Raises :class:`IndexUnavailableError` when the server cannot be reached or refuses the
    login, and :class:`IndexError_` when the pgvector extension is missing.
    """
    psycopg = _psycopg()
    options: dict[str, Any] = {
        "connect_timeout": settings.connect_timeout_s,
        "application_name": "ragtune",
    }
    password = os.environ.get(settings.password_env)
    if password is not None and settings.password_env != "PGPASSWORD":
        options["password"] = password  # libpq reads PGPASSWORD itself
    try:
        conn = psycopg.connect(settings.dsn, **options)
    except psycopg.OperationalError as exc:
        raise IndexUnavailableError(_unavailable(exc, settings)) from exc
    try:
        _prepare(conn, settings)
    except BaseException:
        conn.close()
        raise
    return conn


def _unavailable(exc: Exception, settings: PgStoreSettings) -> str:
    text = str(exc).strip()
    detail = " ".join(line.strip() for line in text.splitlines()) or type(exc).__name__
    if "password authentication failed" in text or "no password supplied" in text:
        return (
            f"the database at {_where(settings.dsn)} refused the login ({detail}); set the "
            f"password in {settings.password_env} or ~/.pgpass, or fix the user in "
            "index.store.dsn. Nothing was read or changed"
        )
    if re.search(r'database "[^"]*" does not exist', text):
        return (
            f"{detail}; create the database (createdb) or fix dbname in index.store.dsn. "
            "Nothing was read or changed"
        )
    return (
        f"cannot reach the database at {_where(settings.dsn)} ({detail}); check that "
        "PostgreSQL runs there and that index.store.dsn names its host and port. Nothing was "
        "read or changed"
    )


def _prepare(conn: Any, settings: PgStoreSettings) -> None:
    from pgvector.psycopg import register_vector
    from psycopg import sql

    row = conn.execute(
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'vector'"
    ).fetchone()
    if row is None:
        try:
            with conn.transaction():
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except Exception as exc:
            raise IndexError_(
                f"the database at {_where(settings.dsn)} lacks the pgvector extension and this "
                f"user may not create it ({str(exc).strip()}); run `CREATE EXTENSION vector` "
                "there as a superuser"
            ) from exc
        row = conn.execute(
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()
    conn.execute(
        sql.SQL("SET search_path TO {}, {}").format(
            sql.Identifier(settings.schema), sql.Identifier(row[0].strip('"'))
        )
    )
    register_vector(conn)
    conn.commit()


# ---- tables ---------------------------------------------------------------------------------

_TABLES = """
CREATE TABLE ragtune_meta (key text PRIMARY KEY, value jsonb NOT NULL);
CREATE TABLE documents (
    doc_id      text PRIMARY KEY,
    tenant      text NOT NULL,
    sha256      text NOT NULL,
    title       text NOT NULL,
    metadata    jsonb NOT NULL,
    ingested_at double precision NOT NULL,
    pii         jsonb NOT NULL,
    seq         bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX documents_tenant ON documents (tenant);
CREATE TABLE sources (
    source      text NOT NULL,
    tenant      text NOT NULL,
    file        text COLLATE "C" NOT NULL,
    doc_id      text NOT NULL REFERENCES documents ON DELETE CASCADE,
    modified_at double precision,
    size        bigint,
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (source, tenant)
);
CREATE INDEX sources_doc ON sources (doc_id);
CREATE INDEX sources_file ON sources (file, tenant);
CREATE TABLE chunks (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chunk_id  text NOT NULL UNIQUE,
    doc_id    text NOT NULL REFERENCES documents ON DELETE CASCADE,
    tenant    text NOT NULL,
    ordinal   integer NOT NULL,
    start     integer NOT NULL,
    "end"     integer NOT NULL,
    title     text NOT NULL,
    text      text NOT NULL,
    n_vectors integer NOT NULL,
    terms     tsvector NOT NULL
);
CREATE INDEX chunks_doc ON chunks (doc_id);
CREATE INDEX chunks_tenant ON chunks (tenant);
CREATE INDEX chunks_terms ON chunks USING gin (terms);
CREATE TABLE vectors (
    chunk     bigint NOT NULL REFERENCES chunks ON DELETE CASCADE,
    unit      integer NOT NULL,
    tenant    text NOT NULL,
    embedding vector({dimension}) NOT NULL,
    PRIMARY KEY (chunk, unit)
);
CREATE INDEX vectors_tenant ON vectors (tenant);
"""

_HNSW = (
    "CREATE INDEX vectors_hnsw ON vectors USING hnsw (embedding vector_cosine_ops) "
    "WITH (m = {m}, ef_construction = {ef_construction})"
)


def create_tables(conn: Any, schema: str, manifest: Manifest) -> None:
    """Replace ``schema`` with empty tables for ``manifest`` (inside the caller's transaction,
    so the old schema stays until it commits). A schema that holds anything but a ragtune
    index is refused."""
    from psycopg import sql

    _refuse_foreign(conn, schema)
    name = sql.Identifier(schema)
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(name))
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(name))
    dimension = int(manifest.embedder.dimension)
    for statement in _TABLES.format(dimension=dimension).split(";"):
        if statement.strip():
            conn.execute(statement)
    _vector_kind(manifest)  # refuse an index kind pgvector lacks before any work
    _put(conn, "format", FORMAT)
    _put(conn, "schema_version", SCHEMA_VERSION)
    _put(conn, "written_by", _ragtune_version())
    _put(conn, "text_search", text_search_config(LexicalSpec.from_dict(manifest.lexical)))


def create_vector_index(conn: Any, manifest: Manifest) -> None:
    """Add the HNSW graph (cosine) when the manifest asks for one; built once the vectors of a
    new index are in, which is faster than growing it row by row."""
    if _vector_kind(manifest) == "hnsw":
        # pgvector's limits: m in 2..100, ef_construction at least 2m.
        m = min(int(manifest.vectors["m"]), 100)
        ef_construction = max(int(manifest.vectors["ef_construction"]), 2 * m)
        conn.execute(_HNSW.format(m=m, ef_construction=ef_construction))


def hnsw_ef_search(manifest: Manifest) -> int:
    """Candidates an HNSW query keeps (pgvector's ``hnsw.ef_search``, at most 1000)."""
    if _vector_kind(manifest) != "hnsw":
        return 0
    return min(int(manifest.vectors.get("ef_search", 40)), 1000)


def _vector_kind(manifest: Manifest) -> str:
    kind = str(manifest.vectors.get("type", manifest.vectors.get("kind")))
    if kind not in ("hnsw", "flat"):
        raise IndexError_(
            f"pgvector has no {kind} index; set index.vectors.type to hnsw (approximate) or "
            "flat (exact) for the pgvector store"
        )
    return kind


def _refuse_foreign(conn: Any, schema: str) -> None:
    tables = {
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        )
    }
    if tables and "ragtune_meta" not in tables:
        raise IndexError_(
            f"schema {schema!r} exists and holds tables that are not a ragtune index "
            f"({', '.join(sorted(tables)[:5])}); refusing to replace it. Choose another "
            "index.store.schema"
        )


def text_search_config(spec: LexicalSpec) -> str:
    """PostgreSQL's text search configuration closest to the BM25 spec: ``english`` (Snowball
    stemming and stop words) when either is asked for, else ``simple`` (lower-cased words)."""
    return "english" if spec.stemming or spec.stopwords == "english" else "simple"


def write_manifest(conn: Any, manifest: Manifest) -> None:
    """Record the manifest (inside the caller's transaction)."""
    _put(conn, "manifest", manifest.to_dict())


def read_manifest(conn: Any, settings: PgStoreSettings) -> tuple[Manifest, str]:
    """The index's manifest and its text search configuration, after checking that the schema
    is a ragtune index of this version."""
    meta = _meta(conn, settings)
    if meta.get("format") != FORMAT or "manifest" not in meta:
        raise IndexCorruptError(
            f"{settings} has no complete ragtune manifest; rebuild it with `ragtune index build`"
        )
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise IndexFormatError(
            f"{settings} was written by ragtune {meta.get('written_by', '?')} with table "
            f"version {version!r}; this ragtune ({_ragtune_version()}) reads version "
            f"{SCHEMA_VERSION}. Rebuild it with `ragtune index build SRC --out {settings.schema} "
            "--config ...` (the old tables stay until the new ones are complete), or use the "
            "ragtune version that wrote it"
        )
    manifest = Manifest.from_dict(meta["manifest"], where=str(settings))
    return manifest, str(meta.get("text_search", "english"))


def _meta(conn: Any, settings: PgStoreSettings) -> dict[str, Any]:
    exists = conn.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
        "AND table_name = 'ragtune_meta'",
        (settings.schema,),
    ).fetchone()
    if exists is None:
        raise IndexNotFoundError(
            f"no ragtune index in {settings}; build one with `ragtune index build SRC --out "
            f"{settings.schema} --config CONFIG` (a config whose index.store is this database)"
        )
    return {str(k): v for k, v in conn.execute("SELECT key, value FROM ragtune_meta")}


def _put(conn: Any, key: str, value: Any) -> None:
    conn.execute(
        "INSERT INTO ragtune_meta (key, value) VALUES (%s, %s::jsonb) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, json.dumps(value)),
    )


def _ragtune_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ragtune")
    except PackageNotFoundError:
        return "unknown"
