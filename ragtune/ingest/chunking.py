"""Split documents into :class:`~ragtune.types.Chunk` values sized in embedder tokens.

Chunks are measured with the embedder's own tokenizer, so a chunk never overflows the
embedder's window and no text is silently cut off. Splitting prefers paragraph breaks,
then line breaks, then sentence ends, then spaces (LangChain's recursive splitter).
Consecutive chunks share up to ``overlap_tokens`` tokens of whole words, across paragraph
breaks too.

Every chunk records the character span of the document as read (the file's characters) it
came from, so a citation can point at the exact text, even when the chunk's own text had
personal data replaced by placeholders or its line ends normalised.

Example::

    counter = token_counter_for(tokenizer)
    chunker = Chunker(counter, chunk_tokens=220, overlap_tokens=32)
    result = chunker.split(document, doc_id="d41d8cd9", scrub=True)
    for chunk in result.chunks:
        cited = text_as_read[chunk.start : chunk.end]  # the original span, PII and all
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from annotated_types import Ge, Le

from ragtune.ingest.line_ends import to_source
from ragtune.ingest.pii import ScrubResult
from ragtune.ingest.pii import scrub as scrub_pii
from ragtune.settings import check_bounds
from ragtune.types import Chunk, Document

__all__ = [
    "ChunkedDocument",
    "Chunker",
    "ChunkingSettings",
    "IngestSettings",
    "TokenCounter",
    "token_counter_for",
]

TokenCounter = Callable[[str], int]
"""Counts the tokens a text takes, without special tokens such as [CLS] and [SEP]."""

_SEPARATORS = ["\n\n", "\n", ". ", " ", ""]
_WORD_START = re.compile(r"(?<!\S)\S")


@dataclass(frozen=True)
class ChunkingSettings:
    """How documents are cut into chunks, sized in the embedder's tokens, and what is embedded."""

    chunk_tokens: Annotated[int, Ge(16), Le(8192)] = 220
    overlap_tokens: Annotated[int, Ge(0)] = 32
    title_in_text: bool = True
    """Prefix each chunk's document title to the text that is embedded and indexed."""
    sentence_vectors: bool = True
    """Embed each sentence and score a chunk by its best one (more recall, about 5x the
    vectors); false embeds each chunk whole."""

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.overlap_tokens >= self.chunk_tokens:
            raise ValueError(
                f"overlap_tokens ({self.overlap_tokens}) must be smaller than "
                f"chunk_tokens ({self.chunk_tokens})"
            )


@dataclass(frozen=True)
class IngestSettings:
    """What happens to documents on their way in."""

    scrub_pii: bool = True
    """Replace e-mails, phones, cards, IBANs, SSNs and IPs by [TYPE] placeholders."""


@dataclass(frozen=True)
class ChunkedDocument:
    """The chunks of one document, and how many personal-data items were scrubbed."""

    chunks: tuple[Chunk, ...]
    pii_counts: Mapping[str, int] = field(default_factory=dict)


def token_counter_for(tokenizer: Any) -> TokenCounter:
    """A token counter for a Hugging Face tokenizer, without special tokens.

    Fast tokenizers are counted through their Rust backend directly, skipping the Python
    wrapper's per-call work (the splitter calls the counter many times per document); a
    copy of the backend has truncation and padding turned off, so long texts are counted
    in full rather than capped at the model's maximum length.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and hasattr(backend, "to_str"):
        from tokenizers import Tokenizer

        counter_backend = Tokenizer.from_str(backend.to_str())
        counter_backend.no_truncation()
        counter_backend.no_padding()

        def count_fast(text: str) -> int:
            return len(counter_backend.encode(text, add_special_tokens=False).ids)

        return count_fast

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count


class Chunker:
    """Splits documents into overlapping chunks of at most ``chunk_tokens`` tokens.

    Args:
        token_counter: counts tokens the way the embedder will (see
            :func:`token_counter_for`).
        chunk_tokens: the most tokens a chunk holds; keep it within the embedder's window
            (all-MiniLM-L6-v2 reads 256 tokens, less its 2 special tokens).
        overlap_tokens: the most tokens consecutive chunks share: each chunk after the
            first starts with the whole words before its own text that fit in this many
            tokens, so a sentence cut at a boundary is whole in one of them. Within
            ``chunk_tokens``: a chunk's own text is at most ``chunk_tokens - overlap_tokens``.
    """

    def __init__(
        self, token_counter: TokenCounter, chunk_tokens: int = 220, overlap_tokens: int = 32
    ) -> None:
        if chunk_tokens < 16:
            raise ValueError(
                f"chunk_tokens={chunk_tokens} is too small to hold a sentence; use 16 or more "
                "(220 suits all-MiniLM-L6-v2)"
            )
        if not 0 <= overlap_tokens < chunk_tokens:
            raise ValueError(
                f"overlap_tokens={overlap_tokens} must be at least 0 and less than "
                f"chunk_tokens={chunk_tokens}; about a seventh of chunk_tokens works well"
            )
        self.token_counter = token_counter
        # The splitter counts each part twice (when sorting parts, then when merging), and
        # counting is most of the time chunking takes: remember recent counts.
        self._count = functools.lru_cache(maxsize=4096)(token_counter)
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens
        # The splitter cuts the text into pieces that tile it (no overlap of its own), each
        # at most chunk_tokens - overlap_tokens; the overlap is added afterwards from the
        # text before each piece. Two reasons: LangChain's overlap is made of whole splits,
        # so where it cut between paragraphs or long sentences there is none at all; and
        # tiling pieces have one unambiguous position each, even in repeated text.
        self._splitter = self._make_splitter(chunk_tokens - overlap_tokens)

    def _make_splitter(self, size: int) -> Any:
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        # keep_separator="end" leaves each separator on the piece before it, so every
        # piece is a verbatim slice of the text (stripped of surrounding whitespace).
        return RecursiveCharacterTextSplitter(
            chunk_size=size,
            chunk_overlap=0,
            length_function=self._count,
            separators=_SEPARATORS,
            keep_separator="end",
            add_start_index=False,
        )

    def split(self, doc: Document, *, doc_id: str, scrub: bool) -> ChunkedDocument:
        """Split ``doc`` into chunks with ids ``f"{doc_id}:{ordinal}"``.

        With ``scrub=True`` personal data is replaced in the whole text first (so an item
        is never cut in two and missed), the scrubbed text is split, and each chunk's
        ``start``/``end`` are mapped back to the original text, and through the document's
        ``edits`` (normalised line ends) to the text as read.
        """
        scrubbed: ScrubResult | None = scrub_pii(doc.text) if scrub else None
        text = scrubbed.text if scrubbed is not None else doc.text
        line_starts = [edit.start for edit in doc.edits]
        chunks: list[Chunk] = []
        for ordinal, (start, end) in enumerate(self.spans(text)):
            piece = text[start:end]
            if scrubbed is not None:
                start = scrubbed.to_source(start, is_end=False)
                end = scrubbed.to_source(end, is_end=True)
            if doc.edits:  # from the normalised line ends back to the text as read
                start = to_source(doc.edits, start, is_end=False, starts=line_starts)
                end = to_source(doc.edits, end, is_end=True, starts=line_starts)
            chunks.append(
                Chunk(
                    chunk_id=f"{doc_id}:{ordinal}",
                    doc_id=doc_id,
                    ordinal=ordinal,
                    text=piece,
                    start=start,
                    end=end,
                    title=doc.title,
                )
            )
        counts = dict(scrubbed.counts) if scrubbed is not None else {}
        return ChunkedDocument(chunks=tuple(chunks), pii_counts=counts)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """The ``(start, end)`` character spans of the chunks of ``text``, in order."""
        spans: list[tuple[int, int]] = []
        for start, end in self._tiles(text):
            if spans and self.overlap_tokens:
                start = self._overlap_start(text, spans[-1][0] + 1, start, end)
            spans.append((start, end))
        return spans

    def _tiles(self, text: str) -> list[tuple[int, int]]:
        """The splitter's pieces as spans; they follow each other without overlapping."""
        tiles: list[tuple[int, int]] = []
        cursor = 0
        for piece in self._fit(self._splitter.split_text(text)):
            # Only whitespace lies between two pieces and a piece starts with a
            # non-space character, so the first match after the previous piece is it.
            start = text.find(piece, cursor)
            if start < 0:  # not expected; keep the text, at its first match if any
                start = max(text.find(piece), 0)
            tiles.append((start, start + len(piece)))
            cursor = max(cursor, start + len(piece))
        return tiles

    def _overlap_start(self, text: str, lowest: int, start: int, end: int) -> int:
        """Where the chunk that ends at ``end`` starts once the overlap is added.

        The overlap is the longest run of whole words before ``start`` (and from
        ``lowest`` on) that is at most ``overlap_tokens`` tokens and keeps the chunk
        within ``chunk_tokens``.
        """
        # Every word is at least one token, so only the last overlap_tokens words can start
        # the overlap; the binary search relies on counts falling as the start moves right.
        words = [m.start() for m in _WORD_START.finditer(text, lowest, start)]
        words = words[-self.overlap_tokens :]
        low, high = 0, len(words)
        while low < high:
            middle = (low + high) // 2
            if self._count(text[words[middle] : start]) <= self.overlap_tokens:
                high = middle
            else:
                low = middle + 1
        for candidate in words[low:]:
            if self._count(text[candidate:end]) <= self.chunk_tokens:
                return candidate
        return start

    def _fit(self, pieces: list[str], budget: int | None = None) -> list[str]:
        """``pieces`` with any that are over ``budget`` tokens split again.

        The splitter adds up the token counts of the parts it merges, which undercounts
        when it merged parts of a word (after splitting on ""): re-splitting the few such
        pieces with a smaller budget keeps the promise that no chunk is over the limit.
        """
        budget = budget or self.chunk_tokens - self.overlap_tokens
        fitted: list[str] = []
        for piece in pieces:
            excess = self._count(piece) - budget
            smaller = budget - 2 * excess
            if excess <= 0 or smaller < 1:
                fitted.append(piece)  # fits, or cannot shrink further: keep the text
            else:
                fitted += self._fit(self._make_splitter(smaller).split_text(piece), smaller)
        return fitted
