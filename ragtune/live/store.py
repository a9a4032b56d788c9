"""One tenant's live store: its answers (the numbers of each, its question and text for
feedback) and the feedback its users gave. The only module of :mod:`ragtune.live` that speaks
SQL.

A store is one SQLite file per tenant, ``ROOT/TENANT/live.sqlite``; a :class:`LiveStore` is
bound to one tenant's file and has no way to name another's, so an answer id of one tenant is
simply unknown to another's store. Journal in WAL mode, so the server's worker (writing an
answer), its feedback route and ``ragtune adapters status`` (reading) do not block each other;
each call opens its own short connection, safe across threads and processes.

Nothing here holds a raw user id: the unit column is the split key, a hash
(:func:`ragtune.generate.canary.split_key`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ragtune.errors import FeedbackError, LiveStoreError, ResponseNotFoundError
from ragtune.live.metrics import Observation, UnitTotals
from ragtune.types import check_name

__all__ = ["AnswerRecord", "FeedbackRecord", "LiveStore", "RatedAnswer", "tenant_folder"]

FILE = "live.sqlite"
UNTENANTED = "_untenanted"
"""The folder of answers given without a tenant (no tenant name can start with ``_``)."""
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    response_id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    adapter TEXT NOT NULL,
    version INTEGER,
    canary_id TEXT,
    arm TEXT CHECK (arm IN ('current', 'canary')),
    unit TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    abstained INTEGER NOT NULL,
    sentences INTEGER NOT NULL,
    supported INTEGER NOT NULL,
    support_sum REAL NOT NULL,
    citation_precision REAL NOT NULL,
    latency_s REAL NOT NULL,
    documents TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS answers_canary ON answers (canary_id, arm);
CREATE INDEX IF NOT EXISTS answers_adapter ON answers (adapter, version);
CREATE INDEX IF NOT EXISTS answers_created ON answers (created);
CREATE TABLE IF NOT EXISTS feedback (
    response_id TEXT PRIMARY KEY REFERENCES answers (response_id) ON DELETE CASCADE,
    created REAL NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    correction TEXT
);
"""

# Per unit (and per group: arm or version): the sums UnitTotals holds.
_UNIT_SUMS = """
SELECT {group}, a.unit, COUNT(*), SUM(a.abstained), SUM(a.sentences), SUM(a.supported),
       SUM(a.support_sum), SUM(a.sentences > 0),
       SUM(CASE WHEN a.sentences > 0 THEN a.citation_precision ELSE 0 END), SUM(a.latency_s),
       SUM(f.rating IS NOT NULL), SUM(CASE WHEN f.rating = 'up' THEN 1 ELSE 0 END)
FROM answers AS a LEFT JOIN feedback AS f ON f.response_id = a.response_id
WHERE {where}
GROUP BY {group}, a.unit
"""

Rating = Literal["up", "down"]


@dataclass(frozen=True)
class AnswerRecord:
    """One answer as the store keeps it."""

    response_id: str
    adapter: str
    """``tenant/name`` of a registered adapter, ``none`` or ``folder:PATH``."""
    version: int | None
    unit: str
    """The hashed split key: a user's, or the request's own."""
    question: str
    """With personal data scrubbed when the assistant redacts answers."""
    answer: str
    observation: Observation
    canary_id: str | None = None
    arm: Literal["current", "canary"] | None = None
    created: float = 0.0
    """POSIX seconds; 0: now."""
    documents: tuple[str, ...] = ()
    """The documents the answer cited, in the order first cited (their question-file ids, see
    :func:`ragtune.eval.records.passage_key`): where an export's ``passage_id`` comes from."""


@dataclass(frozen=True)
class FeedbackRecord:
    """Feedback as taken: the rating and correction, and what was rated."""

    response_id: str
    rating: Rating
    correction: str | None
    adapter: str
    version: int | None
    canary_id: str | None
    arm: Literal["current", "canary"] | None


@dataclass(frozen=True)
class RatedAnswer:
    """An answer with its feedback, for export."""

    response_id: str
    question: str
    answer: str
    abstained: bool
    rating: Rating
    correction: str | None
    adapter: str
    version: int | None
    rated_at: float
    documents: tuple[str, ...] = ()
    """The documents the answer cited (see :class:`AnswerRecord`)."""


def tenant_folder(root: Path, tenant: str | None) -> Path:
    """The folder of ``tenant``'s store under ``root`` (the name is checked: no path tricks)."""
    if tenant is None:
        return root / UNTENANTED
    return root / check_name(tenant, "tenant")


class LiveStore:
    """One tenant's answers and feedback (see the module doc)."""

    def __init__(self, root: Path | str, tenant: str | None) -> None:
        self.tenant = tenant
        self.folder = tenant_folder(Path(root), tenant)
        self.path = self.folder / FILE
        self._ready = False

    # -- writing ---------------------------------------------------------------------------------

    def record(self, record: AnswerRecord) -> None:
        """Keep one answer (a second record with the same id replaces the first)."""
        o = record.observation
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO answers VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.response_id,
                    record.created or time.time(),
                    record.adapter,
                    record.version,
                    record.canary_id,
                    record.arm,
                    record.unit,
                    record.question,
                    record.answer,
                    int(o.abstained),
                    o.sentences,
                    o.supported,
                    o.support_sum,
                    o.citation_precision,
                    o.latency_s,
                    json.dumps(list(record.documents)),
                ),
            )

    def rate(self, response_id: str, rating: Rating, correction: str | None) -> FeedbackRecord:
        """Keep feedback on one of this tenant's answers (a later rating replaces an earlier).

        Raises :class:`ResponseNotFoundError` when this tenant has no answer with that id: the
        same for an id that never existed, one that was pruned, and another tenant's.
        """
        with self._transaction() as db:
            row = db.execute(
                "SELECT adapter, version, canary_id, arm FROM answers WHERE response_id = ?",
                (response_id,),
            ).fetchone()
            if row is None:
                raise ResponseNotFoundError(_unknown(response_id))
            db.execute(
                "INSERT OR REPLACE INTO feedback VALUES (?, ?, ?, ?)",
                (response_id, time.time(), rating, correction),
            )
        return FeedbackRecord(response_id, rating, correction, row[0], row[1], row[2], row[3])

    def prune(self, older_than_days: float) -> int:
        """Delete answers older than that which got no feedback; returns how many."""
        cutoff = time.time() - older_than_days * 86400.0
        with self._transaction() as db:
            cursor = db.execute(
                "DELETE FROM answers WHERE created < ? AND response_id NOT IN "
                "(SELECT response_id FROM feedback)",
                (cutoff,),
            )
            return cursor.rowcount

    # -- reading ---------------------------------------------------------------------------------

    def answer(self, response_id: str) -> AnswerRecord | None:
        """One answer by id, or None."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT response_id, adapter, version, unit, question, answer, abstained, "
                "sentences, supported, support_sum, citation_precision, latency_s, canary_id, "
                "arm, created, documents FROM answers WHERE response_id = ?",
                (response_id,),
            ).fetchone()
        if row is None:
            return None
        observation = Observation(bool(row[6]), row[7], row[8], row[9], row[10], row[11])
        return AnswerRecord(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            observation,
            canary_id=row[12],
            arm=row[13],
            created=row[14],
            documents=tuple(json.loads(row[15])),
        )

    def rated(self) -> list[RatedAnswer]:
        """Every answer that got feedback, oldest rating first."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT a.response_id, a.question, a.answer, a.abstained, f.rating, f.correction, "
                "a.adapter, a.version, f.created, a.documents FROM feedback AS f JOIN answers AS a "
                "ON a.response_id = f.response_id ORDER BY f.created, a.response_id"
            ).fetchall()
        return [
            RatedAnswer(
                r[0],
                r[1],
                r[2],
                bool(r[3]),
                r[4],
                r[5],
                r[6],
                r[7],
                r[8],
                documents=tuple(json.loads(r[9])),
            )
            for r in rows
        ]

    def canary_requests(self, canary_id: str, arm: Literal["current", "canary"]) -> int:
        """Answers recorded on one arm of a canary."""
        with self._transaction() as db:
            (count,) = db.execute(
                "SELECT COUNT(*) FROM answers WHERE canary_id = ? AND arm = ?", (canary_id, arm)
            ).fetchone()
        return int(count)

    def arm_units(self, canary_id: str) -> dict[str, list[UnitTotals]]:
        """Unit totals of each arm of a canary: ``{"current": [...], "canary": [...]}``."""
        found = self._units("a.arm", "a.canary_id = ?", (canary_id,))
        return {arm: found.get(arm, []) for arm in ("current", "canary")}

    def version_units(
        self, adapter: str, *, canary_id: str | None = None
    ) -> dict[int | None, list[UnitTotals]]:
        """Unit totals per version of ``adapter`` (only a canary's split traffic, when given)."""
        if canary_id is None:
            return self._units("a.version", "a.adapter = ?", (adapter,))
        return self._units("a.version", "a.adapter = ? AND a.canary_id = ?", (adapter, canary_id))

    # -- internals -------------------------------------------------------------------------------

    def _units(self, group: str, where: str, args: tuple[str, ...]) -> dict[Any, list[UnitTotals]]:
        found: dict[Any, list[UnitTotals]] = {}
        with self._transaction() as db:
            for row in db.execute(_UNIT_SUMS.format(group=group, where=where), args):
                found.setdefault(row[0], []).append(
                    UnitTotals(
                        requests=row[2],
                        abstained=row[3],
                        sentences=row[4],
                        supported=row[5],
                        support_sum=row[6],
                        checked_answers=row[7],
                        precision_sum=row[8],
                        latency_sum=row[9],
                        rated=row[10],
                        up=row[11],
                    )
                )
        return found

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A short connection whose block is one transaction (committed, or rolled back on an
        error); the schema is made on first use."""
        try:
            if not self._ready:
                self._create()
            with closing(sqlite3.connect(self.path, timeout=30.0)) as db:
                db.execute("PRAGMA foreign_keys = ON")
                db.execute("PRAGMA synchronous = NORMAL")
                with db:
                    yield db
        except sqlite3.Error as exc:
            raise LiveStoreError(
                f"the live store {self.path} failed ({exc}): check the disk and the file's "
                "permissions, or move the file aside to start a new one"
            ) from exc

    def _create(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with closing(sqlite3.connect(self.path, timeout=30.0)) as db:
            db.execute("PRAGMA journal_mode = WAL")
            (version,) = db.execute("PRAGMA user_version").fetchone()
            if version not in (0, SCHEMA_VERSION):
                raise FeedbackError(
                    f"{self.path} has schema version {version}; this ragtune reads version "
                    f"{SCHEMA_VERSION}: upgrade ragtune, or move the file aside"
                )
            with db:
                db.executescript(_SCHEMA)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._ready = True


def _unknown(response_id: str) -> str:
    return (
        f"no answer {response_id!r} for this tenant: give the id of an answer this tenant "
        "received (the `id` of the chat completion, or Answer.response_id), within the store's "
        "keep_days"
    )
