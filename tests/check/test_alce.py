"""ALCE citation recall and precision, worked by hand (Gao et al., 2023)."""

from __future__ import annotations

from ragtune.check.alce import alce_scores

# Passages 1 and 2 each support sentence 0 alone; only 1 and 3 together support sentence 1.
SUPPORT = {0: [{1}, {2}], 1: [{1, 3}]}


def judge(passages: frozenset[int], sentence: int) -> bool:
    return any(need <= passages for need in SUPPORT.get(sentence, []))


def test_all_cited_and_supported() -> None:
    score = alce_scores([(1,), (1, 3)], judge)
    assert (score.recall, score.precision, score.citations) == (1.0, 1.0, 3)


def test_sentence_without_citation_has_recall_zero_and_adds_no_citation() -> None:
    score = alce_scores([(1,), ()], judge)
    assert score.sentence_recall == (1, 0)
    assert (score.recall, score.precision, score.citations) == (0.5, 1.0, 1)


def test_out_of_range_citation_supports_nothing() -> None:
    # 9 is past the passage list: alone it gives recall 0 and an imprecise citation.
    score = alce_scores([(9,)], judge)
    assert (score.recall, score.precision) == (0.0, 0.0)
    # Next to a good one it is irrelevant: the rest still supports, it alone does not.
    score = alce_scores([(1, 9)], judge)
    assert (score.recall, score.precision) == (1.0, 0.5)


def test_redundant_citation_is_precise_when_it_supports_alone() -> None:
    # Both 1 and 2 support sentence 0 alone: neither is irrelevant.
    score = alce_scores([(1, 2)], judge)
    assert (score.recall, score.precision) == (1.0, 1.0)


def test_irrelevant_extra_citation_lowers_precision() -> None:
    # 4 supports nothing and 1 supports alone: 4 is irrelevant.
    score = alce_scores([(1, 4)], judge)
    assert (score.recall, score.precision) == (1.0, 0.5)


def test_needed_together_citations_are_both_precise() -> None:
    # Neither 1 nor 3 supports sentence 1 alone, but removing either breaks support.
    score = alce_scores([(), (1, 3)], judge)
    assert (score.recall, score.precision) == (0.5, 1.0)


def test_unsupported_sentence_makes_its_citations_imprecise() -> None:
    score = alce_scores([(3,)], judge)
    assert (score.recall, score.precision, score.citations) == (0.0, 0.0, 1)


def test_no_sentences() -> None:
    score = alce_scores([], judge)
    assert (score.recall, score.precision, score.sentences) == (0.0, 1.0, 0)
