"""A filtered query fills k whenever the filter allows k chunks, on every vector index kind
(issue 14, item 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.index import IndexStore
from ragtune.index.vectors import FlatSpec, HNSWSpec, IVFPQSpec
from ragtune.indexing import BuildSettings, add_to_index, build_index
from ragtune.retrieve import DenseRetriever

SPECS = {
    "flat": FlatSpec(),
    # A narrow search on purpose: one list of eight, a candidate list of four.
    "ivf-pq": IVFPQSpec(m=8, nlist=8, nbits=4, nprobe=1),
    "hnsw": HNSWSpec(m=4, ef_construction=16, ef_search=8),
}


@pytest.fixture(scope="module", params=sorted(SPECS))
def two_tenants(request, tmp_path_factory, _tiny_embedder_session) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp(f"filtered-{request.param}")
    big, small = root / "big", root / "small"
    big.mkdir()
    small.mkdir()
    for i in range(400):
        (big / f"b{i:03d}.txt").write_text(f"Catalogue entry {i}: part p{i} weighs {i % 17} kg.\n")
    for i in range(8):
        (small / f"s{i}.txt").write_text(f"Small shop note {i}: we close at {i + 1} pm.\n")
    (small / "tagged.jsonl").write_text(
        "".join(
            json.dumps({"text": f"Tagged note {i} about returns.", "metadata": {"shelf": "s"}})
            + "\n"
            for i in range(6)
        )
    )
    out = root / "idx"
    settings = BuildSettings(
        chunk_tokens=64, overlap_tokens=8, sentence_vectors=False, vectors=SPECS[request.param]
    )
    build_index([big], out, embedder=_tiny_embedder_session, settings=settings, tenant="big")
    add_to_index([small], out, embedder=_tiny_embedder_session, tenant="small")
    return out, request.param


def test_a_small_tenant_beside_a_large_one_gets_k_dense_hits(two_tenants, tiny_embedder):
    out, kind = two_tenants
    with IndexStore.open(out) as store:
        hits = DenseRetriever(store, tiny_embedder).retrieve(
            "when does the shop close", 5, tenant="small"
        )
    assert len(hits) == 5, kind
    assert all(h.provenance and h.provenance.tenant == "small" for h in hits)


def test_k_beyond_the_tenant_returns_every_chunk_it_has(two_tenants, tiny_embedder):
    out, kind = two_tenants
    with IndexStore.open(out) as store:
        hits = DenseRetriever(store, tiny_embedder).retrieve("note", 50, tenant="small")
    assert len(hits) == 14, kind


def test_a_metadata_filter_fills_k_too(two_tenants, tiny_embedder):
    """A second instance: a metadata filter on six chunks, k=4."""
    out, kind = two_tenants
    with IndexStore.open(out) as store:
        hits = DenseRetriever(store, tiny_embedder).retrieve(
            "returns", 4, tenant="small", metadata={"shelf": "s"}
        )
    assert len(hits) == 4, kind
    assert all("Tagged note" in h.text for h in hits)
