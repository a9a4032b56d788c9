"""Building and updating indexes: only the documents concerned change, nothing is duplicated."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from ragtune.errors import EmbedderMismatchError, EmptySourceError, IndexError_, IngestError
from ragtune.index import IndexStore, Manifest
from ragtune.indexing import (
    BuildSettings,
    add_to_index,
    build_index,
    remove_from_index,
    sync_index,
)


def _chunk_rows(index: Path) -> dict[str, int]:
    """chunk_id -> FAISS/SQLite row id."""
    with IndexStore.open(index) as store:
        return store.db.chunk_row_ids()


def _titles(index: Path) -> set[str]:
    with IndexStore.open(index) as store:
        return {d.title for d in store.db.documents()}


def test_build_then_search_finds_each_document(corpus, tmp_path, tiny_embedder, small_settings):
    out = tmp_path / "idx"
    report = build_index([corpus], out, embedder=tiny_embedder, settings=small_settings)
    assert report.documents_added == 4
    assert report.manifest is not None and report.manifest.counts["documents"] == 4
    with IndexStore.open(out) as store:
        assert len(store.lexical) == store.manifest.counts["chunks"]
        assert (
            len(store.vectors)
            == store.manifest.counts["vectors"]
            >= store.manifest.counts["chunks"]
        )
        for text in ("return any item within 30 days", "seven years order records"):
            ids, _ = store.search_lexical(text, 1)
            passage = store.passages(ids, [1.0])[0]
            assert passage.provenance is not None
            assert passage.provenance.sha256 and passage.provenance.ingested_at > 0
            assert passage.provenance.modified_at is not None
            assert Path(passage.source).is_absolute()


def test_offsets_point_at_the_source_span(corpus, tmp_path, tiny_embedder):
    long_text = "\n\n".join(f"Paragraph {i} says the code word is w{i}x." for i in range(80))
    (corpus / "long.txt").write_text(long_text)
    out = tmp_path / "idx"
    build_index(
        [corpus],
        out,
        embedder=tiny_embedder,
        settings=BuildSettings(chunk_tokens=40, overlap_tokens=8, scrub_pii=False),
    )
    with IndexStore.open(out) as store:
        ids, scores = store.search_lexical("w77x", 3)
        passage = store.passages(ids, scores)[0]
    assert long_text[passage.start : passage.end] == passage.text
    assert "w77x" in passage.text


def test_identical_documents_are_stored_once(corpus, tmp_path, tiny_embedder, small_settings):
    (corpus / "copy-of-returns.md").write_text((corpus / "returns.md").read_text())
    out = tmp_path / "idx"
    report = build_index([corpus], out, embedder=tiny_embedder, settings=small_settings)
    assert report.documents_added == 4 and report.duplicates == 1
    with IndexStore.open(out) as store:
        docs = list(store.db.documents())
    returns = [d for d in docs if d.title == "Returns"]
    assert len(returns) == 1 and len(returns[0].sources) == 2


def test_add_embeds_only_new_documents(corpus, tmp_path, tiny_embedder, small_settings):
    out = tmp_path / "idx"
    build_index([corpus], out, embedder=tiny_embedder, settings=small_settings)
    before = _chunk_rows(out)
    extra = tmp_path / "extra.md"
    extra.write_text("# Gift cards\n\nGift cards never expire.\n")
    tiny_embedder.embedded.clear()
    report = add_to_index([extra], out, embedder=tiny_embedder)
    assert report.documents_added == 1
    assert (
        len(tiny_embedder.embedded) == 1 and "Gift cards never expire" in tiny_embedder.embedded[0]
    )
    after = _chunk_rows(out)
    assert {k: after[k] for k in before} == before  # old chunks keep their ids


def test_sync_adds_changes_and_removes_only_what_moved(
    corpus, tmp_path, tiny_embedder, small_settings
):
    out = tmp_path / "idx"
    build_index([corpus], out, embedder=tiny_embedder, settings=small_settings)
    before = _chunk_rows(out)
    (corpus / "shipping.txt").unlink()
    time.sleep(0.01)
    (corpus / "returns.md").write_text("# Returns\n\nReturns are accepted within 14 days.\n")
    (corpus / "new.txt").write_text("Stores open at nine.\n")
    tiny_embedder.embedded.clear()
    report = sync_index(corpus, out, embedder=tiny_embedder)
    assert report.documents_added == 2 and report.documents_removed == 2
    assert report.documents_unchanged == 2
    assert len(tiny_embedder.embedded) == 2
    after = _chunk_rows(out)
    untouched = {k: v for k, v in before.items() if k in after}
    assert untouched and all(after[k] == v for k, v in untouched.items())
    assert _titles(out) == {"Returns", "Warranty", "Privacy", "new"}
    # A second sync with nothing changed reads nothing and rewrites nothing.
    generation = Manifest.read(out).generation
    tiny_embedder.embedded.clear()
    again = sync_index(corpus, out, embedder=tiny_embedder)
    assert again.documents_unchanged == 4 and not again.changed and again.manifest is None
    assert Manifest.read(out).generation == generation and tiny_embedder.embedded == []


def test_sync_of_a_touched_but_identical_file_reembeds_nothing(
    corpus, tmp_path, tiny_embedder, small_settings
):
    out = tmp_path / "idx"
    build_index([corpus], out, embedder=tiny_embedder, settings=small_settings)
    before = _chunk_rows(out)
    path = corpus / "warranty.md"
    os.utime(path, (time.time() + 5, time.time() + 5))
    tiny_embedder.embedded.clear()
    sync_index(corpus, out, embedder=tiny_embedder)
    assert tiny_embedder.embedded == [] and _chunk_rows(out) == before


def test_jsonl_lines_are_documents_and_sync_follows_line_edits(
    tmp_path, tiny_embedder, small_settings
):
    folder = tmp_path / "docs"
    folder.mkdir()
    data = folder / "faq.jsonl"
    data.write_text(
        '{"id": "a", "title": "A", "text": "Alpha answers.", "metadata": {"team": "x"}}\n'
        '{"id": "b", "title": "B", "text": "Beta answers."}\n'
    )
    out = tmp_path / "idx"
    build_index([folder], out, embedder=tiny_embedder, settings=small_settings)
    with IndexStore.open(out) as store:
        allowed = store.allowed_ids(metadata={"team": "x"})
        assert allowed is not None and len(allowed) == 1
    data.write_text('{"id": "b", "title": "B", "text": "Beta answers."}\n')
    report = sync_index(folder, out, embedder=tiny_embedder)
    assert report.documents_removed == 1 and _titles(out) == {"B"}


def test_remove_by_path_doc_id_and_user_id(corpus, tmp_path, tiny_embedder, small_settings):
    jsonl = corpus / "faq.jsonl"
    jsonl.write_text('{"id": "faq-7", "text": "Seven is the answer."}\n')
    out = tmp_path / "idx"
    build_index([corpus], out, embedder=tiny_embedder, settings=small_settings)
    remove_from_index([str(corpus / "shipping.txt")], out)
    remove_from_index(["faq-7"], out)
    with IndexStore.open(out) as store:
        warranty = next(d for d in store.db.documents() if d.title == "Warranty")
    remove_from_index([warranty.doc_id], out)
    assert _titles(out) == {"Returns", "Privacy"}
    with IndexStore.open(out) as store:
        assert len(store.lexical) == store.manifest.counts["chunks"]
        assert (
            len(store.vectors)
            == store.manifest.counts["vectors"]
            >= store.manifest.counts["chunks"]
        )


def test_remove_of_an_unknown_key_changes_nothing(corpus, tmp_path, tiny_embedder, small_settings):
    out = tmp_path / "idx"
    build_index([corpus], out, embedder=tiny_embedder, settings=small_settings)
    generation = Manifest.read(out).generation
    with pytest.raises(IndexError_, match="no-such-doc"):
        remove_from_index([str(corpus / "returns.md"), "no-such-doc"], out)
    assert Manifest.read(out).generation == generation
    assert "Returns" in _titles(out)


def test_tenants_are_stored_apart(corpus, tmp_path, tiny_embedder, small_settings):
    out = tmp_path / "idx"
    build_index(
        [corpus / "returns.md"], out, embedder=tiny_embedder, settings=small_settings, tenant="acme"
    )
    add_to_index([corpus / "returns.md"], out, embedder=tiny_embedder, tenant="globex")
    with IndexStore.open(out) as store:
        docs = list(store.db.documents())
        assert sorted(d.tenant or "" for d in docs) == ["acme", "globex"]  # same text, two tenants
        acme = store.allowed_ids(tenant="acme")
        globex = store.allowed_ids(tenant="globex")
        assert acme is not None and globex is not None
        assert not set(acme.tolist()) & set(globex.tolist())
    # A tenant's document named without its tenant: refused, with the flag that names it.
    with pytest.raises(
        IndexError_, match=r"named with --tenant; this index holds tenants acme, glo"
    ):
        remove_from_index([str(corpus / "returns.md")], out)
    remove_from_index([str(corpus / "returns.md")], out, tenant="acme")
    with IndexStore.open(out) as store:
        assert [d.tenant for d in store.db.documents()] == ["globex"]


def test_empty_folder_is_refused_and_nothing_is_created(tmp_path, tiny_embedder):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "idx"
    with pytest.raises(EmptySourceError):
        build_index([empty], out, embedder=tiny_embedder)
    assert not out.exists()


def test_only_unreadable_files_is_refused_with_reasons(tmp_path, tiny_embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "zero.txt").write_bytes(b"")
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(EmptySourceError, match="zero.txt"):
        build_index([folder], tmp_path / "idx", embedder=tiny_embedder)


def test_missing_path_is_an_error(tmp_path, tiny_embedder):
    with pytest.raises(IngestError, match="nope"):
        build_index([tmp_path / "nope"], tmp_path / "idx", embedder=tiny_embedder)


def test_strict_refuses_any_skip_and_keeps_the_old_index(
    corpus, tmp_path, tiny_embedder, small_settings
):
    out = tmp_path / "idx"
    build_index([corpus], out, embedder=tiny_embedder, settings=small_settings)
    generation = Manifest.read(out).generation
    (corpus / "bad.txt").write_bytes(b"caf\xe9 au lait")
    with pytest.raises(IngestError, match="bad.txt"):
        build_index([corpus], out, embedder=tiny_embedder, settings=small_settings, strict=True)
    assert Manifest.read(out).generation == generation
    with IndexStore.open(out) as store:
        assert store.manifest.counts["documents"] == 4


def test_build_refuses_a_folder_that_is_not_an_index(corpus, tmp_path, tiny_embedder):
    with pytest.raises(IndexError_, match="not a ragtune index"):
        build_index([corpus], corpus, embedder=tiny_embedder)
    assert sorted(p.name for p in corpus.iterdir()) == sorted(
        ["returns.md", "shipping.txt", "warranty.md", "privacy.html"]
    )


def test_another_embedder_is_refused(corpus, tmp_path, tiny_embedder, small_settings):
    out = tmp_path / "idx"
    build_index([corpus], out, embedder=tiny_embedder, settings=small_settings)

    class Other:
        name = "other-model"
        dimension = 32
        backend = "torch"

        def count_tokens(self, text: str) -> int:
            return len(text.split())

        def embed(self, texts, *, progress=None):  # pragma: no cover - must not be reached
            raise AssertionError("must not embed")

    with pytest.raises(EmbedderMismatchError, match="other-model"):
        add_to_index([corpus], out, embedder=Other())
    with pytest.raises(EmbedderMismatchError):
        IndexStore.open(out, embedder="other-model")


@pytest.mark.parametrize("kind", ["hnsw", "ivf-pq"])
def test_approximate_vector_indexes_add_and_remove(kind, tmp_path, tiny_embedder):
    from ragtune.index.vectors import HNSWSpec, IVFPQSpec

    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(120):
        (folder / f"d{i:03d}.txt").write_text(f"Document number {i} talks about topic t{i}.")
    spec = HNSWSpec(m=8) if kind == "hnsw" else IVFPQSpec(m=8, nlist=2, nbits=4, nprobe=2)
    out = tmp_path / "idx"
    build_index([folder], out, embedder=tiny_embedder, settings=BuildSettings(vectors=spec))
    remove_from_index([str(folder / "d007.txt")], out)
    with IndexStore.open(out) as store:
        assert len(store.vectors) == 119
        query = tiny_embedder.embed_query("d042: Document number 42 talks about topic t42.")
        ids, _ = store.search_dense(query, 5)
        hit = store.passages(ids[:1], [1.0])[0]
        assert "t42" in hit.text or kind == "ivf-pq"  # PQ is lossy; HNSW must find the exact copy
        allowed = store.allowed_ids(metadata=None, tenant=None)
        assert allowed is None


def test_ivf_pq_on_a_tiny_corpus_says_what_to_do(corpus, tmp_path, tiny_embedder):
    from ragtune.index.vectors import IVFPQSpec

    settings = BuildSettings(vectors=IVFPQSpec(nlist=64, m=8))
    with pytest.raises(IndexError_, match="flat"):
        build_index([corpus], tmp_path / "idx", embedder=tiny_embedder, settings=settings)
    assert not (tmp_path / "idx").exists()


def test_filtered_dense_search_is_exact(corpus, tmp_path, tiny_embedder, small_settings):
    out = tmp_path / "idx"
    build_index([corpus], out, embedder=tiny_embedder, settings=small_settings, tenant="a")
    extra = tmp_path / "b.txt"
    extra.write_text("Only tenant b can read this sentence.")
    add_to_index([extra], out, embedder=tiny_embedder, tenant="b")
    with IndexStore.open(out) as store:
        query = tiny_embedder.embed_query("Only tenant b can read this sentence.")
        allowed = store.allowed_ids(tenant="a")
        ids, _ = store.search_dense(query, 10, allowed=allowed)
        assert len(ids) == store.manifest.tenants["a"]
        assert all(
            p.provenance and p.provenance.tenant == "a"
            for p in store.passages(ids, np.ones(len(ids)))
        )


def test_sentence_vectors_score_a_chunk_by_its_best_sentence(tmp_path, tiny_embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    needle = "The lighthouse keeper feeds the seven cats at dawn."
    filler = " ".join(f"Filler sentence number {i} says nothing at all." for i in range(8))
    (folder / "long.txt").write_text(f"{filler} {needle} {filler}")
    (folder / "other.txt").write_text("Completely different words about tax law and forms.")
    out = tmp_path / "idx"
    for sentences in (True, False):
        build_index(
            [folder],
            out,
            embedder=tiny_embedder,
            settings=BuildSettings(chunk_tokens=200, overlap_tokens=0, sentence_vectors=sentences),
        )
        with IndexStore.open(out) as store:
            assert store.manifest.chunking["dense_units"] == ("sentence" if sentences else "chunk")
            expected = 18 if sentences else 2
            assert store.manifest.counts["vectors"] == expected
            query = tiny_embedder.embed_query(f"long: {needle}" if sentences else needle)
            ids, scores = store.search_dense(query, 2)
            exact = store.dense_scores(query, ids)
            assert np.allclose(scores, exact, atol=1e-5)  # search and rescoring agree
            if sentences:  # the needle's own sentence vector is an exact match
                assert scores[0] == pytest.approx(1.0, abs=1e-5)
            remove_from_index([str(folder / "long.txt")], out)
        with IndexStore.open(out) as store:
            assert len(store.vectors) == 1


def test_an_index_of_the_earlier_vector_spec_format_still_opens(tmp_path, tiny_embedder):
    """Manifests written before each vector kind had its own spec held every field under
    ``kind``; they are read into the spec of their kind."""
    from ragtune.index.vectors import HNSWSpec, IVFPQSpec, vector_spec_from_dict

    old = {
        "kind": "hnsw",
        "m": 16,
        "ef_construction": 100,
        "ef_search": 64,
        "nlist": 1024,
        "nbits": 8,
        "nprobe": 16,
    }
    assert vector_spec_from_dict(old) == HNSWSpec(m=16, ef_construction=100, ef_search=64)
    old_pq = dict(old, kind="ivf-pq", m=8)
    assert vector_spec_from_dict(old_pq) == IVFPQSpec(nlist=1024, m=8, nbits=8, nprobe=16)
