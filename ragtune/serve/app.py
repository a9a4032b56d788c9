"""The ASGI app of ``ragtune serve`` (FastAPI): OpenAI chat completions over many tenants.

Routes: ``POST /v1/chat/completions`` (plain or streamed), ``POST /v1/feedback`` (a rating of
an answer of the key's tenant, by the completion's ``id``), ``GET /v1/models`` (the models the
key may use), ``GET /healthz``, ``GET /metrics`` (Prometheus text). Every ``/v1`` route needs
``Authorization: Bearer KEY``; a key acts for one tenant, and another tenant's model is a 404,
the same answer as a model that does not exist.

``model`` is ``tenant`` (the tenant's default: the configured adapter when it is the tenant's,
else the base model), ``tenant/name`` (the adapter's current version, read on every request, so
a promotion or rollback takes effect on the next one) or ``tenant/name@vN`` (pinned). While a
canary of the adapter runs, unpinned requests are split by the request's ``user`` (sticky).

Streaming is verified streaming: the role chunk is sent at once, and the answer's sentences
when the citation checker has judged them, so no sentence that the checker would drop ever
reaches the client; citations and the ``ragtune`` object come in the final chunk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import ValidationError

from ragtune.assistant import Question
from ragtune.errors import (
    AdapterError,
    AdapterNotFoundError,
    FeedbackError,
    RagtuneError,
    RequestError,
    ResponseNotFoundError,
)
from ragtune.serve import protocol
from ragtune.serve.backend import Backend, Front, LocalBackend
from ragtune.serve.keys import KeyRing
from ragtune.serve.metrics import ServerMetrics
from ragtune.serve.scheduler import QueueFullError, Ticket
from ragtune.types import TENANT_DEFAULT, AdapterRef, TenantDefault, parse_adapter_choice

if TYPE_CHECKING:
    from ragtune.assistant import Assistant
    from ragtune.serve.settings import ServeSettings
    from ragtune.types import AdapterChoice, Answer

__all__ = ["create_app", "serving_app"]

log = logging.getLogger("ragtune.serve")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class ApiError(Exception):
    """An error reply in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(
            protocol.error_body(self.message, self.kind, self.code),
            status_code=self.status,
            headers=self.headers,
        )


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"the request body is larger than {limit} bytes: send a shorter conversation "
        "(or raise serve.max_body_bytes)",
        code="request_too_large",
    )


class BodyLimit:
    """Refuse bodies over ``limit`` bytes, by their Content-Length or as they arrive."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(self.limit).response()(scope, receive, send)
            return
        received = 0

        async def counted() -> MutableMapping[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _too_large(self.limit)
            return message

        await self.app(scope, counted, send)


def create_app(assistant: Assistant, settings: ServeSettings, keys: KeyRing) -> FastAPI:
    """The app over one model in this process; its scheduler starts and stops with the app."""
    return serving_app(
        assistant,
        LocalBackend(assistant, settings),
        settings,
        keys,
        max_tokens=settings.max_tokens or assistant.policy.decoding.max_new_tokens,
    )


def serving_app(
    front: Front, backend: Backend, settings: ServeSettings, keys: KeyRing, *, max_tokens: int
) -> FastAPI:
    """The app over any backend (:mod:`ragtune.serve.backend`): ``front`` checks adapters and
    keeps feedback, ``backend`` answers; it starts and stops with the app's lifespan.
    ``max_tokens`` is the most new tokens a request may ask for."""
    started = time.time()
    metrics = ServerMetrics(lambda: backend.depth)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        backend.start(metrics)
        log.info("serving %s for tenants %s", backend.status().base_model, sorted(keys.tenants))
        try:
            yield
        finally:
            await asyncio.to_thread(backend.stop)

    app = FastAPI(title="ragtune", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.backend = backend
    app.state.metrics = metrics
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.middleware("http")
    async def count(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        route = request.url.path if request.url.path in _ROUTES else "other"
        metrics.requests.labels(route, str(response.status_code)).inc()
        if response.status_code in (400, 401, 404, 413, 422, 429):
            metrics.rejected.labels(str(response.status_code)).inc()
        return response

    def tenant_of(request: Request) -> str:
        tenant = keys.tenant_for(request.headers.get("authorization"))
        if tenant is None:
            raise ApiError(
                401,
                "no valid API key: send Authorization: Bearer YOUR_KEY",
                "authentication_error",
                "invalid_api_key",
                {"WWW-Authenticate": "Bearer"},
            )
        return tenant

    def adapter_for(model: str, tenant: str) -> AdapterChoice | TenantDefault:
        """What ``model`` asks for: ``tenant`` alone is the tenant's default adapter,
        ``tenant/name[@vN]`` one of its registered adapters; anything else is a 404, the same
        reply for another tenant's adapter as for one that does not exist."""
        if model == tenant:
            return TENANT_DEFAULT
        try:
            requested = parse_adapter_choice(model)
        except ValueError as exc:
            raise _no_model(model) from exc
        if not isinstance(requested, AdapterRef):  # folders and "none" are not for HTTP
            raise _no_model(model)
        try:
            front.adapter_for(tenant, requested)
        except AdapterNotFoundError as exc:
            raise _no_model(model) from exc
        return requested

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        now = backend.status()
        return {
            "status": "ok",
            "model": now.base_model,
            "grounding": now.grounding,
            "device": now.device,
            "queue_depth": backend.depth,
            "adapters_loaded": now.adapters_loaded,
            **backend.health(),
        }

    @app.get("/metrics")
    async def prometheus() -> Response:
        return PlainTextResponse(
            metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        tenant = tenant_of(request)
        return {"object": "list", "data": _models(front, backend, tenant, started)}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str, request: Request) -> dict[str, Any]:
        tenant = tenant_of(request)
        for entry in _models(front, backend, tenant, started):
            if entry["id"] == model_id:
                return entry
        raise _no_model(model_id)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> Response:
        arrived = time.perf_counter()
        tenant = tenant_of(request)
        body = await _read_request(request)
        if len(body.messages) > settings.max_messages:
            raise ApiError(
                400,
                f"{len(body.messages)} messages, more than the limit of {settings.max_messages}: "
                "send fewer (only the last user message is used)",
            )
        limit = body.token_limit
        if limit is not None and limit > max_tokens:
            raise ApiError(
                400,
                f"max_tokens {limit} is more than this server allows ({max_tokens}): ask for "
                "fewer (or raise serve.max_tokens and generator.max_new_tokens)",
                code="max_tokens_too_large",
            )
        try:
            text = protocol.question_of(body)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from exc
        adapter = adapter_for(body.model, tenant)
        question = Question(
            text,
            tenant=tenant,
            adapter=adapter,
            max_new_tokens=limit,
            user=body.user,
            response_id=protocol.new_completion_id(),
        )
        try:
            ticket = backend.submit(question)
        except QueueFullError as exc:
            raise ApiError(
                429,
                str(exc),
                "rate_limit_error",
                "queue_full",
                {"Retry-After": str(exc.retry_after)},
            ) from exc
        except RagtuneError as exc:
            raise ApiError(503, str(exc), "server_error", "shutting_down") from exc
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(
                _stream(ticket, body.model, tenant, arrived, include_usage),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        answer = await _wait(ticket, request)
        metrics.answered(answer, tenant, ticket.queue_seconds, stream=False)
        metrics.latency.labels("false").observe(time.perf_counter() - arrived)
        _log(tenant, body.model, answer, arrived, stream=False)
        return JSONResponse(protocol.completion(answer, body.model, ticket.queue_seconds))

    @app.post("/v1/feedback")
    async def feedback(request: Request) -> dict[str, Any]:
        """A rating of one of the key's tenant's answers; another tenant's answer is a 404, the
        same reply as an id that never existed."""
        tenant = tenant_of(request)
        body = await _read_feedback(request)
        if front.live is None:
            raise ApiError(
                501,
                "this server keeps no feedback: set live.root in its config",
                code="feedback_disabled",
            )
        try:
            record = await asyncio.to_thread(
                front.feedback,
                body.response_id,
                body.rating,
                tenant=tenant,
                correction=body.correction,
            )
        except ResponseNotFoundError as exc:
            raise ApiError(404, str(exc), code="response_not_found") from exc
        except FeedbackError as exc:
            raise ApiError(400, str(exc)) from exc
        metrics.rated(tenant, record.adapter, record.version, record.rating)
        return {
            "object": "feedback",
            "response_id": record.response_id,
            "rating": record.rating,
            "corrected": record.correction is not None,
            "adapter": record.adapter,
            "adapter_version": record.version,
        }

    async def _wait(ticket: Ticket, request: Request | None) -> Answer:
        deadline = time.monotonic() + settings.request_timeout_s
        while True:
            done, _ = await asyncio.wait({ticket.future}, timeout=0.2)
            if done:
                return _answer_or_raise(ticket.future.result(), str(ticket.question.adapter))
            if request is not None and await request.is_disconnected():
                ticket.cancelled = True
                metrics.cancelled.inc()
                raise ApiError(499, "the client closed the request", code="client_closed")
            if time.monotonic() > deadline:
                ticket.cancelled = True
                metrics.cancelled.inc()
                raise ApiError(
                    504,
                    f"no answer within {settings.request_timeout_s:g} s: the server is "
                    "overloaded; retry later",
                    "server_error",
                    "timeout",
                )

    async def _stream(
        ticket: Ticket, model: str, tenant: str, arrived: float, include_usage: bool
    ) -> AsyncIterator[str]:
        completion_id = ticket.question.response_id
        try:
            yield _event(protocol.role_chunk(completion_id, model))
            try:
                answer = await _wait(ticket, None)
            except ApiError as exc:
                yield _event(protocol.error_body(exc.message, exc.kind, exc.code))
                return
            for piece in protocol.text_pieces(answer.text):
                yield _event(protocol.text_chunk(completion_id, model, piece))
            yield _event(
                protocol.final_chunk(
                    completion_id, model, answer, ticket.queue_seconds, include_usage=include_usage
                )
            )
            yield "data: [DONE]\n\n"
            metrics.answered(answer, tenant, ticket.queue_seconds, stream=True)
            metrics.latency.labels("true").observe(time.perf_counter() - arrived)
            _log(tenant, model, answer, arrived, stream=True)
        finally:
            if not ticket.future.done():  # the client went away: stop its generation
                ticket.cancelled = True
                metrics.cancelled.inc()

    return app


_ROUTES = frozenset({"/v1/chat/completions", "/v1/feedback", "/v1/models", "/healthz", "/metrics"})


def _event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _no_model(model: str) -> ApiError:
    return ApiError(
        404,
        f"the model {model!r} does not exist or this key cannot use it: GET /v1/models lists "
        "the models it can",
        code="model_not_found",
    )


async def _read_request(request: Request) -> protocol.ChatCompletionRequest:
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON ({exc}): send a JSON object") from exc
    try:
        return protocol.ChatCompletionRequest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise ApiError(400, f"the request is not a valid chat completion: {problems}") from exc


async def _read_feedback(request: Request) -> protocol.FeedbackRequest:
    raw = await request.body()
    how = (
        'send {"response_id": the id of the chat completion, "rating": "up" or "down", '
        '"correction": optional text}'
    )
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON ({exc}): {how}") from exc
    try:
        return protocol.FeedbackRequest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise ApiError(400, f"the feedback is not valid: {problems}; {how}") from exc


def _answer_or_raise(outcome: Answer | BaseException, adapter: str) -> Answer:
    if not isinstance(outcome, BaseException):
        return outcome
    if isinstance(outcome, asyncio.CancelledError):
        raise ApiError(499, "the request was cancelled", code="cancelled")
    if isinstance(outcome, AdapterNotFoundError):
        raise _no_model(adapter)
    if isinstance(outcome, RequestError):
        raise ApiError(400, str(outcome))
    if isinstance(outcome, AdapterError):
        raise ApiError(500, f"the adapter could not be used: {outcome}", "server_error")
    if isinstance(outcome, RagtuneError):
        raise ApiError(500, str(outcome), "server_error")
    log.error("a request failed: %r", outcome)
    raise ApiError(500, "the server failed to answer; it was logged", "server_error")


def _models(front: Front, backend: Backend, tenant: str, created: float) -> list[dict[str, Any]]:
    base = backend.status().base_model
    entries = [protocol.model_entry(tenant, created, {"adapter": None, "base_model": base})]
    for entry in front.adapters(tenant):
        entries.append(
            protocol.model_entry(
                f"{entry.tenant}/{entry.name}",
                created,
                {
                    "adapter": entry.kind,
                    "current_version": entry.current,
                    "versions": list(entry.versions),
                    "canary": (
                        None
                        if entry.canary is None
                        else {"version": entry.canary.version, "share": entry.canary.plan.share}
                    ),
                    "base_model": base,
                },
            )
        )
    return entries


def _log(tenant: str, model: str, answer: Answer, arrived: float, *, stream: bool) -> None:
    log.info(
        "completion tenant=%s model=%s stream=%s abstained=%s grounded=%s ms=%.0f",
        tenant,
        model,
        stream,
        answer.abstained,
        answer.grounded,
        (time.perf_counter() - arrived) * 1000,
    )
