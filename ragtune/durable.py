"""Files that survive a crash: written whole or not at all, and their renames made durable.

Used wherever ragtune replaces a small file that readers may open at any moment: an index's
``manifest.json``, the adapter registry's pointer and cards, ``ragtune synth``'s state.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

__all__ = ["fsync_dir", "write_atomic"]


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new content, never a
    mix, and a crash leaves one of the two: write a temporary file beside it, fsync it, rename
    it over ``path``, fsync the folder. The temporary name is unique per call, so threads and
    processes writing the same file at once do not write into each other's temporary file
    (the last rename wins; callers that need more take a lock)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (a no-op where the platform cannot fsync a
    folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
