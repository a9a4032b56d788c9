"""``manifest.json``: what an index is, and which generation of its files is current.

The manifest is the commit point of every write: a new generation's files are complete before
the manifest that names them replaces the old one with an atomic rename.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ragtune.durable import write_atomic
from ragtune.errors import (
    EmbedderMismatchError,
    IndexCorruptError,
    IndexFormatError,
    IndexNotFoundError,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "EmbedderInfo",
    "Manifest",
    "refuse_other_embedder",
]

FORMAT = "ragtune-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class EmbedderInfo:
    """The embedder an index was built with; queries must use the same one."""

    name: str
    dimension: int
    model: str = ""
    """The model as configured (an embedded name or a folder path), to load it again."""
    normalized: bool = True
    backend: str = "torch"
    max_tokens: int | None = None


@dataclass(frozen=True)
class Manifest:
    """Everything fixed at build time, plus counts and the current generation."""

    embedder: EmbedderInfo
    chunking: dict[str, Any]
    ingest: dict[str, Any]
    vectors: dict[str, Any]
    lexical: dict[str, Any]
    generation: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    tenants: dict[str, int] = field(default_factory=dict)
    pii: dict[str, int] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        # Lead with what identifies the file, for a human reading it.
        head = {"format": data.pop("format"), "format_version": data.pop("format_version")}
        return head | data

    def evolve(self, **changes: Any) -> Manifest:
        return replace(self, **changes)

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST
        if not folder.exists():
            raise IndexNotFoundError(
                f"no index at {folder}; build one with `ragtune index build SRC --out {folder}`"
            )
        if not path.is_file():
            raise IndexNotFoundError(
                f"{folder} is not a ragtune index (no {MANIFEST}); "
                f"build one with `ragtune index build SRC --out {folder}`"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IndexCorruptError(f"{path} is not valid JSON ({exc}); rebuild the index") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise IndexCorruptError(f"{path} is not a ragtune index manifest; rebuild the index")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise IndexFormatError(
                f"{path} has index format version {version!r}; this ragtune reads version "
                f"{FORMAT_VERSION}. Rebuild the index with this ragtune, or use the ragtune "
                "version that wrote it"
            )
        return cls.from_dict(data, where=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str) -> Manifest:
        """A manifest from its :meth:`to_dict` form; ``where`` names its place in errors."""
        try:
            fields = dict(data)
            fields["embedder"] = EmbedderInfo(**fields["embedder"])
            return cls(**fields)
        except (KeyError, TypeError) as exc:
            raise IndexCorruptError(
                f"{where} is missing or has unknown fields ({exc}); rebuild the index"
            ) from exc

    def write(self, folder: Path) -> None:
        write_atomic(folder / MANIFEST, json.dumps(self.to_dict(), indent=2) + "\n")


def refuse_other_embedder(where: str, have: EmbedderInfo, embedder: str) -> None:
    """Refuse to mix vectors of two embedders in one index (compared by name; the dimension
    is checked when vectors are added, so a no-op update never loads the model)."""
    if embedder.lower() != have.name.lower():
        raise EmbedderMismatchError(
            f"{where} was built with {have.name!r} ({have.dimension} dimensions); the "
            f"configured embedder is {embedder!r}. Use the index's embedder, or rebuild "
            "the index with `ragtune index build`"
        )
