"""The support checker: how well do the cited passages support each sentence of an answer?

Three kinds of offline signals, combined by a logistic model whose weights and threshold were
fitted on labelled claims (:func:`fit_calibration`), never set by hand:

* lexical (:mod:`ragtune.check.signals`): coverage of the claim's content words, numbers and
  names by the cited text and by its best-matching sentence, and a negation mismatch;
* ``similarity``: the highest cosine between the claim and a sentence of the cited passages,
  with the retrieval embedder;
* ``evidence``: the generator's own view, (log p(claim | passage) - log p(claim | no passage))
  per claim token: how much reading the passage makes the model expect the claim;
* ``support_model``: the logit of a cross-encoder trained to tell supported claims from hard
  unsupported ones (:mod:`ragtune.check.support_model`): it reads the question, the claim and
  the passage together, so a paraphrase can pass and a swapped name, a negation or an answer to
  another question can fail, which word overlap cannot tell apart.

The signals available decide the calibration used (a checker without a generator uses one
fitted without ``evidence``). The shipped calibrations live in ``calibration.json`` next to
this module, written by ``benchmarks/checker_auroc.py`` from squad-dev training articles; those
of the sets with ``support_model`` ship with the model, fitted for its weights. Users refit on
their own labelled claims with ``ragtune check --calibrate``. The lexical signals are computed
whatever the set: they stay in every score as its explanation (:func:`~ragtune.check.signals.missing_terms`
says which words, numbers and names of a claim its passages lack).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ragtune.check.citations import split_sentences
from ragtune.check.signals import (
    LEXICAL_SIGNALS,
    best_window,
    content_words,
    lexical_signals,
    numbers,
)
from ragtune.errors import ConfigError
from ragtune.types import NO_ADAPTER, AdapterChoice

__all__ = [
    "Calibration",
    "ClaimItem",
    "EvidenceModel",
    "SentenceEmbedder",
    "SupportChecker",
    "SupportModelScorer",
    "SupportScore",
    "auroc",
    "choose_threshold",
    "fit_calibration",
    "load_calibrations",
]

CALIBRATION_FILE = Path(__file__).with_name("calibration.json")
_EVIDENCE_CLIP = 4.0
_LOGIT_CLIP = 12.0


class SentenceEmbedder(Protocol):
    """Unit-length sentence vectors (the retrieval embedder fits)."""

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class EvidenceModel(Protocol):
    """A causal LM that scores continuations (``HFGenerator`` fits)."""

    def tokenize(self, text: str) -> list[int]: ...

    def log_likelihoods(
        self, items: Sequence[tuple[Sequence[int], Sequence[int]]], *, adapter: AdapterChoice
    ) -> list[float]: ...


class SupportModelScorer(Protocol):
    """A trained support model (``SupportModel`` fits): a logit per claim, and the
    calibrations fitted for it."""

    @property
    def calibrations(self) -> Mapping[str, Calibration]: ...

    def support_logits(self, items: Sequence[ClaimItem]) -> list[float]: ...


@dataclass(frozen=True)
class ClaimItem:
    """A claim to check against passages (the unit of ``ragtune check``)."""

    claim: str
    passages: Sequence[str]
    question: str | None = None


@dataclass(frozen=True)
class SupportScore:
    score: float
    """Calibrated probability that the passages support the claim."""
    supported: bool
    signals: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Calibration:
    """A fitted logistic model over named signals, and the decision threshold."""

    signals: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float
    means: tuple[float, ...]
    scales: tuple[float, ...]
    source: str = ""
    """What it was fitted on, to audit it later."""

    def probability(self, values: Mapping[str, float]) -> float:
        z = self.bias
        for name, w, mean, scale in zip(
            self.signals, self.weights, self.means, self.scales, strict=True
        ):
            z += w * (values[name] - mean) / scale
        return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "signals": list(self.signals),
            "weights": list(self.weights),
            "bias": self.bias,
            "threshold": self.threshold,
            "means": list(self.means),
            "scales": list(self.scales),
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        return cls(
            signals=tuple(data["signals"]),
            weights=tuple(float(w) for w in data["weights"]),
            bias=float(data["bias"]),
            threshold=float(data["threshold"]),
            means=tuple(float(m) for m in data["means"]),
            scales=tuple(float(s) for s in data["scales"]),
            source=str(data.get("source", "")),
        )


def load_calibrations(path: Path = CALIBRATION_FILE) -> dict[str, Calibration]:
    """Calibrations by signal-set name (``lexical``, ``lexical+similarity``, ``all``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return {name: Calibration.from_dict(entry) for name, entry in data["calibrations"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            str(path),
            [
                (
                    "checker.calibration",
                    f"not a calibration file ({exc}); make one with `ragtune check --calibrate`",
                )
            ],
        ) from exc


def checkable(claim: str) -> bool:
    """Whether a claim says something a passage could support: a content word or a number."""
    return bool(content_words(claim) or numbers(claim))


def signal_set(
    similarity: bool, evidence: bool, support_model: bool = False
) -> tuple[str, tuple[str, ...]]:
    """The calibration key and the signal names of a set: the lexical signals, then the others
    present (``all`` is lexical + similarity + evidence).

    >>> signal_set(True, False, True)[0]
    'lexical+similarity+support_model'
    """
    names = list(LEXICAL_SIGNALS)
    if similarity:
        names.append("similarity")
    if evidence:
        names.append("evidence")
    key = (
        "all"
        if similarity and evidence
        else "lexical+similarity"
        if similarity
        else ("lexical+evidence" if evidence else "lexical")
    )
    if support_model:
        names.append("support_model")
        key += "+support_model"
    return key, tuple(names)


class SupportChecker:
    """Scores claims against passages; see the module doc.

    ``embedder``, ``evidence_model`` and ``support_model`` are optional; without them their
    signals are left out and the matching calibration is used (``calibrations`` first, then
    those the support model brings). ``min_support`` overrides the calibrated threshold.
    """

    def __init__(
        self,
        *,
        embedder: SentenceEmbedder | None = None,
        evidence_model: EvidenceModel | None = None,
        support_model: SupportModelScorer | None = None,
        calibrations: Mapping[str, Calibration] | None = None,
        min_support: float | None = None,
        max_passage_tokens: int = 160,
    ) -> None:
        self.embedder = embedder
        self.evidence_model = evidence_model
        self.support_model = support_model
        key, self.signals = signal_set(
            embedder is not None, evidence_model is not None, support_model is not None
        )
        calibrations = calibrations if calibrations is not None else load_calibrations()
        if support_model is not None:
            calibrations = {**support_model.calibrations, **calibrations}
        if key not in calibrations:
            raise ConfigError(
                "checker",
                [
                    (
                        "checker.signals",
                        f"no calibration for the signals {key!r} (have: {', '.join(calibrations)}); "
                        "fit one with `ragtune check --calibrate` or change checker.signals",
                    )
                ],
            )
        self.calibration = calibrations[key]
        self.threshold = self.calibration.threshold if min_support is None else min_support
        self.max_passage_tokens = max_passage_tokens

    def signals_for(self, items: Sequence[ClaimItem]) -> list[dict[str, float]]:
        """Every signal for every item (batched embeddings and likelihoods)."""
        rows = [lexical_signals(i.claim, i.passages) for i in items]
        if self.embedder is not None:
            for row, value in zip(rows, self._similarities(items), strict=True):
                row["similarity"] = value
        if self.evidence_model is not None:
            for row, value in zip(rows, self._evidence(items), strict=True):
                row["evidence"] = value
        if self.support_model is not None:
            logits = self.support_model.support_logits(items)
            for row, value in zip(rows, logits, strict=True):
                row["support_model"] = round(max(min(value, _LOGIT_CLIP), -_LOGIT_CLIP), 4)
        return rows

    def score_many(self, items: Sequence[ClaimItem]) -> list[SupportScore]:
        """Scores in order. A claim with nothing to check (no content word, number or name:
        "Yes.", stray symbols) scores 0: no passage can be said to support it."""
        scores = []
        for item, row in zip(items, self.signals_for(items), strict=True):
            if not checkable(item.claim):
                scores.append(SupportScore(0.0, False, row))
                continue
            probability = self.calibration.probability(row)
            scores.append(SupportScore(probability, probability >= self.threshold, row))
        return scores

    def score(
        self, claim: str, passages: Sequence[str], question: str | None = None
    ) -> SupportScore:
        return self.score_many([ClaimItem(claim, passages, question)])[0]

    # -- signals needing a model -----------------------------------------------------------------

    def _similarities(self, items: Sequence[ClaimItem]) -> list[float]:
        assert self.embedder is not None
        claims = [i.claim for i in items]
        units: list[str] = []
        owners: list[int] = []
        for index, item in enumerate(items):
            for passage in item.passages:
                for sentence, _a, _b in split_sentences(passage) or [(passage, 0, 0)]:
                    units.append(sentence)
                    owners.append(index)
        if not units:
            return [0.0] * len(items)
        vectors = self.embedder.embed(claims + units)
        claim_vecs, unit_vecs = vectors[: len(claims)], vectors[len(claims) :]
        best = [0.0] * len(items)
        for owner, vec in zip(owners, unit_vecs, strict=True):
            best[owner] = max(best[owner], float(np.dot(claim_vecs[owner], vec)))
        return best

    def _evidence(self, items: Sequence[ClaimItem]) -> list[float]:
        """Per-token log-likelihood gain of the claim from reading the passages."""
        assert self.evidence_model is not None
        ids = self.evidence_model.tokenize
        requests: list[tuple[Sequence[int], Sequence[int]]] = []
        sizes = []
        for item in items:
            claim = ids(" " + item.claim.strip())
            # The neighbourhood of the best-matching sentence: where the evidence is, and short.
            _share, _sentence, window = best_window(item.claim, item.passages)
            passage = ids(window or " ".join(item.passages))[: self.max_passage_tokens]
            question = f"Question: {item.question.strip()}\n" if item.question else ""
            with_passage = ids("Passage: ") + passage + ids(f"\n{question}Statement:")
            without = ids(f"Passage: (none)\n{question}Statement:")
            requests += [(with_passage, claim), (without, claim)]
            sizes.append(max(len(claim), 1))
        # The base model's view, explicitly: never an adapter some request happens to use.
        scores = self.evidence_model.log_likelihoods(requests, adapter=NO_ADAPTER)
        gains = []
        for i, size in enumerate(sizes):
            gain = (scores[2 * i] - scores[2 * i + 1]) / size
            gains.append(max(min(gain, _EVIDENCE_CLIP), -_EVIDENCE_CLIP))
        return gains


# -- fitting ------------------------------------------------------------------------------------


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve (ties count half): the chance a positive outranks a negative.

    >>> auroc([0.9, 0.8, 0.3, 0.1], [True, False, True, False])
    0.75
    """
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        raise ValueError("AUROC needs at least one positive and one negative")
    order = np.argsort(np.asarray(list(scores), dtype=float), kind="mergesort")
    values = np.asarray(list(scores), dtype=float)[order]
    ranks = np.empty(len(values))
    i = 0
    while i < len(values):  # average ranks over ties
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2 + 1
        i = j + 1
    rank_of = np.empty(len(values))
    rank_of[order] = ranks
    pos_ranks = sum(rank_of[k] for k, y in enumerate(labels) if y)
    return float((pos_ranks - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def fit_calibration(
    rows: Sequence[Mapping[str, float]],
    labels: Sequence[bool],
    signals: Sequence[str],
    *,
    l2: float = 1e-2,
    source: str = "",
    min_recall: float = 0.0,
) -> Calibration:
    """Fit a logistic model (Newton's method, L2-penalised) and the threshold that maximises
    balanced accuracy on the same data among those that keep at least ``min_recall`` of the
    supported claims (:func:`choose_threshold`)."""
    if len(rows) != len(labels) or len(set(labels)) < 2:
        raise ValueError("fitting needs matching rows and labels with both classes present")
    x = np.array([[float(r[s]) for s in signals] for r in rows])
    y = np.array([1.0 if label else 0.0 for label in labels])
    means = x.mean(axis=0)
    scales = x.std(axis=0)
    scales[scales < 1e-9] = 1.0
    z = np.hstack([(x - means) / scales, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -40, 40)))
        gradient = z.T @ (p - y) / len(y) + penalty * w
        hessian = (z.T * (p * (1 - p))) @ z / len(y) + np.diag(penalty)
        step = np.linalg.solve(hessian + 1e-9 * np.eye(len(w)), gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    probabilities = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -40, 40)))
    threshold = choose_threshold(probabilities, y == 1, min_recall=min_recall)
    return Calibration(
        signals=tuple(signals),
        weights=tuple(float(v) for v in w[:-1]),
        bias=float(w[-1]),
        threshold=threshold,
        means=tuple(float(v) for v in means),
        scales=tuple(float(v) for v in scales),
        source=source,
    )


def choose_threshold(
    probabilities: Sequence[float] | np.ndarray,
    labels: Sequence[bool] | np.ndarray,
    *,
    min_recall: float = 0.0,
) -> float:
    """The threshold (a probability rounded to 4 places) with the best balanced accuracy
    (mean of the shares of supported claims kept and unsupported ones dropped) among those that
    keep at least ``min_recall`` of the supported claims (the lowest score keeps them all, so
    there is always one).

    >>> choose_threshold([0.9, 0.8, 0.6, 0.2], [True, True, False, False])
    0.8
    >>> choose_threshold([0.9, 0.5, 0.6, 0.2], [True, True, False, False], min_recall=1.0)
    0.5
    """
    p = np.asarray(probabilities, dtype=float)
    y = np.asarray(labels, dtype=bool)
    best, best_t = -1.0, float(np.round(p.min(), 4)) if len(p) else 0.5
    for t in np.unique(np.round(p, 4)):
        predicted = p >= t
        tpr = float((predicted & y).sum() / max(y.sum(), 1))
        tnr = float((~predicted & ~y).sum() / max((~y).sum(), 1))
        if tpr >= min_recall and (tpr + tnr) / 2 > best:
            best, best_t = (tpr + tnr) / 2, float(t)
    return best_t
