"""Pure parts of the server: keys, the protocol's conversions, the config section."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ragtune.config import ApiKeyConfig, load_config
from ragtune.errors import ConfigError
from ragtune.serve import KeyRing, hash_key, new_key
from ragtune.serve.protocol import (
    ChatCompletionRequest,
    citations,
    completion,
    question_of,
    text_pieces,
)
from ragtune.types import Answer, Citation, ClaimVerdict, Passage, StageTimings


def test_keys_are_kept_hashed_and_map_to_one_tenant() -> None:
    key = new_key()
    assert key.startswith("rt-") and len(key) > 40 and new_key() != key
    ring = KeyRing.from_config(
        [
            ApiKeyConfig(tenant="acme", key_sha256=hash_key(key)),
            ApiKeyConfig(tenant="globex", key_env="GLOBEX"),
        ],
        environ={"GLOBEX": "rt-globex"},
    )
    assert key not in repr(ring) and "rt-globex" not in repr(ring)
    assert ring.tenant_for(f"Bearer {key}") == "acme"
    assert ring.tenant_for("bearer rt-globex") == "globex"
    for header in (None, "", key, f"Basic {key}", "Bearer ", "Bearer rt-other"):
        assert ring.tenant_for(header) is None
    assert ring.tenants == {"acme", "globex"}


def test_bad_key_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="GLOBEX"):
        KeyRing.from_config([ApiKeyConfig(tenant="globex", key_env="GLOBEX")], environ={})
    twice = [
        ApiKeyConfig(tenant="acme", key_sha256=hash_key("k")),
        ApiKeyConfig(tenant="globex", key_sha256=hash_key("k")),
    ]
    with pytest.raises(ConfigError, match="its own key"):
        KeyRing.from_config(twice)
    with pytest.raises(ConfigError, match="exactly one"):
        load_config({"serve": {"keys": [{"tenant": "acme"}]}})
    with pytest.raises(ConfigError, match="key_sha256"):
        load_config({"serve": {"keys": [{"tenant": "acme", "key_sha256": "plain-key"}]}})


def test_the_question_is_the_last_user_message() -> None:
    request = ChatCompletionRequest.model_validate(
        {
            "model": "acme/support@v2",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Earlier question?"},
                {"role": "assistant", "content": "Earlier answer."},
                {"role": "user", "content": [{"type": "text", "text": " What is the warranty? "}]},
            ],
            "temperature": 0.2,  # accepted and ignored, as other OpenAI fields
            "max_completion_tokens": 30,
        }
    )
    assert question_of(request) == "What is the warranty?" and request.token_limit == 30
    empty = ChatCompletionRequest.model_validate(
        {"model": "acme", "messages": [{"role": "user", "content": "  "}]}
    )
    with pytest.raises(ValueError, match="no text"):
        question_of(empty)


@pytest.mark.parametrize(
    "text",
    ["", "One sentence [1].", "First [1]. Second one [2][3].  Third? Fourth", "Ends with space. "],
)
def test_stream_pieces_join_back_to_the_text(text: str) -> None:
    pieces = text_pieces(text)
    assert "".join(pieces) == text and all(pieces)


def test_citations_and_completion_carry_passages_and_verdicts() -> None:
    passage = Passage(
        "c1", "d1", "Returns take 30 days.", 0.8, 1, "acme/returns.md", 10, 31, "Returns"
    )
    sentence = ClaimVerdict(
        "Returns take 30 days [1].",
        "Returns take 30 days.",
        0,
        25,
        (Citation(1, passage),),
        0.91,
        True,
        "supported",
    )
    answer = Answer(
        question="How long?",
        text=sentence.sentence,
        sentences=(sentence,),
        grounded=True,
        abstained=False,
        abstain_reason=None,
        passages=(passage,),
        cited=(passage,),
        timings=StageTimings(retrieve=0.01, total=0.5),
        adapter="acme/support",
        adapter_version=3,
        prompt_tokens=120,
        output_tokens=9,
        finish_reason="eos",
    )
    (entry,) = citations(answer)
    assert entry == {
        "marker": 1,
        "sentence": 0,
        "passage_id": "c1",
        "document_id": "d1",
        "source": "acme/returns.md",
        "title": "Returns",
        "span": [10, 31],
        "quote": "Returns take 30 days.",
        "verdict": "supported",
        "support": 0.91,
        "attributed": False,
    }
    body = completion(answer, "acme/support", queue_seconds=0.25)
    assert body["choices"][0]["message"]["content"] == sentence.sentence
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 120, "completion_tokens": 9, "total_tokens": 129}
    extension = body["ragtune"]
    assert extension["adapter_version"] == 3 and extension["grounded"]
    assert extension["timings_ms"]["queue"] == 250.0 and extension["timings_ms"]["retrieve"] == 10.0


def test_serve_refuses_to_start_without_a_usable_key(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ragtune.cli import app

    none = tmp_path / "none.yaml"
    none.write_text("serve: {keys: []}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["serve", "--config", str(none)])
    assert isinstance(result.exception, ConfigError) and "serve-key" in str(result.exception)
    unset = tmp_path / "unset.yaml"
    unset.write_text(
        "serve: {keys: [{tenant: acme, key_env: RAGTUNE_TEST_UNSET_KEY}]}\n", encoding="utf-8"
    )
    result = CliRunner().invoke(app, ["serve", "--config", str(unset)])
    assert isinstance(result.exception, ConfigError)
    assert "RAGTUNE_TEST_UNSET_KEY" in str(result.exception)


def test_serve_key_prints_a_new_key_and_the_config_line() -> None:
    from typer.testing import CliRunner

    from ragtune.cli import app

    result = CliRunner().invoke(app, ["serve-key", "acme"])
    assert result.exit_code == 0, result.output
    match = re.search(r"(rt-[A-Za-z0-9_-]{40,})", result.output)
    assert match is not None
    assert f"{{tenant: acme, key_sha256: {hash_key(match.group(1))}}}" in result.output
    bad = CliRunner().invoke(app, ["serve-key", "../x"])
    assert bad.exit_code == 2 and "not a valid name" in bad.output
