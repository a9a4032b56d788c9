"""Lexical search in languages written without spaces (issue 14, item 6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.index import IndexStore, LexicalIndex, LexicalSpec
from ragtune.indexing import BuildSettings, build_index
from ragtune.retrieve import LexicalRetriever

CHINESE = {
    "returns.txt": "退货政策：商品在收货后三十天内可以退货。",
    "warranty.txt": "所有搅拌机的电机享有两年保修。",
    "shipping.txt": "Shipping takes three to five business days.",
}


def _hits(spec: LexicalSpec, texts: list[str], query: str) -> list[int]:
    index = LexicalIndex.build(list(range(len(texts))), texts, spec)
    ids, _ = index.search(query, 3)
    return ids.tolist()


def test_a_chinese_query_finds_its_clause(tmp_path: Path, tiny_embedder) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in CHINESE.items():
        (docs / name).write_text(text, encoding="utf-8")
    build_index([docs], tmp_path / "idx", embedder=tiny_embedder, settings=BuildSettings())
    with IndexStore.open(tmp_path / "idx") as store:
        hits = LexicalRetriever(store).retrieve("退货", 3)
        assert hits and hits[0].source.endswith("returns.txt")
        hits = LexicalRetriever(store).retrieve("电机保修多久？", 3)
        assert hits and hits[0].source.endswith("warranty.txt")
        # The rest keeps its stemming and stop words.
        hits = LexicalRetriever(store).retrieve("the shipped business", 3)
        assert [h.source.endswith("shipping.txt") for h in hits] == [True]


@pytest.mark.parametrize(
    ("texts", "query", "expected"),
    [
        # Japanese: kana and kanji without spaces.
        (["返品は三十日以内に受け付けます。", "保証期間は二年間です。"], "保証", 1),
        # Thai: no spaces between words either.
        (["คืนสินค้าได้ภายในสามสิบวัน", "รับประกันมอเตอร์สองปี"], "รับประกัน", 1),
        # A mixed line: English stemming still applies next to Chinese.
        (["Refunds 退款 take five days", "Warranty 保修 covers motors"], "refunded", 0),
    ],
)
def test_other_spaceless_scripts_and_mixed_text(texts, query, expected) -> None:
    assert _hits(LexicalSpec(), texts, query)[:1] == [expected]


def test_words_tokenizer_is_what_older_indexes_keep() -> None:
    """A spec saved before the choice existed reads as `words` and tokenises as before."""
    old = LexicalSpec.from_dict(
        {"k1": 1.5, "b": 0.75, "method": "lucene", "stopwords": "english", "stemming": True}
    )
    assert old.tokenizer == "words" and LexicalSpec().tokenizer == "auto"
    assert _hits(old, list(CHINESE.values()), "退货") == []  # the reported fault, kept for them
    assert _hits(LexicalSpec(), list(CHINESE.values()), "退货") == [0]


def test_the_config_names_the_tokenizer() -> None:
    from ragtune.config import load_config

    config = load_config({"index": {"lexical": {"tokenizer": "words"}}})
    assert config.build_settings().lexical.tokenizer == "words"
    assert load_config({}).build_settings().lexical.tokenizer == "auto"
