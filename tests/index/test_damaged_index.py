"""A damaged or foreign index is refused with the fix, and nothing in it is changed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from ragtune.errors import IndexCorruptError, IndexFormatError, IndexNotFoundError
from ragtune.index import IndexStore, Manifest
from ragtune.indexing import BuildSettings, add_to_index, build_index


@pytest.fixture
def index(corpus: Path, tmp_path: Path, tiny_embedder) -> Path:
    out = tmp_path / "idx"
    build_index(
        [corpus],
        out,
        embedder=tiny_embedder,
        settings=BuildSettings(chunk_tokens=64, overlap_tokens=8),
    )
    return out


def _files(index: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(index)): p.read_bytes() for p in sorted(index.rglob("*")) if p.is_file()
    }


def _damage_and_check(
    index: Path, tmp_path: Path, tiny_embedder, error: type[Exception], match: str
) -> None:
    before = _files(index)
    with pytest.raises(error, match=match):
        IndexStore.open(index)
    extra = tmp_path / "extra.txt"
    extra.write_text("More text.")
    with pytest.raises(error):
        add_to_index([extra], index, embedder=tiny_embedder)
    after = _files(index)
    after.pop(".lock", None)
    before.pop(".lock", None)
    assert after == before


def test_corrupt_faiss_file(index, tmp_path, tiny_embedder):
    faiss_file = index / Manifest.read(index).generation / "index.faiss"
    faiss_file.write_bytes(b"not a faiss index at all" * 10)
    _damage_and_check(index, tmp_path, tiny_embedder, IndexCorruptError, "index.faiss.*rebuild")


def test_truncated_faiss_file(index, tmp_path, tiny_embedder):
    faiss_file = index / Manifest.read(index).generation / "index.faiss"
    faiss_file.write_bytes(faiss_file.read_bytes()[:100])
    _damage_and_check(index, tmp_path, tiny_embedder, IndexCorruptError, "rebuild")


def test_corrupt_chunk_table(index, tmp_path, tiny_embedder):
    db = index / Manifest.read(index).generation / "chunks.sqlite"
    db.write_bytes(b"garbage" * 1000)
    with pytest.raises(IndexCorruptError, match=r"chunks.sqlite.*rebuild"):
        IndexStore.open(index)


def test_chunk_table_from_an_older_release(index, tmp_path, tiny_embedder):
    db_path = index / Manifest.read(index).generation / "chunks.sqlite"
    with sqlite3.connect(db_path) as db:
        db.execute("ALTER TABLE chunks DROP COLUMN n_vectors")
    db.close()
    _damage_and_check(
        index, tmp_path, tiny_embedder, IndexCorruptError, r"chunks.n_vectors.*older ragtune"
    )


def test_unknown_format_version(index, tmp_path, tiny_embedder):
    manifest = json.loads((index / "manifest.json").read_text())
    manifest["format_version"] = 99
    (index / "manifest.json").write_text(json.dumps(manifest))
    _damage_and_check(index, tmp_path, tiny_embedder, IndexFormatError, "version 99")


def test_manifest_that_is_not_json(index, tmp_path, tiny_embedder):
    (index / "manifest.json").write_text("{ nope")
    _damage_and_check(index, tmp_path, tiny_embedder, IndexCorruptError, "not valid JSON")


def test_missing_generation(index, tmp_path, tiny_embedder):
    import shutil

    shutil.rmtree(index / Manifest.read(index).generation)
    with pytest.raises(IndexCorruptError, match="missing"):
        IndexStore.open(index)


def test_not_an_index(tmp_path):
    with pytest.raises(IndexNotFoundError, match="index build"):
        IndexStore.open(tmp_path)
    with pytest.raises(IndexNotFoundError, match="no index"):
        IndexStore.open(tmp_path / "absent")


def test_a_failed_rebuild_of_a_damaged_index_can_replace_it(index, corpus, tiny_embedder):
    (index / "manifest.json").write_text("{ nope")
    build_index(
        [corpus],
        index,
        embedder=tiny_embedder,
        settings=BuildSettings(chunk_tokens=64, overlap_tokens=8),
    )
    with IndexStore.open(index) as store:
        assert store.manifest.counts["documents"] == 4
