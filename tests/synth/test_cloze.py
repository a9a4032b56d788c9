"""The cloze teacher: the sentence turned into a question for its answer, by rule."""

from __future__ import annotations

import pytest

from ragtune.synth.cloze import ClozeTeacher, cloze_question
from ragtune.synth.filters import gives_away_answer
from ragtune.synth.teacher import QuestionRequest, parse_question


@pytest.mark.parametrize(
    ("sentence", "answer", "question"),
    [
        (
            "The warranty is valid for two years.",
            "two years",
            "How long is the warranty valid for?",
        ),
        (
            "The tower was designed by Gustave Eiffel for the fair.",
            "Gustave Eiffel",
            "Who was the tower designed by for the fair?",
        ),
        ("Orbix Industries is based in Lyon.", "Orbix Industries", "What is based in Lyon?"),
        ("Orbix Industries is based in Lyon.", "Lyon", "Where is Orbix Industries based?"),
        ("The shop opened in 1998 in Paris.", "1998", "When the shop opened in Paris?"),
        ("Express shipping costs 8.50 pounds.", "8.50 pounds", "How much Express shipping costs?"),
        ("About 300 people live in the town.", "300 people", "How many about live in the town?"),
        (
            "They arrived in the 10th and 11th centuries.",
            "10th and 11th centuries",
            "When they arrived?",
        ),
    ],
)
def test_cloze_questions(sentence: str, answer: str, question: str) -> None:
    made = cloze_question(sentence, answer)
    assert made == question
    assert parse_question(made, answer) == made and not gives_away_answer(made, answer)


def test_an_answer_not_in_the_sentence_or_alone_gives_no_question() -> None:
    assert cloze_question("The warranty is valid for two years.", "three years") == ""
    assert cloze_question("Lyon.", "Lyon") == ""
    teacher = ClozeTeacher()
    request = QuestionRequest("Warranty", "The warranty is valid for two years.", "two years")
    assert (
        teacher.name == "cloze"
        and teacher.write([request, request]) == ["How long is the warranty valid for?"] * 2
    )
