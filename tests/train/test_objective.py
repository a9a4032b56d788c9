"""train.data.objective: qa (the grounded examples), lm (next-token loss on the tenant's
chunks), mixed (both, chunk tokens weighted)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ragtune.errors import TrainingError
from ragtune.train.data import TrainingExample, held_documents, split_by_document
from ragtune.train.lm import TextExample, encode_text
from ragtune.train.loop import Encoded, batch_loss
from tests.eval.records import QUESTIONS, tiny_pipeline, write_jsonl


def test_a_chunk_is_one_example_every_token_after_the_first_a_target() -> None:
    from tests.generate.tiny import make_tokenizer

    tokenizer = make_tokenizer()
    text = TextExample("Returns\n\nItems can be returned within 30 days of delivery.", "returns")
    encoded = encode_text(tokenizer, text, max_length=512, weight=0.25)
    assert encoded is not None and encoded.weight == 0.25
    assert encoded.labels[0] == -100 and encoded.labels[1:] == encoded.input_ids[1:]
    assert encoded.target_tokens == len(encoded.input_ids) - 1
    assert encoded.target_weight == encoded.target_tokens * 0.25
    cut = encode_text(tokenizer, text, max_length=5)
    assert cut is not None and len(cut.input_ids) == 5
    assert encode_text(tokenizer, TextExample("", "x"), max_length=64) is None


def test_questions_and_chunks_of_a_document_fall_on_the_same_side() -> None:
    examples = [TrainingExample("q?", (), "a", document, "answer") for document in "abcdefghij"]
    split = split_by_document(examples, 0.3, seed=1)
    held = held_documents("abcdefghij", 0.3, seed=1)
    assert {e.document for e in split.validation} == held and 0 < len(held) < 10
    assert len(held_documents(["a", "b"], 0.999)) == 1  # never every document
    assert held_documents(["a", "b"], 0.0) == frozenset()


def test_weighted_rows_count_their_weight_in_the_loss() -> None:
    import torch

    from tests.generate.tiny import make_llama

    model = make_llama(400)
    ids = tuple(range(5, 25))
    labels = (-100, *ids[1:])
    with torch.no_grad():
        one = float(batch_loss(model, [Encoded(ids, labels)], 0, "cpu"))
        half = float(batch_loss(model, [Encoded(ids, labels, 0.5)], 0, "cpu"))
        both = float(batch_loss(model, [Encoded(ids, labels), Encoded(ids, labels, 0.5)], 0, "cpu"))
    assert half == pytest.approx(one / 2, rel=1e-5)
    assert both == pytest.approx(one * 1.5, rel=1e-5)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("objective")
    raw = tiny_pipeline(root, tiny_model_dir)
    raw["train"] = {
        "adapter": {"type": "lora", "r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        "data": {"passages": 2, "gold_share": 1.0, "validation_share": 0.34},
        "loop": {"batch_size": 2, "max_steps": 2, "eval_every": 2, "max_length": 512},
    }
    return {"root": root, "raw": raw, "questions": write_jsonl(root / "qa.jsonl", QUESTIONS)}


def _config(setup: dict[str, Any], tmp_path: Path, objective: str) -> dict[str, Any]:
    raw = json.loads(json.dumps(setup["raw"]))
    raw["train"]["data"]["objective"] = objective
    raw["adapters"]["root"] = str(tmp_path / "adapters")
    return raw


def test_lm_trains_on_the_chunks_alone(setup: dict[str, Any], tmp_path: Path) -> None:
    from ragtune.train import train_adapter

    trained = train_adapter(_config(setup, tmp_path, "lm"), None, tenant="acme", name="lm")
    counts = trained.examples
    assert counts["train_lm"] >= 1 and counts["train_answer"] == counts["train_no gold"] == 0
    assert counts["validation"] >= 1  # a held-out document's chunk
    card = trained.registered.card
    assert card.settings["data"]["objective"] == "lm" and card.metrics["steps"] == 2
    assert card.metrics["validation_loss"] > 0


def test_mixed_trains_on_both_and_hashes_both(setup: dict[str, Any], tmp_path: Path) -> None:
    from ragtune.train import train_adapter

    mixed = train_adapter(
        _config(setup, tmp_path, "mixed"), setup["questions"], tenant="acme", name="m"
    )
    qa = train_adapter(_config(setup, tmp_path, "qa"), setup["questions"], tenant="acme", name="q")
    assert mixed.examples["train_lm"] >= 1 and mixed.examples["train_answer"] >= 1
    assert qa.examples["train_lm"] == 0
    assert mixed.examples["train"] == qa.examples["train"] + mixed.examples["train_lm"]
    a, b = mixed.registered.card, qa.registered.card
    assert a.training_data_sha256 != b.training_data_sha256
    assert a.settings["data"]["lm_weight"] == 0.1


def test_the_objective_decides_whether_questions_are_needed(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    from ragtune.train import train_adapter

    with pytest.raises(TrainingError, match="chunks alone: leave out --questions"):
        train_adapter(_config(setup, tmp_path, "lm"), setup["questions"], tenant="a", name="x")
    with pytest.raises(TrainingError, match="objective qa needs --questions"):
        train_adapter(_config(setup, tmp_path, "qa"), None, tenant="a", name="x")
