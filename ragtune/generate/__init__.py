"""Generation: the base model (embedded SmolLM2 or a local folder), later prompts and adapters."""

from ragtune.generate.models import (
    DEFAULT_MODEL,
    EMBEDDED_MODELS,
    EmbeddedModel,
    LoadedModel,
    default_cache_dir,
    load_base_model,
    resolve_model,
    weights_sha256,
)

__all__ = [
    "DEFAULT_MODEL",
    "EMBEDDED_MODELS",
    "EmbeddedModel",
    "LoadedModel",
    "default_cache_dir",
    "load_base_model",
    "resolve_model",
    "weights_sha256",
]
