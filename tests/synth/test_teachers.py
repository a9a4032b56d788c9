"""The teachers: an OpenAI-compatible endpoint started here (real HTTP), and the local model's
requests (a fake generator)."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from ragtune.errors import SynthError, TeacherError
from ragtune.generate.decoding import DecodeSettings
from ragtune.generate.protocol import GenerationRequest
from ragtune.synth.endpoint import EndpointTeacher, check_endpoint, is_local_url
from ragtune.synth.local import LocalTeacher
from ragtune.synth.settings import EndpointSettings
from ragtune.synth.teacher import QuestionRequest, parse_question
from ragtune.types import NO_ADAPTER, Generation
from tests.synth.server import Endpoint, running_endpoint

REQUEST = QuestionRequest(
    "Support",
    "Write to ana.silva@example.org or call +44 20 7946 0958 within 30 days.",
    "30 days",
)


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    with running_endpoint() as running:
        yield running


def _teacher(url: str, **settings: Any) -> EndpointTeacher:
    return EndpointTeacher(
        EndpointSettings(base_url=url, model="tiny-teacher", **settings),
        allow_external=True,
        key="sk-test",
        max_tokens=40,
        sleep=lambda seconds: None,
    )


def test_the_endpoint_writes_questions_from_scrubbed_text(endpoint: Endpoint) -> None:
    replies = _teacher(endpoint.url).write([REQUEST, REQUEST])
    assert parse_question(replies[0], "30 days") == (
        "Write to [EMAIL] or call [PHONE] within what?"
    )
    sent = endpoint.sent_text()
    assert "ana.silva@example.org" not in sent and "7946" not in sent
    assert "[EMAIL]" in sent and "30 days" in sent
    body = endpoint.requests[0]
    assert body["model"] == "tiny-teacher" and body["max_tokens"] == 40
    assert body["messages"][0]["role"] == "system"
    assert endpoint.headers[0]["Authorization"] == "Bearer sk-test"


def test_an_answer_that_is_personal_data_is_never_sent(endpoint: Endpoint) -> None:
    email = QuestionRequest(
        "Support", "Write to ana.silva@example.org today.", "ana.silva@example.org"
    )
    assert _teacher(endpoint.url).write([email]) == [""]
    assert endpoint.requests == []


def test_failures_are_clear_errors(endpoint: Endpoint) -> None:
    endpoint.fail_from = 0
    with pytest.raises(TeacherError, match=r"HTTP 500 .*overloaded.*continues"):
        _teacher(endpoint.url, retries=2).write([REQUEST])
    assert len(endpoint.requests) == 3  # tried, then retried twice
    endpoint.fail_status = 401
    with pytest.raises(TeacherError, match=r"HTTP 401.*OPENAI_API_KEY"):
        _teacher(endpoint.url).write([REQUEST])
    endpoint.fail_from = None
    with pytest.raises(TeacherError, match="HTTP 404"):
        _teacher(endpoint.url.removesuffix("/v1")).write([REQUEST])
    endpoint.body = b"<html>a proxy page</html>"
    with pytest.raises(TeacherError, match="not a chat completion"):
        _teacher(endpoint.url).write([REQUEST])


def test_a_failure_then_success_is_retried(endpoint: Endpoint) -> None:
    endpoint.fail_from = 0
    pauses: list[float] = []
    teacher = EndpointTeacher(
        EndpointSettings(base_url=endpoint.url, retries=3),
        allow_external=True,
        key=None,
        max_tokens=40,
        sleep=lambda seconds: (pauses.append(seconds), setattr(endpoint, "fail_from", None)),
    )
    assert parse_question(teacher.write([REQUEST])[0], "30 days") is not None
    assert pauses == [1.0] and "Authorization" not in endpoint.headers[-1]


def test_an_unreachable_endpoint_is_a_clear_error() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(TeacherError, match="cannot be reached.*base_url"):
        _teacher(f"http://127.0.0.1:{port}/v1").write([REQUEST])


def test_external_endpoints_can_be_forbidden() -> None:
    assert is_local_url("http://localhost:8000/v1") and is_local_url("http://[::1]:80/v1")
    assert not is_local_url("https://api.example.com/v1")
    local = EndpointSettings(base_url="http://127.0.0.1:8000/v1/")
    assert check_endpoint(local, allow_external=False) == "http://127.0.0.1:8000/v1"
    hosted = EndpointSettings(base_url="https://api.example.com/v1")
    assert check_endpoint(hosted, allow_external=True) == "https://api.example.com/v1"
    with pytest.raises(SynthError, match="allow_external is false"):
        EndpointTeacher(hosted, allow_external=False, key=None, max_tokens=40)
    with pytest.raises(SynthError, match="base_url"):
        check_endpoint(EndpointSettings(), allow_external=True)
    with pytest.raises(SynthError, match="not an http"):
        check_endpoint(EndpointSettings(base_url="ftp://x/v1"), allow_external=True)


class RecordingGenerator:
    def __init__(self, context_window: int = 8192) -> None:
        self.context_window = context_window
        self.requests: list[GenerationRequest] = []

    def generate_many(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        self.requests += requests
        return [
            Generation("How long can items be returned?", 1, 1, 0.0, 0.0, "eos") for _ in requests
        ]


def test_the_local_teacher_asks_its_generator_with_the_chat_prompt() -> None:
    from tests.generate.tiny import make_tokenizer

    tokenizer = make_tokenizer()
    generator = RecordingGenerator()
    teacher = LocalTeacher(
        generator, tokenizer, model="tiny", decoding=DecodeSettings(temperature=0.7)
    )
    assert teacher.name == "local:tiny"
    assert teacher.write([REQUEST]) == ["How long can items be returned?"]
    (request,) = generator.requests
    assert request.adapter == NO_ADAPTER and request.settings.temperature == 0.0
    prompt = tokenizer.decode(list(request.prompt_ids))
    assert prompt.endswith("Answer: 30 days<|im_end|>\n<|im_start|>assistant\n")
    assert "Do not put the answer" in prompt


def test_the_local_teacher_leaves_the_examples_out_when_they_do_not_fit() -> None:
    from tests.generate.tiny import make_tokenizer

    tokenizer = make_tokenizer()
    wide, narrow = RecordingGenerator(), RecordingGenerator(context_window=0)
    for generator in (wide, narrow):
        LocalTeacher(generator, tokenizer, model="tiny", decoding=DecodeSettings()).write([REQUEST])
    with_examples = tokenizer.decode(list(wide.requests[0].prompt_ids))
    without = tokenizer.decode(list(narrow.requests[0].prompt_ids))
    assert "Northfield" in with_examples and "Northfield" not in without
    assert without.endswith("Answer: 30 days<|im_end|>\n<|im_start|>assistant\n")
