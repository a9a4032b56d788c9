"""Rank fusion: pure functions that merge ranked lists from several retrievers.

Each input is a pair ``(ids, scores)`` ordered best first. The output is one ranking of the
union of ids, best first, with the fused score.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["Ranking", "convex_fusion", "reciprocal_rank_fusion"]

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


def convex_fusion(
    ids: np.ndarray, dense: np.ndarray, lexical: np.ndarray, weights: Sequence[float]
) -> Ranking:
    """Weighted sum of each retriever's score divided by its best score among the candidates.

    ``dense`` and ``lexical`` hold both scores for every candidate in ``ids`` (the caller fills
    in the score a retriever gives a candidate the other one found), so no candidate is
    penalised for being missing from one list. Dividing by the maximum, unlike min-max scaling,
    keeps a weak lexical match weak when the best one is weak too.

    >>> ids, s = convex_fusion(np.array([7, 8]), np.array([.8, .4]), np.array([1., 4.]), [.5, .5])
    >>> ids.tolist(), s.round(3).tolist()
    ([8, 7], [0.75, 0.625])
    """
    if len(ids) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    w_dense, w_lexical = weights
    fused = w_dense * _by_max(dense) + w_lexical * _by_max(lexical)
    # Stable order: fused score, then id, so equal scores rank the same way every time.
    order = np.lexsort((ids, -fused))
    return ids[order].astype(np.int64), fused[order].astype(np.float32)


def _by_max(scores: np.ndarray) -> np.ndarray:
    scores = scores.astype(np.float64)
    top = float(scores.max()) if len(scores) else 0.0
    return scores / top if top > 0 else np.zeros_like(scores)


def _sorted(fused: dict[int, float]) -> Ranking:
    if not fused:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    items = sorted(fused.items(), key=lambda item: (-item[1], item[0]))
    ids = np.fromiter((i for i, _ in items), dtype=np.int64, count=len(items))
    scores = np.fromiter((s for _, s in items), dtype=np.float32, count=len(items))
    return ids, scores
