"""Checking answers: citation parsing, support signals, the calibrated checker, ALCE scores."""

from ragtune.check.alce import AlceScore, alce_scores
from ragtune.check.checker import (
    CheckerSettings,
    CheckResult,
    CitationChecker,
    SupportCitationChecker,
)
from ragtune.check.citations import (
    ParsedSentence,
    markers,
    parse_answer,
    split_sentences,
    strip_markers,
)
from ragtune.check.support import (
    Calibration,
    ClaimItem,
    SupportChecker,
    SupportScore,
    auroc,
    fit_calibration,
    load_calibrations,
)

__all__ = [
    "AlceScore",
    "Calibration",
    "CheckResult",
    "CheckerSettings",
    "CitationChecker",
    "ClaimItem",
    "ParsedSentence",
    "SupportChecker",
    "SupportCitationChecker",
    "SupportScore",
    "alce_scores",
    "auroc",
    "fit_calibration",
    "load_calibrations",
    "markers",
    "parse_answer",
    "split_sentences",
    "strip_markers",
]
