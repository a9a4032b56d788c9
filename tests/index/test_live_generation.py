"""An open index follows what writers commit, one whole generation per query (issue 14, item 3)."""

from __future__ import annotations

import threading

from ragtune.index import IndexStore
from ragtune.indexing import add_to_index, build_index, remove_from_index
from ragtune.retrieve import DenseRetriever, FusionSettings, HybridRetriever, LexicalRetriever


def test_a_served_index_stops_returning_a_removed_document(
    corpus, tmp_path, tiny_embedder, small_settings
):
    out = tmp_path / "idx"
    build_index([corpus], out, embedder=tiny_embedder, settings=small_settings)
    with IndexStore.open(out) as served:
        retrievers = [
            LexicalRetriever(served),
            DenseRetriever(served, tiny_embedder),
            HybridRetriever(served, tiny_embedder),
        ]
        question = "seven years order records"
        assert any("seven years" in p.text for p in retrievers[0].retrieve(question, 4))

        remove_from_index([str(corpus / "privacy.html")], out)  # another handle commits

        for retriever in retrievers:
            hits = retriever.retrieve(question, 4)
            assert hits and not any("seven years" in p.text for p in hits), type(retriever)
        assert served.manifest.counts["documents"] == 3

        extra = tmp_path / "gift.txt"
        extra.write_text("Gift cards never expire and can be used online.\n")
        add_to_index([extra], out, embedder=tiny_embedder)
        assert "Gift cards" in retrievers[0].retrieve("gift cards expire", 1)[0].text


def test_a_query_reads_one_generation_while_writers_commit(corpus, tmp_path, tiny_embedder):
    from ragtune.indexing import BuildSettings

    out = tmp_path / "idx"
    settings = BuildSettings(chunk_tokens=64, overlap_tokens=8, sentence_vectors=False)
    build_index([corpus], out, embedder=tiny_embedder, settings=settings)
    extra = tmp_path / "extra"
    extra.mkdir()
    errors: list[BaseException] = []
    done = threading.Event()

    with IndexStore.open(out) as served:
        retriever = HybridRetriever(served, tiny_embedder, FusionSettings(candidates=8))

        def ask() -> None:
            try:
                while not done.is_set():
                    for passage in retriever.retrieve("refund days warranty", 3):
                        assert passage.text and passage.source
            except BaseException as exc:  # any half-read state shows up here
                errors.append(exc)

        readers = [threading.Thread(target=ask) for _ in range(3)]
        for reader in readers:
            reader.start()
        try:
            for i in range(6):
                note = extra / f"note{i}.txt"
                note.write_text(f"Note {i}: refunds for order {i} take {i + 2} days.\n")
                add_to_index([note], out, embedder=tiny_embedder)
                if i % 2:
                    remove_from_index([str(extra / f"note{i - 1}.txt")], out)
        finally:
            done.set()
            for reader in readers:
                reader.join(timeout=30)
        assert errors == []
        assert served.snapshot().manifest.counts["documents"] == 4 + 3
