"""Citation parsing: markers, sentences, and what is reported rather than dropped."""

from __future__ import annotations

import pytest

from ragtune.check.citations import markers, parse_answer, split_sentences, strip_markers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[1]", [1]),
        ("[1, 3]", [1, 3]),
        ("[1][2]", [1, 2]),
        ("[ 2 ,4 ]", [2, 4]),
        ("[2-4]", [2, 3, 4]),
        ("see [12] and [3]", [12, 3]),
        ("no markers, [a] or [1.5]", []),
    ],
)
def test_markers(text: str, expected: list[int]) -> None:
    assert markers(text) == expected


def test_markers_after_the_full_stop_belong_to_the_sentence_before() -> None:
    parsed = parse_answer(
        "Returns take 30 days. [1] The motor is covered for five years. [2][3]", 3
    )
    assert [(p.claim, p.cited) for p in parsed] == [
        ("Returns take 30 days.", (1,)),
        ("The motor is covered for five years.", (2, 3)),
    ]


def test_markers_before_the_full_stop() -> None:
    parsed = parse_answer("Returns take 30 days [1]. Fees apply [1, 2].", 2)
    assert [(p.claim, p.cited) for p in parsed] == [
        ("Returns take 30 days.", (1,)),
        ("Fees apply.", (1, 2)),
    ]


def test_a_marker_on_its_own_line_joins_the_sentence() -> None:
    parsed = parse_answer("Returns take 30 days.\n[2]", 2)
    assert len(parsed) == 1 and parsed[0].cited == (2,)


def test_out_of_range_markers_are_reported_not_dropped() -> None:
    [sentence] = parse_answer("It lasts two years. [2][9][0]", 3)
    assert sentence.cited == (2,)
    assert sentence.invalid == (9, 0)
    assert sentence.has_marker


def test_sentences_without_markers_are_kept() -> None:
    parsed = parse_answer("Returns take 30 days. [1] Call us any time.", 1)
    assert (
        parsed[1].claim == "Call us any time."
        and parsed[1].cited == ()
        and not parsed[1].has_marker
    )


def test_repeated_markers_are_counted_once() -> None:
    [sentence] = parse_answer("It lasts two years [1][1, 1].", 1)
    assert sentence.cited == (1,)


def test_offsets_point_into_the_answer() -> None:
    text = "Returns take 30 days [1]. Fees apply. [2]"
    for sentence in parse_answer(text, 2):
        assert text[sentence.start : sentence.end] == sentence.text


def test_numbers_and_abbreviations_do_not_end_sentences() -> None:
    spans = split_sentences("It costs 3.5 pounds, e.g. for the jar. It ships today.")
    assert [s for s, _a, _b in spans] == [
        "It costs 3.5 pounds, e.g. for the jar.",
        "It ships today.",
    ]


def test_strip_markers_mends_spacing() -> None:
    assert strip_markers("It lasts two years [2] .") == "It lasts two years."


def test_empty_answer_has_no_sentences() -> None:
    assert parse_answer("  ", 3) == []
