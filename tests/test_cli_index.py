"""``ragtune index ...`` end to end through the command line (in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragtune.cli import app


@pytest.fixture
def tiny_config(tmp_path: Path, tiny_model_dir: Path) -> Path:
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"embedder: {{model: {tiny_model_dir}, device: cpu}}\n"
        "chunking: {chunk_tokens: 64, overlap_tokens: 8}\n"
    )
    return config


def _run(*args: str) -> object:
    result = CliRunner().invoke(app, list(args))
    return result


def test_build_info_search_add_remove_sync(corpus, tmp_path, tiny_config):
    index = tmp_path / "idx"
    built = _run("index", "build", str(corpus), "--out", str(index), "--config", str(tiny_config))
    assert built.exit_code == 0, built.output
    assert "4 document(s) added" in built.output.replace("\n", " ")

    info = _run("index", "info", str(index), "--json")
    manifest = json.loads(info.stdout)
    assert manifest["format_version"] == 1 and manifest["counts"]["documents"] == 4
    assert manifest["embedder"]["dimension"] == 32
    shown = _run("index", "info", str(index))  # the text form reads the same manifest
    assert shown.exit_code == 0, shown.output
    assert "vectors    flat" in shown.output and "4 documents" in shown.output

    for mode in ("dense", "lexical", "hybrid"):
        found = _run(
            "index",
            "search",
            str(index),
            "return item 30 days",
            "-k",
            "2",
            "--mode",
            mode,
            "--json",
        )
        assert found.exit_code == 0, found.output
        hits = json.loads(found.stdout)["hits"]
        assert 1 <= len(hits) <= 2
        assert set(hits[0]) >= {"rank", "score", "chunk_id", "source", "text"}

    queries = tmp_path / "q.jsonl"
    queries.write_text(
        '{"id": "q1", "question": "refund"}\n{"id": "q2", "question": "warranty motor"}\n'
    )
    batch = _run(
        "index", "search", str(index), "--queries", str(queries), "--mode", "lexical", "-k", "1"
    )
    lines = [json.loads(line) for line in batch.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["q1", "q2"]
    assert "Warranty" in lines[1]["hits"][0]["text"]

    extra = tmp_path / "extra.txt"
    extra.write_text("Gift cards never expire.")
    assert _run("index", "add", str(extra), "--index", str(index)).exit_code == 0
    removed = _run("index", "remove", str(corpus / "shipping.txt"), "--index", str(index))
    assert removed.exit_code == 0, removed.output
    (corpus / "warranty.md").unlink()
    synced = _run("index", "sync", str(corpus), str(index))
    assert synced.exit_code == 0, synced.output
    listing = json.loads(_run("index", "info", str(index), "--json", "--documents").stdout)
    # warranty.md is gone; shipping.txt, removed by hand but still in the folder, is back.
    assert sorted(d["title"] for d in listing["documents"]) == [
        "Privacy",
        "Returns",
        "extra",
        "shipping",
    ]


def test_bad_queries_file_names_the_line(corpus, tmp_path, tiny_config):
    index = tmp_path / "idx"
    _run("index", "build", str(corpus), "--out", str(index), "--config", str(tiny_config))
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"id": "q1", "question": "refund"}\n{"id": "q2"\n')
    result = _run("index", "search", str(index), "--queries", str(queries))
    assert result.exit_code != 0
    assert "q.jsonl:2" in str(result.exception) and result.stdout == ""


def test_errors_are_one_clear_line_without_traceback(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "ragtune", "index", "info", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: no index at") and "Traceback" not in proc.stderr
