"""Training end to end on tiny models: every adapter kind trains, registers, loads and generates;
an interrupted run resumed from its checkpoint ends exactly where an uninterrupted one does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ragtune import Assistant
from ragtune.cli import app
from ragtune.errors import TrainingError
from ragtune.generate import AdapterRegistry
from tests.eval.records import QUESTIONS, UNANSWERABLE, tiny_pipeline, write_jsonl

ADAPTERS = {
    "prompt": {"type": "prompt", "num_virtual_tokens": 4},
    "prefix": {"type": "prefix", "num_virtual_tokens": 4},
    "lora": {
        "type": "lora",
        "r": 4,
        "alpha": 8,
        "dropout": 0.1,
        "target_modules": ["q_proj", "v_proj"],
    },
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("train")
    raw = tiny_pipeline(root, tiny_model_dir)
    raw["train"] = {
        "data": {"passages": 2, "gold_share": 0.8, "validation_share": 0.34},
        "loop": {
            "learning_rate": 1e-2,
            "batch_size": 2,
            "grad_accum": 2,
            "max_steps": 6,
            "eval_every": 2,
            "patience": 5,
            "checkpoint_every": 2,
            "max_length": 512,
            "warmup_share": 0.2,
        },
    }
    return {
        "root": root,
        "raw": raw,
        "questions": write_jsonl(root / "qa.jsonl", QUESTIONS),
        "unanswerable": write_jsonl(root / "u.jsonl", UNANSWERABLE),
    }


def _config(setup: dict[str, Any], kind: str, root: Path, **loop: Any) -> dict[str, Any]:
    raw = json.loads(json.dumps(setup["raw"]))
    raw["train"]["adapter"] = ADAPTERS[kind]
    raw["train"]["loop"].update(loop)
    raw["adapters"]["root"] = str(root / "adapters")
    return raw


@pytest.mark.parametrize("kind", ["prompt", "prefix", "lora"])
def test_each_kind_trains_registers_and_answers(
    setup: dict[str, Any], tmp_path: Path, kind: str
) -> None:
    from ragtune.train import train_adapter

    raw = _config(setup, kind, tmp_path)
    seen: list[Any] = []
    trained = train_adapter(
        raw,
        setup["questions"],
        tenant="acme",
        name="support",
        unanswerable=setup["unanswerable"],
        progress=seen.append,
    )
    card = trained.registered.card
    assert (card.ref, card.kind, trained.registered.current) == ("acme/support@v1", kind, True)
    assert card.training_data_sha256 and card.trainable_parameters > 0
    assert card.metrics["steps"] == 6 and card.metrics["tokens_per_second"] > 0
    assert card.metrics["validation_examples"] >= 1 and card.metrics["validation_loss"] > 0
    assert card.settings["loop"]["learning_rate"] == 1e-2 and card.settings["prompt"] == {
        "examples": False,
        "max_passages": 3,
        "passage_tokens": 128,
    }
    assert [p.step for p in seen] == [1, 2, 3, 4, 5, 6]
    assert seen[-1].loss < seen[0].loss * 1.5  # it trains, not diverges
    assert not (tmp_path / "adapters" / ".training" / "acme" / "support").exists() or not any(
        (tmp_path / "adapters" / ".training" / "acme" / "support").iterdir()
    )
    with Assistant.from_config(raw) as assistant:
        answer = assistant.ask("How long can items be returned?", adapter="acme/support")
        assert answer.adapter == "acme/support" and answer.adapter_version == 1
        assert answer.timings.generate > 0
        # a second run becomes v2 but stays behind v1 until promoted
        again = train_adapter(raw, setup["questions"], tenant="acme", name="support")
        assert again.registered.card.version == 2 and not again.registered.current
        registry = AdapterRegistry(tmp_path / "adapters")
        assert registry.current_version("acme", "support") == 1
        # the running assistant serves a promotion, and a rollback, from the next request on
        registry.promote("acme/support", 2)
        assert assistant.ask("Why?", adapter="acme/support").adapter_version == 2
        registry.rollback("acme/support")
        assert assistant.ask("Why?", adapter="acme/support").adapter_version == 1


def test_lora_trains_qlora_style_on_an_int8_base_and_serves(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    from ragtune.train import train_adapter

    raw = _config(setup, "lora", tmp_path, base_quantize="int8", max_steps=2)
    trained = train_adapter(raw, setup["questions"], tenant="acme", name="q")
    card = trained.registered.card
    assert card.settings["loop"]["base_quantize"] == "int8" and card.metrics["steps"] == 2
    assert card.trainable_parameters > 0 and card.metrics["train_loss"] > 0
    with Assistant.from_config(raw) as assistant:
        answer = assistant.ask("How long can items be returned?", adapter="acme/q")
        assert (answer.adapter, answer.adapter_version) == ("acme/q", 1)


def test_an_interrupted_run_resumes_to_the_same_weights(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    import torch

    from ragtune.generate.adapters import read_adapter
    from ragtune.train import train_adapter

    whole = train_adapter(
        _config(setup, "lora", tmp_path / "whole"), setup["questions"], tenant="acme", name="s"
    )

    def stop_at_three(p: Any) -> None:
        if p.step == 3:
            raise KeyboardInterrupt

    raw = _config(setup, "lora", tmp_path / "cut")
    with pytest.raises(KeyboardInterrupt):
        train_adapter(raw, setup["questions"], tenant="acme", name="s", progress=stop_at_three)
    assert any((tmp_path / "cut" / "adapters" / ".training").rglob("checkpoint.pt"))
    resumed = train_adapter(raw, setup["questions"], tenant="acme", name="s")
    assert resumed.result.resumed_from == 2
    assert resumed.result.steps == whole.result.steps == 6
    a = read_adapter(whole.registered.folder).tensors
    b = read_adapter(resumed.registered.folder).tensors
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert whole.result.validation_losses == resumed.result.validation_losses


def test_cli_trains_and_bad_data_is_refused(setup: dict[str, Any], tmp_path: Path) -> None:
    raw = _config(setup, "prefix", tmp_path, max_steps=2)
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--config",
            str(config),
            "--questions",
            str(setup["questions"]),
            "--tenant",
            "acme",
            "--name",
            "faq",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "registered acme/faq@v1 (prefix" in result.output and "validation_loss" in result.output
    listed = CliRunner().invoke(app, ["adapters", "list", "--root", str(tmp_path / "adapters")])
    assert "acme/faq" in listed.output
    orphan = write_jsonl(
        tmp_path / "orphan.jsonl",
        [{"id": "o", "question": "Why?", "answers": ["x"], "passage_id": "nowhere#0"}],
    )
    refused = CliRunner().invoke(
        app,
        [
            "train",
            "--config",
            str(config),
            "--questions",
            str(orphan),
            "--tenant",
            "acme",
            "--name",
            "faq",
        ],
    )
    assert isinstance(refused.exception, TrainingError) and "passage_id" in str(refused.exception)


def test_more_training_passages_than_the_prompt_shows_is_refused(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    """A gold passage placed after the ones the served prompt shows would silently drop its
    example (one in four with 4 passages and 3 shown): training refuses the pair before it
    reads or writes anything, naming both settings and the fix. A config that serves only
    (``generator.max_passages: 2`` with the default training passages) still loads."""
    from ragtune import load_config
    from ragtune.errors import ConfigError
    from ragtune.train import train_adapter

    raw = _config(setup, "lora", tmp_path)
    raw["generator"]["max_passages"] = 3
    raw["train"]["data"]["passages"] = 4
    with pytest.raises(ConfigError) as info:
        train_adapter(raw, setup["questions"], tenant="acme", name="faq")
    message = str(info.value)
    assert "train.data.passages is 4" in message and "generator.max_passages = 3" in message
    assert "at most 3" in message
    assert not (tmp_path / "adapters").exists()
    assert load_config({"generator": {"max_passages": 2}}).generator.max_passages == 2


def test_examples_too_long_to_train_on_are_counted_and_shown(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    """Examples whose gold passage does not fit ``train.loop.max_length`` are dropped. The count
    reaches ``on_data`` (it used to be computed after that call, so the CLI never showed it),
    the CLI says it with the fix, and when every example is dropped training stops with an
    error naming both settings instead of a bare "no training examples"; nothing is
    registered."""
    from ragtune.train import train_adapter

    raw = _config(setup, "lora", tmp_path, max_length=64, max_steps=1)
    raw["generator"]["passage_tokens"] = 64
    reported: list[dict[str, int]] = []
    with pytest.raises(TrainingError) as info:
        train_adapter(
            raw,
            setup["questions"],
            tenant="acme",
            name="faq",
            on_data=lambda counts: reported.append(dict(counts)),
        )
    message = str(info.value)
    assert "were dropped" in message and "train.loop.max_length = 64" in message
    assert len(reported) == 1 and reported[0]["dropped_too_long"] >= reported[0]["train"] > 0
    assert not (tmp_path / "adapters" / "acme").exists()  # nothing registered
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(raw))
    shown = CliRunner().invoke(
        app,
        [
            "train",
            "--config",
            str(config),
            "--questions",
            str(setup["questions"]),
            "--tenant",
            "acme",
            "--name",
            "faq",
        ],
    )
    assert "dropped" in shown.output and "train.loop.max_length" in shown.output, shown.output
