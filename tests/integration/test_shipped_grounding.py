"""The shipped grounding adapter: it loads into the embedded model, matches its card, and the
default config answers a sample-corpus question in a few words with a cited, supported answer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ragtune import Assistant
from ragtune.config import load_config
from ragtune.generate import load_base_model
from ragtune.generate.grounding import grounded_sha256, shipped_grounding
from ragtune.generate.models import weights_sha256
from ragtune.indexing import build_index

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]


def test_the_shipped_adapter_matches_its_card_and_merges() -> None:
    folder = shipped_grounding("smollm2-135m-instruct")
    card = json.loads((folder / "adapter.json").read_text())
    assert card["kind"] == "lora" and card["training_data_sha256"]
    assert "CC BY-SA 4.0" in (folder / "README.md").read_text()
    assert (folder / "answerability.json").is_file()
    assert sum(p.stat().st_size for p in folder.iterdir()) < 50 * 2**20
    grounded = load_base_model(device="cpu")
    assert grounded.grounded and grounded.bare_weights_sha256 == card["base_weights_sha256"]
    assert grounded.weights_sha256 == grounded_sha256(
        card["base_weights_sha256"], weights_sha256(folder)
    )


@pytest.fixture(scope="module")
def assistant(tmp_path_factory: pytest.TempPathFactory) -> Assistant:
    root = tmp_path_factory.mktemp("grounded")
    shutil.copytree(ROOT / "examples" / "acme", root / "acme")
    config = load_config(ROOT / "configs" / "default.yaml")
    build_index(
        [root / "acme"],
        root / "index",
        embedder=config.embedder.build(),
        settings=config.build_settings(),
    )
    with Assistant.from_config(config, index=root / "index") as built:
        yield built


def test_a_sample_question_gets_a_short_cited_supported_answer(assistant: Assistant) -> None:
    answer = assistant.ask("How much does express shipping cost?")
    assert not answer.abstained, answer
    assert "8.50" in answer.text and len(answer.text.split()) <= 12
    assert answer.grounded and all(s.supported for s in answer.sentences)
    cited = {c.passage.source for s in answer.sentences for c in s.citations if c.passage}
    assert any("shipping.md" in source for source in cited)
    assert answer.answerability["probability"] >= 0.0


def test_a_question_the_documents_cannot_answer_is_abstained_on(assistant: Assistant) -> None:
    answer = assistant.ask("Who is the chief executive of Brightwater and what is their salary?")
    assert answer.abstained
