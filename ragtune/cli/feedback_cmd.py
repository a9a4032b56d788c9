"""``ragtune feedback``: what users said of their answers, as eval questions."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["app"]

app = typer.Typer(help="Export user feedback as eval questions.", no_args_is_help=True)


@app.command("export")
def export(
    tenant: str = typer.Option(..., "--tenant", "-t", help="Whose feedback (one tenant's only)."),
    out: Path = typer.Option(..., "--out", "-o", help="The question file to write (JSONL)."),
    root: Path = typer.Option(
        Path("live"), "--root", help="The live store folder (the server config's live.root)."
    ),
) -> None:
    """Write TENANT's rated answers as an eval question file: corrections as the answers,
    answers rated up as they were given (an abstention rated up: unanswerable); answers rated
    down without a correction are left out. `ragtune eval --questions OUT` reads it."""
    from ragtune.errors import FeedbackError
    from ragtune.live.export import export_feedback
    from ragtune.live.store import LiveStore, tenant_folder
    from ragtune.types import check_name

    try:
        check_name(tenant, "tenant")
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--tenant") from exc
    if not (tenant_folder(root, tenant) / "live.sqlite").is_file():
        raise FeedbackError(
            f"no live store for tenant {tenant} under {root}: give --root, the folder the "
            "server's live.root names"
        )
    summary = export_feedback(LiveStore(root, tenant), out)
    print(
        f"{summary.written} question(s) written to {summary.path}; {summary.skipped} answer(s) "
        "rated down without a correction left out"
    )
