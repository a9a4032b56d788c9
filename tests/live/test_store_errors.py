"""A damaged live store file is a clear error naming the fix, and the file is left as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.errors import LiveStoreError
from ragtune.live.store import LiveStore


def test_a_file_that_is_not_a_database_is_refused_with_the_fix(tmp_path: Path) -> None:
    store = LiveStore(tmp_path, "acme")
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_bytes(b"not a database, " * 64)
    with pytest.raises(LiveStoreError, match=r"live store .* failed .*move the file aside"):
        store.answer("r-1")
    assert store.path.read_bytes() == b"not a database, " * 64
