"""The citation checker stage: verdicts per sentence of a generated answer, and ALCE scores.

:class:`CitationChecker` is the stage protocol; :class:`SupportCitationChecker` implements it
with the calibrated :class:`~ragtune.check.support.SupportChecker`. A sentence without a
marker gets the verdict ``no citation`` and a sentence whose markers all point past the
passage list ``invalid citation``; neither is scored as supported.

With ``attribute=True`` (post-hoc citation) a sentence the model left without any marker is
scored against each passage alone; when one supports it, the checker adds that passage's marker
(:attr:`~ragtune.types.Citation.attributed`) and the sentence counts as supported. Small models
often answer from the passages without writing markers; this keeps such answers, and only those
a passage supports. Wrong markers are never corrected: they stay ``unsupported``. ALCE recall and precision
(:mod:`ragtune.check.alce`) use the same scorer as judge, on the cited sets and, for sentences
citing several passages, on each passage alone and each set without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from annotated_types import Ge, Le

from ragtune.check.alce import AlceScore, alce_scores
from ragtune.check.citations import ParsedSentence, parse_answer
from ragtune.check.support import ClaimItem, SupportChecker
from ragtune.settings import check_bounds
from ragtune.types import Citation, ClaimVerdict, Generation, Passage

__all__ = ["CheckResult", "CheckerSettings", "CitationChecker", "SupportCitationChecker"]


@dataclass(frozen=True)
class CheckerSettings:
    """Which signals score support, the threshold, and post-hoc attribution."""

    signals: tuple[Literal["similarity", "evidence", "support_model"], ...] = ("similarity",)
    """Signals beyond the lexical ones: embedder similarity, the base model's evidence, the
    trained support model (:mod:`ragtune.check.support_model`)."""
    min_support: Annotated[float, Ge(0.0), Le(1.0)] | None = None
    """A support probability threshold; None: the calibrated one."""
    attribute_uncited: bool = True
    """Give a sentence the model left without a marker the passage that supports it."""
    calibration: Path | None = None
    """A calibration file from ``ragtune check --calibrate``; None: the shipped one."""
    support_model_folder: Path | None = None
    """The support model's folder (``scripts/train_support_model.py``); None: the shipped one.
    Used when ``signals`` names ``support_model``."""

    def __post_init__(self) -> None:
        check_bounds(self)


class CitationChecker(Protocol):
    def check(self, generation: Generation, passages: Sequence[Passage]) -> list[ClaimVerdict]: ...


@dataclass(frozen=True)
class CheckResult:
    verdicts: tuple[ClaimVerdict, ...]
    alce: AlceScore
    text: str = ""
    """The answer as checked: the input, plus any markers the checker attributed. A verdict's
    ``start``/``end`` are offsets in the input; its ``sentence`` includes an added marker."""


class SupportCitationChecker:
    """Checks each sentence's claim against the passages it cites."""

    def __init__(
        self, scorer: SupportChecker, *, attribute: bool, question_aware: bool = True
    ) -> None:
        self.scorer = scorer
        self.question_aware = question_aware
        self.attribute = attribute

    def check(self, generation: Generation, passages: Sequence[Passage]) -> list[ClaimVerdict]:
        return list(self.check_answer(generation.text, passages).verdicts)

    def check_answer(
        self, text: str, passages: Sequence[Passage], question: str | None = None
    ) -> CheckResult:
        """Verdicts for ``text`` written from ``passages`` ([1] is ``passages[0]``), with ALCE."""
        parsed = parse_answer(text, len(passages))
        q = question if self.question_aware else None
        # Every passage set the verdicts and ALCE need, scored in one batch.
        wanted: dict[tuple[int, frozenset[int]], ClaimItem] = {}
        for i, sentence in enumerate(parsed):
            cited = frozenset(sentence.cited)
            if not cited:
                if self.attribute and not sentence.invalid and sentence.claim.strip():
                    for n, passage in enumerate(passages, start=1):
                        wanted[(i, frozenset([n]))] = ClaimItem(sentence.claim, [passage.text], q)
                continue
            sets = {cited}
            if len(cited) > 1:
                sets |= {frozenset([c]) for c in cited} | {cited - {c} for c in cited}
            for subset in sets:
                texts = [passages[n - 1].text for n in sorted(subset)]
                wanted[(i, subset)] = ClaimItem(sentence.claim, texts, q)
        keys = list(wanted)
        scores = dict(zip(keys, self.scorer.score_many([wanted[k] for k in keys]), strict=True))

        found = _attributions(parsed, len(passages), scores) if self.attribute else {}
        written = parsed
        if found:
            marked, parsed = _with_markers(text, parsed, found, len(passages))
            found = found if marked != text else {}
            text = marked
        verdicts = []
        for i, sentence in enumerate(parsed):
            verdict = self._verdict(i, sentence, passages, scores)
            if i in found:
                attributed = tuple(replace(c, attributed=True) for c in verdict.citations)
                verdict = replace(verdict, citations=attributed)
            # Offsets stay those of the text as written: an added marker is not in the draft.
            verdict = replace(verdict, start=written[i].start, end=written[i].end)
            verdicts.append(verdict)

        def judge(numbers: frozenset[int], index: int) -> bool:
            valid = frozenset(n for n in numbers if 1 <= n <= len(passages))
            found = scores.get((index, valid))
            return bool(valid) and found is not None and found.supported

        score = alce_scores([(*s.cited, *s.invalid) for s in parsed], judge)
        return CheckResult(tuple(verdicts), score, text)

    @staticmethod
    def _verdict(
        index: int,
        sentence: ParsedSentence,
        passages: Sequence[Passage],
        scores: dict[tuple[int, frozenset[int]], Any],
    ) -> ClaimVerdict:
        citations = tuple(
            [Citation(n, passages[n - 1]) for n in sentence.cited]
            + [Citation(n, None) for n in sentence.invalid]
        )
        if not sentence.cited:
            verdict = "invalid citation" if sentence.invalid else "no citation"
            return ClaimVerdict(
                sentence.text,
                sentence.claim,
                sentence.start,
                sentence.end,
                citations,
                0.0,
                False,
                verdict,
            )
        result = scores[(index, frozenset(sentence.cited))]
        return ClaimVerdict(
            sentence.text,
            sentence.claim,
            sentence.start,
            sentence.end,
            citations,
            round(result.score, 4),
            result.supported,
            "supported" if result.supported else "unsupported",
            dict(result.signals),
        )


def _attributions(
    parsed: Sequence[ParsedSentence], n_passages: int, scores: dict[tuple[int, frozenset[int]], Any]
) -> dict[int, int]:
    """For each unmarked sentence some passage supports, the best such passage's number."""
    found = {}
    for i, sentence in enumerate(parsed):
        if sentence.has_marker:
            continue
        backing = [
            (result.score, -n, n)
            for n in range(1, n_passages + 1)
            if (result := scores.get((i, frozenset([n])))) is not None and result.supported
        ]
        if backing:
            found[i] = max(backing)[2]  # the highest score; the better-ranked passage on a tie
    return found


def _with_markers(
    text: str, parsed: Sequence[ParsedSentence], found: dict[int, int], n_passages: int
) -> tuple[str, list[ParsedSentence]]:
    """``text`` with ``[n]`` written after each sentence in ``found``, and its new parse."""
    pieces, at = [], 0
    for i, sentence in enumerate(parsed):
        if i in found:
            end = sentence.start + len(sentence.text.rstrip())
            pieces += [text[at:end], f" [{found[i]}]"]
            at = end
    marked = "".join([*pieces, text[at:]])
    reparsed = parse_answer(marked, n_passages)
    same = len(reparsed) == len(parsed) and all(reparsed[i].cited == (found[i],) for i in found)
    if not same:  # the marker changed how the text splits: keep the text as the model wrote it
        return text, list(parsed)
    return marked, reparsed
