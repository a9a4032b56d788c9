"""``summary.json`` from ``records.jsonl``: every metric, its bootstrap interval, and the run's
context. Pure: the same records give the same summary.

Each metric is defined per question as a ratio part ``(numerator, denominator)``, or ``None``
where it does not apply (recall@k needs a gold passage id; EM needs an answerable question;
citation scores need an answer that was not an abstention). The metric is the ratio of sums
over the questions where it applies; its 95% interval resamples those questions.

Definitions:

* ``retrieval.recall@k``: the gold ``passage_id`` is among the top k retrieved documents;
  ``mrr``: 1 / its rank (0 past the ranking); ``answer_recall@5``: a gold answer string is in one
  of the top 5 passages. Over answerable questions (with a passage id for the first three).
* ``answer.em`` / ``answer.f1``: SQuAD normalisation, best over the gold answers, an abstention
  scoring 0; ``answer.contains``: a gold answer appears in the answer (ALCE's string EM).
  Markers are removed first.
* ``citations.recall`` / ``precision``: ALCE, per answer, over answers that are not abstentions;
  ``supported_sentences``: the share of all checked sentences (kept or dropped) judged supported.
* ``abstention.on_unanswerable`` / ``on_answerable``: the share of those questions abstained on.
* ``squad2.overall_f1`` / ``overall_em``: SQuAD 2.0's summary over all questions (an abstention
  on an unanswerable question scores 1, an answer 0); its HasAns F1 is ``answer.f1`` and its
  NoAns accuracy ``abstention.on_unanswerable``, so the figures sit beside published ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ragtune.check.citations import strip_markers
from ragtune.eval.metrics import (
    answer_recall_at_k,
    contains_answer,
    exact_match,
    percentile,
    recall_at_k,
    reciprocal_rank,
    token_f1,
)
from ragtune.eval.stats import bootstrap

__all__ = [
    "METRICS",
    "STAGES",
    "Metric",
    "latency",
    "metric_parts",
    "recall_curve",
    "summarise",
    "value",
]

Record = Mapping[str, Any]
Part = tuple[float, float] | None

STAGES = ("guard", "retrieve", "prefill", "decode", "generate", "check", "total")


@dataclass(frozen=True)
class Metric:
    name: str
    """``group.metric`` as in summary.json, e.g. ``answer.f1``."""
    part: Callable[[Record], Part]
    higher_is_better: bool = True


def _ranked_ids(record: Record) -> list[str]:
    ids: list[str] = []
    for passage in record["ranking"]:
        if passage["id"] not in ids:  # several chunks of one document count once
            ids.append(passage["id"])
    return ids


def _with_gold_passage(fn: Callable[[list[str], str], float]) -> Callable[[Record], Part]:
    def part(record: Record) -> Part:
        if not record["answerable"] or not record.get("passage_id"):
            return None
        return (fn(_ranked_ids(record), record["passage_id"]), 1.0)

    return part


def _prediction(record: Record) -> str:
    return "" if record["abstained"] else strip_markers(record["answer"])


def _on_answerable(fn: Callable[[str, Sequence[str]], float]) -> Callable[[Record], Part]:
    def part(record: Record) -> Part:
        if not record["answerable"]:
            return None
        return (fn(_prediction(record), record["answers"]), 1.0)

    return part


def _answer_recall(record: Record) -> Part:
    if not record["answerable"]:
        return None
    return (answer_recall_at_k([p["text"] for p in record["ranking"]], record["answers"], 5), 1.0)


def _answered(key: str) -> Callable[[Record], Part]:
    def part(record: Record) -> Part:
        if record["abstained"] or not record["sentences"]:
            return None
        return (float(record[key]), 1.0)

    return part


def _supported(record: Record) -> Part:
    sentences = record["sentences"]
    if not sentences:
        return None
    return (float(sum(s["supported"] for s in sentences)), float(len(sentences)))


def _abstained(answerable: bool) -> Callable[[Record], Part]:
    def part(record: Record) -> Part:
        if record["answerable"] != answerable:
            return None
        return (float(record["abstained"]), 1.0)

    return part


def _squad2(fn: Callable[[str, Sequence[str]], float]) -> Callable[[Record], Part]:
    """SQuAD 2.0's own scoring over every question (Rajpurkar, Jia and Liang, 2018): an
    answerable question scores ``fn`` of the answer (0 when abstaining), an unanswerable one 1
    when the assistant abstains and 0 when it answers."""

    def part(record: Record) -> Part:
        if not record["answerable"]:
            return (float(record["abstained"]), 1.0)
        return (fn(_prediction(record), record["answers"]), 1.0)

    return part


METRICS: tuple[Metric, ...] = (
    Metric("retrieval.recall@1", _with_gold_passage(lambda r, g: recall_at_k(r, g, 1))),
    Metric("retrieval.recall@5", _with_gold_passage(lambda r, g: recall_at_k(r, g, 5))),
    Metric("retrieval.recall@10", _with_gold_passage(lambda r, g: recall_at_k(r, g, 10))),
    Metric("retrieval.mrr", _with_gold_passage(reciprocal_rank)),
    Metric("retrieval.answer_recall@5", _answer_recall),
    Metric("answer.em", _on_answerable(exact_match)),
    Metric("answer.f1", _on_answerable(token_f1)),
    Metric("answer.contains", _on_answerable(contains_answer)),
    Metric("citations.precision", _answered("citation_precision")),
    Metric("citations.recall", _answered("citation_recall")),
    Metric("citations.supported_sentences", _supported),
    Metric("abstention.on_unanswerable", _abstained(False)),
    Metric("abstention.on_answerable", _abstained(True), higher_is_better=False),
    Metric("squad2.overall_f1", _squad2(token_f1)),
    Metric("squad2.overall_em", _squad2(exact_match)),
)
"""Every metric of a run, in the order reports show them."""

BY_NAME = {m.name: m for m in METRICS}


def metric_parts(metric: Metric, records: Iterable[Record]) -> dict[str, tuple[float, float]]:
    """``{question id: (numerator, denominator)}`` for the questions the metric applies to."""
    parts = {}
    for record in records:
        found = metric.part(record)
        if found is not None:
            parts[record["id"]] = found
    return parts


def recall_curve(records: Sequence[Record], depth: int = 10) -> list[float]:
    """recall@k for k = 1..depth over the answerable questions with a gold passage id."""
    eligible = [r for r in records if r["answerable"] and r.get("passage_id")]
    if not eligible:
        return []
    return [
        sum(recall_at_k(_ranked_ids(r), r["passage_id"], k) for r in eligible) / len(eligible)
        for k in range(1, depth + 1)
    ]


def summarise(
    records: Sequence[Record],
    *,
    config: Mapping[str, Any] | None = None,
    versions: Mapping[str, Any] | None = None,
    run: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The summary of a run (see the module doc); ``run`` is the run's own description."""
    summary: dict[str, Any] = {
        "n": len(records),
        "answerable": sum(bool(r["answerable"]) for r in records),
        "unanswerable": sum(not r["answerable"] for r in records),
    }
    ci95: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for metric in METRICS:
        parts = list(metric_parts(metric, records).values())
        group, name = metric.name.split(".", 1)
        estimate = bootstrap([p[0] for p in parts], [p[1] for p in parts], seed=seed)
        summary.setdefault(group, {})[name] = round(estimate.value, 4) if parts else None
        ci95[metric.name] = [round(estimate.low, 4), round(estimate.high, 4)]
        counts[metric.name] = len(parts)
    summary["latency_ms"] = latency(records)
    summary["abstain_reasons"] = _reasons(records)
    summary["attributed_sentences"] = sum(
        bool(s.get("attributed")) for r in records for s in r["sentences"]
    )
    summary["ci95"] = ci95
    summary["counts"] = counts
    summary["config"] = dict(config or {})
    summary["versions"] = dict(versions or {})
    summary["run"] = dict(run or {})
    return summary


def latency(records: Sequence[Record]) -> dict[str, Any]:
    """p50 and p95 of the total time per question, and of each stage."""

    def stage(name: str) -> dict[str, float]:
        values = [float(r["timings_ms"].get(name, 0.0)) for r in records]
        return {"p50": round(percentile(values, 50), 1), "p95": round(percentile(values, 95), 1)}

    total = stage("total") if records else {"p50": 0.0, "p95": 0.0}
    return {**total, "by_stage": {name: stage(name) for name in STAGES} if records else {}}


def _reasons(records: Sequence[Record]) -> dict[str, int]:
    reasons: dict[str, int] = {}
    for record in records:
        if record["abstained"]:
            key = record.get("abstain_reason") or "unknown"
            reasons[key] = reasons.get(key, 0) + 1
    return dict(sorted(reasons.items()))


def value(summary: Mapping[str, Any], name: str) -> float | None:
    """A metric's value in a summary, by ``group.metric`` name."""
    group, key = name.split(".", 1)
    found = summary.get(group, {})
    return found.get(key) if isinstance(found, Mapping) else None
