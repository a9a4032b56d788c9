"""Rank fusion: pure functions that merge ranked lists from several retrievers.

Each input is a pair ``(ids, scores)`` ordered best first. The output is one ranking of the
union of ids, best first, with the fused score.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["Ranking", "reciprocal_rank_fusion", "score_fusion"]

Ranking = tuple[np.ndarray, np.ndarray]
"""Chunk ids and their scores, best first."""


def reciprocal_rank_fusion(
    rankings: Sequence[Ranking], weights: Sequence[float], *, k: int = 60
) -> Ranking:
    """Weighted RRF: score(d) = sum_i w_i / (k + rank_i(d)), rank counted from 1.

    >>> ids, s = reciprocal_rank_fusion([(np.array([1, 2]), np.array([.9, .8])),
    ...                                  (np.array([2, 3]), np.array([5., 4.]))], [1, 1])
    >>> ids.tolist()
    [2, 1, 3]
    """
    fused: dict[int, float] = {}
    for (ids, _scores), weight in zip(rankings, weights, strict=True):
        for rank, cid in enumerate(ids.tolist(), start=1):
            fused[cid] = fused.get(cid, 0.0) + weight / (k + rank)
    return _sorted(fused)


def score_fusion(rankings: Sequence[Ranking], weights: Sequence[float]) -> Ranking:
    """Weighted sum of scores scaled to [0, 1] per retriever (min-max over its candidates).

    A document missing from one list gets 0 from it. Unlike RRF this keeps how far ahead the
    leader is, which matters when one retriever is sure and the other is not.

    >>> ids, s = score_fusion([(np.array([1, 2]), np.array([.9, .5])),
    ...                        (np.array([2, 1]), np.array([8., 7.]))], [1, 1])
    >>> ids.tolist()
    [1, 2]
    """
    fused: dict[int, float] = {}
    for (ids, scores), weight in zip(rankings, weights, strict=True):
        if len(ids) == 0 or weight == 0:
            continue
        scaled = _min_max(scores)
        for cid, value in zip(ids.tolist(), scaled.tolist(), strict=True):
            fused[cid] = fused.get(cid, 0.0) + weight * value
    return _sorted(fused)


def _min_max(scores: np.ndarray) -> np.ndarray:
    scores = scores.astype(np.float64)
    low, high = float(scores.min()), float(scores.max())
    if high - low < 1e-12:
        return np.ones_like(scores)
    return (scores - low) / (high - low)


def _sorted(fused: dict[int, float]) -> Ranking:
    if not fused:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    items = sorted(fused.items(), key=lambda item: (-item[1], item[0]))
    ids = np.fromiter((i for i, _ in items), dtype=np.int64, count=len(items))
    scores = np.fromiter((s for _, s in items), dtype=np.float32, count=len(items))
    return ids, scores
