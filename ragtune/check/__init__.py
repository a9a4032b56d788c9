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
from ragtune.check.signals import missing_terms
from ragtune.check.support import (
    Calibration,
    ClaimItem,
    SupportChecker,
    SupportScore,
    auroc,
    choose_threshold,
    fit_calibration,
    load_calibrations,
)
from ragtune.check.support_model import SupportModel, load_support_model

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
    "SupportModel",
    "SupportScore",
    "alce_scores",
    "auroc",
    "choose_threshold",
    "fit_calibration",
    "load_calibrations",
    "load_support_model",
    "markers",
    "missing_terms",
    "parse_answer",
    "split_sentences",
    "strip_markers",
]
