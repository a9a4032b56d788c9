"""Rated answers as an eval question file (the format :func:`ragtune.eval.read_questions` reads),
so what users corrected or approved becomes test or training data.

Per rated answer, one line ``{"id", "question", "answers", "passage_id", "answerable", ...}``:

- with a correction: ``answers`` is ``[correction]``;
- rated up: the answer as given (citation markers removed), or, for an abstention, no answers
  and ``answerable: false`` (the user agreed the documents do not say);
- rated down without a correction: left out (nothing says what the answer should have been),
  and counted.

``passage_id`` is the document the answer cited first, absent when it cited none: ``ragtune
eval`` scores retrieval against it, and ``ragtune train`` takes that document's passage holding
the answer as the gold passage (it skips answerable questions without one). A correction whose
answer lies in another document than the one cited is worth a look before training on it.

Extra fields (``rating``, ``corrected``, ``adapter``, ``adapter_version``) say where each line
came from; the eval reader ignores them. The file is written whole or not at all.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragtune.check.citations import strip_markers
from ragtune.live.store import LiveStore, RatedAnswer

__all__ = ["ExportSummary", "export_feedback", "question_line"]


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    written: int
    skipped: int
    """Answers rated down without a correction."""


def question_line(rated: RatedAnswer) -> dict[str, Any] | None:
    """The eval question of one rated answer, or None when it teaches nothing (see above)."""
    if rated.correction is not None:
        answers, answerable = [rated.correction], True
    elif rated.rating == "up" and rated.abstained:
        answers, answerable = [], False
    elif rated.rating == "up":
        answers, answerable = [strip_markers(rated.answer).strip()], True
    else:
        return None
    line: dict[str, Any] = {
        "id": rated.response_id,
        "question": rated.question,
        "answers": answers,
        "answerable": answerable,
        "rating": rated.rating,
        "corrected": rated.correction is not None,
        "adapter": rated.adapter,
        "adapter_version": rated.version,
    }
    if answerable and rated.documents:
        line["passage_id"] = rated.documents[0]
    return line


def export_feedback(store: LiveStore, out: Path) -> ExportSummary:
    """Write ``store``'s rated answers to ``out`` as JSONL (see the module doc)."""
    lines, skipped = [], 0
    for rated in store.rated():
        line = question_line(rated)
        if line is None:
            skipped += 1
        else:
            lines.append(json.dumps(line, ensure_ascii=False))
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = out.with_name(f".{out.name}.tmp")
    temp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    os.replace(temp, out)
    return ExportSummary(out, len(lines), skipped)
