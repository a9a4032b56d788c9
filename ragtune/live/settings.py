"""The settings of live recording (the ``live:`` section of a config)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from annotated_types import Ge, Gt

from ragtune.settings import check_bounds

__all__ = ["LiveSettings"]


@dataclass(frozen=True)
class LiveSettings:
    """Where each answer's live metrics and its users' feedback are kept.

    Each tenant has its own store, ``ROOT/TENANT/live.sqlite`` (answers without a tenant:
    ``ROOT/_untenanted``), so one tenant's answers, questions and feedback are never in a file
    another tenant's requests open.
    """

    root: Path | None = None
    """The folder of the per-tenant stores; None: nothing is recorded, canaries still split
    traffic but are never judged, and feedback is refused."""
    keep_days: Annotated[float, Gt(0.0)] = 30.0
    """Answers older than this that got no feedback are deleted, their question text with them
    (days). A canary's looks count only the answers still kept: keep it longer than a canary
    runs."""
    max_correction_chars: Annotated[int, Ge(1)] = 4000
    """The longest correction a feedback may carry (characters)."""

    def __post_init__(self) -> None:
        check_bounds(self)
