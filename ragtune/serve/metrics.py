"""Prometheus metrics of one server, in their own registry (two servers in one process, as in
the tests, do not share counts).

The live metrics of each adapter version are counters per tenant, adapter and version, so any
window's rate is a ratio of their increases, e.g. the abstention rate of acme's v4 over 5 minutes::

    increase(ragtune_version_abstentions_total{tenant="acme",version="4"}[5m])
      / increase(ragtune_version_answers_total{tenant="acme",version="4"}[5m])

(supported sentences over sentences, support score sum over sentences, citation precision sum
over checked answers, latency from its histogram, "up" ratings over ratings).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ragtune.live.metrics import observe
from ragtune.types import Answer

__all__ = ["ServerMetrics", "version_labels"]

_VERSION = ["tenant", "adapter", "version"]

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
_STAGES = ("queue", "guard", "retrieve", "generate", "prefill", "decode", "check", "total")


class ServerMetrics:
    def __init__(self, queue_depth: Callable[[], float]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "ragtune_requests",
            "HTTP requests by route and status code",
            ["route", "status"],
            registry=self.registry,
        )
        self.completions = Counter(
            "ragtune_completions",
            "Chat completions answered, by tenant and whether streamed",
            ["tenant", "stream"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ragtune_request_seconds",
            "Chat completion latency, from arrival to the last byte's readiness",
            ["stream"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stage = Histogram(
            "ragtune_stage_seconds",
            "Seconds per stage of each answered question (queue: waiting for the model)",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.abstentions = Counter(
            "ragtune_abstentions",
            "Answers that abstained, by tenant and reason",
            ["tenant", "reason"],
            registry=self.registry,
        )
        self.adapter_switches = Counter(
            "ragtune_adapter_switches",
            "Adapter versions brought into memory (first use, promotion, rollback, reload)",
            registry=self.registry,
        )
        self.adapter_routes = Counter(
            "ragtune_adapter_routes",
            "Requests sent to a model replica (serve --engine ray), by whether the replica "
            "already held their adapter (held=true) or loaded it for them",
            ["held"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "ragtune_rejected",
            "Requests refused before the model: queue full, too large, bad input, auth",
            ["reason"],
            registry=self.registry,
        )
        self.cancelled = Counter(
            "ragtune_cancelled",
            "Requests whose client went away or that timed out before their answer",
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "ragtune_batch_size",
            "Questions per model batch",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "ragtune_queue_depth", "Requests waiting for the model", registry=self.registry
        )
        self.queue_depth.set_function(queue_depth)
        self._version_counters()

    def _version_counters(self) -> None:
        def counter(name: str, text: str, extra: tuple[str, ...] = ()) -> Counter:
            return Counter(name, text, [*_VERSION, *extra], registry=self.registry)

        self.version_answers = counter(
            "ragtune_version_answers",
            "Answers per adapter version; arm: its canary side (current, canary) or none",
            ("arm",),
        )
        self.version_abstentions = counter(
            "ragtune_version_abstentions", "Answers that abstained, per adapter version"
        )
        self.version_sentences = counter(
            "ragtune_version_sentences", "Sentences the checker judged, per adapter version"
        )
        self.version_supported = counter(
            "ragtune_version_supported_sentences", "Checked sentences their citations support"
        )
        self.version_support = counter(
            "ragtune_version_support_score", "Sum of checked sentences' support probabilities"
        )
        self.version_checked = counter(
            "ragtune_version_checked_answers", "Answers with at least one checked sentence"
        )
        self.version_precision = counter(
            "ragtune_version_citation_precision",
            "Sum of ALCE citation precision over answers with checked sentences",
        )
        self.version_latency = Histogram(
            "ragtune_version_answer_seconds",
            "Seconds from question to answer in the Assistant, per adapter version",
            _VERSION,
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.feedback = counter("ragtune_feedback", "User ratings per adapter version", ("rating",))

    def answered(self, answer: Answer, tenant: str, queue_seconds: float, stream: bool) -> None:
        self.completions.labels(tenant, str(stream).lower()).inc()
        self.stage.labels("queue").observe(queue_seconds)
        for stage in _STAGES[1:]:
            self.stage.labels(stage).observe(getattr(answer.timings, stage))
        if answer.abstained:
            reason = (answer.abstain_reason or "unknown").split(":")[0]
            self.abstentions.labels(tenant, reason).inc()
        labels = version_labels(tenant, answer)
        arm = answer.canary.arm if answer.canary is not None else "none"
        o = observe(answer)
        self.version_answers.labels(*labels, arm).inc()
        self.version_abstentions.labels(*labels).inc(int(o.abstained))
        self.version_sentences.labels(*labels).inc(o.sentences)
        self.version_supported.labels(*labels).inc(o.supported)
        self.version_support.labels(*labels).inc(o.support_sum)
        self.version_checked.labels(*labels).inc(int(o.sentences > 0))
        self.version_precision.labels(*labels).inc(o.citation_precision if o.sentences else 0.0)
        self.version_latency.labels(*labels).observe(o.latency_s)

    def rated(self, tenant: str, adapter: str, version: int | None, rating: str) -> None:
        self.feedback.labels(tenant, adapter, "" if version is None else str(version), rating).inc()

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))


def version_labels(tenant: str, answer: Answer) -> tuple[str, str, str]:
    """``(tenant, adapter, version)`` of an answer: the adapter that generated it, or for one
    that abstained before generation, the canary arm it was sent to (``none``: the base model)."""
    adapter, version = answer.adapter, answer.adapter_version
    if adapter is None and answer.canary is not None:
        adapter, version = answer.canary.adapter, answer.canary.version
    return tenant, adapter or "none", "" if version is None else str(version)
