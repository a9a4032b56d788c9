"""Small fakes of the stage protocols, for tests of what sits above them (the Assistant, the
server) without loading any model: a keyword retriever and a generator that echoes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune.errors import AdapterMismatchError, AdapterNotFoundError
from ragtune.generate.adapters import AdapterCard
from ragtune.generate.protocol import GenerationRequest, GeneratorStatus
from ragtune.types import AdapterChoice, AdapterRef, Generation, NoAdapter, Passage


@dataclass
class FakeRetriever:
    """Passages of each tenant, ranked by words shared with the query."""

    by_tenant: Mapping[str | None, Sequence[str]]

    def retrieve(
        self,
        query: str,
        k: int,
        *,
        tenant: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[Passage]:
        texts = self.by_tenant.get(tenant, ())
        words = set(query.lower().split())
        ranked = sorted(texts, key=lambda t: -len(words & set(t.lower().split())))[:k]
        return [
            Passage(
                f"{tenant}-{i}",
                f"{tenant}-d{i}",
                text,
                1.0 - i / 10,
                i + 1,
                f"{tenant}/{i}.md",
                0,
                len(text),
            )
            for i, text in enumerate(ranked)
        ]


@dataclass
class FakeGenerator:
    """Answers with the first passage's text and a marker; knows the adapters in ``cards``.

    ``requests`` records every request it was handed, so a test can check that each one
    carried a concrete adapter choice.
    """

    cards: Mapping[AdapterRef, AdapterCard] = field(default_factory=dict)
    max_batch_size: int = 4
    abstain_probability: float = 0.1
    """What it reports for a request that asks for a scored abstention."""
    requests: list[GenerationRequest] = field(default_factory=list)
    loads: int = 0

    def status(self) -> GeneratorStatus:
        return GeneratorStatus(
            "fake", "cpu", self.max_batch_size, len(self.cards), self.loads, grounding="none"
        )

    def adapter_card(self, choice: AdapterChoice) -> AdapterCard | None:
        if isinstance(choice, NoAdapter):
            return None
        if not isinstance(choice, AdapterRef) or choice.unversioned not in self.cards:
            raise AdapterNotFoundError(f"no adapter {choice}")
        return self.cards[choice.unversioned]

    def load_adapter(self, choice: AdapterChoice) -> AdapterCard | None:
        card = self.adapter_card(choice)
        self.loads += card is not None
        return card

    def stream_many(
        self,
        requests: Sequence[GenerationRequest],
        *,
        cancelled: Callable[[int], bool] | None = None,
    ) -> Iterator[tuple[int, str | Generation]]:
        assert len(requests) <= self.max_batch_size
        for i, request in enumerate(requests):
            self.requests.append(request)
            card = self.adapter_card(request.adapter)
            if cancelled is not None and cancelled(i):
                yield i, Generation("", 1, 0, 0.0, 0.0, "cancelled")
                continue
            text = f"{request.passages[0].text} [1]" if request.passages else "I don't know."
            yield i, text
            yield (
                i,
                Generation(
                    text,
                    10,
                    3,
                    0.01,
                    0.01,
                    "eos",
                    adapter=f"{card.tenant}/{card.name}" if card else None,
                    adapter_version=card.version if card else None,
                    passages=tuple(request.passages),
                    abstain_probability=self.abstain_probability
                    if request.scored_abstention
                    else None,
                ),
            )


def card(tenant: str, name: str, kind: str = "prompt") -> AdapterCard:
    return AdapterCard(name, tenant, kind, "fake", "0" * 64, version=1)  # type: ignore[arg-type]


def register_fake(
    registry: Any,
    folder: Path,
    tenant: str,
    name: str,
    *,
    promote: bool = False,
    **settings: object,
) -> int:
    """Register a version of ``tenant/name`` whose card carries ``settings``; returns its
    version. :class:`RegistryGenerator` reads ``abstain`` (the share of requests it abstains
    on) and ``loads=False`` (it cannot be loaded); ``benchmarks/canary.py`` reads ``profile``.
    The folder is a real adapter folder (card, PEFT config, a small soft prompt), so the
    registry checks it as any other."""
    import json

    import numpy as np
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    adapter = AdapterCard(name, tenant, "prompt", "fake", "0" * 64, settings=settings)  # type: ignore[arg-type]
    (folder / "adapter.json").write_text(adapter.to_json(), encoding="utf-8")
    (folder / "adapter_config.json").write_text(
        json.dumps({"peft_type": "PROMPT_TUNING", "num_virtual_tokens": 1}), encoding="utf-8"
    )
    save_file(
        {"prompt_embeddings": np.zeros((1, 4), dtype=np.float32)},
        str(folder / "adapter_model.safetensors"),
    )
    return int(registry.register(folder, promote=promote).card.version)


@dataclass
class RegistryGenerator(FakeGenerator):
    """A :class:`FakeGenerator` whose adapters are a real registry's versions: a reference is
    resolved there (its current version, or the pinned one), and each version abstains on the
    share of requests its card's ``settings["abstain"]`` says, drawn with ``seed``."""

    registry: Any = None
    seed: int = 0

    def __post_init__(self) -> None:
        import random

        self._rng = random.Random(self.seed)

    def adapter_card(self, choice: AdapterChoice) -> AdapterCard | None:
        if isinstance(choice, NoAdapter):
            return None
        if not isinstance(choice, AdapterRef):
            raise AdapterNotFoundError(f"no adapter {choice}")
        return self.registry.resolve(choice).card  # type: ignore[no-any-return]

    def load_adapter(self, choice: AdapterChoice) -> AdapterCard | None:
        card = super().load_adapter(choice)
        if card is not None and card.settings.get("loads") is False:
            raise AdapterMismatchError(f"{card.ref} was made for another base model")
        return card

    def stream_many(
        self,
        requests: Sequence[GenerationRequest],
        *,
        cancelled: Callable[[int], bool] | None = None,
    ) -> Iterator[tuple[int, str | Generation]]:
        from ragtune.generate import ABSTENTION

        for i, request in enumerate(requests):
            self.requests.append(request)
            card = self.adapter_card(request.adapter)
            share = float(card.settings.get("abstain", 0.0)) if card else 0.0
            abstains = self._rng.random() < share or not request.passages
            text = ABSTENTION if abstains else f"{request.passages[0].text} [1]"
            yield (
                i,
                Generation(
                    text,
                    10,
                    3,
                    0.01,
                    0.01,
                    "eos",
                    adapter=f"{card.tenant}/{card.name}" if card else None,
                    adapter_version=card.version if card else None,
                    passages=tuple(request.passages),
                ),
            )
