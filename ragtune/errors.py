"""Every error ragtune raises on purpose derives from :class:`RagtuneError`.

The tree::

    RagtuneError
    ├── ConfigError            a config file or dict does not validate (lists every problem)
    ├── IngestError            a source cannot be read: missing path, binary, bad JSONL line, bad PDF
    │   └── EmptySourceError   nothing to index: an empty folder, only 0-byte files
    ├── IndexError_            an index folder cannot be opened or changed
    │   ├── IndexNotFoundError     no index at that path
    │   ├── IndexCorruptError      a file of the index is damaged or missing
    │   ├── IndexFormatError       manifest of a format version this ragtune does not know
    │   ├── IndexUnavailableError  the index's database cannot be reached or refuses the login
    │   └── EmbedderMismatchError  the index was built with another embedder
    ├── EmbedderError          an embedding model cannot be loaded or a backend is not installed
    ├── ModelError             a base model cannot be found, converted or loaded
    ├── AdapterError           an adapter cannot be registered, found or loaded
    │   ├── AdapterNotFoundError   no such tenant, name or version
    │   ├── AdapterMismatchError   made for another base model, or shapes that do not fit it
    │   ├── AdapterCorruptError    a file of the adapter is missing or damaged
    │   ├── RegistryUnavailableError  the registry's storage cannot be reached or refuses access
    │   └── CanaryError            a canary cannot be started or ended as asked
    ├── GenerationError        a generation request cannot be served (too long, bad settings)
    ├── RequestError           a question cannot be taken as asked (empty, too long)
    │   └── FeedbackError          feedback that cannot be taken (a bad rating, no store)
    │       └── ResponseNotFoundError  no answer of this tenant has that response id
    ├── RetrievalError         a query cannot be answered (empty query, unknown mode)
    ├── SynthError             training questions cannot be generated (no chunks, a bad output file)
    │   └── TeacherError           the question-writing model failed (an endpoint unreachable or refusing)
    └── ClusterError           a Ray cluster cannot be reached or used (address, package, replicas)

Each message names the problem and the fix. The CLI prints the message without a traceback
and exits with status 2; library users catch :class:`RagtuneError`.
"""

from __future__ import annotations

__all__ = [
    "AdapterCorruptError",
    "AdapterError",
    "AdapterMismatchError",
    "AdapterNotFoundError",
    "CanaryError",
    "ClusterError",
    "ConfigError",
    "EmbedderError",
    "EmbedderMismatchError",
    "EmptySourceError",
    "FeedbackError",
    "GenerationError",
    "IndexCorruptError",
    "IndexError_",
    "IndexFormatError",
    "IndexNotFoundError",
    "IndexUnavailableError",
    "IngestError",
    "ModelError",
    "RagtuneError",
    "RegistryUnavailableError",
    "RequestError",
    "ResponseNotFoundError",
    "RetrievalError",
    "SynthError",
    "TeacherError",
]


class RagtuneError(Exception):
    """Base of every error ragtune raises on purpose."""


class ConfigError(RagtuneError):
    """A configuration does not validate.

    ``problems`` holds one ``(field_path, message)`` pair per error, so a caller can show
    them all at once instead of one per run.
    """

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} problem(s) in the config"]
        lines += [f"  {path}: {message}" for path, message in problems]
        super().__init__("\n".join(lines))


class IngestError(RagtuneError):
    """A source file or folder cannot be ingested."""


class EmptySourceError(IngestError):
    """The sources hold nothing to index."""


class IndexError_(RagtuneError):
    """An index folder cannot be opened or changed."""


class IndexNotFoundError(IndexError_):
    """There is no index at the given path."""


class IndexCorruptError(IndexError_):
    """A file of the index is damaged, missing or inconsistent with the others."""


class IndexFormatError(IndexError_):
    """The manifest declares a format version this ragtune cannot read."""


class IndexUnavailableError(IndexError_):
    """The database holding an index cannot be reached, or refuses the connection (a wrong
    password, an unknown database); nothing was read or changed."""


class EmbedderMismatchError(IndexError_):
    """The index was built with a different embedder than the one asked for."""


class EmbedderError(RagtuneError):
    """An embedding model or backend cannot be loaded."""


class ModelError(RagtuneError):
    """A base model cannot be found, converted or loaded."""


class RetrievalError(RagtuneError):
    """A query cannot be answered as asked."""


class AdapterError(RagtuneError):
    """An adapter cannot be registered, found or loaded; whatever was serving keeps serving."""


class AdapterNotFoundError(AdapterError):
    """No adapter with that tenant, name or version."""


class AdapterMismatchError(AdapterError):
    """The adapter was trained for another base model, or its shapes do not fit this one."""


class AdapterCorruptError(AdapterError):
    """A file of the adapter is missing or cannot be read."""


class RegistryUnavailableError(AdapterError):
    """The adapter registry's storage cannot be reached, or refuses this process's credentials;
    nothing was changed, and a serving process keeps using the pointers it read last."""


class CanaryError(AdapterError):
    """A canary cannot be started or ended as asked (one is running, no current version, a
    version that is already current); the registry is left as it was."""


class GenerationError(RagtuneError):
    """A generation request cannot be served as asked (too long, bad sampling settings)."""


class RequestError(RagtuneError):
    """A question that cannot be taken as asked (empty, too long)."""


class FeedbackError(RequestError):
    """Feedback that cannot be taken: no response id, a rating other than up or down, a
    correction that is too long, or no live store configured."""


class ResponseNotFoundError(FeedbackError):
    """No answer of this tenant has that response id: it never existed, was pruned, or is
    another tenant's (the three read alike)."""


class LiveStoreError(RagtuneError):
    """The live store (answers, feedback, canary counts) cannot be read or written: a locked,
    full or damaged database file."""


class EvalError(RagtuneError):
    """An evaluation cannot run or be read: a bad question file, a run folder in another state."""


class TrainingError(RagtuneError):
    """Training cannot start or go on: no usable examples, a bad setting for the data."""


class SynthError(RagtuneError):
    """Training questions cannot be generated as asked: an index without chunks of the tenant,
    an output file that another run or another person wrote, a teacher the config forbids."""


class TeacherError(SynthError):
    """The teacher model failed: its endpoint is unreachable, refuses the key, answers with an
    error or with something that is not a chat completion. Chunks finished before it stay
    written; the same command continues after the fault is fixed."""


class ClusterError(RagtuneError):
    """A Ray cluster cannot be reached or used: a wrong address, Ray not installed, a deployment
    that does not come up."""
