"""The pgvector index store against a real PostgreSQL (from the ``pgserver`` wheel): it answers
as the folder store does, keeps tenants apart in SQL, leaves the previous state after a killed
or failed update, and refuses what it cannot use with the fix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragtune.errors import (
    ConfigError,
    IndexError_,
    IndexFormatError,
    IndexNotFoundError,
    IndexUnavailableError,
    IngestError,
)
from ragtune.index import HNSWSpec, IndexStore
from ragtune.index.pgschema import PgStoreSettings
from ragtune.index.pgstore import PgIndexStore
from ragtune.indexing import BuildSettings, add_to_index, build_index, remove_from_index
from ragtune.retrieve import DenseRetriever, HybridRetriever, LexicalRetriever
from tests.index.pg import PgServer, start_server

CORPUS = {
    "returns.md": "# Returns\n\nAn unopened blender can be returned within 30 days for a refund.",
    "shipping.md": "# Shipping\n\nParcels leave the warehouse in Rotterdam every weekday morning.",
    "warranty.md": "# Warranty\n\nThe motor carries a two-year warranty against defects.",
    "privacy.md": "# Privacy\n\nOrder records are kept for seven years, then erased.",
    "support.md": "# Support\n\nThe helpdesk answers telephone calls from nine to five.",
    "recipes.md": "# Recipes\n\nA mango smoothie needs yoghurt, ice and a ripe mango.",
}
QUERIES = [
    "Can I get a refund for an unopened blender?",
    "Where is the warehouse?",
    "How long does the motor warranty last?",
    "mango smoothie yoghurt",
    "telephone helpdesk hours",
]
GLOBEX = {"plans.md": "# Plans\n\nThe platinum plan costs 450 dollars a month."}


@pytest.fixture(scope="session")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    yield from start_server(tmp_path_factory.mktemp("pgdata"))


def _write(folder: Path, docs: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pg-docs")
    return {"acme": _write(root / "acme", CORPUS), "globex": _write(root / "globex", GLOBEX)}


@pytest.fixture(scope="module")
def pair(
    pg: PgServer,
    docs: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
    _tiny_embedder_session: Any,
) -> Iterator[tuple[IndexStore, PgIndexStore]]:
    """The same corpus in a folder index (exact FAISS) and in PostgreSQL (an HNSW graph)."""
    embedder = _tiny_embedder_session
    folder = tmp_path_factory.mktemp("pg-pair") / "index"
    build_index(
        [docs["acme"]],
        folder,
        embedder=embedder,
        settings=BuildSettings(chunk_tokens=64, overlap_tokens=8),
    )
    settings = pg.settings("pair")
    build_index(
        [docs["acme"]],
        settings,
        embedder=embedder,
        settings=BuildSettings(chunk_tokens=64, overlap_tokens=8, vectors=HNSWSpec()),
    )
    with IndexStore.open(folder) as local, PgIndexStore.open(settings) as remote:
        yield local, remote


def _ids(passages: list[Any]) -> list[str]:
    return [p.chunk_id for p in passages]


@pytest.mark.parametrize("query", QUERIES)
def test_dense_agrees_with_the_folder_store(
    pair: tuple[IndexStore, PgIndexStore], _tiny_embedder_session: Any, query: str
) -> None:
    local, remote = pair
    a = DenseRetriever(local, _tiny_embedder_session).retrieve(query, 3)
    b = DenseRetriever(remote, _tiny_embedder_session).retrieve(query, 3)
    assert set(_ids(a)) == set(_ids(b))
    scores = {p.chunk_id: p.score for p in a}
    for p in b:
        assert p.score == pytest.approx(scores[p.chunk_id], abs=1e-5)
        assert p.source and p.provenance.sha256  # provenance travels with the chunk


@pytest.mark.parametrize("query", QUERIES)
def test_lexical_and_hybrid_agree_with_the_folder_store(
    pair: tuple[IndexStore, PgIndexStore], _tiny_embedder_session: Any, query: str
) -> None:
    lexical = [LexicalRetriever(s).retrieve(query, 3) for s in pair]
    assert lexical[0], "each query matches a chunk by its words"
    assert _ids(lexical[0]) == _ids(lexical[1])
    hybrid = [HybridRetriever(s, _tiny_embedder_session).retrieve(query, 3) for s in pair]
    assert _ids(hybrid[0]) == _ids(hybrid[1])
    assert hybrid[0][0].chunk_id == lexical[0][0].chunk_id


def test_a_query_of_stop_words_finds_nothing_lexically(
    pair: tuple[IndexStore, PgIndexStore],
) -> None:
    assert LexicalRetriever(pair[1]).retrieve("the of and", 3) == []


# ---- tenants --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tenants(
    pg: PgServer,
    docs: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
    _tiny_embedder_session: Any,
) -> Iterator[PgIndexStore]:
    """acme: many small documents; globex: one. An HNSW graph keeping few candidates, so a
    globex query cannot be filled from the graph alone."""
    many = tmp_path_factory.mktemp("many") / "acme.jsonl"
    many.write_text(
        "".join(
            json.dumps(
                {"id": f"n{i}", "text": f"Note {i}: the blender order {i} shipped on day {i}."}
            )
            + "\n"
            for i in range(120)
        ),
        encoding="utf-8",
    )
    settings = pg.settings("tenants")
    spec = BuildSettings(
        chunk_tokens=64, overlap_tokens=8, vectors=HNSWSpec(m=4, ef_construction=8, ef_search=8)
    )
    build_index(
        [docs["acme"], many],
        settings,
        embedder=_tiny_embedder_session,
        settings=spec,
        tenant="acme",
    )
    add_to_index([docs["globex"]], settings, embedder=_tiny_embedder_session, tenant="globex")
    with PgIndexStore.open(settings) as store:
        yield store


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_a_tenant_never_sees_another_tenants_rows(
    tenants: PgIndexStore, _tiny_embedder_session: Any, mode: str
) -> None:
    retriever = {
        "dense": DenseRetriever(tenants, _tiny_embedder_session),
        "lexical": LexicalRetriever(tenants),
        "hybrid": HybridRetriever(tenants, _tiny_embedder_session),
    }[mode]
    question = "What does the platinum plan cost?"
    acme = retriever.retrieve(question, 50, tenant="acme")
    assert all(p.provenance.tenant == "acme" for p in acme)
    assert "platinum" not in " ".join(p.text for p in acme)
    globex = retriever.retrieve(question, 5, tenant="globex")
    assert [p.provenance.tenant for p in globex] == ["globex"]  # found, though the graph is small
    assert "platinum" in globex[0].text
    nobody = retriever.retrieve(question, 5, tenant="initech")
    assert nobody == []


def test_tenant_filter_combines_with_metadata(
    tenants: PgIndexStore, _tiny_embedder_session: Any
) -> None:
    hits = DenseRetriever(tenants, _tiny_embedder_session).retrieve(
        "blender order", 5, tenant="acme", metadata={"id": "n7"}
    )
    assert [p.provenance.metadata.get("id") for p in hits] == ["n7"]


def test_documents_of_a_tenant_by_name(tenants: PgIndexStore) -> None:
    assert [p.provenance.tenant for p in tenants.document_passages("n3", tenant="acme")] == ["acme"]
    assert tenants.document_passages("n3", tenant="globex") == []


# ---- updates --------------------------------------------------------------------------------


def _state(settings: PgStoreSettings) -> tuple[dict[str, int], list[str]]:
    with PgIndexStore.open(settings) as store:
        hits = store.search_lexical("refund blender warranty", 5)
        return dict(store.manifest.counts), [p.chunk_id for p in store.passages(*hits)]


@pytest.fixture
def small(
    pg: PgServer, docs: dict[str, Path], _tiny_embedder_session: Any, request: pytest.FixtureRequest
) -> PgStoreSettings:
    settings = pg.settings(f"t_{request.node.name.split('[')[0][-40:].lower()}")
    build_index(
        [docs["acme"]],
        settings,
        embedder=_tiny_embedder_session,
        settings=BuildSettings(chunk_tokens=64, overlap_tokens=8),
    )
    return settings


def test_add_remove_change_only_those_documents(
    small: PgStoreSettings, docs: dict[str, Path], _tiny_embedder_session: Any
) -> None:
    before, _ = _state(small)
    report = add_to_index([docs["globex"]], small, embedder=_tiny_embedder_session, tenant="globex")
    assert report.documents_added == 1 and report.manifest is not None
    assert report.manifest.counts["documents"] == before["documents"] + 1
    with pytest.raises(IndexError_, match="nothing was removed"):
        remove_from_index([str(docs["globex"] / "plans.md"), "no-such-key"], small, tenant="globex")
    report = remove_from_index([str(docs["globex"] / "plans.md")], small, tenant="globex")
    assert report.documents_removed == 1
    assert _state(small)[0]["documents"] == before["documents"]
    assert _state(small)[0]["vectors"] == before["vectors"]


def test_a_failed_update_leaves_the_previous_state(
    small: PgStoreSettings, tmp_path: Path, _tiny_embedder_session: Any
) -> None:
    before = _state(small)
    bad = _write(
        tmp_path / "bad",
        {"new.md": "# New\n\nA refund for a blender warranty claim.", "empty.md": ""},
    )
    with pytest.raises(IngestError):
        add_to_index([bad], small, embedder=_tiny_embedder_session, strict=True)
    assert _state(small) == before


_UPDATE = """
import sys
from ragtune.index import SentenceTransformerEmbedder
from ragtune.index.pgschema import PgStoreSettings
from ragtune.indexing import add_to_index
embedder = SentenceTransformerEmbedder(sys.argv[1], device="cpu")
add_to_index([sys.argv[2]], PgStoreSettings(dsn=sys.argv[3], schema=sys.argv[4]), embedder=embedder)
"""


@pytest.mark.parametrize("point", ["after-embed", "before-commit"])
def test_a_killed_update_leaves_the_previous_state(
    small: PgStoreSettings,
    tmp_path: Path,
    tiny_model_dir: Path,
    _tiny_embedder_session: Any,
    point: str,
) -> None:
    before = _state(small)
    new = _write(tmp_path / "new", {"new.md": "# New\n\nA refund for a blender warranty claim."})
    flag = tmp_path / "reached"
    env = os.environ | {"RAGTUNE_FAULT_PAUSE": point, "RAGTUNE_FAULT_FILE": str(flag)}
    args = [str(tiny_model_dir), str(new), small.dsn, small.schema]
    proc = subprocess.Popen([sys.executable, "-c", _UPDATE, *args], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not flag.exists():
        if proc.poll() is not None:
            raise AssertionError(
                f"update ended before {point}: {proc.stderr.read().decode()[-2000:]}"
            )  # type: ignore[union-attr]
        assert time.monotonic() < deadline, f"update never reached {point}"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert _state(small) == before
    # The server ended the dead writer's transaction and lock: the next update goes through.
    deadline = time.monotonic() + 10
    while True:
        try:
            report = add_to_index([new], small, embedder=_tiny_embedder_session)
            break
        except IndexError_ as exc:  # the server notices the dead connection within moments
            assert "another process" in str(exc) and time.monotonic() < deadline
            time.sleep(0.2)
    assert report.documents_added == 1
    assert _state(small)[0]["documents"] == before[0]["documents"] + 1


def test_a_second_writer_is_refused(
    small: PgStoreSettings, docs: dict[str, Path], _tiny_embedder_session: Any
) -> None:
    from ragtune.index.pgupdate import PgIndexUpdate

    with PgIndexUpdate(small), pytest.raises(IndexError_, match="another process"):
        add_to_index([docs["globex"]], small, embedder=_tiny_embedder_session)


# ---- refusals -------------------------------------------------------------------------------


def test_an_index_of_another_version_is_refused_with_the_fix(
    small: PgStoreSettings, pg: PgServer, docs: dict[str, Path], _tiny_embedder_session: Any
) -> None:
    pg.sql(f"UPDATE {small.schema}.ragtune_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(IndexFormatError, match=r"version 99.*Rebuild it with `ragtune index build"):
        PgIndexStore.open(small)
    with pytest.raises(IndexFormatError):
        add_to_index([docs["globex"]], small, embedder=_tiny_embedder_session)
    # The fix works: a build replaces it.
    build_index(
        [docs["acme"]],
        small,
        embedder=_tiny_embedder_session,
        settings=BuildSettings(chunk_tokens=64, overlap_tokens=8),
    )
    PgIndexStore.open(small).close()


def test_a_missing_index_and_a_foreign_schema(
    pg: PgServer, docs: dict[str, Path], _tiny_embedder_session: Any
) -> None:
    with pytest.raises(IndexNotFoundError, match="ragtune index build"):
        PgIndexStore.open(pg.settings("nothing_here"))
    pg.sql("CREATE SCHEMA IF NOT EXISTS payroll")
    pg.sql("CREATE TABLE IF NOT EXISTS payroll.salaries (who text)")
    with pytest.raises(IndexError_, match="not a ragtune index"):
        build_index([docs["acme"]], pg.settings("payroll"), embedder=_tiny_embedder_session)
    assert pg.sql("SELECT count(*) FROM payroll.salaries") == [(0,)]


def test_an_unreachable_database_names_the_fix(
    docs: dict[str, Path], _tiny_embedder_session: Any
) -> None:
    nowhere = PgStoreSettings(
        dsn="host=127.0.0.1 port=9 dbname=rag user=ragtune", connect_timeout_s=2
    )
    with pytest.raises(IndexUnavailableError, match="cannot reach the database.*index.store.dsn"):
        PgIndexStore.open(nowhere)
    with pytest.raises(IndexUnavailableError, match="Nothing was read or changed"):
        build_index([docs["acme"]], nowhere, embedder=_tiny_embedder_session)


@pytest.fixture(scope="module")
def password_role(pg: PgServer) -> str:
    """A role that must log in with a password (scram), even over the local socket."""
    hba = Path(pg.sql("SHOW hba_file")[0][0])
    text = hba.read_text()
    rule = "local all ragtune_pw scram-sha-256\nhost all ragtune_pw 127.0.0.1/32 scram-sha-256\n"
    if rule not in text:
        hba.write_text(rule + text)
    pg.sql(
        "DO $$ BEGIN CREATE ROLE ragtune_pw LOGIN PASSWORD 'right'; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    pg.sql("SELECT pg_reload_conf()")
    return "ragtune_pw"


def test_a_wrong_password_names_the_fix_and_changes_nothing(
    pg: PgServer,
    small: PgStoreSettings,
    password_role: str,
    docs: dict[str, Path],
    _tiny_embedder_session: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = _state(small)
    params = pg.params | {"user": password_role}
    dsn = " ".join(f"{k}={v}" for k, v in params.items())
    settings = PgStoreSettings(
        dsn=dsn, schema=small.schema, password_env="RAGTUNE_TEST_PG_PASSWORD"
    )
    monkeypatch.setenv("RAGTUNE_TEST_PG_PASSWORD", "wrong")
    with pytest.raises(IndexUnavailableError, match="refused the login.*RAGTUNE_TEST_PG_PASSWORD"):
        add_to_index([docs["globex"]], settings, embedder=_tiny_embedder_session)
    assert _state(small) == before
    monkeypatch.setenv("RAGTUNE_TEST_PG_PASSWORD", "right")  # the right one gets in
    with pytest.raises(IndexError_) as got:
        PgIndexStore.open(settings)
    assert not isinstance(got.value, IndexUnavailableError)  # in, but may not read the tables


def test_the_config_refuses_a_password_in_the_dsn_and_defaults_to_folders() -> None:
    from ragtune.config import FolderStoreConfig, load_config

    assert isinstance(load_config({}).index.store, FolderStoreConfig)
    with pytest.raises(ConfigError, match="PGPASSWORD"):
        load_config({"index": {"store": {"type": "pgvector", "dsn": "host=db user=r password=x"}}})
    with pytest.raises(ConfigError, match="PGPASSWORD"):
        load_config({"index": {"store": {"type": "pgvector", "dsn": "postgresql://r:x@db/rag"}}})
    config = load_config(
        {"index": {"store": {"type": "pgvector", "dsn": "host=db user=r", "schema": "kb"}}}
    )
    assert config.index_location() == PgStoreSettings(dsn="host=db user=r", schema="kb")
    with pytest.raises(ConfigError, match="schema 'kb'"):
        config.index_location("indexes/handbook")


def test_vectors_keep_their_dimension(pair: tuple[IndexStore, PgIndexStore]) -> None:
    _, remote = pair
    ids, scores = remote.search_dense(
        np.ones(remote.manifest.embedder.dimension, dtype=np.float32), 2
    )
    assert len(ids) == 2 and np.all(scores <= 1.0001)


def test_the_cli_builds_searches_and_changes_a_pgvector_index(
    pg: PgServer, docs: dict[str, Path], tmp_path: Path, tiny_model_dir: Path
) -> None:
    from typer.testing import CliRunner

    from ragtune.cli import app

    config = tmp_path / "pg.yaml"
    config.write_text(
        f"embedder: {{model: {tiny_model_dir}, device: cpu}}\n"
        "chunking: {chunk_tokens: 64, overlap_tokens: 8}\n"
        f"index: {{store: {{type: pgvector, dsn: '{pg.dsn}', schema: cli}}}}\n"
    )

    def run(*args: str) -> Any:
        result = CliRunner().invoke(app, [*args, "--config", str(config)])
        assert result.exit_code == 0, result.output
        return result

    run("index", "build", str(docs["acme"]), "--out", "cli")
    info = json.loads(run("index", "info", "cli", "--json").stdout)
    assert info["counts"]["documents"] == len(CORPUS) and info["bytes_on_disk"]["vectors"] > 0
    assert "(pgvector, cosine)" in run("index", "info", "cli").output  # the text form too
    for mode in ("dense", "lexical", "hybrid"):
        found = run("index", "search", "cli", "mango smoothie", "-k", "2", "--mode", mode, "--json")
        hits = json.loads(found.stdout)["hits"]
        # lexical search returns only chunks holding a query word: one here
        assert len(hits) == (1 if mode == "lexical" else 2)
        assert hits[0]["source"].endswith("recipes.md")
    run("index", "add", str(docs["globex"]), "--index", "cli", "--tenant", "globex")
    run("index", "remove", str(docs["globex"] / "plans.md"), "--index", "cli", "--tenant", "globex")
    synced = run("index", "sync", str(docs["acme"]), "cli")
    assert "nothing changed" in synced.output
    wrong = CliRunner().invoke(app, ["index", "info", "elsewhere", "--config", str(config)])
    assert wrong.exit_code != 0 and "schema 'cli'" in str(wrong.exception)
