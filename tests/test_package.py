"""The package's shape: public API, light import, stage packages independent of each other."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import ragtune

ROOT = Path(ragtune.__file__).parent
STAGES = ["ingest", "index", "retrieve", "generate", "check", "guard"]


def test_public_api_is_what_all_lists():
    for name in ragtune.__all__:
        assert hasattr(ragtune, name), name
    public = {n for n in vars(ragtune) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(ragtune, n)).__name__ == "module"}
    assert public - modules - set(ragtune.__all__) == set()


def test_import_ragtune_does_not_load_heavy_libraries():
    code = "import sys, ragtune; print(sorted(m for m in ('torch','transformers','faiss','sentence_transformers','bm25s') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("stage", STAGES)
def test_stage_packages_do_not_import_each_other(stage):
    others = {f"ragtune.{s}" for s in STAGES if s != stage} | {
        "ragtune.config",
        "ragtune.cli",
        "ragtune.indexing",
        "ragtune.assistant",
        "ragtune.telemetry",
        "ragtune.eval",
        "ragtune.live",
        "ragtune.serve",
    }
    _assert_no_imports(stage, others)


def test_live_sits_below_config_and_the_assistant():
    """ragtune.live (live metrics, canary decisions, feedback) is used by the Assistant and the
    server, and uses the stages, never the other way round."""
    _assert_no_imports(
        "live", {"ragtune.config", "ragtune.assistant", "ragtune.cli", "ragtune.serve"}
    )


def _assert_no_imports(package: str, forbidden: set[str]) -> None:
    for path in (ROOT / package).rglob("*.py"):
        found = _imports(path)
        bad = {m for m in found if any(m == o or m.startswith(o + ".") for o in forbidden)}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
