"""Read source files into :class:`~ragtune.types.Document` values.

Two steps, so a caller can report on the whole run before reading anything:

- :func:`discover` expands files, folders and glob patterns into the files to read, and
  lists the files it passes over (unsupported types) with the reason.
- :func:`load` reads one file. It never raises for a bad file: a file that cannot be used
  becomes a :class:`~ragtune.types.SkippedSource` whose reason names the problem and the fix,
  so one broken file does not stop an index build.

Example::

    found = discover(["docs/", "notes/**/*.md"])
    for path in found.files:
        result = load(path)
        documents.extend(result.documents)
        skipped.extend(result.skipped)
"""

from __future__ import annotations

import glob
import io
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from ragtune.errors import IngestError
from ragtune.ingest.line_ends import normalise_line_ends
from ragtune.types import Document, SkippedSource

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Discovery",
    "LoadResult",
    "canonical_path",
    "canonical_source",
    "discover",
    "load",
]

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".jsonl")
"""File types :func:`load` reads (compared case-insensitively)."""

_HTML_SUFFIXES = {".html", ".htm"}
_SNIFF_BYTES = 8192
# Share of control characters above which a "text" file is taken for binary. Real text
# has a few (form feeds, escape codes in logs); binary formats are full of them.
_MAX_CONTROL_SHARE = 0.3
_CONTROL_BYTES = frozenset(range(32)) - {9, 10, 11, 12, 13, 27} | {127}
_GLOB_CHARS = re.compile(r"[*?\[]")
_MARKDOWN_H1 = re.compile(r"^#[ \t]+(.+?)[ \t#]*$")


@dataclass(frozen=True)
class Discovery:
    """The files :func:`discover` found to read, and the ones it passed over."""

    files: tuple[Path, ...]
    skipped: tuple[SkippedSource, ...]


@dataclass(frozen=True)
class LoadResult:
    """What :func:`load` read from one file: documents, and skipped parts (or the file)."""

    documents: tuple[Document, ...]
    skipped: tuple[SkippedSource, ...]


def canonical_path(path: str | Path) -> Path:
    """The one name a file goes by in an index: absolute, with every folder symlink resolved.

    Build, add, remove and sync all name files this way, so a folder reached through a
    symlink (``handbook -> real/``) is the same folder every time. The file's own name is
    kept (a symlinked file inside a folder is known by its place in that folder), and the
    path need not exist: a deleted file still has its canonical name.

    >>> canonical_path("/tmp/../tmp/a.txt").as_posix()  # doctest: +SKIP
    '/tmp/a.txt'
    """
    absolute = Path(os.path.abspath(os.path.expanduser(path)))
    if absolute.is_dir():
        return Path(os.path.realpath(absolute))
    return Path(os.path.realpath(absolute.parent)) / absolute.name


def canonical_source(key: str) -> str:
    """A source key (``path`` or ``path#L3`` of a JSONL line) with its path made canonical."""
    path, mark, line = key.rpartition("#L")
    if mark and line.isdigit() and path:
        return f"{canonical_path(path)}#L{line}"
    return str(canonical_path(key))


def _unsupported(path: Path) -> str:
    kind = path.suffix.lower() or "(no suffix)"
    return (
        f"unsupported file type {kind}; supported: {', '.join(SUPPORTED_SUFFIXES)} "
        "(convert the file to one of these to index it)"
    )


def _walk(folder: Path) -> Iterator[Path]:
    """Every non-hidden file under ``folder``, in sorted order."""
    found: list[Path] = []
    for root, dirs, names in os.walk(folder):
        # Pruning in place stops os.walk descending into .git, .venv and the like.
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(root, name) for name in names if not name.startswith(".")]
    yield from sorted(found)


def _expand(source: str) -> Iterator[Path]:
    """The paths one source names: itself, a folder's files, or a glob's matches."""
    path = Path(source).expanduser()
    if path.exists():
        yield from _walk(path) if path.is_dir() else [path]
        return
    if not _GLOB_CHARS.search(source):
        raise IngestError(
            f"{source}: no such file or folder; check the path (relative paths start at "
            f"{Path.cwd()})"
        )
    matches = sorted(glob.glob(os.path.expanduser(source), recursive=True))
    if not matches:
        raise IngestError(
            f"{source}: the pattern matches no file; check it, and quote it so the shell "
            "does not expand it first"
        )
    for match in map(Path, matches):
        yield from _walk(match) if match.is_dir() else [match]


def discover(sources: Sequence[str | Path]) -> Discovery:
    """Expand files, folders (recursively) and glob patterns into the files to load.

    Hidden files and folders (names starting with ``.``) inside a folder are left out
    silently; files of an unsupported type are listed in ``skipped`` with the reason.
    Each file appears once, by its :func:`canonical_path`, even when several sources name it.

    Raises:
        IngestError: a source does not exist, or a pattern matches nothing.
    """
    files: dict[Path, None] = {}  # a dict keeps first-seen order and drops duplicates
    skipped: dict[Path, SkippedSource] = {}
    for source in sources:
        for path in _expand(str(source)):
            absolute = canonical_path(path)
            if absolute.suffix.lower() in SUPPORTED_SUFFIXES:
                files.setdefault(absolute)
            elif absolute not in skipped:
                skipped[absolute] = SkippedSource(str(absolute), _unsupported(absolute))
    return Discovery(files=tuple(files), skipped=tuple(skipped.values()))


def _sniff_binary(path: Path, data: bytes) -> str | None:
    """Why ``data`` looks binary rather than text, or None when it looks like text."""
    head = data[:_SNIFF_BYTES]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return (
            "UTF-16 encoded text; convert it to UTF-8, e.g. "
            f"`iconv -f utf-16 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}`"
        )
    if b"\x00" in head:
        return (
            "binary content (NUL bytes) in a text file type; check the file is what its name says"
        )
    controls = sum(1 for byte in head if byte in _CONTROL_BYTES)
    if controls > _MAX_CONTROL_SHARE * len(head):
        return (
            f"binary content ({controls} control characters in the first {len(head)} bytes) "
            "in a text file type; check the file is what its name says"
        )
    return None


def _decode(path: Path, data: bytes) -> str | SkippedSource:
    """The file's text decoded as UTF-8 (a BOM is dropped), or why it cannot be."""
    problem = _sniff_binary(path, data)
    if problem is not None:
        return SkippedSource(str(path), problem)
    try:
        # Decoding the bytes ourselves (no universal newlines) keeps "\r\n" as it is in the
        # file; the document's line ends are normalised with a record of each change, so
        # chunk offsets still line up with the file's characters.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        bad = data[error.start : error.start + 1].hex()
        return SkippedSource(
            str(path),
            f"not valid UTF-8 (byte 0x{bad} at offset {error.start}); convert it, e.g. "
            f"`iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}`",
        )


def _markdown_title(text: str) -> str | None:
    in_fence = False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence  # a "# comment" inside a code block is no heading
        elif not in_fence and (match := _MARKDOWN_H1.match(line)):
            return match.group(1).strip()
    return None


# Elements whose content is not visible text. <head> is skipped except for its <title>.
_HIDDEN_TAGS = frozenset({"script", "style", "noscript", "template", "head"})
# Elements that start a new paragraph ("\n\n") or a new line ("\n") in the extracted text,
# so the chunker can split where the page's structure does.
_PARAGRAPH_TAGS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "blockquote", "pre"}
    | {"table", "ul", "ol", "dl", "header", "footer", "main", "nav", "aside", "figure"}
    | {"form", "title"}
)
_LINE_TAGS = frozenset({"div", "li", "tr", "br", "hr", "dt", "dd", "caption", "figcaption"})
_SPACES = re.compile(r"[ \t\r\f\v\xa0]+")


class _TextExtractor(HTMLParser):
    """Collects the visible text of an HTML page, its <title> and its first <h1>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)  # entities arrive already unescaped
        self.parts: list[str] = []
        self.title = ""
        self.h1 = ""
        self._hidden: list[str] = []  # open hidden elements (a stack: they can nest)
        self._in_title = False
        self._in_h1 = False
        self._pre = 0  # depth of open <pre> elements

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in _HIDDEN_TAGS:
            self._hidden.append(tag)
        self._in_h1 = self._in_h1 or (tag == "h1" and not self.h1)
        self._pre += tag == "pre"
        self._break(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self._hidden:
            # Drop the element and anything left open inside it.
            del self._hidden[len(self._hidden) - 1 - self._hidden[::-1].index(tag) :]
        if tag == "h1":
            self._in_h1 = False
        if tag == "pre":
            self._pre = max(0, self._pre - 1)
        self._break(tag)

    def handle_data(self, data: str) -> None:
        if self._hidden and not self._in_title:
            return
        # In <pre> line breaks are content; elsewhere they are just spaces.
        text = data if self._pre else data.replace("\n", " ")
        if text.strip() or (self.parts and not self.parts[-1].startswith("\n")):
            self.parts.append(text)
        if self._in_title:
            self.title += text
        if self._in_h1:
            self.h1 += text

    def _break(self, tag: str) -> None:
        if tag in _PARAGRAPH_TAGS or tag in _LINE_TAGS:
            gap = "\n\n" if tag in _PARAGRAPH_TAGS else "\n"
            # "</li><li>" is one line break, not two: adjacent breaks merge into the larger.
            if self.parts and self.parts[-1].startswith("\n"):
                self.parts[-1] = max(self.parts[-1], gap, key=len)
            else:
                self.parts.append(gap)
        elif tag in ("td", "th"):
            self.parts.append(" ")


@dataclass(frozen=True)
class _Html:
    text: str
    title: str | None


def _html_to_text(markup: str) -> _Html:
    """The visible text of an HTML page (one space between words, breaks between blocks)."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    lines = [_SPACES.sub(" ", line).strip(" ") for line in "".join(parser.parts).split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    title = " ".join(parser.title.split()) or " ".join(parser.h1.split())
    return _Html(text=text, title=title or None)


def _load_text(path: Path, data: bytes, mtime: float) -> LoadResult:
    text = _decode(path, data)
    if isinstance(text, SkippedSource):
        return LoadResult((), (text,))
    suffix = path.suffix.lower()
    title: str | None = None
    if suffix in _HTML_SUFFIXES:
        extracted = _html_to_text(text)
        text, title = extracted.text, extracted.title
    elif suffix != ".txt":
        title = _markdown_title(normalise_line_ends(text)[0])
    if not text.strip():
        what = "no text outside the markup" if suffix in _HTML_SUFFIXES else "only whitespace"
        return _skip(path, f"{what}; add content or remove the file from the sources")
    document = _document(text, source=str(path), title=title or path.stem, modified_at=mtime)
    return LoadResult((document,), ())


def _load_pdf(path: Path, data: bytes, mtime: float) -> LoadResult:
    try:
        import pypdf
    except ImportError:
        return _skip(path, "reading PDF needs pypdf; install it with `pip install pypdf`")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            return _skip(path, "encrypted PDF; decrypt it first, e.g. `qpdf --decrypt IN OUT`")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = reader.metadata.title if reader.metadata else None
    except Exception as error:  # pypdf raises many types for damaged files
        return _skip(
            path,
            f"the PDF cannot be parsed ({type(error).__name__}: {error}); re-export or "
            "repair it, e.g. `qpdf IN OUT`",
        )
    text = "\n\n".join(pages)
    if not text.strip():
        return _skip(
            path,
            "the PDF has no text layer (scanned pages?); run OCR first, e.g. `ocrmypdf IN OUT`",
        )
    document = _document(
        text,
        source=str(path),
        title=title.strip() if isinstance(title, str) and title.strip() else path.stem,
        modified_at=mtime,
    )
    return LoadResult((document,), ())


def _jsonl_record(path: Path, lineno: int, line: str, mtime: float) -> Document | str:
    """One JSONL line as a Document, or the reason it is skipped."""
    where = f"{path}:{lineno}"
    try:
        record: Any = json.loads(line)
    except json.JSONDecodeError as error:
        return f"{where}: invalid JSON ({error}); fix or remove the line"
    if not isinstance(record, dict):
        return f'{where}: a JSON {type(record).__name__}, expected an object with a "text" field'
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        return f'{where}: needs a non-empty string "text" field; add one or remove the line'
    metadata = record.get("metadata", {})
    if not isinstance(metadata, dict):
        return (
            f'{where}: "metadata" is a JSON {type(metadata).__name__}, expected an object; '
            "make it an object or remove it"
        )
    metadata = dict(metadata)
    if "id" in record:
        metadata["id"] = record["id"]  # the store assigns doc_id; the user's id rides along
    title = record.get("title")
    return _document(
        text,
        source=f"{path}#L{lineno}",
        title=title.strip() if isinstance(title, str) and title.strip() else path.stem,
        metadata=metadata,
        modified_at=mtime,
    )


def _load_jsonl(path: Path, data: bytes, mtime: float) -> LoadResult:
    text = _decode(path, data)
    if isinstance(text, SkippedSource):
        return LoadResult((), (text,))
    documents: list[Document] = []
    skipped: list[SkippedSource] = []
    # split("\n") rather than splitlines(): JSON strings may hold U+2028 and friends.
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        record = _jsonl_record(path, lineno, line, mtime)
        if isinstance(record, str):
            skipped.append(SkippedSource(f"{path}#L{lineno}", record))
        else:
            documents.append(record)
    if not documents and not skipped:
        return _skip(path, "only blank lines; add one JSON object per line")
    return LoadResult(tuple(documents), tuple(skipped))


def _document(
    text: str,
    *,
    source: str,
    title: str,
    modified_at: float,
    metadata: dict[str, Any] | None = None,
) -> Document:
    """A document with its line ends normalised and the edits that map offsets back."""
    normalised, edits = normalise_line_ends(text)
    return Document(
        doc_id="",
        text=normalised,
        source=source,
        title=title,
        metadata=metadata or {},
        modified_at=modified_at,
        edits=edits,
    )


def _skip(path: Path, reason: str) -> LoadResult:
    return LoadResult((), (SkippedSource(str(path), reason),))


def load(path: Path) -> LoadResult:
    """Read one file into documents; never raises for a bad file.

    ``.txt`` and ``.md`` give one document with the file's characters exactly; ``.html``
    the visible text; ``.pdf`` the pages' text joined by blank lines; ``.jsonl`` one
    document per line (a bad line is skipped alone). A file that cannot be used comes back
    in ``skipped`` with a reason that names the problem and the fix.
    """
    path = canonical_path(path)
    suffix = path.suffix.lower()
    if path.is_dir():
        return _skip(path, "a folder, not a file; pass it to discover() to list its files")
    if suffix not in SUPPORTED_SUFFIXES:
        return _skip(path, _unsupported(path))
    try:
        mtime = path.stat().st_mtime
        data = path.read_bytes()
    except OSError as error:
        return _skip(path, f"cannot be read ({error.strerror}); check it exists and is readable")
    if not data:
        return _skip(path, "empty file (0 bytes); add content or remove it from the sources")
    if suffix == ".pdf":
        return _load_pdf(path, data, mtime)
    if suffix == ".jsonl":
        return _load_jsonl(path, data, mtime)
    return _load_text(path, data, mtime)
