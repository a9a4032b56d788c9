"""The Retriever contract, for every retriever: ranks, k, filters, tenant isolation, bad queries."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.config import DenseRetrieverConfig, HybridRetrieverConfig, LexicalRetrieverConfig
from ragtune.errors import EmbedderMismatchError, RetrievalError
from ragtune.index import IndexStore
from ragtune.indexing import BuildSettings, add_to_index, build_index
from ragtune.retrieve import DenseRetriever, Retriever
from ragtune.types import Passage

KINDS = {
    "dense": DenseRetrieverConfig(),
    "lexical": LexicalRetrieverConfig(),
    "hybrid-score": HybridRetrieverConfig(fusion="score"),
    "hybrid-rrf": HybridRetrieverConfig(fusion="rrf"),
}


@pytest.fixture
def two_tenant_index(corpus: Path, tmp_path: Path, tiny_embedder) -> Path:
    out = tmp_path / "idx"
    build_index(
        [corpus],
        out,
        embedder=tiny_embedder,
        tenant="acme",
        settings=BuildSettings(chunk_tokens=64, overlap_tokens=8),
    )
    secret = tmp_path / "globex"
    secret.mkdir()
    (secret / "secret.md").write_text("# Refunds\n\nGlobex refunds within 90 days of delivery.\n")
    (secret / "team.jsonl").write_text(
        '{"id": "t1", "text": "Refund desk opens at noon.", "metadata": {"team": "support"}}\n'
        '{"id": "t2", "text": "Refund audits happen yearly.", "metadata": {"team": "finance"}}\n'
    )
    add_to_index([secret], out, embedder=tiny_embedder, tenant="globex")
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_contract(kind, two_tenant_index, tiny_embedder):
    with IndexStore.open(two_tenant_index) as store:
        retriever = KINDS[kind].build(store, tiny_embedder)
        assert isinstance(retriever, Retriever)
        hits = retriever.retrieve("refund within days of delivery", 3)
        assert 1 <= len(hits) <= 3 and all(isinstance(p, Passage) for p in hits)
        assert [p.rank for p in hits] == list(range(1, len(hits) + 1))
        assert [p.score for p in hits] == sorted((p.score for p in hits), reverse=True)
        assert len({p.chunk_id for p in hits}) == len(hits)

        for tenant in ("acme", "globex"):
            seen = retriever.retrieve(
                "Globex refunds within 90 days of delivery", 50, tenant=tenant
            )
            assert seen, f"{kind} found nothing for {tenant}"
            assert {p.provenance.tenant for p in seen if p.provenance} == {tenant}
        acme = retriever.retrieve("Globex refunds within 90 days of delivery", 50, tenant="acme")
        assert not any("Globex" in p.text for p in acme)
        assert retriever.retrieve("refund", 5, tenant="initech") == []

        support = retriever.retrieve("refund", 10, tenant="globex", metadata={"team": "support"})
        assert [p.text for p in support] == ["Refund desk opens at noon."]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("query", ["", "   ", "x" * 10_000])
def test_bad_queries_are_refused(kind, query, two_tenant_index, tiny_embedder):
    with IndexStore.open(two_tenant_index) as store:
        retriever = KINDS[kind].build(store, tiny_embedder)
        with pytest.raises(RetrievalError):
            retriever.retrieve(query, 3)


def test_dense_refuses_another_embedder(two_tenant_index):
    class Other:
        name = "another-model"

        def embed_query(self, text):  # pragma: no cover
            raise AssertionError

    with IndexStore.open(two_tenant_index) as store, pytest.raises(EmbedderMismatchError):
        DenseRetriever(store, Other())
