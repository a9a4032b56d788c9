"""Fusion is pure: hand-worked examples."""

from __future__ import annotations

import numpy as np
import pytest

from ragtune.retrieve.fusion import reciprocal_rank_fusion, score_fusion


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


def test_score_fusion_by_hand():
    dense = _r([1, 2, 3], [0.9, 0.7, 0.5])  # scaled 1, .5, 0
    lexical = _r([3, 2], [10.0, 6.0])  # scaled 1, 0
    ids, scores = score_fusion([dense, lexical], [0.5, 0.5])
    assert ids.tolist() == [1, 3, 2]
    assert scores.tolist() == pytest.approx([0.5, 0.5, 0.25])


def test_ties_break_by_id_and_empty_inputs():
    ids, _ = score_fusion([_r([5, 4], [1, 1]), _r([], [])], [1.0, 1.0])
    assert ids.tolist() == [4, 5]
    empty_ids, empty_scores = score_fusion([_r([], []), _r([], [])], [1.0, 1.0])
    assert len(empty_ids) == 0 and len(empty_scores) == 0
