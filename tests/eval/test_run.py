"""``ragtune eval`` end to end on tiny models: records, summary, resume, compare, drift, report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ragtune.cli import app
from ragtune.errors import EvalError
from ragtune.eval import read_records, run_eval
from ragtune.eval.questions import read_questions
from tests.eval.records import QUESTIONS, UNANSWERABLE, tiny_pipeline, write_jsonl


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("eval")
    raw = tiny_pipeline(root, tiny_model_dir)
    (root / "config.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    flagging = {**raw, "checker": {"signals": [], "on_unsupported": "flag"}}
    (root / "flag.yaml").write_text(yaml.safe_dump(flagging), encoding="utf-8")
    return {
        "root": root,
        "config": root / "config.yaml",
        "flag": root / "flag.yaml",
        "questions": write_jsonl(root / "qa.jsonl", QUESTIONS),
        "unanswerable": write_jsonl(root / "u.jsonl", UNANSWERABLE),
    }


def _eval(setup: dict[str, Any], out: Path, *extra: str, config: str = "config") -> Any:
    args = [
        "eval",
        "--config", str(setup[config]),
        "--questions", str(setup["questions"]),
        "--unanswerable", str(setup["unanswerable"]),
        "--out", str(out),
        *extra,
    ]  # fmt: skip
    return CliRunner().invoke(app, args)


def test_a_run_writes_records_and_a_summary(setup: dict[str, Any], tmp_path: Path) -> None:
    result = _eval(setup, tmp_path / "run", "--limit", "2", "--seed", "1")
    assert result.exit_code == 0, result.output
    records = read_records(tmp_path / "run")
    assert len(records) == 4 and sum(r["answerable"] for r in records) == 2
    for r in records:
        assert len(r["ranking"]) >= 3 and r["timings_ms"]["total"] > 0
        assert {"answer", "draft", "sentences", "cited", "abstained"} <= set(r)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert set(summary["retrieval"]) == {
        "recall@1",
        "recall@5",
        "recall@10",
        "mrr",
        "answer_recall@5",
    }
    assert set(summary["answer"]) >= {"em", "f1"}
    assert set(summary["citations"]) == {"precision", "recall", "supported_sentences"}
    assert set(summary["abstention"]) == {"on_unanswerable", "on_answerable"}
    assert {"p50", "p95", "by_stage"} <= set(summary["latency_ms"])
    assert summary["retrieval"]["recall@10"] == 1.0  # three documents: always in the top 10
    assert "answer.f1" in summary["ci95"] and summary["versions"]["ragtune"]
    assert summary["config"]["retriever"]["top_k"] == 2 and summary["run"]["seed"] == 1
    again = _eval(setup, tmp_path / "run2", "--limit", "2", "--seed", "1")
    assert again.exit_code == 0
    assert [r["id"] for r in read_records(tmp_path / "run2")] == [r["id"] for r in records]


def test_a_run_cut_short_continues_where_it_stopped(setup: dict[str, Any], tmp_path: Path) -> None:
    from ragtune import Assistant

    out = tmp_path / "run"
    questions = read_questions(setup["questions"])

    def stop_after_two(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with Assistant.from_config(setup["config"]) as assistant:
        with pytest.raises(KeyboardInterrupt):
            run_eval(assistant, questions, out, spec={"s": 1}, progress=stop_after_two)
        assert len(read_records(out)) == 2 and not (out / "summary.json").exists()
        first = (out / "records.jsonl").read_text().splitlines()[0]
        with open(out / "records.jsonl", "a") as handle:  # killed in the middle of a line
            handle.write('{"id": "q3", "answ')
        result = run_eval(assistant, questions, out, spec={"s": 1})
        assert (result.answered, result.total) == (1, 3)
        assert [r["id"] for r in read_records(out)] == ["q1", "q2", "q3"]
        assert (out / "records.jsonl").read_text().splitlines()[0] == first  # not redone
        assert (out / "summary.json").exists()
        with pytest.raises(EvalError, match="other settings"):
            run_eval(assistant, questions, out, spec={"s": 2})


def test_the_cli_refuses_to_mix_runs_and_bad_question_files(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert _eval(setup, out, "--limit", "1").exit_code == 0
    other = _eval(setup, out, "--limit", "1", "--seed", "7")
    assert isinstance(other.exception, EvalError)  # `ragtune` prints it and exits with 2
    assert "differing: seed" in str(other.exception) and "--overwrite" in str(other.exception)
    assert _eval(setup, out, "--limit", "1", "--seed", "7", "--overwrite").exit_code == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"id": "x", "question": "ok?", "answers": ["a"]}\n{"id": "y", "answers": ["b"]}\n'
    )
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--config",
            str(setup["config"]),
            "--questions",
            str(bad),
            "--out",
            str(tmp_path / "b"),
        ],
    )
    assert isinstance(result.exception, EvalError)
    assert "bad.jsonl:2" in str(result.exception) and "'question'" in str(result.exception)
    assert not (tmp_path / "b").exists()  # nothing made for a run that could not start


def test_compare_drift_and_report_on_two_runs(setup: dict[str, Any], tmp_path: Path) -> None:
    a, b = tmp_path / "drop", tmp_path / "flag"
    assert _eval(setup, a).exit_code == 0
    assert _eval(setup, b, config="flag").exit_code == 0
    runner = CliRunner()
    compared = runner.invoke(app, ["eval", "compare", str(a), str(b), "--json"])
    assert compared.exit_code == 0, compared.output
    table = json.loads(compared.output)
    assert table["paired"] == 5 and {m["metric"] for m in table["metrics"]} >= {
        "answer.f1",
        "retrieval.recall@1",
    }
    recall = next(m for m in table["metrics"] if m["metric"] == "retrieval.recall@1")
    assert recall["delta"] == 0.0 and recall["verdict"] == "no change"  # same retrieval

    assert runner.invoke(app, ["eval", "drift", str(a), str(a), "--max-drop", "0"]).exit_code == 0
    worse = tmp_path / "worse"
    worse.mkdir()
    for name in ("run.json", "records.jsonl"):
        (worse / name).write_bytes((a / name).read_bytes())
    summary = json.loads((a / "summary.json").read_text())
    summary["retrieval"]["mrr"] -= 0.1
    (worse / "summary.json").write_text(json.dumps(summary))
    drifted = runner.invoke(app, ["eval", "drift", str(a), str(worse), "--max-drop", "0.02"])
    assert drifted.exit_code == 1 and "retrieval.mrr" in drifted.output

    reported = runner.invoke(
        app, ["eval", "report", str(a), str(b), "--out", str(tmp_path / "rep")]
    )
    assert reported.exit_code == 0, reported.output
    page = (tmp_path / "rep" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and "<th>flag</th>" in page
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "run.json").write_text("{}")
    refused = runner.invoke(app, ["eval", "report", str(unfinished)])
    assert isinstance(refused.exception, EvalError) and "did not finish" in str(refused.exception)


def test_a_question_the_assistant_refuses_is_recorded_not_fatal(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    from ragtune import Assistant
    from ragtune.eval.questions import EvalQuestion

    raw = yaml.safe_load(setup["config"].read_text())
    raw["guard"] = {"max_question_chars": 60}
    long = EvalQuestion("long", "How long " + "really " * 20 + "is it?", ("30 days",), "returns#0")
    short = read_questions(setup["questions"])[0]
    with Assistant.from_config(raw) as assistant:
        result = run_eval(assistant, [long, short], tmp_path / "run", spec={}, batch_size=2)
    refused, answered = read_records(tmp_path / "run")
    assert (refused["id"], refused["abstained"], refused["abstain_reason"]) == (
        "long",
        True,
        "refused",
    )
    assert "limit of 60" in refused["flags"][0] and len(refused["ranking"]) == 3
    assert answered["id"] == short.id and answered["abstain_reason"] != "refused"
    assert result.summary["abstain_reasons"].get("refused") == 1
