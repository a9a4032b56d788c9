"""The checker stage on whole answers: verdicts per sentence, and post-hoc attribution."""

from __future__ import annotations

from ragtune.check.checker import SupportCitationChecker
from ragtune.check.support import SupportChecker
from ragtune.types import Passage

WARRANTY = "Motors in the Cascade blender series are covered for five years."
SHIPPING = (
    "Express shipping arrives the next business day and costs 8.50 pounds. "
    "European deliveries take 5 to 8 business days and cost 12 pounds per order."
)


def _passages() -> list[Passage]:
    return [
        Passage(f"c{i}", f"d{i}", text, 1.0, i + 1, f"s{i}.md", 0, len(text))
        for i, text in enumerate([SHIPPING, WARRANTY])
    ]


def test_an_unmarked_supported_sentence_gets_the_passage_that_supports_it() -> None:
    checker = SupportCitationChecker(SupportChecker(), attribute=True)
    result = checker.check_answer(
        "The motor of the Cascade blender is covered for five years.", _passages()
    )
    assert result.text == "The motor of the Cascade blender is covered for five years. [2]"
    (verdict,) = result.verdicts
    assert verdict.supported and verdict.verdict == "supported" and verdict.attributed
    assert [c.number for c in verdict.citations] == [2]
    assert result.alce.recall == 1.0


def test_nothing_is_attributed_to_an_unsupported_sentence_or_when_switched_off() -> None:
    checker = SupportCitationChecker(SupportChecker(), attribute=True)
    wrong = "Express shipping costs 12 pounds per order."  # 12 is the European price
    result = checker.check_answer(wrong, _passages())
    assert result.text == wrong
    assert [v.verdict for v in result.verdicts] == ["no citation"]
    plain = SupportCitationChecker(SupportChecker(), attribute=False)
    right = "The motor of the Cascade blender is covered for five years."
    assert [v.verdict for v in plain.check_answer(right, _passages()).verdicts] == ["no citation"]


def test_a_wrong_marker_is_not_corrected() -> None:
    checker = SupportCitationChecker(SupportChecker(), attribute=True)
    result = checker.check_answer(
        "The motor of the Cascade blender is covered for five years [1]. "
        "Express shipping costs 8.50 pounds.",
        _passages(),
    )
    first, second = result.verdicts
    assert first.verdict == "unsupported" and not first.attributed
    assert second.verdict == "supported" and second.attributed
    assert result.text.endswith("Express shipping costs 8.50 pounds. [1]")
    draft = "The motor of the Cascade blender is covered for five years [1]. Express shipping costs 8.50 pounds."
    assert draft[second.start : second.end] == "Express shipping costs 8.50 pounds."
    assert second.sentence == "Express shipping costs 8.50 pounds. [1]"
