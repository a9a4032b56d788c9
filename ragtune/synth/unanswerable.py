"""Unanswerable questions about a chunk's topic, so an adapter learns to abstain in the domain.

A kept question keeps its form and its topic but asks about an entity the documents never
name: one name in it is swapped for a made-up one ("When was the University of Notre Dame
founded?" becomes "When was the University of Brannock founded?"). Generic head words stay
(University, River, Company ...), so the question still reads like one about the domain. The
swap is verified, not assumed: the caller's ``absent(word)`` must confirm that no chunk of the
tenant holds the new word (a lexical search over the index), so the documents cannot answer
it. This is SQuAD 2.0's "entity swap" kind of unanswerable question; its other kinds (negation,
antonyms) cannot be verified this way and are not made.

>>> swap = entity_swap("When was the University of Notre Dame founded?", "q1", lambda w: True)
>>> swap is not None and swap.question.startswith("When was the University of Notre ")
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from ragtune.synth.candidates import name_spans

__all__ = ["MADE_UP_NAMES", "Swap", "entity_swap"]

MADE_UP_NAMES = (
    "Aldervane",
    "Brannock",
    "Corvelle",
    "Dunmarrow",
    "Elsinmoor",
    "Farrowgate",
    "Glenhallow",
    "Harrowmere",
    "Isenford",
    "Kestrelholm",
    "Lindvale",
    "Morrowby",
    "Northcrest",
    "Oakhollow",
    "Pellmoor",
    "Quillfield",
    "Ravensholt",
    "Saltcombe",
    "Thornvale",
    "Ulverstead",
    "Westmarrow",
    "Yarrowdale",
)
"""Names for the swapped-in entity: made up, so that a real document rarely holds them (and
when one does, ``absent`` says so and the next is tried)."""

_HEAD_WORDS = (
    "University College School Institute Academy Library Museum Hospital Church Cathedral "
    "Company Corporation Inc Ltd Group Bank Party Council Committee Court Act Treaty War "
    "River Lake Sea Ocean Island Islands Mountain Mountains Valley Bay Park Street Road "
    "Bridge Airport Station Empire Kingdom Republic Province County City State States "
    "Department Ministry Agency Award Prize Cup League Festival Centre Center Tower"
)
_HEADS = frozenset(_HEAD_WORDS.split())
_TRIES = 5


@dataclass(frozen=True)
class Swap:
    """An unanswerable question made from an answerable one."""

    question: str
    original: str
    """The word that was replaced."""
    replacement: str


def entity_swap(question: str, seed: str, absent: Callable[[str], bool]) -> Swap | None:
    """``question`` with one name's distinctive word replaced by a made-up name that
    ``absent(name)`` confirms no document holds; None when the question names nothing, or
    :data:`MADE_UP_NAMES` yields no absent name in a few tries. The choice is seeded by ``seed``
    (e.g. the question's id), so a rerun makes the same question."""
    target = _swappable_word(question)
    if target is None:
        return None
    lo, hi = target
    start = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:4], "big")
    for step in range(_TRIES):
        name = MADE_UP_NAMES[(start + step) % len(MADE_UP_NAMES)]
        if name.lower() != question[lo:hi].lower() and absent(name):
            return Swap(question[:lo] + name + question[hi:], question[lo:hi], name)
    return None


def _swappable_word(question: str) -> tuple[int, int] | None:
    """The span of the last distinctive word of the question's first name (not a head word
    such as "University", not a connector such as "of")."""
    for lo, hi in name_spans(question, question):
        position = lo
        best = None
        for word in question[lo:hi].split():
            start = question.index(word, position)
            position = start + len(word)
            bare = word.removesuffix("'s").removesuffix("’s").rstrip(".,;:")
            if bare[:1].isupper() and bare not in _HEADS and bare.isalpha():
                best = (start, start + len(bare))
        if best is not None:
            return best
    return None
