"""A build or update killed half-way (SIGKILL, no clean-up) leaves the previous index whole."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ragtune.index import IndexStore, Manifest
from ragtune.indexing import BuildSettings, add_to_index, build_index

_UPDATE = """
import sys
from ragtune.index import SentenceTransformerEmbedder
from ragtune.indexing import add_to_index, build_index, BuildSettings
embedder = SentenceTransformerEmbedder(sys.argv[1], device="cpu")
if sys.argv[2] == "add":
    add_to_index([sys.argv[3]], sys.argv[4], embedder=embedder)
else:
    build_index([sys.argv[3]], sys.argv[4], embedder=embedder,
                settings=BuildSettings(chunk_tokens=64, overlap_tokens=8))
"""


def _kill_at(point: str, args: list[str], tmp_path: Path) -> None:
    flag = tmp_path / f"reached-{point}"
    env = os.environ | {"RAGTUNE_FAULT_PAUSE": point, "RAGTUNE_FAULT_FILE": str(flag)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _UPDATE, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not flag.exists():
        if proc.poll() is not None:
            raise AssertionError(
                f"update ended before {point}: {proc.stderr.read().decode()[-2000:]}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"update never reached {point}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _snapshot(index: Path) -> tuple[dict[str, int], list[str]]:
    with IndexStore.open(index) as store:
        hits = store.search_lexical("return refund days", 3)
        return dict(store.manifest.counts), [p.chunk_id for p in store.passages(*hits)]


@pytest.mark.parametrize("point", ["after-embed", "before-write", "before-commit"])
def test_killed_add_leaves_the_old_index_whole(
    point, corpus, tmp_path, tiny_embedder, tiny_model_dir
):
    index = tmp_path / "idx"
    build_index(
        [corpus],
        index,
        embedder=tiny_embedder,
        settings=BuildSettings(chunk_tokens=64, overlap_tokens=8),
    )
    before = _snapshot(index)
    generation = Manifest.read(index).generation
    new_docs = tmp_path / "new"
    new_docs.mkdir()
    for i in range(5):
        (new_docs / f"n{i}.txt").write_text(f"New document {i} about refunds and returns.")

    _kill_at(point, [str(tiny_model_dir), "add", str(new_docs), str(index)], tmp_path)

    assert Manifest.read(index).generation == generation
    assert _snapshot(index) == before
    # The next writer sweeps the leftovers and succeeds.
    report = add_to_index([new_docs], index, embedder=tiny_embedder)
    assert report.documents_added == 5
    leftovers = [p.name for p in index.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_killed_after_commit_shows_the_new_index(corpus, tmp_path, tiny_embedder, tiny_model_dir):
    index = tmp_path / "idx"
    build_index(
        [corpus],
        index,
        embedder=tiny_embedder,
        settings=BuildSettings(chunk_tokens=64, overlap_tokens=8),
    )
    extra = tmp_path / "extra.txt"
    extra.write_text("Gift cards never expire.")
    _kill_at("after-commit", [str(tiny_model_dir), "add", str(extra), str(index)], tmp_path)
    counts, _ = _snapshot(index)
    assert counts["documents"] == 5


def test_killed_rebuild_keeps_the_previous_index(corpus, tmp_path, tiny_embedder, tiny_model_dir):
    index = tmp_path / "idx"
    build_index(
        [corpus / "returns.md"],
        index,
        embedder=tiny_embedder,
        settings=BuildSettings(chunk_tokens=64, overlap_tokens=8),
    )
    before = _snapshot(index)
    _kill_at("before-commit", [str(tiny_model_dir), "build", str(corpus), str(index)], tmp_path)
    assert _snapshot(index) == before
