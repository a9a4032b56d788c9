"""The support model: a cross-encoder that reads (question, claim) with an evidence passage and
gives a logit for "the passage supports the claim"; the checker's ``support_model`` signal.

ragtune ships one (``shipped/support-minilm/``), fine-tuned from the embedded all-MiniLM-L6-v2
by ``scripts/train_support_model.py`` on generated claims (:mod:`ragtune.train.claims`) from
squad-dev's training articles; its card there names the data hash, the recipe and the held-out
figures. The folder holds only what fine-tuning changed:

* ``model.safetensors``: every trained tensor in float16 (about 22 MB). The word embeddings
  were frozen in training and come from the base model at load, checked against the card's
  hash of them (``base_sha256``), so nothing is shipped twice;
* ``config.json``: the transformers config of the classifier (one output, a logit);
* ``card.json``: base model, hashes, recipe, metrics, and probe claims with the logits the
  shipped weights give them (:func:`load_support_model` users can check them);
* ``calibration.json``: the logistic calibrations of the signal sets with ``support_model``,
  fitted on training-article claims the model was not trained on (threshold included);
* ``README.md``: the card for people (data licence: CC BY-SA 4.0).

Scoring is batched on the CPU: items sorted by length so a batch holds little padding, the
question and claim as the first segment (``question [SEP] claim``, :func:`pair_text`) and the
evidence as the second, cut to ``max_length`` tokens from the evidence's end.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ragtune.check.support import Calibration, ClaimItem, load_calibrations
from ragtune.errors import ConfigError, ModelError

if TYPE_CHECKING:
    import torch

__all__ = [
    "SHIPPED_SUPPORT_MODEL",
    "SupportModel",
    "SupportModelCard",
    "frozen_sha256",
    "load_support_model",
    "pair_text",
    "read_support_card",
    "support_model_folder",
    "write_support_model",
]

SHIPPED_SUPPORT_MODEL = Path(__file__).parent / "shipped" / "support-minilm"
"""Where the shipped support model lives (absent until it is built and installed)."""
CARD, WEIGHTS, CONFIG, CALIBRATION = (
    "card.json",
    "model.safetensors",
    "config.json",
    "calibration.json",
)
_REBUILD = (
    "rebuild it with `python scripts/train_support_model.py --data PATH/squad-dev --install` "
    "(or reinstall ragtune), give checker.support_model_folder a folder that has one, or "
    "remove support_model from checker.signals"
)


def pair_text(question: str | None, claim: str, sep: str = "[SEP]") -> str:
    """The first segment the model reads: the question and the claim, joined by ``sep``
    (the tokenizer's separator), or the claim alone. Training and scoring both use it.

    >>> pair_text("When did it begin?", "In 1973.")
    'When did it begin? [SEP] In 1973.'
    """
    claim = claim.strip()
    return f"{question.strip()} {sep} {claim}" if question and question.strip() else claim


@dataclass(frozen=True)
class SupportModelCard:
    """What ``card.json`` holds."""

    base_model: str
    """The embedded model name (``all-minilm-l6-v2``) or a folder: where the frozen tensors
    and the tokenizer come from."""
    base_sha256: str
    """:func:`frozen_sha256` of the frozen tensors in the base."""
    weights_sha256: str
    """sha256 of ``model.safetensors``."""
    frozen: tuple[str, ...]
    """Parameter names taken from the base, not shipped."""
    max_length: int
    """Tokens per (claim, evidence) pair; the evidence is cut to fit."""
    dtype: str = "float16"
    probes: tuple[Mapping[str, Any], ...] = ()
    """``{"question", "claim", "evidence", "logit"}``: claims with the logit these weights give."""
    metrics: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    recipe: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["frozen"], data["probes"] = list(self.frozen), list(self.probes)
        return data


def support_model_folder(folder: Path | None) -> Path:
    """``folder``, or the shipped model's when None."""
    return SHIPPED_SUPPORT_MODEL if folder is None else Path(folder)


def read_support_card(folder: Path) -> SupportModelCard:
    """The card of the support model in ``folder``; :class:`~ragtune.errors.ModelError` naming
    the fix when the folder, a file of it or the card is missing or unreadable."""
    if not folder.is_dir():
        raise ModelError(f"there is no support model at {folder}: {_REBUILD}")
    for name in (CARD, WEIGHTS, CONFIG):
        if not (folder / name).is_file():
            raise ModelError(f"the support model in {folder} has no {name}: {_REBUILD}")
    try:
        data = json.loads((folder / CARD).read_text(encoding="utf-8"))
        return SupportModelCard(
            base_model=str(data["base_model"]),
            base_sha256=str(data["base_sha256"]),
            weights_sha256=str(data["weights_sha256"]),
            frozen=tuple(str(n) for n in data["frozen"]),
            max_length=int(data["max_length"]),
            dtype=str(data.get("dtype", "float16")),
            probes=tuple(data.get("probes", ())),
            metrics=dict(data.get("metrics", {})),
            data=dict(data.get("data", {})),
            recipe=dict(data.get("recipe", {})),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(
            f"the support model's {CARD} in {folder} is unreadable ({exc}): {_REBUILD}"
        ) from exc


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def frozen_sha256(state: Mapping[str, torch.Tensor], names: Sequence[str]) -> str:
    """sha256 of the named tensors (float32 bytes, in name order): the base's frozen part."""
    digest = hashlib.sha256()
    for name in sorted(names):
        digest.update(name.encode())
        digest.update(state[name].detach().to("cpu").float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _base_tensors(base: Path, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """The named classifier tensors from the base checkpoint (a bare ``BertModel``'s keys lack
    the ``bert.`` prefix; either form is accepted)."""
    from safetensors import safe_open

    found = {}
    path = base / WEIGHTS
    if not path.is_file():
        raise ModelError(f"the support model's base {base} has no {WEIGHTS}: {_REBUILD}")
    with safe_open(str(path), framework="pt") as handle:
        keys = set(handle.keys())
        for name in names:
            bare = name.split(".", 1)[1] if "." in name else name
            key = name if name in keys else bare if bare in keys else None
            if key is None:
                raise ModelError(f"the base model {base} has no tensor {name!r}: {_REBUILD}")
            found[name] = handle.get_tensor(key).float()
    return found


class SupportModel:
    """The loaded cross-encoder; :meth:`support_logits` is the checker's signal."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        card: SupportModelCard,
        calibrations: Mapping[str, Calibration],
        *,
        batch_size: int = 32,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.card = card
        self.calibrations = dict(calibrations)
        """Calibrations of the signal sets with ``support_model``, fitted for these weights."""
        self.batch_size = batch_size

    def logits(self, items: Sequence[tuple[str | None, str, str]]) -> np.ndarray:
        """Logits, shape ``(len(items),)``, of ``(question, claim, evidence)`` items: > 0 means
        the evidence more likely supports the claim than not (before calibration)."""
        import torch

        sep = self.tokenizer.sep_token or "[SEP]"
        # The first segment is capped at a third of the budget, so the evidence always fits some.
        firsts = [
            " ".join(pair_text(q, c, sep).split()[: self.card.max_length // 3]) for q, c, _ in items
        ]
        order = sorted(range(len(items)), key=lambda i: len(firsts[i]) + len(items[i][2]))
        out = np.zeros(len(items), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                batch = self.tokenizer(
                    [firsts[i] for i in chunk],
                    [items[i][2] for i in chunk],
                    truncation="only_second",
                    max_length=self.card.max_length,
                    padding=True,
                    return_tensors="pt",
                )
                logits = self.model(**batch).logits.reshape(-1).float().numpy()
                out[chunk] = logits
        return out

    def support_logits(self, items: Sequence[ClaimItem]) -> list[float]:
        """The logit of each claim against its passages (joined into one evidence text)."""
        rows = [(i.question, i.claim, " ".join(p.strip() for p in i.passages)) for i in items]
        return [float(v) for v in self.logits(rows)] if rows else []


def load_support_model(folder: Path, base: Path, *, batch_size: int = 32) -> SupportModel:
    """Load the support model in ``folder`` on the CPU, its frozen tensors from ``base`` (the
    folder of the model its card names: resolve ``card.base_model`` with
    :func:`ragtune.index.embedders.resolve_embedder_path`).

    Raises :class:`~ragtune.errors.ModelError` naming the fix when a file is missing, the
    weights do not match the card's hash (a damaged or replaced file), or ``base`` is not the
    base the model was trained from.
    """
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    card = read_support_card(folder)
    if _file_sha256(folder / WEIGHTS) != card.weights_sha256:
        raise ModelError(
            f"the support model's {WEIGHTS} in {folder} does not match its card (damaged or "
            f"replaced): {_REBUILD}"
        )
    frozen = _base_tensors(base, card.frozen)
    if frozen_sha256(frozen, card.frozen) != card.base_sha256:
        raise ModelError(
            f"the support model in {folder} was trained from another base model than {base} "
            f"(its card names {card.base_model!r}): {_REBUILD}"
        )
    try:
        config = AutoConfig.from_pretrained(str(folder))
        model = AutoModelForSequenceClassification.from_config(config)
        state = {k: v.float() for k, v in load_file(str(folder / WEIGHTS)).items()}
        missing, unexpected = model.load_state_dict({**state, **frozen}, strict=False)
        tokenizer = AutoTokenizer.from_pretrained(str(base))
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(
            f"the support model in {folder} cannot be loaded ({exc}): {_REBUILD}"
        ) from exc
    if missing or unexpected:
        raise ModelError(
            f"the support model in {folder} does not fit its config (missing "
            f"{sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}): {_REBUILD}"
        )
    calibrations: dict[str, Calibration] = {}
    if (folder / CALIBRATION).is_file():
        try:
            calibrations = load_calibrations(folder / CALIBRATION)
        except ConfigError as exc:
            raise ModelError(f"the support model's {CALIBRATION} in {folder}: {exc}") from exc
    return SupportModel(model, tokenizer, card, calibrations, batch_size=batch_size)


def write_support_model(
    model: Any,
    folder: Path,
    *,
    base_model: str,
    frozen: Sequence[str],
    max_length: int,
    extra: Mapping[str, Any] | None = None,
) -> SupportModelCard:
    """Write a fine-tuned classifier in the shipped form (see the module doc): every tensor but
    the ``frozen`` ones, in float16, with its config and a card. ``extra`` fills the card's
    ``metrics``, ``data``, ``recipe`` and ``probes``. Returns the card."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    shipped = {
        k: v.detach().to("cpu").half().contiguous() for k, v in state.items() if k not in frozen
    }
    save_file(shipped, str(folder / WEIGHTS))
    model.config.to_json_file(str(folder / CONFIG))
    extra = dict(extra or {})
    card = SupportModelCard(
        base_model=base_model,
        base_sha256=frozen_sha256(state, frozen),
        weights_sha256=_file_sha256(folder / WEIGHTS),
        frozen=tuple(sorted(frozen)),
        max_length=max_length,
        probes=tuple(extra.get("probes", ())),
        metrics=dict(extra.get("metrics", {})),
        data=dict(extra.get("data", {})),
        recipe=dict(extra.get("recipe", {})),
    )
    write_card(folder, card)
    return card


def write_card(folder: Path, card: SupportModelCard) -> None:
    """(Re)write ``card.json`` in ``folder``."""
    (folder / CARD).write_text(json.dumps(card.to_dict(), indent=2) + "\n", encoding="utf-8")
