"""The grounded prompt: numbering, the fit to the context window, the abstention sentence."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ragtune.generate.prompts import (
    ABSTENTION,
    EXAMPLES,
    INSTRUCTION,
    PromptPassage,
    build_messages,
    build_prompt,
    fit_passages,
    format_passages,
    is_abstention,
)
from tests.generate.tiny import make_tokenizer


@dataclass(frozen=True)
class P:
    title: str
    text: str


class WordCounter:
    """One token per whitespace-separated word."""

    def count(self, text: str) -> int:
        return len(text.split())

    def truncate(self, text: str, max_tokens: int) -> str:
        return " ".join(text.split()[:max_tokens])


def words(n: int, tag: str = "w") -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


def test_passages_are_numbered_from_one_with_titles() -> None:
    block = format_passages(
        [PromptPassage("Returns", "Thirty days."), PromptPassage("", "No title.")]
    )
    assert block == "[1] Returns\nThirty days.\n\n[2]\nNo title."


def test_messages_hold_instruction_passages_and_question() -> None:
    messages = build_messages("How long?", [PromptPassage("Returns", "Thirty days.")])
    assert messages[0] == {"role": "system", "content": INSTRUCTION}
    assert ABSTENTION in messages[0]["content"]
    assert messages[1]["role"] == "user"
    assert messages[1]["content"].index("[1] Returns") < messages[1]["content"].index(
        "Question: How long?"
    )


def test_examples_come_as_turns_before_the_question() -> None:
    messages = build_messages(
        "How long?", [PromptPassage("Returns", "Thirty days.")], examples=EXAMPLES
    )
    roles = [m["role"] for m in messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[2]["content"].endswith("[2].") and messages[4]["content"] == ABSTENTION
    assert messages[-1]["content"].endswith("Question: How long?")
    assert "[1] Returns" in messages[-1]["content"]


def test_examples_take_their_room_from_the_passages() -> None:
    tokenizer = make_tokenizer()
    passages = [P(f"title {i}", "Items can be returned within 30 days. " * 12) for i in range(6)]
    plain = build_prompt(tokenizer, "How long?", passages, context_window=1500, reserve=64)
    shown = build_prompt(
        tokenizer, "How long?", passages, context_window=1500, reserve=64, examples=EXAMPLES
    )
    assert len(shown.token_ids) <= 1500 - 64
    assert len(shown.passages) < len(plain.passages)
    assert EXAMPLES[0].question in shown.text and shown.examples == 2
    short = build_prompt(
        tokenizer, "How long?", passages, context_window=900, reserve=64, examples=EXAMPLES
    )
    assert short.examples == 0 and EXAMPLES[0].question not in short.text  # passages first


def test_no_passages_says_so() -> None:
    assert "(no passages were found)" in build_messages("Why?", [])[-1]["content"]


def test_whole_passages_fit_in_rank_order() -> None:
    passages = [P("a", words(10)), P("b", words(10)), P("c", words(10))]
    kept, indices = fit_passages(passages, WordCounter(), budget=100)
    assert indices == [0, 1, 2]
    assert [k.cut for k in kept] == [False, False, False]


def test_the_first_passage_that_does_not_fit_is_cut_and_the_rest_left_out() -> None:
    # Each passage costs 2 (the "[n] title" header) + its words.
    passages = [P("a", words(40)), P("b", words(40)), P("c", words(5))]
    kept, indices = fit_passages(passages, WordCounter(), budget=70, min_tokens=10)
    assert indices == [0, 1]
    assert kept[1].cut and kept[1].text == words(26)
    # The short third passage would fit in what is left, but it must not displace the second.
    assert (
        sum(
            WordCounter().count(f"[{i}] {k.title}") + WordCounter().count(k.text)
            for i, k in enumerate(kept, 1)
        )
        <= 70
    )


def test_a_fragment_below_the_minimum_is_left_out() -> None:
    passages = [P("a", words(40)), P("b", words(40))]
    kept, indices = fit_passages(passages, WordCounter(), budget=50, min_tokens=24)
    assert indices == [0]
    assert not kept[0].cut


def test_passages_are_cut_to_the_window_most_about_the_question() -> None:
    text = " ".join(f"Filler sentence number {i} says little." for i in range(20))
    text += " The warranty lasts two years. Filler again at the end."
    passages = [P("Warranty", text), P("b", words(10)), P("c", words(10))]
    kept, indices = fit_passages(
        passages,
        WordCounter(),
        budget=1000,
        question="How long is the warranty?",
        max_passages=2,
        passage_tokens=12,
    )
    assert indices == [0, 1]  # at most two passages
    assert kept[0].cut and "The warranty lasts two years." in kept[0].text
    assert WordCounter().count(kept[0].text) <= 12
    assert not kept[1].cut  # a passage under the cap stays whole


def test_build_prompt_fits_the_window_with_room_for_the_answer() -> None:
    tokenizer = make_tokenizer()
    passages = [
        P(f"title {i}", "Items can be returned within 30 days of delivery. " * 20) for i in range(6)
    ]
    prompt = build_prompt(
        tokenizer, "How long do I have?", passages, context_window=400, reserve=64
    )
    assert len(prompt.token_ids) <= 400 - 64
    assert 0 < len(prompt.passages) < 6
    assert prompt.cut and prompt.dropped + len(prompt.passages) == 6
    assert list(prompt.source_indices) == list(range(len(prompt.passages)))
    assert prompt.text.startswith("<|im_start|>system\n" + INSTRUCTION)
    assert prompt.text.endswith("<|im_start|>assistant\n")
    assert tokenizer.decode(list(prompt.token_ids)) == prompt.text


def test_build_prompt_is_deterministic_and_uncut_when_it_fits() -> None:
    tokenizer = make_tokenizer()
    passages = [P("Returns", "Items can be returned within 30 days.")]
    one = build_prompt(tokenizer, "How long?", passages, context_window=512, reserve=64)
    two = build_prompt(tokenizer, "How long?", passages, context_window=512, reserve=64)
    assert one == two
    assert not one.cut and one.passages[0].text == passages[0].text


def test_build_prompt_refuses_when_even_the_question_does_not_fit() -> None:
    with pytest.raises(ValueError, match="do not fit a context window of 100"):
        build_prompt(make_tokenizer(), "How long? " * 50, [], context_window=100, reserve=20)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (ABSTENTION, True),
        (ABSTENTION.upper(), True),
        (ABSTENTION.replace("'", "\u2019") + " [1]", True),
        ("I don't know.", False),
        ("Returns take 30 days. [1]", False),
    ],
)
def test_is_abstention(text: str, expected: bool) -> None:
    assert is_abstention(text) is expected
