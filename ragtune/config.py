"""Configuration: pydantic models, one ``type:``-tagged union per stage, and ``load_config``.

Only this module knows pydantic. Each stage model has a ``build()`` (or the caller reads its
flat fields) so the stage classes themselves take plain arguments and never a config object.

Example::

    config = load_config("configs/default.yaml")
    embedder = config.embedder.build()
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from ragtune.check.checker import CheckerSettings
from ragtune.errors import ConfigError
from ragtune.generate.adapters import AdapterSpec, LoraSpec, PrefixSpec, PromptSpec
from ragtune.generate.decoding import DecodeSettings
from ragtune.generate.generator import GeneratorSettings
from ragtune.generate.models import ModelSettings
from ragtune.generate.pool import PoolSettings
from ragtune.guard.topics import DeniedTopic
from ragtune.index.embedders import EmbedderSettings
from ragtune.index.lexical import LexicalSpec
from ragtune.index.pgschema import PgStoreSettings
from ragtune.index.vectors import FlatSpec, HNSWSpec, IVFPQSpec, VectorIndexSpec
from ragtune.ingest.chunking import ChunkingSettings, IngestSettings
from ragtune.live.settings import LiveSettings
from ragtune.policy import (
    AbstainPolicy,
    AdapterDefaults,
    AnswerPolicy,
    AssistantPolicy,
    GuardPolicy,
)
from ragtune.retrieve.base import RetrieverSettings
from ragtune.retrieve.hybrid import FusionSettings
from ragtune.serve.keys import ApiKey
from ragtune.serve.settings import ServeSettings
from ragtune.settings import pick
from ragtune.synth.settings import EndpointSettings, SynthSettings
from ragtune.telemetry import TelemetrySettings
from ragtune.train.data import DataSettings
from ragtune.train.loop import TrainSettings
from ragtune.types import (
    NO_ADAPTER,
    AdapterChoice,
    AdapterFolder,
    AdapterRef,
    check_name,
    parse_adapter_choice,
)
from ragtune.yaml_loading import explain_yaml_booleans, load_yaml

if TYPE_CHECKING:
    from ragtune.check.support import Calibration
    from ragtune.check.support_model import SupportModel
    from ragtune.generate.generator import HFGenerator
    from ragtune.generate.models import LoadedModel
    from ragtune.index.embedders import SentenceTransformerEmbedder
    from ragtune.index.location import IndexLocation
    from ragtune.indexing import BuildSettings
    from ragtune.retrieve import DenseRetriever, HybridRetriever, LexicalRetriever
    from ragtune.retrieve.base import QueryEmbedder, SearchIndex

__all__ = [
    "AdaptersConfig",
    "ApiKeyConfig",
    "CheckerConfig",
    "ChunkingConfig",
    "DenseRetrieverConfig",
    "EmbedderConfig",
    "EndpointConfig",
    "FlatIndexConfig",
    "FolderStoreConfig",
    "GeneratorConfig",
    "GuardConfig",
    "HNSWIndexConfig",
    "HybridRetrieverConfig",
    "IVFPQIndexConfig",
    "IngestConfig",
    "LexicalConfig",
    "LexicalRetrieverConfig",
    "LiveConfig",
    "PgvectorStoreConfig",
    "RagtuneConfig",
    "ServeConfig",
    "SynthConfig",
    "TelemetryConfig",
    "load_config",
]

_SECTION = ConfigDict(extra="forbid")
"""A config section validates a stage's settings dataclass (declared in the stage's module, with
its bounds) and adds only what the config needs to assemble: the ``type`` tag, a ``build``."""


def _check_bases(section: Any) -> None:
    """Run every settings dataclass's own ``__post_init__`` checks on a section that combines
    several of them (Python would run only the first one found)."""
    for klass in type(section).__mro__[1:]:
        hook = klass.__dict__.get("__post_init__")
        if hook is not None:
            hook(section)


class _Strict(BaseModel):
    """Unknown keys are errors, so a typo fails at load time and names its field path."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@pydantic_dataclass(frozen=True, config=_SECTION)
class EmbedderConfig(EmbedderSettings):
    """A sentence-transformers embedding model."""

    type: Literal["sentence-transformers"] = "sentence-transformers"

    def __post_init__(self) -> None:
        _check_bases(self)

    def build(self) -> SentenceTransformerEmbedder:
        from ragtune.index.embedders import SentenceTransformerEmbedder

        settings = pick(EmbedderSettings, self)
        return SentenceTransformerEmbedder(
            settings.model,
            **{k: v for k, v in dataclasses.asdict(settings).items() if k != "model"},
        )


@pydantic_dataclass(frozen=True, config=_SECTION)
class ChunkingConfig(ChunkingSettings):
    """How documents are cut into chunks, sized in the embedder's tokens."""

    def __post_init__(self) -> None:
        _check_bases(self)


@pydantic_dataclass(frozen=True, config=_SECTION)
class IngestConfig(IngestSettings):
    """What happens to documents on their way in."""


@pydantic_dataclass(frozen=True, config=_SECTION)
class FlatIndexConfig(FlatSpec):
    def spec(self) -> VectorIndexSpec:
        return pick(FlatSpec, self)


@pydantic_dataclass(frozen=True, config=_SECTION)
class HNSWIndexConfig(HNSWSpec):
    def __post_init__(self) -> None:
        _check_bases(self)

    def spec(self) -> VectorIndexSpec:
        return pick(HNSWSpec, self)


@pydantic_dataclass(frozen=True, config=_SECTION)
class IVFPQIndexConfig(IVFPQSpec):
    def __post_init__(self) -> None:
        _check_bases(self)

    def spec(self) -> VectorIndexSpec:
        return pick(IVFPQSpec, self)


VectorIndexConfig = Annotated[
    FlatIndexConfig | HNSWIndexConfig | IVFPQIndexConfig, Field(discriminator="type")
]


@pydantic_dataclass(frozen=True, config=_SECTION)
class LexicalConfig(LexicalSpec):
    """The BM25 index built next to the vectors."""

    def __post_init__(self) -> None:
        _check_bases(self)

    def spec(self) -> LexicalSpec:
        return pick(LexicalSpec, self)


def _default_type(data: Any, field_name: str, default: str) -> Any:
    """A stage section without ``type:`` means the default type, not a tagging error."""
    if isinstance(data, dict) and isinstance(data.get(field_name), dict):
        section = data[field_name]
        if "type" not in section:
            return data | {field_name: {"type": default} | section}
    return data


@pydantic_dataclass(frozen=True, config=_SECTION)
class FolderStoreConfig:
    """An index folder: FAISS vectors, a SQLite chunk table and BM25 files (the default)."""

    type: Literal["folder"] = "folder"


@pydantic_dataclass(frozen=True, config=_SECTION)
class PgvectorStoreConfig(PgStoreSettings):
    """A PostgreSQL schema: chunk rows, pgvector vectors (HNSW, cosine) and full-text search.
    Needs ``pip install 'ragtune[pgvector]'``."""

    type: Literal["pgvector"] = "pgvector"

    def __post_init__(self) -> None:
        _check_bases(self)


StoreConfig = Annotated[FolderStoreConfig | PgvectorStoreConfig, Field(discriminator="type")]


class IndexConfig(_Strict):
    """Where indexes live, and everything fixed when one is built (recorded in its manifest)."""

    store: StoreConfig = Field(default_factory=FolderStoreConfig)
    vectors: VectorIndexConfig = Field(default_factory=FlatIndexConfig)
    lexical: LexicalConfig = Field(default_factory=LexicalConfig)

    @model_validator(mode="before")
    @classmethod
    def _vectors_default(cls, data: Any) -> Any:
        return _default_type(_default_type(data, "vectors", "flat"), "store", "folder")

    def location(self, named: str | Path) -> IndexLocation:
        """The index a command or a retriever names: the folder ``named``, or, with the
        pgvector store, the configured schema (``named`` must then be that schema's name)."""
        if isinstance(self.store, FolderStoreConfig):
            return Path(named)
        settings = pick(PgStoreSettings, self.store)
        if str(named) != settings.schema:
            raise ConfigError(
                "index.store",
                [
                    (
                        "index.store.schema",
                        f"the index store is pgvector schema {settings.schema!r}, but the index "
                        f"named is {str(named)!r}; name the schema, or set index.store.schema",
                    )
                ],
            )
        return settings


@pydantic_dataclass(frozen=True, config=_SECTION)
class DenseRetrieverConfig(RetrieverSettings):
    """Embedding search over the FAISS index."""

    type: Literal["dense"] = "dense"

    def __post_init__(self) -> None:
        _check_bases(self)

    def build(self, index: SearchIndex, embedder: QueryEmbedder) -> DenseRetriever:
        from ragtune.retrieve import DenseRetriever

        return DenseRetriever(index, embedder)


@pydantic_dataclass(frozen=True, config=_SECTION)
class LexicalRetrieverConfig(RetrieverSettings):
    """BM25 keyword search."""

    type: Literal["lexical"] = "lexical"

    def __post_init__(self) -> None:
        _check_bases(self)

    def build(self, index: SearchIndex, embedder: QueryEmbedder | None = None) -> LexicalRetriever:
        from ragtune.retrieve import LexicalRetriever

        return LexicalRetriever(index)


@pydantic_dataclass(frozen=True, config=_SECTION)
class HybridRetrieverConfig(RetrieverSettings, FusionSettings):
    """Dense and BM25 results fused into one ranking."""

    type: Literal["hybrid"] = "hybrid"

    def __post_init__(self) -> None:
        _check_bases(self)

    def build(self, index: SearchIndex, embedder: QueryEmbedder) -> HybridRetriever:
        from ragtune.retrieve import HybridRetriever

        return HybridRetriever(index, embedder, pick(FusionSettings, self))


RetrieverConfig = Annotated[
    DenseRetrieverConfig | LexicalRetrieverConfig | HybridRetrieverConfig,
    Field(discriminator="type"),
]


class NoAdapterConfig(_Strict):
    """The base model alone."""

    type: Literal["none"] = "none"

    def choice(self) -> AdapterChoice:
        return NO_ADAPTER


class TrainedAdapterConfig(_Strict):
    """A trained adapter, named in the registry (``tenant/name``, optionally ``@vN``) or by folder.

    ``type`` must match the adapter's card: a prompt adapter configured as ``lora`` is an error
    at start-up rather than a surprise in production.
    """

    type: Literal["prompt", "prefix", "lora"]
    ref: str | None = Field(None, description="tenant/name or tenant/name@vN in the registry")
    path: Path | None = Field(None, description="an adapter folder (PEFT files + adapter.json)")

    @model_validator(mode="after")
    def _one_source(self) -> TrainedAdapterConfig:
        if (self.ref is None) == (self.path is None):
            raise ValueError(
                "give exactly one of ref (tenant/name in the registry) or path (a folder)"
            )
        if self.ref is not None and not isinstance(parse_adapter_choice(self.ref), AdapterRef):
            raise ValueError(f"ref {self.ref!r} is not tenant/name or tenant/name@vN")
        return self

    def choice(self) -> AdapterChoice:
        if self.path is not None:
            return AdapterFolder(self.path)
        assert self.ref is not None
        return parse_adapter_choice(self.ref)


AdapterConfig = Annotated[NoAdapterConfig | TrainedAdapterConfig, Field(discriminator="type")]


@pydantic_dataclass(frozen=True, config=_SECTION)
class GeneratorConfig(ModelSettings, DecodeSettings, GeneratorSettings):
    """A Hugging Face causal LM: the model, how it decodes, the prompt's shape, the batch size.

    Which adapter a request uses is not the generator's to choose: see ``adapters``.
    """

    type: Literal["hf"] = "hf"

    def __post_init__(self) -> None:
        _check_bases(self)
        _check_grounding(self.model, self.grounding)


def _check_grounding(model: str, grounding: str) -> None:
    """``generator.grounding`` names a grounding adapter that exists for ``model`` (checked
    when the config loads, so ``ragtune config validate`` reports it; the weights are read only
    when the model loads)."""
    from ragtune.errors import ModelError
    from ragtune.generate.grounding import grounding_folder
    from ragtune.generate.models import EMBEDDED_MODELS

    name = model.lower()
    try:
        folder = grounding_folder(grounding, name if name in EMBEDDED_MODELS else model)
    except ModelError as exc:
        raise ValueError(str(exc)) from None
    if folder is not None and not (folder / "adapter_config.json").is_file():
        raise ValueError(
            f"generator.grounding {grounding!r} holds no adapter_config.json: give the folder "
            "of a PEFT LoRA adapter made for this model, or shipped, or none"
        )


@pydantic_dataclass(frozen=True, config=_SECTION)
class AdaptersConfig(PoolSettings):
    """The adapter registry, how many adapters stay loaded, and each tenant's default adapter.

    A tenant without a default gets the base model; a tenant's default must be its own
    adapter. ``without_tenant`` serves requests that name no tenant.
    """

    defaults: dict[str, AdapterConfig] = dataclass_field(default_factory=dict)
    without_tenant: AdapterConfig = dataclass_field(default_factory=NoAdapterConfig)

    def __post_init__(self) -> None:
        _check_bases(self)
        for tenant, adapter in self.defaults.items():
            check_name(tenant, "tenant")
            choice = adapter.choice()
            if isinstance(choice, AdapterRef) and choice.tenant != tenant:
                raise ValueError(
                    f"defaults.{tenant} names {choice}, an adapter of tenant {choice.tenant!r}: "
                    f"a tenant's default must be one of its own adapters ({tenant}/NAME)"
                )

    def policy(self) -> AdapterDefaults:
        return AdapterDefaults(
            {tenant: a.choice() for tenant, a in self.defaults.items()},
            self.without_tenant.choice(),
        )

    def kinds(self) -> dict[AdapterChoice, str]:
        """The kind each configured adapter must have (its ``type``)."""
        configured = [*self.defaults.values(), self.without_tenant]
        return {a.choice(): a.type for a in configured if isinstance(a, TrainedAdapterConfig)}


@pydantic_dataclass(frozen=True, config=_SECTION)
class CheckerConfig(CheckerSettings, AnswerPolicy):
    """The support checker: calibrated signals, a threshold, and what to do with a failure."""

    type: Literal["support", "none"] = "support"

    def __post_init__(self) -> None:
        _check_bases(self)


@pydantic_dataclass(frozen=True, config=_SECTION)
class AbstainConfig(AbstainPolicy):
    """Abstain before generating when retrieval finds nothing convincing."""

    def __post_init__(self) -> None:
        _check_bases(self)


@pydantic_dataclass(frozen=True, config=_SECTION)
class DeniedTopicConfig(DeniedTopic):
    def __post_init__(self) -> None:
        _check_bases(self)


@pydantic_dataclass(frozen=True, config=_SECTION)
class GuardConfig(GuardPolicy):
    """The input guard's limits and denied topics; answers' personal data and citations."""

    denied_topics: tuple[DeniedTopicConfig, ...] = ()

    def __post_init__(self) -> None:
        _check_bases(self)


@pydantic_dataclass(frozen=True, config=_SECTION)
class TelemetryConfig(TelemetrySettings):
    pass


@pydantic_dataclass(frozen=True, config=_SECTION)
class LiveConfig(LiveSettings):
    """Live metrics per adapter version (canary decisions) and user feedback, per tenant."""

    def __post_init__(self) -> None:
        _check_bases(self)


@pydantic_dataclass(frozen=True, config=_SECTION)
class PromptTuningConfig(PromptSpec):
    """A soft prompt: trainable input embeddings, initialised from a text."""

    def __post_init__(self) -> None:
        _check_bases(self)


@pydantic_dataclass(frozen=True, config=_SECTION)
class PrefixTuningConfig(PrefixSpec):
    """A prefix: trainable keys and values per layer, initialised from a text's own."""

    def __post_init__(self) -> None:
        _check_bases(self)


@pydantic_dataclass(frozen=True, config=_SECTION)
class LoraTrainingConfig(LoraSpec):
    """Low-rank updates on the attention (and optionally MLP) projections."""

    def __post_init__(self) -> None:
        _check_bases(self)


AdapterTrainingConfig = Annotated[
    PromptTuningConfig | PrefixTuningConfig | LoraTrainingConfig, Field(discriminator="type")
]


@pydantic_dataclass(frozen=True, config=_SECTION)
class TrainDataConfig(DataSettings):
    """How questions become grounded examples (RAFT); see :mod:`ragtune.train.data`."""

    def __post_init__(self) -> None:
        _check_bases(self)


@pydantic_dataclass(frozen=True, config=_SECTION)
class TrainLoopConfig(TrainSettings):
    """The optimiser, schedule, batches, validation and checkpoints."""

    def __post_init__(self) -> None:
        _check_bases(self)


class TrainConfig(_Strict):
    """``ragtune train``: the adapter kind and its shape, the data, and the loop."""

    adapter: AdapterTrainingConfig = Field(default_factory=LoraTrainingConfig)
    data: TrainDataConfig = Field(default_factory=TrainDataConfig)
    loop: TrainLoopConfig = Field(default_factory=TrainLoopConfig)

    @model_validator(mode="before")
    @classmethod
    def _adapter_default(cls, data: Any) -> Any:
        return _default_type(data, "adapter", "lora")

    def spec(self) -> AdapterSpec:
        """The adapter's shape, as the training code takes it."""
        adapter = self.adapter
        if isinstance(adapter, LoraTrainingConfig):
            return pick(LoraSpec, adapter)
        if isinstance(adapter, PrefixTuningConfig):
            return pick(PrefixSpec, adapter)
        return pick(PromptSpec, adapter)


@pydantic_dataclass(frozen=True, config=_SECTION)
class ApiKeyConfig(ApiKey):
    def __post_init__(self) -> None:
        _check_bases(self)


@pydantic_dataclass(frozen=True, config=_SECTION)
class ServeConfig(ServeSettings):
    """``ragtune serve``: the OpenAI-compatible HTTP server (see :mod:`ragtune.serve`)."""

    keys: tuple[ApiKeyConfig, ...] = ()

    def __post_init__(self) -> None:
        _check_bases(self)


@pydantic_dataclass(frozen=True, config=_SECTION)
class EndpointConfig(EndpointSettings):
    """An OpenAI-compatible chat endpoint for the `openai` teacher of `ragtune synth`."""

    def __post_init__(self) -> None:
        _check_bases(self)


@pydantic_dataclass(frozen=True, config=_SECTION)
class SynthConfig(SynthSettings):
    """`ragtune synth`: training questions generated from a tenant's chunks
    (see :mod:`ragtune.synth`)."""

    endpoint: EndpointConfig = dataclass_field(default_factory=EndpointConfig)

    def __post_init__(self) -> None:
        _check_bases(self)


class RagtuneConfig(_Strict):
    """The whole configuration. Every section has a working default (the embedded setup)."""

    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)
    retriever: RetrieverConfig = Field(default_factory=HybridRetrieverConfig)
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    adapters: AdaptersConfig = Field(default_factory=AdaptersConfig)
    checker: CheckerConfig = Field(default_factory=CheckerConfig)
    abstain: AbstainConfig = Field(default_factory=AbstainConfig)
    guard: GuardConfig = Field(default_factory=GuardConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    live: LiveConfig = Field(default_factory=LiveConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    synth: SynthConfig = Field(default_factory=SynthConfig)

    @model_validator(mode="before")
    @classmethod
    def _retriever_default(cls, data: Any) -> Any:
        _refuse_moved(data)
        return _default_type(data, "retriever", "hybrid")

    def assistant_policy(self) -> AssistantPolicy:
        """The Assistant's decisions, from the retriever, checker, guard, abstain and adapters
        sections and the generator's decoding."""
        return AssistantPolicy(
            top_k=self.retriever.top_k,
            answer=pick(AnswerPolicy, self.checker),
            guard=pick(GuardPolicy, self.guard),
            abstain=pick(AbstainPolicy, self.abstain),
            adapters=self.adapters.policy(),
            decoding=pick(DecodeSettings, self.generator),
        )

    def live_settings(self) -> LiveSettings:
        """Where answers and feedback are recorded (``live.root`` None: nowhere)."""
        return pick(LiveSettings, self.live)

    def answerability_model(self) -> Calibration | None:
        """The answerability model shipped with the grounding adapter, when the abstain
        section asks for it and the grounding adapter has one; else None."""
        from ragtune.check.answerability import ANSWERABILITY_FILE, load_answerability
        from ragtune.generate.grounding import grounding_folder
        from ragtune.generate.models import EMBEDDED_MODELS

        if not self.abstain.answerability:
            return None
        name = self.generator.model.lower()
        folder = grounding_folder(
            self.generator.grounding, name if name in EMBEDDED_MODELS else self.generator.model
        )
        if folder is None or not (folder / ANSWERABILITY_FILE).is_file():
            return None
        return load_answerability(folder / ANSWERABILITY_FILE)

    def build_support_model(self) -> SupportModel | None:
        """The checker's support model when ``checker.signals`` names it (loaded on the CPU,
        its frozen part from the base model its card names); else None."""
        from ragtune.check.support_model import (
            load_support_model,
            read_support_card,
            support_model_folder,
        )
        from ragtune.index.embedders import resolve_embedder_path

        if "support_model" not in self.checker.signals:
            return None
        folder = support_model_folder(self.checker.support_model_folder)
        card = read_support_card(folder)
        return load_support_model(folder, resolve_embedder_path(card.base_model))

    def build_generator(self) -> HFGenerator:
        """Load the base model and open the adapter registry (no adapter is chosen here)."""
        return self.generator_on(self.load_base_model())

    def load_base_model(self) -> LoadedModel:
        """The generator's base model (with its grounding adapter merged), loaded."""
        from ragtune.generate import load_base_model

        return load_base_model(**dataclasses.asdict(pick(ModelSettings, self.generator)))

    def generator_on(self, base: LoadedModel) -> HFGenerator:
        """A generator on an already loaded ``base``, with the adapter registry open."""
        from ragtune.generate import AdapterPool, HFGenerator

        pool = AdapterPool(
            base,
            self.adapters.registry(),
            pick(PoolSettings, self.adapters),
        )
        return HFGenerator(base, pool, pick(GeneratorSettings, self.generator))

    def index_location(self, named: str | Path | None = None) -> IndexLocation:
        """The index to answer from: ``named`` (a folder, or the pgvector schema's name), else
        the configured one (``retriever.index``, or the pgvector store's schema)."""
        if named is not None:
            return self.index.location(named)
        if isinstance(self.index.store, PgvectorStoreConfig):
            return pick(PgStoreSettings, self.index.store)
        return self.retriever.index

    def embedder_for_index(self, index: IndexLocation) -> SentenceTransformerEmbedder:
        """The embedder an index was built with (its model; this config's backend and device)."""
        from ragtune.errors import EmbedderMismatchError
        from ragtune.index import SentenceTransformerEmbedder
        from ragtune.index.location import read_index_manifest

        info = read_index_manifest(index).embedder
        if self.embedder.model.lower() not in (info.name.lower(), info.model.lower()):
            raise EmbedderMismatchError(
                f"{index} was built with the embedder {info.name!r}, but the config names "
                f"{self.embedder.model!r}; use the index's embedder, or rebuild the index"
            )
        settings = pick(EmbedderSettings, self.embedder, model=info.model or info.name)
        return SentenceTransformerEmbedder(
            settings.model,
            **{k: v for k, v in dataclasses.asdict(settings).items() if k != "model"},
        )

    def build_settings(self) -> BuildSettings:
        """The settings a new index is built with."""
        from ragtune.indexing import BuildSettings

        return BuildSettings(
            **dataclasses.asdict(pick(ChunkingSettings, self.chunking)),
            **dataclasses.asdict(pick(IngestSettings, self.ingest)),
            vectors=self.index.vectors.spec(),
            lexical=self.index.lexical.spec(),
        )


def load_config(source: str | Path | Mapping[str, Any] | None = None) -> RagtuneConfig:
    """Load and validate a config from a YAML file, a mapping, or ``None`` for the defaults.

    Raises :class:`ConfigError` listing every problem with its field path.
    """
    if source is None:
        return RagtuneConfig()
    if isinstance(source, Mapping):
        return _validate(dict(source), "<dict>")
    path = Path(source)
    if not path.is_file():
        raise ConfigError(str(path), [("", "no such file; give the path of a YAML config")])
    try:
        data = load_yaml(path.read_text(encoding="utf-8"), source=str(path))
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), [("", f"not UTF-8 text ({exc.reason})")]) from exc
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f"line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(path), [(where, f"not valid YAML: {problem}")]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            str(path), [("", f"the top level must be a mapping, not {type(data).__name__}")]
        )
    return explain_yaml_booleans(_validate, data, str(path))


def _validate(data: dict[str, Any], source: str) -> RagtuneConfig:
    try:
        return RagtuneConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _problems(exc, data)) from None


def _problems(exc: ValidationError, data: Any) -> list[tuple[str, str]]:
    problems = []
    for error in exc.errors():
        message = error["msg"]
        if error["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            message = "unknown field (check its spelling and the section it is in)"
        message = message.removeprefix("Value error, ")
        problems.append((_field_path(error["loc"], data), message))
    return problems


def _field_path(loc: tuple[int | str, ...], data: Any) -> str:
    """Join a pydantic error location as the YAML spells it.

    pydantic inserts the member's tag after a tagged union (``train.adapter.lora.bogus``); a
    part that names no key of the data at that level but is its ``type``, or is followed by
    one that does name a key, is such an insertion and is left out.
    """
    parts: list[str] = []
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, Mapping) and part not in node:
            following = loc[i + 1] if i + 1 < len(loc) else None
            if part == node.get("type") or (following is not None and following in node):
                continue
        parts.append(str(part))
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list | tuple) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return ".".join(parts)


_MOVED = {
    ("generator", "adapter"): "adapters.defaults (a default adapter per tenant; see README)",
    ("generator", "adapters_root"): "adapters.root",
    ("generator", "max_loaded_adapters"): "adapters.max_loaded",
}


def _refuse_moved(data: Any) -> None:
    """Settings that moved get an error naming where they went, not just 'unknown field'."""
    if not isinstance(data, Mapping):
        return
    for (section, key), where in _MOVED.items():
        part = data.get(section)
        if isinstance(part, Mapping) and key in part:
            raise ValueError(
                f"{section}.{key} moved to {where}: the generator holds no default adapter "
                "any more, each tenant gets its own"
                if key == "adapter"
                else f"{section}.{key} moved to {where}"
            )
