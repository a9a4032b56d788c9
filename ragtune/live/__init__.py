"""What a running assistant learns from its traffic: live metrics per adapter version, canary
decisions, and user feedback.

- :mod:`ragtune.live.settings`: where answers and feedback are stored (``live:`` in a config).
- :mod:`ragtune.live.metrics`: what one answer contributes to each watched metric. Pure.
- :mod:`ragtune.live.stats`: ratio estimates, their delta-method variance, the one-sided test
  of a canary's drop and the decision at a look. Pure.
- :mod:`ragtune.live.store`: one SQLite file per tenant (answers, feedback); the only module
  here that speaks SQL.
- :mod:`ragtune.live.canary`: judging a running canary at its looks, and its status report.
- :mod:`ragtune.live.recorder`: what the Assistant calls after each answer and on feedback.
- :mod:`ragtune.live.export`: rated answers as an eval question file.
"""

from ragtune.live.settings import LiveSettings

__all__ = ["LiveSettings"]
