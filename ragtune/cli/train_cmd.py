"""``ragtune train``: teach the base model a tenant's domain with a new adapter version."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import typer

from ragtune.cli.progress import console, counting_bar

__all__ = ["train"]


def train(
    config: Path = typer.Option(
        ..., "--config", "-c", help="Config with a `train:` section (e.g. configs/train-lora.yaml)."
    ),
    questions: Path | None = typer.Option(
        None,
        "--questions",
        "-q",
        help="Questions with answers and passage_id (JSONL); not with train.data.objective lm.",
    ),
    tenant: str = typer.Option(..., "--tenant", "-t", help="The tenant the adapter is for."),
    name: str = typer.Option(..., "--name", "-n", help="The adapter's name, e.g. support."),
    index: Path | None = typer.Option(None, "--index", help="Override the config's index."),
    unanswerable: Path | None = typer.Option(
        None, "--unanswerable", "-u", help="Questions the documents cannot answer (JSONL)."
    ),
    promote: bool = typer.Option(
        False, "--promote", help="Make the new version current (the first version always is)."
    ),
) -> None:
    """Train an adapter on grounded examples from QUESTIONS and the index; register it.

    Rerunning the same command after an interruption resumes from the last checkpoint.
    """
    from ragtune.train import TrainProgress, train_adapter

    bars = counting_bar(
        "training", "loss {task.fields[loss]}  val {task.fields[val]}  {task.fields[rate]} tok/s"
    )
    task = bars.add_task("training", total=None, loss="-", val="-", rate="-")

    def progress(p: TrainProgress) -> None:
        bars.update(
            task,
            completed=p.step,
            total=p.max_steps,
            loss=f"{p.loss:.3f}",
            rate=f"{p.tokens_per_second:.0f}",
        )
        if p.validation_loss is not None:
            bars.update(task, val=f"{p.validation_loss:.3f}")

    def on_data(counts: Mapping[str, int]) -> None:
        console.print(
            f"examples: {counts['train']} to train ({counts['train_answer']} with the gold passage, "
            f"{counts['train_no gold']} without it, {counts['train_unanswerable']} unanswerable, "
            f"{counts['train_lm']} chunks for the language objective), "
            f"{counts['validation']} to validate (held-out documents)"
        )
        if counts["dropped_too_long"]:
            console.print(
                f"dropped {counts['dropped_too_long']} examples whose gold passage does not fit "
                "train.loop.max_length tokens: raise it, or lower generator.passage_tokens"
            )

    try:
        with bars:
            trained = train_adapter(
                config,
                questions,
                tenant=tenant,
                name=name,
                index=index,
                unanswerable=unanswerable,
                promote=True if promote else None,
                progress=progress,
                on_data=on_data,
            )
    except KeyboardInterrupt:
        console.print("interrupted: rerun the same command to resume from the last checkpoint")
        raise typer.Exit(130) from None
    card = trained.registered.card
    metrics = ", ".join(f"{k} {v}" for k, v in card.metrics.items())
    state = "current" if trained.registered.current else "not current: promote it to serve it"
    console.print(
        f"registered {card.ref} ({card.kind}, {card.trainable_parameters:,} trainable parameters; {state})"
    )
    console.print(f"metrics: {metrics}")
