"""Checker quality (issue 4): AUROC of support scores on real claims, and the shipped calibration.

Claims come from ../shared/data/squad-dev. For an answerable question, the *supported* claim is
the sentence of its gold passage that contains the gold answer; the *unsupported* claim is the
same sentence with the answer swapped for another answer of the same type (number, name, other)
from another question on the same article. The evidence is the gold passage. A checker must
tell them apart: the swapped sentence reads just as fluently and shares almost every word.

Each pair also gives a negated claim (a "not" added after the first auxiliary verb, or
removed), so the negation signal has something to learn from, and a short claim: the answer with six words either side, supported or
swapped, closer to what a generator writes than a whole verbatim sentence (whose similarity to
its source is exactly 1). The calibration is fitted on both kinds; the figure is the issue's
(whole sentences), and the short claims are reported next to it.

Articles are split in two by name order: the calibration (logistic weights and threshold for
every signal set) is fitted on the even articles, AUROC is measured on the odd ones. With
``--write`` the fitted calibrations become the package's shipped defaults
(``ragtune/check/calibration.json``). Goal: AUROC >= 0.95.

Rerun (from the repository root)::

    .venv/bin/python benchmarks/checker_auroc.py --data ../shared/data/squad-dev --pairs 300 --write

Results go to ``benchmarks/out/checker_auroc.json``.
"""

from __future__ import annotations

import json
import random
import re
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

GOAL = 0.95
SETS = ("lexical", "lexical+similarity", "lexical+evidence", "all")


def answer_type(answer: str) -> str:
    if re.search(r"\d", answer) or re.search(
        r"\b(one|two|three|four|five|six|seven|eight|nine|ten|hundred|thousand|million)\b",
        answer.lower(),
    ):
        return "number"
    if answer[:1].isupper():
        return "name"
    return "other"


def _window(sentence: str, answer: str, words: int = 6) -> str | None:
    """The answer with a few words either side, as a short claim: what a generated answer
    looks like more than a whole source sentence does (not verbatim, so similarity < 1)."""
    at = sentence.find(answer)
    before = sentence[:at].split()[-words:]
    after = sentence[at + len(answer) :].split()[:words]
    claim = " ".join([*before, answer, *after]).strip(" ,;:")
    if len(claim.split()) < 5 or claim == sentence.strip():
        return None
    return claim[0].upper() + claim[1:].rstrip(".") + "."


_AUX = re.compile(r"\b(is|was|are|were|can|could|will|would|has|have|had|does|did)\b")


def _negate(sentence: str) -> str | None:
    """The sentence contradicted by a negation added or removed (None when neither applies)."""
    if re.search(r"\bnot\b", sentence):
        return re.sub(r"\s*\bnot\b", "", sentence, count=1)
    match = _AUX.search(sentence)
    if match is None:
        return None
    return sentence[: match.end()] + " not" + sentence[match.end() :]


def build_pairs(data: Path, seed: int) -> dict[str, list[dict[str, Any]]]:
    """{"fit": [...], "eval": [...]} of {"claim", "passage", "question", "label", "article"}."""
    from ragtune.check.citations import split_sentences

    passages = {p["id"]: p for p in _common.read_jsonl(data / "passages.jsonl")}
    questions = [
        q for q in _common.read_jsonl(data / "questions.jsonl") if q.get("answerable", True)
    ]
    by_article: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for q in questions:
        by_article[q["title"]].append(q)
    articles = sorted(by_article)
    split = {a: ("fit" if i % 2 == 0 else "eval") for i, a in enumerate(articles)}
    rng = random.Random(seed)
    pairs: dict[str, list[dict[str, Any]]] = {"fit": [], "eval": []}
    for article in articles:
        pool: dict[str, list[str]] = defaultdict(list)
        for q in by_article[article]:
            answer = q["answers"][0].strip()
            pool[answer_type(answer)].append(answer)
        items = by_article[article][:]
        rng.shuffle(items)
        for q in items:
            answer = q["answers"][0].strip()
            passage = passages[q["passage_id"]]["text"]
            sentence = next((s for s, _a, _b in split_sentences(passage) if answer in s), None)
            if sentence is None or len(answer) < 2:
                continue
            candidates = [
                b
                for b in pool[answer_type(answer)]
                if b.lower() != answer.lower()
                and b.lower() not in sentence.lower()
                and answer.lower() not in b.lower()
                and b.lower() not in answer.lower()
            ]
            if not candidates:
                continue
            other = rng.choice(candidates)
            swapped = sentence.replace(answer, other, 1)
            window = _window(sentence, answer)
            claims = [(sentence, True, "sentence"), (swapped, False, "sentence")]
            if window:
                claims += [
                    (window, True, "window"),
                    (window.replace(answer, other, 1), False, "window"),
                ]
            negated = _negate(sentence)
            if negated:
                claims += [(negated, False, "negation")]
            for claim, label, kind in claims:
                pairs[split[article]].append(
                    {
                        "claim": claim,
                        "passage": passage,
                        "question": q["question"],
                        "label": label,
                        "article": article,
                        "id": q["id"],
                        "kind": kind,
                    }
                )
    return pairs


def main(argv: Sequence[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=300, help="claim pairs per split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write", action="store_true", help="write the package's calibration.json")
    p.add_argument("--no-evidence", action="store_true", help="skip the generator signal (fast)")
    args = p.parse_args(argv)
    data = _common.require_data(args.data, ["passages.jsonl", "questions.jsonl"])

    from ragtune.check.signals import LEXICAL_SIGNALS
    from ragtune.check.support import ClaimItem, SupportChecker, auroc, fit_calibration, signal_set
    from ragtune.config import load_config

    all_pairs = build_pairs(data, args.seed)
    rng = random.Random(args.seed)
    chosen = {}
    for split, items in all_pairs.items():
        ids = sorted({i["id"] for i in items})
        rng.shuffle(ids)
        keep = set(ids[: args.pairs])
        chosen[split] = [i for i in items if i["id"] in keep]
        print(
            f"{split}: {len(chosen[split]) // 2} pairs from {len({i['article'] for i in chosen[split]})} articles",
            flush=True,
        )

    config = load_config(args.config)
    embedder = config.embedder.build()
    evidence = None if args.no_evidence else config.build_generator()
    # Signals only: a placeholder calibration over the lexical set lets the checker compute rows.
    from ragtune.check.support import Calibration

    dummy = {
        key: Calibration(
            names, (0.0,) * len(names), 0.0, 0.5, (0.0,) * len(names), (1.0,) * len(names)
        )
        for key, names in (signal_set(s, e) for s in (False, True) for e in (False, True))
    }
    checker = SupportChecker(embedder=embedder, evidence_model=evidence, calibrations=dummy)
    rows: dict[str, list[dict[str, float]]] = {}
    seconds = {}
    for split, items in chosen.items():
        started = time.perf_counter()
        out: list[dict[str, float]] = []
        for batch in _common.chunked(items, 32):
            out += checker.signals_for(
                [ClaimItem(i["claim"], [i["passage"]], i["question"]) for i in batch]
            )
            print(f"  {split}: {len(out)}/{len(items)} claims", end="\r", flush=True)
        rows[split] = out
        seconds[split] = time.perf_counter() - started
        print(f"  {split}: {len(out)} claims in {seconds[split]:.0f}s", flush=True)

    results: dict[str, Any] = {
        "figure": "checker_auroc",
        "machine": _common.machine_info(),
        "pairs": {s: len(v) // 2 for s, v in chosen.items()},
        "seconds_per_claim": round(sum(seconds.values()) / sum(len(v) for v in chosen.values()), 4),
        "sets": {},
    }
    calibrations = {}
    labels = {s: [i["label"] for i in chosen[s]] for s in chosen}
    for key in SETS:
        names = (
            list(LEXICAL_SIGNALS)
            + (["similarity"] if "similarity" in key or key == "all" else [])
            + (["evidence"] if "evidence" in key or key == "all" else [])
        )
        if "evidence" in names and evidence is None:
            continue
        calibration = fit_calibration(
            rows["fit"],
            labels["fit"],
            names,
            source=f"squad-dev even articles, {len(rows['fit'])} claims, seed {args.seed}",
        )
        calibrations[key] = calibration
        kinds = [i["kind"] for i in chosen["eval"]]
        sentence_rows = [r for r, k in zip(rows["eval"], kinds, strict=True) if k == "sentence"]
        sentence_labels = [y for y, k in zip(labels["eval"], kinds, strict=True) if k == "sentence"]
        window_rows = [r for r, k in zip(rows["eval"], kinds, strict=True) if k == "window"]
        window_labels = [y for y, k in zip(labels["eval"], kinds, strict=True) if k == "window"]
        eval_scores = [calibration.probability(r) for r in sentence_rows]
        predicted = [s >= calibration.threshold for s in eval_scores]
        accuracy = sum(p == y for p, y in zip(predicted, sentence_labels, strict=True)) / len(
            predicted
        )
        single = {n: round(auroc([r[n] for r in sentence_rows], sentence_labels), 4) for n in names}
        window_scores = [calibration.probability(r) for r in window_rows]
        window_accuracy = sum(
            (s >= calibration.threshold) == y
            for s, y in zip(window_scores, window_labels, strict=True)
        ) / max(len(window_scores), 1)
        results["sets"][key] = {
            "auroc": round(auroc(eval_scores, sentence_labels), 4),
            "auroc_windows": round(auroc(window_scores, window_labels), 4) if window_rows else None,
            "accuracy_windows": round(window_accuracy, 4),
            "accuracy_at_threshold": round(accuracy, 4),
            "threshold": round(calibration.threshold, 4),
            "signal_auroc": single,
            "weights": dict(zip(names, (round(w, 3) for w in calibration.weights), strict=True)),
        }
    best = max(results["sets"], key=lambda k: results["sets"][k]["auroc"])
    default = "all" if "all" in results["sets"] else best
    results["goal"] = {
        "set": default,
        "auroc": results["sets"][default]["auroc"],
        "met": results["sets"][default]["auroc"] >= GOAL,
    }
    path = _common.write_results(args.out, "checker_auroc", results)
    if args.write:
        target = Path(__file__).resolve().parents[1] / "ragtune" / "check" / "calibration.json"
        previous = json.loads(target.read_text()) if target.is_file() else {}
        kept = {k: v for k, v in previous.get("calibrations", {}).items() if k not in calibrations}
        kept_auroc = {
            k: v for k, v in previous.get("heldout_auroc", {}).items() if k not in calibrations
        }
        target.write_text(
            json.dumps(
                {
                    "note": "Fitted by benchmarks/checker_auroc.py on squad-dev (even articles); do not edit by hand.",
                    "calibrations": kept | {k: c.to_dict() for k, c in calibrations.items()},
                    "heldout_auroc": kept_auroc
                    | {k: v["auroc"] for k, v in results["sets"].items()},
                },
                indent=2,
            )
            + "\n"
        )
        print(f"wrote {target}")
    print(f"\n### Checker AUROC (held-out articles, {results['pairs']['eval']} pairs)\n")
    print(
        _common.markdown_table(
            [
                "signals",
                "AUROC (sentences)",
                "accuracy (sentences)",
                "AUROC (short claims)",
                "accuracy (short claims)",
                "threshold",
            ],
            [
                [
                    k,
                    v["auroc"],
                    v["accuracy_at_threshold"],
                    v["auroc_windows"],
                    v["accuracy_windows"],
                    v["threshold"],
                ]
                for k, v in results["sets"].items()
            ],
        )
    )
    print("\nSingle-signal AUROC (all set):", results["sets"][default]["signal_auroc"])
    print(
        f"Goal AUROC >= {GOAL} ({default}): {results['goal']['auroc']} -> {'MET' if results['goal']['met'] else 'NOT MET'}"
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
