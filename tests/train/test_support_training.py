"""The support model's training loop on a tiny encoder: it learns, and a run stopped after a
checkpoint resumes to the very weights of an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.train.claims import Claim
from ragtune.train.support_model import SupportTrainSettings, train_support_model

EVIDENCE = "The Cascade C700 blender has a 1,200 watt motor. The motor is covered for five years."


def _claims() -> list[Claim]:
    rows = []
    for i in range(24):
        good = i % 2 == 0
        text = (
            "The motor is covered for five years."
            if good
            else f"The motor is covered for {i} days."
        )
        rows.append(Claim("How long is the cover?", text, EVIDENCE, good, "answer", "a", f"q{i}"))
    return rows


SETTINGS = SupportTrainSettings(batch_size=4, epochs=2, max_length=48, learning_rate=1e-3, seed=3)


class Stop(Exception):
    pass


def _weights(model: object) -> dict[str, object]:
    return {k: v.clone() for k, v in model.state_dict().items()}  # type: ignore[attr-defined]


def test_a_stopped_run_resumes_to_the_uninterrupted_weights(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import torch

    whole = train_support_model(tiny_model_dir, _claims(), SETTINGS)
    assert whole.steps == 12 and whole.claims_seen == 48

    checkpoint = tmp_path / "checkpoint.pt"

    def stop_at_8(step: int, steps: int, loss: float) -> None:
        if step == 10:
            raise Stop

    with pytest.raises(Stop):  # stopped at step 10, the last checkpoint is step 8 (mid epoch 2)
        train_support_model(
            tiny_model_dir,
            _claims(),
            SETTINGS,
            progress=stop_at_8,
            checkpoint=checkpoint,
            checkpoint_every=4,
        )
    assert checkpoint.exists()
    resumed = train_support_model(
        tiny_model_dir, _claims(), SETTINGS, checkpoint=checkpoint, checkpoint_every=4
    )
    assert resumed.resumed_from == 8 and resumed.steps == 12 and resumed.claims_seen == 48
    a, b = _weights(whole.model), _weights(resumed.model)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6), name  # type: ignore[arg-type]


def test_a_checkpoint_for_other_claims_is_not_resumed(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch

    checkpoint = tmp_path / "checkpoint.pt"
    other = SupportTrainSettings(batch_size=4, epochs=1, max_length=48, learning_rate=1e-3, seed=4)
    train_support_model(
        tiny_model_dir, _claims()[:16], other, checkpoint=checkpoint, checkpoint_every=2
    )
    assert checkpoint.exists()
    fresh = train_support_model(tiny_model_dir, _claims(), SETTINGS)
    again = train_support_model(
        tiny_model_dir, _claims(), SETTINGS, checkpoint=checkpoint, checkpoint_every=100
    )
    assert again.resumed_from == 0 and again.steps == fresh.steps
    a, b = _weights(fresh.model), _weights(again.model)
    assert all(torch.allclose(a[n], b[n], atol=1e-6) for n in a)  # type: ignore[arg-type]
