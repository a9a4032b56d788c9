"""The grounded prompt: one pure function shared by inference and training, so they cannot drift.

A prompt is the model's chat template over two messages: a system message with the instruction,
and a user message with the passages numbered ``[1]..[k]`` (each with its title) followed by the
question. The instruction asks for an answer taken only from the passages, the passage number
after each sentence, and :data:`ABSTENTION` word for word when the passages do not hold the answer.

With ``examples`` (:data:`EXAMPLES`, on by default in the config) two worked turns come before
the real question: one answered with a marker, one answered with the abstention sentence. A
small base model copies their form far more reliably than it follows the instruction alone.

At most ``max_passages`` passages are shown, each cut to at most ``passage_tokens`` tokens: a
longer passage is shown as its window of whole sentences that shares the most content words with
the question (:func:`passage_window`; on squad-dev a 128-token window keeps the answer of 94% of
gold paragraphs, whose median is 153 tokens). Prefill time grows with every prompt token, and a
small model reads a short passage better than a long one. Then passages are fitted to the
context window with room reserved for the answer: they are taken in rank order while they fit,
the first that does not fit is cut at a token boundary when a useful part of it fits, and the
rest are left out. ``[n]`` always means the n-th passage the prompt actually holds
(:attr:`Prompt.passages`).

>>> from ragtune.generate.prompts import format_passages, PromptPassage
>>> print(format_passages([PromptPassage("Returns", "Items can be returned within 30 days.")]))
[1] Returns
Items can be returned within 30 days.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ragtune.text import content_terms, sentence_spans

__all__ = [
    "ABSTENTION",
    "EXAMPLES",
    "INSTRUCTION",
    "MIN_PASSAGE_TOKENS",
    "Example",
    "Prompt",
    "PromptPassage",
    "TokenCounter",
    "TokenizerCounter",
    "build_messages",
    "build_prompt",
    "fit_passages",
    "format_passages",
    "head_messages",
    "is_abstention",
    "passage_window",
    "prompt_head",
    "render_chat",
]

ABSTENTION = "I don't know: the documents I have do not answer this."
"""The one sentence a grounded answer uses when the passages do not hold the answer."""

INSTRUCTION = (
    "Answer the question using only the numbered passages. "
    "After each sentence, write the number of the passage it comes from in brackets, like [1]. "
    f'If the passages do not contain the answer, reply exactly: "{ABSTENTION}"'
)
MIN_PASSAGE_TOKENS = 24
"""A passage cut shorter than this is left out rather than kept as a fragment."""


class TokenCounter(Protocol):
    """Counts tokens the way the model will, and cuts a text to a number of tokens."""

    def count(self, text: str) -> int: ...

    def truncate(self, text: str, max_tokens: int) -> str: ...


class _Titled(Protocol):
    @property
    def text(self) -> str: ...

    @property
    def title(self) -> str: ...


@dataclass(frozen=True)
class PromptPassage:
    """A passage as the prompt shows it: a title and (possibly cut) text."""

    title: str
    text: str
    cut: bool = False
    """True when the text was shortened (to its window, or to fit the context window)."""


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt: its text, its token ids, and the passages it holds in citation order."""

    text: str
    token_ids: tuple[int, ...]
    passages: tuple[PromptPassage, ...]
    source_indices: tuple[int, ...]
    """For each prompt passage, its index in the passages the caller gave."""
    dropped: int
    """How many of the given passages did not fit at all."""
    examples: int = 0
    """How many worked examples the prompt shows (0 when they did not fit)."""

    @property
    def cut(self) -> bool:
        """Whether any passage was shortened or left out to fit."""
        return self.dropped > 0 or any(p.cut for p in self.passages)


@dataclass(frozen=True)
class Example:
    """A worked turn shown before the question: passages, a question, and the right answer."""

    question: str
    passages: tuple[PromptPassage, ...]
    answer: str


_LIBRARY = (
    PromptPassage(
        "Opening hours",
        "The Northfield library opens at 9 am and closes at 6 pm on weekdays. "
        "On Saturdays it closes at 1 pm.",
    ),
    PromptPassage(
        "Library cards",
        "A library card is free for residents of Northfield. Visitors pay 20 euros a year.",
    ),
)
EXAMPLES = (
    Example(
        "How much does a library card cost for a visitor?",
        _LIBRARY,
        "A library card costs visitors 20 euros a year [2].",
    ),
    Example("Who founded the Northfield library?", _LIBRARY, ABSTENTION),
)
"""The worked examples: one answer citing its passage, one question the passages do not answer."""


def is_abstention(text: str) -> bool:
    """Whether an answer is the abstention sentence (markers, case and spacing aside).

    >>> is_abstention("I don't know: the documents I have do not answer this.")
    True
    >>> is_abstention("  i don't know: the documents I have do not answer this ")
    True
    >>> is_abstention("The warranty lasts two years. [1]")
    False
    """
    return _normalise(text) == _normalise(ABSTENTION)


def _normalise(text: str) -> str:
    text = re.sub(r"\[\s*\d+(?:\s*,\s*\d+)*\s*\]", " ", text)
    text = text.replace("\u2019", "'").lower()
    return " ".join(re.sub(r"[^\w' ]+", " ", text).split())


def format_passages(passages: Sequence[PromptPassage]) -> str:
    """The numbered passage block: ``[n] title`` then the text, one blank line between passages."""
    blocks = []
    for number, passage in enumerate(passages, start=1):
        head = f"[{number}] {passage.title}".rstrip()
        blocks.append(f"{head}\n{passage.text.strip()}")
    return "\n\n".join(blocks)


def build_messages(
    question: str,
    passages: Sequence[PromptPassage],
    *,
    instruction: str = INSTRUCTION,
    examples: Sequence[Example] = (),
) -> list[dict[str, str]]:
    """The chat messages: the instruction as the system message, then each example as a user
    turn and its answer, then the passages and question as the last user turn.

    With no passages the user message says so, and the instruction still asks for the abstention.
    """
    messages = head_messages(instruction=instruction, examples=examples)
    messages.append({"role": "user", "content": _user_turn(question, passages)})
    return messages


def head_messages(
    *, instruction: str = INSTRUCTION, examples: Sequence[Example] = ()
) -> list[dict[str, str]]:
    """The messages every prompt starts with: the instruction, then each worked example."""
    messages = [{"role": "system", "content": instruction}]
    for example in examples:
        messages.append({"role": "user", "content": _user_turn(example.question, example.passages)})
        messages.append({"role": "assistant", "content": example.answer})
    return messages


def prompt_head(
    tokenizer: Any, *, instruction: str = INSTRUCTION, examples: Sequence[Example] = ()
) -> tuple[int, ...]:
    """The token ids every prompt with this ``instruction`` and ``examples`` starts with, or
    ``()`` when the chat template cannot render them alone (some templates want a user turn).

    A caller checks that a prompt really starts with them
    (:func:`~ragtune.generate.prompt_cache.head_length`): a template may render the head
    differently once more messages follow.
    """
    messages = head_messages(instruction=instruction, examples=examples)
    try:
        return tuple(render_chat(tokenizer, messages, add_generation_prompt=False))
    except Exception:  # a template's own refusal (jinja raise_exception) or a missing template
        return ()


def _user_turn(question: str, passages: Sequence[PromptPassage]) -> str:
    block = format_passages(passages) if passages else "(no passages were found)"
    return f"Passages:\n{block}\n\nQuestion: {question.strip()}"


def passage_window(
    question: str, text: str, counter: TokenCounter, max_tokens: int
) -> tuple[str, bool]:
    """The part of ``text`` a prompt shows for ``question``: at most ``max_tokens`` tokens.

    A text that fits is kept whole. Otherwise the window is the run of consecutive whole
    sentences, within ``max_tokens``, whose sentences share the most content words with the
    question (summed over the sentences; ties go to the longer window, which gives more
    context). When no single sentence fits, the best sentence is cut at a token boundary.
    Returns the window and whether the text was cut. Pure.

    >>> class Words:
    ...     def count(self, text): return len(text.split())
    ...     def truncate(self, text, n): return " ".join(text.split()[:n])
    >>> passage_window("When did the museum open?",
    ...     "The city is old. The museum opened in 1901. It has a cafe.", Words(), 6)
    ('The museum opened in 1901.', True)
    """
    if counter.count(text) <= max_tokens:
        return text, False
    spans = sentence_spans(text)
    terms = content_terms(question)
    sizes = [counter.count(text[a:b]) for a, b in spans]
    scores = [len(terms & content_terms(text[a:b])) for a, b in spans]
    best: tuple[tuple[int, int], int, int] | None = None
    for i in range(len(spans)):
        size = score = 0
        for j in range(i, len(spans)):
            size += sizes[j]
            if size > max_tokens:
                break
            score += scores[j]
            key = (score, size)
            if best is None or key > best[0]:
                best = (key, i, j)
    if best is None:  # every sentence is longer than the window: cut the best one
        i = max(range(len(spans)), key=lambda k: (scores[k], -k))
        start, end = spans[i]
        return counter.truncate(text[start:end], max_tokens), True
    _key, i, j = best
    return text[spans[i][0] : spans[j][1]], True


def fit_passages(
    passages: Sequence[_Titled],
    counter: TokenCounter,
    budget: int,
    *,
    question: str = "",
    max_passages: int = 20,
    passage_tokens: int = 4096,
    min_tokens: int = MIN_PASSAGE_TOKENS,
) -> tuple[list[PromptPassage], list[int]]:
    """The passages that fit in ``budget`` tokens, in order, and their indices in ``passages``.

    The first ``max_passages`` are considered, each cut to its :func:`passage_window` of
    ``passage_tokens`` for ``question``. Each costs its formatted block (number, title, text,
    separator). Whole passages are taken while they fit; the first that does not is cut to the
    room left when at least ``min_tokens`` of its text fit; everything after it is left out, so
    a lower-ranked passage never displaces a higher-ranked one.
    """
    kept: list[PromptPassage] = []
    indices: list[int] = []
    room = budget
    for index, passage in enumerate(passages[:max_passages]):
        number = len(kept) + 1
        overhead = counter.count(f"[{number}] {passage.title}\n\n\n")
        text, windowed = passage_window(question, passage.text.strip(), counter, passage_tokens)
        cost = overhead + counter.count(text)
        if cost <= room:
            kept.append(PromptPassage(passage.title, text, cut=windowed))
            indices.append(index)
            room -= cost
            continue
        fits = room - overhead
        if fits >= min_tokens:
            kept.append(PromptPassage(passage.title, counter.truncate(text, fits), cut=True))
            indices.append(index)
        break
    return kept, indices


def build_prompt(
    tokenizer: Any,
    question: str,
    passages: Sequence[_Titled],
    *,
    context_window: int,
    reserve: int,
    instruction: str = INSTRUCTION,
    examples: Sequence[Example] = (),
    max_passages: int = 20,
    passage_tokens: int = 4096,
) -> Prompt:
    """Render the chat prompt for ``question`` over as many of ``passages`` as fit.

    At most ``max_passages`` passages, each cut to its ``passage_tokens`` window (see
    :func:`fit_passages`). ``reserve`` tokens are kept free for the answer. The ``examples`` are left out when they
    would take more than half the room the passages would otherwise have (a short context
    window): the passages matter more. Raises ``ValueError`` when even the question and
    instruction alone do not fit; the caller turns that into its own error.
    """
    counter = TokenizerCounter(tokenizer)
    skeleton = render_chat(tokenizer, build_messages(question, [], instruction=instruction))
    budget = context_window - reserve - len(skeleton)
    if examples:
        shown = render_chat(
            tokenizer, build_messages(question, [], instruction=instruction, examples=examples)
        )
        with_examples = context_window - reserve - len(shown)
        if with_examples >= budget / 2:
            budget = with_examples
        else:
            examples = ()
    if budget < 0:
        raise ValueError(
            f"the question and instruction take {len(skeleton)} tokens; with {reserve} reserved "
            f"for the answer they do not fit a context window of {context_window}"
        )
    # A little slack: the passage block joins with the text around it, and BPE merges at joins.
    kept, indices = fit_passages(
        passages,
        counter,
        max(budget - 8, 0),
        question=question,
        max_passages=max_passages,
        passage_tokens=passage_tokens,
    )
    ids = render_chat(
        tokenizer, build_messages(question, kept, instruction=instruction, examples=examples)
    )
    while len(ids) > context_window - reserve and kept:
        kept, indices = kept[:-1], indices[:-1]
        ids = render_chat(
            tokenizer, build_messages(question, kept, instruction=instruction, examples=examples)
        )
    text = tokenizer.decode(ids)
    return Prompt(
        text=text,
        token_ids=tuple(ids),
        passages=tuple(kept),
        source_indices=tuple(indices),
        dropped=min(len(passages), max_passages) - len(kept),
        examples=len(examples),
    )


def render_chat(
    tokenizer: Any, messages: list[dict[str, str]], *, add_generation_prompt: bool = True
) -> list[int]:
    """Token ids of ``messages`` (``role``, ``content``) in the tokenizer's chat template,
    ending with the assistant turn's opening when ``add_generation_prompt``."""
    rendered = tokenizer.apply_chat_template(
        messages, add_generation_prompt=add_generation_prompt, tokenize=True
    )
    if (
        hasattr(rendered, "keys") and "input_ids" in rendered
    ):  # transformers 5 returns a BatchEncoding
        rendered = rendered["input_ids"]
    return [int(i) for i in rendered]


class TokenizerCounter:
    """A :class:`TokenCounter` over a Hugging Face tokenizer (no special tokens added)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def truncate(self, text: str, max_tokens: int) -> str:
        if max_tokens <= 0:
            return ""
        if not getattr(self.tokenizer, "is_fast", False):  # no offsets: decode the kept ids
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            return (
                text if len(ids) <= max_tokens else self.tokenizer.decode(ids[:max_tokens]).rstrip()
            )
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = encoded["offset_mapping"]
        if len(offsets) <= max_tokens:
            return text
        return text[: offsets[max_tokens - 1][1]].rstrip()
