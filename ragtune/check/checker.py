"""The citation checker stage: verdicts per sentence of a generated answer, and ALCE scores.

:class:`CitationChecker` is the stage protocol; :class:`SupportCitationChecker` implements it
with the calibrated :class:`~ragtune.check.support.SupportChecker`. A sentence without a
marker gets the verdict ``no citation`` and a sentence whose markers all point past the
passage list ``invalid citation``; neither is scored as supported. ALCE recall and precision
(:mod:`ragtune.check.alce`) use the same scorer as judge, on the cited sets and, for sentences
citing several passages, on each passage alone and each set without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ragtune.check.alce import AlceScore, alce_scores
from ragtune.check.citations import ParsedSentence, parse_answer
from ragtune.check.support import ClaimItem, SupportChecker
from ragtune.types import Citation, ClaimVerdict, Generation, Passage

__all__ = ["CheckResult", "CitationChecker", "SupportCitationChecker"]


class CitationChecker(Protocol):
    def check(self, generation: Generation, passages: Sequence[Passage]) -> list[ClaimVerdict]: ...


@dataclass(frozen=True)
class CheckResult:
    verdicts: tuple[ClaimVerdict, ...]
    alce: AlceScore


class SupportCitationChecker:
    """Checks each sentence's claim against the passages it cites."""

    def __init__(self, scorer: SupportChecker, *, question_aware: bool = True) -> None:
        self.scorer = scorer
        self.question_aware = question_aware

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
                continue
            sets = {cited}
            if len(cited) > 1:
                sets |= {frozenset([c]) for c in cited} | {cited - {c} for c in cited}
            for subset in sets:
                texts = [passages[n - 1].text for n in sorted(subset)]
                wanted[(i, subset)] = ClaimItem(sentence.claim, texts, q)
        keys = list(wanted)
        scores = dict(zip(keys, self.scorer.score_many([wanted[k] for k in keys]), strict=True))

        verdicts = []
        for i, sentence in enumerate(parsed):
            verdicts.append(self._verdict(i, sentence, passages, scores))

        def judge(numbers: frozenset[int], index: int) -> bool:
            valid = frozenset(n for n in numbers if 1 <= n <= len(passages))
            found = scores.get((index, valid))
            return bool(valid) and found is not None and found.supported

        score = alce_scores([(*s.cited, *s.invalid) for s in parsed], judge)
        return CheckResult(tuple(verdicts), score)

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
