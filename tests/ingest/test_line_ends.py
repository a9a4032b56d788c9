"""Line ends are normalised once, at load; offsets still point into the text as read
(issue 14, item 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.ingest import Chunker, load
from ragtune.ingest.line_ends import normalise_line_ends, to_source

PARAGRAPHS = [
    "Returns are accepted within thirty days of delivery when the item is unused.",
    "Refunds go back to the original card within five business days of receipt.",
    "Exchanges are free and can be arranged in any store or by mail with the label.",
    "Gift cards cannot be returned and never expire once they have been activated.",
]


def count_words(text: str) -> int:
    return len(text.split())


def _chunks(path: Path) -> list[tuple[str, int, int]]:
    [document] = load(path).documents
    chunker = Chunker(count_words, chunk_tokens=30, overlap_tokens=0)
    return [
        (c.text, c.start, c.end) for c in chunker.split(document, doc_id="d", scrub=False).chunks
    ]


def _write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


@pytest.mark.parametrize(
    ("name", "line", "paragraph"),
    [
        ("crlf", "\r\n", "\r\n\r\n"),  # the reported case: Windows line ends
        ("cr", "\r", "\r\r"),  # old Mac files
        ("unicode", "\u2028", "\u2029"),  # Unicode's line and paragraph separators
        ("nel", "\x85", "\x85\x85"),
    ],
)
def test_other_line_ends_chunk_like_lf(tmp_path, name, line, paragraph):
    body = [p.replace("within", f"within{line}") for p in PARAGRAPHS]
    lf = _write(tmp_path / "lf.txt", "\n\n".join(p.replace(line, "\n") for p in body) + "\n")
    other_text = paragraph.join(body) + line
    other = _write(tmp_path / f"{name}.txt", other_text)

    lf_chunks, other_chunks = _chunks(lf), _chunks(other)

    assert [c[0] for c in other_chunks] == [c[0] for c in lf_chunks]
    assert len(other_chunks) == 2  # cut between paragraphs, not inside one
    for text, start, end in other_chunks:  # offsets point into the file's own characters
        assert normalise_line_ends(other_text[start:end])[0] == text


def test_crlf_and_lf_copies_are_one_document(tmp_path, tiny_embedder, small_settings):
    from ragtune.index import IndexStore
    from ragtune.indexing import build_index

    docs = tmp_path / "docs"
    docs.mkdir()
    _write(docs / "unix.txt", "\n\n".join(PARAGRAPHS))
    _write(docs / "windows.txt", "\r\n\r\n".join(PARAGRAPHS))
    report = build_index([docs], tmp_path / "idx", embedder=tiny_embedder, settings=small_settings)
    assert report.documents_added == 1 and report.duplicates == 1
    with IndexStore.open(tmp_path / "idx") as store:
        [document] = list(store.db.documents())
    assert len(document.sources) == 2


def test_markdown_title_and_offsets_survive_crlf(tmp_path):
    text = "# Returns\r\n\r\n" + "\r\n\r\n".join(PARAGRAPHS)
    [document] = load(_write(tmp_path / "returns.md", text)).documents
    assert document.title == "Returns" and "\r" not in document.text
    found = document.text.index("Refunds")
    assert text[to_source(document.edits, found, is_end=False) :].startswith("Refunds")


def test_text_without_breaks_to_change_has_no_edits():
    assert normalise_line_ends("a\nb\n\nc") == ("a\nb\n\nc", ())
