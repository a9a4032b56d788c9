"""Entity swaps: a question about a name the documents do not hold, verified absent."""

from __future__ import annotations

from ragtune.synth.unanswerable import MADE_UP_NAMES, entity_swap


def test_the_distinctive_word_of_a_name_is_swapped_and_head_words_stay() -> None:
    swap = entity_swap("When was the University of Notre Dame founded?", "q1", lambda w: True)
    assert swap is not None
    assert swap.original == "Dame" and swap.replacement in MADE_UP_NAMES
    assert swap.question == f"When was the University of Notre {swap.replacement} founded?"
    river = entity_swap("How long is the Amazon River?", "q2", lambda w: True)
    assert river is not None and river.question == f"How long is the {river.replacement} River?"


def test_a_name_the_documents_hold_is_not_used_and_the_choice_is_seeded() -> None:
    seen: list[str] = []

    def absent(word: str) -> bool:
        seen.append(word)
        return len(seen) > 2  # the first two made-up names are "in the documents"

    swap = entity_swap("Who founded Orbix Industries?", "q7", absent)
    assert swap is not None and swap.replacement == seen[2] and seen[0] != seen[2]
    again = entity_swap("Who founded Orbix Industries?", "q7", lambda w: w == seen[2])
    assert again == swap
    assert entity_swap("Who founded Orbix Industries?", "q7", lambda w: False) is None


def test_a_question_without_a_name_gives_none() -> None:
    assert entity_swap("How long can items be returned?", "q", lambda w: True) is None
    assert entity_swap("When does the library close on weekdays?", "q", lambda w: True) is None
