"""Grounded training examples, in the manner of RAFT (Zhang et al., 2024, "RAFT: Adapting
Language Model to Domain Specific RAG").

For an answerable question the passages are the retriever's real top results for it (the
distractors a model meets at inference), with the gold passage put at a random position; the
target is the short answer followed by the gold passage's marker, ``"30 days [2]."``. For a
share of answerable questions (``1 - gold_share``) the gold passage is left out, together with
any distractor that happens to contain the answer, and the target is the abstention sentence:
the model learns to say it does not know when the passages do not say. Unanswerable questions
get their retrieved passages and the abstention sentence; at most ``unanswerable_share`` of all
examples are of that kind (a seeded sample), so the abstention does not crowd out the answers a
model must learn to give.

Questions and targets are scrubbed of personal data (passages come from the index, scrubbed
when indexed). Examples are split into training and validation *by document*, so no validation
document is seen in training. Pure given the retrieval function; the same seed gives the same
examples.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from annotated_types import Ge, Gt, Le, Lt

from ragtune.eval.metrics import contains_answer
from ragtune.eval.questions import EvalQuestion
from ragtune.generate.prompts import ABSTENTION, PromptPassage
from ragtune.ingest.pii import scrub
from ragtune.settings import check_bounds

__all__ = [
    "DataSettings",
    "DataSplit",
    "TrainingExample",
    "build_examples",
    "examples_sha256",
    "held_documents",
    "split_by_document",
]


@dataclass(frozen=True)
class DataSettings:
    """How questions become grounded examples."""

    passages: Annotated[int, Ge(1), Le(20)] = 3
    """Passages per example (the gold one included when it is kept); at most the served
    prompt's ``generator.max_passages`` (training refuses more: a gold passage placed after
    the ones the prompt shows would drop its example)."""
    gold_share: Annotated[float, Ge(0.0), Le(1.0)] = 0.8
    """Share of answerable questions that keep their gold passage (RAFT's P)."""
    unanswerable_share: Annotated[float, Ge(0.0), Lt(1.0)] | None = 0.15
    """Most of the examples that may come from unanswerable questions (None: all of them)."""
    validation_share: Annotated[float, Ge(0.0), Lt(1.0)] = 0.1
    """Share of documents held out for validation."""
    max_questions: Annotated[int, Ge(1)] | None = None
    """Cap on the questions taken from each question file (None: all)."""
    objective: Literal["qa", "lm", "mixed"] = "qa"
    """What the adapter learns from: ``qa`` the grounded examples of the questions; ``lm``
    next-token prediction on the tenant's chunks (continued pre-training through the adapter,
    no questions); ``mixed`` both, in one run (:mod:`ragtune.train.lm`)."""
    lm_weight: Annotated[float, Gt(0.0), Le(1.0)] = 0.1
    """With ``mixed``: what a chunk token counts in the loss against an answer token (a chunk
    has some 200 tokens to learn, an answer five to ten: at 1.0 the chunks would drown the
    answers out)."""

    def __post_init__(self) -> None:
        check_bounds(self)


@dataclass(frozen=True)
class TrainingExample:
    question: str
    passages: tuple[PromptPassage, ...]
    target: str
    document: str
    """The document the question is about (its gold passage id), the unit of the split."""
    kind: str
    """``answer`` (gold passage shown), ``no gold`` (gold removed) or ``unanswerable``."""
    gold_position: int | None = None
    """1-based position of the gold passage, when shown."""
    answers: tuple[str, ...] = ()
    """The gold answers (of an ``answer`` example): the prompt's passage window must still
    hold one, or the example teaches the abstention instead (see ``encode_example``)."""


Retrieve = Callable[[str, int], Sequence[tuple[str, PromptPassage]]]
"""``retrieve(question, k)``: the top passages as ``(document id, passage)``, best first."""
Lookup = Callable[[str, Sequence[str]], PromptPassage | None]
"""``lookup(document id, answers)``: the gold passage (the document's chunk holding an answer),
or None when the index does not hold the document."""


def _clean(text: str) -> str:
    return scrub(text).text


def build_examples(
    questions: Sequence[EvalQuestion],
    retrieve: Retrieve,
    lookup: Lookup,
    settings: DataSettings = DataSettings(),
    *,
    seed: int = 0,
) -> list[TrainingExample]:
    """One example per usable question (see the module doc), in question order.

    An answerable question is skipped when it names no ``passage_id`` or the index does not hold
    that passage: RAFT needs to know which passage is the gold one.
    """
    rng = random.Random(seed)
    examples = []
    for question in questions:
        text = _clean(question.question)
        if not question.answerable:
            found = retrieve(question.question, settings.passages)
            document = question.passage_id or (found[0][0] if found else question.id)
            passages = tuple(p for _doc, p in found[: settings.passages])
            examples.append(TrainingExample(text, passages, ABSTENTION, document, "unanswerable"))
            continue
        if not question.passage_id or not question.answers:
            continue
        gold = lookup(question.passage_id, question.answers)
        if gold is None:
            continue
        found = retrieve(question.question, settings.passages + 8)
        distractors = [p for doc, p in found if doc != question.passage_id]
        keep_gold = rng.random() < settings.gold_share
        if keep_gold:
            chosen = distractors[: settings.passages - 1]
            position = rng.randint(0, len(chosen))
            chosen.insert(position, gold)
            target = f"{_clean(question.answers[0]).strip().rstrip('.')} [{position + 1}]."
            examples.append(
                TrainingExample(
                    text,
                    tuple(chosen),
                    target,
                    question.passage_id,
                    "answer",
                    position + 1,
                    tuple(question.answers),
                )
            )
        else:
            # Without the gold passage the answer must truly be absent, or "I don't know" is a lie.
            clean = [p for p in distractors if not contains_answer(p.text, question.answers)]
            examples.append(
                TrainingExample(
                    text,
                    tuple(clean[: settings.passages]),
                    ABSTENTION,
                    question.passage_id,
                    "no gold",
                )
            )
    return _cap_unanswerable(examples, settings.unanswerable_share, rng)


def _cap_unanswerable(
    examples: list[TrainingExample], share: float | None, rng: random.Random
) -> list[TrainingExample]:
    """Keep a seeded sample of the unanswerable examples, at most ``share`` of the result."""
    unanswerable = [i for i, e in enumerate(examples) if e.kind == "unanswerable"]
    if share is None or not unanswerable:
        return examples
    others = len(examples) - len(unanswerable)
    allowed = int(share * others / (1.0 - share))
    if allowed >= len(unanswerable):
        return examples
    dropped = set(unanswerable) - set(rng.sample(unanswerable, allowed))
    return [e for i, e in enumerate(examples) if i not in dropped]


@dataclass(frozen=True)
class DataSplit:
    train: tuple[TrainingExample, ...]
    validation: tuple[TrainingExample, ...]


def split_by_document(
    examples: Sequence[TrainingExample], share: float, seed: int = 0
) -> DataSplit:
    """Hold out about ``share`` of the documents (with all their examples) for validation
    (:func:`held_documents`)."""
    held = held_documents({e.document for e in examples}, share, seed)
    return DataSplit(
        tuple(e for e in examples if e.document not in held),
        tuple(e for e in examples if e.document in held),
    )


def held_documents(documents: Iterable[str], share: float, seed: int = 0) -> frozenset[str]:
    """The documents held out for validation: about ``share`` of ``documents``.

    A document is held out when a seeded hash of its id falls under ``share``, so the split
    does not depend on which other documents are present. At least one document is held out
    when there are two or more and ``share`` > 0, and never all of them.
    """
    ordered = sorted(set(documents))

    def draw(document: str) -> float:
        digest = hashlib.sha256(f"{seed}:{document}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    held = {d for d in ordered if draw(d) < share}
    if share > 0 and not held and len(ordered) > 1:
        held = {min(ordered, key=draw)}
    if len(held) == len(ordered) and len(ordered) > 1:
        held.discard(max(ordered, key=draw))
    return frozenset(held)


def examples_sha256(examples: Sequence[TrainingExample]) -> str:
    """A hash of the examples' content: the card's ``training_data_sha256``."""
    digest = hashlib.sha256()
    for e in examples:
        row = [e.question, [[p.title, p.text] for p in e.passages], e.target, e.document, e.kind]
        digest.update(json.dumps(row, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()
