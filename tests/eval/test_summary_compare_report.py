"""summary.json, paired comparison, drift and the report, from hand-made records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.eval import compare_runs, drift, summarise, worst_failures, write_report
from ragtune.eval.report import Run
from ragtune.eval.summary import recall_curve
from tests.eval.records import record

RECORDS = [
    # right answer, gold passage first, one supported sentence
    record(
        "a1",
        answer="Returns take 30 days [1].",
        sentences=((True, 0.9),),
        recall=1.0,
        precision=1.0,
    ),
    # wrong answer, gold passage second
    record(
        "a2",
        answer="Returns take 10 days [1].",
        ranking=("other", "gold"),
        sentences=((False, 0.2),),
        recall=0.0,
        precision=0.0,
        total_ms=300.0,
    ),
    # abstained on an answerable question whose answer was retrieved
    record("a3", abstained=True, answer="I don't know.", ranking=("x", "gold", "y")),
    # unanswerable: one abstained, one answered (a hallucination)
    record("u1", answerable=False, abstained=True, answer="I don't know.", gold=None),
    record(
        "u2",
        answerable=False,
        answer="It is blue [1].",
        gold=None,
        sentences=((True, 0.7), (False, 0.1)),
        recall=0.5,
        precision=0.5,
    ),
]


def test_summary_by_hand() -> None:
    s = summarise(RECORDS, config={"k": 1}, versions={"ragtune": "x"}, run={"seed": 0})
    assert (s["n"], s["answerable"], s["unanswerable"]) == (5, 3, 2)
    assert s["retrieval"]["recall@1"] == pytest.approx(1 / 3, abs=1e-4)
    assert s["retrieval"]["recall@5"] == 1.0
    assert s["retrieval"]["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 2) / 3, abs=1e-4)
    assert s["retrieval"]["answer_recall@5"] == 1.0  # every ranking holds "30 days"
    assert s["answer"]["em"] == 0.0  # "returns take 30 days" is not "30 days"
    assert s["answer"]["contains"] == pytest.approx(1 / 3, abs=1e-4)
    # F1 of "returns take 30 days" vs "30 days": P = 2/4, R = 1 -> 2/3; "10 days": P 1/4 R 1/2 -> 1/3
    assert s["answer"]["f1"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3, abs=1e-4)
    # citations over the three answers that are not abstentions
    assert s["citations"]["recall"] == pytest.approx(0.5)
    assert s["citations"]["supported_sentences"] == pytest.approx(2 / 4)
    assert s["abstention"] == {
        "on_unanswerable": 0.5,
        "on_answerable": pytest.approx(1 / 3, abs=1e-4),
    }
    assert s["latency_ms"]["p50"] == 100.0 and s["latency_ms"]["by_stage"]["total"]["p95"] > 100
    assert s["counts"]["retrieval.recall@1"] == 3 and s["counts"]["citations.recall"] == 3
    low, high = s["ci95"]["answer.contains"]
    assert 0.0 <= low <= s["answer"]["contains"] <= high <= 1.0
    assert s["abstain_reasons"] == {"unsupported": 2}
    assert s["config"] == {"k": 1} and s["versions"] == {"ragtune": "x"}
    json.dumps(s)  # serialisable as is


def test_recall_curve_rises_to_one() -> None:
    assert recall_curve(RECORDS, 3) == pytest.approx([1 / 3, 1.0, 1.0])


def test_compare_pairs_on_shared_questions() -> None:
    better = [dict(r) for r in RECORDS[:3]]
    better[1] = record(
        "a2",
        answer="Returns take 30 days [1].",
        sentences=((True, 0.9),),
        recall=1.0,
        precision=1.0,
    )
    extra = record("b9", answer="x")
    result = compare_runs(RECORDS, [*better, extra])
    assert (result.paired, result.only_a, result.only_b) == (3, 2, 1)
    contains = next(d for d in result.metrics if d.name == "answer.contains")
    assert contains.a == pytest.approx(1 / 3) and contains.b == pytest.approx(2 / 3)
    assert contains.delta is not None and contains.delta.value == pytest.approx(1 / 3)
    unanswerable = next(d for d in result.metrics if d.name == "abstention.on_unanswerable")
    assert unanswerable.delta is None and unanswerable.verdict == "no change"


def test_compare_calls_a_consistent_change_better_or_worse() -> None:
    a = [record(f"q{i}", answer="no idea", sentences=((False, 0.1),)) for i in range(40)]
    b = [record(f"q{i}", answer="30 days [1]", sentences=((True, 0.9),)) for i in range(40)]
    by_name = {d.name: d for d in compare_runs(a, b).metrics}
    assert by_name["answer.em"].verdict == "better"
    assert compare_runs(b, a).metrics[5].verdict == "worse"  # answer.em the other way round


def test_drift_flags_drops_beyond_the_limit_and_latency() -> None:
    before = summarise(RECORDS)
    after = json.loads(json.dumps(before))
    after["answer"]["f1"] -= 0.05
    after["abstention"]["on_answerable"] += 0.01
    after["latency_ms"]["p50"] *= 1.5
    found = drift(before, after, max_drop=0.02)
    assert [r.name for r in found] == ["answer.f1"]
    assert found[0].change == pytest.approx(-0.05)
    with_latency = drift(before, after, max_drop=0.02, max_latency_increase=0.2)
    assert [r.name for r in with_latency] == ["answer.f1", "latency_ms.p50"]
    assert drift(before, before, max_drop=0.0) == []


def test_worst_failures_come_worst_kind_first() -> None:
    kinds = [(f.kind, f.record["id"]) for f in worst_failures(RECORDS)]
    assert kinds == [
        ("answered unanswerable", "u2"),
        ("wrong answer", "a2"),
        ("abstained, answer retrieved", "a3"),
    ]


def test_report_writes_markdown_and_a_self_contained_html(tmp_path: Path) -> None:
    runs = [
        Run("base", tmp_path / "base", summarise(RECORDS), tuple(RECORDS)),
        Run("lora", tmp_path / "lora", summarise(RECORDS[:3]), tuple(RECORDS[:3])),
    ]
    md, html = write_report(runs, tmp_path / "report")
    text = md.read_text()
    assert (
        "| answer.f1 |" in text
        and "![Metrics with 95% intervals](report_files/metrics.png)" in text
    )
    assert "answered unanswerable" in text and "question u2?" in text
    for name in ("metrics", "recall", "latency", "support"):
        png = tmp_path / "report" / "report_files" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = html.read_text()
    assert page.count("data:image/png;base64,") == 4
    assert "report_files" not in page  # nothing outside the file
    assert "<th>lora</th>" in page and "It is blue [1]." in page


def test_squad2_overall_scores_abstaining_on_unanswerable_as_right() -> None:
    records = [
        record("a", answer="30 days [1]."),  # F1 1
        record("b", answer="two weeks [1]."),  # F1 0
        record("c", abstained=True, answer="I don't know"),  # answerable, abstained: 0
        record("u1", answerable=False, abstained=True, gold=None),  # right: 1
        record("u2", answerable=False, answer="Friday [1].", gold=None),  # wrong: 0
    ]
    summary = summarise(records)
    assert summary["squad2"]["overall_f1"] == pytest.approx(2 / 5)
    assert summary["squad2"]["overall_em"] == pytest.approx(2 / 5)
    assert summary["answer"]["f1"] == pytest.approx(1 / 3, abs=1e-4)  # HasAns F1
    assert summary["abstention"]["on_unanswerable"] == pytest.approx(1 / 2)  # NoAns accuracy
