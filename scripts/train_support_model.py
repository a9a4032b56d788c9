"""Rebuild the shipped support model: generate hard claims from squad-dev's training articles,
fine-tune a cross-encoder from the embedded all-MiniLM-L6-v2, calibrate it, write its card,
and (with ``--install``) put it in the package.

Steps:

1. Split the squad-dev articles as the grounding adapter does (``benchmarks/_common.
   article_part``): only ``train`` articles are read here; ``dev`` is left alone and ``held``
   is for ``benchmarks/checker_auroc.py``'s figures. The training articles are split again by
   a seeded hash of the title: about ``--calibration-share`` of them (at least one) calibrate,
   the rest train.
2. Generate every kind of claim (:mod:`ragtune.train.claims`) for their questions, seeded.
3. Fine-tune (:func:`ragtune.train.support_model.train_support_model`) on at most ``--claims``
   claims of the training part (whole questions at a time, seeded).
4. Write the model in its shipped form (float16, without the frozen word embeddings), load it
   back as users will, and measure how far its scores are from the float32 weights'.
5. On the calibration articles' claims, fit the logistic calibrations of the signal sets with
   ``support_model`` (lexical signals + the model's logit, and + embedder similarity), with the
   threshold that keeps at least ``--min-recall`` of the supported claims at the best balanced
   accuracy.
6. Write ``calibration.json``, the card (``card.json``: data hashes, recipe, metrics, probes;
   ``README.md``) and, with ``--install``, copy the folder to ``ragtune/check/shipped/``.

Rerun (from the repository root, alone on the machine)::

    .venv/bin/python scripts/train_support_model.py --data ../shared/data/squad-dev --install

then the held-out figures, which also go into the card::

    .venv/bin/python benchmarks/checker_auroc.py --data ../shared/data/squad-dev --card

Everything is written under ``--out`` (default ``benchmarks/out/support-model``). Training
saves a checkpoint there every 50 steps; the same command started again after an interruption
resumes from it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import _common  # noqa: E402

if TYPE_CHECKING:
    from ragtune.check.support_model import SupportModel
    from ragtune.train.claims import Claim
    from ragtune.train.support_model import SupportTrainSettings, TrainedSupportModel

LICENCE = "CC BY-SA 4.0"
PROBE_KINDS = ("paraphrase", "swap_same_passage", "negation", "answer")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=_common.DEFAULT_DATA)
    p.add_argument("--base", default="all-minilm-l6-v2", help="embedded model name or folder")
    p.add_argument("--out", type=Path, default=_common.DEFAULT_OUT / "support-model")
    p.add_argument("--install", action="store_true", help="copy the result into the package")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--claims", type=int, default=16000, help="training claims at most")
    p.add_argument("--calibration-claims", type=int, default=4000)
    p.add_argument("--calibration-share", type=float, default=0.2)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--max-length", type=int, default=320)
    p.add_argument("--min-recall", type=float, default=0.95)
    p.add_argument("--no-similarity", action="store_true", help="skip the +similarity set")
    args = p.parse_args(argv)
    data = _common.require_data(args.data, ["passages.jsonl", "questions.jsonl"])

    from ragtune.index.embedders import resolve_embedder_path
    from ragtune.train.claims import claims_sha256
    from ragtune.train.support_model import SupportTrainSettings, train_support_model

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    base = resolve_embedder_path(args.base)
    fit, calibration, split = _claims(data, args)
    print(
        f"claims: {len(fit)} to train on ({len(split['fit'])} articles), {len(calibration)} "
        f"to calibrate ({len(split['calibration'])} articles)",
        flush=True,
    )
    settings = SupportTrainSettings(
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        epochs=args.epochs,
        max_steps=args.max_steps,
        max_length=args.max_length,
        seed=args.seed,
    )

    def report(step: int, steps: int, loss: float) -> None:
        print(f"  step {step}/{steps}: loss {loss:.4f}", flush=True)

    # an interrupted run resumes from here when started again with the same arguments
    checkpoint = out / "checkpoint.pt"
    trained = train_support_model(base, fit, settings, progress=report, checkpoint=checkpoint)
    if trained.resumed_from:
        print(f"resumed from the checkpoint at step {trained.resumed_from}", flush=True)
    checkpoint.unlink(missing_ok=True)
    print(
        f"trained: {trained.steps} steps in {trained.seconds:.0f} s "
        f"({trained.claims_per_second:.2f} claims/s)",
        flush=True,
    )
    staging = out / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    model, fp16 = _write_and_reload(trained, staging, base, args, settings)
    metrics = _calibrate(model, calibration, staging, args)
    metrics |= fp16 | {
        "train_steps": trained.steps,
        "train_seconds": round(trained.seconds, 1),
        "train_claims_per_second": round(trained.claims_per_second, 3),
        "train_loss_last": trained.losses[-1] if trained.losses else None,
    }
    data_card = {
        "source": "squad-dev (SQuAD v1.1 dev questions and passages), training articles only",
        "licence": LICENCE,
        "files_sha256": {n: _sha256(data / n) for n in ("passages.jsonl", "questions.jsonl")},
        "articles": split,
        "train_claims": len(fit),
        "train_claims_sha256": claims_sha256(fit),
        "calibration_claims": len(calibration),
        "calibration_claims_sha256": claims_sha256(calibration),
        "kinds": _kind_counts(fit),
    }
    recipe = {
        "script": "scripts/train_support_model.py",
        "command": " ".join(["scripts/train_support_model.py", *(argv or sys.argv[1:])]),
        "settings": {k: v for k, v in vars(settings).items() if k != "freeze"}
        | {"freeze": list(settings.freeze)},
        "base": args.base,
        "calibration_share": args.calibration_share,
        "min_recall": args.min_recall,
    }
    _finish_card(staging, metrics, data_card, recipe, _probes(model, calibration))
    print(f"metrics: {json.dumps(metrics)}", flush=True)
    if args.install:
        from ragtune.check.support_model import SHIPPED_SUPPORT_MODEL

        shutil.rmtree(SHIPPED_SUPPORT_MODEL, ignore_errors=True)
        SHIPPED_SUPPORT_MODEL.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staging, SHIPPED_SUPPORT_MODEL)
        print(f"installed into {SHIPPED_SUPPORT_MODEL}", flush=True)
    return 0


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _claims(
    data: Path, args: argparse.Namespace
) -> tuple[list[Claim], list[Claim], dict[str, list[str]]]:
    """Claims of the training articles: (to train on, to calibrate on, the article split)."""
    titles = sorted(
        {
            r["title"]
            for r in _common.read_jsonl(data / "questions.jsonl")
            if _common.article_part(r["title"], args.seed) == "train"
        }
    )
    calibrating = _common.support_calibration_articles(titles, args.calibration_share, args.seed)
    split = {
        "fit": [t for t in titles if t not in calibrating],
        "calibration": sorted(calibrating),
    }
    claims = _common.squad_claims(data, set(titles).__contains__, seed=args.seed)
    fit = [c for c in claims if c.article not in calibrating]
    calibration = [c for c in claims if c.article in calibrating]
    return (
        _common.sample_claims(fit, args.claims, args.seed),
        _common.sample_claims(calibration, args.calibration_claims, args.seed),
        split,
    )


def _kind_counts(claims: Sequence[Claim]) -> dict[str, int]:
    return dict(sorted(Counter(c.kind for c in claims).items()))


def _write_and_reload(
    trained: TrainedSupportModel,
    folder: Path,
    base: Path,
    args: argparse.Namespace,
    settings: SupportTrainSettings,
) -> tuple[SupportModel, dict[str, float]]:
    """Write the shipped form, load it back, and compare its logits with float32's on probes."""
    import numpy as np

    from ragtune.check.support_model import load_support_model, write_support_model

    write_support_model(
        trained.model,
        folder,
        base_model=args.base,
        frozen=settings.freeze,
        max_length=settings.max_length,
    )
    loaded = load_support_model(folder, base)
    full = type(loaded)(trained.model, trained.tokenizer, loaded.card, {})
    items = [
        ("When did the crisis begin?", "The crisis began in October 1973.", _PASSAGE),
        ("When did the crisis begin?", "The crisis began in March 1974.", _PASSAGE),
        (None, "Prices rose to nearly $12 a barrel.", _PASSAGE),
        (None, "Prices did not rise.", _PASSAGE),
    ]
    a, b = full.logits(items), loaded.logits(items)
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    return loaded, {
        "float16_max_logit_difference": round(float(np.abs(a - b).max()), 5),
        "float16_max_probability_difference": round(float(np.abs(sig(a) - sig(b)).max()), 5),
    }


_PASSAGE = (
    "The 1973 oil crisis began in October 1973 when the members of OAPEC proclaimed an oil "
    "embargo. By the end of the embargo in March 1974, the price of oil had risen from US$3 "
    "per barrel to nearly $12 globally."
)


def _calibrate(
    model: SupportModel, claims: Sequence[Claim], folder: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Fit the calibrations with ``support_model`` on the calibration claims; write them."""
    from ragtune.check.support import (
        Calibration,
        ClaimItem,
        SupportChecker,
        auroc,
        fit_calibration,
        signal_set,
    )
    from ragtune.config import load_config

    embedder = None if args.no_similarity else load_config(_common.DEFAULT_CONFIG).embedder.build()
    items = [ClaimItem(c.claim, [c.evidence], c.question) for c in claims]
    labels = [c.supported for c in claims]
    key, names = signal_set(embedder is not None, False, True)
    placeholder = {
        key: Calibration(
            names, (0.0,) * len(names), 0.0, 0.5, (0.0,) * len(names), (1.0,) * len(names)
        )
    }
    started = time.perf_counter()
    rows = SupportChecker(
        embedder=embedder, support_model=model, calibrations=placeholder
    ).signals_for(items)
    seconds = time.perf_counter() - started
    fitted, metrics = (
        {},
        {
            "calibration_auroc_model_alone": round(
                auroc([r["support_model"] for r in rows], labels), 4
            )
        },
    )
    sets = [signal_set(False, False, True)] + ([signal_set(True, False, True)] if embedder else [])
    for name, signals in sets:
        calibration = fit_calibration(
            rows,
            labels,
            signals,
            min_recall=args.min_recall,
            source=f"squad-dev training articles held out from training ({len(rows)} claims, seed {args.seed})",
        )
        fitted[name] = calibration
        scores = [calibration.probability(r) for r in rows]
        kept = [s >= calibration.threshold for s in scores]
        metrics[f"calibration_auroc[{name}]"] = round(auroc(scores, labels), 4)
        metrics[f"calibration_kept_supported[{name}]"] = round(
            sum(k for k, y in zip(kept, labels, strict=True) if y) / max(1, sum(labels)), 4
        )
        metrics[f"calibration_dropped_unsupported[{name}]"] = round(
            sum(not k for k, y in zip(kept, labels, strict=True) if not y)
            / max(1, len(labels) - sum(labels)),
            4,
        )
        metrics[f"threshold[{name}]"] = calibration.threshold
    metrics["ms_per_claim_with_signals"] = round(1000 * seconds / max(1, len(rows)), 1)
    (folder / "calibration.json").write_text(
        json.dumps(
            {
                "note": "Fitted by scripts/train_support_model.py for these weights; do not edit by hand.",
                "calibrations": {k: c.to_dict() for k, c in fitted.items()},
            },
            indent=2,
        )
        + "\n"
    )
    return metrics


def _probes(model: SupportModel, claims: Sequence[Claim]) -> list[dict[str, Any]]:
    """A supported and an unsupported calibration claim of a few kinds, with their logits."""
    chosen: list[Claim] = []
    for kind in PROBE_KINDS:
        for label in (True, False):
            found = next((c for c in claims if c.kind == kind and c.supported == label), None)
            if found is not None:
                chosen.append(found)
    logits = model.logits([(c.question, c.claim, c.evidence) for c in chosen])
    return [
        {
            "question": c.question,
            "claim": c.claim,
            "evidence": c.evidence,
            "supported": c.supported,
            "kind": c.kind,
            "logit": round(float(v), 4),
        }
        for c, v in zip(chosen, logits, strict=True)
    ]


def _finish_card(
    folder: Path,
    metrics: dict[str, Any],
    data: dict[str, Any],
    recipe: dict[str, Any],
    probes: list[dict[str, Any]],
) -> None:
    from dataclasses import replace

    from ragtune.check.support_model import read_support_card, write_card

    card = replace(
        read_support_card(folder), metrics=metrics, data=data, recipe=recipe, probes=tuple(probes)
    )
    write_card(folder, card)
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    lines = [
        "# Support model (cross-encoder) for ragtune's checker",
        "",
        'Reads a question and a claim with an evidence passage and gives a logit for "the '
        "passage supports the claim\": the checker's `support_model` signal "
        "(`checker.signals: [support_model]`; `ragtune/check/support_model.py`). Fine-tuned "
        f"from the embedded all-MiniLM-L6-v2 (`{recipe['base']}`); this folder holds only the "
        f"tensors that changed, in float16 ({size / 2**20:.1f} MiB with this card); the frozen "
        "word embeddings come from the base model at load and are checked against "
        f"`base_sha256` (`{card.base_sha256[:16]}...`).",
        "",
        "## Data and licence",
        "",
        "Claims generated by `ragtune/train/claims.py` from the questions and passages of the "
        "**training articles** of squad-dev (derived from the SQuAD v1.1 development set; "
        f"Rajpurkar et al. 2016), licensed **{LICENCE}**. The articles held back for the "
        "published figures (`benchmarks/_common.article_part`: `held`) and the grounding "
        "adapter's dev articles were not read.",
        "",
        f"- training articles: {', '.join(data['articles']['fit'])}",
        f"- calibration articles (threshold, calibration; not trained on): "
        f"{', '.join(data['articles']['calibration'])}",
        f"- training claims: {data['train_claims']} (sha256 `{data['train_claims_sha256']}`)",
        f"- calibration claims: {data['calibration_claims']} "
        f"(sha256 `{data['calibration_claims_sha256']}`)",
        f"- squad-dev files: {json.dumps(data['files_sha256'])}",
        "",
        "## Recipe",
        "",
        f"`{recipe['command']}`",
        "",
        "```json",
        json.dumps(recipe["settings"], indent=2),
        "```",
        "",
        "## Figures",
        "",
        "On the calibration articles' claims (not trained on):",
        "",
        *[f"- {k}: {v}" for k, v in metrics.items()],
        "",
        "Held-out figures (`benchmarks/checker_auroc.py --card`) follow when measured.",
        "",
    ]
    (folder / "README.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
