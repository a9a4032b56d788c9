"""The generator on the tiny Llama: mixed-adapter batches, decoding options, live promotion."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.errors import AdapterError, AdapterNotFoundError, GenerationError
from ragtune.generate import (
    AdapterPool,
    AdapterRegistry,
    DecodeSettings,
    GenerationRequest,
    HFGenerator,
)
from ragtune.types import NO_ADAPTER, AdapterChoice, AdapterFolder, AdapterRef, Passage
from tests.generate.conftest import MakeAdapter, make_generator

SUPPORT = AdapterRef("acme", "support")

QUESTIONS = [
    "How long is the warranty?",
    "Can I return the kettle after 30 days?",
    "How fast is express shipping?",
    "Who answers the phone?",
    "What does the jar warranty cover?",
    "Is shipping free?",
]


def passage(i: int, text: str) -> Passage:
    return Passage(f"c{i}", f"d{i}", text, 1.0, i + 1, f"doc{i}.md", 0, len(text), title=f"Doc {i}")


PASSAGES = [
    passage(0, "The warranty covers the motor for two years and the jar for one year."),
    passage(1, "Items can be returned within 30 days of delivery for a full refund."),
]


@pytest.fixture
def pool_and_generator(tiny_llama_dir: Path, tmp_path: Path) -> tuple[HFGenerator, AdapterPool]:
    return make_generator(tiny_llama_dir, tmp_path / "adapters")


@pytest.fixture
def generator(pool_and_generator: tuple[HFGenerator, AdapterPool]) -> HFGenerator:
    return pool_and_generator[0]


@pytest.fixture
def registry(pool_and_generator: tuple[HFGenerator, AdapterPool]) -> AdapterRegistry:
    return pool_and_generator[1].registry


TWELVE = DecodeSettings(max_new_tokens=12)


def folder(path: Path) -> AdapterChoice:
    return AdapterFolder(path)


@pytest.mark.parametrize("quantize", ["none", "int4"])
def test_mixed_batch_equals_each_request_alone(
    tiny_llama_dir: Path, tmp_path: Path, make_adapter: MakeAdapter, quantize: str
) -> None:
    """Two prefixes of different lengths, a soft prompt, two LoRAs and the base model in one
    batch, on full-precision and on int4 weights (activations stay per row in both)."""
    generator, _pool = make_generator(tiny_llama_dir, tmp_path / "adapters", quantize=quantize)
    adapters = [
        folder(make_adapter("prefix", seed=1, tokens=3)),
        folder(make_adapter("prefix", seed=2, tokens=9)),
        folder(make_adapter("prompt", seed=3, tokens=5)),
        folder(make_adapter("lora", seed=4)),
        folder(make_adapter("lora", seed=5, r=2)),
        NO_ADAPTER,
    ]
    requests = [
        GenerationRequest(q, PASSAGES[: 1 + i % 2], a, DecodeSettings(max_new_tokens=6 + 2 * i))
        for i, (q, a) in enumerate(zip(QUESTIONS, adapters, strict=True))
    ]
    alone = [generator.generate_many([r])[0] for r in requests]
    mixed = generator.generate_many(requests)
    for one, many in zip(alone, mixed, strict=True):
        assert many.token_ids == one.token_ids
        assert many.text == one.text and many.finish_reason == one.finish_reason
    # The adapters really differ: not every row decodes what the base model decodes. The tiny
    # random model's greedy path falls into one repeated token, which on int4 weights only the
    # two LoRA rows leave (float32: three rows); every adapter's own effect shows in the
    # scores below, which differ for each.
    base = generator.generate_many(
        [GenerationRequest(r.question, r.passages, NO_ADAPTER, r.settings) for r in requests]
    )
    assert sum(b.token_ids != m.token_ids for b, m in zip(base, mixed, strict=True)) >= 2
    # Scores too, within float rounding (batched sums run in another order).
    prompt = generator.tokenize("Question: how long?")
    answer = generator.tokenize(" Two years. [1]")
    two = [(prompt, answer), (prompt + prompt[:2], answer)]
    for adapter in adapters:
        together = generator.log_likelihoods(two, adapter=adapter)
        single = [generator.log_likelihoods([item], adapter=adapter)[0] for item in two]
        assert together == pytest.approx(single, abs=1e-3)
    scores = [generator.log_likelihoods(two[:1], adapter=a)[0] for a in adapters]
    assert len({round(s, 3) for s in scores}) == len(scores)


def test_generation_reports_what_it_did(
    generator: HFGenerator, registry: AdapterRegistry, make_adapter: MakeAdapter
) -> None:
    registry.register(make_adapter("prefix"))
    generation = generator.generate(QUESTIONS[0], PASSAGES, adapter=SUPPORT, settings=TWELVE)
    assert (generation.adapter, generation.adapter_version) == ("acme/support", 1)
    assert generation.prompt_tokens == len(generator.tokenize(generation.prompt))
    assert generation.passages == tuple(PASSAGES)
    assert generation.prefill_seconds > 0 and generation.decode_seconds >= 0
    assert generation.finish_reason in {"eos", "length"}
    assert len(generation.token_ids) <= 12
    base = generator.generate(QUESTIONS[0], PASSAGES, adapter=NO_ADAPTER)
    assert base.adapter is None and base.adapter_version is None


def test_stop_sequences_cut_the_answer(generator: HFGenerator) -> None:
    full = generator.generate(
        QUESTIONS[1], PASSAGES, adapter=NO_ADAPTER, settings=DecodeSettings(max_new_tokens=24)
    )
    assert len(full.text) > 6
    stop = full.text[3:6]
    cut = generator.generate(
        QUESTIONS[1],
        PASSAGES,
        adapter=NO_ADAPTER,
        settings=DecodeSettings(max_new_tokens=24, stop=(stop,)),
    )
    assert cut.finish_reason == "stop"
    assert stop not in cut.text and full.text.startswith(cut.text)


def test_stream_yields_the_same_text(generator: HFGenerator, make_adapter: MakeAdapter) -> None:
    lora = folder(make_adapter("lora"))
    request = GenerationRequest(QUESTIONS[2], PASSAGES, lora, DecodeSettings(max_new_tokens=16))
    events = list(generator.stream_many([request]))
    pieces = [e for _i, e in events if isinstance(e, str)]
    (result,) = [e for _i, e in events if not isinstance(e, str)]
    assert "".join(pieces).strip() == result.text
    assert result.token_ids == generator.generate_many([request])[0].token_ids


def test_stream_many_reports_each_request_when_done_and_cancels_one(
    generator: HFGenerator, make_adapter: MakeAdapter
) -> None:
    adapter = folder(make_adapter("prefix", seed=1, tokens=3))
    settings = DecodeSettings(max_new_tokens=10, min_new_tokens=10)  # no early end
    requests = [
        GenerationRequest(q, PASSAGES[:1], a, settings)
        for q, a in zip(QUESTIONS[:3], [adapter, NO_ADAPTER, adapter], strict=True)
    ]
    alone = [generator.generate_many([r])[0] for r in requests]
    steps = {"count": 0}

    def cancelled(i: int) -> bool:
        steps["count"] += i == 1
        return i == 1 and steps["count"] > 3  # request 1 goes away after three steps

    events = list(generator.stream_many(requests, cancelled=cancelled))
    finished = {i: e for i, e in events if not isinstance(e, str)}
    assert set(finished) == {0, 1, 2}
    assert finished[1].finish_reason == "cancelled" and len(finished[1].token_ids) == 3
    for i in (0, 2):
        assert finished[i].text == alone[i].text and finished[i].token_ids == alone[i].token_ids
        texts = "".join(e for j, e in events if j == i and isinstance(e, str))
        assert texts.strip() == alone[i].text
    done_at = [k for k, (_i, e) in enumerate(events) if not isinstance(e, str)]
    assert events[done_at[0]][0] == 1  # the cancelled one is reported first, before the others
    with pytest.raises(GenerationError, match="the most is"):
        list(generator.stream_many(requests * 4))


def test_sampling_is_reproducible_with_a_seed(generator: HFGenerator) -> None:
    settings = DecodeSettings(max_new_tokens=16, temperature=1.0, top_p=0.9, seed=3)
    one = generator.generate(QUESTIONS[3], PASSAGES, adapter=NO_ADAPTER, settings=settings)
    two = generator.generate(QUESTIONS[3], PASSAGES, adapter=NO_ADAPTER, settings=settings)
    assert one.token_ids == two.token_ids
    greedy = generator.generate(
        QUESTIONS[3], PASSAGES, adapter=NO_ADAPTER, settings=DecodeSettings(max_new_tokens=16)
    )
    others = {
        generator.generate(
            QUESTIONS[3],
            PASSAGES,
            adapter=NO_ADAPTER,
            settings=DecodeSettings(max_new_tokens=16, temperature=1.5, seed=s),
        ).token_ids
        for s in range(4)
    }
    assert len(others | {greedy.token_ids}) > 1


def test_passages_are_cut_to_fit_and_reported(tiny_llama_dir: Path, tmp_path: Path) -> None:
    generator, _pool = make_generator(tiny_llama_dir, tmp_path / "adapters", context_window=256)
    long = [passage(i, "Items can be returned within 30 days of delivery. " * 12) for i in range(4)]
    generation = generator.generate(
        QUESTIONS[1], long, adapter=NO_ADAPTER, settings=DecodeSettings(max_new_tokens=16)
    )
    assert generation.prompt_tokens + 16 <= 256
    assert 1 <= len(generation.passages) < 4
    assert generation.passages[0] == long[0] or len(generation.passages[-1].text) < len(
        long[0].text
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens must be >= 1"),
        ({"max_new_tokens": 10_000}, "max_new_tokens must be <= 4096"),
        ({"temperature": -1}, "temperature must be >= 0"),
        ({"top_p": 0}, "top_p must be > 0"),
        ({"stop": ("",)}, "stop sequences"),
        ({"max_new_tokens": 4, "min_new_tokens": 5}, "cannot exceed max_new_tokens"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DecodeSettings(**settings)  # type: ignore[arg-type]


def test_oversized_question_and_empty_question_are_refused(generator: HFGenerator) -> None:
    with pytest.raises(GenerationError, match="shorten the question"):
        generator.generate("why " * 2000, PASSAGES, adapter=NO_ADAPTER)
    with pytest.raises(GenerationError, match="question is empty"):
        generator.generate("   ", PASSAGES, adapter=NO_ADAPTER)
    with pytest.raises(GenerationError, match="more than half the context window"):
        generator.generate(
            QUESTIONS[0], PASSAGES, adapter=NO_ADAPTER, settings=DecodeSettings(max_new_tokens=300)
        )


def test_promotion_and_rollback_reach_the_next_request(
    generator: HFGenerator, registry: AdapterRegistry, make_adapter: MakeAdapter
) -> None:
    registry.register(make_adapter("lora", seed=1))
    registry.register(make_adapter("prompt", seed=2))
    first = generator.generate(QUESTIONS[0], PASSAGES, adapter=SUPPORT, settings=TWELVE)
    registry.promote("acme/support", 2)
    second = generator.generate(QUESTIONS[0], PASSAGES, adapter=SUPPORT, settings=TWELVE)
    registry.rollback("acme/support")  # from another process, say: only the pointer moves
    third = generator.generate(QUESTIONS[0], PASSAGES, adapter=SUPPORT, settings=TWELVE)
    assert [g.adapter_version for g in (first, second, third)] == [1, 2, 1]
    assert third.token_ids == first.token_ids
    pinned = generator.generate(
        QUESTIONS[0], PASSAGES, adapter=AdapterRef("acme", "support", 2), settings=TWELVE
    )
    assert pinned.adapter_version == 2


def test_a_broken_promoted_version_is_refused_and_the_last_good_keeps_serving(
    pool_and_generator: tuple[HFGenerator, AdapterPool],
    make_adapter: MakeAdapter,
    tmp_path: Path,
) -> None:
    from tests.generate.tiny import save_tiny

    generator, pool = pool_and_generator
    registry = pool.registry
    registry.register(make_adapter("lora", seed=1))
    registry.register(make_adapter("lora", seed=2, base_dir=save_tiny(tmp_path / "other", seed=9)))
    before = generator.generate(QUESTIONS[0], PASSAGES, adapter=SUPPORT, settings=TWELVE)
    registry.promote("acme/support", 2)  # made for another base model
    after = generator.generate(QUESTIONS[0], PASSAGES, adapter=SUPPORT, settings=TWELVE)
    assert after.adapter_version == 1 and after.token_ids == before.token_ids
    with pytest.raises(AdapterError, match="another base model|not on the loaded"):
        generator.load_adapter(AdapterRef("acme", "support", 2))  # pinned: no fallback
    with pytest.raises(AdapterError):
        pool.check(registry.resolve("acme/support@v2").folder)
    # A name that never served a good version fails loudly.
    registry.register(make_adapter("lora", name="other", base_dir=tmp_path / "other"))
    with pytest.raises(AdapterError):
        generator.generate(QUESTIONS[0], PASSAGES, adapter=AdapterRef("acme", "other"))


def test_pool_resolves_cards_without_loading_and_refuses_unknown(
    pool_and_generator: tuple[HFGenerator, AdapterPool], make_adapter: MakeAdapter
) -> None:
    generator, pool = pool_and_generator
    pool.registry.register(make_adapter("prefix"))
    card = generator.adapter_card(SUPPORT)
    assert card is not None and card.ref == "acme/support@v1" and pool.loaded == ()
    assert generator.adapter_card(NO_ADAPTER) is None
    with pytest.raises(AdapterNotFoundError):
        generator.adapter_card(AdapterRef("acme", "missing"))
    with pytest.raises(AdapterNotFoundError):
        generator.adapter_card(AdapterRef("acme", "support", 7))
    generator.load_adapter(SUPPORT)
    assert [a.key for a in pool.loaded] == ["acme/support@v1"]
    assert generator.status().adapters_loaded == 1 and generator.status().adapter_loads == 1
    pool.unload("acme/support@v1")
    assert pool.loaded == ()


def test_a_registry_reference_never_depends_on_the_working_directory(
    pool_and_generator: tuple[HFGenerator, AdapterPool],
    make_adapter: MakeAdapter,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A folder named like a reference (./acme/support) neither shadows nor stands in for it."""
    generator, pool = pool_and_generator
    decoy = make_adapter("prompt", seed=7)
    (tmp_path / "acme").mkdir()
    decoy.rename(tmp_path / "acme" / "support")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AdapterNotFoundError):
        generator.load_adapter(SUPPORT)  # nothing registered: the folder is not a fallback
    pool.registry.register(make_adapter("lora", seed=1))
    card = generator.load_adapter(SUPPORT)
    assert card is not None and card.kind == "lora"


def test_least_recently_used_adapters_are_dropped(
    tiny_llama_dir: Path, tmp_path: Path, make_adapter: MakeAdapter
) -> None:
    generator, pool = make_generator(tiny_llama_dir, tmp_path / "adapters", max_loaded=2)
    folders = [make_adapter(kind, seed=i) for i, kind in enumerate(["lora", "prefix", "lora"])]
    for made in folders:
        generator.load_adapter(AdapterFolder(made))
    assert [a.folder for a in pool.loaded] == folders[1:]
    reloaded = generator.generate(
        QUESTIONS[0], PASSAGES, adapter=AdapterFolder(folders[0]), settings=TWELVE
    )
    assert reloaded.output_tokens > 0 and pool.loads == 4


@pytest.mark.parametrize("quantize", ["none", "int4"])
def test_prompt_head_cache_gives_the_same_tokens(
    tiny_llama_dir: Path, tmp_path: Path, make_adapter: MakeAdapter, quantize: str
) -> None:
    """With and without the prompt-head cache: the same tokens for every adapter kind and for
    the base model with its worked examples, alone and in a mixed batch."""
    adapters = [
        folder(make_adapter("prefix", seed=1, tokens=4)),
        folder(make_adapter("prompt", seed=2, tokens=5)),
        folder(make_adapter("lora", seed=3)),
        NO_ADAPTER,
    ]
    requests = [
        GenerationRequest(q, PASSAGES[: 1 + i % 2], a, DecodeSettings(max_new_tokens=10))
        for i, (q, a) in enumerate(zip(QUESTIONS, adapters * 2, strict=False))
    ]
    answers = {}
    for cache in (False, True):
        generator, _pool = make_generator(
            tiny_llama_dir, tmp_path / f"r{cache}", quantize=quantize, prompt_cache=cache
        )
        alone = [generator.generate_many([r])[0] for r in requests]
        mixed = generator.generate_many(requests)
        assert [g.token_ids for g in mixed] == [g.token_ids for g in alone]
        answers[cache] = alone
        heads = generator._heads
        if cache:  # one head per adapter (the base with its examples), then served from memory
            assert (len(heads), heads.misses, heads.hits) == (4, 4, 2 * len(requests) - 4)
        else:
            assert len(heads) == 0
    assert [g.token_ids for g in answers[True]] == [g.token_ids for g in answers[False]]
    assert [g.prompt_tokens for g in answers[True]] == [g.prompt_tokens for g in answers[False]]
