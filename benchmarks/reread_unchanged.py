"""Re-reading unchanged files into an index: the cost of the chunk store's source lookups.

Builds an index of ``--files`` small text files (one source each), then adds the very same
files again: every file is read and chunked, every document is found already stored, and
nothing is embedded. What is left is the bookkeeping per file, above all finding the sources
already recorded for that file. A lookup that scans the whole ``sources`` table per file
makes this quadratic in the number of sources; the ``sources_file`` index makes it linear.

A hashing embedder stands in for the model (the figure is about the store, not embedding).

Rerun (from the repository root, alone on the machine)::

    .venv/bin/python benchmarks/reread_unchanged.py --files 2000
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ragtune.indexing import BuildSettings, add_to_index, build_index


class HashEmbedder:
    """Unit vectors from a text's hash: deterministic, instant, meaningless."""

    name = "hash-embedder"
    dimension = 16
    backend = "hash"

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def embed(
        self, texts: Sequence[str], *, progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
            vector = np.random.default_rng(seed).standard_normal(self.dimension)
            rows.append(vector / np.linalg.norm(vector))
        return np.asarray(rows, dtype=np.float32).reshape(-1, self.dimension)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ragtune-reread-"))
    try:
        docs = root / "docs"
        docs.mkdir()
        for i in range(args.files):
            (docs / f"note-{i:05d}.txt").write_text(f"Note {i} says the code word is w{i}x.\n")
        embedder = HashEmbedder()
        settings = BuildSettings(chunk_tokens=64, overlap_tokens=8, sentence_vectors=False)
        started = time.perf_counter()
        build_index([docs], root / "idx", embedder=embedder, settings=settings)
        built = time.perf_counter() - started
        started = time.perf_counter()
        report = add_to_index([docs], root / "idx", embedder=embedder)
        reread = time.perf_counter() - started
        assert report.documents_added == 0 and report.duplicates == args.files
        print(f"build of {args.files} files: {built:.2f} s")
        print(f"re-reading the {args.files} unchanged files: {reread:.2f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
