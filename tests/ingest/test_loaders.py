"""Tests for discovering and loading sources: every format, and every kind of bad file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ragtune.errors import IngestError
from ragtune.ingest.loaders import SUPPORTED_SUFFIXES, LoadResult, discover, load
from ragtune.types import Document


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A minimal valid PDF: one Helvetica text line per page, with a correct xref table."""

    def literal(text: str) -> bytes:
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        return f"({escaped})".encode("latin-1")

    n_pages = len(pages)
    font_id = 3 + 2 * n_pages
    page_ids = [3 + 2 * i for i in range(n_pages)]
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids ["
        + b" ".join(f"{i} 0 R".encode() for i in page_ids)
        + f"] /Count {n_pages} >>".encode(),
        font_id: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    for page_id, text in zip(page_ids, pages, strict=True):
        content = b"BT /F1 12 Tf 72 720 Td " + literal(text) + b" Tj ET" if text else b""
        objects[page_id] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> /Contents {page_id + 1} 0 R >>"
        ).encode()
        objects[page_id + 1] = (
            f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream"
        )
    info = ""
    if title is not None:
        objects[font_id + 1] = b"<< /Title " + literal(title) + b" >>"
        info = f" /Info {font_id + 1} 0 R"
    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n".encode() + objects[number] + b"\nendobj\n"
    xref = len(out)
    size = max(objects) + 1
    out += f"xref\n0 {size}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offsets[i]:010d} 00000 n \n".encode() for i in range(1, size))
    out += f"trailer\n<< /Size {size} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_bytes(content.encode("utf-8"))
    else:
        path.write_bytes(content)
    return path


def only_document(result: LoadResult) -> Document:
    assert result.skipped == ()
    (document,) = result.documents
    return document


def only_reason(result: LoadResult) -> str:
    assert result.documents == ()
    (skipped,) = result.skipped
    return skipped.reason


# --- discover ---------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    write(tmp_path / "b.md", "# B\n")
    write(tmp_path / "a.txt", "a\n")
    write(tmp_path / "sub" / "c.html", "<p>c</p>")
    write(tmp_path / "sub" / "deeper" / "d.jsonl", '{"text": "d"}\n')
    write(tmp_path / "sub" / "report.docx", b"PK\x03\x04")
    write(tmp_path / ".hidden.md", "secret")
    write(tmp_path / ".git" / "notes.md", "internal")
    write(tmp_path / "sub" / ".cache" / "e.md", "cached")
    return tmp_path


def test_discover_folder_is_recursive_sorted_and_skips_hidden(tree: Path) -> None:
    found = discover([tree])
    assert [p.relative_to(tree).as_posix() for p in found.files] == [
        "a.txt",
        "b.md",
        "sub/c.html",
        "sub/deeper/d.jsonl",
    ]
    assert all(p.is_absolute() for p in found.files)
    (skipped,) = found.skipped
    assert skipped.source == str(tree / "sub" / "report.docx")
    assert skipped.reason.startswith("unsupported file type .docx; supported: .txt, .md")


def test_discover_glob_and_duplicates(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree)
    found = discover(["**/*.md", "b.md", tree / "b.md", "./sub/../b.md", "sub"])
    names = [p.relative_to(tree).as_posix() for p in found.files]
    assert names == ["b.md", "sub/c.html", "sub/deeper/d.jsonl"]


def test_discover_missing_path_raises_naming_it(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="no-such-folder: no such file or folder"):
        discover([tmp_path / "no-such-folder"])


def test_discover_glob_matching_nothing_raises(tmp_path: Path) -> None:
    pattern = f"{tmp_path}/**/*.pdf"
    with pytest.raises(IngestError, match="matches no file"):
        discover([pattern])


def test_supported_suffixes() -> None:
    assert set(SUPPORTED_SUFFIXES) == {
        ".txt",
        ".md",
        ".markdown",
        ".html",
        ".htm",
        ".pdf",
        ".jsonl",
    }


# --- text and markdown ------------------------------------------------------------------


def test_txt_keeps_the_characters_exactly(tmp_path: Path) -> None:
    from ragtune.ingest.line_ends import to_source

    text = "Line one\r\nLine two\rthree\n\n  indented\tтекст ✓\n"
    path = write(tmp_path / "notes.txt", text)
    document = only_document(load(path))
    # Every character but the line ends, which are normalised with a record of each change.
    assert document.text == "Line one\nLine two\nthree\n\n  indented\tтекст ✓\n"
    found = document.text.index("three")
    assert to_source(document.edits, found, is_end=False) == text.index("three")
    assert document.source == str(path)
    assert document.title == "notes"
    assert document.doc_id == ""
    assert document.metadata == {}
    assert document.modified_at == pytest.approx(os.path.getmtime(path))


def test_relative_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "docs" / "a.txt", "hello")
    monkeypatch.chdir(tmp_path)
    document = only_document(load(Path("docs/a.txt")))
    assert document.source == str(tmp_path / "docs" / "a.txt")


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "bom.md", b"\xef\xbb\xbf# Title\nbody")
    document = only_document(load(path))
    assert document.text == "# Title\nbody"
    assert document.title == "Title"


def test_markdown_title_is_the_first_h1_outside_code(tmp_path: Path) -> None:
    text = "intro\n```sh\n# not a heading\n```\n## Section\n# Leave policy #\n# Second\n"
    document = only_document(load(write(tmp_path / "policy.markdown", text)))
    assert document.title == "Leave policy"
    assert document.text == text


def test_markdown_without_heading_uses_the_stem(tmp_path: Path) -> None:
    document = only_document(load(write(tmp_path / "faq.md", "no heading here")))
    assert document.title == "faq"


# --- bad files --------------------------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    assert "empty file" in only_reason(load(write(tmp_path / "empty.md", b"")))


def test_whitespace_only_file(tmp_path: Path) -> None:
    reason = only_reason(load(write(tmp_path / "blank.txt", " \n\t\r\n ")))
    assert "only whitespace" in reason


def test_binary_with_nul_bytes(tmp_path: Path) -> None:
    reason = only_reason(load(write(tmp_path / "image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR")))
    assert "binary" in reason and "NUL" in reason


def test_binary_with_mostly_control_characters(tmp_path: Path) -> None:
    data = bytes(range(1, 9)) * 100 + b"some text"
    reason = only_reason(load(write(tmp_path / "blob.md", data)))
    assert "binary" in reason and "control characters" in reason


def test_utf16_is_named(tmp_path: Path) -> None:
    reason = only_reason(load(write(tmp_path / "u16.txt", "hello".encode("utf-16"))))
    assert "UTF-16" in reason and "iconv" in reason


def test_non_utf8_names_the_offset_and_the_fix(tmp_path: Path) -> None:
    path = write(tmp_path / "latin.txt", "café au lait".encode("latin-1"))
    reason = only_reason(load(path))
    assert "not valid UTF-8" in reason
    assert "offset 3" in reason
    assert "iconv -f latin1 -t utf-8" in reason


def test_unsupported_type(tmp_path: Path) -> None:
    reason = only_reason(load(write(tmp_path / "sheet.xlsx", b"PK")))
    assert reason.startswith("unsupported file type .xlsx")


def test_missing_file_and_folder_do_not_raise(tmp_path: Path) -> None:
    assert "cannot be read" in only_reason(load(tmp_path / "gone.txt"))
    assert "a folder" in only_reason(load(tmp_path))


# --- HTML -------------------------------------------------------------------------------

PAGE = """<!doctype html><html><head><title>Staff  Handbook</title>
<style>p { color: red }</style><script>var x = "<p>hidden</p>";</script></head>
<body><h1>Leave &amp; holidays</h1>
<p>Staff get   25 days&nbsp;of
leave. Ask your <b>manager</b>.</p>
<ul>
  <li>one</li>
  <li>two</li>
</ul><div>Line<br>break</div><noscript>enable JavaScript</noscript>
<table><tr><td>a</td><td>b</td></tr></table></body></html>"""


def test_html_text_and_title(tmp_path: Path) -> None:
    document = only_document(load(write(tmp_path / "handbook.html", PAGE)))
    assert document.title == "Staff Handbook"
    assert document.text == (
        "Staff Handbook\n\nLeave & holidays\n\nStaff get 25 days of leave. Ask your manager."
        "\n\none\ntwo\n\nLine\nbreak\n\na b"
    )


def test_html_title_falls_back_to_h1_then_stem(tmp_path: Path) -> None:
    page = "<body><h1>Expenses <i>policy</i></h1><p>Keep receipts.</p></body>"
    assert only_document(load(write(tmp_path / "a.htm", page))).title == "Expenses policy"
    assert only_document(load(write(tmp_path / "b.htm", "<p>text</p>"))).title == "b"


def test_html_without_visible_text(tmp_path: Path) -> None:
    page = "<html><head><script>x()</script></head><body>  </body></html>"
    assert "no text outside the markup" in only_reason(load(write(tmp_path / "e.html", page)))


# --- PDF --------------------------------------------------------------------------------


def test_pdf_text_round_trips(tmp_path: Path) -> None:
    pdf = make_pdf(["Leave policy: 25 days (paid).", "Page two text."], title="Handbook")
    document = only_document(load(write(tmp_path / "handbook.pdf", pdf)))
    assert document.text == "Leave policy: 25 days (paid).\n\nPage two text."
    assert document.title == "Handbook"


def test_pdf_without_title_uses_the_stem(tmp_path: Path) -> None:
    document = only_document(load(write(tmp_path / "scan-2024.pdf", make_pdf(["Hello"]))))
    assert document.title == "scan-2024"


def test_pdf_without_text_layer(tmp_path: Path) -> None:
    reason = only_reason(load(write(tmp_path / "scan.pdf", make_pdf(["", ""]))))
    assert "no text layer" in reason and "OCR" in reason


def test_garbage_pdf(tmp_path: Path) -> None:
    reason = only_reason(load(write(tmp_path / "broken.pdf", b"this is not a PDF\n" * 20)))
    assert "cannot be parsed" in reason


# --- JSONL ------------------------------------------------------------------------------


def test_jsonl_lines_load_and_bad_lines_are_skipped_alone(tmp_path: Path) -> None:
    lines = [
        json.dumps(
            {"id": "kb-1", "title": "Leave", "text": "25 days.", "metadata": {"team": "hr"}}
        ),
        "",
        '{"text": "unterminated',
        json.dumps({"title": "no text"}),
        json.dumps({"text": "   "}),
        json.dumps({"text": 42}),
        json.dumps({"text": "ok", "metadata": ["not", "a", "dict"]}),
        json.dumps(["a", "list"]),
        json.dumps({"id": 7, "text": "Second record", "metadata": {"id": "theirs"}}),
    ]
    path = write(tmp_path / "kb.jsonl", "\n".join(lines) + "\n")
    result = load(path)
    first, last = result.documents
    assert first.text == "25 days."
    assert first.source == f"{path}#L1"
    assert first.title == "Leave"
    assert first.metadata == {"team": "hr", "id": "kb-1"}
    assert first.doc_id == ""
    assert first.modified_at == pytest.approx(os.path.getmtime(path))
    assert last.source == f"{path}#L9"
    assert last.title == "kb"
    assert last.metadata == {"id": 7}

    reasons = {s.source: s.reason for s in result.skipped}
    assert sorted(reasons) == [f"{path}#L{n}" for n in (3, 4, 5, 6, 7, 8)]
    assert reasons[f"{path}#L3"].startswith(f"{path}:3: invalid JSON (Unterminated string")
    assert '"text"' in reasons[f"{path}#L4"]
    assert '"text"' in reasons[f"{path}#L5"]
    assert '"text"' in reasons[f"{path}#L6"]
    assert '"metadata" is a JSON list' in reasons[f"{path}#L7"]
    assert "expected an object" in reasons[f"{path}#L8"]
    assert all(reason.startswith(f"{path}:") for reason in reasons.values())


def test_jsonl_of_blank_lines(tmp_path: Path) -> None:
    assert "only blank lines" in only_reason(load(write(tmp_path / "b.jsonl", "\n \n")))


def test_jsonl_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path / "l.jsonl", '{"text": "café"}'.encode("latin-1"))
    assert "not valid UTF-8" in only_reason(load(path))
