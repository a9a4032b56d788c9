"""The BM25 part of an index (bm25s), keyed by the same chunk ids as the vectors.

BM25's statistics (document frequencies, average length) are global, so any change to the
corpus changes every score: the lexical index is rebuilt from the chunk table on each update.
That costs a tokenisation pass (about a second per 50k chunks), never an embedding pass.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.errors import IndexCorruptError, IndexError_

__all__ = ["LexicalIndex", "LexicalSpec"]

_IDS_FILE = "chunk_ids.npy"
_SPEC_FILE = "spec.json"


@dataclass(frozen=True)
class LexicalSpec:
    """BM25 variant and text processing."""

    k1: float = 1.5
    b: float = 0.75
    method: str = "lucene"
    stopwords: str = "english"
    stemming: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LexicalSpec:
        return cls(**data)


def _stemmer(spec: LexicalSpec) -> Any:
    if not spec.stemming:
        return None
    try:
        import Stemmer
    except ImportError as exc:
        raise IndexError_(
            "BM25 stemming needs PyStemmer: pip install PyStemmer (or set index.lexical.stemming: false)"
        ) from exc
    return Stemmer.Stemmer("english")


class LexicalIndex:
    """BM25 over chunk texts, searchable with an optional id restriction."""

    def __init__(self, bm25: Any, chunk_ids: np.ndarray, spec: LexicalSpec) -> None:
        self._bm25 = bm25
        self._ids = chunk_ids.astype(np.int64)
        self._position = {int(cid): i for i, cid in enumerate(self._ids)}
        self.spec = spec
        self._stem = _stemmer(spec)
        self._last: tuple[str, np.ndarray | None] | None = None

    @classmethod
    def build(
        cls, chunk_ids: Sequence[int], texts: Sequence[str], spec: LexicalSpec
    ) -> LexicalIndex:
        import bm25s

        stem = _stemmer(spec)
        bm25 = bm25s.BM25(k1=spec.k1, b=spec.b, method=spec.method)
        if texts:
            tokens = bm25s.tokenize(
                list(texts), stopwords=_stopwords(spec), stemmer=stem, show_progress=False
            )
            bm25.index(tokens, show_progress=False)
        return cls(bm25, np.asarray(list(chunk_ids), dtype=np.int64), spec)

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        import bm25s

        try:
            spec = LexicalSpec.from_dict(json.loads((folder / _SPEC_FILE).read_text()))
            ids = np.load(folder / _IDS_FILE, allow_pickle=False)
            bm25 = bm25s.BM25.load(str(folder), show_progress=False) if len(ids) else None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexCorruptError(
                f"the BM25 index in {folder} cannot be read ({exc}); rebuild the index"
            ) from exc
        return cls(bm25, ids, spec)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / _SPEC_FILE).write_text(json.dumps(self.spec.to_dict()))
        np.save(folder / _IDS_FILE, self._ids, allow_pickle=False)
        if len(self._ids):
            self._bm25.save(str(folder), show_progress=False)

    def __len__(self) -> int:
        return len(self._ids)

    def search(
        self, query: str, k: int, *, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` chunk ids and BM25 scores; chunks with score 0 (no shared term) are left out."""
        empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
        scores = self._all_scores(query)
        if scores is None or k <= 0:
            return empty
        if allowed is not None:
            mask = np.zeros(len(self._ids), dtype=bool)
            mask[self._positions(allowed)] = True
            scores = np.where(mask, scores, 0.0)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        top = top[scores[top] > 0]
        return self._ids[top], scores[top].astype(np.float32)

    def scores(self, query: str, ids: np.ndarray) -> np.ndarray:
        """BM25 scores of the query for the given chunk ids (0 for unknown ids)."""
        scores = self._all_scores(query)
        out = np.zeros(len(ids), dtype=np.float32)
        if scores is None:
            return out
        for i, cid in enumerate(ids.tolist()):
            position = self._position.get(int(cid))
            if position is not None:
                out[i] = scores[position]
        return out

    def _positions(self, ids: np.ndarray) -> list[int]:
        return [self._position[int(c)] for c in ids if int(c) in self._position]

    def _all_scores(self, query: str) -> np.ndarray | None:
        """BM25 score of every chunk, or None when no query term is in the vocabulary.

        The last query's scores are kept: hybrid search asks for the top list and then for the
        scores of the fused candidates, with the same query.
        """
        if self._last is not None and self._last[0] == query:
            return self._last[1]
        scores = self._score(query)
        self._last = (query, scores)
        return scores

    def _score(self, query: str) -> np.ndarray | None:
        import bm25s

        if len(self._ids) == 0:
            return None
        tokens = bm25s.tokenize(
            [query],
            stopwords=_stopwords(self.spec),
            stemmer=self._stem,
            return_ids=False,
            show_progress=False,
        )[0]
        vocab = self._bm25.vocab_dict
        known = [t for t in tokens if t in vocab]
        if not known:
            return None
        return np.asarray(self._bm25.get_scores(known), dtype=np.float32)


def _stopwords(spec: LexicalSpec) -> str | list[str]:
    return "english" if spec.stopwords == "english" else []
