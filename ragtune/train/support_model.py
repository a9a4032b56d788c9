"""Fine-tune the support model: a sequence classifier (one logit) on labelled claims, plain torch.

The classifier starts from a BERT-style encoder folder (the embedded all-MiniLM-L6-v2 for the
shipped model; a tiny one in the tests) with a new one-output head, and learns from
:class:`~ragtune.train.claims.Claim` rows with a binary cross-entropy loss. The word embeddings
stay frozen (``freeze``), so the model that ships holds only the tensors that changed
(:func:`ragtune.check.support_model.write_support_model`).

Batches come in a seeded order; inside windows of 32 batches the claims are sorted by length
before they are grouped, so a batch carries little padding (CPU time goes with the tokens).
Some claims lose their question (``question_dropout``), so the model also judges a claim
without one (``ragtune check`` lines may have none). The learning rate rises linearly over
``warmup_share`` of the steps and falls linearly to 0.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from annotated_types import Ge, Gt, Le, Lt

from ragtune.check.support_model import pair_text
from ragtune.settings import check_bounds
from ragtune.train.claims import Claim

__all__ = ["SupportTrainSettings", "TrainedSupportModel", "train_support_model"]

WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight"


@dataclass(frozen=True)
class SupportTrainSettings:
    """The support model's optimiser, schedule and inputs."""

    learning_rate: Annotated[float, Gt(0.0), Le(1.0)] = 5e-5
    weight_decay: Annotated[float, Ge(0.0)] = 0.01
    warmup_share: Annotated[float, Ge(0.0), Lt(1.0)] = 0.1
    batch_size: Annotated[int, Ge(1), Le(1024)] = 16
    epochs: Annotated[int, Ge(1), Le(100)] = 1
    max_steps: Annotated[int, Ge(1)] | None = None
    """Stop after this many steps (the schedule spans the shorter of this and the epochs)."""
    max_length: Annotated[int, Ge(16), Le(512)] = 320
    """Tokens per (question + claim, evidence) pair; the evidence is cut to fit."""
    question_dropout: Annotated[float, Ge(0.0), Le(1.0)] = 0.1
    """Share of sentence claims shown without their question (answer-only claims always keep it)."""
    freeze: tuple[str, ...] = (WORD_EMBEDDINGS,)
    """Parameters that do not train (and are not shipped)."""
    seed: int = 0

    def __post_init__(self) -> None:
        check_bounds(self)


@dataclass(frozen=True)
class TrainedSupportModel:
    model: Any
    """The classifier (``AutoModelForSequenceClassification``), float32, in eval mode."""
    tokenizer: Any
    steps: int
    seconds: float
    claims_seen: int
    losses: tuple[float, ...] = field(default_factory=tuple)
    """Mean loss of every 10 steps."""
    resumed_from: int = 0
    """The checkpoint's step this run started from (0: from the start)."""

    @property
    def claims_per_second(self) -> float:
        return self.claims_seen / self.seconds if self.seconds else 0.0


_SELF_CONTAINED = frozenset(["answer", "other_question"])


def _inputs(
    claims: Sequence[Claim], settings: SupportTrainSettings, sep: str
) -> list[tuple[str, str]]:
    rng = random.Random(f"{settings.seed}:dropout")
    out = []
    for claim in claims:
        keep = claim.kind in _SELF_CONTAINED or rng.random() >= settings.question_dropout
        out.append((pair_text(claim.question if keep else None, claim.claim, sep), claim.evidence))
    return out


def _batches(lengths: Sequence[int], size: int, rng: random.Random) -> list[list[int]]:
    """One epoch's batches: a seeded order, sorted by length inside windows of 32 batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    window = size * 32
    for lo in range(0, len(order), window):
        part = sorted(order[lo : lo + window], key=lambda i: lengths[i])
        batches += [part[i : i + size] for i in range(0, len(part), size)]
    rng.shuffle(batches)
    return batches


def _fingerprint(base: Path, claims: Sequence[Claim], settings: SupportTrainSettings) -> str:
    """What a checkpoint must match to be resumed: the base folder, the claims and settings."""
    digest = hashlib.sha256(f"{base.resolve()}\n{settings!r}\n".encode())
    for c in claims:
        row = (c.question, c.claim, c.evidence, c.kind, c.supported)
        digest.update(json.dumps(row).encode() + b"\n")
    return digest.hexdigest()


def train_support_model(
    base: Path,
    claims: Sequence[Claim],
    settings: SupportTrainSettings | None = None,
    *,
    progress: Callable[[int, int, float], None] | None = None,
    checkpoint: Path | None = None,
    checkpoint_every: int = 50,
) -> TrainedSupportModel:
    """Fine-tune a one-logit classifier from the encoder in ``base`` on ``claims`` (CPU, or
    CUDA when present). ``progress(step, steps, loss)`` is called every 10 steps.

    With ``checkpoint`` (a file path), the model, optimiser, schedule and data order are saved
    there every ``checkpoint_every`` steps (written to a temporary file, then renamed), and a run
    started again with the same base, claims and settings resumes from it: the result equals an
    uninterrupted run's. A checkpoint made for other claims or settings is ignored and replaced.

    Raises ``ValueError`` without claims of both labels.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    settings = settings or SupportTrainSettings()
    if len({c.supported for c in claims}) < 2:
        raise ValueError("training the support model needs supported and unsupported claims")
    torch.manual_seed(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the new head's "newly initialized" notice is expected
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=1)
    finally:
        hf_logging.set_verbosity(verbosity)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    names = dict(model.named_parameters())
    unknown = [n for n in settings.freeze if n not in names]
    if unknown:
        raise ValueError(f"no parameters {unknown} to freeze in {base}")
    for name in settings.freeze:
        names[name].requires_grad_(False)

    pairs = _inputs(claims, settings, tokenizer.sep_token or "[SEP]")
    encoded = tokenizer(
        [p[0] for p in pairs],
        [p[1] for p in pairs],
        truncation="only_second",
        max_length=settings.max_length,
    )
    lengths = [len(ids) for ids in encoded["input_ids"]]
    labels = torch.tensor([1.0 if c.supported else 0.0 for c in claims])
    per_epoch = math.ceil(len(claims) / settings.batch_size)
    steps = per_epoch * settings.epochs
    steps = min(steps, settings.max_steps) if settings.max_steps else steps
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.dim() > 1]
    plain = [p for p in trainable if p.dim() <= 1]
    optimiser = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": settings.weight_decay},
            {"params": plain, "weight_decay": 0.0},
        ],
        lr=settings.learning_rate,
    )
    warmup = max(1, int(steps * settings.warmup_share))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    rng = random.Random(settings.seed)
    model.train()
    step, seen = 0, 0
    window: list[float] = []
    losses: list[float] = []
    spent = 0.0  # seconds in earlier runs of a resumed training
    epoch_rng = rng.getstate()
    done_in_epoch = 0
    fingerprint = _fingerprint(base, claims, settings) if checkpoint else ""
    if checkpoint is not None and checkpoint.exists():
        saved = torch.load(checkpoint, map_location=device, weights_only=False)
        if saved.get("fingerprint") == fingerprint:
            model.load_state_dict(saved["model"])
            optimiser.load_state_dict(saved["optimiser"])
            schedule.load_state_dict(saved["schedule"])
            torch.set_rng_state(saved["torch_rng"])
            step, seen, losses, window = saved["step"], saved["seen"], saved["losses"], []
            spent, epoch_rng, done_in_epoch = saved["seconds"], saved["epoch_rng"], saved["done"]
            rng.setstate(epoch_rng)
    resumed_from = step

    def save() -> None:
        assert checkpoint is not None
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        partial = checkpoint.with_name(checkpoint.name + ".partial")
        state = {
            "fingerprint": fingerprint,
            "model": model.state_dict(),
            "optimiser": optimiser.state_dict(),
            "schedule": schedule.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "step": step,
            "seen": seen,
            "losses": losses,
            "seconds": spent + time.perf_counter() - started,
            "epoch_rng": epoch_rng,
            "done": done_in_epoch,
        }
        torch.save(state, partial)
        os.replace(partial, checkpoint)

    started = time.perf_counter()
    while step < steps:
        epoch_rng = rng.getstate()
        batches = _batches(lengths, settings.batch_size, rng)
        skip, done_in_epoch = done_in_epoch, 0
        for index, batch in enumerate(batches):
            if step >= steps:
                break
            if index < skip:
                done_in_epoch = index + 1
                continue
            features = tokenizer.pad(
                {k: [encoded[k][i] for i in batch] for k in encoded}, return_tensors="pt"
            ).to(device)
            logits = model(**features).logits.reshape(-1)
            loss = loss_fn(logits, labels[batch].to(device))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimiser.step()
            schedule.step()
            optimiser.zero_grad(set_to_none=True)
            step += 1
            seen += len(batch)
            done_in_epoch = index + 1
            window.append(loss.item())
            if step % 10 == 0 or step == steps:
                losses.append(round(sum(window) / len(window), 4))
                window = []
                if progress is not None:
                    progress(step, steps, losses[-1])
            if checkpoint is not None and step % checkpoint_every == 0 and step < steps:
                save()
        else:
            done_in_epoch = 0
    seconds = spent + time.perf_counter() - started
    model.eval().to("cpu")
    return TrainedSupportModel(
        model, tokenizer, step, seconds, seen, tuple(losses), resumed_from=resumed_from
    )
