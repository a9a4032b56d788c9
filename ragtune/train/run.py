"""``ragtune train`` as a function: questions and an index in, a registered adapter version out.

1. Read the questions (and unanswerable ones), build RAFT examples from the index with the
   config's retriever (:mod:`ragtune.train.data`); with ``train.data.objective`` ``lm`` or
   ``mixed`` also read the tenant's chunks as language-model examples (:mod:`ragtune.train.lm`).
   Split them all by document.
2. Encode them with the inference prompt, make a fresh adapter of the configured kind on the
   base model, and train it (:mod:`ragtune.train.loop`), checkpointing under
   ``<adapters.root>/.training/`` (``<adapters.cache>/.training/`` for an ``s3://`` registry):
   the same command run again after an interruption resumes.
3. Save the adapter with its card (base model hash, data hash, hyper-parameters, validation
   metrics) and register it as the next version of ``tenant/name`` in the registry.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.errors import ConfigError, ModelError, TrainingError
from ragtune.eval.questions import EvalQuestion, read_questions
from ragtune.generate.registry_storage import folder_root
from ragtune.settings import pick
from ragtune.train.data import (
    DataSettings,
    DataSplit,
    TrainingExample,
    build_examples,
    examples_sha256,
    held_documents,
)
from ragtune.train.lm import TextExample, encode_text, texts_sha256
from ragtune.train.loop import TrainProgress, TrainResult, TrainSettings, encode_example, train

if TYPE_CHECKING:
    from ragtune.config import RagtuneConfig
    from ragtune.generate.registry import ResolvedAdapter
    from ragtune.index import IndexStore
    from ragtune.index.location import IndexLocation
    from ragtune.index.pgstore import PgIndexStore

__all__ = ["TrainedAdapter", "train_adapter"]


@dataclass(frozen=True)
class TrainedAdapter:
    registered: ResolvedAdapter
    result: TrainResult
    examples: Mapping[str, int]
    """How many examples of each kind trained, and how many validated."""


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def train_adapter(
    config: str | Path | Mapping[str, Any] | RagtuneConfig,
    questions: str | Path | None,
    *,
    tenant: str,
    name: str,
    index: str | Path | None = None,
    unanswerable: str | Path | None = None,
    promote: bool | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
    on_data: Callable[[Mapping[str, int]], None] | None = None,
) -> TrainedAdapter:
    """Train an adapter of ``config.train``'s kind for ``tenant/name`` and register it.

    The first version of a name becomes current; a later one only with ``promote=True`` (else
    promote it after looking at its metrics: ``ragtune adapters promote``). ``questions`` is
    None exactly when ``train.data.objective`` is ``lm`` (the chunks alone).
    """
    from ragtune.config import RagtuneConfig, load_config
    from ragtune.eval.metrics import contains_answer
    from ragtune.eval.records import passage_key
    from ragtune.generate.adapters import (
        AdapterCard,
        check_name,
        new_adapter,
        save_adapter,
        trainable_parameters,
    )
    from ragtune.generate.models import ModelSettings, load_base_model
    from ragtune.generate.prompts import PromptPassage
    from ragtune.index.location import open_index

    cfg = config if isinstance(config, RagtuneConfig) else load_config(config)
    tenant, name = check_name(tenant, "tenant"), check_name(name, "adapter name")
    data_settings = pick(DataSettings, cfg.train.data)
    settings = pick(TrainSettings, cfg.train.loop)
    shown = cfg.generator.max_passages
    if data_settings.passages > shown:
        # A gold passage placed after the ones the prompt shows would drop its example.
        raise ConfigError(
            "the train config",
            [
                (
                    "train.data.passages",
                    f"train.data.passages is {data_settings.passages} but the prompt shows "
                    f"generator.max_passages = {shown}: examples whose gold passage lands after "
                    f"passage {shown} would be dropped. Set train.data.passages to at most "
                    f"{shown} (or raise generator.max_passages, for training and serving alike)",
                )
            ],
        )
    objective = data_settings.objective
    asked = _questions(questions, unanswerable, objective, data_settings.max_questions)
    index_path = cfg.index_location(index)
    examples: list[TrainingExample] = []
    with open_index(index_path) as store:
        key_tenant = _index_tenant(store.tenants(), tenant, index_path)
        texts = _chunk_texts(store, key_tenant) if objective != "qa" else []
        if asked:
            retriever = cfg.retriever.build(store, cfg.embedder_for_index(index_path))

            def retrieve(question: str, k: int) -> list[tuple[str, PromptPassage]]:
                found = retriever.retrieve(question, k, tenant=key_tenant)
                return [(passage_key(p), PromptPassage(p.title, p.text)) for p in found]

            def lookup(document: str, answers: Sequence[str]) -> PromptPassage | None:
                chunks = store.document_passages(document, tenant=key_tenant)
                holding = [c for c in chunks if contains_answer(c.text, answers)] or chunks
                return PromptPassage(holding[0].title, holding[0].text) if holding else None

            examples = build_examples(asked, retrieve, lookup, data_settings, seed=settings.seed)
    if objective != "lm" and not examples:
        raise TrainingError(
            f"no training example could be built from {questions}: answerable questions need a "
            "passage_id the index holds (and answers); check --index and the question file"
        )
    if objective != "qa" and not texts:
        raise TrainingError(
            f"{index_path} holds no chunks of {tenant!r} for the {objective} objective; index "
            "the tenant's documents first"
        )
    share = data_settings.validation_share
    held = held_documents(
        {e.document for e in examples} | {t.document for t in texts}, share, settings.seed
    )
    split = DataSplit(
        tuple(e for e in examples if e.document not in held),
        tuple(e for e in examples if e.document in held),
    )
    text_split = (
        [t for t in texts if t.document not in held],
        [t for t in texts if t.document in held],
    )
    counts = {
        "train": len(split.train) + len(text_split[0]),
        "validation": len(split.validation) + len(text_split[1]),
        **{
            f"train_{kind}": sum(e.kind == kind for e in split.train)
            for kind in ("answer", "no gold", "unanswerable")
        },
        "train_lm": len(text_split[0]),
    }

    spec = cfg.train.spec()
    # The base trains in full precision or int8 (QLoRA-style), whatever the served base uses.
    model_settings = {
        **asdict(pick(ModelSettings, cfg.generator)),
        "quantize": settings.base_quantize,
    }
    try:
        base = load_base_model(**model_settings)
    except ModelError as exc:
        if settings.base_quantize == "none":
            raise
        raise TrainingError(
            f"train.loop.base_quantize: {settings.base_quantize} cannot be used here: {exc}"
        ) from exc
    import torch

    torch.manual_seed(settings.seed)  # LoRA's A matrices start random: same seed, same start
    peft_model = new_adapter(base, spec)
    virtual = int(getattr(peft_model.peft_config["default"], "num_virtual_tokens", 0) or 0)
    layout = {
        "max_passages": cfg.generator.max_passages,
        "passage_tokens": cfg.generator.passage_tokens,
    }
    encode = [
        encode_example(
            base.tokenizer, e, max_length=settings.max_length, virtual_tokens=virtual, **layout
        )
        for e in split.train
    ]
    encode_val = [
        encode_example(
            base.tokenizer, e, max_length=settings.max_length, virtual_tokens=virtual, **layout
        )
        for e in split.validation
    ]
    train_items = [e for e in encode if e is not None]
    validation_items = [e for e in encode_val if e is not None]
    counts["dropped_too_long"] = (len(encode) - len(train_items)) + (
        len(encode_val) - len(validation_items)
    )
    if on_data is not None:  # after encoding, so the caller sees what was dropped too
        on_data(counts)
    # Chunks count less than answers when both are learnt (see ragtune.train.lm).
    weight = data_settings.lm_weight if objective == "mixed" else 1.0
    for part, items in zip(text_split, (train_items, validation_items), strict=True):
        encoded = [
            encode_text(base.tokenizer, t, max_length=settings.max_length, weight=weight)
            for t in part
        ]
        items += [e for e in encoded if e is not None]
    if not train_items:
        raise TrainingError(
            _nothing_to_train(split, counts, settings.max_length, cfg.generator.passage_tokens)
        )
    data_sha = examples_sha256(examples)
    parts: list[Any] = [data_sha, asdict(spec), asdict(settings), layout, base.weights_sha256]
    if texts:
        data_sha = hashlib.sha256(f"{data_sha}+lm:{texts_sha256(texts)}".encode()).hexdigest()
        parts += [data_sha, objective, weight]
    root, cache = cfg.adapters.root, cfg.adapters.cache
    run_id = _fingerprint(*parts)[:16]
    folder = folder_root(root)
    local = folder if folder is not None else cache  # checkpoints stay on this machine
    checkpoints = local / ".training" / tenant / name / run_id
    pad_id = base.tokenizer.pad_token_id
    if pad_id is None:
        pad_id = base.tokenizer.eos_token_id
    result = train(
        peft_model,
        train_items,
        validation_items,
        settings,
        pad_id=int(pad_id),
        checkpoint_dir=checkpoints,
        progress=progress,
    )
    metrics = {
        "validation_loss": round(result.best_validation_loss, 4)
        if result.best_validation_loss is not None
        else float("nan"),
        "train_loss": round(result.train_loss, 4),
        "steps": result.steps,
        "best_step": result.best_step,
        "tokens_per_second": round(result.tokens_per_second, 1),
        "train_seconds": round(result.seconds, 1),
        "train_examples": len(train_items),
        "validation_examples": len(validation_items),
    }
    card = AdapterCard(
        name=name,
        tenant=tenant,
        kind=spec.kind,
        base_model=base.name,
        base_weights_sha256=base.weights_sha256,
        training_data_sha256=data_sha,
        metrics=metrics,
        trainable_parameters=trainable_parameters(peft_model),
        settings={
            "adapter": asdict(spec),
            "loop": asdict(settings),
            "data": asdict(data_settings),
            "device": str(next(peft_model.parameters()).device),
            "prompt": {"examples": False, **layout},
        },
    )
    staging = checkpoints / "adapter"
    shutil.rmtree(staging, ignore_errors=True)
    save_adapter(peft_model, staging, card)
    registered = cfg.adapters.registry().register(
        staging, tenant=tenant, name=name, promote=promote
    )
    shutil.rmtree(checkpoints, ignore_errors=True)
    return TrainedAdapter(registered, result, counts)


def _nothing_to_train(
    split: DataSplit, counts: Mapping[str, int], max_length: int, passage_tokens: int
) -> str:
    """Why no training example is left, and the fix."""
    if split.train and counts["dropped_too_long"] >= len(split.train):
        return (
            f"all {len(split.train)} training examples were dropped: their gold passage does not "
            f"fit train.loop.max_length = {max_length} tokens with generator.passage_tokens = "
            f"{passage_tokens}; raise max_length or lower passage_tokens"
        )
    return (
        f"no training example is left: {counts['train']} to train after {counts['validation']} "
        "held out for validation (whole documents, train.data.validation_share), "
        f"{counts['dropped_too_long']} dropped as longer than train.loop.max_length; give "
        "questions about more documents, or lower validation_share"
    )


def _index_tenant(tenants: Mapping[str, int], tenant: str, index: IndexLocation) -> str | None:
    """The tenant to filter the index by: ``tenant`` when the index holds its documents, None
    for an index without tenants; an index of other tenants only is refused (no leaks)."""
    if tenant in tenants:
        return tenant
    if set(tenants) <= {"(none)"}:
        return None
    raise TrainingError(
        f"{index} holds documents of the tenants {', '.join(sorted(set(tenants) - {'(none)'}))} "
        f"but none of {tenant!r}; index the tenant's documents (ragtune index add --tenant "
        f"{tenant}) or train for one of those tenants"
    )


def _questions(
    questions: str | Path | None,
    unanswerable: str | Path | None,
    objective: str,
    cap: int | None,
) -> list[EvalQuestion]:
    """The questions the objective learns from (none for ``lm``), at most ``cap`` per file."""
    if objective == "lm":
        if questions is not None or unanswerable is not None:
            raise TrainingError(
                "train.data.objective lm learns from the tenant's chunks alone: leave out "
                "--questions and --unanswerable, or set the objective to mixed to learn both"
            )
        return []
    if questions is None:
        raise TrainingError(
            f"train.data.objective {objective} needs --questions: a JSONL file of questions "
            "with answers and passage_id (ragtune synth writes one from the index)"
        )
    asked = read_questions(Path(questions))[:cap]
    if unanswerable is not None:
        asked += read_questions(Path(unanswerable), answerable=False)[:cap]
    return asked


def _chunk_texts(store: IndexStore | PgIndexStore, tenant: str | None) -> list[TextExample]:
    """The tenant's chunks as language-model examples, titled, keyed by their document."""
    from ragtune.eval.records import passage_key
    from ragtune.index.chunkdb import searchable_text

    return [
        TextExample(searchable_text(p.title, p.text, with_title=True), passage_key(p))
        for p in store.tenant_passages(tenant)
    ]
