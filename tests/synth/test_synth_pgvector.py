"""``ragtune synth`` and ``ragtune train`` on a pgvector index (a real PostgreSQL started here):
the same questions as from a folder index, one tenant's chunks only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ragtune.eval.questions import read_questions
from ragtune.synth import synthesize
from tests.index.pg import PgServer, start_server
from tests.synth.test_synth_run import synth_setup


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    yield from start_server(tmp_path_factory.mktemp("pgdata-synth"))


@pytest.fixture(scope="module")
def indexes(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, pg: PgServer
) -> dict[str, Any]:
    """The same two tenants in a folder index and in a pgvector schema."""
    from ragtune.config import load_config
    from ragtune.indexing import add_to_index, build_index

    root = tmp_path_factory.mktemp("synth-pg")
    synth = {"teacher": "cloze", "round_trip_k": 10, "min_answer_f1": 0.0}
    folder = synth_setup(root, tiny_model_dir, synth)
    on_pg = json.loads(json.dumps(folder))
    on_pg["index"] = {"store": {"type": "pgvector", "dsn": pg.dsn, "schema": "synthkb"}}
    for raw, where in ((folder, root / "index"), (on_pg, "synthkb")):
        config = load_config(raw)
        embedder = config.embedder.build()
        location = config.index.location(where)
        build_index(
            [root / "acme"],
            location,
            embedder=embedder,
            settings=config.build_settings(),
            tenant="acme",
        )
        add_to_index([root / "globex"], location, embedder=embedder, tenant="globex")
    return {"folder": folder, "pg": on_pg, "index": root / "index"}


def test_synth_reads_one_tenant_of_a_pgvector_index_as_of_a_folder(
    indexes: dict[str, Any], tmp_path: Path
) -> None:
    from_folder = synthesize(
        indexes["folder"], index=indexes["index"], tenant="acme", out=tmp_path / "f.jsonl"
    )
    from_pg = synthesize(indexes["pg"], index="synthkb", tenant="acme", out=tmp_path / "p.jsonl")
    folder_questions = read_questions(from_folder.files.questions)
    pg_questions = read_questions(from_pg.files.questions)
    assert pg_questions and [q.question for q in pg_questions] == [
        q.question for q in folder_questions
    ]
    assert [q.answers for q in pg_questions] == [q.answers for q in folder_questions]
    text = from_pg.files.questions.read_text() + from_pg.files.unanswerable.read_text()
    assert "platinum" not in text and "Springfield" not in text  # globex's chunks: never read
    assert from_pg.report.chunks == from_folder.report.chunks
    assert "synthkb" in json.loads(from_pg.files.report.read_text())["index"]
    with pytest.raises(Exception, match="none of 'initech'"):
        synthesize(indexes["pg"], index="synthkb", tenant="initech", out=tmp_path / "x.jsonl")


def test_train_on_a_pgvector_index_with_the_mixed_objective(
    indexes: dict[str, Any], tmp_path: Path
) -> None:
    from ragtune.train import train_adapter

    result = synthesize(indexes["pg"], index="synthkb", tenant="acme", out=tmp_path / "qa.jsonl")
    raw = json.loads(json.dumps(indexes["pg"]))
    raw["adapters"]["root"] = str(tmp_path / "adapters")
    raw["train"] = {
        "adapter": {"type": "lora", "r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        "data": {"passages": 2, "validation_share": 0.34, "objective": "mixed"},
        "loop": {"batch_size": 2, "max_steps": 2, "eval_every": 2, "max_length": 512},
    }
    trained = train_adapter(
        raw, result.files.questions, tenant="acme", name="synth", index="synthkb"
    )
    assert trained.registered.card.ref == "acme/synth@v1"
    assert trained.examples["train_lm"] + trained.examples.get("validation_lm", 0) > 0
