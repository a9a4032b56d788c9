"""Reports on one or more eval runs: ``report.md`` with its plots as PNG files, and a
self-contained ``report.html`` (plots inlined), both written from the runs' records.

Plots: every metric with its 95% interval, the runs side by side; recall@k for k = 1..10;
latency per stage (p50 bars, p95 marks); the distribution of the checker's support scores.
The failures table lists, per run, the worst answers first: answers to questions the documents
cannot answer, then wrong answers, then abstentions although a retrieved passage held the answer.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragtune.check.citations import strip_markers
from ragtune.errors import EvalError
from ragtune.eval.metrics import answer_recall_at_k, contains_answer, token_f1
from ragtune.eval.runner import RUN_FILE, SUMMARY, read_records
from ragtune.eval.summary import METRICS, STAGES, recall_curve, value

__all__ = [
    "Failure",
    "Run",
    "failures_list",
    "load_run",
    "metrics_table",
    "plot_latency",
    "plot_metrics",
    "plot_recall",
    "plot_support",
    "worst_failures",
    "write_report",
]

Record = Mapping[str, Any]


@dataclass(frozen=True)
class Run:
    name: str
    folder: Path
    summary: Mapping[str, Any]
    records: tuple[Record, ...]


def load_run(folder: str | Path, name: str | None = None) -> Run:
    """A finished run folder (with ``summary.json``)."""
    path = Path(folder)
    if not (path / RUN_FILE).is_file():
        raise EvalError(f"{path} is not an eval run folder; give folders made by `ragtune eval`")
    if not (path / SUMMARY).is_file():
        raise EvalError(
            f"{path} has no {SUMMARY}: the run did not finish; rerun its `ragtune eval` command"
        )
    summary = json.loads((path / SUMMARY).read_text(encoding="utf-8"))
    return Run(name or path.name, path, summary, tuple(read_records(path)))


@dataclass(frozen=True)
class Failure:
    kind: str
    """``answered unanswerable``, ``wrong answer`` or ``abstained, answer retrieved``."""
    record: Record
    f1: float


def worst_failures(records: Sequence[Record], n: int = 10) -> list[Failure]:
    """The ``n`` worst answers of a run, worst kind first (see the module doc). Pure."""
    found: list[tuple[int, float, Failure]] = []
    for r in records:
        answer = strip_markers(r["answer"])
        if not r["answerable"] and not r["abstained"]:
            found.append((0, 0.0, Failure("answered unanswerable", r, 0.0)))
        elif r["answerable"] and not r["abstained"]:
            f1 = token_f1(answer, r["answers"])
            if not contains_answer(answer, r["answers"]) and f1 < 0.5:
                found.append((1, f1, Failure("wrong answer", r, f1)))
        elif r["answerable"] and answer_recall_at_k(
            [p["text"] for p in r["cited"]], r["answers"], 10
        ):
            found.append((2, 0.0, Failure("abstained, answer retrieved", r, 0.0)))
    found.sort(key=lambda item: (item[0], item[1]))
    return [failure for _kind, _f1, failure in found[:n]]


# -- plots -------------------------------------------------------------------------------------


def _png(figure: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_metrics(runs: Sequence[Run]) -> bytes:
    """Every metric with its 95% interval, one bar per run."""
    plt = _pyplot()
    names = [m.name for m in METRICS]
    figure, axis = plt.subplots(figsize=(8, 0.45 * len(names) * max(1, len(runs)) ** 0.5 + 1))
    height = 0.8 / len(runs)
    for i, run in enumerate(runs):
        ys = [j + i * height for j in range(len(names))]
        values = [value(run.summary, n) or 0.0 for n in names]
        lows = [
            run.summary.get("ci95", {}).get(n, [v, v])[0]
            for n, v in zip(names, values, strict=True)
        ]
        highs = [
            run.summary.get("ci95", {}).get(n, [v, v])[1]
            for n, v in zip(names, values, strict=True)
        ]
        errors = [
            [max(v - lo, 0.0) for v, lo in zip(values, lows, strict=True)],
            [max(hi - v, 0.0) for v, hi in zip(values, highs, strict=True)],
        ]
        axis.barh(ys, values, height=height, xerr=errors, capsize=2, label=run.name)
    axis.set_yticks([j + 0.4 - height / 2 for j in range(len(names))], names)
    axis.invert_yaxis()
    axis.set_xlim(0, 1)
    axis.set_xlabel("value (bars: 95% bootstrap interval)")
    axis.legend(loc="lower right", fontsize="small")
    axis.set_title("Metrics")
    return _png(figure)


def plot_recall(runs: Sequence[Run]) -> bytes:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 3.5))
    drawn = False
    for run in runs:
        curve = recall_curve(run.records)
        if curve:
            axis.plot(range(1, len(curve) + 1), curve, marker="o", label=run.name)
            drawn = True
    axis.set_xlabel("k")
    axis.set_ylabel("recall@k (gold passage)")
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    if drawn:
        axis.legend(fontsize="small")
    else:
        axis.text(
            0.5, 0.5, "no question names its gold passage", ha="center", transform=axis.transAxes
        )
    axis.set_title("Retrieval: recall@k")
    return _png(figure)


def plot_latency(runs: Sequence[Run]) -> bytes:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(runs)
    for i, run in enumerate(runs):
        by_stage = run.summary.get("latency_ms", {}).get("by_stage", {})
        xs = [j + i * width for j in range(len(STAGES))]
        p50 = [by_stage.get(s, {}).get("p50", 0.0) for s in STAGES]
        p95 = [by_stage.get(s, {}).get("p95", 0.0) for s in STAGES]
        axis.bar(xs, p50, width=width, label=f"{run.name} p50")
        axis.scatter(xs, p95, marker="_", s=200, color="black", zorder=3)
    axis.set_xticks([j + 0.4 - width / 2 for j in range(len(STAGES))], list(STAGES))
    axis.set_ylabel("ms (bars p50, marks p95)")
    axis.legend(fontsize="small")
    axis.set_title("Latency by stage")
    return _png(figure)


def plot_support(runs: Sequence[Run]) -> bytes:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 3.5))
    shown = 0
    for run in runs:
        scores = [s["support"] for r in run.records for s in r["sentences"] if s["citations"]]
        if scores:
            axis.hist(scores, bins=20, range=(0, 1), alpha=0.5, label=f"{run.name} ({len(scores)})")
            shown += 1
    axis.set_xlabel("support score of cited sentences")
    axis.set_ylabel("sentences")
    if shown:
        axis.legend(fontsize="small")
    else:
        axis.text(0.5, 0.5, "no sentence carried a citation", ha="center", transform=axis.transAxes)
    axis.set_title("Support scores")
    return _png(figure)


# -- writing -----------------------------------------------------------------------------------

_PLOTS = (
    ("metrics", "Metrics with 95% intervals", plot_metrics),
    ("recall", "Retrieval recall@k", plot_recall),
    ("latency", "Latency by stage", plot_latency),
    ("support", "Support scores", plot_support),
)


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def _metric_rows(runs: Sequence[Run]) -> list[list[str]]:
    rows = []
    for metric in METRICS:
        row = [metric.name]
        for run in runs:
            v = value(run.summary, metric.name)
            low, high = run.summary.get("ci95", {}).get(metric.name, [None, None])
            row.append(f"{_fmt(v)} [{_fmt(low)}, {_fmt(high)}]" if v is not None else "-")
        rows.append(row)
    latency = ["latency p50 / p95 ms"]
    for run in runs:
        lat = run.summary.get("latency_ms", {})
        latency.append(f"{_fmt(lat.get('p50'))} / {_fmt(lat.get('p95'))}")
    rows.append(latency)
    return rows


def _answer_text(record: Record, chars: int = 400) -> str:
    """What the run answered; for an abstention, why, and the draft the model wrote."""
    if not record["abstained"]:
        return record["answer"] or "(none)"
    draft = " ".join((record.get("draft") or "").split())
    shown = f" Draft: {draft[:chars]}{'…' if len(draft) > chars else ''}" if draft else ""
    return f"(abstained: {record.get('abstain_reason') or 'unknown'}).{shown}"


def _golds(record: Record) -> str:
    return ", ".join(dict.fromkeys(record["answers"])) or "(unanswerable)"


def _passages_text(record: Record, limit: int = 3, chars: int = 300) -> list[str]:
    shown = []
    for number, p in enumerate(record["cited"][:limit], start=1):
        text = " ".join(p["text"].split())
        shown.append(
            f"[{number}] {p.get('title') or p['source']}: {text[:chars]}{'…' if len(text) > chars else ''}"
        )
    return shown


def metrics_table(runs: Sequence[Run]) -> str:
    """Every metric of the runs with its 95% interval, as a Markdown table."""
    header = ["metric", *[r.name for r in runs]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in _metric_rows(runs)]
    return "\n".join(lines)


def failures_list(run: Run, n: int = 10) -> str:
    """The run's worst failures (see :func:`worst_failures`) as a Markdown list."""
    worst = worst_failures(run.records, n)
    if not worst:
        return "No failures of the kinds listed."
    lines = []
    for failure in worst:
        r = failure.record
        lines += [
            f"- **{failure.kind}** `{r['id']}`: {r['question']}",
            f"  - answer: {_answer_text(r)}",
            f"  - gold: {_golds(r)}",
            *[f"  - {line}" for line in _passages_text(r)],
        ]
    return "\n".join(lines)


def write_report(runs: Sequence[Run], out: Path, *, failures: int = 10) -> tuple[Path, Path]:
    """Write ``report.md`` (with ``report_files/*.png``) and ``report.html`` into ``out``."""
    if not runs:
        raise EvalError("give at least one run folder to report on")
    out.mkdir(parents=True, exist_ok=True)
    files = out / "report_files"
    files.mkdir(exist_ok=True)
    images = {key: plot(runs) for key, _title, plot in _PLOTS}
    for key, data in images.items():
        (files / f"{key}.png").write_bytes(data)
    header = ["metric", *[r.name for r in runs]]
    rows = _metric_rows(runs)
    md = [f"# Evaluation report: {', '.join(r.name for r in runs)}", ""]
    for run in runs:
        md.append(
            f"- **{run.name}** ({run.folder}): {run.summary.get('n')} questions "
            f"({run.summary.get('answerable')} answerable, {run.summary.get('unanswerable')} unanswerable)"
        )
    md += ["", metrics_table(runs), ""]
    for key, title, _plot in _PLOTS:
        md += [f"## {title}", "", f"![{title}](report_files/{key}.png)", ""]
    md += ["## Worst failures", ""]
    for run in runs:
        md += [f"### {run.name}", "", failures_list(run, failures), ""]
    md_path = out / "report.md"
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")
    html_path = out / "report.html"
    html_path.write_text(_html(runs, header, rows, images, failures), encoding="utf-8")
    return md_path, html_path


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3} img{max-width:100%} .kind{font-weight:600;white-space:nowrap}
.passages{font-size:12px;color:#555;width:40%} code{font-size:12px}
"""


def _html(
    runs: Sequence[Run],
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    images: Mapping[str, bytes],
    failures: int,
) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Evaluation report: {e(', '.join(r.name for r in runs))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Evaluation report: {e(', '.join(r.name for r in runs))}</h1><ul>",
    ]
    for run in runs:
        parts.append(
            f"<li><b>{e(run.name)}</b> ({e(str(run.folder))}): {run.summary.get('n')} questions, "
            f"{run.summary.get('answerable')} answerable, {run.summary.get('unanswerable')} unanswerable</li>"
        )
    parts.append("</ul><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
    parts.append("</table><p>Values with their 95% bootstrap intervals.</p>")
    for key, title, _plot in _PLOTS:
        data = base64.b64encode(images[key]).decode("ascii")
        parts.append(
            f"<h2>{e(title)}</h2><img alt='{e(title)}' src='data:image/png;base64,{data}'>"
        )
    parts.append("<h2>Worst failures</h2>")
    for run in runs:
        parts.append(f"<h3>{e(run.name)}</h3>")
        worst = worst_failures(run.records, failures)
        if not worst:
            parts.append("<p>No failures of the kinds listed.</p>")
            continue
        parts.append(
            "<table><tr><th>kind</th><th>question</th><th>answer</th><th>gold</th><th>passages shown</th></tr>"
        )
        for failure in worst:
            r = failure.record
            passages = "<br>".join(e(line) for line in _passages_text(r))
            parts.append(
                f"<tr><td class='kind'>{e(failure.kind)}</td>"
                f"<td>{e(r['question'])}<br><code>{e(r['id'])}</code></td>"
                f"<td>{e(_answer_text(r))}</td>"
                f"<td>{e(_golds(r))}</td>"
                f"<td class='passages'>{passages}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
