"""The support model's shipped form on a tiny classifier made here: write, load, score, check
the card, refuse damaged or missing files with the fix, and serve as a checker signal."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ragtune.check.support import Calibration, ClaimItem, SupportChecker, load_calibrations
from ragtune.check.support_model import (
    SupportModel,
    load_support_model,
    read_support_card,
    write_support_model,
)
from ragtune.errors import ModelError
from ragtune.train.support_model import WORD_EMBEDDINGS

PASSAGE = "The Cascade C700 blender has a 1,200 watt motor. The motor is covered for five years."
ITEMS = [
    ("How long is the motor covered?", "The motor is covered for five years.", PASSAGE),
    ("How long is the motor covered?", "Ten years.", PASSAGE),
    (None, "The blender has a 1,200 watt motor.", PASSAGE),
]


@pytest.fixture(scope="module")
def tiny_support(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, object]:
    """A tiny classifier in the shipped form, with a calibration, and the float32 model."""
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_model_dir), num_labels=1)
    folder = tmp_path_factory.mktemp("support") / "model"
    write_support_model(
        model, folder, base_model=str(tiny_model_dir), frozen=[WORD_EMBEDDINGS], max_length=64
    )
    names = ("coverage", "local_coverage", "numbers", "names", "negation", "support_model")
    calibration = Calibration(names, (1.0,) * 6, 0.0, 0.5, (0.5,) * 6, (1.0,) * 6, "test")
    (folder / "calibration.json").write_text(
        json.dumps({"calibrations": {"lexical+support_model": calibration.to_dict()}})
    )
    return folder, model


def test_written_model_loads_and_scores_like_float32(tiny_support, tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    folder, model = tiny_support
    loaded = load_support_model(folder, tiny_model_dir)
    card = read_support_card(folder)
    assert card.frozen == (WORD_EMBEDDINGS,) and card.base_model == str(tiny_model_dir)
    # only the trained tensors ship: the frozen word embeddings come from the base
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), framework="pt") as handle:
        assert WORD_EMBEDDINGS not in set(handle.keys())
    full = SupportModel(model, loaded.tokenizer, card, {})
    a, b = full.logits(ITEMS), loaded.logits(ITEMS)
    assert a.shape == (3,) and np.abs(a - b).max() < 1e-2  # float16 weights
    assert list(loaded.logits(list(reversed(ITEMS)))) == pytest.approx(list(reversed(b)), abs=1e-5)
    assert set(loaded.calibrations) == {"lexical+support_model"}


def test_a_checker_with_the_model_keeps_the_lexical_explanations(
    tiny_support, tiny_model_dir
) -> None:  # type: ignore[no-untyped-def]
    folder, _ = tiny_support
    checker = SupportChecker(support_model=load_support_model(folder, tiny_model_dir))
    assert checker.calibration.source == "test" and checker.signals[-1] == "support_model"
    score = checker.score("The motor is covered for ten years.", [PASSAGE], "How long?")
    assert set(score.signals) >= {"coverage", "numbers", "support_model"}
    assert score.signals["numbers"] == 0.0 and 0.0 <= score.score <= 1.0
    # a calibration given by the user wins over the model's own
    own = {
        **load_calibrations(),
        "lexical+support_model": load_calibrations(folder / "calibration.json")[
            "lexical+support_model"
        ],
    }
    assert (
        SupportChecker(support_model=checker.support_model, calibrations=own).calibration.source
        == "test"
    )


def _copy(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    return target


@pytest.mark.parametrize("name", ["model.safetensors", "card.json", "config.json"])
def test_a_missing_file_names_the_fix(tiny_support, tiny_model_dir, tmp_path, name) -> None:  # type: ignore[no-untyped-def]
    folder = _copy(tiny_support[0], tmp_path)
    (folder / name).unlink()
    with pytest.raises(ModelError, match=rf"has no {name}.*train_support_model.py --data"):
        load_support_model(folder, tiny_model_dir)


def test_damaged_files_and_a_wrong_base_name_the_fix(
    tiny_support, tiny_model_dir, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    folder = _copy(tiny_support[0], tmp_path)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match its card.*train_support_model.py"):
        load_support_model(folder, tiny_model_dir)
    shutil.copy(tiny_support[0] / "model.safetensors", weights)
    (folder / "card.json").write_text("{not json")
    with pytest.raises(ModelError, match="card.json.*unreadable.*train_support_model.py"):
        load_support_model(folder, tiny_model_dir)
    shutil.copy(tiny_support[0] / "card.json", folder / "card.json")
    from ragtune.index.embedders import resolve_embedder_path

    with pytest.raises(ModelError, match="another base model"):
        load_support_model(folder, resolve_embedder_path("all-minilm-l6-v2"))
    with pytest.raises(ModelError, match="there is no support model at"):
        load_support_model(tmp_path / "nowhere", tiny_model_dir)


def test_the_config_loads_the_model_it_names(tiny_support, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from ragtune.config import load_config

    folder = tiny_support[0]
    config = load_config(
        {"checker": {"signals": ["support_model"], "support_model_folder": str(folder)}}
    )
    model = config.build_support_model()
    assert model is not None and model.card.max_length == 64
    assert load_config({}).build_support_model() is None
    missing = load_config(
        {"checker": {"signals": ["support_model"], "support_model_folder": str(tmp_path / "x")}}
    )
    with pytest.raises(ModelError, match="remove support_model from checker.signals"):
        missing.build_support_model()


def test_claim_items_join_their_passages(tiny_support, tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    loaded = load_support_model(tiny_support[0], tiny_model_dir)
    two = loaded.support_logits([ClaimItem("A claim.", ["First passage.", "Second one."], None)])
    one = loaded.logits([(None, "A claim.", "First passage. Second one.")])
    assert two == pytest.approx(list(one), abs=1e-5)
    assert loaded.support_logits([]) == []
