"""`ragtune serve` as a user runs it (a child process, the embedded models, the sample corpus),
asked through the real OpenAI client: cited, checked answers, plain and streamed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ragtune.config import load_config
from ragtune.indexing import build_index
from ragtune.serve.child import served

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
KEY = "rt-integration-key"
SHIPPING = "How much does express shipping cost?"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("served")
    config = load_config(ROOT / "configs" / "serve.yaml")
    build_index(
        [ROOT / "examples" / "acme"],
        root / "index",
        embedder=config.embedder.build(),
        settings=config.build_settings(),
        tenant="acme",
    )
    raw = config.model_dump(mode="json")
    raw["retriever"]["index"] = str(root / "index")
    raw["adapters"]["root"] = str(root / "adapters")
    raw["live"]["root"] = str(root / "live")
    (root / "serve.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    with served(root / "serve.yaml", root / "server.log", env={"RAGTUNE_KEY_ACME": KEY}) as url:
        yield url  # leaving checks that it shut down cleanly (exit status 0)


def _client(url: str) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=120)


def test_a_cited_checked_answer_over_http(server: str) -> None:
    reply = _client(server).chat.completions.create(
        model="acme", messages=[{"role": "user", "content": SHIPPING}]
    )
    text = reply.choices[0].message.content or ""
    extra = reply.model_extra or {}
    assert "8.50" in text and "[1]" in text, text
    assert extra["ragtune"]["grounded"] and not extra["ragtune"]["abstained"]
    cited = [c for c in extra["citations"] if c["verdict"] == "supported"]
    assert cited and all(c["source"].endswith("shipping.md") for c in cited)
    assert all(c["quote"] and c["span"][1] > c["span"][0] for c in cited)


def test_feedback_on_an_answer_is_taken(server: str) -> None:
    reply = _client(server).chat.completions.create(
        model="acme", messages=[{"role": "user", "content": SHIPPING}], user="alice"
    )
    taken = httpx.post(
        f"{server}/v1/feedback",
        json={"response_id": reply.id, "rating": "up"},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    assert taken.status_code == 200 and taken.json()["rating"] == "up"


def test_the_streamed_answer_is_the_same_and_ends_with_citations(server: str) -> None:
    stream = _client(server).chat.completions.create(
        model="acme", messages=[{"role": "user", "content": SHIPPING}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    plain = _client(server).chat.completions.create(
        model="acme", messages=[{"role": "user", "content": SHIPPING}]
    )
    assert text == plain.choices[0].message.content
    final = chunks[-1].model_extra or {}
    assert final["citations"] and final["ragtune"]["grounded"]


def test_no_key_no_answer(server: str) -> None:
    response = httpx.post(
        f"{server}/v1/chat/completions",
        json={"model": "acme", "messages": [{"role": "user", "content": SHIPPING}]},
    )
    assert response.status_code == 401
