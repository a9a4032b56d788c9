"""Tenant isolation with a default adapter configured, for every adapter kind, at all three
layers: the Python API, the CLI and the HTTP server.

The fault this guards against: with ``acme``'s adapter configured as the default, ``globex``'s
questions were answered with it (one tenant's adapter, trained on its documents, serving
another). Now a tenant without a default gets the base model, and naming another tenant's
adapter is refused with the very message of an adapter that does not exist.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from ragtune import Assistant
from ragtune.errors import AdapterMismatchError, AdapterNotFoundError
from ragtune.types import AdapterRef
from tests.generate.conftest import build_adapter
from tests.generate.tiny import save_tiny
from tests.serve.server import running

KINDS = ("prompt", "prefix", "lora")
ACME_KEY, GLOBEX_KEY = "rt-acme-isolation", "rt-globex-isolation"
DOCS = {
    "acme": {"returns.md": "# Returns\n\nItems can be returned within 30 days of delivery.\n"},
    "globex": {"plans.md": "# Plans\n\nThe platinum plan costs 450 dollars a month.\n"},
}
QUESTION = "What does the platinum plan cost?"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Any]:
    from ragtune.config import load_config
    from ragtune.generate import AdapterRegistry
    from ragtune.indexing import add_to_index, build_index
    from ragtune.serve import hash_key

    root = tmp_path_factory.mktemp("isolation")
    for tenant, docs in DOCS.items():
        (root / tenant).mkdir()
        for name, text in docs.items():
            (root / tenant / name).write_text(text, encoding="utf-8")
    llama = save_tiny(root / "llama")
    registry = AdapterRegistry(root / "adapters")
    for seed, kind in enumerate(KINDS, start=1):
        made = build_adapter(llama, root / f"made-{kind}", kind, seed=seed, name=kind)
        registry.register(made)
    raw: dict[str, Any] = {
        "embedder": {"model": str(tiny_model_dir), "device": "cpu"},
        "chunking": {"chunk_tokens": 64, "overlap_tokens": 8},
        "retriever": {"type": "hybrid", "index": str(root / "index"), "top_k": 2},
        "generator": {
            "model": str(llama),
            "grounding": "none",
            "device": "cpu",
            "max_new_tokens": 6,
        },
        "adapters": {"root": str(root / "adapters")},
        "checker": {"signals": [], "on_unsupported": "flag"},
        "serve": {
            "keys": [
                {"tenant": "acme", "key_sha256": hash_key(ACME_KEY)},
                {"tenant": "globex", "key_sha256": hash_key(GLOBEX_KEY)},
            ]
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
    return {"root": root, "raw": raw}


def configured(setup: dict[str, Any], kind: str) -> dict[str, Any]:
    """The config with acme's adapter of ``kind`` as acme's default."""
    raw = json.loads(json.dumps(setup["raw"]))
    raw["adapters"]["defaults"] = {"acme": {"type": kind, "ref": f"acme/{kind}"}}
    return raw


def same_message(refused: Exception, unknown: Exception) -> bool:
    """Two refusals read the same once the adapter names in them are blanked out."""

    def blank(text: str) -> str:
        return re.sub(r"\b\w+/\w+\b", "NAME", str(text))

    return blank(str(refused)) == blank(str(unknown))


@pytest.fixture(scope="module", params=KINDS)
def assistant(request: pytest.FixtureRequest, setup: dict[str, Any]) -> Iterator[Any]:
    kind = request.param
    with Assistant.from_config(configured(setup, kind)) as built:
        yield kind, built


def test_python_api_other_tenant_gets_the_base_model(assistant: tuple[str, Any]) -> None:
    kind, built = assistant
    acme = built.ask("How long do returns take?", tenant="acme")
    globex = built.ask(QUESTION, tenant="globex")
    assert (acme.adapter, acme.adapter_version) == (f"acme/{kind}", 1)
    assert globex.adapter is None and globex.adapter_version is None
    assert built.ask(QUESTION).adapter is None  # without a tenant: adapters.without_tenant


def test_python_api_refuses_another_tenants_adapter_like_an_unknown_one(
    assistant: tuple[str, Any],
) -> None:
    kind, built = assistant
    with pytest.raises(AdapterNotFoundError) as refused:
        built.ask(QUESTION, tenant="globex", adapter=f"acme/{kind}")
    with pytest.raises(AdapterNotFoundError) as unknown:
        built.ask(QUESTION, tenant="globex", adapter="globex/nothing")
    assert same_message(refused.value, unknown.value), (refused.value, unknown.value)
    with pytest.raises(AdapterNotFoundError):  # the typed value too, not just strings
        built.ask(QUESTION, tenant="globex", adapter=AdapterRef("acme", kind, 1))


@pytest.mark.parametrize("kind", KINDS)
def test_cli_other_tenant_gets_the_base_model_and_foreign_adapters_are_refused(
    setup: dict[str, Any], kind: str, tmp_path: Path
) -> None:
    from ragtune.cli import app

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(configured(setup, kind)), encoding="utf-8")
    runner = CliRunner()
    base = ["ask", QUESTION, "--config", str(config), "--json"]
    answered = runner.invoke(app, [*base, "--tenant", "globex"])
    assert answered.exit_code == 0, answered.output
    assert json.loads(answered.stdout)["adapter"] is None
    own = runner.invoke(app, [*base, "--tenant", "acme"])
    assert json.loads(own.stdout)["adapter"] == f"acme/{kind}"
    refused = runner.invoke(app, [*base, "--tenant", "globex", "--adapter", f"acme/{kind}"])
    unknown = runner.invoke(app, [*base, "--tenant", "globex", "--adapter", "globex/nothing"])
    assert isinstance(refused.exception, AdapterNotFoundError)
    assert isinstance(unknown.exception, AdapterNotFoundError)
    assert same_message(refused.exception, unknown.exception)


@pytest.mark.parametrize("kind", KINDS)
def test_http_other_tenant_gets_the_base_model_and_foreign_adapters_are_404(
    setup: dict[str, Any], kind: str
) -> None:
    from ragtune.config import load_config
    from ragtune.serve import KeyRing, create_app

    config = load_config(configured(setup, kind))
    with Assistant.from_config(config) as built:
        app = create_app(built, config.serve, KeyRing.from_config(config.serve.keys))
        with running(app) as url:

            def ask(model: str, key: str) -> httpx.Response:
                body = {"model": model, "messages": [{"role": "user", "content": QUESTION}]}
                return httpx.post(
                    f"{url}/v1/chat/completions",
                    json=body,
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=60,
                )

            globex = ask("globex", GLOBEX_KEY)
            assert globex.status_code == 200 and globex.json()["ragtune"]["adapter"] is None
            acme = ask("acme", ACME_KEY)
            assert acme.json()["ragtune"]["adapter"] == f"acme/{kind}"
            refused, unknown = ask(f"acme/{kind}", GLOBEX_KEY), ask("globex/nothing", GLOBEX_KEY)
            assert refused.status_code == unknown.status_code == 404
            assert refused.json()["error"]["code"] == unknown.json()["error"]["code"]
            assert same_message(
                Exception(refused.json()["error"]["message"]),
                Exception(unknown.json()["error"]["message"]),
            )
            listed = httpx.get(
                f"{url}/v1/models", headers={"Authorization": f"Bearer {GLOBEX_KEY}"}
            ).json()
            assert [m["id"] for m in listed["data"]] == ["globex"]


def test_a_default_of_another_tenant_or_the_wrong_kind_fails_at_start_up(
    setup: dict[str, Any],
) -> None:
    raw = json.loads(json.dumps(setup["raw"]))
    made = setup["root"] / "made-lora"
    raw["adapters"]["defaults"] = {"globex": {"type": "lora", "path": str(made)}}  # acme's
    with pytest.raises(AdapterMismatchError, match="a tenant's default must be one of its own"):
        Assistant.from_config(raw)
    raw["adapters"]["defaults"] = {"acme": {"type": "prefix", "ref": "acme/lora"}}
    with pytest.raises(AdapterMismatchError, match="fix the type in the config"):
        Assistant.from_config(raw)
