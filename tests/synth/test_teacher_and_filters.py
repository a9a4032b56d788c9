"""Reading a teacher's reply, the prompt it is sent, and each filter on its own."""

from __future__ import annotations

import pytest

from ragtune.generate.prompts import ABSTENTION
from ragtune.synth.filters import (
    NearDuplicates,
    answer_matches,
    gives_away_answer,
    round_trip,
)
from ragtune.synth.teacher import EXAMPLES, QuestionRequest, parse_question, question_messages


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("When does the library close?", "When does the library close?"),
        ('Question: "When does the library close?"', "When does the library close?"),
        ("1. When does the library close? It closes at 6 pm.", "When does the library close?"),
        ("\nQ: How much does a card cost?\nA: 20 euros", "How much does a card cost?"),
        ("The library closes at 6 pm.", None),
        ("", None),
        ("Why?", None),  # too short to be a question about anything
        ("6 pm?", None),  # the answer with a question mark
        ("When " + "very " * 50 + "late?", None),
    ],
)
def test_parse_question(reply: str, expected: str | None) -> None:
    assert parse_question(reply, "6 pm") == expected


def test_the_prompt_shows_the_examples_then_the_request() -> None:
    request = QuestionRequest("Returns", "Items can be returned within 30 days.", "30 days")
    messages = question_messages(request)
    assert messages[0]["role"] == "system" and "Do not put the answer" in messages[0]["content"]
    assert len(messages) == 2 + 2 * len(EXAMPLES)
    assert messages[-1] == {
        "role": "user",
        "content": "Topic: Returns\nSentence: Items can be returned within 30 days.\nAnswer: 30 days",
    }
    for example, question in EXAMPLES:  # the worked questions keep the rules they teach
        assert not gives_away_answer(question, example.answer)


def test_the_question_must_not_contain_its_answer() -> None:
    assert gives_away_answer("Are returns accepted within 30 days?", "30 days")
    assert gives_away_answer("Are returns accepted within the 30-day window?", "30 day")
    assert not gives_away_answer("How long are returns accepted?", "30 days")


def test_round_trip_needs_the_source_in_the_top_k() -> None:
    assert round_trip(["a", "src", "b"], "src", 2)
    assert not round_trip(["a", "b", "src"], "src", 2)
    assert not round_trip([], "src", 5)


def test_the_grounded_answer_must_match_the_candidate() -> None:
    assert answer_matches("30 days [1].", "30 days", 0.5)
    assert answer_matches("Within 30 days [2].", "30 days", 0.5)  # F1 0.8
    assert not answer_matches("Within 30 calendar days of delivery [2].", "30 days", 0.8)
    assert not answer_matches("Two years [1].", "30 days", 0.1)
    assert not answer_matches(ABSTENTION, "30 days", 0.0)  # even at threshold 0


def test_near_duplicates_by_content_words_and_exact_text() -> None:
    kept = NearDuplicates(0.8, ["How long is the warranty on the blender motor?"])
    assert len(kept) == 1
    assert kept.is_duplicate("How long is the blender motor's warranty?")
    assert kept.is_duplicate("how long is the warranty on the blender motor")
    assert not kept.is_duplicate("What does express shipping cost?")
    kept.add("What does express shipping cost?")
    assert kept.is_duplicate("What does the express shipping cost?")
    assert not NearDuplicates(1.0, ["How long is the motor warranty?"]).is_duplicate(
        "How long is the motor warranty of the blender?"
    )
