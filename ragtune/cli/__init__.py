"""The ``ragtune`` command: thin commands over the Python API.

Errors ragtune raises on purpose are printed as one clear message (no traceback) with exit
status 2; ``RAGTUNE_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import os
import sys

import typer

from ragtune.cli.adapters_cmd import app as adapters_app
from ragtune.cli.ask_cmd import ask
from ragtune.cli.check_cmd import check
from ragtune.cli.config_cmd import app as config_app
from ragtune.cli.eval_cmd import app as eval_app
from ragtune.cli.feedback_cmd import app as feedback_app
from ragtune.cli.index_cmd import app as index_app
from ragtune.cli.serve_cmd import serve, serve_key
from ragtune.cli.synth_cmd import synth
from ragtune.cli.train_cmd import train

__all__ = ["app", "main"]

app = typer.Typer(
    name="ragtune",
    help="Grounded domain assistants: index your documents, ask with citations, train adapters.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(index_app, name="index")
app.add_typer(config_app, name="config")
app.add_typer(adapters_app, name="adapters")
app.add_typer(eval_app, name="eval")
app.add_typer(feedback_app, name="feedback")
app.command("ask")(ask)
app.command("check")(check)
app.command("synth")(synth)
app.command("train")(train)
app.command("serve")(serve)
app.command("serve-key")(serve_key)


def main() -> None:
    """Console entry point."""
    from ragtune.errors import RagtuneError

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _quiet_model_loading()
    try:
        app()
    except RagtuneError as exc:
        if os.environ.get("RAGTUNE_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; nothing was changed by the unfinished step", file=sys.stderr)
        sys.exit(130)


def _quiet_model_loading() -> None:
    """Our own bars say what is happening; the libraries' weight-loading bars are noise."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
