"""Line ends normalised once, at load, with a record of every change.

Files written on Windows end lines with ``\\r\\n``, old Mac files with ``\\r``, and Unicode has
its own line and paragraph separators. Everything after loading (the chunker's paragraph and
line separators, sentence splitting, hashing for de-duplication) sees ``\\n`` only, so the same
paragraphs chunk the same way whatever wrote them. Each change is kept as a
:class:`~ragtune.types.TextEdit`, so chunk offsets are mapped back to the text as read.

>>> text, edits = normalise_line_ends("One.\\r\\n\\r\\nTwo.")
>>> text
'One.\\n\\nTwo.'
>>> to_source(edits, text.index("Two"), is_end=False)
8
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from typing import Protocol

from ragtune.types import TextEdit

__all__ = ["LINE_BREAKS", "normalise_line_ends", "to_source"]

LINE_BREAKS = {
    "\r\n": "\n",
    "\r": "\n",
    "\x0b": "\n",  # vertical tab
    "\x85": "\n",  # NEXT LINE
    "\u2028": "\n",  # LINE SEPARATOR
    "\x0c": "\n\n",  # form feed: a page break ends a paragraph
    "\u2029": "\n\n",  # PARAGRAPH SEPARATOR
}
"""What each line or paragraph break becomes (Unicode's mandatory breaks, UAX #14)."""

_BREAK = re.compile("\r\n|[\r\x0b\x0c\x85\u2028\u2029]")


class _Edit(Protocol):
    @property
    def source_start(self) -> int: ...
    @property
    def source_end(self) -> int: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...


def normalise_line_ends(text: str) -> tuple[str, tuple[TextEdit, ...]]:
    """``text`` with every line and paragraph break written as ``\\n`` (``\\n\\n`` for a paragraph
    break), and the edits that map offsets back (none when nothing changed)."""
    if not _BREAK.search(text):
        return text, ()
    parts: list[str] = []
    edits: list[TextEdit] = []
    cursor = length = 0
    for match in _BREAK.finditer(text):
        kept = text[cursor : match.start()]
        replacement = LINE_BREAKS[match.group()]
        parts += [kept, replacement]
        start = length + len(kept)
        length = start + len(replacement)
        edits.append(TextEdit(match.start(), match.end(), start, length))
        cursor = match.end()
    parts.append(text[cursor:])
    return "".join(parts), tuple(edits)


def to_source(
    edits: Sequence[_Edit], offset: int, *, is_end: bool, starts: Sequence[int] | None = None
) -> int:
    """Map an offset in edited text back to the text before the edits (sorted, not overlapping).

    An offset strictly inside a replacement maps to the start of the replaced span when it
    starts a range and to its end when it ends one (``is_end=True``), so a range that cuts a
    replacement still covers all of what it replaced. ``starts`` (each edit's ``start``) may
    be given to save rebuilding it on every call.
    """
    keys = starts if starts is not None else [edit.start for edit in edits]
    index = bisect.bisect_right(keys, offset) - 1
    if index < 0:
        return offset  # before the first edit nothing has moved
    edit = edits[index]
    if offset == edit.start:
        return edit.source_start
    if offset < edit.end:
        return edit.source_end if is_end else edit.source_start
    return offset + (edit.source_end - edit.end)
