"""Configuration: pydantic models, one ``type:``-tagged union per stage, and ``load_config``.

Only this module knows pydantic. Each stage model has a ``build()`` (or the caller reads its
flat fields) so the stage classes themselves take plain arguments and never a config object.

Example::

    config = load_config("configs/default.yaml")
    embedder = config.embedder.build()
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ragtune.errors import ConfigError
from ragtune.yaml_loading import explain_yaml_booleans, load_yaml

if TYPE_CHECKING:
    from ragtune.generate.generator import HFGenerator
    from ragtune.index.embedders import SentenceTransformerEmbedder
    from ragtune.index.lexical import LexicalSpec
    from ragtune.index.vectors import VectorIndexSpec
    from ragtune.indexing import BuildSettings
    from ragtune.retrieve import DenseRetriever, HybridRetriever, LexicalRetriever
    from ragtune.retrieve.base import QueryEmbedder, SearchIndex

__all__ = [
    "ApiKeyConfig",
    "CheckerConfig",
    "ChunkingConfig",
    "DenseRetrieverConfig",
    "EmbedderConfig",
    "FlatIndexConfig",
    "GeneratorConfig",
    "GuardConfig",
    "HNSWIndexConfig",
    "HybridRetrieverConfig",
    "IVFPQIndexConfig",
    "IngestConfig",
    "LexicalConfig",
    "LexicalRetrieverConfig",
    "RagtuneConfig",
    "ServeConfig",
    "TelemetryConfig",
    "load_config",
]


class _Strict(BaseModel):
    """Unknown keys are errors, so a typo fails at load time and names its field path."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class EmbedderConfig(_Strict):
    """A sentence-transformers embedding model."""

    type: Literal["sentence-transformers"] = "sentence-transformers"
    model: str = Field(
        "all-minilm-l6-v2",
        description="'all-minilm-l6-v2' (embedded, offline) or a local sentence-transformers folder.",
    )
    backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        "torch",
        description="torch; onnx (fp32) or onnx-int8 (dynamic int8) need `pip install ragtune[onnx]`.",
    )
    batch_size: int = Field(64, ge=1, le=4096)
    device: str = Field("auto", description="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    cache_dir: Path | None = Field(
        None, description="Where ONNX exports are kept; default ~/.cache/ragtune/onnx."
    )
    query_backend: Literal["auto", "same", "torch", "onnx"] = Field(
        "auto",
        description="single queries: auto = ONNX fp32 on the CPU when onnxruntime is installed "
        "(same vectors as torch, 2-3x faster for one short text); same = the backend above",
    )

    def build(self) -> SentenceTransformerEmbedder:
        from ragtune.index.embedders import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(
            self.model,
            backend=self.backend,
            query_backend=self.query_backend,
            batch_size=self.batch_size,
            device=self.device,
            cache_dir=self.cache_dir,
        )


class ChunkingConfig(_Strict):
    """How documents are cut into chunks, sized in the embedder's tokens."""

    chunk_tokens: int = Field(220, ge=16, le=8192)
    overlap_tokens: int = Field(32, ge=0)
    title_in_text: bool = Field(
        True,
        description="Prefix each chunk's document title to the text that is embedded and indexed.",
    )
    sentence_vectors: bool = Field(
        True,
        description="Embed each sentence and score a chunk by its best one (more recall, about "
        "5x the vectors); false embeds each chunk whole.",
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingConfig:
        if self.overlap_tokens >= self.chunk_tokens:
            raise ValueError(
                f"overlap_tokens ({self.overlap_tokens}) must be smaller than "
                f"chunk_tokens ({self.chunk_tokens})"
            )
        return self


class IngestConfig(_Strict):
    """What happens to documents on their way in."""

    scrub_pii: bool = Field(
        True,
        description="Replace e-mails, phones, cards, IBANs, SSNs and IPs by [TYPE] placeholders.",
    )


class FlatIndexConfig(_Strict):
    """Exact search. Best up to a few hundred thousand chunks."""

    type: Literal["flat"] = "flat"

    def spec(self) -> VectorIndexSpec:
        from ragtune.index.vectors import VectorIndexSpec

        return VectorIndexSpec(kind="flat")


class HNSWIndexConfig(_Strict):
    """Graph-based approximate search: fast queries on large corpora, more memory."""

    type: Literal["hnsw"] = "hnsw"
    m: int = Field(32, ge=4, le=256, description="Neighbours per node.")
    ef_construction: int = Field(200, ge=8)
    ef_search: int = Field(128, ge=8)

    def spec(self) -> VectorIndexSpec:
        from ragtune.index.vectors import VectorIndexSpec

        return VectorIndexSpec(
            kind="hnsw", m=self.m, ef_construction=self.ef_construction, ef_search=self.ef_search
        )


class IVFPQIndexConfig(_Strict):
    """Inverted lists with product quantisation: least memory for millions of chunks."""

    type: Literal["ivf-pq"] = "ivf-pq"
    nlist: int = Field(
        1024, ge=1, description="Coarse clusters; needs about 39 x nlist chunks to train."
    )
    m: int = Field(16, ge=1, description="Sub-quantisers; must divide the embedding dimension.")
    nbits: int = Field(8, ge=4, le=12)
    nprobe: int = Field(16, ge=1)

    @model_validator(mode="after")
    def _nprobe_fits(self) -> IVFPQIndexConfig:
        if self.nprobe > self.nlist:
            raise ValueError(f"nprobe ({self.nprobe}) cannot exceed nlist ({self.nlist})")
        return self

    def spec(self) -> VectorIndexSpec:
        from ragtune.index.vectors import VectorIndexSpec

        return VectorIndexSpec(
            kind="ivf-pq", nlist=self.nlist, m=self.m, nbits=self.nbits, nprobe=self.nprobe
        )


VectorIndexConfig = Annotated[
    FlatIndexConfig | HNSWIndexConfig | IVFPQIndexConfig, Field(discriminator="type")
]


class LexicalConfig(_Strict):
    """The BM25 index built next to the vectors."""

    k1: float = Field(1.5, gt=0)
    b: float = Field(0.75, ge=0, le=1)
    method: Literal["lucene", "robertson", "atire", "bm25l", "bm25+"] = "lucene"
    stopwords: Literal["english", "none"] = "english"
    stemming: bool = Field(True, description="English Snowball stemming (needs PyStemmer).")
    tokenizer: Literal["auto", "words"] = Field(
        "auto",
        description="auto: character bigrams for Chinese, Japanese, Thai and other scripts "
        "written without spaces, words for the rest; words: words only",
    )

    def spec(self) -> LexicalSpec:
        from ragtune.index.lexical import LexicalSpec

        return LexicalSpec(
            k1=self.k1,
            b=self.b,
            method=self.method,
            stopwords=self.stopwords,
            stemming=self.stemming,
            tokenizer=self.tokenizer,
        )


def _default_type(data: Any, field_name: str, default: str) -> Any:
    """A stage section without ``type:`` means the default type, not a tagging error."""
    if isinstance(data, dict) and isinstance(data.get(field_name), dict):
        section = data[field_name]
        if "type" not in section:
            return data | {field_name: {"type": default} | section}
    return data


class IndexConfig(_Strict):
    """Everything fixed when an index is built; recorded in its manifest."""

    vectors: VectorIndexConfig = Field(default_factory=FlatIndexConfig)
    lexical: LexicalConfig = Field(default_factory=LexicalConfig)

    @model_validator(mode="before")
    @classmethod
    def _vectors_default(cls, data: Any) -> Any:
        return _default_type(data, "vectors", "flat")


class _RetrieverBase(_Strict):
    index: Path = Field(Path("indexes/default"), description="Index folder (relative to the cwd).")
    top_k: int = Field(5, ge=1, le=1000)


class DenseRetrieverConfig(_RetrieverBase):
    """Embedding search over the FAISS index."""

    type: Literal["dense"] = "dense"

    def build(self, index: SearchIndex, embedder: QueryEmbedder) -> DenseRetriever:
        from ragtune.retrieve import DenseRetriever

        return DenseRetriever(index, embedder)


class LexicalRetrieverConfig(_RetrieverBase):
    """BM25 keyword search."""

    type: Literal["lexical"] = "lexical"

    def build(self, index: SearchIndex, embedder: QueryEmbedder | None = None) -> LexicalRetriever:
        from ragtune.retrieve import LexicalRetriever

        return LexicalRetriever(index)


class HybridRetrieverConfig(_RetrieverBase):
    """Dense and BM25 results fused into one ranking."""

    type: Literal["hybrid"] = "hybrid"
    fusion: Literal["rrf", "score"] = Field(
        "score",
        description="score: weighted sum of scores over each one's best; rrf: reciprocal-rank fusion.",
    )
    dense_weight: float = Field(0.5, ge=0)
    lexical_weight: float = Field(0.5, ge=0)
    candidates: int = Field(
        50, ge=1, le=5000, description="How deep each retriever looks before fusion."
    )
    rrf_k: int = Field(60, ge=1)

    @model_validator(mode="after")
    def _some_weight(self) -> HybridRetrieverConfig:
        if self.dense_weight + self.lexical_weight <= 0:
            raise ValueError("dense_weight and lexical_weight cannot both be 0")
        return self

    def build(self, index: SearchIndex, embedder: QueryEmbedder) -> HybridRetriever:
        from ragtune.retrieve import HybridRetriever

        return HybridRetriever(
            index,
            embedder,
            fusion=self.fusion,
            dense_weight=self.dense_weight,
            lexical_weight=self.lexical_weight,
            candidates=self.candidates,
            rrf_k=self.rrf_k,
        )


RetrieverConfig = Annotated[
    DenseRetrieverConfig | LexicalRetrieverConfig | HybridRetrieverConfig,
    Field(discriminator="type"),
]


class NoAdapterConfig(_Strict):
    """The base model alone."""

    type: Literal["none"] = "none"


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
        return self


AdapterConfig = Annotated[NoAdapterConfig | TrainedAdapterConfig, Field(discriminator="type")]


class GeneratorConfig(_Strict):
    """A Hugging Face causal LM with PEFT adapters (prompt, prefix, LoRA), many per process."""

    type: Literal["hf"] = "hf"
    model: str = Field("smollm2-135m-instruct", description="embedded name or a local HF folder")
    cache_dir: Path | None = Field(None, description="where the embedded model is converted to")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    adapter: AdapterConfig = Field(default_factory=NoAdapterConfig)
    adapters_root: Path = Field(Path("adapters"), description="the adapter registry folder")
    max_new_tokens: int = Field(96, ge=1, le=4096)
    context_window: int | None = Field(None, ge=64, description="default: the model's own")
    temperature: float = Field(0.0, ge=0.0, le=5.0, description="0: greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = None
    stop: list[str] = Field(default_factory=list, max_length=16)
    max_batch_size: int = Field(8, ge=1, le=256)
    max_loaded_adapters: int = Field(32, ge=1, le=4096)
    examples: bool = Field(
        True, description="show two worked examples (an answer with a marker, an abstention)"
    )

    @model_validator(mode="before")
    @classmethod
    def _adapter_default(cls, data: Any) -> Any:
        return _default_type(data, "adapter", "none")

    def build(self) -> HFGenerator:
        """Load the base model, open the registry and activate the configured adapter."""
        from ragtune.errors import AdapterMismatchError
        from ragtune.generate import AdapterRegistry, DecodeSettings, HFGenerator, load_base_model
        from ragtune.generate.prompts import EXAMPLES

        base = load_base_model(
            self.model, cache_dir=self.cache_dir, device=self.device, dtype=self.dtype
        )
        generator = HFGenerator(
            base,
            registry=AdapterRegistry(self.adapters_root),
            settings=DecodeSettings(
                max_new_tokens=self.max_new_tokens,
                temperature=self.temperature,
                top_p=self.top_p,
                seed=self.seed,
                stop=tuple(self.stop),
            ),
            context_window=self.context_window,
            max_batch_size=self.max_batch_size,
            max_loaded=self.max_loaded_adapters,
            examples=EXAMPLES if self.examples else (),
        )
        adapter = self.adapter
        if isinstance(adapter, TrainedAdapterConfig):
            name = adapter.ref if adapter.ref is not None else str(adapter.path)
            loaded = generator.activate(name)
            if loaded is not None and loaded.kind != adapter.type:
                raise AdapterMismatchError(
                    f"generator.adapter says type {adapter.type!r} but {name} is a "
                    f"{loaded.kind!r} adapter: fix the type in the config"
                )
        return generator


def _default_signals() -> list[Literal["similarity", "evidence"]]:
    return ["similarity"]


class CheckerConfig(_Strict):
    """The support checker: calibrated signals, a threshold, and what to do with a failure."""

    type: Literal["support", "none"] = "support"
    signals: list[Literal["similarity", "evidence"]] = Field(
        default_factory=_default_signals,
        description="signals beyond the lexical ones: embedder similarity, generator evidence",
    )
    min_support: float | None = Field(
        None, ge=0.0, le=1.0, description="override the calibrated threshold (probability)"
    )
    on_unsupported: Literal["abstain", "flag", "drop"] = "drop"
    attribute_uncited: bool = Field(
        True,
        description="give a sentence the model left without a marker the passage that supports it",
    )
    calibration: Path | None = Field(
        None,
        description="a calibration file from `ragtune check --calibrate` (default: the shipped one)",
    )


class AbstainConfig(_Strict):
    """Abstain before generating when retrieval finds nothing convincing."""

    min_retrieval_score: float = Field(
        0.0,
        description=(
            "the top passage's retrieval score below which the assistant abstains; hybrid "
            "fusion scores are relative to the query's own candidates (the best is near 1), so "
            "a floor means most with dense retrieval, whose score is a cosine similarity"
        ),
    )


class DeniedTopicConfig(_Strict):
    name: str = Field(min_length=1)
    keywords: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)
    description: str = ""
    similarity: float = Field(0.6, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _something_to_match(self) -> DeniedTopicConfig:
        import re

        if not (self.keywords or self.patterns or self.description):
            raise ValueError("give keywords, patterns or a description to match the topic")
        for pattern in self.patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"pattern {pattern!r} is not a valid regular expression: {exc}"
                ) from exc
        return self


class GuardConfig(_Strict):
    max_question_chars: int = Field(2000, ge=1)
    denied_topics: list[DeniedTopicConfig] = Field(default_factory=list)
    redact_pii: bool = True
    must_cite: bool = True
    strip_injections: bool = True


class TelemetryConfig(_Strict):
    events: Path | None = Field(None, description="JSON-lines file of one event per question")
    spans: bool = Field(True, description="OpenTelemetry spans per stage, when it is installed")


class PromptTuningConfig(_Strict):
    """A soft prompt: trainable input embeddings, initialised from a text."""

    type: Literal["prompt"] = "prompt"
    num_virtual_tokens: int | None = Field(
        None, ge=1, le=512, description="default: as many as init_text has tokens"
    )
    init_text: str | None = Field(None, description="default: the grounded-answer instruction")


class PrefixTuningConfig(_Strict):
    """A prefix: trainable keys and values per layer, initialised from a text's own."""

    type: Literal["prefix"] = "prefix"
    num_virtual_tokens: int | None = Field(None, ge=1, le=512)
    init_text: str | None = None


class LoraTrainingConfig(_Strict):
    """Low-rank updates on the attention (and optionally MLP) projections."""

    type: Literal["lora"] = "lora"
    r: int = Field(8, ge=1, le=256)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"], min_length=1
    )


AdapterTrainingConfig = Annotated[
    PromptTuningConfig | PrefixTuningConfig | LoraTrainingConfig, Field(discriminator="type")
]


class TrainDataConfig(_Strict):
    """How questions become grounded examples (RAFT); see :mod:`ragtune.train.data`."""

    passages: int = Field(4, ge=1, le=20, description="passages per example, gold included")
    gold_share: float = Field(
        0.8, ge=0.0, le=1.0, description="examples that keep the gold passage"
    )
    unanswerable_share: float | None = Field(
        0.15,
        ge=0.0,
        lt=1.0,
        description="most of the examples that may come from unanswerable questions (null: all)",
    )
    validation_share: float = Field(0.1, ge=0.0, lt=1.0, description="documents held out")
    max_questions: int | None = Field(
        None, ge=1, description="cap on the questions taken from each file"
    )


class TrainLoopConfig(_Strict):
    """The optimiser, schedule, batches, validation and checkpoints."""

    learning_rate: float = Field(2e-4, gt=0.0, le=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    warmup_share: float = Field(0.05, ge=0.0, lt=1.0)
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    batch_size: int = Field(4, ge=1, le=512)
    grad_accum: int = Field(1, ge=1, le=512)
    max_steps: int = Field(200, ge=1)
    eval_every: int = Field(25, ge=1)
    patience: int = Field(3, ge=1)
    checkpoint_every: int = Field(25, ge=1)
    max_length: int = Field(1024, ge=64, le=32768)
    max_grad_norm: float = Field(1.0, gt=0.0)
    seed: int = 0


class TrainConfig(_Strict):
    """``ragtune train``: the adapter kind and its shape, the data, and the loop."""

    adapter: AdapterTrainingConfig = Field(default_factory=LoraTrainingConfig)
    data: TrainDataConfig = Field(default_factory=TrainDataConfig)
    loop: TrainLoopConfig = Field(default_factory=TrainLoopConfig)

    @model_validator(mode="before")
    @classmethod
    def _adapter_default(cls, data: Any) -> Any:
        return _default_type(data, "adapter", "lora")


class ApiKeyConfig(_Strict):
    """One API key of ``ragtune serve``: the tenant it acts for, and the key, never in clear.

    ``key_sha256`` is the SHA-256 of the key (``ragtune serve-key TENANT`` makes a key and
    prints its line); ``key_env`` names an environment variable holding the key, hashed when
    the server starts. A key sees its tenant's documents and adapters, nothing else.
    """

    tenant: str = Field(min_length=1, max_length=64)
    key_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @model_validator(mode="after")
    def _one_source(self) -> ApiKeyConfig:
        if (self.key_sha256 is None) == (self.key_env is None):
            raise ValueError("give exactly one of key_sha256 and key_env")
        return self


class ServeConfig(_Strict):
    """``ragtune serve``: the OpenAI-compatible HTTP server (see :mod:`ragtune.serve`)."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    keys: list[ApiKeyConfig] = Field(default_factory=list)
    max_queue: int = Field(
        32, ge=1, le=100_000, description="requests waiting for the model; beyond it, 429"
    )
    batch_wait_ms: float = Field(
        10.0, ge=0.0, le=1000.0, description="how long a batch waits to fill once one waits"
    )
    max_body_bytes: int = Field(65_536, ge=1024, description="larger request bodies get 413")
    max_messages: int = Field(64, ge=1, le=10_000)
    max_tokens: int | None = Field(
        None, ge=1, description="cap on a request's max_tokens (default generator.max_new_tokens)"
    )
    request_timeout_s: float = Field(
        300.0, gt=0.0, description="a request not answered by then gets 504 and is cancelled"
    )


class RagtuneConfig(_Strict):
    """The whole configuration. Every section has a working default (the embedded setup)."""

    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)
    retriever: RetrieverConfig = Field(default_factory=HybridRetrieverConfig)
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    checker: CheckerConfig = Field(default_factory=CheckerConfig)
    abstain: AbstainConfig = Field(default_factory=AbstainConfig)
    guard: GuardConfig = Field(default_factory=GuardConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)

    @model_validator(mode="before")
    @classmethod
    def _retriever_default(cls, data: Any) -> Any:
        return _default_type(data, "retriever", "hybrid")

    def embedder_for_index(self, index: Path) -> SentenceTransformerEmbedder:
        """The embedder an index was built with (its model; this config's backend and device)."""
        from ragtune.errors import EmbedderMismatchError
        from ragtune.index import Manifest, SentenceTransformerEmbedder

        info = Manifest.read(index).embedder
        if self.embedder.model.lower() not in (info.name.lower(), info.model.lower()):
            raise EmbedderMismatchError(
                f"{index} was built with the embedder {info.name!r}, but the config names "
                f"{self.embedder.model!r}; use the index's embedder, or rebuild the index"
            )
        return SentenceTransformerEmbedder(
            info.model or info.name,
            backend=self.embedder.backend,
            query_backend=self.embedder.query_backend,
            batch_size=self.embedder.batch_size,
            device=self.embedder.device,
            cache_dir=self.embedder.cache_dir,
        )

    def build_settings(self) -> BuildSettings:
        """The settings a new index is built with."""
        from ragtune.indexing import BuildSettings

        return BuildSettings(
            chunk_tokens=self.chunking.chunk_tokens,
            overlap_tokens=self.chunking.overlap_tokens,
            title_in_text=self.chunking.title_in_text,
            sentence_vectors=self.chunking.sentence_vectors,
            scrub_pii=self.ingest.scrub_pii,
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
        raise ConfigError(source, _problems(exc)) from None


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for error in exc.errors():
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field (check its spelling and the section it is in)"
        problems.append((_field_path(error["loc"]), message))
    return problems


_UNION_FIELDS = {"retriever", "vectors"}


def _field_path(loc: tuple[int | str, ...]) -> str:
    """Join a pydantic error location, dropping the tag it inserts after a tagged union."""
    parts: list[str] = []
    for i, part in enumerate(loc):
        if i > 0 and loc[i - 1] in _UNION_FIELDS and isinstance(part, str):
            continue  # "retriever.hybrid.top_k" -> "retriever.top_k"
        parts.append(str(part))
    return ".".join(parts)
