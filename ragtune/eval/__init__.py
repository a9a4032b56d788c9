"""Evaluation: run a question set through the Assistant, summarise, compare, and report.

>>> from ragtune.eval import evaluate, load_run, compare_runs   # doctest: +SKIP
>>> result = evaluate("configs/default.yaml", "qa.jsonl", "runs/base", limit=100)  # doctest: +SKIP
"""

from ragtune.eval.compare import (
    Comparison,
    MetricDelta,
    Regression,
    compare_runs,
    comparison_table,
    drift,
)
from ragtune.eval.metrics import (
    answer_recall_at_k,
    contains_answer,
    exact_match,
    normalise,
    recall_at_k,
    reciprocal_rank,
    token_f1,
)
from ragtune.eval.questions import EvalQuestion, read_questions, select_questions
from ragtune.eval.report import (
    Failure,
    Run,
    failures_list,
    load_run,
    metrics_table,
    plot_latency,
    plot_metrics,
    plot_recall,
    plot_support,
    worst_failures,
    write_report,
)
from ragtune.eval.runner import RunResult, evaluate, read_records, run_eval
from ragtune.eval.stats import Estimate, bootstrap, paired_bootstrap
from ragtune.eval.summary import METRICS, Metric, summarise

__all__ = [
    "METRICS",
    "Comparison",
    "Estimate",
    "EvalQuestion",
    "Failure",
    "Metric",
    "MetricDelta",
    "Regression",
    "Run",
    "RunResult",
    "answer_recall_at_k",
    "bootstrap",
    "compare_runs",
    "comparison_table",
    "contains_answer",
    "drift",
    "evaluate",
    "exact_match",
    "failures_list",
    "load_run",
    "metrics_table",
    "normalise",
    "paired_bootstrap",
    "plot_latency",
    "plot_metrics",
    "plot_recall",
    "plot_support",
    "read_questions",
    "read_records",
    "recall_at_k",
    "reciprocal_rank",
    "run_eval",
    "select_questions",
    "summarise",
    "token_f1",
    "worst_failures",
    "write_report",
]
