"""``ragtune serve --engine ray``: the same OpenAI-compatible app over N model replicas on Ray
Serve, each request routed to a replica that already holds its adapter.

Two deployments:

- ``RagtuneIngress`` (one replica, no CPU reserved): the app of :mod:`ragtune.serve.app`, with
  its keys, tenants, limits and metrics; it checks the request's adapter against the registry
  (no model here), then hands the question to a model replica through :class:`RayBackend`;
- ``RagtuneModel`` (``replicas`` replicas, one CPU or GPU each): a whole
  :class:`~ragtune.Assistant` (retriever, generator, checker) behind its own batching
  scheduler. The request's concrete adapter (``acme/support``, ``none``) is its Ray Serve
  *multiplexed model id*: Ray routes it to a replica that has loaded that id when one exists,
  and loads it on another only when none has it or those that do are busy (Ray Serve's model
  multiplexing). Each replica holds at most ``adapters.max_loaded`` adapters, the same bound
  as its adapter pool, so what Ray believes loaded is what is in memory.

Every replica reads the adapter registry, the live store and a folder index from storage all
of them reach (one machine's disk, or a shared folder mounted at the same path on every
node); the registry's pointer update is an atomic rename, which such a folder keeps. A
pgvector index is one database for all of them.

A replica that dies during a request (killed, out of memory) fails that request's call; the
ingress sends it once more, to a live replica, and answers the client once: with the second
answer, or with a 503 when that fails too. A request is never answered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.errors import (
    AdapterError,
    AdapterNotFoundError,
    ClusterError,
    FeedbackError,
    RagtuneError,
    RequestError,
)
from ragtune.serve.scheduler import QueueFullError, Ticket

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ragtune.assistant import Question
    from ragtune.config import RagtuneConfig
    from ragtune.generate.protocol import GeneratorStatus
    from ragtune.generate.registry import AdapterEntry
    from ragtune.live.recorder import LiveRecorder
    from ragtune.live.store import FeedbackRecord
    from ragtune.serve.metrics import ServerMetrics
    from ragtune.types import AdapterChoice, Answer, TenantDefault

__all__ = ["ConfigFront", "RayBackend", "RayServeSettings", "deploy", "serve_on_ray"]

log = logging.getLogger("ragtune.serve")

APP_NAME = "ragtune"


@dataclass(frozen=True)
class RayServeSettings:
    """How the app is laid out on Ray Serve."""

    replicas: int = 2
    """Model replicas, each a whole Assistant."""
    cpus_per_replica: float = 1.0
    """CPUs each model replica reserves (without GPUs); torch uses that many threads."""
    gpus_per_replica: float = 0.0
    """GPUs each model replica reserves; 0 on a CPU cluster."""
    requests_per_replica: int = 0
    """Requests a model replica takes at once; 0: one batch (``generator.max_batch_size``).
    Beyond it requests wait in Ray's router, which may send them to another replica (loading
    their adapter there): a replica holding many busy tenants' adapters sheds load instead of
    queueing everything itself."""

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ClusterError(f"replicas must be at least 1, got {self.replicas}")
        if self.cpus_per_replica < 0 or self.gpus_per_replica < 0:
            raise ClusterError("cpus_per_replica and gpus_per_replica cannot be negative")
        if self.requests_per_replica < 0:
            raise ClusterError("requests_per_replica cannot be negative (0: one batch)")


# ---- what a model replica returns ----------------------------------------------------------


@dataclass(frozen=True)
class ReplicaReply:
    """One answer from a model replica, with how it was served."""

    answer: Answer | None
    error: tuple[str, str] | None
    """(error class name, message) when the question was refused or failed."""
    replica: str
    held: bool
    """The replica held the request's adapter already (it did not load it for this request)."""
    queue_seconds: float
    status: GeneratorStatus


_ERRORS: dict[str, type[RagtuneError]] = {
    cls.__name__: cls
    for cls in (AdapterNotFoundError, AdapterError, RequestError, FeedbackError, RagtuneError)
}


def _error_of(name: str, message: str) -> RagtuneError:
    """An error raised in a replica, rebuilt here as the closest class the app maps to HTTP."""
    return _ERRORS.get(name, RagtuneError)(message)


class ModelReplica:
    """A Ray Serve replica: one Assistant behind its batching scheduler (see the module doc).

    Deployed through :func:`_model_deployment`, which adds Ray's multiplexed loader.
    """

    def __init__(self, config: dict[str, Any], index: str | None) -> None:
        from ray import serve

        from ragtune.assistant import Assistant
        from ragtune.config import RagtuneConfig
        from ragtune.serve.scheduler import Scheduler

        cfg = RagtuneConfig.model_validate(config)
        self.assistant = Assistant.from_config(cfg, index=Path(index) if index else None)
        status = self.assistant.generator.status()
        self.scheduler = Scheduler(
            self.assistant,
            max_queue=cfg.serve.max_queue,
            max_batch=status.max_batch_size,
            batch_wait=cfg.serve.batch_wait_ms / 1000,
        )
        self.scheduler.start()
        self.replica = serve.get_replica_context().replica_id.unique_id
        self.loads = 0

    async def load_adapter(self, model_id: str) -> str:
        """Bring the adapter ``model_id`` names into memory (Ray calls this on a miss)."""
        from ragtune.types import parse_adapter_choice

        choice = parse_adapter_choice(model_id)
        await asyncio.to_thread(self.assistant.generator.load_adapter, choice)
        self.loads += 1
        return model_id

    async def answer(self, question: Question) -> ReplicaReply:
        from ray import serve

        model_id = serve.get_multiplexed_model_id()
        before = self.loads
        try:
            await self._adapter(model_id)
        except RagtuneError as exc:
            return self._reply(None, exc, held=False, queue_seconds=0.0)
        held = self.loads == before
        try:
            ticket = self.scheduler.submit(question)
        except QueueFullError as exc:
            return self._reply(None, RagtuneError(str(exc)), held=held, queue_seconds=0.0)
        try:
            outcome = await ticket.future
        except asyncio.CancelledError:  # the ingress gave up on it: stop generating it
            ticket.cancelled = True
            raise
        if isinstance(outcome, BaseException):
            return self._reply(None, outcome, held=held, queue_seconds=ticket.queue_seconds)
        return self._reply(outcome, None, held=held, queue_seconds=ticket.queue_seconds)

    async def _adapter(self, model_id: str) -> str:
        raise NotImplementedError  # replaced by Ray's multiplexed loader in _model_deployment

    def _reply(
        self,
        answer: Answer | None,
        error: BaseException | None,
        *,
        held: bool,
        queue_seconds: float,
    ) -> ReplicaReply:
        failure = None
        if error is not None:
            name = type(error).__name__ if isinstance(error, RagtuneError) else "RagtuneError"
            text = str(error) if isinstance(error, RagtuneError) else f"{type(error).__name__}"
            failure = (name, text)
            if not isinstance(error, RagtuneError):
                log.error("a request failed in replica %s: %r", self.replica, error)
        return ReplicaReply(
            answer, failure, self.replica, held, queue_seconds, self.assistant.generator.status()
        )

    def __del__(self) -> None:
        scheduler = getattr(self, "scheduler", None)
        if scheduler is not None:
            scheduler.stop()
        assistant = getattr(self, "assistant", None)
        if assistant is not None:
            assistant.close()


# ---- the ingress side ------------------------------------------------------------------------


class ConfigFront:
    """The app's :class:`~ragtune.serve.backend.Front` without a model: adapters are checked
    and listed from the registry, feedback kept in the live store, as the Assistant does."""

    def __init__(self, cfg: RagtuneConfig) -> None:
        from ragtune.ingest.pii import scrub
        from ragtune.live.recorder import LiveRecorder
        from ragtune.telemetry import Telemetry

        self.registry = cfg.adapters.registry()
        self.defaults = cfg.assistant_policy().adapters
        redact = (lambda text: scrub(text).text) if cfg.guard.redact_pii else None
        self.live: LiveRecorder | None = (
            LiveRecorder(
                cfg.live_settings(),
                registry=self.registry,
                telemetry=Telemetry(cfg.telemetry.events, spans=cfg.telemetry.spans),
                redact=redact,
            )
            if cfg.live.root is not None
            else None
        )

    def adapter_for(
        self, tenant: str | None, requested: AdapterChoice | TenantDefault
    ) -> AdapterChoice:
        from ragtune.generate.pool import adapter_card
        from ragtune.policy import resolve_adapter

        return resolve_adapter(
            self.defaults, lambda choice: adapter_card(self.registry, choice), tenant, requested
        )

    def adapters(self, tenant: str) -> list[AdapterEntry]:
        return self.registry.list(tenant)

    def feedback(
        self, response_id: str, rating: str, *, tenant: str | None, correction: str | None = None
    ) -> FeedbackRecord:
        from ragtune.live.recorder import keep_feedback

        return keep_feedback(self.live, response_id, rating, tenant=tenant, correction=correction)


class RayBackend:
    """The app's :class:`~ragtune.serve.backend.Backend` over the model deployment's handle.

    Holds at most ``max_waiting`` requests not yet answered (beyond it, 429 as the local
    server does); sends each with its concrete adapter as the multiplexed model id; retries
    once on a replica that died (see the module doc).
    """

    def __init__(
        self, handle: Any, front: ConfigFront, *, max_waiting: int, base_model: str
    ) -> None:
        self._handle = handle
        self._front = front
        self._max_waiting = max_waiting
        self._base_model = base_model
        self._waiting = 0
        self._stopping = False
        self._metrics: ServerMetrics | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._statuses: dict[str, GeneratorStatus] = {}
        self.routed = {"held": 0, "loaded": 0}
        self.retries = 0

    @property
    def depth(self) -> int:
        return self._waiting

    def start(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics

    def stop(self) -> None:
        self._stopping = True

    def submit(self, question: Question) -> Ticket:
        if self._stopping:
            raise RagtuneError("the server is shutting down: retry elsewhere")
        if self._waiting >= self._max_waiting:
            raise QueueFullError(self._waiting, retry_after=1)
        loop = asyncio.get_running_loop()
        ticket = Ticket(question, loop.create_future(), loop)
        self._waiting += 1
        task = loop.create_task(self._dispatch(ticket))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return ticket

    def status(self) -> GeneratorStatus:
        from ragtune.generate.protocol import GeneratorStatus

        seen = list(self._statuses.values())
        if not seen:
            return GeneratorStatus(self._base_model, "ray", 0, 0, 0, "unknown")
        return GeneratorStatus(
            base_model=seen[0].base_model,
            device=f"ray ({len(seen)} replicas seen)",
            max_batch_size=seen[0].max_batch_size,
            adapters_loaded=sum(s.adapters_loaded for s in seen),
            adapter_loads=sum(s.adapter_loads for s in seen),
            grounding=seen[0].grounding,
        )

    def health(self) -> dict[str, Any]:
        answered = self.routed["held"] + self.routed["loaded"]
        return {
            "engine": "ray",
            "replicas_seen": len(self._statuses),
            "routed_to_holding_replica": self.routed["held"],
            "routed_and_loaded": self.routed["loaded"],
            "held_share": round(self.routed["held"] / answered, 4) if answered else None,
            "replica_retries": self.retries,
        }

    async def _dispatch(self, ticket: Ticket) -> None:
        try:
            question = ticket.question
            try:
                model_id = str(self._front.adapter_for(question.tenant, question.adapter))
            except RagtuneError as exc:
                ticket.deliver(exc)
                return
            ticket.deliver(await self._call(ticket, model_id))
        except Exception as exc:  # a bug must fail its request, not leave it hanging
            log.exception("a request failed in the ingress")
            ticket.deliver(exc)
        finally:
            self._waiting -= 1

    async def _call(self, ticket: Ticket, model_id: str) -> Answer | BaseException:
        from ray.exceptions import RayActorError

        for attempt in (1, 2):
            if ticket.cancelled:
                return asyncio.CancelledError()
            response = self._handle.options(multiplexed_model_id=model_id).answer.remote(
                ticket.question
            )
            try:
                reply: ReplicaReply = await self._await(response, ticket)
            except RayActorError as exc:
                if attempt == 1 and not ticket.cancelled:
                    self.retries += 1
                    log.warning("a model replica died during a request; sending it again: %s", exc)
                    continue
                return RagtuneError(
                    "the model replica answering this request stopped, and so did the one it "
                    "was sent to next: retry in a moment"
                )
            return self._settle(ticket, reply)
        raise AssertionError("unreachable")

    async def _await(self, response: Any, ticket: Ticket) -> ReplicaReply:
        """The reply, cancelling the remote call when the client goes away."""
        waiter: asyncio.Future[ReplicaReply] = asyncio.ensure_future(_result(response))
        while True:
            done, _ = await asyncio.wait({waiter}, timeout=0.25)
            if done:
                return waiter.result()
            if ticket.cancelled:
                response.cancel()

    def _settle(self, ticket: Ticket, reply: ReplicaReply) -> Answer | BaseException:
        self._statuses[reply.replica] = reply.status
        ticket.started_at = ticket.enqueued_at + reply.queue_seconds
        self.routed["held" if reply.held else "loaded"] += 1
        if self._metrics is not None:
            self._metrics.adapter_routes.labels(str(reply.held).lower()).inc()
            if not reply.held:
                self._metrics.adapter_switches.inc()
        if reply.error is not None:
            return _error_of(*reply.error)
        assert reply.answer is not None
        return reply.answer


async def _result(response: Any) -> ReplicaReply:
    return await response


# ---- deployments -------------------------------------------------------------------------


def _model_deployment(
    settings: RayServeSettings, max_adapters: int, batch: int, replica: type[ModelReplica]
) -> Any:
    from ray import serve

    class RagtuneModel(replica):  # type: ignore[valid-type,misc]
        @serve.multiplexed(max_num_models_per_replica=max_adapters)
        async def _adapter(self, model_id: str) -> str:
            return await self.load_adapter(model_id)

    return serve.deployment(
        name="RagtuneModel",
        num_replicas=settings.replicas,
        ray_actor_options={
            "num_cpus": settings.cpus_per_replica,
            "num_gpus": settings.gpus_per_replica,
        },
        max_ongoing_requests=settings.requests_per_replica or batch,
        health_check_period_s=2,
        health_check_timeout_s=30,
    )(RagtuneModel)


def _ingress_deployment() -> Any:
    from ray import serve

    @serve.ingress()
    class RagtuneIngress:
        def __init__(self, config: dict[str, Any], model: Any) -> None:
            from ragtune.config import RagtuneConfig

            self.config = RagtuneConfig.model_validate(config)
            self.model = model

        def __serve_build_asgi_app__(self) -> FastAPI:
            return ingress_app(self.config, self.model)

    return serve.deployment(
        name="RagtuneIngress",
        num_replicas=1,
        ray_actor_options={"num_cpus": 0},
        max_ongoing_requests=1000,
    )(RagtuneIngress)


def ingress_app(cfg: RagtuneConfig, model: Any) -> FastAPI:
    """The app of the ingress: keys, tenants and limits here, answers from ``model``."""
    from ragtune.serve.app import serving_app
    from ragtune.serve.keys import KeyRing

    front = ConfigFront(cfg)
    backend = RayBackend(
        model,
        front,
        max_waiting=cfg.serve.max_queue,
        base_model=str(cfg.generator.model),
    )
    return serving_app(
        front,
        backend,
        cfg.serve,
        KeyRing.from_config(cfg.serve.keys),
        max_tokens=cfg.serve.max_tokens or cfg.generator.max_new_tokens,
    )


def deploy(
    cfg: RagtuneConfig,
    settings: RayServeSettings,
    *,
    host: str,
    port: int,
    index: Path | None = None,
    replica: type[ModelReplica] = ModelReplica,
) -> None:
    """Start Ray Serve's HTTP proxy on ``host:port`` and deploy the app on the Ray this process
    joined (:func:`ragtune.cluster.ray_session`); returns once every replica is up.
    ``replica`` is the model replica's class (tests give one that fails on purpose).

    Raises :class:`ClusterError` when the cluster has fewer CPUs or GPUs than the replicas
    reserve, or when a replica fails to start (a bad config, a missing index).
    """
    import ray
    from ray import serve

    resources = ray.cluster_resources()
    for kind, each in (("CPU", settings.cpus_per_replica), ("GPU", settings.gpus_per_replica)):
        need = each * settings.replicas
        if need > resources.get(kind, 0):
            raise ClusterError(
                f"{settings.replicas} replicas reserve {need:g} {kind}s and the Ray cluster "
                f"has {resources.get(kind, 0):g}: ask for fewer replicas (--replicas), or add "
                "nodes"
            )
    max_adapters = int(cfg.adapters.max_loaded)
    batch = int(cfg.generator.max_batch_size)
    model = _model_deployment(settings, max_adapters, batch, replica).bind(
        cfg.model_dump(mode="json"), str(index) if index is not None else None
    )
    app = _ingress_deployment().bind(cfg.model_dump(mode="json"), model)
    serve.start(http_options={"host": host, "port": port})
    try:
        serve.run(app, name=APP_NAME, route_prefix="/")  # returns once every replica is up
    except RuntimeError as exc:
        raise ClusterError(
            f"the ragtune app on Ray Serve failed to start: {exc}; the replicas' logs are "
            "under /tmp/ray/session_latest/logs"
        ) from exc


def serve_on_ray(
    cfg: RagtuneConfig,
    settings: RayServeSettings,
    *,
    host: str,
    port: int,
    index: Path | None,
    address: str | None,
) -> None:
    """``ragtune serve --engine ray``: deploy, then serve until interrupted."""
    from ragtune.cluster import ray_session

    # API keys given by environment variable are read in the ingress, on whichever node.
    key_vars = [key.key_env for key in cfg.serve.keys if key.key_env is not None]
    saved = {stop: signal.getsignal(stop) for stop in _STOP_SIGNALS}
    try:
        with ray_session(address, env_vars=key_vars):
            # Both stop the replicas gracefully, from the moment Ray is up (a signal while the
            # replicas start must not leave them running): SIGTERM (what a process manager or
            # `kill` sends; ray.init's own handler would exit with status 15) and SIGINT
            # (Ctrl-C, which a shell starting the command in the background leaves ignored).
            for stop in _STOP_SIGNALS:
                signal.signal(stop, _interrupt)
            try:
                deploy(cfg, settings, host=host, port=port, index=index)
                log.info(
                    "serving on Ray Serve at http://%s:%d with %d model replicas",
                    host,
                    port,
                    settings.replicas,
                )
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                log.info("stopping the replicas")
            finally:
                # A second signal must not cut the stop short (replicas left running).
                for stop in _STOP_SIGNALS:
                    signal.signal(stop, signal.SIG_IGN)
                _delete_app()
    finally:
        for stop, handler in saved.items():
            signal.signal(stop, handler)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _delete_app() -> None:
    """Drain and delete this command's app, and only it: other apps on a shared cluster, and
    Serve itself there, keep running (a local Ray this command started goes with it)."""
    from ray import serve
    from ray.serve.exceptions import RayServeException

    with contextlib.suppress(RayServeException):  # Serve never started: nothing to delete
        serve.delete(APP_NAME)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
