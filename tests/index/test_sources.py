"""What a user can name stays in the index: de-duplication, one canonical name per path,
and the chunk store's lookups by file use its index (issue 14, items 1 and 2; issue 13)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ragtune.index import IndexStore
from ragtune.indexing import add_to_index, build_index, remove_from_index, sync_index

MANUAL = "The blender motor is covered for five years. Keep the receipt.\n"


def _sources(index: Path) -> list[str]:
    with IndexStore.open(index) as store:
        return sorted(s for d in store.db.documents() for s in d.sources)


def _finds(index: Path, query: str) -> list[str]:
    with IndexStore.open(index) as store:
        ids, scores = store.search_lexical(query, 5)
        return [p.source for p in store.passages(ids, scores)]


def test_removing_one_of_two_identical_files_keeps_the_other(
    tmp_path, tiny_embedder, small_settings
):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "manual.txt").write_text(MANUAL)
    (docs / "manual-copy.txt").write_text(MANUAL)
    out = tmp_path / "idx"
    build_index([docs], out, embedder=tiny_embedder, settings=small_settings)

    report = remove_from_index([str(docs / "manual-copy.txt")], out)

    assert report.sources_removed == 1 and report.documents_removed == 0
    assert _sources(out) == [str(docs / "manual.txt")]
    assert _finds(out, "blender motor five years") == [str(docs / "manual.txt")]
    # The document goes with its last source.
    report = remove_from_index([str(docs / "manual.txt")], out)
    assert report.documents_removed == 1 and _sources(out) == []


def test_jsonl_records_with_the_same_text_keep_their_own_ids_and_metadata(
    tmp_path, tiny_embedder, small_settings
):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "faq.jsonl").write_text(
        '{"id": "eu-7", "text": "Refunds take five days.", "metadata": {"region": "eu"}}\n'
        '{"id": "us-7", "text": "Refunds take five days.", "metadata": {"region": "us"}}\n'
    )
    out = tmp_path / "idx"
    build_index([docs], out, embedder=tiny_embedder, settings=small_settings)
    with IndexStore.open(out) as store:
        for region in ("eu", "us"):
            allowed = store.allowed_ids(metadata={"region": region})
            assert allowed is not None and len(allowed) == 1
        assert store.document_passages("us-7") and store.document_passages("eu-7")

    remove_from_index(["eu-7"], out)

    with IndexStore.open(out) as store:
        assert store.document_passages("us-7") and not store.document_passages("eu-7")
        assert len(store.allowed_ids(metadata={"region": "us"})) == 1  # type: ignore[arg-type]


def test_remove_by_a_path_through_a_symlinked_folder(tmp_path, tiny_embedder, small_settings):
    real = tmp_path / "real"
    real.mkdir()
    (real / "manual.txt").write_text(MANUAL)
    (real / "other.txt").write_text("Stores open at nine in the morning.\n")
    link = tmp_path / "handbook"
    link.symlink_to(real, target_is_directory=True)
    out = tmp_path / "idx"
    build_index([link], out, embedder=tiny_embedder, settings=small_settings)
    remove_from_index([str(link / "manual.txt")], out)
    assert _sources(out) == [str(real / "other.txt")]


def test_sync_through_a_symlinked_folder_removes_deleted_files(
    tmp_path, tiny_embedder, small_settings
):
    real = tmp_path / "real"
    real.mkdir()
    (real / "manual.txt").write_text(MANUAL)
    (real / "hours.txt").write_text("Stores open at nine in the morning.\n")
    handbook = tmp_path / "handbook"
    handbook.symlink_to(real, target_is_directory=True)
    out = tmp_path / "idx"
    build_index([handbook], out, embedder=tiny_embedder, settings=small_settings)
    (real / "hours.txt").unlink()

    report = sync_index(handbook, out, embedder=tiny_embedder)

    assert report.documents_removed == 1 and report.documents_unchanged == 1
    assert _sources(out) == [str(real / "manual.txt")]  # one source, not a second name
    assert _finds(out, "stores open nine morning") == []
    # The same folder by its real name is the same folder.
    again = sync_index(real, out, embedder=tiny_embedder)
    assert not again.changed and again.documents_unchanged == 1


def test_a_path_with_dots_and_a_nested_symlink_is_one_source(
    tmp_path, tiny_embedder, small_settings
):
    """A second instance: add through `a/../b` and a symlink to a subfolder, then sync."""
    real = tmp_path / "real"
    (real / "sub").mkdir(parents=True)
    (real / "sub" / "manual.txt").write_text(MANUAL)
    (tmp_path / "sublink").symlink_to(real / "sub", target_is_directory=True)
    out = tmp_path / "idx"
    build_index([real], out, embedder=tiny_embedder, settings=small_settings)
    add_to_index(
        [tmp_path / "sublink" / "manual.txt", str(real / "sub" / ".." / "sub" / "manual.txt")],
        out,
        embedder=tiny_embedder,
    )
    assert _sources(out) == [str(real / "sub" / "manual.txt")]
    time.sleep(0.01)
    os.utime(real / "sub" / "manual.txt")
    sync_index(tmp_path / "sublink", out, embedder=tiny_embedder)
    assert _sources(out) == [str(real / "sub" / "manual.txt")]


@pytest.mark.parametrize("lookup", ["sources_of_file", "sources_under", "sources_named"])
def test_source_lookups_use_an_index(lookup, tmp_path, tiny_embedder, small_settings):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "manual.txt").write_text(MANUAL)
    out = tmp_path / "idx"
    build_index([docs], out, embedder=tiny_embedder, settings=small_settings)
    with IndexStore.open(out) as store:
        plan = store.db.query_plan(lookup)
    assert "USING INDEX" in plan and "SCAN" not in plan, plan


def test_nothing_outside_the_store_modules_speaks_sql():
    """The chunk store's SQL lives in index/chunkdb.py, the pgvector store's in index/pg*.py,
    the live store's in live/store.py."""
    root = Path(__file__).resolve().parents[2] / "ragtune"
    stores = {root / "index" / "chunkdb.py", root / "live" / "store.py"}
    stores |= {root / "index" / f"pg{part}.py" for part in ("schema", "store", "update")}
    offenders = []
    for path in root.rglob("*.py"):
        if path in stores:
            continue
        text = path.read_text()
        if "._db" in text or "sqlite3" in text or "execute(" in text:
            offenders.append(str(path.relative_to(root)))
    assert offenders == []
