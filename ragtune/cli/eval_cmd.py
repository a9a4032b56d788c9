"""``ragtune eval``: run a question set, and ``compare``, ``drift`` and ``report`` on runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from ragtune.cli.progress import console, counting_bar

__all__ = ["app"]

app = typer.Typer(
    help="Evaluate: `ragtune eval --questions qa.jsonl --out runs/base`, then compare, drift, report.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@app.callback()
def run(
    ctx: typer.Context,
    config: Path = typer.Option(
        Path("configs/default.yaml"), "--config", "-c", help="ragtune config (YAML)."
    ),
    questions: Path | None = typer.Option(
        None, "--questions", "-q", help="Questions (JSONL: id, question, answers, passage_id)."
    ),
    unanswerable: Path | None = typer.Option(
        None, "--unanswerable", "-u", help="Questions the documents cannot answer (JSONL)."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="The run folder to write."),
    limit: int | None = typer.Option(
        None, "--limit", "-n", help="At most N questions from each file (drawn with --seed)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample and the bootstrap."),
    tenant: str | None = typer.Option(None, "--tenant", "-t", help="Ask as this tenant."),
    adapter: str | None = typer.Option(
        None,
        "--adapter",
        "-a",
        help="tenant/name[@vN], none (the base model) or folder:PATH; default: the "
        "tenant's default adapter (adapters.defaults).",
    ),
    index: Path | None = typer.Option(None, "--index", help="Override the config's index folder."),
    batch_size: int = typer.Option(
        1, "--batch-size", help="Questions generated together (1 gives a user's latency)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Start the run in --out again instead of continuing it."
    ),
) -> None:
    """Answer every question into --out (rerun the same command to continue), then summarise."""
    if ctx.invoked_subcommand is not None:
        return
    from ragtune.errors import EvalError
    from ragtune.eval import evaluate
    from ragtune.types import TENANT_DEFAULT

    if questions is None or out is None:
        raise EvalError(
            "give --questions FILE and --out FOLDER, or a subcommand: compare, drift, report"
        )
    bars = counting_bar("questions")
    task = bars.add_task("questions", total=None)

    def progress(done: int, total: int) -> None:
        bars.update(task, completed=done, total=total)

    try:
        with bars:
            result = evaluate(
                config,
                questions,
                out,
                unanswerable=unanswerable,
                limit=limit,
                seed=seed,
                tenant=tenant,
                adapter=TENANT_DEFAULT if adapter is None else adapter,
                index=index,
                batch_size=batch_size,
                overwrite=overwrite,
                progress=progress,
            )
    except KeyboardInterrupt:
        console.print(
            f"interrupted: the answers so far are kept in {out}; rerun the same command to continue"
        )
        raise typer.Exit(130) from None
    _print_summary(result.summary)
    console.print(
        f"{result.total} questions ({result.answered} answered now); "
        f"{out / 'records.jsonl'}, {out / 'summary.json'}"
    )


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.table import Table

    from ragtune.eval.summary import METRICS, value

    table = Table("metric", "value", "95% interval", "n")
    for metric in METRICS:
        v = value(summary, metric.name)
        low, high = summary["ci95"][metric.name]
        n = summary["counts"][metric.name]
        table.add_row(
            metric.name,
            "-" if v is None else f"{v:.3f}",
            f"[{low:.3f}, {high:.3f}]" if v is not None else "-",
            str(n),
        )
    latency = summary["latency_ms"]
    table.add_row(
        "latency p50 / p95 ms",
        f"{latency['p50']:.0f} / {latency['p95']:.0f}",
        "",
        str(summary["n"]),
    )
    console.print(table)


@app.command()
def compare(
    run_a: Path = typer.Argument(..., help="Run A (the baseline)."),
    run_b: Path = typer.Argument(..., help="Run B."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Paired A/B: per metric, B - A on the shared questions with a bootstrap 95% interval."""
    from rich.table import Table

    from ragtune.eval import compare_runs, read_records

    a, b = read_records(run_a), read_records(run_b)
    result = compare_runs(a, b, seed=seed)
    if as_json:
        rows = [
            {
                "metric": d.name,
                "a": d.a,
                "b": d.b,
                "delta": d.delta.value if d.delta else None,
                "ci95": [d.delta.low, d.delta.high] if d.delta else None,
                "n": d.delta.n if d.delta else 0,
                "verdict": d.verdict,
            }
            for d in result.metrics
        ]
        json.dump(
            {
                "paired": result.paired,
                "only_a": result.only_a,
                "only_b": result.only_b,
                "metrics": rows,
            },
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
        return
    table = Table(
        "metric", f"A: {run_a.name}", f"B: {run_b.name}", "B - A", "95% interval", "n", ""
    )
    for d in result.metrics:
        if d.delta is None:
            table.add_row(d.name, "-", "-", "-", "-", "0", "")
            continue
        mark = {"better": "[green]better[/]", "worse": "[red]worse[/]"}.get(d.verdict, "")
        table.add_row(
            d.name,
            f"{d.a:.3f}",
            f"{d.b:.3f}",
            f"{d.delta.value:+.3f}",
            f"[{d.delta.low:+.3f}, {d.delta.high:+.3f}]",
            str(d.delta.n),
            mark,
        )
    console.print(table)
    note = f"paired on {result.paired} questions"
    if result.only_a or result.only_b:
        note += f" ({result.only_a} only in A, {result.only_b} only in B, left out)"
    console.print(note)


@app.command("drift")
def drift_cmd(
    before: Path = typer.Argument(..., help="The earlier run."),
    after: Path = typer.Argument(..., help="The later run."),
    max_drop: float = typer.Option(0.02, "--max-drop", help="Largest allowed loss per metric."),
    max_latency_increase: float | None = typer.Option(
        None, "--max-latency-increase", help="Largest allowed rise of p50/p95 latency (0.2 = 20%)."
    ),
) -> None:
    """Exit 1 when a metric of AFTER is worse than BEFORE by more than --max-drop."""
    from ragtune.eval import drift, load_run

    old, new = load_run(before), load_run(after)
    found = drift(
        old.summary, new.summary, max_drop=max_drop, max_latency_increase=max_latency_increase
    )
    if not found:
        console.print(f"no regression beyond {max_drop} between {before} and {after}")
        return
    for r in found:
        console.print(
            f"[red]regression[/] {r.name}: {r.before:.4g} -> {r.after:.4g} ({r.change:+.4g})"
        )
    raise typer.Exit(1)


@app.command()
def report(
    runs: list[Path] = typer.Argument(..., help="One or more run folders."),
    out: Path = typer.Option(Path("eval-report"), "--out", "-o", help="Folder for the report."),
    failures: int = typer.Option(10, "--failures", help="Worst failures listed per run."),
) -> None:
    """Write report.md and a self-contained report.html with plots for the runs."""
    from ragtune.eval import load_run, write_report

    loaded = [load_run(r) for r in runs]
    names = [r.name for r in loaded]
    if len(set(names)) < len(names):  # same folder names under different parents
        loaded = [type(r)(str(r.folder), r.folder, r.summary, r.records) for r in loaded]
    md, html = write_report(loaded, out, failures=failures)
    console.print(f"wrote {md} and {html}")
