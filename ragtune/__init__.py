"""ragtune: grounded domain assistants over your own documents.

The public API is what ``__all__`` lists; everything else is internal and may change.
Heavy dependencies (torch, transformers, faiss) load only when a stage needs them.
"""

from ragtune.config import RagtuneConfig, load_config
from ragtune.errors import RagtuneError
from ragtune.types import Chunk, Document, Passage, Provenance, SkippedSource

__all__ = [
    "Chunk",
    "Document",
    "Passage",
    "Provenance",
    "RagtuneConfig",
    "RagtuneError",
    "SkippedSource",
    "__version__",
    "load_config",
]

__version__ = "0.1.0"
