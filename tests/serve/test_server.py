"""The OpenAI-compatible server on tiny real parts, through real HTTP clients (openai, httpx)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragtune import Assistant
from ragtune.config import load_config
from ragtune.serve import KeyRing, create_app, hash_key
from tests.generate.conftest import build_adapter
from tests.generate.tiny import save_tiny
from tests.serve.server import running

ACME_KEY, GLOBEX_KEY = "rt-acme-test-key", "rt-globex-test-key"
ACME = {
    "returns.md": "# Returns\n\nYou can return any item within 30 days of delivery for a refund.\n",
    "warranty.md": "# Warranty\n\nEvery blender carries a two-year warranty on the motor.\n",
}
GLOBEX = {"pricing.md": "# Globex pricing\n\nGlobex charges 450 dollars for the platinum plan.\n"}
QUESTION = [{"role": "user", "content": "How many days do I have to return an item?"}]


def _register(root: Path, llama: Path, tenant: str, name: str, kind: str, seed: int) -> None:
    from ragtune.generate import AdapterRegistry

    folder = root / f"made-{tenant}-{name}-{seed}"
    build_adapter(llama, folder, kind, seed=seed, tenant=tenant, name=name)
    AdapterRegistry(root / "adapters").register(folder)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Any]:
    from ragtune.indexing import add_to_index, build_index

    root = tmp_path_factory.mktemp("serve")
    for tenant, docs in (("acme", ACME), ("globex", GLOBEX)):
        (root / tenant).mkdir()
        for name, text in docs.items():
            (root / tenant / name).write_text(text, encoding="utf-8")
    llama = save_tiny(root / "llama")
    raw: dict[str, Any] = {
        "embedder": {"model": str(tiny_model_dir), "device": "cpu"},
        "chunking": {"chunk_tokens": 64, "overlap_tokens": 8},
        "retriever": {"type": "hybrid", "index": str(root / "index"), "top_k": 2},
        "generator": {
            "model": str(llama),
            "grounding": "none",
            "device": "cpu",
            "max_new_tokens": 8,
            "max_batch_size": 4,
        },
        "adapters": {"root": str(root / "adapters")},
        "checker": {"signals": [], "on_unsupported": "flag"},
        "guard": {"max_question_chars": 300},
        "serve": {
            "keys": [
                {"tenant": "acme", "key_sha256": hash_key(ACME_KEY)},
                {"tenant": "globex", "key_env": "GLOBEX_KEY"},
            ],
            "max_queue": 3,
            "batch_wait_ms": 5,
            "max_body_bytes": 4096,
            "max_messages": 8,
        },
    }
    config = load_config(raw)
    embedder = config.embedder.build()
    build_index(
        [root / "acme"],
        root / "index",
        embedder=embedder,
        settings=config.build_settings(),
        tenant="acme",
    )
    add_to_index([root / "globex"], root / "index", embedder=embedder, tenant="globex")
    _register(root, llama, "acme", "support", "prefix", seed=1)  # v1, current
    _register(root, llama, "acme", "support", "prompt", seed=2)  # v2, not promoted
    _register(root, llama, "globex", "helper", "lora", seed=3)
    return {"root": root, "raw": raw, "config": config}


@pytest.fixture(scope="module")
def server(setup: dict[str, Any]) -> Iterator[dict[str, Any]]:
    config = setup["config"]
    keys = KeyRing.from_config(config.serve.keys, environ={"GLOBEX_KEY": GLOBEX_KEY})
    with Assistant.from_config(config) as assistant:
        app = create_app(assistant, config.serve, keys)
        with running(app) as url:
            yield {"url": url, "assistant": assistant, "app": app}


def _post(
    server: dict[str, Any], body: Any, key: str | None = ACME_KEY, **kw: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(
        f"{server['url']}/v1/chat/completions", json=body, headers=headers, timeout=60, **kw
    )


def _openai(server: dict[str, Any], key: str = ACME_KEY) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=f"{server['url']}/v1", api_key=key, max_retries=0, timeout=60)


def test_plain_completion_through_the_openai_client(server: dict[str, Any]) -> None:
    reply = _openai(server).chat.completions.create(model="acme/support", messages=QUESTION)
    assert reply.object == "chat.completion" and reply.model == "acme/support"
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
    extra = reply.model_extra or {}
    ragtune = extra["ragtune"]
    assert ragtune["adapter"] == "acme/support" and ragtune["adapter_version"] == 1
    assert set(ragtune) >= {"abstained", "grounded", "timings_ms", "dropped", "passages"}
    assert ragtune["timings_ms"]["total"] > 0 and "queue" in ragtune["timings_ms"]
    # retrieval stayed inside acme's documents
    assert ragtune["passages"] and all("acme" in p["source"] for p in ragtune["passages"])
    assert isinstance(extra["citations"], list)
    assert reply.usage is not None and reply.usage.prompt_tokens > 0


def test_streamed_completion_ends_with_citations(server: dict[str, Any]) -> None:
    chunks = list(
        _openai(server).chat.completions.create(
            model="acme", messages=QUESTION, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    last = chunks[-1]
    assert last.choices[0].finish_reason in ("stop", "length")
    extra = last.model_extra or {}
    assert "citations" in extra and extra["ragtune"]["adapter"] is None  # "acme": the base model
    assert last.usage is not None and last.usage.completion_tokens > 0
    plain = _post(server, {"model": "acme", "messages": QUESTION}).json()
    assert text == plain["choices"][0]["message"]["content"]  # same greedy answer either way


def test_raw_stream_is_server_sent_events_ending_in_done(server: dict[str, Any]) -> None:
    with httpx.stream(
        "POST",
        f"{server['url']}/v1/chat/completions",
        json={"model": "acme", "messages": QUESTION, "stream": True},
        headers={"Authorization": f"Bearer {ACME_KEY}"},
        timeout=60,
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    final = json.loads(lines[-2].removeprefix("data: "))
    assert final["object"] == "chat.completion.chunk" and "ragtune" in final


def test_a_key_reaches_only_its_tenant(server: dict[str, Any]) -> None:
    globex = {m.id for m in _openai(server, GLOBEX_KEY).models.list()}
    acme = {m.id for m in _openai(server, ACME_KEY).models.list()}
    assert globex == {"globex", "globex/helper"} and acme == {"acme", "acme/support"}
    theirs = _post(server, {"model": "acme/support", "messages": QUESTION}, key=GLOBEX_KEY)
    missing = _post(server, {"model": "acme/ghost", "messages": QUESTION}, key=GLOBEX_KEY)
    own_missing = _post(server, {"model": "globex/ghost", "messages": QUESTION}, key=GLOBEX_KEY)
    assert theirs.status_code == missing.status_code == own_missing.status_code == 404
    # the reply for another tenant's real model is the reply for a model that does not exist
    assert theirs.json()["error"]["message"].replace("acme/support", "X") == missing.json()[
        "error"
    ]["message"].replace("acme/ghost", "X")
    assert (
        httpx.get(
            f"{server['url']}/v1/models/acme/support",
            headers={"Authorization": f"Bearer {GLOBEX_KEY}"},
        ).status_code
        == 404
    )
    ok = _post(server, {"model": "globex/helper", "messages": QUESTION}, key=GLOBEX_KEY).json()
    assert all("globex" in p["source"] for p in ok["ragtune"]["passages"])
    for key in (None, "rt-wrong"):
        refused = _post(server, {"model": "acme", "messages": QUESTION}, key=key)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{not json", "not valid JSON"),
        ({"model": "acme"}, "messages"),
        ({"model": "acme", "messages": []}, "messages"),
        ({"model": "acme", "messages": [{"role": "robot", "content": "hi"}]}, "role"),
        ({"model": "acme", "messages": [{"role": "assistant", "content": "hi"}]}, "user"),
        ({"model": "acme", "messages": QUESTION, "n": 2}, "n"),
        ({"model": "../etc", "messages": QUESTION}, "tenant/adapter"),
        ({"model": "acme", "messages": QUESTION, "max_tokens": 500}, "max_tokens"),
        ({"model": "acme", "messages": QUESTION * 9}, "more than the limit of 8"),
        ({"model": "acme", "messages": [{"role": "user", "content": "x" * 400}]}, "characters"),
    ],
)
def test_bad_requests_get_400_with_a_message(
    server: dict[str, Any], body: Any, expected: str
) -> None:
    if isinstance(body, str):
        response = httpx.post(
            f"{server['url']}/v1/chat/completions",
            content=body,
            headers={"Authorization": f"Bearer {ACME_KEY}", "Content-Type": "application/json"},
        )
    else:
        response = _post(server, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert expected in error["message"] and error["type"] == "invalid_request_error"


def test_oversize_bodies_are_refused_with_413(server: dict[str, Any]) -> None:
    big = {"model": "acme", "messages": [{"role": "user", "content": "x" * 5000}]}
    response = _post(server, big)
    assert response.status_code == 413 and "max_body_bytes" in response.json()["error"]["message"]

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield json.dumps(big).encode()[:3000]
        yield json.dumps(big).encode()[3000:]

    response = httpx.post(
        f"{server['url']}/v1/chat/completions",
        content=chunked(),
        headers={"Authorization": f"Bearer {ACME_KEY}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_a_burst_beyond_the_queue_gets_429s_and_the_rest_complete(
    server: dict[str, Any],
) -> None:
    generator = server["assistant"].generator

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=120) as client:
            body = {"model": "acme/support", "messages": QUESTION}
            headers = {"Authorization": f"Bearer {ACME_KEY}"}
            sends = [
                client.post(f"{server['url']}/v1/chat/completions", json=body, headers=headers)
                for _ in range(12)
            ]
            return list(await asyncio.gather(*sends))

    with generator._lock:  # the model is busy: hold it while the burst arrives
        loop = asyncio.new_event_loop()
        task = loop.create_task(burst())
        loop.run_until_complete(asyncio.sleep(1.0))
    responses = loop.run_until_complete(task)
    loop.close()
    statuses = [r.status_code for r in responses]
    assert set(statuses) == {200, 429}, statuses
    # at most one batch in the worker and max_queue waiting were accepted
    assert 3 <= statuses.count(200) <= 3 + generator.max_batch_size
    for r in responses:
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["error"]["code"] == "queue_full"
        else:
            assert r.json()["choices"][0]["message"]["content"]


def test_a_promoted_version_is_used_by_the_next_request(server: dict[str, Any]) -> None:
    from ragtune.generate import AdapterRegistry

    registry = server["assistant"].registry
    assert isinstance(registry, AdapterRegistry)

    def version() -> int:
        reply = _post(server, {"model": "acme/support", "messages": QUESTION}).json()
        return int(reply["ragtune"]["adapter_version"])

    assert version() == 1
    registry.promote("acme/support", 2)
    try:
        assert version() == 2
        pinned = _post(server, {"model": "acme/support@v1", "messages": QUESTION}).json()
        assert pinned["ragtune"]["adapter_version"] == 1
    finally:
        registry.rollback("acme/support")
    assert version() == 1


def test_a_client_that_goes_away_is_not_answered(server: dict[str, Any]) -> None:
    import time

    metrics = server["app"].state.metrics
    cancelled, answered = metrics.cancelled._value, metrics.completions.labels("acme", "true")
    before, answered_before = cancelled.get(), answered._value.get()
    generator = server["assistant"].generator
    with generator._lock:  # queued behind a busy model, then the client leaves
        with httpx.stream(
            "POST",
            f"{server['url']}/v1/chat/completions",
            json={"model": "acme", "messages": QUESTION, "stream": True},
            headers={"Authorization": f"Bearer {ACME_KEY}"},
            timeout=60,
        ) as response:
            assert '"role": "assistant"' in next(response.iter_lines())
        for _ in range(100):
            if cancelled.get() > before:
                break
            time.sleep(0.05)
    time.sleep(0.5)  # the worker had its chance to answer it, and must not have
    assert cancelled.get() == before + 1 and answered._value.get() == answered_before


def test_health_and_prometheus_metrics(server: dict[str, Any]) -> None:
    health = httpx.get(f"{server['url']}/healthz").json()
    assert health["status"] == "ok" and health["queue_depth"] == 0
    _post(server, {"model": "acme/support", "messages": QUESTION})
    text = httpx.get(f"{server['url']}/metrics").text
    for name in (
        'ragtune_requests_total{route="/v1/chat/completions",status="200"}',
        'ragtune_stage_seconds_bucket{le="0.01",stage="retrieve"}',
        "ragtune_request_seconds_count",
        "ragtune_queue_depth 0.0",
        "ragtune_adapter_switches_total",
        "ragtune_batch_size_count",
        'ragtune_completions_total{stream="false",tenant="acme"}',
    ):
        assert name in text, name
