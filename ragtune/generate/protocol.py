"""What the Assistant, the server and eval need from a generator, and the values they exchange.

They depend on :class:`Generator`, not on :class:`~ragtune.generate.generator.HFGenerator`, so
their tests run on a small fake (``tests/fakes.py``) and another backend can stand in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ragtune.generate.decoding import DecodeSettings
from ragtune.types import AdapterChoice, Generation, Passage

if TYPE_CHECKING:
    from ragtune.generate.adapters import AdapterCard

__all__ = ["GenerationRequest", "Generator", "GeneratorStatus"]


@dataclass(frozen=True)
class GenerationRequest:
    """One question over its passages (or a ready prompt), with its adapter and decoding."""

    question: str
    passages: Sequence[Passage]
    adapter: AdapterChoice
    """Every request names its adapter: the generator holds no default."""
    settings: DecodeSettings = field(default_factory=DecodeSettings)
    prompt_ids: tuple[int, ...] = ()
    """A ready prompt (token ids); when given, ``question`` and ``passages`` are not used."""
    scored_abstention: bool = False
    """Record the model's probability of starting the abstention sentence, and never start
    it: the caller decides abstention from that probability and other signals (see
    :attr:`~ragtune.types.Generation.abstain_probability`)."""


@dataclass(frozen=True)
class GeneratorStatus:
    """What a server reports about its generator (``/healthz``, ``/metrics``)."""

    base_model: str
    device: str
    max_batch_size: int
    adapters_loaded: int
    adapter_loads: int
    """Adapter versions brought into memory so far (first uses, promotions picked up, reloads)."""
    grounding: str
    """The grounding adapter merged into the base weights (its reference), or ``none``."""


class Generator(Protocol):
    """A base model with per-request adapters."""

    def status(self) -> GeneratorStatus: ...

    def adapter_card(self, choice: AdapterChoice) -> AdapterCard | None:
        """The card of the adapter ``choice`` names, read without loading it (None for the
        base model). Raises :class:`~ragtune.errors.AdapterNotFoundError` for an unknown one."""
        ...

    def load_adapter(self, choice: AdapterChoice) -> AdapterCard | None:
        """Bring the adapter into memory now and return its card (None for the base model).

        Raises :class:`~ragtune.errors.AdapterNotFoundError` for an unknown adapter and
        :class:`~ragtune.errors.AdapterError` for one that cannot serve on this base model.
        """
        ...

    def stream_many(
        self,
        requests: Sequence[GenerationRequest],
        *,
        cancelled: Callable[[int], bool] | None = None,
    ) -> Iterator[tuple[int, str | Generation]]:
        """Decode ``requests`` (at most ``max_batch_size``) as one batch; yield ``(i, text)``
        as request ``i``'s final text grows and ``(i, generation)`` once when it is done."""
        ...
