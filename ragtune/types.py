"""The values that travel between stages. All frozen: a stage never edits what it was given."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "NO_ADAPTER",
    "TENANT_DEFAULT",
    "AdapterChoice",
    "AdapterFolder",
    "AdapterRef",
    "AdapterRequest",
    "Answer",
    "CanaryArm",
    "Chunk",
    "Citation",
    "ClaimVerdict",
    "Document",
    "Generation",
    "Passage",
    "Provenance",
    "SkippedSource",
    "StageTimings",
    "TenantDefault",
    "TextEdit",
    "check_name",
    "new_response_id",
    "parse_adapter_choice",
    "parse_adapter_ref",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_REF = re.compile(r"^(?P<tenant>[^/@\s]+)/(?P<name>[^/@\s]+)(?:@v?(?P<version>[0-9]+))?$")


def check_name(value: str, what: str) -> str:
    """A tenant or adapter name: letters, digits, ``.``, ``_``, ``-``; at most 64; no path tricks.

    Raises ``ValueError`` naming ``what`` and the rule.
    """
    if not isinstance(value, str) or not _NAME.match(value) or value in {".", ".."}:
        raise ValueError(
            f"{what} {value!r} is not a valid name: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


# -- which adapter a request uses -------------------------------------------------------------


@dataclass(frozen=True)
class NoAdapter:
    """The base model alone (with the grounding adapter when one is merged into it)."""

    def __str__(self) -> str:
        return "none"


NO_ADAPTER = NoAdapter()


@dataclass(frozen=True)
class AdapterRef:
    """A registered adapter: ``tenant/name``, its current version, or ``tenant/name@vN``."""

    tenant: str
    name: str
    version: int | None = None
    """A pinned version; None names the version that is current when the request runs."""

    def __post_init__(self) -> None:
        check_name(self.tenant, "tenant")
        check_name(self.name, "adapter name")
        if self.version is not None and self.version < 1:
            raise ValueError(f"{self.tenant}/{self.name}: versions start at v1")

    def __str__(self) -> str:
        base = f"{self.tenant}/{self.name}"
        return base if self.version is None else f"{base}@v{self.version}"

    @property
    def unversioned(self) -> AdapterRef:
        return AdapterRef(self.tenant, self.name)


@dataclass(frozen=True)
class AdapterFolder:
    """An adapter folder (PEFT files and ``adapter.json``) outside the registry."""

    path: Path

    def __str__(self) -> str:
        return f"folder:{self.path}"


AdapterChoice = NoAdapter | AdapterRef | AdapterFolder
"""The adapter of one request, a concrete value: every request carries one."""


class TenantDefault:
    """ "Use the tenant's default adapter": what a request that names none asks for. Not the
    same as asking for the base model (:data:`NO_ADAPTER`); the Assistant turns it into a
    concrete :data:`AdapterChoice` before anything is generated."""

    _instance: TenantDefault | None = None

    def __new__(cls) -> TenantDefault:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "TENANT_DEFAULT"


TENANT_DEFAULT = TenantDefault()

AdapterRequest = AdapterChoice | TenantDefault | str
"""What a caller may pass as an adapter: a choice, :data:`TENANT_DEFAULT`, or a string that
:func:`parse_adapter_choice` reads (``none``, ``tenant/name[@vN]``, ``folder:PATH``)."""


def parse_adapter_choice(text: str) -> AdapterChoice:
    """Parse an adapter named at an edge (CLI flag, HTTP ``model``, a Python string).

    ``none`` is the base model; ``tenant/name`` or ``tenant/name@vN`` a registered adapter;
    ``folder:PATH`` an adapter folder. A bare path is never guessed at, so whether
    ``acme/support`` names a registered adapter never depends on the working directory.
    Raises ``ValueError`` saying what to write.

    >>> parse_adapter_choice("acme/support@v3")
    AdapterRef(tenant='acme', name='support', version=3)
    >>> parse_adapter_choice("none")
    NoAdapter()
    """
    text = text.strip()
    if text == "none":
        return NO_ADAPTER
    if text.startswith("folder:") and text[7:].strip():
        return AdapterFolder(Path(text[7:].strip()))
    if _REF.match(text) is None:
        raise ValueError(
            f"{text!r} is not an adapter: write tenant/name, tenant/name@vN, folder:PATH or none"
        )
    return parse_adapter_ref(text)


def parse_adapter_ref(text: str) -> AdapterRef:
    """Parse ``tenant/name`` or ``tenant/name@vN``; ``ValueError`` says what is wrong.

    >>> str(parse_adapter_ref("acme/support@v2"))
    'acme/support@v2'
    """
    match = _REF.match(text.strip())
    if match is None:
        raise ValueError(
            f"{text!r} is not an adapter reference: write tenant/name or tenant/name@vN"
        )
    version = int(match["version"]) if match["version"] else None
    return AdapterRef(match["tenant"], match["name"], version)


def new_response_id() -> str:
    """A fresh id for one answer: what feedback names (``resp-`` and 32 hex digits)."""
    return "resp-" + uuid.uuid4().hex


@dataclass(frozen=True)
class CanaryArm:
    """The side of a running canary one request was sent to, and why (see
    :mod:`ragtune.generate.canary`): recorded with its answer, so every split can be checked."""

    canary_id: str
    adapter: str
    """``tenant/name`` of the adapter under canary."""
    arm: Literal["current", "canary"]
    version: int
    """The version the request was pinned to."""
    key: str
    """The hashed split key: of the user id when the client sent one (sticky), else of the
    response id."""
    sticky: bool
    """Whether the key is a user's (the same user always lands on the same arm)."""


@dataclass(frozen=True)
class Provenance:
    """Where a chunk came from: enough to find, re-check and audit the original."""

    source: str
    """Path of the source file (for JSONL, the file plus ``#line``)."""
    sha256: str
    """Hash of the document text with line ends normalised, before personal data was scrubbed."""
    modified_at: float | None
    """The source file's modification time (POSIX seconds), when it is a file."""
    ingested_at: float
    """When this document entered the index (POSIX seconds)."""
    tenant: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TextEdit:
    """One change to a text: ``before[source_start:source_end]`` became ``after[start:end]``."""

    source_start: int
    source_end: int
    start: int
    end: int


@dataclass(frozen=True)
class Document:
    """One document as a loader read it.

    The text as read is the file's characters for .txt and .md, the extracted text for .html
    and .pdf, the ``text`` field for a JSONL line. ``text`` is that text with its line ends
    normalised (every line break ``\n``, every paragraph break ``\n\n``); ``edits`` record
    each change, so chunk offsets are mapped back and citations point into the text as read.
    """

    doc_id: str
    text: str
    source: str
    title: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    modified_at: float | None = None
    edits: tuple[TextEdit, ...] = ()
    """Changes from the text as read to ``text``, in order (empty when there were none)."""


@dataclass(frozen=True)
class Chunk:
    """A piece of a document, the unit that is embedded, indexed and cited.

    ``start`` and ``end`` are character offsets into the document's text as read (before
    line ends were normalised and personal data scrubbed), so ``read_text[start:end]`` is the
    span a citation points at. ``text`` is that span with personal data replaced by placeholders
    when scrubbing is on.
    """

    chunk_id: str
    doc_id: str
    ordinal: int
    text: str
    start: int
    end: int
    title: str = ""


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk: what a retriever returns and a generator reads."""

    chunk_id: str
    doc_id: str
    text: str
    score: float
    rank: int
    """1-based position in the result list."""
    source: str
    start: int
    end: int
    title: str = ""
    provenance: Provenance | None = None


@dataclass(frozen=True)
class SkippedSource:
    """A source an ingest run did not take, and why."""

    source: str
    reason: str


@dataclass(frozen=True)
class Generation:
    """What a generator produced for one request, with what it cost.

    ``text`` is the model's answer with the prompt and any stop sequence removed; the citation
    markers in it number ``passages`` (``[1]`` is ``passages[0]``), the passages the prompt
    actually held, which can be fewer and shorter than those retrieved when the context was full.
    """

    text: str
    prompt_tokens: int
    output_tokens: int
    prefill_seconds: float
    decode_seconds: float
    finish_reason: str
    """``stop`` (a stop sequence), ``eos`` (the model ended), ``length`` (max_new_tokens) or
    ``cancelled`` (the caller stopped it: a client went away)."""
    adapter: str | None = None
    """``tenant/name`` of the adapter used, or None for the base model."""
    adapter_version: int | None = None
    passages: tuple[Passage, ...] = ()
    prompt: str = ""
    token_ids: tuple[int, ...] = ()
    abstain_probability: float | None = None
    """The model's probability of starting the abstention sentence, for a request that asked
    for it (``scored_abstention``); None otherwise."""

    @property
    def tokens_per_second(self) -> float:
        """Decode speed: output tokens after the first over the decode time."""
        if self.output_tokens <= 1 or self.decode_seconds <= 0:
            return 0.0
        return (self.output_tokens - 1) / self.decode_seconds


@dataclass(frozen=True)
class Citation:
    """One ``[n]`` marker of a sentence, resolved to the passage it names."""

    number: int
    passage: Passage | None
    """None when the number points past the passages the answer was written from."""
    attributed: bool = False
    """Added by the checker: the model wrote no marker and this passage supports the sentence."""

    @property
    def valid(self) -> bool:
        return self.passage is not None

    @property
    def source(self) -> str:
        return self.passage.source if self.passage else ""

    @property
    def span(self) -> tuple[int, int]:
        """Character offsets of the cited text in its source document."""
        return (self.passage.start, self.passage.end) if self.passage else (0, 0)

    @property
    def quote(self) -> str:
        return self.passage.text if self.passage else ""


@dataclass(frozen=True)
class ClaimVerdict:
    """One sentence of an answer, its citations, and whether they support it."""

    sentence: str
    """As written, markers included."""
    claim: str
    """Without markers: what was checked."""
    start: int
    end: int
    """Offsets of the sentence in the draft, the text as the model wrote it."""
    citations: tuple[Citation, ...]
    support: float
    """Calibrated probability that the cited passages support the claim (0 without citations)."""
    supported: bool
    verdict: str
    """``supported``, ``unsupported``, ``no citation`` or ``invalid citation``."""
    signals: Mapping[str, float] = field(default_factory=dict)

    @property
    def attributed(self) -> bool:
        """Whether the citation was found by the checker rather than written by the model."""
        return any(c.attributed for c in self.citations)

    @property
    def invalid_numbers(self) -> tuple[int, ...]:
        return tuple(c.number for c in self.citations if not c.valid)


@dataclass(frozen=True)
class StageTimings:
    """Seconds spent per stage of one question."""

    guard: float = 0.0
    retrieve: float = 0.0
    generate: float = 0.0
    prefill: float = 0.0
    decode: float = 0.0
    check: float = 0.0
    total: float = 0.0


@dataclass(frozen=True)
class Answer:
    """What :meth:`ragtune.Assistant.ask` returns; ``to_dict`` gives the ``--json`` form."""

    question: str
    text: str
    sentences: tuple[ClaimVerdict, ...]
    grounded: bool
    """True when every sentence is supported by its citations (and there is at least one)."""
    abstained: bool
    abstain_reason: str | None
    """``weak retrieval``, ``model abstained``, ``unsupported``, ``denied topic: NAME`` ..."""
    passages: tuple[Passage, ...]
    """What retrieval returned, in rank order."""
    cited: tuple[Passage, ...]
    """The passages the generator was shown, in citation order ([1] is ``cited[0]``)."""
    timings: StageTimings
    tenant: str | None = None
    adapter: str | None = None
    adapter_version: int | None = None
    citation_recall: float = 0.0
    citation_precision: float = 0.0
    flags: tuple[str, ...] = ()
    """Guardrail notes: injected instructions removed from a passage, redactions, dropped sentences."""
    draft: str = ""
    """The generator's text before abstention, dropping or redaction changed it."""
    dropped: tuple[ClaimVerdict, ...] = ()
    """Sentences of the draft that ``on_unsupported: drop`` removed from the answer."""
    prompt_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str = ""
    """The generation's (``stop``, ``eos``, ``length``); empty when nothing was generated."""
    answerability: Mapping[str, float] = field(default_factory=dict)
    """With an answerability model: its signals, the model's ``abstain_probability`` and the
    calibrated ``probability`` that the passages answer the question; empty otherwise."""
    response_id: str = ""
    """The answer's id (the ``id`` of the HTTP reply): what feedback on it names."""
    canary: CanaryArm | None = None
    """The canary arm the request was sent to, when its adapter had a canary running."""

    @property
    def checked(self) -> tuple[ClaimVerdict, ...]:
        """Every sentence of the draft the checker judged: those kept and those dropped, each
        once (an abstention keeps the dropped sentences' verdicts in ``sentences`` too)."""
        return self.sentences + tuple(v for v in self.dropped if v not in self.sentences)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        data = asdict(self)
        pairs = [*zip(data["sentences"], self.sentences, strict=True)]
        pairs += zip(data["dropped"], self.dropped, strict=True)
        for sentence, verdict in pairs:
            sentence["citations"] = [
                {
                    "number": c.number,
                    "valid": c.valid,
                    "attributed": c.attributed,
                    "chunk_id": c.passage.chunk_id if c.passage else None,
                    "source": c.source,
                    "span": list(c.span),
                    "quote": c.quote,
                }
                for c in verdict.citations
            ]
        for key in ("passages", "cited"):
            for passage in data[key]:
                passage.pop("provenance", None)
        return data
