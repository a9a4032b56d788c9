"""The real embedded embedder (all-MiniLM-L6-v2 from its PyPI package), offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.config import load_config
from ragtune.index import IndexStore
from ragtune.indexing import build_index

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).parents[2] / "examples" / "acme"


@pytest.fixture(scope="module")
def acme_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    config = load_config(Path(__file__).parents[2] / "configs" / "default.yaml")
    embedder = config.embedder.build()
    out = tmp_path_factory.mktemp("acme") / "idx"
    report = build_index([SAMPLE], out, embedder=embedder, settings=config.build_settings())
    assert report.documents_added == 9 and report.pii == {"EMAIL": 1, "PHONE": 1}
    return out, config


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Can I send back a kettle I already opened?", "returns-policy.md"),
        ("How many years is the blender motor guaranteed?", "warranty.md"),
        ("What temperature should I use for green tea?", "kettle-k5.txt"),
        ("When can I visit the store in Leeds?", "faq.jsonl#L3"),
    ],
)
@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_semantic_questions_find_the_right_document(acme_index, question, expected, mode):
    index, config = acme_index
    from ragtune.config import DenseRetrieverConfig

    embedder = config.embedder.build()
    with IndexStore.open(index) as store:
        chosen = DenseRetrieverConfig() if mode == "dense" else config.retriever
        hits = chosen.build(store, embedder).retrieve(question, 2)
    assert any(h.source.endswith(expected) for h in hits), [h.source for h in hits]


def test_no_personal_data_reaches_the_index(acme_index):
    index, _ = acme_index
    with IndexStore.open(index) as store:
        texts = " ".join(store.db.all_chunk_texts(with_title=False)[1])
    assert "privacy.officer@brightwater.example" not in texts and "7946" not in texts
    assert "[EMAIL]" in texts and "[PHONE]" in texts
