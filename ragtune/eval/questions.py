"""Evaluation questions: read, checked, and sampled reproducibly.

The format is that of SQuAD-style JSONL files, one object per line::

    {"id": "q1", "question": "...", "answers": ["..."], "passage_id": "doc#0", "answerable": true}

``answers`` may be empty (an unanswerable question); ``passage_id`` (the id of the document
that holds the answer, for recall@k) and ``answerable`` (default: whether there are answers)
are optional. A bad line is refused with its file and line number; nothing is half read.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ragtune.errors import EvalError

__all__ = ["EvalQuestion", "read_questions", "select_questions"]


@dataclass(frozen=True)
class EvalQuestion:
    id: str
    question: str
    answers: tuple[str, ...] = ()
    passage_id: str | None = None
    answerable: bool = True


def read_questions(path: Path, *, answerable: bool | None = None) -> list[EvalQuestion]:
    """Every question in ``path``; ``answerable`` overrides the file's own flags when given."""
    if not path.is_file():
        raise EvalError(f"{path}: no such question file; give a JSONL file of questions")
    questions: list[EvalQuestion] = []
    seen: set[str] = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise EvalError(
            f"{path} is not UTF-8 text ({exc}); give a JSONL file of questions"
        ) from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalError(
                f"{where} is not valid JSON ({exc.msg}); fix or remove the line"
            ) from exc
        question = _question(row, where, answerable)
        if question.id in seen:
            raise EvalError(f"{where}: the id {question.id!r} is used twice; ids must be unique")
        seen.add(question.id)
        questions.append(question)
    if not questions:
        raise EvalError(f"{path} holds no questions; give at least one JSON line")
    return questions


def _question(row: object, where: str, answerable: bool | None) -> EvalQuestion:
    if not isinstance(row, dict):
        raise EvalError(f"{where}: each line must be a JSON object with id, question and answers")
    qid, text, answers = row.get("id"), row.get("question"), row.get("answers", [])
    if not isinstance(qid, (str, int)) or str(qid).strip() == "":
        raise EvalError(f"{where}: 'id' is missing; give each question a unique id")
    if not isinstance(text, str) or not text.strip():
        raise EvalError(f"{where}: 'question' is missing or empty")
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise EvalError(f"{where}: 'answers' must be a list of strings (empty when unanswerable)")
    passage = row.get("passage_id")
    if passage is not None and not isinstance(passage, str):
        raise EvalError(f"{where}: 'passage_id' must be a string")
    flag = row.get("answerable", bool(answers)) if answerable is None else answerable
    if not isinstance(flag, bool):
        raise EvalError(f"{where}: 'answerable' must be true or false")
    if flag and not answers:
        raise EvalError(f"{where}: an answerable question needs at least one answer")
    return EvalQuestion(str(qid), text.strip(), tuple(answers), passage, flag)


def select_questions(
    groups: Sequence[Sequence[EvalQuestion]], *, limit: int | None, seed: int
) -> list[EvalQuestion]:
    """At most ``limit`` questions from each group, drawn with ``seed``, then shuffled together
    with it, so a run cut short is still a fair sample. The same arguments give the same list."""
    rng = random.Random(seed)
    chosen: list[EvalQuestion] = []
    ids: set[str] = set()
    for group in groups:
        picked = (
            list(group) if limit is None or limit >= len(group) else rng.sample(list(group), limit)
        )
        for question in picked:
            if question.id in ids:
                raise EvalError(
                    f"the id {question.id!r} is in two question files; ids must be unique"
                )
            ids.add(question.id)
        chosen.extend(picked)
    rng.shuffle(chosen)
    return chosen
