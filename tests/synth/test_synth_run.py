"""``ragtune synth`` end to end on tiny models: a two-tenant index, the OpenAI-compatible teacher
served here (it writes "what" in place of the answer) and the local one, resumption after an
interruption or a failing endpoint, bad input, the CLI; then synth, train, and the adapter
answers."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ragtune.cli import app
from ragtune.errors import SynthError, TeacherError
from ragtune.eval.questions import read_questions
from ragtune.synth import synthesize
from ragtune.synth.unanswerable import MADE_UP_NAMES
from tests.synth.server import Endpoint, running_endpoint

DOCS = {
    "acme": {
        "returns.md": "# Returns\n\nItems can be returned within 30 days of delivery. The refund "
        "arrives in 5 business days. Write to ana.silva@example.org for help.\n",
        "warranty.md": "# Warranty\n\nThe blender motor is covered for five years. Orbix "
        "Industries in Lyon repairs every motor.\n",
        "shipping.md": "# Shipping\n\nExpress shipping costs 8.50 pounds in the UK. Orders ship "
        "from Leeds since March 2019.\n",
    },
    "globex": {
        "plans.md": "# Plans\n\nThe platinum plan costs 450 dollars a month. Globex was founded "
        "in Springfield in 1989.\n",
    },
}


def synth_setup(root: Path, embedder_dir: Path, synth: dict[str, Any]) -> dict[str, Any]:
    """Write :data:`DOCS` under ``root`` (a folder per tenant) and return a config for them: the
    tiny embedder and Llama, a hybrid index at ``root/index``, and ``synth`` as its synth
    section."""
    from tests.generate.tiny import save_tiny

    for tenant, docs in DOCS.items():
        (root / tenant).mkdir()
        for name, text in docs.items():
            (root / tenant / name).write_text(text, encoding="utf-8")
    return {
        "embedder": {"model": str(embedder_dir), "device": "cpu"},
        "chunking": {"chunk_tokens": 64, "overlap_tokens": 8},
        "ingest": {"scrub_pii": False},  # so that the teacher's own scrub is what is tested
        "retriever": {"type": "hybrid", "index": str(root / "index"), "top_k": 2},
        "generator": {
            "model": str(save_tiny(root / "llama")),
            "grounding": "none",
            "quantize": "none",
            "device": "cpu",
            "max_new_tokens": 6,
        },
        "adapters": {"root": str(root / "adapters")},
        "checker": {"signals": []},
        "synth": synth,
    }


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Endpoint]:
    with running_endpoint() as running:
        yield running


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, endpoint: Endpoint
) -> dict[str, Any]:
    from ragtune.config import load_config
    from ragtune.indexing import add_to_index, build_index

    root = tmp_path_factory.mktemp("synth")
    raw = synth_setup(
        root,
        tiny_model_dir,
        {
            "teacher": "openai",
            "round_trip_k": 10,  # every chunk: the tiny embedder ranks at random
            "min_answer_f1": 0.0,  # the tiny random model cannot answer
            "question_tokens": 8,
            "answer_tokens": 4,
            "endpoint": {"base_url": endpoint.url, "model": "tiny-teacher", "retries": 0},
        },
    )
    config = load_config(raw)
    embedder = config.embedder.build()
    index = root / "index"
    build_index(
        [root / "acme"], index, embedder=embedder, settings=config.build_settings(), tenant="acme"
    )
    add_to_index([root / "globex"], index, embedder=embedder, tenant="globex")
    return {"root": root, "raw": raw, "index": index}


def _config(setup: dict[str, Any], **synth: Any) -> dict[str, Any]:
    raw = json.loads(json.dumps(setup["raw"]))
    raw["synth"].update(synth)
    return raw


def _texts(path: Path) -> bytes:
    return path.read_bytes()


def test_synth_writes_what_train_and_eval_read_from_one_tenant_only(
    setup: dict[str, Any], endpoint: Endpoint, tmp_path: Path
) -> None:
    from ragtune.index import IndexStore

    before = len(endpoint.requests)
    seen: list[tuple[int, int]] = []
    result = synthesize(
        _config(setup),
        index=setup["index"],
        tenant="acme",
        out=tmp_path / "acme-qa.jsonl",
        progress=lambda done, total: seen.append((done, total)),
    )
    report = result.report
    assert report.chunks == report.chunks_done == result.chunks_now >= 3
    assert seen[0] == (0, report.chunks) and seen[-1] == (report.chunks, report.chunks)
    questions = read_questions(result.files.questions)
    assert report.kept == len(questions) > 0 and report.kept_after["candidates"] >= report.kept
    with IndexStore.open(setup["index"]) as store:
        acme = {p.chunk_id: p for p in store.tenant_passages("acme")}
    rows = [json.loads(line) for line in result.files.questions.read_text().splitlines()]
    for row, question in zip(rows, questions, strict=True):
        assert row["chunk_id"] in acme and question.answerable
        assert question.passage_id is not None and "/acme/" in question.passage_id
        assert question.answers[0] in acme[row["chunk_id"]].text
        assert question.answers[0] not in question.question
    sent = "\n".join(json.dumps(r) for r in endpoint.requests[before:])
    assert "platinum" not in sent and "Springfield" not in sent  # globex's chunks: never read
    assert "ana.silva@example.org" not in sent and "Orbix" in sent
    unanswerable = read_questions(result.files.unanswerable, answerable=False)
    assert 0 < len(unanswerable) <= report.chunks and report.unanswerable == len(unanswerable)
    assert all(any(n in q.question for n in MADE_UP_NAMES) for q in unanswerable)
    saved = json.loads(result.files.report.read_text())
    assert saved["kept"] == report.kept and saved["complete"] is True
    assert saved["teacher"] == "openai:tiny-teacher" and saved["tenant"] == "acme"
    assert set(saved["dropped"]) == {
        "no_usable_question",
        "answer_in_question",
        "round_trip_missed",
        "answer_mismatch",
        "near_duplicate",
        "over_per_chunk",
    }
    assert saved["seconds_per_kept_question"] > 0 and saved["answer_kinds"]
    # Run again: every chunk is done, nothing is asked.
    asked = len(endpoint.requests)
    again = synthesize(
        _config(setup), index=setup["index"], tenant="acme", out=result.files.questions
    )
    assert again.chunks_now == 0 and len(endpoint.requests) == asked
    assert again.report.kept == report.kept


def test_an_interrupted_run_resumes_to_the_same_output(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    whole = synthesize(
        _config(setup), index=setup["index"], tenant="acme", out=tmp_path / "w.jsonl"
    )

    def stop_after_one(done: int, total: int) -> None:
        if done == 1:
            raise KeyboardInterrupt

    cut = tmp_path / "cut.jsonl"
    with pytest.raises(KeyboardInterrupt):
        synthesize(
            _config(setup), index=setup["index"], tenant="acme", out=cut, progress=stop_after_one
        )
    partial = json.loads(cut.with_name("cut.report.json").read_text())
    assert partial["chunks_done"] == 1 and partial["complete"] is False
    read_questions(cut)  # what was written so far is a valid question file
    # A chunk half written when the process died: its rows are cut off on resumption.
    with cut.open("a") as handle:
        handle.write('{"id": "torn", "quest')
    resumed = synthesize(_config(setup), index=setup["index"], tenant="acme", out=cut)
    assert resumed.chunks_now == whole.report.chunks - 1
    assert _texts(cut) == _texts(whole.files.questions)
    assert _texts(resumed.files.unanswerable) == _texts(whole.files.unanswerable)
    assert resumed.report.kept_after == whole.report.kept_after


def test_a_failing_endpoint_stops_with_what_was_written_kept(
    setup: dict[str, Any], endpoint: Endpoint, tmp_path: Path
) -> None:
    whole = synthesize(
        _config(setup), index=setup["index"], tenant="acme", out=tmp_path / "w.jsonl"
    )
    out = tmp_path / "f.jsonl"
    first = synthesize(_config(setup), index=setup["index"], tenant="acme", out=out, limit=1)
    assert first.chunks_now == 1 and first.report.chunks_done == 1
    endpoint.fail_from = len(endpoint.requests)
    try:
        with pytest.raises(TeacherError, match=r"HTTP 500.*1 chunks finished so far are kept"):
            synthesize(_config(setup), index=setup["index"], tenant="acme", out=out)
    finally:
        endpoint.fail_from = None
    assert len(read_questions(out)) == first.report.kept
    resumed = synthesize(_config(setup), index=setup["index"], tenant="acme", out=out)
    assert resumed.chunks_now == whole.report.chunks - 1
    assert _texts(out) == _texts(whole.files.questions)


def test_an_unreachable_endpoint_then_the_right_one(
    setup: dict[str, Any], endpoint: Endpoint, tmp_path: Path
) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    raw = _config(setup)
    raw["synth"]["endpoint"]["base_url"] = f"http://127.0.0.1:{port}/v1"
    out = tmp_path / "u.jsonl"
    with pytest.raises(TeacherError, match="cannot be reached"):
        synthesize(raw, index=setup["index"], tenant="acme", out=out)
    assert read_questions_or_empty(out) == []
    done = synthesize(_config(setup), index=setup["index"], tenant="acme", out=out)
    assert done.report.chunks_done == done.report.chunks and done.report.kept > 0


def read_questions_or_empty(path: Path) -> list[Any]:
    return read_questions(path) if path.read_text().strip() else []


def test_bad_input_is_refused_clearly(setup: dict[str, Any], tmp_path: Path) -> None:
    from ragtune.config import load_config
    from ragtune.indexing import build_index, remove_from_index

    with pytest.raises(SynthError, match=r"tenants acme, globex but none of 'initech'"):
        synthesize(_config(setup), index=setup["index"], tenant="initech", out=tmp_path / "i.jsonl")
    with pytest.raises(SynthError, match="not a valid name"):
        synthesize(_config(setup), index=setup["index"], tenant="../acme", out=tmp_path / "i.jsonl")
    raw = _config(setup, allow_external=False)
    raw["synth"]["endpoint"]["base_url"] = "https://api.example.com/v1"
    with pytest.raises(SynthError, match="allow_external is false"):
        synthesize(raw, index=setup["index"], tenant="acme", out=tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists()  # refused before anything was written
    docs = tmp_path / "one"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nItems can be returned within 30 days of delivery.\n")
    empty = tmp_path / "empty-index"
    config = load_config(setup["raw"])
    build_index([docs], empty, embedder=config.embedder.build(), settings=config.build_settings())
    remove_from_index([str(docs / "a.md")], empty)
    with pytest.raises(SynthError, match="holds no chunks"):
        synthesize(_config(setup), index=empty, tenant="acme", out=tmp_path / "e.jsonl")


def test_the_local_teacher_on_a_model_that_writes_no_question(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    """The tiny random model replies with noise: the teacher keeps nothing, and that is
    reported; the cloze fallback writes for the candidates it lost (``none``: nothing)."""
    result = synthesize(
        _config(setup, teacher="local", fallback="none"),
        index=setup["index"],
        tenant="acme",
        out=tmp_path / "l.jsonl",
    )
    report = result.report
    assert report.teacher.startswith("local:") and report.chunks_done == report.chunks
    assert report.kept_after["candidates"] > 0
    assert report.dropped["no_usable_question"] >= report.kept_after["candidates"] - 1
    assert report.fallback_kept_after["candidates"] == 0
    assert len(read_questions_or_empty(result.files.questions)) == report.kept
    helped = synthesize(
        _config(setup, teacher="local", fallback="cloze"),
        index=setup["index"],
        tenant="acme",
        out=tmp_path / "f.jsonl",
    )
    rows = [json.loads(line) for line in helped.files.questions.read_text().splitlines()]
    assert helped.report.fallback_kept_after["candidates"] >= report.kept_after["candidates"] - 1
    assert helped.report.kept == len(rows) > report.kept
    assert {r["teacher"] for r in rows} <= {"cloze", helped.report.teacher}
    assert "cloze" in {r["teacher"] for r in rows}


def test_cli_synth(setup: dict[str, Any], tmp_path: Path) -> None:
    config = tmp_path / "synth.yaml"
    config.write_text(yaml.safe_dump(_config(setup, teacher="local")))
    out = tmp_path / "cli.jsonl"
    args = ["synth", "--index", str(setup["index"]), "--tenant", "acme", "--out", str(out)]
    result = CliRunner().invoke(
        app, [*args, "--teacher", "openai", "--per-chunk", "1", "--limit", "2", "-c", str(config)]
    )
    assert result.exit_code == 0, result.output
    assert "questions from 2 of" in result.output and "report" in result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    per_chunk = [r["chunk_id"] for r in rows]
    assert rows and len(per_chunk) == len(set(per_chunk))  # --per-chunk 1
    bad = CliRunner().invoke(app, [*args, "--teacher", "oracle", "-c", str(config)])
    assert isinstance(bad.exception, SynthError) and "local, openai, cloze" in str(bad.exception)
    folder = CliRunner().invoke(app, [*args[:-1], str(tmp_path), "-c", str(config)])
    assert isinstance(folder.exception, SynthError) and "is a folder" in str(folder.exception)
    assert "chunks" not in folder.output  # an early error prints no empty progress bar


def test_synth_then_train_then_the_adapter_answers(setup: dict[str, Any], tmp_path: Path) -> None:
    from ragtune import Assistant
    from ragtune.train import train_adapter

    result = synthesize(
        _config(setup), index=setup["index"], tenant="acme", out=tmp_path / "qa.jsonl"
    )
    raw = _config(setup)
    raw["adapters"]["root"] = str(tmp_path / "adapters")
    raw["train"] = {
        "adapter": {"type": "lora", "r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        "data": {"passages": 2, "validation_share": 0.34},
        "loop": {"batch_size": 2, "max_steps": 3, "eval_every": 3, "max_length": 512},
    }
    trained = train_adapter(
        raw,
        result.files.questions,
        tenant="acme",
        name="synth",
        index=setup["index"],
        unanswerable=result.files.unanswerable,
    )
    assert trained.registered.card.ref == "acme/synth@v1"
    assert trained.examples["train_answer"] + trained.examples["train_no gold"] > 0
    with Assistant.from_config(raw) as assistant:
        answer = assistant.ask(
            "How long can items be returned?", tenant="acme", adapter="acme/synth"
        )
    assert (answer.adapter, answer.adapter_version) == ("acme/synth", 1)
    assert answer.timings.generate > 0


def test_the_cloze_teacher_needs_no_model_to_write(setup: dict[str, Any], tmp_path: Path) -> None:
    result = synthesize(
        _config(setup, teacher="cloze"),
        index=setup["index"],
        tenant="acme",
        out=tmp_path / "c.jsonl",
    )
    report = result.report
    assert report.teacher == "cloze:rules" and report.kept > 0
    assert report.kept_after["written"] >= report.kept_after["candidates"] - 1
    questions = read_questions(result.files.questions)
    assert all(q.question.split()[0] in {"When", "How", "Who", "What", "Where"} for q in questions)
    # The fallback does nothing for the cloze teacher, so changing it does not refuse the output.
    again = synthesize(
        _config(setup, teacher="cloze", fallback="none"),
        index=setup["index"],
        tenant="acme",
        out=tmp_path / "c.jsonl",
    )
    assert again.report.kept == report.kept
    with pytest.raises(SynthError, match="other synth settings"):
        synthesize(
            _config(setup, teacher="cloze", per_chunk=1),
            index=setup["index"],
            tenant="acme",
            out=tmp_path / "c.jsonl",
        )
