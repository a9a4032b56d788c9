"""A running server serves what `index remove`/`index add` committed, without a restart
(issue 14, item 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from ragtune import Assistant
from ragtune.config import load_config
from ragtune.serve import KeyRing, create_app, hash_key
from tests.generate.tiny import save_tiny
from tests.serve.server import running

KEY = "rt-acme-live-test-key"
DOCS = {
    "returns.md": "# Returns\n\nYou can return any item within 30 days of delivery for a refund.\n",
    "returns-old.md": "# Old returns\n\nReturns were accepted within 90 days until last year.\n",
}


def _passages(url: str) -> list[dict[str, Any]]:
    reply = httpx.post(
        f"{url}/v1/chat/completions",
        json={
            "model": "acme",
            "messages": [{"role": "user", "content": "Returns: how many days?"}],
        },
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    return list(reply.json()["ragtune"]["passages"])


def test_a_running_server_stops_serving_a_removed_document(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    from ragtune.indexing import add_to_index, build_index, remove_from_index

    docs = tmp_path / "acme"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    config = load_config(
        {
            "embedder": {"model": str(tiny_model_dir), "device": "cpu"},
            "chunking": {"chunk_tokens": 64, "overlap_tokens": 8},
            "retriever": {"type": "hybrid", "index": str(tmp_path / "index"), "top_k": 3},
            "generator": {
                "model": str(save_tiny(tmp_path / "llama")),
                "grounding": "none",
                "max_new_tokens": 4,
            },
            "checker": {"signals": [], "on_unsupported": "flag"},
            "serve": {"keys": [{"tenant": "acme", "key_sha256": hash_key(KEY)}]},
        }
    )
    embedder = config.embedder.build()
    build_index(
        [docs],
        tmp_path / "index",
        embedder=embedder,
        settings=config.build_settings(),
        tenant="acme",
    )
    keys = KeyRing.from_config(config.serve.keys, environ={})
    with (
        Assistant.from_config(config) as assistant,
        running(create_app(assistant, config.serve, keys)) as url,
    ):
        assert any(p["source"].endswith("returns-old.md") for p in _passages(url))

        remove_from_index([str(docs / "returns-old.md")], tmp_path / "index", tenant="acme")
        sources = [p["source"] for p in _passages(url)]
        assert sources and not any(s.endswith("returns-old.md") for s in sources)

        (tmp_path / "new.md").write_text("# Exchanges\n\nExchanges are free within 60 days.\n")
        add_to_index([tmp_path / "new.md"], tmp_path / "index", embedder=embedder, tenant="acme")
        assert any(p["source"].endswith("new.md") for p in _passages(url))
