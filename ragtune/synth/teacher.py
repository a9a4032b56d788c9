"""What a teacher is: a model that writes one question for a known answer in a sentence.

Teachers take :class:`QuestionRequest` values and return the model's raw replies; the prompt
(:func:`question_messages`) and the reading of a reply (:func:`parse_question`) are pure and
shared by every teacher, so the local model and an endpoint are asked the same thing.

>>> parse_question('Question: "When does the library close on weekdays?"', "6 pm")
'When does the library close on weekdays?'
>>> parse_question("The library closes at 6 pm.", "6 pm") is None
True
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "EXAMPLES",
    "INSTRUCTION",
    "QuestionRequest",
    "Teacher",
    "parse_question",
    "question_messages",
]


@dataclass(frozen=True)
class QuestionRequest:
    """Write a question whose answer is ``answer``, as ``sentence`` states it."""

    title: str
    """The chunk's title (its document's topic), so the question can name what it is about."""
    sentence: str
    answer: str


class Teacher(Protocol):
    """Writes questions. ``write`` returns one raw reply per request, in order (a reply may
    hold no usable question: :func:`parse_question` decides). Raises
    :class:`~ragtune.errors.TeacherError` when the model cannot be reached or fails."""

    @property
    def name(self) -> str:
        """What the report and the output's state file record: ``local:<model>`` ..."""
        ...

    def write(self, requests: Sequence[QuestionRequest]) -> list[str]: ...


INSTRUCTION = (
    "You write quiz questions. Given a topic, a sentence and an answer taken from the sentence, "
    "write one question that the sentence answers with exactly that answer. The question must "
    "make sense without the sentence, so name the topic instead of saying 'it'. Do not put the "
    "answer in the question. Reply with the question only."
)

EXAMPLES = (
    (
        QuestionRequest(
            "Northfield library",
            "The Northfield library opens at 9 am and closes at 6 pm on weekdays.",
            "6 pm",
        ),
        "When does the Northfield library close on weekdays?",
    ),
    (
        QuestionRequest(
            "Library cards",
            "A library card is free for residents of Northfield. Visitors pay 20 euros a year.",
            "20 euros a year",
        ),
        "How much does a library card cost visitors?",
    ),
)
"""Worked turns shown before the real request: a small model copies their form."""


def _user_turn(request: QuestionRequest) -> str:
    return f"Topic: {request.title}\nSentence: {request.sentence}\nAnswer: {request.answer}"


def question_messages(request: QuestionRequest, *, examples: bool = True) -> list[dict[str, str]]:
    """The chat messages (``role``, ``content``) that ask for a question: the instruction, the
    worked examples (unless ``examples`` is false), then ``request``."""
    messages = [{"role": "system", "content": INSTRUCTION}]
    for example, question in EXAMPLES if examples else ():
        messages.append({"role": "user", "content": _user_turn(example)})
        messages.append({"role": "assistant", "content": question})
    messages.append({"role": "user", "content": _user_turn(request)})
    return messages


_PREFIX = re.compile(r"^\s*(?:\d+[.)]\s*|[-*•]\s*|(?:question|q)\s*[:.-]\s*)+", re.IGNORECASE)
_MIN_WORDS, _MAX_WORDS = 3, 40


def parse_question(reply: str, answer: str) -> str | None:
    """The question in a teacher's ``reply``: its first line that ends with a question mark,
    without a leading "Question:", list mark or quotes. None when there is none, or it is
    shorter than three words or longer than forty (``answer`` is for the caller's filters; a
    question that merely repeats it is not a question either)."""
    for line in reply.splitlines():
        text = _PREFIX.sub("", line).strip().strip("\"'“”‘’`").strip()
        mark = text.find("?")
        if mark < 0:
            continue
        question = text[: mark + 1].strip().strip("\"'“”‘’`").strip()
        words = question.split()
        if _MIN_WORDS <= len(words) <= _MAX_WORDS and question.rstrip("?").strip() != answer:
            return question
        return None
    return None
