"""Eval metrics and intervals, against hand-worked examples."""

from __future__ import annotations

import pytest

from ragtune.eval.metrics import (
    answer_recall_at_k,
    contains_answer,
    exact_match,
    percentile,
    recall_at_k,
    reciprocal_rank,
    token_f1,
)
from ragtune.eval.stats import bootstrap, paired_bootstrap, ratio


def test_squad_normalisation_em_and_f1_best_over_golds() -> None:
    assert exact_match("The Denver Broncos!", ["Denver Broncos", "Broncos"]) == 1.0
    assert exact_match("Denver", ["Denver Broncos"]) == 0.0
    # prediction "denver broncos won" vs gold "broncos": P = 1/3, R = 1, F1 = 0.5
    assert token_f1("Denver Broncos won", ["Broncos", "Carolina"]) == pytest.approx(0.5)
    assert token_f1("", ["Broncos"]) == 0.0
    assert token_f1("a the", ["the"]) == 1.0  # both normalise to nothing


def test_contains_is_word_for_word() -> None:
    assert contains_answer("It was built in 1889 [1].", ["1889"]) == 1.0
    assert contains_answer("It was built in 18890.", ["1889"]) == 0.0
    assert contains_answer("Paris, France", ["paris france"]) == 1.0
    assert contains_answer("anything", []) == 0.0


def test_retrieval_metrics() -> None:
    ranked = ["d3", "d1", "d2"]
    assert [recall_at_k(ranked, "d1", k) for k in (1, 2, 3)] == [0.0, 1.0, 1.0]
    assert reciprocal_rank(ranked, "d2") == pytest.approx(1 / 3)
    assert reciprocal_rank(ranked, "d9") == 0.0
    texts = ["nothing here", "the answer is 42", "42 again"]
    assert answer_recall_at_k(texts, ["42"], 1) == 0.0
    assert answer_recall_at_k(texts, ["42"], 2) == 1.0


def test_percentile_interpolates() -> None:
    assert percentile([10.0, 20.0, 30.0, 40.0, 50.0], 50) == 30.0
    assert percentile([10.0, 20.0], 95) == pytest.approx(19.5)


def test_bootstrap_is_seeded_and_brackets_the_value() -> None:
    values = [1.0] * 30 + [0.0] * 10
    one = bootstrap(values, [1.0] * 40, seed=3)
    two = bootstrap(values, [1.0] * 40, seed=3)
    assert one == two and one.value == 0.75
    assert 0.55 < one.low < 0.75 < one.high < 0.9
    constant = bootstrap([1.0] * 10, [1.0] * 10)
    assert (constant.low, constant.high) == (1.0, 1.0)


def test_ratio_metrics_resample_questions_not_sentences() -> None:
    # 3 questions: 2/2, 0/4, 1/1 supported sentences -> 3/7 overall
    estimate = bootstrap([2.0, 0.0, 1.0], [2.0, 4.0, 1.0], seed=0)
    assert estimate.value == pytest.approx(3 / 7)
    assert ratio([], []) == 0.0


def test_paired_bootstrap_sees_a_consistent_gain_that_unpaired_noise_would_hide() -> None:
    # B is better than A on every question by 0.1, while questions vary a lot.
    a = [0.1 * (i % 9) for i in range(60)]
    b = [x + 0.1 for x in a]
    ones = [1.0] * 60
    delta = paired_bootstrap((a, ones), (b, ones), seed=0)
    assert delta.value == pytest.approx(0.1)
    assert delta.low == pytest.approx(0.1) and delta.high == pytest.approx(0.1)
    assert delta.excludes_zero
    same = paired_bootstrap((a, ones), (a, ones))
    assert same.value == 0.0 and not same.excludes_zero
    with pytest.raises(ValueError, match="same questions"):
        paired_bootstrap((a, ones), (b[:10], ones[:10]))
