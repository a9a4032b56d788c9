"""One chunk through the pipeline on fakes: every filter drops what it should and is counted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ragtune.synth.filters import NearDuplicates
from ragtune.synth.output import ChunkRecord
from ragtune.synth.pipeline import ChunkOutcome, SourceChunk, synthesize_chunk
from ragtune.synth.report import build_report
from ragtune.synth.settings import SynthSettings
from ragtune.synth.teacher import QuestionRequest
from ragtune.types import Passage

CHUNK = SourceChunk(
    "returns.md:0",
    "Returns",
    "Items can be returned within 30 days of delivery. The refund arrives in 5 business days. "
    "Orbix Industries in Lyon handles every refund. The shop opened in 1998 in Paris.",
    "returns.md",
)
# The candidates, in order: 30 days, 5 business days, Orbix Industries, 1998, Paris.
REPLIES = {
    "30 days": "Question: How long can items be returned?",
    "5 business days": "How long does the refund take to arrive? That is all.",
    "Orbix Industries": "Which company in Lyon handles refunds?",
    "1998": "When did the shop open in Paris?",
    "Paris": "The shop is in Paris.",  # no question at all
}
ANSWERS = {
    "How long can items be returned?": "It is 30 days [1].",  # F1 0.67 against "30 days"
    "How long does the refund take to arrive?": "5 business days [2].",
    "Which company in Lyon handles refunds?": "Orbix Industries [1].",
    "When did the shop open in Paris?": "1998 [1].",
}


class ScriptedTeacher:
    """Replies from a table keyed by answer; records what it was asked."""

    def __init__(self, replies: dict[str, str], name: str = "fake") -> None:
        self.replies = replies
        self.name = name
        self.asked: list[QuestionRequest] = []

    def write(self, requests: Sequence[QuestionRequest]) -> list[str]:
        self.asked += requests
        return [self.replies.get(r.answer, "") for r in requests]


def _passage(chunk_id: str) -> Passage:
    return Passage(chunk_id, "d", "text", 1.0, 1, "src", 0, 4)


def _run(
    teacher: ScriptedTeacher,
    duplicates: NearDuplicates,
    fallback: ScriptedTeacher | None = None,
    **settings: Any,
) -> tuple[ChunkOutcome, list[str]]:
    answered: list[str] = []

    def search(question: str) -> list[Passage]:
        # Questions about Paris find five other chunks first: their round trip fails at k=5.
        others = 5 if "Paris" in question else 1
        return [_passage(f"other:{i}") for i in range(others)] + [_passage(CHUNK.chunk_id)]

    def answer(items: Sequence[tuple[str, Sequence[Passage]]]) -> list[str]:
        answered.extend(q for q, _p in items)
        return [ANSWERS[q] for q, _p in items]

    outcome = synthesize_chunk(
        CHUNK,
        SynthSettings(**settings),
        teacher=teacher,
        fallback=fallback,
        search=search,
        answer=answer,
        absent=lambda word: True,
        duplicates=duplicates,
    )
    return outcome, answered


def test_each_filter_drops_and_counts() -> None:
    teacher = ScriptedTeacher(REPLIES)
    duplicates = NearDuplicates(0.8, ["How long does a refund take to arrive?"])
    outcome, answered = _run(teacher, duplicates, per_chunk=3, candidate_factor=2)
    assert [r.answer for r in teacher.asked] == list(REPLIES)
    assert all(r.title == "Returns" and r.answer in r.sentence for r in teacher.asked)
    assert outcome.counts == {
        "candidates": 5,
        "written": 4,  # not "Paris": no question in the reply
        "answer_not_given": 4,
        "round_trip": 3,  # not the Paris question
        "answer_match": 3,
        "not_duplicate": 2,  # not the refund question, kept by an earlier chunk
        "kept": 2,
        "unanswerable": 1,
    }
    assert "When did the shop open in Paris?" not in answered
    assert [r["question"] for r in outcome.rows] == [
        "How long can items be returned?",
        "Which company in Lyon handles refunds?",
    ]
    assert len(duplicates) == 3
    assert outcome.rows[0] == {
        "id": "synth:returns.md:0:0",
        "question": "How long can items be returned?",
        "answers": ["30 days"],
        "passage_id": "returns.md",
        "answerable": True,
        "chunk_id": "returns.md:0",
        "answer_kind": "number",
        "teacher": "fake",
    }
    assert outcome.kinds == {"number": 1, "name": 1}
    assert outcome.candidate_kinds == {"number": 2, "name": 2, "date": 1}
    (made,) = outcome.unanswerable
    assert made["question"].startswith("Which company in ") and "Lyon" not in made["question"]
    assert made["answers"] == [] and made["answerable"] is False
    assert made["passage_id"] == "returns.md" and made["swapped"][0] == "Lyon"


def test_the_answer_in_the_question_the_per_chunk_cap_and_a_wrong_answer() -> None:
    replies = REPLIES | {"30 days": "Can items be returned within 30 days?"}
    capped, _ = _run(ScriptedTeacher(replies), NearDuplicates(0.8), per_chunk=1, candidate_factor=5)
    assert capped.counts["answer_not_given"] == capped.counts["written"] - 1 == 3
    assert capped.counts["not_duplicate"] == 2 and capped.counts["kept"] == 1
    strict, _ = _run(ScriptedTeacher(REPLIES), NearDuplicates(0.8), min_answer_f1=1.0)
    assert strict.counts["answer_match"] == strict.counts["round_trip"] - 1  # "It is 30 days"


def test_a_teacher_with_no_usable_question_keeps_nothing() -> None:
    outcome, answered = _run(ScriptedTeacher({}), NearDuplicates(0.8))
    assert outcome.counts["candidates"] == 5 and outcome.counts["written"] == 0
    assert outcome.counts["kept"] == 0 and outcome.rows == () and outcome.unanswerable == ()
    assert answered == []
    report = build_report(
        [ChunkRecord("c", outcome.counts, outcome.kinds, outcome.candidate_kinds, 2.0)],
        tenant="acme",
        teacher="fake",
        chunks=3,
    )
    assert report.dropped["no_usable_question"] == 5 and report.kept == 0
    assert report.seconds_per_kept_question is None
    assert report.questions_per_chunk == {"0": 1} and report.to_dict()["complete"] is False


def test_the_fallback_writes_for_the_candidates_the_teacher_lost() -> None:
    # The teacher's question for "30 days" passes; the others give no usable question.
    teacher = ScriptedTeacher({"30 days": REPLIES["30 days"]}, name="local:tiny")
    fallback = ScriptedTeacher(REPLIES, name="cloze")
    outcome, _ = _run(teacher, NearDuplicates(0.8), fallback, per_chunk=3, candidate_factor=2)
    assert [r.answer for r in fallback.asked] == [
        "5 business days",
        "Orbix Industries",
        "1998",
        "Paris",
    ]
    assert [(r["question"], r["teacher"]) for r in outcome.rows] == [
        ("How long can items be returned?", "local:tiny"),
        ("How long does the refund take to arrive?", "cloze"),
        ("Which company in Lyon handles refunds?", "cloze"),
    ]
    assert outcome.counts["candidates"] == 5 and outcome.counts["kept"] == 1
    assert outcome.counts["fallback_candidates"] == 4 and outcome.counts["fallback_kept"] == 2
    report = build_report(
        [ChunkRecord("c", outcome.counts, outcome.kinds, outcome.candidate_kinds, 1.0)],
        tenant="acme",
        teacher="local:tiny",
        chunks=1,
    )
    assert report.kept == 3 and report.kept_after["kept"] == 1
    assert report.fallback_kept_after["written"] == 3  # "Paris": no question
    assert report.fallback_dropped["no_usable_question"] == 1
    assert report.questions_per_chunk == {"3": 1}
    # Once the teacher fills the chunk's questions, the fallback is not asked.
    full = ScriptedTeacher({}, name="cloze")
    capped, _ = _run(ScriptedTeacher(REPLIES), NearDuplicates(0.8), full, per_chunk=2)
    assert capped.counts["kept"] == 2 and full.asked == []
    assert "fallback_candidates" not in capped.counts


def test_the_report_sums_chunks() -> None:
    counts = {"candidates": 4, "written": 3, "answer_not_given": 3, "round_trip": 2}
    counts |= {"answer_match": 2, "not_duplicate": 2, "kept": 2, "unanswerable": 1}
    records = [
        ChunkRecord("a", counts, {"date": 2}, {"date": 3, "name": 1}, 3.0),
        ChunkRecord("b", {"candidates": 1, "written": 1}, {}, {"name": 1}, 1.0),
    ]
    report = build_report(records, tenant="acme", teacher="local:x", chunks=2)
    assert report.kept_after["candidates"] == 5 and report.kept == 2
    assert report.dropped == {
        "no_usable_question": 1,
        "answer_in_question": 1,
        "round_trip_missed": 1,
        "answer_mismatch": 0,
        "near_duplicate": 0,
        "over_per_chunk": 0,
    }
    assert report.questions_per_chunk == {"0": 1, "2": 1}
    assert report.answer_kinds == {"date": 2} and report.candidate_kinds == {"date": 3, "name": 2}
    assert report.seconds_per_kept_question == 2.0 and report.to_dict()["complete"] is True
