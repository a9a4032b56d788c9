"""``ragtune synth``: training questions generated from a tenant's documents in an index."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer

from ragtune.cli.progress import console, counting_bar

__all__ = ["synth"]


def synth(
    index: Path = typer.Option(
        ...,
        "--index",
        "-i",
        help="The index to read: a folder, or the schema name with a pgvector config.",
    ),
    tenant: str = typer.Option(..., "--tenant", "-t", help="Whose chunks (no other's are read)."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="The questions file to write (JSONL); its siblings go beside it."
    ),
    teacher: str | None = typer.Option(
        None,
        "--teacher",
        help="local (the base model, offline), openai (synth.endpoint) or cloze (by rule).",
    ),
    per_chunk: int | None = typer.Option(
        None, "--per-chunk", min=1, max=20, help="Questions kept per chunk at most."
    ),
    limit: int | None = typer.Option(
        None, "--limit", "-n", min=1, help="Only the tenant's first N chunks (rerun to extend)."
    ),
    config: Path = typer.Option(
        Path("configs/default.yaml"), "--config", "-c", help="ragtune config (YAML)."
    ),
) -> None:
    """Write questions with answers (and unanswerable ones) for training, from the documents.

    Rerunning the same command after an interruption continues with the next chunk.
    """
    from ragtune.config import load_config
    from ragtune.errors import SynthError
    from ragtune.synth import TEACHERS, synthesize

    cfg = load_config(config)
    if teacher is not None and teacher not in TEACHERS:
        raise SynthError(f"--teacher {teacher!r}: choose one of {', '.join(TEACHERS)}")
    overrides: dict[str, Any] = {"teacher": teacher, "per_chunk": per_chunk}
    chosen = {k: v for k, v in overrides.items() if v is not None}
    if chosen:
        cfg = cfg.model_copy(update={"synth": dataclasses.replace(cfg.synth, **chosen)})
    bars = counting_bar("chunks")
    task = bars.add_task("chunks", total=None)

    shown = False  # the bar appears with the first chunk count: an early error prints alone

    def progress(done: int, total: int) -> None:
        nonlocal shown
        if not shown:
            bars.start()
            shown = True
        bars.update(task, completed=done, total=total)

    try:
        try:
            result = synthesize(
                cfg, index=index, tenant=tenant, out=out, limit=limit, progress=progress
            )
        finally:
            if shown:
                bars.stop()
    except KeyboardInterrupt:
        console.print(
            f"interrupted: the finished chunks are kept in {out}; rerun the same command to "
            "continue"
        )
        raise typer.Exit(130) from None
    report = result.report
    drops = ", ".join(f"{reason} {n}" for reason, n in report.dropped.items() if n)
    console.print(
        f"{report.kept} questions from {report.chunks_done} of {report.chunks} chunks "
        f"({report.kept_after['candidates']} candidates; {report.teacher} kept "
        f"{report.kept_after['kept']}, dropped: {drops or 'none'}); "
        f"{report.unanswerable} unanswerable"
    )
    if report.fallback_kept_after["candidates"]:
        drops = ", ".join(f"{reason} {n}" for reason, n in report.fallback_dropped.items() if n)
        console.print(
            f"the cloze fallback kept {report.fallback_kept_after['kept']} of the "
            f"{report.fallback_kept_after['candidates']} candidates left (dropped: "
            f"{drops or 'none'})"
        )
    console.print(
        f"{result.files.questions}, {result.files.unanswerable}, report {result.files.report}"
    )
