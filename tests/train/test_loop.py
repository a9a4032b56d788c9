"""The loop's waste cuts: batches grouped by length, logits only on targets, and the target of
an example whose gold window lost the answer."""

from __future__ import annotations

import random

import pytest

from ragtune.generate.prompts import ABSTENTION, PromptPassage
from ragtune.train.data import TrainingExample
from ragtune.train.loop import Encoded, batch_loss, encode_example, epoch_batches
from tests.generate.tiny import make_llama, make_tokenizer

torch = pytest.importorskip("torch")


def test_epoch_batches_cover_every_example_once_and_group_lengths() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(20, 400) for _ in range(1000)]
    batches = epoch_batches(lengths, 8, seed=1, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    assert padded / sum(lengths) < 1.05  # random batches of 8 would pad about 1.5x
    assert batches == epoch_batches(lengths, 8, seed=1, epoch=0)  # pure: resumption needs it
    assert batches != epoch_batches(lengths, 8, seed=1, epoch=1)


def test_target_only_loss_equals_the_full_loss() -> None:
    model = make_llama(vocab_size=96).eval()
    rng = random.Random(3)
    batch = []
    for n, t in ((30, 4), (18, 7), (25, 1)):
        ids = tuple(rng.randrange(5, 90) for _ in range(n))
        batch.append(Encoded(ids, (-100,) * (n - t) + ids[n - t :]))
    with torch.no_grad():
        ours = batch_loss(model, batch, pad_id=0, device="cpu")
        # Reference: each row alone, logits everywhere, transformers' own shifted loss.
        total = 0.0
        for e in batch:
            out = model(input_ids=torch.tensor([e.input_ids]), labels=torch.tensor([e.labels]))
            total += float(out.loss) * e.target_tokens
    assert float(ours) == pytest.approx(total, rel=1e-4)


def test_a_gold_window_without_the_answer_teaches_the_abstention() -> None:
    tokenizer = make_tokenizer()
    filler = " ".join(f"Sentence {i} is about the harbour and its ships." for i in range(30))
    gold = PromptPassage("Port", f"{filler} The museum opened in 1901.")
    example = TrainingExample(
        "What do the harbour ships carry?",
        (gold,),
        "1901 [1].",
        "doc",
        "answer",
        gold_position=1,
        answers=("1901",),
    )
    whole = encode_example(tokenizer, example, max_length=2048)
    cut = encode_example(tokenizer, example, max_length=2048, passage_tokens=40)
    assert whole is not None and cut is not None
    target = tokenizer.decode([t for t in cut.labels if t != -100])
    assert ABSTENTION in target and len(cut.input_ids) < len(whole.input_ids)
    assert "1901 [1]." in tokenizer.decode([t for t in whole.labels if t != -100])


def test_training_ends_at_the_first_of_max_steps_and_max_epochs() -> None:
    from ragtune.train.loop import TrainSettings

    one_epoch = TrainSettings(batch_size=8, grad_accum=2, max_steps=10_000, max_epochs=1.0)
    assert one_epoch.total_steps(3300) == 207  # ceil(3300 / 16)
    capped = TrainSettings(batch_size=8, max_steps=50, max_epochs=3.0)
    assert capped.total_steps(3300) == 50
    assert TrainSettings(max_epochs=0.5, batch_size=4).total_steps(10) == 2
    with pytest.raises(ValueError, match="max_epochs must be > 0"):
        TrainSettings(max_epochs=0)
