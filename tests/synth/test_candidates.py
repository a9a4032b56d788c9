"""Answer candidates: the kinds, the spans, the spread over sentences, and what is left out."""

from __future__ import annotations

import pytest

from ragtune.synth.candidates import extract_candidates, name_spans


def _found(text: str, limit: int = 20) -> list[tuple[str, str]]:
    return [(c.text, c.kind) for c in extract_candidates(text, limit)]


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("You can return any item within 30 days of delivery.", ("30 days", "number")),
        ("Express shipping costs 9.99 dollars in the UK.", ("9.99 dollars", "number")),
        ("Delivery takes 3 to 5 business days at most.", ("3 to 5 business days", "number")),
        ("The price of oil rose to $12 million in total.", ("$12 million", "number")),
        ("Every blender carries a two-year warranty against defects.", ("two-year", "number")),
        ("Unemployment fell by 15% over the decade.", ("15%", "number")),
        ("Oil rose from US$3 per barrel to nearly $12 globally.", ("US$3", "number")),
        (
            "They came in the 10th and 11th centuries from Norway.",
            ("10th and 11th centuries", "number"),
        ),
        ("About 300 people live in the old town.", ("300 people", "number")),
        ("The tower was opened in 1889 by the city.", ("1889", "date")),
        ("The embargo ended in March 1974 after talks.", ("March 1974", "date")),
        ("The Bastille was stormed on 14 July 1789 by a crowd.", ("14 July 1789", "date")),
        ("The contract was signed on 2021-03-04 in the morning.", ("2021-03-04", "date")),
        ("The warranty is handled by Orbix Industries in Lyon.", ("Orbix Industries", "name")),
        (
            "He studied at the University of Notre Dame for years.",
            ("University of Notre Dame", "name"),
        ),
        ("The Normans were a people of northern France.", ("a people", "phrase")),
    ],
)
def test_each_kind_is_found_with_its_exact_span(sentence: str, expected: tuple[str, str]) -> None:
    found = extract_candidates(sentence, 10)
    assert expected in [(c.text, c.kind) for c in found]
    for c in found:
        assert sentence[c.start : c.end] == c.text and c.sentence == sentence


def test_a_year_inside_a_date_is_not_a_second_candidate() -> None:
    found = _found("The embargo ended in March 1974 after long talks.")
    assert ("March 1974", "date") in found and ("1974", "date") not in found
    assert all("1974" not in text for text, kind in found if kind == "number")


def test_a_capitalised_first_word_is_no_name_unless_it_is_one_elsewhere() -> None:
    assert not [k for _t, k in _found("Shipping takes three to five days in total.") if k == "name"]
    heading = "Returns\n\nItems can be returned within 30 days of delivery."
    assert ("Items", "name") not in _found(heading)  # after a heading: still a sentence start
    text = "Lyon hosts the plant. The plant in Lyon employs 300 people."
    assert ("Lyon", "name") in _found(text)


def test_candidates_spread_over_sentences_strongest_first_and_stop_at_the_limit() -> None:
    text = (
        "The Northfield library opens at 9 am. Visitors pay 20 euros a year since March 2019. "
        "The archive was founded in 1921 by Clara Weiss."
    )
    first = _found(text, 3)
    assert first == [("9 am", "number"), ("20 euros", "number"), ("1921", "date")]
    assert len(_found(text, 100)) > 3


def test_headings_repeats_and_placeholders_give_nothing() -> None:
    assert _found("# Returns") == []
    assert _found("Call [PHONE] or write to [EMAIL] before 5 pm.") == [("5 pm", "number")]
    twice = _found("Returns take 30 days. Exchanges also take 30 days at most.")
    assert [t for t, _k in twice].count("30 days") == 1
    assert extract_candidates("Returns take 30 days in total.", 0) == []


def test_name_spans_in_a_question() -> None:
    question = "When was the University of Notre Dame founded?"
    assert [question[a:b] for a, b in name_spans(question, question)] == [
        "University of Notre Dame"
    ]


def test_a_year_is_a_date_the_longest_date_wins_and_glued_units_are_not_numbers() -> None:
    found = _found("The 1973 oil crisis began in October 1973 with an embargo by the members.")
    assert ("October 1973", "date") in found
    assert not [t for t, k in found if k == "number"]  # not "1973 oil"
    assert _found("The plant is 5km away and opens at 9am daily.") == []
