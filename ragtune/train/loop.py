"""The training loop, explicit torch: encode, batch, accumulate, schedule, validate, stop early,
checkpoint, resume.

Only the adapter's parameters train (PEFT freezes the rest); the loss is the target tokens'
(the prompt is context). Micro-batches come in a seeded order per epoch, a pure function of the
step, so a run resumed from a checkpoint (adapter weights, optimiser, schedule, RNG state,
validation history) continues exactly as an uninterrupted one would. Validation loss is measured
every ``eval_every`` steps; training stops after ``patience`` measurements without improvement
and the best weights are put back.

Work the model does not need is cut (measured on SmolLM2-135M, 2 CPU cores, LoRA r16):

- **No padding to speak of.** Each epoch's seeded order is cut into windows of 64 micro-batches;
  inside a window examples are sorted by length before they are grouped, so a micro-batch holds
  examples of nearly one length, and the batches' order is shuffled again (seeded).
- **Logits only where the loss is.** Rows are padded on the left, so every row's target ends
  at the last column; the output layer (49,152 x 576, a fifth of a forward pass) runs only on
  the last (longest target + 1) positions: 160 -> 202 training tokens/s.
- **The prompt of training is the prompt of inference**, without worked examples, with the
  passages cut to their windows (:func:`ragtune.generate.prompts.build_prompt`).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Le, Lt

from ragtune.eval.metrics import contains_answer
from ragtune.generate.prompts import ABSTENTION, build_prompt
from ragtune.settings import check_bounds
from ragtune.train.data import TrainingExample

__all__ = [
    "Encoded",
    "TrainProgress",
    "TrainResult",
    "TrainSettings",
    "encode_example",
    "end_of_turn_id",
    "train",
]

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class TrainSettings:
    """The optimiser, schedule, batches, validation and checkpoints."""

    learning_rate: Annotated[float, Gt(0.0), Le(1.0)] = 2e-4
    weight_decay: Annotated[float, Ge(0.0)] = 0.0
    warmup_share: Annotated[float, Ge(0.0), Lt(1.0)] = 0.05
    """Share of the steps over which the learning rate rises linearly from 0."""
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    batch_size: Annotated[int, Ge(1), Le(512)] = 4
    grad_accum: Annotated[int, Ge(1), Le(512)] = 1
    max_steps: Annotated[int, Ge(1)] = 200
    """Optimiser steps (each of ``batch_size * grad_accum`` examples) at most."""
    max_epochs: Annotated[float, Gt(0.0)] = 100.0
    """Passes over the training examples at most: training ends at whichever of
    ``max_steps`` and ``max_epochs`` comes first (and the schedule is laid over that)."""
    eval_every: Annotated[int, Ge(1)] = 25
    """Steps between validation-loss measurements."""
    patience: Annotated[int, Ge(1)] = 3
    """Measurements without improvement before training stops."""
    checkpoint_every: Annotated[int, Ge(1)] = 25
    max_length: Annotated[int, Ge(64), Le(32768)] = 1024
    """Tokens per example at most (prompt and target); longer examples are left out."""
    max_grad_norm: Annotated[float, Gt(0.0)] = 1.0
    seed: int = 0
    base_quantize: Literal["none", "int8"] = "none"
    """The frozen base's linear layers while the adapter trains: ``none`` (``generator.dtype``)
    or ``int8``, QLoRA-style on the CPU (a quarter of float32's memory; the adapter stays in
    float32). int4 and CUDA are not supported for training (:mod:`ragtune.generate.qlora`
    says why). The adapter serves on any ``generator.quantize``."""

    def __post_init__(self) -> None:
        check_bounds(self)

    def total_steps(self, examples: int) -> int:
        """The optimiser steps a run over ``examples`` training examples takes."""
        per_step = self.batch_size * self.grad_accum
        return max(1, min(self.max_steps, math.ceil(self.max_epochs * examples / per_step)))


@dataclass(frozen=True)
class Encoded:
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    """-100 on the prompt, the token id on the target."""
    weight: float = 1.0
    """What each of its target tokens counts in the loss (chunks of the ``mixed`` objective
    count less than answers; see :mod:`ragtune.train.lm`)."""

    @property
    def target_tokens(self) -> int:
        return sum(1 for t in self.labels if t != -100)

    @property
    def target_weight(self) -> float:
        """Its target tokens, weighted: what it counts for in a step's mean loss."""
        return self.target_tokens * self.weight


def end_of_turn_id(tokenizer: Any) -> int:
    """The token that ends an assistant turn: the chat template's ``<|im_end|>`` when it has
    one, else the tokenizer's end-of-sequence token."""
    vocab = tokenizer.get_vocab()
    if "<|im_end|>" in vocab:
        return int(vocab["<|im_end|>"])
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no end-of-turn or end-of-sequence token")
    return int(tokenizer.eos_token_id)


def encode_example(
    tokenizer: Any,
    example: TrainingExample,
    *,
    max_length: int,
    virtual_tokens: int = 0,
    max_passages: int = 20,
    passage_tokens: int = 4096,
) -> Encoded | None:
    """The example as the model reads it at inference (the same prompt function, the same
    passage layout) plus its target and the end-of-turn token.

    None when the gold passage does not fit ``max_length``. When the gold passage's window (see
    :func:`~ragtune.generate.prompts.passage_window`) no longer holds an answer, the target
    becomes the abstention sentence: the model must not learn to answer from text it was not
    shown.
    """
    target_text = example.target
    end = end_of_turn_id(tokenizer)
    reserve = len(tokenizer(target_text, add_special_tokens=False)["input_ids"]) + 1
    reserve = max(reserve, len(tokenizer(ABSTENTION, add_special_tokens=False)["input_ids"]) + 1)
    try:
        prompt = build_prompt(
            tokenizer,
            example.question,
            example.passages,
            context_window=max_length - virtual_tokens,
            reserve=reserve,
            max_passages=max_passages,
            passage_tokens=passage_tokens,
        )
    except ValueError:
        return None
    if example.gold_position is not None:
        if example.gold_position > len(prompt.passages):
            return None
        shown = prompt.passages[example.gold_position - 1].text
        if example.answers and not contains_answer(shown, example.answers):
            target_text = ABSTENTION
    target = [*tokenizer(target_text, add_special_tokens=False)["input_ids"], end]
    ids = list(prompt.token_ids)
    return Encoded(tuple(ids + target), tuple([-100] * len(ids) + target))


@dataclass(frozen=True)
class TrainProgress:
    step: int
    max_steps: int
    loss: float
    tokens_per_second: float
    validation_loss: float | None = None


@dataclass(frozen=True)
class TrainResult:
    steps: int
    best_step: int
    best_validation_loss: float | None
    train_loss: float
    """Mean loss over the last ``eval_every`` steps."""
    validation_losses: tuple[tuple[int, float], ...]
    tokens: int
    seconds: float
    stopped_early: bool
    resumed_from: int | None = None

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _State:
    step: int = 0
    tokens: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    validation: list[tuple[int, float]] = field(default_factory=list)
    best_step: int = 0
    best_loss: float | None = None
    bad_evals: int = 0


_WINDOW = 64
"""Micro-batches per length-sorting window (see the module doc)."""


def epoch_batches(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int
) -> list[list[int]]:
    """The micro-batches of one epoch: example indices, grouped by length, in seeded order.

    Pure: the same lengths, size, seed and epoch give the same batches (resumption relies on
    it). Every example appears exactly once.
    """
    import torch

    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = [int(i) for i in torch.randperm(len(lengths), generator=generator)]
    span = batch_size * _WINDOW
    batches: list[list[int]] = []
    for lo in range(0, len(order), span):
        window = sorted(order[lo : lo + span], key=lambda i: (lengths[i], i))
        batches += [window[k : k + batch_size] for k in range(0, len(window), batch_size)]
    shuffle = torch.randperm(len(batches), generator=generator)
    return [batches[int(i)] for i in shuffle]


class _Schedule:
    """Global micro-batch ``index`` -> example indices, epoch after epoch (cached per epoch)."""

    def __init__(self, lengths: Sequence[int], settings: TrainSettings) -> None:
        self.lengths = list(lengths)
        self.settings = settings
        self._epoch = -1
        self._batches: list[list[int]] = []

    def __call__(self, index: int) -> list[int]:
        per_epoch = max(1, math.ceil(len(self.lengths) / self.settings.batch_size))
        epoch, position = divmod(index, per_epoch)
        if epoch != self._epoch:
            self._epoch = epoch
            self._batches = epoch_batches(
                self.lengths, self.settings.batch_size, self.settings.seed, epoch
            )
        return self._batches[position]


def _tensors(batch: Sequence[Encoded], pad_id: int, device: Any) -> dict[str, Any]:
    """Left-padded ids, mask and labels: every row's target ends at the last column."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = [[pad_id] * (width - len(e.input_ids)) + list(e.input_ids) for e in batch]
    labels = [[-100] * (width - len(e.labels)) + list(e.labels) for e in batch]
    mask = [[0] * (width - len(e.input_ids)) + [1] * len(e.input_ids) for e in batch]
    return {
        "input_ids": torch.tensor(ids, device=device),
        "labels": torch.tensor(labels, device=device),
        "attention_mask": torch.tensor(mask, device=device),
    }


def _target_span(labels: Sequence[int]) -> int:
    """How many of the last positions hold the first target token and everything after it."""
    for i, label in enumerate(labels):
        if label != -100:
            return len(labels) - i
    return 0


def batch_loss(model: Any, batch: Sequence[Encoded], pad_id: int, device: Any) -> Any:
    """Summed cross-entropy of ``batch``'s target tokens, each row's times its ``weight`` (a
    0-dim tensor), computing logits only for the positions that predict a target token."""
    import torch

    from ragtune.generate.adapters import peft_quietly

    tensors = _tensors(batch, pad_id, device)
    span = max(_target_span(e.labels) for e in batch)
    with peft_quietly():  # a prefix adapter's forward is PEFT's (see peft_quietly)
        out = model(
            input_ids=tensors["input_ids"],
            attention_mask=tensors["attention_mask"],
            logits_to_keep=span + 1,
        )
    logits = out.logits[:, -span - 1 : -1, :].float()
    labels = tensors["labels"][:, -span:]
    if all(e.weight == 1.0 for e in batch):
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            labels.reshape(-1),
            ignore_index=-100,
            reduction="sum",
        )
    per_token = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        labels.reshape(-1),
        ignore_index=-100,
        reduction="none",
    ).reshape(labels.shape)
    weights = torch.tensor([e.weight for e in batch], device=per_token.device)
    return (per_token.sum(dim=1) * weights).sum()


def _lr_factor(settings: TrainSettings, total: int) -> Callable[[int], float]:
    warmup = int(total * settings.warmup_share)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if settings.schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        if settings.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        return max(0.0, 1.0 - progress)

    return factor


def _trainable(model: Any) -> dict[str, Any]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _load_trainable(model: Any, state: dict[str, Any]) -> None:
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in state:
                p.copy_(state[name].to(p.device))


def validation_loss(
    model: Any, items: Sequence[Encoded], pad_id: int, batch_size: int
) -> float | None:
    """Mean loss per (weighted) target token over ``items`` (None without items)."""
    import torch

    if not items:
        return None
    was_training = model.training
    model.eval()
    total = tokens = 0.0
    device = next(p.device for p in model.parameters())
    order = sorted(range(len(items)), key=lambda i: len(items[i].input_ids))
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            batch = [items[i] for i in order[start : start + batch_size]]
            total += float(batch_loss(model, batch, pad_id, device))
            tokens += sum(e.target_weight for e in batch)
    if was_training:
        model.train()
    return total / tokens if tokens else None


def train(
    model: Any,
    train_items: Sequence[Encoded],
    validation_items: Sequence[Encoded],
    settings: TrainSettings,
    *,
    pad_id: int,
    checkpoint_dir: Path | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
) -> TrainResult:
    """Train ``model``'s trainable parameters in place; the best weights are loaded at the end.

    With ``checkpoint_dir`` a checkpoint is written every ``checkpoint_every`` steps and a run
    finding one there continues from it.
    """
    import torch

    if not train_items:
        raise ValueError("no training examples")
    schedule_of = _Schedule([len(e.input_ids) for e in train_items], settings)
    device = next(p.device for p in model.parameters())
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(
        params, lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    total = settings.total_steps(len(train_items))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, _lr_factor(settings, total))
    state = _State()
    best = _trainable(model)
    resumed_from = None
    torch.manual_seed(settings.seed)
    if checkpoint_dir is not None and (checkpoint_dir / CHECKPOINT).is_file():
        saved = torch.load(checkpoint_dir / CHECKPOINT, map_location="cpu", weights_only=False)
        _load_trainable(model, saved["trainable"])
        optimiser.load_state_dict(saved["optimiser"])
        schedule.load_state_dict(saved["schedule"])
        torch.set_rng_state(saved["rng"])
        best = saved["best"]
        state = _State(**saved["state"])
        resumed_from = state.step
    model.train()
    while state.step < total:
        started = time.perf_counter()
        step_loss = 0.0
        micro_batches = [
            [train_items[i] for i in schedule_of(state.step * settings.grad_accum + micro)]
            for micro in range(settings.grad_accum)
        ]
        # The loss is the mean over the step's target tokens, however they fall into batches.
        targets = sum(e.target_weight for batch in micro_batches for e in batch)
        for batch in micro_batches:
            loss = batch_loss(model, batch, pad_id, device) / targets
            loss.backward()
            step_loss += float(loss.detach())
            state.tokens += sum(len(e.input_ids) for e in batch)
        torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
        optimiser.step()
        schedule.step()
        optimiser.zero_grad(set_to_none=True)
        state.step += 1
        state.seconds += time.perf_counter() - started
        state.losses.append(step_loss)
        measured = None
        if state.step % settings.eval_every == 0 or state.step == total:
            measured = validation_loss(model, validation_items, pad_id, settings.batch_size)
            if measured is not None:
                state.validation.append((state.step, measured))
                if state.best_loss is None or measured < state.best_loss - 1e-6:
                    state.best_loss, state.best_step, state.bad_evals = measured, state.step, 0
                    best = _trainable(model)
                else:
                    state.bad_evals += 1
            else:
                best, state.best_step = _trainable(model), state.step
        if progress is not None:
            rate = state.tokens / state.seconds if state.seconds else 0.0
            progress(TrainProgress(state.step, total, step_loss, rate, measured))
        stop = state.bad_evals >= settings.patience
        if checkpoint_dir is not None and (
            state.step % settings.checkpoint_every == 0 or stop or state.step == total
        ):
            _save_checkpoint(checkpoint_dir, model, optimiser, schedule, best, state)
        if stop:
            break
    _load_trainable(model, best)
    model.eval()
    recent = state.losses[-settings.eval_every :]
    return TrainResult(
        steps=state.step,
        best_step=state.best_step,
        best_validation_loss=state.best_loss,
        train_loss=sum(recent) / len(recent) if recent else float("nan"),
        validation_losses=tuple(state.validation),
        tokens=state.tokens,
        seconds=state.seconds,
        stopped_early=state.bad_evals >= settings.patience,
        resumed_from=resumed_from,
    )


def _save_checkpoint(
    folder: Path, model: Any, optimiser: Any, schedule: Any, best: dict[str, Any], state: _State
) -> None:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (CHECKPOINT + ".tmp")
    torch.save(
        {
            "trainable": _trainable(model),
            "optimiser": optimiser.state_dict(),
            "schedule": schedule.state_dict(),
            "rng": torch.get_rng_state(),
            "best": best,
            "state": asdict(state),
        },
        tmp,
    )
    os.replace(tmp, folder / CHECKPOINT)
