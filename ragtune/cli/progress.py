"""Progress bars for long commands (rich), fed by the library's ``Progress`` protocol."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["RichProgress", "console", "counting_bar"]

console = Console(stderr=True, soft_wrap=True)
"""Human-readable output goes to stderr, so stdout stays clean for --json."""


def counting_bar(label: str, *fields: str) -> Progress:
    """One bar counting steps or questions, with ``fields`` (rich markup) after the count."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        *[TextColumn(f) for f in fields],
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


class RichProgress:
    """One bar per phase (reading, embedding); finished bars stay on screen."""

    def __init__(self) -> None:
        self._bars = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self._bars.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._bars.stop()

    def phase(self, name: str, total: int | None) -> None:
        self._task = self._bars.add_task(name, total=total)

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._bars.advance(self._task, n)
