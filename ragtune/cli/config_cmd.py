"""``ragtune config ...``: check configuration files."""

from __future__ import annotations

from pathlib import Path

import typer

from ragtune.config import load_config
from ragtune.errors import ConfigError

app = typer.Typer(help="Check configuration files.", no_args_is_help=True)


@app.command("validate")
def validate(files: list[Path] = typer.Argument(..., help="YAML config files.")) -> None:
    """Validate configs; print every problem with its field path. Exit 1 if any is invalid."""
    bad = 0
    for file in files:
        try:
            load_config(file)
        except ConfigError as exc:
            bad += 1
            typer.echo(str(exc), err=True)
            continue
        typer.echo(f"{file}: ok")
    if bad:
        raise typer.Exit(1)
