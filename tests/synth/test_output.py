"""The resumable output: whole chunks only, a torn write cut off, foreign files refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.errors import SynthError
from ragtune.eval.questions import read_questions
from ragtune.synth.output import ChunkRecord, SynthFiles, SynthOutput

HEADER = {"fingerprint": "abc", "teacher": "local:x", "tenant": "acme"}


def _row(i: int) -> dict[str, object]:
    return {
        "id": f"q{i}",
        "question": f"Question {i}?",
        "answers": ["a"],
        "passage_id": "d",
        "answerable": True,
    }


def _record(chunk: str) -> ChunkRecord:
    return ChunkRecord(chunk, {"candidates": 2, "kept": 1}, {"number": 1}, {"number": 2}, 0.5)


def test_files_sit_beside_the_output() -> None:
    files = SynthFiles.for_output(Path("out/acme-qa.jsonl"))
    assert files.unanswerable == Path("out/acme-qa.unanswerable.jsonl")
    assert files.state == Path("out/acme-qa.state.jsonl")
    assert files.report == Path("out/acme-qa.report.json")


def test_a_chunk_cut_short_is_dropped_and_the_run_goes_on(tmp_path: Path) -> None:
    files = SynthFiles.for_output(tmp_path / "qa.jsonl")
    output = SynthOutput.open(files, HEADER)
    assert output.done == set() and files.questions.read_text() == ""
    output.append(_record("c1"), [_row(1)], [])
    output.append(
        _record("c2"), [_row(2), _row(3)], [{**_row(9), "answers": [], "answerable": False}]
    )
    whole = files.questions.read_bytes()
    # Killed while writing chunk c3: its rows half written, its state line torn.
    with files.questions.open("ab") as handle:
        handle.write(b'{"id": "q4", "question": "Quest')
    with files.unanswerable.open("ab") as handle:
        handle.write(b'{"id": "u4"}\n')
    with files.state.open("ab") as handle:
        handle.write(b'{"chunk_id": "c3", "cou')
    again = SynthOutput.open(files, HEADER)
    assert again.done == {"c1", "c2"}
    assert files.questions.read_bytes() == whole
    assert [q.id for q in read_questions(files.questions)] == ["q1", "q2", "q3"]
    assert [q.id for q in read_questions(files.unanswerable, answerable=False)] == ["q9"]
    assert [r["id"] for r in again.questions()] == ["q1", "q2", "q3"]
    again.append(_record("c3"), [_row(4)], [])
    lines = files.state.read_text().splitlines()
    assert json.loads(lines[0])["fingerprint"] == "abc" and len(lines) == 4
    assert SynthOutput.open(files, HEADER).done == {"c1", "c2", "c3"}


def test_other_settings_and_foreign_or_changed_files_are_refused(tmp_path: Path) -> None:
    files = SynthFiles.for_output(tmp_path / "qa.jsonl")
    SynthOutput.open(files, HEADER).append(_record("c1"), [_row(1), _row(2)], [])
    with pytest.raises(SynthError, match="other synth settings"):
        SynthOutput.open(files, {**HEADER, "fingerprint": "other"})
    files.questions.write_text(json.dumps(_row(1)) + "\n")
    with pytest.raises(SynthError, match="shorter than ragtune synth left it"):
        SynthOutput.open(files, HEADER)
    mine = SynthFiles.for_output(tmp_path / "mine.jsonl")
    mine.questions.write_text(json.dumps(_row(1)) + "\n")
    with pytest.raises(SynthError, match="not written by ragtune synth"):
        SynthOutput.open(mine, HEADER)
    assert mine.questions.read_text() == json.dumps(_row(1)) + "\n"  # left alone


def test_a_rerun_with_other_settings_is_told_which_changed(tmp_path: Path) -> None:
    files = SynthFiles.for_output(tmp_path / "qa.jsonl")
    started = {**HEADER, "settings": {"synth": {"per_chunk": 3, "teacher": "local"}}}
    SynthOutput.open(files, started).append(_record("c1"), [_row(1)], [])
    rerun = {**HEADER, "fingerprint": "other", "settings": {"synth": {"per_chunk": 2}}}
    with pytest.raises(SynthError) as refused:
        SynthOutput.open(files, rerun)
    assert "synth.per_chunk: 3 -> 2; synth.teacher: local -> None" in str(refused.value)
    # An output started before the settings were recorded: the old, general message.
    old = SynthFiles.for_output(tmp_path / "old.jsonl")
    SynthOutput.open(old, HEADER).append(_record("c1"), [_row(1)], [])
    with pytest.raises(SynthError, match=r"settings \(teacher local:x, tenant acme\)"):
        SynthOutput.open(old, rerun)


def test_an_out_that_cannot_be_a_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        SynthError, match=r"is a folder: name a file in it, e.g. --out .*questions.jsonl"
    ):
        SynthFiles.for_output(tmp_path)
    taken = tmp_path / "taken.jsonl"
    taken.write_text("kept\n")
    with pytest.raises(SynthError, match=r"taken.jsonl is a file, not a folder"):
        SynthFiles.for_output(taken / "x.jsonl")
    assert taken.read_text() == "kept\n"
