"""The generator on the tiny Llama: mixed-adapter batches, decoding options, live promotion."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.errors import AdapterError, AdapterMismatchError, GenerationError
from ragtune.generate.generator import DecodeSettings, GenerationRequest, HFGenerator
from ragtune.generate.models import load_base_model
from ragtune.generate.registry import AdapterRegistry
from ragtune.types import Passage
from tests.generate.conftest import MakeAdapter

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
def generator(tiny_llama_dir: Path, tmp_path: Path) -> HFGenerator:
    return HFGenerator(
        load_base_model(tiny_llama_dir, device="cpu"),
        registry=AdapterRegistry(tmp_path / "adapters"),
        settings=DecodeSettings(max_new_tokens=12),
        context_window=512,
    )


def test_mixed_batch_equals_each_request_alone(
    generator: HFGenerator, make_adapter: MakeAdapter
) -> None:
    """Two prefixes of different lengths, a soft prompt, two LoRAs and the base model in one batch."""
    adapters = [
        str(make_adapter("prefix", seed=1, tokens=3)),
        str(make_adapter("prefix", seed=2, tokens=9)),
        str(make_adapter("prompt", seed=3, tokens=5)),
        str(make_adapter("lora", seed=4)),
        str(make_adapter("lora", seed=5, r=2)),
        None,
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
    # The adapters really differ: not every row decodes what the base model decodes.
    base = generator.generate_many(
        [GenerationRequest(r.question, r.passages, None, r.settings) for r in requests]
    )
    assert sum(b.token_ids != m.token_ids for b, m in zip(base, mixed, strict=True)) >= 3
    # Scores too, within float rounding (batched sums run in another order).
    prompt = generator.tokenizer("Question: how long?", add_special_tokens=False)["input_ids"]
    answer = generator.tokenizer(" Two years. [1]", add_special_tokens=False)["input_ids"]
    items = [(prompt, answer, a) for a in adapters]
    together = generator.log_likelihoods(items)
    single = [generator.log_likelihood(prompt, answer, adapter=a) for a in adapters]
    assert together == pytest.approx(single, abs=1e-3)
    assert len({round(s, 3) for s in single}) == len(single)


def test_generation_reports_what_it_did(generator: HFGenerator, make_adapter: MakeAdapter) -> None:
    generator.registry.register(make_adapter("prefix"))  # type: ignore[union-attr]
    generation = generator.generate(QUESTIONS[0], PASSAGES, adapter="acme/support")
    assert (generation.adapter, generation.adapter_version) == ("acme/support", 1)
    assert generation.prompt_tokens == len(
        generator.tokenizer(generation.prompt, add_special_tokens=False)["input_ids"]
    )
    assert generation.passages == tuple(PASSAGES)
    assert generation.prefill_seconds > 0 and generation.decode_seconds >= 0
    assert generation.finish_reason in {"eos", "length"}
    assert len(generation.token_ids) <= 12
    base = generator.generate(QUESTIONS[0], PASSAGES)
    assert base.adapter is None and base.adapter_version is None


def test_stop_sequences_cut_the_answer(generator: HFGenerator) -> None:
    full = generator.generate(QUESTIONS[1], PASSAGES, settings=DecodeSettings(max_new_tokens=24))
    assert len(full.text) > 6
    stop = full.text[3:6]
    cut = generator.generate(
        QUESTIONS[1], PASSAGES, settings=DecodeSettings(max_new_tokens=24, stop=(stop,))
    )
    assert cut.finish_reason == "stop"
    assert stop not in cut.text and full.text.startswith(cut.text)


def test_stream_yields_the_same_text(generator: HFGenerator, make_adapter: MakeAdapter) -> None:
    folder = str(make_adapter("lora"))
    request = GenerationRequest(QUESTIONS[2], PASSAGES, folder, DecodeSettings(max_new_tokens=16))
    stream = generator.stream(request)
    pieces = list(stream)
    assert stream.result is not None
    assert "".join(pieces).strip() == stream.result.text
    assert stream.result.token_ids == generator.generate_many([request])[0].token_ids


def test_stream_many_reports_each_request_when_done_and_cancels_one(
    generator: HFGenerator, make_adapter: MakeAdapter
) -> None:
    adapter = str(make_adapter("prefix", seed=1, tokens=3))
    settings = DecodeSettings(max_new_tokens=10, min_new_tokens=10)  # no early end
    requests = [
        GenerationRequest(q, PASSAGES[:1], a, settings)
        for q, a in zip(QUESTIONS[:3], [adapter, None, adapter], strict=True)
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
    one = generator.generate(QUESTIONS[3], PASSAGES, settings=settings)
    two = generator.generate(QUESTIONS[3], PASSAGES, settings=settings)
    assert one.token_ids == two.token_ids
    greedy = generator.generate(QUESTIONS[3], PASSAGES, settings=DecodeSettings(max_new_tokens=16))
    others = {
        generator.generate(
            QUESTIONS[3],
            PASSAGES,
            settings=DecodeSettings(max_new_tokens=16, temperature=1.5, seed=s),
        ).token_ids
        for s in range(4)
    }
    assert len(others | {greedy.token_ids}) > 1


def test_passages_are_cut_to_fit_and_reported(tiny_llama_dir: Path) -> None:
    generator = HFGenerator(
        load_base_model(tiny_llama_dir, device="cpu"),
        context_window=256,
        settings=DecodeSettings(max_new_tokens=16),
    )
    long = [passage(i, "Items can be returned within 30 days of delivery. " * 12) for i in range(4)]
    generation = generator.generate(QUESTIONS[1], long)
    assert generation.prompt_tokens + 16 <= 256
    assert 1 <= len(generation.passages) < 4
    assert generation.passages[0] == long[0] or len(generation.passages[-1].text) < len(
        long[0].text
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (DecodeSettings(max_new_tokens=0), "max_new_tokens must be"),
        (DecodeSettings(max_new_tokens=10_000), "max_new_tokens must be"),
        (DecodeSettings(temperature=-1), "temperature must be"),
        (DecodeSettings(top_p=0), "top_p must be"),
        (DecodeSettings(stop=("",)), "stop sequences"),
    ],
)
def test_bad_settings_are_refused(
    generator: HFGenerator, settings: DecodeSettings, message: str
) -> None:
    with pytest.raises(GenerationError, match=message):
        generator.generate(QUESTIONS[0], PASSAGES, settings=settings)


def test_oversized_question_and_empty_question_are_refused(generator: HFGenerator) -> None:
    with pytest.raises(GenerationError, match="shorten the question"):
        generator.generate("why " * 2000, PASSAGES)
    with pytest.raises(GenerationError, match="question is empty"):
        generator.generate("   ", PASSAGES)


def test_promotion_and_rollback_reach_the_next_request(
    generator: HFGenerator, make_adapter: MakeAdapter
) -> None:
    registry = generator.registry
    assert registry is not None
    registry.register(make_adapter("lora", seed=1))
    registry.register(make_adapter("prompt", seed=2))
    first = generator.generate(QUESTIONS[0], PASSAGES, adapter="acme/support")
    generator.promote("acme/support", 2)
    second = generator.generate(QUESTIONS[0], PASSAGES, adapter="acme/support")
    registry.rollback("acme/support")  # from another process, say: only the pointer moves
    third = generator.generate(QUESTIONS[0], PASSAGES, adapter="acme/support")
    assert [g.adapter_version for g in (first, second, third)] == [1, 2, 1]
    assert third.token_ids == first.token_ids


def test_a_mismatched_version_is_refused_and_the_current_keeps_serving(
    generator: HFGenerator, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    from tests.generate.tiny import save_tiny

    registry = generator.registry
    assert registry is not None
    registry.register(make_adapter("lora", seed=1))
    registry.register(make_adapter("lora", seed=2, base_dir=save_tiny(tmp_path / "other", seed=9)))
    before = generator.generate(QUESTIONS[0], PASSAGES, adapter="acme/support")
    with pytest.raises(AdapterMismatchError):
        generator.promote("acme/support", 2)
    assert registry.current_version("acme", "support") == 1
    # Promoted behind the generator's back (no check): requests keep getting the good version.
    registry.promote("acme/support", 2)
    after = generator.generate(QUESTIONS[0], PASSAGES, adapter="acme/support")
    assert after.adapter_version == 1 and after.token_ids == before.token_ids
    # A name that never served a good version fails loudly.
    registry.register(make_adapter("lora", name="other", base_dir=tmp_path / "other"))
    with pytest.raises(AdapterError):
        generator.generate(QUESTIONS[0], PASSAGES, adapter="acme/other")


def test_activate_sets_the_default_and_unload_frees(
    generator: HFGenerator, make_adapter: MakeAdapter
) -> None:
    generator.registry.register(make_adapter("prefix"))  # type: ignore[union-attr]
    loaded = generator.activate("acme/support")
    assert loaded is not None and loaded.key == "acme/support@v1"
    assert generator.generate(QUESTIONS[0], PASSAGES).adapter == "acme/support"
    generator.activate(None)
    assert generator.generate(QUESTIONS[0], PASSAGES).adapter is None
    generator.unload_adapter("acme/support@v1")
    assert generator.loaded_adapters == []


def test_least_recently_used_adapters_are_dropped(
    tiny_llama_dir: Path, make_adapter: MakeAdapter
) -> None:
    generator = HFGenerator(load_base_model(tiny_llama_dir, device="cpu"), max_loaded=2)
    folders = [make_adapter(kind, seed=i) for i, kind in enumerate(["lora", "prefix", "lora"])]
    for folder in folders:
        generator.load_adapter(folder)
    assert [a.folder for a in generator.loaded_adapters] == folders[1:]
    assert generator.generate(QUESTIONS[0], PASSAGES, adapter=str(folders[0])).output_tokens > 0
