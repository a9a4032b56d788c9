"""The files ``ragtune synth`` writes, chunk by chunk, so that a run resumes where it stopped.

For ``--out acme-qa.jsonl``::

    acme-qa.jsonl                  the kept questions (what `ragtune train --questions` reads)
    acme-qa.unanswerable.jsonl     questions the documents do not answer (`--unanswerable`)
    acme-qa.state.jsonl            a header line, then one line per finished chunk
    acme-qa.report.json            what was kept and why the rest was dropped

A chunk is finished in three appends, each flushed to disk: its questions, its unanswerable
questions, then its state line, which records both files' sizes after it. The state line is
the commit: on opening, anything past the sizes the last state line records (the rows of a
chunk that was being written when the process died) is cut off, as is a torn last state line,
so the question files always hold whole chunks and the run continues with the next chunk. The
header holds a fingerprint of the settings; a run with other settings is refused rather than
mixed into the same file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragtune.durable import write_atomic
from ragtune.errors import SynthError

__all__ = ["ChunkRecord", "SynthFiles", "SynthOutput"]

_FORMAT = 1


@dataclass(frozen=True)
class SynthFiles:
    """The four files of one output (see the module doc)."""

    questions: Path
    unanswerable: Path
    state: Path
    report: Path

    @classmethod
    def for_output(cls, out: Path) -> SynthFiles:
        """The files beside ``out``: ``x.jsonl`` gives ``x.unanswerable.jsonl`` ...

        Raises :class:`~ragtune.errors.SynthError` when ``out`` cannot be a file: it is a
        folder, or a path through a file."""
        if out.is_dir():
            raise SynthError(
                f"--out {out} is a folder: name a file in it, e.g. --out {out / 'questions.jsonl'}"
            )
        blocked = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
        if blocked is not None:
            raise SynthError(
                f"--out {out} cannot be written: {blocked} is a file, not a folder; choose "
                "another --out"
            )
        stem = out.name.removesuffix(".jsonl")
        return cls(
            out,
            out.with_name(f"{stem}.unanswerable.jsonl"),
            out.with_name(f"{stem}.state.jsonl"),
            out.with_name(f"{stem}.report.json"),
        )


@dataclass(frozen=True)
class ChunkRecord:
    """One finished chunk, as its state line stores it."""

    chunk_id: str
    counts: Mapping[str, int]
    """Candidates, what each filter dropped, what was kept (see :mod:`ragtune.synth.report`)."""
    kinds: Mapping[str, int]
    """Kept questions by answer kind."""
    candidate_kinds: Mapping[str, int]
    seconds: float
    """Wall time spent on the chunk."""
    questions_bytes: int = 0
    unanswerable_bytes: int = 0
    """The two files' sizes once the chunk was written."""
    extra: Mapping[str, Any] = field(default_factory=dict)


class SynthOutput:
    """An output being written (see the module doc). Open it with :meth:`open`."""

    def __init__(
        self, files: SynthFiles, header: Mapping[str, Any], records: list[ChunkRecord]
    ) -> None:
        self.files = files
        self.header = dict(header)
        self.records = records

    @classmethod
    def open(cls, files: SynthFiles, header: Mapping[str, Any]) -> SynthOutput:
        """Start the files, or reopen them to continue. ``header['fingerprint']`` must match the
        one they were started with. Raises :class:`~ragtune.errors.SynthError` naming the fix
        when the files were written by someone else, with other settings, or were changed."""
        if not files.state.is_file():
            for path in (files.questions, files.unanswerable):
                if path.is_file() and path.stat().st_size > 0:
                    raise SynthError(
                        f"{path} exists but was not written by ragtune synth (there is no "
                        f"{files.state.name} beside it); choose another --out or delete it"
                    )
            files.questions.parent.mkdir(parents=True, exist_ok=True)
            for path in (files.questions, files.unanswerable):
                path.write_bytes(b"")
            write_atomic(files.state, _line({"v": _FORMAT, **header}))
            return cls(files, header, [])
        saved, records = _read_state(files.state)
        if saved.get("fingerprint") != header.get("fingerprint"):
            changed = _changes(saved.get("settings"), header.get("settings"))
            raise SynthError(
                f"{files.questions} was started with other synth settings ("
                + (
                    "; ".join(changed)
                    if changed
                    else f"teacher {saved.get('teacher')}, tenant {saved.get('tenant')}"
                )
                + f"): rerun with the same settings to continue it, or choose another --out "
                f"(or delete {files.questions}, {files.unanswerable.name} and "
                f"{files.state.name} to start again)"
            )
        last = records[-1] if records else None
        for path, size in (
            (files.questions, last.questions_bytes if last else 0),
            (files.unanswerable, last.unanswerable_bytes if last else 0),
        ):
            have = path.stat().st_size if path.is_file() else -1
            if have < size:
                raise SynthError(
                    f"{path} is shorter than ragtune synth left it ({have} < {size} bytes): it "
                    f"was changed; delete it, {files.state.name} and its siblings to start again"
                )
            if have > size:  # the rows of a chunk that was never finished
                with path.open("r+b") as handle:
                    handle.truncate(size)
        return cls(files, saved, records)

    @property
    def done(self) -> set[str]:
        """The ids of the finished chunks."""
        return {r.chunk_id for r in self.records}

    def questions(self) -> list[dict[str, Any]]:
        """The rows of the questions file (the finished chunks')."""
        text = self.files.questions.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def append(
        self,
        record: ChunkRecord,
        rows: Sequence[Mapping[str, Any]],
        unanswerable: Sequence[Mapping[str, Any]],
    ) -> ChunkRecord:
        """Write one finished chunk's rows, then its state line (the commit); returns the
        record with the files' sizes."""
        q_bytes = _append(self.files.questions, "".join(_line(r) for r in rows))
        u_bytes = _append(self.files.unanswerable, "".join(_line(r) for r in unanswerable))
        done = ChunkRecord(
            record.chunk_id,
            dict(record.counts),
            dict(record.kinds),
            dict(record.candidate_kinds),
            round(record.seconds, 3),
            q_bytes,
            u_bytes,
            dict(record.extra),
        )
        _append(self.files.state, _line(asdict(done)))
        self.records.append(done)
        return done


def _changes(before: Any, now: Any, path: str = "") -> list[str]:
    """What differs between two settings trees, as ``synth.per_chunk: 3 -> 2`` lines (an
    output started before settings were recorded has none: an empty list)."""
    if not isinstance(before, Mapping) or not isinstance(now, Mapping):
        return [] if before == now or not path else [f"{path}: {before} -> {now}"]
    lines: list[str] = []
    for key in sorted(set(before) | set(now), key=str):
        where = f"{path}.{key}" if path else str(key)
        lines += _changes(before.get(key), now.get(key), where)
    return lines


def _line(row: Mapping[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False) + "\n"


def _append(path: Path, text: str) -> int:
    """Append ``text``, flushed to disk; the file's size after it."""
    with path.open("ab") as handle:
        if text:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        return handle.tell()


def _read_state(path: Path) -> tuple[dict[str, Any], list[ChunkRecord]]:
    """The header and the finished chunks' records; a torn last line is cut off the file."""
    data = path.read_bytes()
    header: dict[str, Any] | None = None
    records: list[ChunkRecord] = []
    good = 0
    for raw in data.splitlines(keepends=True):
        if not raw.endswith(b"\n"):
            break  # written partly when the process died
        try:
            row = json.loads(raw)
            if header is None:
                header = dict(row)
            else:
                records.append(ChunkRecord(**row))
        except (ValueError, TypeError) as exc:
            raise SynthError(
                f"{path} is damaged ({exc}); delete it and the files beside it to start again"
            ) from None
        good += len(raw)
    if header is None or header.get("v") != _FORMAT:
        raise SynthError(
            f"{path} is not a ragtune synth state file of format {_FORMAT}; delete it and the "
            "files beside it to start again"
        )
    if good < len(data):
        with path.open("r+b") as handle:
            handle.truncate(good)
    return header, records
