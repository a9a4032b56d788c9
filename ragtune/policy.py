"""The Assistant's decisions around the stages, declared once: what to do with unsupported
sentences, the input guard's limits, when to abstain before generating, and which adapter each
tenant gets by default.

The config's ``checker``, ``guard``, ``abstain`` and ``adapters`` sections validate these
dataclasses; :class:`~ragtune.assistant.Assistant` takes them assembled as one
:class:`AssistantPolicy`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Literal

from annotated_types import Ge, Le

from ragtune.errors import AdapterNotFoundError
from ragtune.generate.decoding import DecodeSettings
from ragtune.settings import check_bounds
from ragtune.types import NO_ADAPTER, AdapterChoice, AdapterFolder, AdapterRef, TenantDefault

if TYPE_CHECKING:
    from ragtune.generate.adapters import AdapterCard

__all__ = [
    "AbstainPolicy",
    "AdapterDefaults",
    "AnswerPolicy",
    "AssistantPolicy",
    "GuardPolicy",
    "resolve_adapter",
]


@dataclass(frozen=True)
class AnswerPolicy:
    """What happens to a draft the checker does not fully support."""

    on_unsupported: Literal["abstain", "flag", "drop"] = "drop"
    """``drop`` the unsupported sentences (abstain when none is left), ``abstain`` outright,
    or ``flag`` and keep the text."""


@dataclass(frozen=True)
class GuardPolicy:
    """Limits on what comes in and what goes out."""

    max_question_chars: Annotated[int, Ge(1)] = 2000
    redact_pii: bool = True
    """Personal data in the answer is replaced by [TYPE] placeholders."""
    must_cite: bool = True
    """A sentence without a citation counts as unsupported."""
    strip_injections: bool = True
    """Instruction-like sentences are cut out of passages before the model reads them."""

    def __post_init__(self) -> None:
        check_bounds(self)


@dataclass(frozen=True)
class AbstainPolicy:
    """Abstaining before or after generation."""

    min_retrieval_score: float = 0.0
    """The top passage's retrieval score below which the assistant abstains without generating;
    hybrid fusion scores are relative to the query's own candidates (the best is near 1), so a
    floor means most with dense retrieval, whose score is a cosine similarity."""
    answerability: bool = True
    """Decide abstention with the answerability model that ships with the grounding adapter
    (when the base model has one merged; :mod:`ragtune.check.answerability`): the generator
    records its probability of starting the abstention sentence and decodes its best answer
    anyway, and the assistant abstains when the calibrated probability that the passages
    answer the question falls below the threshold. False: the model's own abstention."""
    min_answerable: Annotated[float, Ge(0.0), Le(1.0)] | None = None
    """The answerability threshold; None: the one fitted with the model."""

    def __post_init__(self) -> None:
        check_bounds(self)


@dataclass(frozen=True)
class AdapterDefaults:
    """Which adapter a request gets when it names none: its tenant's default, else the base
    model. A tenant's default is always its own adapter (checked here and again on load)."""

    per_tenant: Mapping[str, AdapterChoice] = field(default_factory=dict)
    without_tenant: AdapterChoice = NO_ADAPTER
    """For requests without a tenant (every document is searched)."""

    def __post_init__(self) -> None:
        for tenant, choice in self.per_tenant.items():
            if isinstance(choice, AdapterRef) and choice.tenant != tenant:
                raise ValueError(
                    f"the default adapter of tenant {tenant!r} is {choice}, another tenant's: "
                    f"name one of {tenant}'s own adapters"
                )

    def for_tenant(self, tenant: str | None) -> AdapterChoice:
        if tenant is None:
            return self.without_tenant
        return self.per_tenant.get(tenant, NO_ADAPTER)

    def folders(self) -> tuple[tuple[str, AdapterFolder], ...]:
        """The defaults given as folders, whose tenant is only known from their card."""
        return tuple(
            (tenant, choice)
            for tenant, choice in self.per_tenant.items()
            if isinstance(choice, AdapterFolder)
        )


@dataclass(frozen=True)
class AssistantPolicy:
    """Everything the Assistant decides, assembled from the config's sections."""

    top_k: Annotated[int, Ge(1)]
    """Passages retrieved per question (the retriever section's ``top_k``)."""
    answer: AnswerPolicy = field(default_factory=AnswerPolicy)
    guard: GuardPolicy = field(default_factory=GuardPolicy)
    abstain: AbstainPolicy = field(default_factory=AbstainPolicy)
    adapters: AdapterDefaults = field(default_factory=AdapterDefaults)
    decoding: DecodeSettings = field(default_factory=DecodeSettings)
    """How every answer is decoded (a request may only ask for fewer new tokens)."""

    def __post_init__(self) -> None:
        check_bounds(self)


def resolve_adapter(
    defaults: AdapterDefaults,
    card_of: Callable[[AdapterChoice], AdapterCard | None],
    tenant: str | None,
    requested: AdapterChoice | TenantDefault,
) -> AdapterChoice:
    """The concrete adapter a request of ``tenant`` uses, checked by reading its card.

    :class:`TenantDefault` becomes the tenant's default adapter (the base model when it has
    none). An adapter of another tenant is refused with the very message of an adapter that
    does not exist (:class:`~ragtune.errors.AdapterNotFoundError`), so a request cannot tell
    another tenant's adapters exist. A request without a tenant may use any.
    """
    choice = defaults.for_tenant(tenant) if isinstance(requested, TenantDefault) else requested
    if tenant is None:
        card_of(choice)
        return choice
    missing = AdapterNotFoundError(f"tenant {tenant!r} has no adapter {choice}")
    if isinstance(choice, AdapterRef) and choice.tenant != tenant:
        raise missing
    try:
        card = card_of(choice)
    except AdapterNotFoundError:
        raise missing from None
    if card is not None and card.tenant != tenant:
        raise missing
    return choice
