"""``ragtune ask``: one question through the whole pipeline, printed or as JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

__all__ = ["ask"]

_MARKS = {"supported": "✓", "unsupported": "✗", "no citation": "?", "invalid citation": "!"}


def ask(
    question: str | None = typer.Argument(None, help="The question (or use --questions)."),
    questions: Path | None = typer.Option(
        None, "--questions", "-q", help="A file of questions, one per line."
    ),
    config: Path = typer.Option(
        Path("configs/default.yaml"), "--config", "-c", help="ragtune config (YAML)."
    ),
    tenant: str | None = typer.Option(
        None, "--tenant", "-t", help="Answer from this tenant's documents."
    ),
    adapter: str | None = typer.Option(
        None,
        "--adapter",
        "-a",
        help="tenant/name[@vN], none (the base model) or folder:PATH; default: the "
        "tenant's default adapter (adapters.defaults).",
    ),
    index: Path | None = typer.Option(None, "--index", help="Override the config's index folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole Answer as JSON."),
) -> None:
    """Answer QUESTION from the indexed documents, with sources and a support mark per sentence."""
    from ragtune.assistant import Assistant
    from ragtune.errors import AdapterNotFoundError, RequestError
    from ragtune.types import TENANT_DEFAULT

    asked = [question] if question else []
    if questions is not None:
        if not questions.is_file():
            raise RequestError(f"no such file: {questions}")
        asked += [
            line.strip()
            for line in questions.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    if not asked:
        raise RequestError("give a question, or --questions FILE with one question per line")
    with Assistant.from_config(config, index=index) as assistant:
        grounding = assistant.generator.status().grounding
        base_note = "base model" if grounding == "none" else f"base model + grounding {grounding}"
        for number, text in enumerate(asked):
            try:
                answer = assistant.ask(
                    text, tenant=tenant, adapter=TENANT_DEFAULT if adapter is None else adapter
                )
            except AdapterNotFoundError as exc:  # say where it looked (the config's root)
                where = assistant.registry.storage.location if assistant.registry else "none"
                raise AdapterNotFoundError(
                    f"{exc} in the adapter registry {where} (adapters.root of {config}; pass "
                    "--config with the root the adapter was trained into)"
                ) from None
            if as_json:
                json.dump(
                    answer.to_dict(),
                    sys.stdout,
                    indent=None if len(asked) > 1 else 2,
                    ensure_ascii=False,
                )
                sys.stdout.write("\n")
                continue
            if len(asked) > 1:
                print(f"{'' if number == 0 else chr(10)}Q: {text}")
            _print(answer, base_note)


def _print(answer: Any, base_note: str) -> None:
    print(answer.text)
    print()
    # an abstention shows the sentences the checker dropped, so the user sees what was withheld
    rows = answer.dropped if answer.abstained else answer.checked
    if rows:
        for sentence in rows:
            numbers = ", ".join(str(c.number) for c in sentence.citations) or "-"
            verdict = f"{sentence.verdict}{' (dropped)' if sentence in answer.dropped else ''}"
            how = "  attributed by the checker" if sentence.attributed else ""
            print(
                f"  {_MARKS.get(sentence.verdict, '?')} {verdict:<26} support {sentence.support:.2f}  "
                f"[{numbers}]  {sentence.claim}{how}"
            )
        print()
    shown = answer.cited or answer.passages
    if shown:
        print("Sources:")
        for number, passage in enumerate(shown, 1):
            print(
                f"  [{number}] {passage.source} chars {passage.start}-{passage.end}  {passage.title}".rstrip()
            )
    status = (
        "abstained (" + (answer.abstain_reason or "") + ")"
        if answer.abstained
        else ("grounded" if answer.grounded else "NOT grounded")
    )
    adapter_note = (
        f"{base_note} + {answer.adapter}@v{answer.adapter_version}" if answer.adapter else base_note
    )
    print(
        f"\n{status}; {adapter_note}; citation recall {answer.citation_recall:.2f}, "
        f"precision {answer.citation_precision:.2f}; {answer.timings.total * 1000:.0f} ms"
    )
    for flag in answer.flags:
        print(f"note: {flag}")
