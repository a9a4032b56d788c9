"""The BM25 part of an index (bm25s), keyed by the same chunk ids as the vectors.

BM25's statistics (document frequencies, average length) are global, so any change to the
corpus changes every score: the lexical index is rebuilt from the chunk table on each update.
That costs a tokenisation pass (about a second per 50k chunks), never an embedding pass.

Tokens: words of two or more letters or digits, lower-cased, with the stop words and stemming
of the spec (bm25s' own tokenizer). A clause in a script written without spaces (Chinese,
Japanese, Thai...; :data:`ragtune.text.SPACELESS`) is one "word" to that rule, so no query
ever matches it; the ``auto`` tokenizer (the default) cuts such runs into overlapping
character bigrams instead, the unit CJK search engines index, and treats the rest as before:

>>> tokenize(["退货需要三十天 Returns"], LexicalSpec(stemming=False))
[['退货', '货需', '需要', '要三', '三十', '十天', 'returns']]
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from annotated_types import Ge, Gt, Le

from ragtune.errors import IndexCorruptError, IndexError_
from ragtune.settings import check_bounds
from ragtune.text import SPACELESS

__all__ = ["LexicalIndex", "LexicalSpec", "tokenize"]

_IDS_FILE = "chunk_ids.npy"
_SPEC_FILE = "spec.json"


@dataclass(frozen=True)
class LexicalSpec:
    """The BM25 index built next to the vectors: its variant and text processing."""

    k1: Annotated[float, Gt(0.0)] = 1.5
    b: Annotated[float, Ge(0.0), Le(1.0)] = 0.75
    method: Literal["lucene", "robertson", "atire", "bm25l", "bm25+"] = "lucene"
    stopwords: Literal["english", "none"] = "english"
    stemming: bool = True
    """English Snowball stemming (PyStemmer)."""
    tokenizer: Literal["auto", "words"] = "auto"
    """``auto``: character bigrams for scripts written without spaces, words for the rest;
    ``words``: words only (what indexes built before the choice existed use)."""

    def __post_init__(self) -> None:
        check_bounds(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LexicalSpec:
        # An index written before the tokenizer was a choice was tokenised by words.
        return cls(**{"tokenizer": "words", **data})


_WORD_PATTERN = r"(?u)\b\w\w+\b"  # bm25s' default: what `words` has always used
_TOKEN = re.compile(rf"(?P<spaceless>[{SPACELESS}]+)|(?P<word>(?:(?![{SPACELESS}])\w){{2,}})")


def tokenize(texts: Sequence[str], spec: LexicalSpec, stemmer: Any = None) -> list[list[str]]:
    """The BM25 tokens of each text, as the spec's tokenizer, stop words and stemming make them."""
    if spec.tokenizer == "words":
        return [list(t) for t in bm25s_tokenize(texts, spec, stemmer)]
    stop = set(_stopwords(spec))
    out: list[list[str]] = []
    for text in texts:
        tokens: list[str] = []
        words: list[str] = []
        for match in _TOKEN.finditer(text.lower()):
            run = match.group("spaceless")
            if run is None:
                if match.group("word") not in stop:
                    words.append(match.group("word"))
                    tokens.append("")  # a place for the stemmed word, keeping the order
                continue
            tokens += [run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)]
        stemmed = iter(stemmer.stemWords(words) if stemmer is not None and words else words)
        out.append([token or next(stemmed) for token in tokens])
    return out


def bm25s_tokenize(texts: Sequence[str], spec: LexicalSpec, stemmer: Any) -> list[list[str]]:
    """bm25s' own word tokenizer (the ``words`` choice)."""
    import bm25s

    return list(
        bm25s.tokenize(
            list(texts),
            token_pattern=_WORD_PATTERN,
            stopwords=_stopwords(spec),
            stemmer=stemmer,
            return_ids=False,
            show_progress=False,
        )
    )


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
            bm25.index(tokenize(texts, spec, stem), show_progress=False)
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
        if len(self._ids) == 0:
            return None
        tokens = tokenize([query], self.spec, self._stem)[0]
        vocab = self._bm25.vocab_dict
        known = [t for t in tokens if t in vocab]
        if not known:
            return None
        return np.asarray(self._bm25.get_scores(known), dtype=np.float32)


def _stopwords(spec: LexicalSpec) -> list[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return list(STOPWORDS_EN) if spec.stopwords == "english" else []
