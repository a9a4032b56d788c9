"""``ragtune check``: score claims against passages, standalone (JSON lines in, JSON lines out)."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import typer

from ragtune.errors import RequestError

__all__ = ["check"]


def _read(path: Path, *, labelled: bool = False) -> list[dict[str, Any]]:
    if not path.is_file():
        raise RequestError(f"no such file: {path}")
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise RequestError(f"{path}:{number}: not JSON ({exc})") from exc
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("claim"), str)
            or not isinstance(data.get("passages"), list)
            or not all(isinstance(p, str) for p in data["passages"])
        ):
            raise RequestError(
                f'{path}:{number}: each line needs {{"claim": str, "passages": [str, ...], "question": str (optional)}}'
            )
        if labelled and not isinstance(data.get("supported"), bool):
            raise RequestError(
                f'{path}:{number}: calibration lines need "supported": true or false'
            )
        items.append(data)
    return items


def check(
    file: Path = typer.Argument(..., help='JSON lines: {"claim", "passages": [...], "question"?}.'),
    config: Path = typer.Option(
        Path("configs/default.yaml"), "--config", "-c", help="ragtune config (YAML)."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write results here instead of stdout."
    ),
    lexical_only: bool = typer.Option(
        False, "--lexical-only", help="No models: lexical signals only (fast)."
    ),
    calibrate: bool = typer.Option(
        False, "--calibrate", help='FILE lines carry "supported": fit a calibration to --out.'
    ),
    explain: bool = typer.Option(
        False,
        "--explain",
        help='Add each claim\'s "signals" and the words, numbers and names its passages lack ("missing").',
    ),
) -> None:
    """Score each claim against its passages: one {"score", "supported"} line per input line, in order."""
    from ragtune.check import ClaimItem, SupportChecker
    from ragtune.check.signals import missing_terms
    from ragtune.config import load_config

    items = _read(file, labelled=calibrate)
    cfg = load_config(config)
    signals = [] if lexical_only else list(cfg.checker.signals)
    embedder = cfg.embedder.build() if "similarity" in signals else None
    generator = cfg.build_generator() if "evidence" in signals else None
    support_model = cfg.build_support_model() if "support_model" in signals else None
    claims = [ClaimItem(i["claim"], i["passages"], i.get("question")) for i in items]
    if calibrate:
        labels = [bool(i["supported"]) for i in items]
        _calibrate(claims, labels, embedder, generator, support_model, out)
        return
    from ragtune.check import load_calibrations

    calibrations = load_calibrations(cfg.checker.calibration) if cfg.checker.calibration else None
    checker = SupportChecker(
        embedder=embedder,
        evidence_model=generator,
        support_model=support_model,
        min_support=cfg.checker.min_support,
        calibrations=calibrations,
    )
    with contextlib.ExitStack() as stack:
        handle = stack.enter_context(open(out, "w", encoding="utf-8")) if out else sys.stdout
        for start in range(0, len(claims), 32):
            batch = claims[start : start + 32]
            for claim, score in zip(batch, checker.score_many(batch), strict=True):
                row: dict[str, Any] = {"score": round(score.score, 4), "supported": score.supported}
                if explain:
                    row["signals"] = dict(score.signals)
                    row["missing"] = missing_terms(claim.claim, claim.passages)
                handle.write(json.dumps(row) + "\n")


def _calibrate(
    claims: list[Any],
    labels: list[bool],
    embedder: Any,
    generator: Any,
    support_model: Any,
    out: Path | None,
) -> None:
    from ragtune.check.support import (
        Calibration,
        SupportChecker,
        auroc,
        fit_calibration,
        signal_set,
    )

    if out is None:
        raise RequestError("--calibrate needs --out FILE for the fitted calibration")
    key, names = signal_set(embedder is not None, generator is not None, support_model is not None)
    placeholder = {
        key: Calibration(
            names, (0.0,) * len(names), 0.0, 0.5, (0.0,) * len(names), (1.0,) * len(names)
        )
    }
    rows = SupportChecker(
        embedder=embedder,
        evidence_model=generator,
        support_model=support_model,
        calibrations=placeholder,
    ).signals_for(claims)
    calibration = fit_calibration(
        rows, labels, names, source=f"ragtune check --calibrate, {len(rows)} claims"
    )
    fitted = auroc([calibration.probability(r) for r in rows], labels)
    out.write_text(
        json.dumps({"calibrations": {key: calibration.to_dict()}, "fit_auroc": fitted}, indent=2)
        + "\n"
    )
    print(
        f"fitted {key} on {len(rows)} claims (AUROC on the same data {fitted:.3f}); wrote {out}",
        file=sys.stderr,
    )
