"""A real PostgreSQL with pgvector for the tests, started from the ``pgserver`` wheel."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ragtune.index.pgschema import PgStoreSettings


@dataclass(frozen=True)
class PgServer:
    """The running server: its keyword DSN (socket folder, port, user, database)."""

    dsn: str
    params: dict[str, Any]

    def settings(self, schema: str, **overrides: Any) -> PgStoreSettings:
        return PgStoreSettings(dsn=overrides.pop("dsn", self.dsn), schema=schema, **overrides)

    def sql(self, statement: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement as the superuser (autocommit); rows if it returns any."""
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(statement, args)
            return cur.fetchall() if cur.description else []


def start_server(root: Path) -> Iterator[PgServer]:
    """Start PostgreSQL in ``root`` (skips the test only when pgserver cannot run here)."""
    try:
        import pgserver
        from psycopg.conninfo import conninfo_to_dict, make_conninfo
    except ImportError as exc:  # pragma: no cover - the dev extra installs both
        pytest.skip(f"pgserver/psycopg not installed ({exc}); pip install -e '.[dev]'")
    try:
        server = pgserver.get_server(root, cleanup_mode="stop")
    except Exception as exc:  # pragma: no cover - platform without pgserver's binaries
        pytest.skip(f"pgserver cannot start PostgreSQL on this platform: {exc}")
    params = {k: v for k, v in conninfo_to_dict(server.get_uri()).items() if k != "password"}
    try:
        yield PgServer(make_conninfo(**params), params)
    finally:
        server.cleanup()
