"""scripts/train_support_model.py end to end on a tiny squad-dev-like folder and a tiny encoder:
claims of the training articles only, a few steps, the shipped form, calibration and card."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import _common  # noqa: E402

TEMPLATE = (
    "The {name} crisis began in October {year} when the members of {group} proclaimed an "
    "embargo. By March {next}, the price had risen from US$3 per barrel to nearly ${price}. "
    "The embargo was ordered by {leader} before the war ended. It caused shortages in Japan."
)
QUESTIONS = [
    ("When did the {name} crisis begin?", "October {year}"),
    ("What was the price in March {next}?", "nearly ${price}"),
    ("Who ordered the embargo?", "{leader}"),
    ("Who proclaimed the embargo?", "{group}"),
]
LEADERS = [
    "King Faisal",
    "Anwar Sadat",
    "Golda Meir",
    "Richard Nixon",
    "Edward Heath",
    "Olof Palme",
]


def _data(root: Path) -> Path:
    titles = [f"Article {i}" for i in range(40)]
    train = [t for t in titles if _common.article_part(t) == "train"][:4]
    held = [t for t in titles if _common.article_part(t) == "held"][:1]
    passages, questions = [], []
    for a, title in enumerate(train + held):
        for p in range(2):
            values = {
                "name": f"{title} {p}",
                "year": 1950 + 3 * a + p,
                "next": 1951 + 3 * a + p,
                "price": 10 + a + p,
                "group": f"Group {chr(65 + a)}{p}",
                "leader": LEADERS[(a + p) % len(LEADERS)],
            }
            pid = f"{title}#{p}"
            passages.append({"id": pid, "title": title, "text": TEMPLATE.format(**values)})
            for k, (q, ans) in enumerate(QUESTIONS):
                questions.append(
                    {
                        "id": f"{pid}-{k}",
                        "question": q.format(**values),
                        "answers": [ans.format(**values)],
                        "passage_id": pid,
                        "title": title,
                        "answerable": True,
                    }
                )
    folder = root / "squad"
    folder.mkdir()
    for name, rows in (("passages.jsonl", passages), ("questions.jsonl", questions)):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _script() -> object:
    spec = importlib.util.spec_from_file_location(
        "train_support_model", ROOT / "scripts" / "train_support_model.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(300)
def test_the_script_trains_writes_and_calibrates_a_loadable_model(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    from ragtune.check.support_model import load_support_model

    data = _data(tmp_path)
    out = tmp_path / "out"
    script = _script()
    code = script.main(  # type: ignore[attr-defined]
        [
            "--data", str(data), "--base", str(tiny_model_dir), "--out", str(out),
            "--claims", "60", "--calibration-claims", "60", "--calibration-share", "0.3",
            "--max-steps", "3", "--batch-size", "4", "--max-length", "96", "--no-similarity",
        ]
    )  # fmt: skip
    assert code == 0
    folder = out / "staging"
    card = json.loads((folder / "card.json").read_text())
    held = [
        t
        for t in {json.loads(line)["title"] for line in (data / "questions.jsonl").open()}
        if _common.article_part(t) == "held"
    ]
    articles = card["data"]["articles"]
    assert held and not set(held) & set(articles["fit"] + articles["calibration"])
    assert articles["calibration"] and not set(articles["calibration"]) & set(articles["fit"])
    assert (
        card["data"]["licence"] == "CC BY-SA 4.0" and len(card["data"]["train_claims_sha256"]) == 64
    )
    assert card["metrics"]["train_steps"] == 3
    assert card["metrics"]["float16_max_probability_difference"] < 0.01
    assert {p["kind"] for p in card["probes"]} >= {"negation", "swap_same_passage"}
    assert "CC BY-SA 4.0" in (folder / "README.md").read_text()
    model = load_support_model(folder, tiny_model_dir)
    assert "lexical+support_model" in model.calibrations
    probe = card["probes"][0]
    logit = model.logits([(probe["question"], probe["claim"], probe["evidence"])])[0]
    assert logit == pytest.approx(probe["logit"], abs=1e-3)
