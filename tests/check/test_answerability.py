"""Answerability: the expected answer type, the signals, the calibrated decision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.check.answerability import (
    ANSWERABILITY_SIGNALS,
    answer_signals,
    expected_type,
    load_answerability,
    type_fit,
)
from ragtune.check.support import fit_calibration
from ragtune.errors import ConfigError


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How many seats does the parliament have?", "number"),
        ("How much did the bridge cost?", "number"),
        ("What percentage of voters turned out?", "number"),
        ("When was the treaty signed?", "date"),
        ("In what year did the war end?", "date"),
        ("Which century saw the plague?", "date"),
        ("Who founded the university?", "person"),
        ("Whose army crossed the river?", "person"),
        ("Where is the headquarters?", "place"),
        ("In which city was he born?", "place"),
        ("What is the main export?", "any"),
        ("Why did the council resign?", "any"),
    ],
)
def test_the_question_says_what_kind_of_answer_it_wants(question: str, kind: str) -> None:
    assert expected_type(question) == kind


@pytest.mark.parametrize(
    ("question", "answer", "fit"),
    [
        ("How many seats does it have?", "129", 1.0),
        ("How many seats does it have?", "about two hundred", 1.0),
        ("How many seats does it have?", "the Scottish Parliament", -1.0),
        ("When was it founded?", "1636", 1.0),
        ("When was it founded?", "in the spring", 1.0),
        ("When was it founded?", "by the colonists", -1.0),
        ("Who founded it?", "John Harvard", 1.0),
        ("Who founded it?", "a group of ministers", -1.0),
        ("What is the main export?", "wool", 0.0),
    ],
)
def test_type_fit(question: str, answer: str, fit: float) -> None:
    assert type_fit(question, answer) == fit


def test_a_question_about_a_detail_the_passage_lacks_misses_a_key_term() -> None:
    passage = "The Scottish Parliament has 129 members. It meets in Holyrood."
    answered = answer_signals(
        "How many members does the parliament have?", "129 [1].", [passage], 0.2
    )
    shifted = answer_signals(
        "How many committees does the parliament have?", "129 [1].", [passage], 0.2
    )
    assert answered["key_terms"] == 1.0 and answered["in_passage"] == 1.0
    assert shifted["key_terms"] < answered["key_terms"]
    invented = answer_signals("Where does it meet?", "Edinburgh Castle [1].", [passage], 0.2)
    assert invented["in_passage"] == 0.0
    assert (
        answer_signals("Where does it meet?", "Holyrood [2].", ["x", passage], 0.5)["in_passage"]
        == 1.0
    )  # the marker names the passage the answer is read against
    assert set(answered) == set(ANSWERABILITY_SIGNALS)


def test_a_fitted_model_round_trips_and_a_damaged_file_names_the_fix(tmp_path: Path) -> None:
    rows = [
        {"abstain_logit": -3.0, "type_fit": 1.0, "key_terms": 1.0, "in_passage": 1.0},
        {"abstain_logit": -2.0, "type_fit": 0.0, "key_terms": 0.8, "in_passage": 1.0},
        {"abstain_logit": 1.0, "type_fit": -1.0, "key_terms": 0.3, "in_passage": 0.0},
        {"abstain_logit": 0.5, "type_fit": 1.0, "key_terms": 0.5, "in_passage": 0.0},
    ]
    model = fit_calibration(rows, [True, True, False, False], ANSWERABILITY_SIGNALS)
    path = tmp_path / "answerability.json"
    path.write_text(json.dumps(model.to_dict()))
    loaded = load_answerability(path)
    assert loaded.probability(rows[0]) > 0.5 > loaded.probability(rows[2])
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="refit it"):
        load_answerability(path)
