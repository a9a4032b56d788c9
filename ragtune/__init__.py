"""ragtune: grounded domain assistants over your own documents.

The public API is what ``__all__`` lists; everything else is internal and may change.
Heavy dependencies (torch, transformers, faiss) load only when a stage needs them.
"""

from ragtune.assistant import Assistant
from ragtune.config import RagtuneConfig, load_config
from ragtune.errors import RagtuneError, RequestError
from ragtune.types import (
    Answer,
    Chunk,
    Citation,
    ClaimVerdict,
    Document,
    Generation,
    Passage,
    Provenance,
    SkippedSource,
    StageTimings,
)

__all__ = [
    "Answer",
    "Assistant",
    "Chunk",
    "Citation",
    "ClaimVerdict",
    "Document",
    "Generation",
    "Passage",
    "Provenance",
    "RagtuneConfig",
    "RagtuneError",
    "RequestError",
    "SkippedSource",
    "StageTimings",
    "__version__",
    "load_config",
]

__version__ = "0.1.0"
