"""The shipped support model: it loads offline from the package, matches its card, and its
calibrated scores point the right way on hand-written claims.

Skipped until the model is built and installed (``scripts/train_support_model.py --install``).
"""

from __future__ import annotations

import json

import pytest

from ragtune.check.support import SupportChecker
from ragtune.check.support_model import SHIPPED_SUPPORT_MODEL, read_support_card
from ragtune.config import load_config

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (SHIPPED_SUPPORT_MODEL / "card.json").is_file(),
        reason="no shipped support model yet: build it with scripts/train_support_model.py --install",
    ),
]

PASSAGE = (
    "Brightwater opened its first store in Leeds in 1994. Its founder, Anna Fischer, later "
    "moved the head office to York. The company does not sell refurbished blenders."
)


@pytest.fixture(scope="module")
def checker() -> SupportChecker:
    model = load_config({"checker": {"signals": ["support_model"]}}).build_support_model()
    assert model is not None
    return SupportChecker(support_model=model)


def test_the_shipped_model_matches_its_card(checker: SupportChecker) -> None:
    card = read_support_card(SHIPPED_SUPPORT_MODEL)
    assert card.base_model == "all-minilm-l6-v2" and card.dtype == "float16"
    assert len(card.data["train_claims_sha256"]) == 64 and card.data["licence"] == "CC BY-SA 4.0"
    assert "CC BY-SA 4.0" in (SHIPPED_SUPPORT_MODEL / "README.md").read_text()
    size = sum(p.stat().st_size for p in SHIPPED_SUPPORT_MODEL.iterdir() if p.is_file())
    assert size < 50 * 2**20
    model = checker.support_model
    assert model is not None and len(card.probes) >= 4
    for probe in card.probes:
        logit = model.logits([(probe["question"], probe["claim"], probe["evidence"])])[0]  # type: ignore[attr-defined]
        assert logit == pytest.approx(probe["logit"], abs=1e-3), json.dumps(probe)
    assert card.metrics["float16_max_probability_difference"] < 0.01


def test_scores_point_the_right_way(checker: SupportChecker) -> None:
    question = "Where did Brightwater open its first store?"
    paraphrase = checker.score(
        "Brightwater's first shop opened in Leeds in 1994.", [PASSAGE], question
    )
    swap = checker.score("Brightwater opened its first store in York in 1994.", [PASSAGE], question)
    negation = checker.score(
        "The company sells refurbished blenders.",
        [PASSAGE],
        "Does Brightwater sell refurbished blenders?",
    )
    assert paraphrase.supported, paraphrase
    assert not swap.supported and not negation.supported, (swap, negation)
    assert paraphrase.score > max(swap.score, negation.score)
    assert swap.signals["support_model"] < paraphrase.signals["support_model"]
