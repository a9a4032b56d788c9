"""The notebooks run top to bottom on a tiny set (tiny models, a few questions).

Each notebook's cell tagged ``parameters`` is followed by a cell that sets the tiny set's
paths, as a user would override them; the notebooks themselves only call ragtune.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.eval.records import PASSAGES, QUESTIONS, UNANSWERABLE, tiny_pipeline, write_jsonl

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("notebooks")
    data = root / "data"
    data.mkdir()
    write_jsonl(data / "passages.jsonl", PASSAGES)
    write_jsonl(data / "questions.jsonl", QUESTIONS)
    write_jsonl(data / "unanswerable.jsonl", UNANSWERABLE)
    config = tiny_pipeline(root, tiny_model_dir)
    (root / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return {"root": root, "data": data, "config": root / "config.yaml", "llama": root / "llama"}


def _run(notebook: str, overrides: dict[str, Any], cwd: Path) -> Any:
    import nbformat
    from nbclient import NotebookClient

    book = nbformat.read(NOTEBOOKS / notebook, as_version=4)
    at = next(
        i for i, c in enumerate(book.cells) if "parameters" in c.get("metadata", {}).get("tags", [])
    )
    source = "\n".join(f"{name} = {value!r}" for name, value in overrides.items())
    book.cells.insert(at + 1, nbformat.v4.new_code_cell(source))
    NotebookClient(
        book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return book


def _outputs(book: Any) -> str:
    texts = []
    for cell in book.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            texts += [str(v) for k, v in output.get("data", {}).items() if k != "image/png"]
    return "\n".join(texts)


def _images(book: Any) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in book.cells
        for output in cell.get("outputs", [])
    )


def test_grounding_quality_notebook(tiny_set: dict[str, Any]) -> None:
    root = tiny_set["root"]
    book = _run(
        "grounding_quality.ipynb",
        {
            "DATA": str(tiny_set["data"]),
            "QUESTIONS": str(tiny_set["data"] / "questions.jsonl"),
            "UNANSWERABLE": str(tiny_set["data"] / "unanswerable.jsonl"),
            "CONFIG": str(tiny_set["config"]),
            "INDEX": str(root / "index"),
            "OUT": str(root / "runs" / "grounding"),
            "LIMIT": None,
        },
        root,
    )
    text = _outputs(book)
    assert "5 questions" in text and "| answer.f1 |" in text
    assert _images(book) == 4
    assert json.loads((root / "runs" / "grounding" / "summary.json").read_text())["n"] == 5


def test_adapters_compare_notebook(tiny_set: dict[str, Any]) -> None:
    from ragtune.generate import AdapterRegistry
    from ragtune.generate.adapters import AdapterCard, new_adapter, save_adapter
    from ragtune.generate.models import load_base_model
    from tests.generate.conftest import spec_for

    root = tiny_set["root"]
    registry = AdapterRegistry(root / "adapters")
    for kind in ("prompt", "prefix", "lora"):
        base = load_base_model(tiny_set["llama"], device="cpu", grounding="none", quantize="none")
        card = AdapterCard(
            name=kind,
            tenant="acme",
            kind=kind,  # type: ignore[arg-type]
            base_model=base.name,
            base_weights_sha256=base.weights_sha256,
        )
        folder = save_adapter(new_adapter(base, spec_for(kind)), root / f"made-{kind}", card)
        registry.register(folder)
    book = _run(
        "adapters_compare.ipynb",
        {
            "DATA": str(tiny_set["data"]),
            "CONFIG": str(tiny_set["config"]),
            "INDEX": str(root / "index2"),
            "OUT": str(root / "runs" / "adapters"),
            "REPORT": str(root / "runs" / "report"),
            "LIMIT": 2,
            "ADAPTERS": {k: f"acme/{k}" for k in ("prompt", "prefix", "lora")},
        },
        root,
    )
    text = _outputs(book)
    assert text.count("Paired on 4 questions") == 3
    for name in ("base", "prompt", "prefix", "lora"):
        records = (root / "runs" / "adapters" / name / "records.jsonl").read_text().splitlines()
        used = {
            (json.loads(line)["adapter"], json.loads(line)["adapter_version"]) for line in records
        }
        assert used == ({(None, None)} if name == "base" else {(f"acme/{name}", 1)}), used
    assert (root / "runs" / "report" / "report.html").is_file()
