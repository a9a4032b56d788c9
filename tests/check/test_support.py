"""The support checker: signals on hand-made claims, fitting, AUROC, and the shipped calibration."""

from __future__ import annotations

import json
import random

import pytest

from ragtune.check.signals import lexical_signals, names, negations, numbers
from ragtune.check.support import (
    Calibration,
    ClaimItem,
    SupportChecker,
    auroc,
    fit_calibration,
    load_calibrations,
)

PASSAGE = (
    "The Cascade C700 blender has a 1,200 watt motor. Brightwater covers the motor for five years "
    "and the jar for two years. The warranty does not cover damage from dropping the jar. "
    "Claims go to Anna Fischer in the Leeds service centre."
)

SUPPORTED = [
    "The motor is covered for five years.",
    "The jar is covered for two years.",
    "The warranty does not cover a dropped jar.",
    "Claims go to the Leeds service centre.",
    "The C700 has a 1200 watt motor.",
]
UNSUPPORTED = [
    "The motor is covered for ten years.",  # number
    "The jar is covered for five years.",  # number moved between facts
    "The warranty covers damage from dropping the jar.",  # negation lost
    "Claims go to the Bristol service centre.",  # name swapped
    "Claims go to Anna Fischer in the Leeds service centre, who refunds them in cash.",  # addition
]


def test_numbers_names_negations() -> None:
    assert numbers("It costs 1,200 pounds for five years") == {"1200", "5"}
    assert names("Claims go to Anna Fischer in Leeds.") == {"anna", "fischer", "leeds"}
    assert negations("It does not work and won't start") == 2


@pytest.mark.parametrize("claim", [UNSUPPORTED[i] for i in (0, 2, 3)])
def test_lexical_signals_catch_swaps(claim: str) -> None:
    good = lexical_signals(SUPPORTED[UNSUPPORTED.index(claim)], [PASSAGE])
    bad = lexical_signals(claim, [PASSAGE])
    assert sum(good.values()) - 2 * good["negation"] > sum(bad.values()) - 2 * bad["negation"]


def test_shipped_calibration_separates_hand_made_claims() -> None:
    checker = SupportChecker()  # lexical signals, the shipped calibration
    good = checker.score_many([ClaimItem(c, [PASSAGE]) for c in SUPPORTED])
    bad = checker.score_many([ClaimItem(c, [PASSAGE]) for c in UNSUPPORTED])
    assert all(s.supported for s in good), [
        (c, s.score) for c, s in zip(SUPPORTED, good, strict=True)
    ]
    assert sum(s.supported for s in bad) <= 1, [
        (c, s.score) for c, s in zip(UNSUPPORTED, bad, strict=True)
    ]
    assert auroc([s.score for s in good + bad], [True] * 5 + [False] * 5) >= 0.9


def test_claim_against_an_unrelated_passage_is_unsupported() -> None:
    score = SupportChecker().score(
        "The motor is covered for five years.", ["Shipping takes three days."]
    )
    assert not score.supported and score.score < 0.5


def test_shipped_calibrations_cover_every_signal_set() -> None:
    calibrations = load_calibrations()
    assert {"lexical", "lexical+similarity", "all"} <= set(calibrations)
    for calibration in calibrations.values():
        assert 0.0 < calibration.threshold < 1.0
        assert "squad-dev" in calibration.source


def test_fit_recovers_a_separable_signal_and_sets_the_threshold() -> None:
    rng = random.Random(0)
    rows, labels = [], []
    for _ in range(200):
        label = rng.random() < 0.5
        rows.append({"good": rng.gauss(1.0 if label else -1.0, 0.5), "noise": rng.gauss(0, 1)})
        labels.append(label)
    calibration = fit_calibration(rows, labels, ["good", "noise"])
    assert calibration.weights[0] > 1.0 > abs(calibration.weights[1])
    scores = [calibration.probability(r) for r in rows]
    assert auroc(scores, labels) > 0.95
    accuracy = (
        sum((s >= calibration.threshold) == y for s, y in zip(scores, labels, strict=True)) / 200
    )
    assert accuracy > 0.9
    assert Calibration.from_dict(json.loads(json.dumps(calibration.to_dict()))) == calibration


def test_fit_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        fit_calibration([{"a": 1.0}], [True], ["a"])


def test_auroc_ties_and_edges() -> None:
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert auroc([1, 2, 3], [False, True, True]) == 1.0
    with pytest.raises(ValueError):
        auroc([1.0], [True])


def test_missing_or_broken_calibration_is_a_config_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from ragtune.errors import ConfigError

    with pytest.raises(ConfigError, match="not a calibration file"):
        load_calibrations(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{}")
    with pytest.raises(ConfigError, match="not a calibration file"):
        load_calibrations(tmp_path / "broken.json")
    only_lexical = {"lexical": load_calibrations()["lexical"]}
    with pytest.raises(ConfigError, match="no calibration for the signals 'lexical\\+evidence'"):
        SupportChecker(evidence_model=object(), calibrations=only_lexical)  # type: ignore[arg-type]
