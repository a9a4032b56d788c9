"""Prometheus metrics of one server, in their own registry (two servers in one process, as in
the tests, do not share counts)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ragtune.types import Answer

__all__ = ["ServerMetrics"]

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

    def answered(self, answer: Answer, tenant: str, queue_seconds: float, stream: bool) -> None:
        self.completions.labels(tenant, str(stream).lower()).inc()
        self.stage.labels("queue").observe(queue_seconds)
        for stage in _STAGES[1:]:
            self.stage.labels(stage).observe(getattr(answer.timings, stage))
        if answer.abstained:
            reason = (answer.abstain_reason or "unknown").split(":")[0]
            self.abstentions.labels(tenant, reason).inc()

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))
