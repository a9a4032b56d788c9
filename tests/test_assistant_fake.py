"""The Assistant and the server on a fake generator and retriever: adapter choice per tenant,
batching and refusals, with no model loaded."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ragtune import Assistant
from ragtune.assistant import Question
from ragtune.errors import AdapterNotFoundError, RequestError
from ragtune.policy import AdapterDefaults, AnswerPolicy, AssistantPolicy
from ragtune.types import NO_ADAPTER, AdapterRef
from tests.fakes import FakeGenerator, FakeRetriever, card

DOCS = {
    "acme": ["Items can be returned within 30 days.", "The blender has a two-year warranty."],
    "globex": ["The platinum plan costs 450 dollars."],
    None: ["Items can be returned within 30 days.", "The platinum plan costs 450 dollars."],
}
SUPPORT = AdapterRef("acme", "support")


def make(**defaults: Any) -> tuple[Assistant, FakeGenerator]:
    generator = FakeGenerator(
        {SUPPORT: card("acme", "support"), AdapterRef("globex", "faq"): card("globex", "faq")}
    )
    policy = AssistantPolicy(
        top_k=2,
        answer=AnswerPolicy("flag"),
        adapters=AdapterDefaults(**defaults),
    )
    return Assistant(FakeRetriever(DOCS), generator, None, policy=policy), generator


def test_every_request_carries_the_tenants_concrete_choice() -> None:
    assistant, generator = make(per_tenant={"acme": SUPPORT})
    acme = assistant.ask("How long are returns?", tenant="acme")
    globex = assistant.ask("What does platinum cost?", tenant="globex")
    untenanted = assistant.ask("What does platinum cost?")
    assert acme.adapter == "acme/support" and globex.adapter is None
    assert untenanted.adapter is None
    assert [r.adapter for r in generator.requests] == [SUPPORT, NO_ADAPTER, NO_ADAPTER]
    explicit_base = assistant.ask("How long are returns?", tenant="acme", adapter="none")
    assert explicit_base.adapter is None and generator.requests[-1].adapter == NO_ADAPTER


def test_foreign_and_unknown_adapters_are_refused_alike_and_alone() -> None:
    assistant, generator = make()
    outcomes = dict(
        assistant.answer_stream(
            [
                Question("What does platinum cost?", tenant="globex", adapter=SUPPORT),
                Question(
                    "What does platinum cost?",
                    tenant="globex",
                    adapter=AdapterRef("globex", "nope"),
                ),
                Question(
                    "What does platinum cost?", tenant="globex", adapter=AdapterRef("globex", "faq")
                ),
            ]
        )
    )
    refused, unknown, served = outcomes[0], outcomes[1], outcomes[2]
    assert isinstance(refused, AdapterNotFoundError) and isinstance(unknown, AdapterNotFoundError)
    assert str(refused).replace("acme/support", "X") == str(unknown).replace("globex/nope", "X")
    assert not isinstance(served, Exception) and served.adapter == "globex/faq"
    assert [r.adapter for r in generator.requests] == [AdapterRef("globex", "faq")]


def test_bad_adapter_values_at_the_python_edge_say_what_to_pass() -> None:
    assistant, _generator = make()
    with pytest.raises(RequestError, match="TENANT_DEFAULT"):
        assistant.ask("Hi?", tenant="acme", adapter=None)  # type: ignore[arg-type]
    with pytest.raises(AdapterNotFoundError, match="write tenant/name"):
        assistant.ask("Hi?", tenant="acme", adapter="support")


def test_questions_are_batched_by_the_generators_batch_size_and_can_be_cancelled() -> None:
    assistant, generator = make()
    questions = [Question(f"Returns {i}?", tenant="acme") for i in range(6)]
    done = dict(assistant.answer_stream(questions, cancelled=lambda i: i == 5))
    assert sorted(done) == [0, 1, 2, 3, 4] and len(generator.requests) == 6


def test_the_server_on_a_fake_generator(tmp_path: Any) -> None:
    from ragtune.serve import ApiKey, KeyRing, ServeSettings, create_app, hash_key
    from tests.serve.server import running

    assistant, _generator = make(per_tenant={"acme": SUPPORT})
    keys = KeyRing.from_config([ApiKey("acme", key_sha256=hash_key("k-acme"))])
    with running(create_app(assistant, ServeSettings(), keys)) as url:
        headers = {"Authorization": "Bearer k-acme"}
        body = {"model": "acme", "messages": [{"role": "user", "content": "How long are returns?"}]}
        reply = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)
        assert reply.status_code == 200 and reply.json()["ragtune"]["adapter"] == "acme/support"
        assert "30 days" in reply.json()["choices"][0]["message"]["content"]
        foreign = httpx.post(
            f"{url}/v1/chat/completions", json=body | {"model": "globex/faq"}, headers=headers
        )
        assert foreign.status_code == 404
        health = httpx.get(f"{url}/healthz").json()
        assert health["model"] == "fake" and health["adapters_loaded"] == 2


def test_an_answerability_model_decides_abstention_and_is_recorded() -> None:
    from ragtune.check.answerability import ANSWERABILITY_SIGNALS
    from ragtune.check.support import Calibration

    # p(answerable) falls with the model's abstention probability alone.
    model = Calibration(
        ANSWERABILITY_SIGNALS, (-2.0, 0.0, 0.0, 0.0), 0.0, 0.5, (0.0,) * 4, (1.0,) * 4
    )
    assistant, generator = make()
    assistant.answerability = model
    generator.abstain_probability = 0.05
    sure = assistant.ask("How long are returns?", tenant="acme")
    assert not sure.abstained and sure.answerability["probability"] > 0.5
    assert generator.requests[-1].scored_abstention
    generator.abstain_probability = 0.95
    unsure = assistant.ask("How long are returns?", tenant="acme")
    assert unsure.abstained and unsure.abstain_reason == "not answerable"
    assert unsure.draft and unsure.answerability["abstain_probability"] == 0.95
