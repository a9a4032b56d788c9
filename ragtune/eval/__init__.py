"""Evaluation: metrics (pure functions) now; runs, comparisons and reports build on them."""

from ragtune.eval.metrics import exact_match, normalise, token_f1

__all__ = ["exact_match", "normalise", "token_f1"]
