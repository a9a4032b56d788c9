"""Adapters: PEFT prompt tuning, prefix tuning and LoRA, stored with a card, checked on load.

An adapter folder holds PEFT's own files (``adapter_config.json``, ``adapter_model.safetensors``;
PEFT can load them without ragtune) and ``adapter.json``, the card: name, tenant, version, kind,
the base model's name and weights hash, when it was made, the training data's hash, metrics.

Creating one (:func:`new_adapter`) initialises prompt-learning weights from a real text instead
of PEFT's random draw, which starts far from anything the model has seen (on SmolLM2 a random
prefix raised the loss from 2.4 to 6-10): a prefix gets the base model's own keys and values
over the text, a soft prompt the text's token embeddings. Either way the untrained adapter
behaves exactly like the text put in front of the prompt.

Loading (:func:`read_adapter`, then :func:`check_compatible`) refuses an adapter made for
another base model, one whose tensors do not fit this model, and a damaged one, each with an
:class:`~ragtune.errors.AdapterError` that says which and what to do. Nothing is changed before
the checks pass, so whatever was serving keeps serving.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from annotated_types import Ge, Le, Lt, MinLen

from ragtune.errors import AdapterCorruptError, AdapterMismatchError, AdapterNotFoundError
from ragtune.settings import check_bounds
from ragtune.types import check_name

if TYPE_CHECKING:
    import torch
    from peft import PeftModel

    from ragtune.generate.models import LoadedModel

__all__ = [
    "ADAPTER_KINDS",
    "CARD_FILE",
    "AdapterCard",
    "AdapterKind",
    "LoraSpec",
    "PrefixSpec",
    "PromptSpec",
    "StoredAdapter",
    "check_compatible",
    "new_adapter",
    "prefix_from_text",
    "prefix_kv",
    "prompt_from_text",
    "read_adapter",
    "save_adapter",
    "trainable_parameters",
]

AdapterKind = Literal["prompt", "prefix", "lora"]
ADAPTER_KINDS: tuple[AdapterKind, ...] = ("prompt", "prefix", "lora")
CARD_FILE = "adapter.json"
CARD_FORMAT = 1
_PEFT_TYPES = {"prompt": "PROMPT_TUNING", "prefix": "PREFIX_TUNING", "lora": "LORA"}


@dataclass(frozen=True)
class AdapterCard:
    """What an adapter is and what it was made from; stored as ``adapter.json``."""

    name: str
    tenant: str
    kind: AdapterKind
    base_model: str
    """The base model's name (an embedded name or a folder's name)."""
    base_weights_sha256: str
    """:func:`ragtune.generate.models.weights_sha256` of the base model it was trained on."""
    version: int = 0
    """Given by the registry when registered; 0 for an adapter not registered yet."""
    created: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )
    training_data_sha256: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    trainable_parameters: int = 0
    settings: Mapping[str, Any] = field(default_factory=dict)
    """The adapter's shape (virtual tokens, rank, target modules) and training hyper-parameters."""
    format_version: int = CARD_FORMAT

    @property
    def ref(self) -> str:
        """``tenant/name@vN`` (or ``tenant/name`` before registration)."""
        base = f"{self.tenant}/{self.name}"
        return f"{base}@v{self.version}" if self.version else base

    def to_json(self) -> str:
        data = asdict(self)
        data["metrics"], data["settings"] = dict(self.metrics), dict(self.settings)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, *, where: str = CARD_FILE) -> AdapterCard:
        """Parse and validate a card; :class:`AdapterCorruptError` names what is wrong."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise AdapterCorruptError(
                f"{where} is not valid JSON ({exc}); re-register the adapter"
            ) from exc
        if not isinstance(data, dict):
            raise AdapterCorruptError(f"{where} must hold a JSON object; re-register the adapter")
        version = data.get("format_version", CARD_FORMAT)
        if version != CARD_FORMAT:
            raise AdapterCorruptError(
                f"{where} has card format {version!r}; this ragtune reads format {CARD_FORMAT}: "
                "upgrade ragtune or re-export the adapter"
            )
        known = set(cls.__dataclass_fields__)
        missing = [
            k
            for k in ("name", "tenant", "kind", "base_model", "base_weights_sha256")
            if k not in data
        ]
        unknown = sorted(set(data) - known)
        if missing or unknown:
            parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
                [f"unknown {', '.join(unknown)}"] if unknown else []
            )
            raise AdapterCorruptError(f"{where}: {'; '.join(parts)}; re-register the adapter")
        if data["kind"] not in ADAPTER_KINDS:
            raise AdapterCorruptError(
                f"{where}: kind {data['kind']!r} is not one of {', '.join(ADAPTER_KINDS)}"
            )
        try:
            check_name(data["tenant"], "tenant")
            check_name(data["name"], "adapter name")
            card = cls(**data)
            if not isinstance(card.version, int) or card.version < 0:
                raise ValueError(f"version {card.version!r} is not a whole number >= 0")
            if not isinstance(card.metrics, Mapping) or not isinstance(card.settings, Mapping):
                raise ValueError("metrics and settings must be JSON objects")
        except (TypeError, ValueError) as exc:
            raise AdapterCorruptError(f"{where}: {exc}") from exc
        return card


@dataclass(frozen=True)
class PromptSpec:
    """A soft prompt: ``num_virtual_tokens`` trainable input embeddings, initialised from a text."""

    type: Literal["prompt"] = "prompt"
    num_virtual_tokens: Annotated[int, Ge(1), Le(512)] | None = None
    """None: as many as ``init_text`` has tokens."""
    init_text: str | None = None
    """None: the grounded-answer instruction of :mod:`ragtune.generate.prompts`."""

    def __post_init__(self) -> None:
        check_bounds(self)

    @property
    def kind(self) -> AdapterKind:
        return self.type


@dataclass(frozen=True)
class PrefixSpec:
    """A prefix: ``num_virtual_tokens`` trainable key/value pairs per layer, from a text's own."""

    type: Literal["prefix"] = "prefix"
    num_virtual_tokens: Annotated[int, Ge(1), Le(512)] | None = None
    """None: as many as ``init_text`` has tokens."""
    init_text: str | None = None
    """None: the grounded-answer instruction of :mod:`ragtune.generate.prompts`."""

    def __post_init__(self) -> None:
        check_bounds(self)

    @property
    def kind(self) -> AdapterKind:
        return self.type


@dataclass(frozen=True)
class LoraSpec:
    """Low-rank updates of rank ``r`` on ``target_modules`` (never the embeddings)."""

    type: Literal["lora"] = "lora"
    r: Annotated[int, Ge(1), Le(256)] = 8
    """The rank of each update."""
    alpha: Annotated[int, Ge(1)] = 16
    """The update is scaled by alpha / r."""
    dropout: Annotated[float, Ge(0.0), Lt(1.0)] = 0.05
    target_modules: Annotated[tuple[str, ...], MinLen(1)] = ("q_proj", "k_proj", "v_proj", "o_proj")
    first_layer: Annotated[int, Ge(0)] = 0
    """LoRA goes on the decoder layers from this one (0-based) to the last. Training then
    back-propagates only through those layers: on SmolLM2-135M (30 layers) LoRA on the top
    15 trains about 1.5x as many tokens per second as on all of them."""

    def __post_init__(self) -> None:
        check_bounds(self)
        bad = [m for m in self.target_modules if "embed" in m or m == "lm_head"]
        if bad:
            raise ValueError(
                f"LoRA on {', '.join(bad)} is not supported: the generator computes input "
                "embeddings itself; target the attention and MLP projections"
            )

    @property
    def kind(self) -> AdapterKind:
        return self.type


AdapterSpec = PromptSpec | PrefixSpec | LoraSpec


@dataclass(frozen=True)
class StoredAdapter:
    """An adapter read from disk: card, PEFT config and tensors, checked for integrity only."""

    folder: Path
    card: AdapterCard
    peft_config: Mapping[str, Any]
    tensors: Mapping[str, torch.Tensor]

    @property
    def num_virtual_tokens(self) -> int:
        return int(self.peft_config.get("num_virtual_tokens") or 0)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


# -- initialisation from a real text -------------------------------------------------------------


def _text_ids(tokenizer: Any, text: str, length: int | None) -> list[int]:
    ids = [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]
    if not ids:
        raise ValueError("the initialisation text has no tokens")
    if length is None:
        return ids
    if length < 1:
        raise ValueError(f"num_virtual_tokens must be at least 1, got {length}")
    return [ids[i % len(ids)] for i in range(length)]  # repeat or cut the text to the length


def prefix_from_text(model: Any, token_ids: Sequence[int]) -> torch.Tensor:
    """The base model's keys and values over ``token_ids``, in PEFT's prefix layout.

    Returns ``(p, layers * 2 * kv_heads * head_dim)``: for each virtual token, layer by layer,
    the key then the value heads. As a prefix it acts exactly like the text put in front.
    """
    import torch

    ids = torch.tensor([list(token_ids)], device=model.device)
    with torch.no_grad():
        cache = model(input_ids=ids, use_cache=True).cache
    rows = [t for layer in cache.layers for t in (layer.keys[0], layer.values[0])]  # (H, p, D) each
    stacked = torch.stack(rows)  # (2L, H, p, D)
    return stacked.permute(2, 0, 1, 3).reshape(len(token_ids), -1).detach().clone()


def prompt_from_text(model: Any, token_ids: Sequence[int]) -> torch.Tensor:
    """The input embeddings of ``token_ids``: ``(p, hidden)``."""
    import torch

    ids = torch.tensor(list(token_ids), device=model.device)
    with torch.no_grad():
        return model.get_input_embeddings()(ids).detach().clone()


def prefix_kv(
    weight: torch.Tensor, layers: int, kv_heads: int, head_dim: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """PEFT's prefix weight ``(p, L*2*H*D)`` as one ``(K, V)`` pair of ``(H, p, D)`` per layer."""
    p = weight.shape[0]
    kv = weight.reshape(p, layers * 2, kv_heads, head_dim).permute(1, 2, 0, 3)
    return [(kv[2 * i].contiguous(), kv[2 * i + 1].contiguous()) for i in range(layers)]


def model_shape(model: Any) -> dict[str, int]:
    """Layers, KV heads, head size and width of a decoder-only transformers model."""
    config = (
        model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    )
    heads = int(config.num_attention_heads)
    hidden = int(config.hidden_size)
    return {
        "layers": int(config.num_hidden_layers),
        "heads": heads,
        "kv_heads": int(getattr(config, "num_key_value_heads", None) or heads),
        "head_dim": int(getattr(config, "head_dim", None) or hidden // heads),
        "hidden": hidden,
    }


@contextmanager
def peft_quietly() -> Iterator[None]:
    """Run PEFT without the two deprecation warnings its own calls raise in transformers.

    PEFT 0.21 reads ``model.is_gradient_checkpointing``, which transformers 5.24 deprecated in
    favour of ``is_activation_checkpointing``, whenever it wraps a model; and a prefix-tuned
    PEFT model's forward hands its prefix to the base model as ``past_key_values``, which
    transformers deprecated in favour of ``cache``. Both calls are PEFT's, so ragtune cannot
    move them to the current API (its own calls use ``cache``). PEFT also says when a deleted
    adapter was the active one; ragtune sets the active adapter before every forward pass, so
    that notice says nothing when an adapter is evicted. Only those three warnings are
    filtered, and only around PEFT's calls.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning
        )
        warnings.filterwarnings(
            "ignore", message=r".*past_key_values.* is deprecated.*", category=FutureWarning
        )
        warnings.filterwarnings(
            "ignore", message=r"Adapter .* was active which is now deleted.*", category=UserWarning
        )
        yield


def new_adapter(base: LoadedModel, spec: AdapterSpec) -> PeftModel:
    """A fresh PEFT model of ``spec``'s kind around ``base.model``, ready to train.

    Prompt and prefix weights start from ``spec.init_text`` (see the module doc). LoRA starts
    as PEFT makes it (B = 0, so the adapter begins as the base model). LoRA changes the base
    model's modules in place: train on a base model of its own, not on one that is serving.
    """
    from peft import LoraConfig, PrefixTuningConfig, PromptTuningConfig, TaskType, get_peft_model

    from ragtune.generate.prompts import INSTRUCTION

    if base.quantize not in ("none", "int8"):
        raise ValueError(
            f"the base model is quantized to {base.quantize}; adapters train on int8 weights "
            "(QLoRA-style, see ragtune.generate.qlora) or full-precision ones: load it with "
            "quantize='int8' or 'none'"
        )
    model = base.model
    if isinstance(spec, LoraSpec):
        layers = int(getattr(model.config, "num_hidden_layers", 0))
        if not 0 <= spec.first_layer < max(layers, 1):
            raise ValueError(
                f"LoRA first_layer {spec.first_layer} is outside the model's layers 0..{layers - 1}"
            )
        config: Any = LoraConfig(
            task_type=TaskType.CAUSAL_LM,
            r=spec.r,
            lora_alpha=spec.alpha,
            lora_dropout=spec.dropout,
            target_modules=list(spec.target_modules),
            layers_to_transform=list(range(spec.first_layer, layers)) if spec.first_layer else None,
        )
        if base.quantize == "int8":
            from ragtune.generate.qlora import register_quantized_layers

            register_quantized_layers(config)
        with peft_quietly():
            return get_peft_model(model, config)
    ids = _text_ids(base.tokenizer, spec.init_text or INSTRUCTION, spec.num_virtual_tokens)
    if isinstance(spec, PrefixSpec):
        weight = prefix_from_text(model, ids)
        config = PrefixTuningConfig(
            task_type=TaskType.CAUSAL_LM, num_virtual_tokens=len(ids), prefix_projection=False
        )
    else:
        weight = prompt_from_text(model, ids)
        config = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=len(ids))
    with peft_quietly():
        peft_model = get_peft_model(model, config)
    embedding = peft_model.prompt_encoder["default"].embedding
    if tuple(embedding.weight.shape) != tuple(weight.shape):
        raise AdapterMismatchError(
            f"PEFT made a {tuple(embedding.weight.shape)} {spec.kind} table; the text "
            f"initialisation is {tuple(weight.shape)}: this model's layout is not supported"
        )
    with _no_grad():
        embedding.weight.copy_(weight.to(embedding.weight.dtype))
    return peft_model


def _no_grad() -> Any:
    import torch

    return torch.no_grad()


def trainable_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def save_adapter(peft_model: PeftModel, folder: Path, card: AdapterCard) -> Path:
    """Write PEFT's files and the card into ``folder`` (created; must not hold an adapter yet)."""
    folder = Path(folder)
    if (folder / CARD_FILE).exists():
        raise FileExistsError(f"{folder} already holds an adapter; choose a new folder")
    config = peft_model.peft_config["default"]
    kind = _kind_of(str(getattr(config.peft_type, "value", config.peft_type)))
    if kind != card.kind:
        raise ValueError(f"the card says {card.kind!r} but the model holds a {kind!r} adapter")
    # PEFT records the base model's local path; record its name instead (no machine paths).
    config.base_model_name_or_path = card.base_model
    folder.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(folder), save_embedding_layers=False)  # LoRA never targets them
    (folder / CARD_FILE).write_text(card.to_json(), encoding="utf-8")
    return folder


def _kind_of(peft_type: str) -> AdapterKind:
    for kind, name in _PEFT_TYPES.items():
        if name == peft_type:
            return kind  # type: ignore[return-value]
    raise AdapterCorruptError(
        f"PEFT type {peft_type!r} is not supported; ragtune serves "
        f"{', '.join(_PEFT_TYPES.values())}"
    )


def read_adapter(folder: Path | str) -> StoredAdapter:
    """Read an adapter folder and check its integrity (not yet its fit to a base model)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    if not folder.is_dir():
        raise AdapterNotFoundError(
            f"no adapter folder at {folder}: check the path or register it first"
        )
    card_path = folder / CARD_FILE
    if not card_path.is_file():
        raise AdapterCorruptError(
            f"{folder} has no {CARD_FILE}; save adapters with ragtune (save_adapter or "
            "ragtune train) so they carry their card"
        )
    card = AdapterCard.from_json(card_path.read_text(encoding="utf-8"), where=str(card_path))
    config_path = folder / "adapter_config.json"
    weights_path = folder / "adapter_model.safetensors"
    for path in (config_path, weights_path):
        if not path.is_file():
            raise AdapterCorruptError(
                f"{path} is missing; the adapter is incomplete: re-register it"
            )
    try:
        peft_config = json.loads(config_path.read_text(encoding="utf-8"))
        if not isinstance(peft_config, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise AdapterCorruptError(
            f"{config_path} cannot be read ({exc}); re-register the adapter"
        ) from exc
    kind = _kind_of(str(peft_config.get("peft_type")))
    if kind != card.kind:
        raise AdapterCorruptError(
            f"{folder}: the card says {card.kind!r} but adapter_config.json holds {kind!r}"
        )
    try:
        tensors = load_file(str(weights_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise AdapterCorruptError(
            f"{weights_path} is damaged ({exc}); re-register the adapter from its training run"
        ) from exc
    if not tensors:
        raise AdapterCorruptError(f"{weights_path} holds no tensors; re-register the adapter")
    if kind in ("prompt", "prefix") and "prompt_embeddings" not in tensors:
        raise AdapterCorruptError(f"{weights_path} has no prompt_embeddings tensor; re-register it")
    return StoredAdapter(folder=folder, card=card, peft_config=peft_config, tensors=tensors)


def check_compatible(stored: StoredAdapter, base: LoadedModel) -> None:
    """Refuse an adapter made for another base model or whose tensors do not fit ``base``."""
    card = stored.card
    if card.base_weights_sha256 != base.weights_sha256:
        if base.grounded and card.base_weights_sha256 == base.bare_weights_sha256:
            raise AdapterMismatchError(
                f"adapter {card.ref} was trained on the bare base model {card.base_model!r}, but "
                f"the grounding adapter {base.grounding} is merged into the loaded one: retrain "
                "it (ragtune train trains on the grounded base), or set generator.grounding: "
                "none to serve it"
            )
        raise AdapterMismatchError(
            f"adapter {card.ref} was trained on base model {card.base_model!r} "
            f"(weights {card.base_weights_sha256[:12]}), not on the loaded {base.name!r} "
            f"(weights {base.weights_sha256[:12]}"
            + (f", with the grounding adapter {base.grounding} merged" if base.grounded else "")
            + "); retrain it on this base model"
        )
    shape = model_shape(base.model)
    if card.kind in ("prompt", "prefix"):
        weight = stored.tensors["prompt_embeddings"]
        p = stored.num_virtual_tokens
        width = (
            shape["layers"] * 2 * shape["kv_heads"] * shape["head_dim"]
            if card.kind == "prefix"
            else shape["hidden"]
        )
        if weight.ndim != 2 or tuple(weight.shape) != (p, width):
            raise AdapterMismatchError(
                f"adapter {card.ref}: its {card.kind} table is {tuple(weight.shape)}, this base "
                f"model needs ({p}, {width}); it was made for a different architecture"
            )
        if not bool(weight.isfinite().all()):
            raise AdapterCorruptError(f"adapter {card.ref}: its weights hold NaN or infinity")
        return
    _check_lora_shapes(stored, base.model)


_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<part>[AB])\.weight$")


def _check_lora_shapes(stored: StoredAdapter, model: Any) -> None:
    import torch

    ref = stored.card.ref
    modules = dict(model.named_modules())  # one walk; a lookup per tensor after that

    def module_at(path: str) -> Any:
        return modules.get(path, modules.get(path.replace("base_model.model.", "", 1)))

    rank = stored.peft_config.get("r")
    for key, tensor in stored.tensors.items():
        match = _LORA_KEY.match(key)
        if match is None:
            if key.endswith(".bias") or "lora_" not in key:
                raise AdapterMismatchError(
                    f"adapter {ref}: tensor {key!r} is not a LoRA A/B weight; only LoRA on linear "
                    "layers without bias or modules_to_save is served"
                )
            continue
        name = match["module"]
        module = module_at(name)
        base_layer = getattr(module, "base_layer", module)
        if base_layer is None or not hasattr(base_layer, "in_features"):
            raise AdapterMismatchError(
                f"adapter {ref}: it adapts {name!r}, which this base model does not have as a "
                "linear layer; it was made for a different architecture"
            )
        want = (
            (rank, base_layer.in_features)
            if match["part"] == "A"
            else (base_layer.out_features, rank)
        )
        if stored.peft_config.get("rank_pattern"):  # ranks differ per module: check the widths
            got = tensor.shape[1] if match["part"] == "A" else tensor.shape[0]
            ok = tensor.ndim == 2 and got == (want[1] if match["part"] == "A" else want[0])
        else:
            ok = tuple(tensor.shape) == tuple(want)
        if not ok:
            raise AdapterMismatchError(
                f"adapter {ref}: {key} is {tuple(tensor.shape)}, this base model needs {want}"
            )
    # One pass over all tensors: the largest magnitude of each is NaN or infinite exactly when
    # the tensor holds NaN or infinity (420 separate checks cost 6 ms on SmolLM2's LoRA).
    tensors = [t for t in stored.tensors.values() if t.is_floating_point()]
    peaks = torch.stack(torch._foreach_norm(tensors, float("inf"))) if tensors else None
    if peaks is not None and not bool(peaks.isfinite().all()):
        bad = next(k for k, t in stored.tensors.items() if not bool(t.isfinite().all()))
        raise AdapterCorruptError(f"adapter {ref}: {bad} holds NaN or infinity")
