"""Generated claims for the support model: every kind with both labels, seeded, no accidental truths."""

from __future__ import annotations

import re

import pytest

from ragtune.train.claims import KINDS, SourceQuestion, build_claims, claims_sha256, value_type
from ragtune.train.rewrite import change_number, negate, paraphrase, restate, reverse_relation

PASSAGES = {
    "oil#0": (
        "The 1973 oil crisis began in October 1973 when the members of OAPEC proclaimed an oil "
        "embargo. By the end of the embargo in March 1974, the price of oil had risen from US$3 "
        "per barrel to nearly $12 globally. The embargo was ordered by King Faisal before the "
        "war ended. It caused shortages in the United States and Japan."
    ),
    "oil#1": (
        "In 1979, a second crisis followed in Iran. Prices doubled within 12 months, and the "
        "Carter administration introduced rationing in 1980. Motorists in California waited "
        "in long lines."
    ),
}
QUESTIONS = [
    SourceQuestion("q1", "When did the 1973 oil crisis begin?", ("October 1973",), "oil#0", "Oil"),
    SourceQuestion(
        "q2", "What was the price of oil in March 1974?", ("nearly $12",), "oil#0", "Oil"
    ),
    SourceQuestion("q3", "Who ordered the embargo?", ("King Faisal",), "oil#0", "Oil"),
    SourceQuestion("q4", "Where did the second crisis follow?", ("Iran",), "oil#1", "Oil"),
    SourceQuestion("q5", "When did rationing begin?", ("1980",), "oil#1", "Oil"),
]


@pytest.fixture(scope="module")
def claims() -> list:  # type: ignore[type-arg]
    return build_claims(PASSAGES, QUESTIONS, seed=0)


def test_every_kind_comes_with_both_labels(claims) -> None:  # type: ignore[no-untyped-def]
    found = {(c.kind, c.supported) for c in claims}
    for kind in KINDS:
        assert (kind, True) in found and (kind, False) in found, kind


def test_claims_are_seeded_per_question(claims) -> None:  # type: ignore[no-untyped-def]
    assert claims_sha256(build_claims(PASSAGES, QUESTIONS, seed=0)) == claims_sha256(claims)
    assert claims_sha256(build_claims(PASSAGES, QUESTIONS, seed=1)) != claims_sha256(claims)
    alone = build_claims(PASSAGES, QUESTIONS[:2] + QUESTIONS[3:], seed=0)
    assert [c for c in alone if c.question_id == "q1"][:4] == [
        c for c in claims if c.question_id == "q1"
    ][:4]


def test_a_swap_never_keeps_the_answer_and_the_evidence_holds_it(claims) -> None:  # type: ignore[no-untyped-def]
    for claim in claims:
        assert claim.claim.strip()
        if claim.kind in ("swap_same_passage", "swap_other_passage") and not claim.supported:
            assert "October 1973" not in claim.claim or claim.question_id != "q1"
        if claim.supported and claim.kind == "answer":
            assert claim.claim.rstrip(".") in claim.evidence


def test_the_same_claim_never_carries_both_labels(claims) -> None:  # type: ignore[no-untyped-def]
    labels: dict[tuple[str | None, str, str], set[bool]] = {}
    for claim in claims:
        labels.setdefault((claim.question, claim.claim, claim.evidence), set()).add(claim.supported)
    assert all(len(v) == 1 for v in labels.values())


def test_other_question_pairs_the_same_answer_with_two_questions(claims) -> None:  # type: ignore[no-untyped-def]
    pairs = [c for c in claims if c.kind == "other_question"]
    good = {c.claim: c.question for c in pairs if c.supported}
    bad = [c for c in pairs if not c.supported]
    assert bad and all(c.claim in good and good[c.claim] != c.question for c in bad)


def test_rewrites() -> None:
    assert value_type("1,200 people") == "number"
    text = paraphrase(
        "The embargo was ordered by King Faisal before the war ended.", keep="King Faisal"
    )
    assert text is not None and "King Faisal" in text and text.startswith("King Faisal")
    assert negate("The price had risen.") == "The price had not risen."
    assert negate("It rained") is None
    assert (
        reverse_relation("It was ordered before the war ended.")
        == "It was ordered after the war ended."
    )
    assert reverse_relation("Nothing here.") is None
    changed = change_number("October 1973", seed=0)
    assert changed is not None and changed != "October 1973" and re.search(r"\d{4}", changed)
    assert change_number("no number", seed=0) is None
    assert restate("When did rationing begin?", "1980", evidence="Rationing began in 1980.") == (
        "Rationing began in 1980."
    )
    assert restate("Why did it happen?", "because") is None
