"""The RAFT data builder: gold position, abstention share, clean no-gold examples, the split."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest

from ragtune.eval.questions import EvalQuestion
from ragtune.generate.prompts import ABSTENTION, PromptPassage
from ragtune.train.data import (
    DataSettings,
    build_examples,
    examples_sha256,
    split_by_document,
)

DOCS = {
    f"doc{i}": PromptPassage(f"Doc {i}", f"Fact number {i} is {i * 7} apples.") for i in range(40)
}


def retrieve(question: str, k: int) -> list[tuple[str, PromptPassage]]:
    """A fake ranking: the asked document first, then its neighbours."""
    asked = int(question.split()[-1].rstrip("?"))
    order = [asked, *[(asked + j) % 40 for j in range(1, 40)]]
    return [(f"doc{i}", DOCS[f"doc{i}"]) for i in order[:k]]


def lookup(document: str, answers: Sequence[str]) -> PromptPassage | None:
    return DOCS.get(document)


QUESTIONS = [
    EvalQuestion(f"q{i}", f"What is fact {i}?", (f"{i * 7} apples",), f"doc{i}") for i in range(40)
]


def test_gold_is_placed_at_every_position_and_cited() -> None:
    examples = build_examples(
        QUESTIONS * 5, retrieve, lookup, DataSettings(passages=4, gold_share=1.0)
    )
    positions = Counter(e.gold_position for e in examples)
    assert set(positions) == {1, 2, 3, 4} and min(positions.values()) > 20
    for e in examples:
        assert e.kind == "answer" and len(e.passages) == 4
        assert e.passages[e.gold_position - 1] == DOCS[e.document]  # type: ignore[operator]
        number = int(e.document.removeprefix("doc"))
        assert e.target == f"{number * 7} apples [{e.gold_position}]."


def test_the_share_without_gold_abstains_and_never_shows_the_answer() -> None:
    examples = build_examples(
        QUESTIONS * 10, retrieve, lookup, DataSettings(gold_share=0.7), seed=3
    )
    no_gold = [e for e in examples if e.kind == "no gold"]
    assert 0.25 < len(no_gold) / len(examples) < 0.35
    for e in no_gold:
        assert e.target == ABSTENTION and e.gold_position is None
        assert DOCS[e.document] not in e.passages
        number = e.document.removeprefix("doc")
        assert not any(f" {int(number) * 7} apples" in p.text for p in e.passages)


def test_a_distractor_holding_the_answer_is_left_out_without_gold() -> None:
    twin = {**DOCS, "doc1": PromptPassage("Twin", "Fact number 0 is 0 apples, again.")}

    def leaky(question: str, k: int) -> list[tuple[str, PromptPassage]]:
        return [(doc, twin[doc]) for doc, _p in retrieve(question, k)]

    examples = build_examples(
        [QUESTIONS[0]], leaky, lambda d, a: twin.get(d), DataSettings(gold_share=0.0)
    )
    assert examples[0].kind == "no gold"
    assert all("0 apples" not in p.text for p in examples[0].passages)


def test_unanswerable_questions_abstain_and_unknown_gold_is_skipped() -> None:
    unanswerable = EvalQuestion("u1", "Who wrote fact 3?", (), None, answerable=False)
    lost = EvalQuestion("x1", "What is fact 5?", ("35 apples",), "doc-missing")
    no_id = EvalQuestion("x2", "What is fact 6?", ("42 apples",), None)
    examples = build_examples(
        [unanswerable, lost, no_id], retrieve, lookup, DataSettings(unanswerable_share=None)
    )
    assert [(e.kind, e.target) for e in examples] == [("unanswerable", ABSTENTION)]
    assert len(examples[0].passages) == DataSettings().passages == 3


def test_unanswerable_examples_are_capped_to_their_share() -> None:
    unanswerable = [
        EvalQuestion(f"u{i}", f"Who wrote fact {i}?", (), None, answerable=False) for i in range(40)
    ]
    settings = DataSettings(gold_share=1.0, unanswerable_share=0.2)
    examples = build_examples(QUESTIONS + unanswerable, retrieve, lookup, settings, seed=4)
    kinds = Counter(e.kind for e in examples)
    assert kinds == {"answer": 40, "unanswerable": 10}  # 10 of 50 is the 0.2 asked for
    kept = [e.question for e in examples if e.kind == "unanswerable"]
    assert kept != [u.question for u in unanswerable[:10]]  # a sample, not the first ones
    assert examples == build_examples(QUESTIONS + unanswerable, retrieve, lookup, settings, seed=4)
    everything = build_examples(
        QUESTIONS + unanswerable, retrieve, lookup, DataSettings(unanswerable_share=None)
    )
    assert Counter(e.kind for e in everything)["unanswerable"] == 40


def test_same_seed_same_examples_and_personal_data_is_scrubbed() -> None:
    one = build_examples(QUESTIONS, retrieve, lookup, DataSettings(), seed=1)
    two = build_examples(QUESTIONS, retrieve, lookup, DataSettings(), seed=1)
    other = build_examples(QUESTIONS, retrieve, lookup, DataSettings(), seed=2)
    assert one == two and examples_sha256(one) == examples_sha256(two)
    assert examples_sha256(one) != examples_sha256(other)
    private = EvalQuestion("p", "Mail ana@example.org about fact 2?", ("14 apples",), "doc2")
    (example,) = build_examples([private], retrieve, lookup, DataSettings(gold_share=1.0))
    assert "ana@example.org" not in example.question and "[EMAIL]" in example.question


def test_split_is_by_document_with_no_leak() -> None:
    examples = build_examples(QUESTIONS * 3, retrieve, lookup, DataSettings())
    split = split_by_document(examples, 0.2, seed=0)
    train_docs = {e.document for e in split.train}
    validation_docs = {e.document for e in split.validation}
    assert train_docs and validation_docs and not train_docs & validation_docs
    assert 0.05 < len(validation_docs) / 40 < 0.4
    assert len(split.train) + len(split.validation) == len(examples)
    # adding documents does not move the others
    fewer = split_by_document([e for e in examples if e.document != "doc0"], 0.2, seed=0)
    assert {e.document for e in fewer.validation} == validation_docs - {"doc0"}


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="passages must be >= 1"):
        DataSettings(passages=0)
    with pytest.raises(ValueError, match="gold_share must be <= 1"):
        DataSettings(gold_share=1.5)
    with pytest.raises(ValueError, match="unanswerable_share must be < 1"):
        DataSettings(unanswerable_share=1.0)


def test_training_never_reads_another_tenants_documents() -> None:
    from pathlib import Path

    from ragtune.errors import TrainingError
    from ragtune.train.run import _index_tenant

    index = Path("indexes/x")
    assert _index_tenant({"acme": 3, "globex": 2}, "acme", index) == "acme"
    assert _index_tenant({"(none)": 5}, "acme", index) is None
    with pytest.raises(TrainingError, match="globex.*none of 'initech'"):
        _index_tenant({"acme": 3, "globex": 2}, "initech", index)
