"""Generation: the base model, the grounded prompt, PEFT adapters, their registry and pool,
decoding, and the generator.

Importing this package is light: torch, transformers and PEFT load when a model or adapter does.
"""

from ragtune.generate.adapters import (
    ADAPTER_KINDS,
    AdapterCard,
    LoraSpec,
    PrefixSpec,
    PromptSpec,
    StoredAdapter,
    check_compatible,
    new_adapter,
    read_adapter,
    save_adapter,
)
from ragtune.generate.decoding import DecodeSettings
from ragtune.generate.generator import GeneratorSettings, HFGenerator
from ragtune.generate.models import (
    DEFAULT_MODEL,
    EMBEDDED_MODELS,
    EmbeddedModel,
    LoadedModel,
    ModelSettings,
    default_cache_dir,
    load_base_model,
    resolve_model,
    weights_sha256,
)
from ragtune.generate.pool import AdapterPool, LoadedAdapter, PoolSettings
from ragtune.generate.prompts import ABSTENTION, INSTRUCTION, Prompt, build_prompt, is_abstention
from ragtune.generate.protocol import GenerationRequest, Generator, GeneratorStatus
from ragtune.generate.registry import (
    AdapterEntry,
    AdapterRegistry,
    ResolvedAdapter,
    parse_ref,
)

__all__ = [
    "ABSTENTION",
    "ADAPTER_KINDS",
    "DEFAULT_MODEL",
    "EMBEDDED_MODELS",
    "INSTRUCTION",
    "AdapterCard",
    "AdapterEntry",
    "AdapterPool",
    "AdapterRegistry",
    "DecodeSettings",
    "EmbeddedModel",
    "GenerationRequest",
    "Generator",
    "GeneratorSettings",
    "GeneratorStatus",
    "HFGenerator",
    "LoadedAdapter",
    "LoadedModel",
    "LoraSpec",
    "ModelSettings",
    "PoolSettings",
    "PrefixSpec",
    "Prompt",
    "PromptSpec",
    "ResolvedAdapter",
    "StoredAdapter",
    "build_prompt",
    "check_compatible",
    "default_cache_dir",
    "is_abstention",
    "load_base_model",
    "new_adapter",
    "parse_ref",
    "read_adapter",
    "resolve_model",
    "save_adapter",
    "weights_sha256",
]
