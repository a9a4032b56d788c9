"""Fusion is pure: hand-worked examples."""

from __future__ import annotations

import numpy as np
import pytest

from ragtune.retrieve.fusion import convex_fusion, reciprocal_rank_fusion


def _r(ids, scores):
    return np.array(ids, dtype=np.int64), np.array(scores, dtype=np.float32)


def test_rrf_by_hand():
    ids, scores = reciprocal_rank_fusion(
        [_r([1, 2, 3], [3, 2, 1]), _r([3, 1], [9, 8])], [1.0, 1.0], k=1
    )
    # 1: 1/2 + 1/3 = .833; 3: 1/4 + 1/2 = .75; 2: 1/3
    assert ids.tolist() == [1, 3, 2]
    assert scores.tolist() == pytest.approx([1 / 2 + 1 / 3, 1 / 4 + 1 / 2, 1 / 3])


def test_rrf_weights_shift_the_order():
    a, b = _r([1, 2], [2, 1]), _r([2, 1], [2, 1])
    assert reciprocal_rank_fusion([a, b], [2.0, 1.0])[0].tolist() == [1, 2]
    assert reciprocal_rank_fusion([a, b], [1.0, 2.0])[0].tolist() == [2, 1]


def test_convex_fusion_by_hand():
    ids = np.array([1, 2, 3], dtype=np.int64)
    dense = np.array([0.9, 0.45, 0.3])  # / .9 -> 1, .5, 1/3
    lexical = np.array([0.0, 8.0, 4.0])  # / 8 -> 0, 1, .5
    fused_ids, scores = convex_fusion(ids, dense, lexical, [0.6, 0.4])
    assert fused_ids.tolist() == [2, 1, 3]
    assert scores.tolist() == pytest.approx([0.7, 0.6, 0.4])


def test_convex_fusion_ties_and_degenerate_scores():
    ids = np.array([5, 4], dtype=np.int64)
    fused_ids, scores = convex_fusion(ids, np.array([0.5, 0.5]), np.array([0.0, 0.0]), [1.0, 1.0])
    assert fused_ids.tolist() == [4, 5] and scores.tolist() == [1.0, 1.0]
    empty_ids, empty_scores = convex_fusion(
        np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), [1, 1]
    )
    assert len(empty_ids) == 0 and len(empty_scores) == 0
