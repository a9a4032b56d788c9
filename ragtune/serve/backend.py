"""What the HTTP app answers through: a :class:`Backend` takes questions and hands back
answers, a :class:`Front` checks and lists a tenant's adapters and keeps feedback.

Two backends exist: :class:`LocalBackend`, one model in this process behind the batching
:class:`~ragtune.serve.scheduler.Scheduler`; and :class:`ragtune.serve.ray_engine.RayBackend`,
model replicas on Ray Serve. The app is the same over either (keys, tenants, limits, metrics).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ragtune.serve.scheduler import Scheduler, Ticket

if TYPE_CHECKING:
    from ragtune.assistant import Assistant, Question
    from ragtune.generate.protocol import GeneratorStatus
    from ragtune.generate.registry import AdapterEntry
    from ragtune.live.recorder import LiveRecorder
    from ragtune.live.store import FeedbackRecord
    from ragtune.serve.metrics import ServerMetrics
    from ragtune.serve.settings import ServeSettings
    from ragtune.types import AdapterChoice, TenantDefault

__all__ = ["Backend", "Front", "LocalBackend"]


class Front(Protocol):
    """What the app needs besides answers (an :class:`~ragtune.Assistant` is one)."""

    live: LiveRecorder | None

    def adapter_for(
        self, tenant: str | None, requested: AdapterChoice | TenantDefault
    ) -> AdapterChoice:
        """The concrete adapter of a request, checked; another tenant's is not found."""
        ...

    def adapters(self, tenant: str) -> list[AdapterEntry]: ...

    def feedback(
        self, response_id: str, rating: str, *, tenant: str | None, correction: str | None = None
    ) -> FeedbackRecord: ...


class Backend(Protocol):
    """Takes questions, hands back answers on each ticket's future."""

    @property
    def depth(self) -> int:
        """Requests taken and not yet answered or started."""
        ...

    def start(self, metrics: ServerMetrics) -> None:
        """Start taking questions; report batches, adapter loads and routing to ``metrics``."""
        ...

    def stop(self) -> None:
        """Refuse new questions, fail those waiting, let those started finish."""
        ...

    def submit(self, question: Question) -> Ticket:
        """Take ``question`` (from a coroutine); raises
        :class:`~ragtune.serve.scheduler.QueueFullError` when full."""
        ...

    def status(self) -> GeneratorStatus:
        """The model's status (``/healthz``)."""
        ...

    def health(self) -> dict[str, Any]:
        """What ``/healthz`` adds for this backend (replicas, routing)."""
        ...


class LocalBackend:
    """One model in this process, behind the batching scheduler."""

    def __init__(self, assistant: Assistant, settings: ServeSettings) -> None:
        self._generator = assistant.generator
        status = self._generator.status()
        self._loads_seen = status.adapter_loads
        self._metrics: ServerMetrics | None = None
        self.scheduler = Scheduler(
            assistant,
            max_queue=settings.max_queue,
            max_batch=status.max_batch_size,
            batch_wait=settings.batch_wait_ms / 1000,
            on_batch=self._on_batch,
        )

    @property
    def depth(self) -> int:
        return self.scheduler.depth

    def start(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.stop()

    def submit(self, question: Question) -> Ticket:
        return self.scheduler.submit(question)

    def status(self) -> GeneratorStatus:
        return self._generator.status()

    def health(self) -> dict[str, Any]:
        return {}

    def _on_batch(self, size: int, seconds: float) -> None:
        if self._metrics is None:
            return
        self._metrics.batch_size.observe(size)
        loads = self._generator.status().adapter_loads
        if loads > self._loads_seen:
            self._metrics.adapter_switches.inc(loads - self._loads_seen)
        self._loads_seen = loads
