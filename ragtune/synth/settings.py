"""What ``ragtune synth`` does, declared once: the teacher, how many questions, the filters.

:class:`SynthSettings` is the ``synth:`` section of the config and :class:`EndpointSettings` its
``synth.endpoint:`` part (the OpenAI-compatible teacher); the CLI's ``--teacher`` and
``--per-chunk`` override the section's values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from annotated_types import Ge, Gt, Le, MinLen

from ragtune.settings import check_bounds

__all__ = ["TEACHERS", "EndpointSettings", "SynthSettings"]

TEACHERS = ("local", "openai", "cloze")
"""The teachers: the base model on this machine, an OpenAI-compatible endpoint, or the rule
that turns the sentence into a question itself (:mod:`ragtune.synth.cloze`)."""


@dataclass(frozen=True)
class SynthSettings:
    """How training questions are generated from a tenant's chunks."""

    teacher: Literal["local", "openai", "cloze"] = "local"
    """Who writes the questions: ``local`` (the configured base model, offline), ``openai`` (the
    chat endpoint of ``synth.endpoint``) or ``cloze`` (no model: the sentence with the answer
    cut out and a question word in front, offline and instant)."""
    fallback: Literal["cloze", "none"] = "cloze"
    """Who writes a second question for a candidate whose teacher question the filters
    dropped: ``cloze`` (the rule of :mod:`ragtune.synth.cloze`, filtered the same way) or
    ``none`` (the candidate is dropped). A small local model writes few questions that pass
    (the embedded SmolLM2-135M mostly asks about the document's topic, not the answer), so
    with ``cloze`` a run still yields questions; each row names its ``teacher``. No effect when
    the teacher is ``cloze`` itself."""
    allow_external: bool = True
    """False refuses a teacher endpoint on another machine (any host but localhost): no text of
    the documents leaves this machine, even scrubbed of personal data."""
    per_chunk: Annotated[int, Ge(1), Le(20)] = 3
    """Questions kept per chunk at most."""
    candidate_factor: Annotated[int, Ge(1), Le(10)] = 2
    """Answer candidates taken per chunk: ``per_chunk`` times this (the filters drop some)."""
    round_trip_k: Annotated[int, Ge(1), Le(100)] = 5
    """A question is kept only when the retriever ranks its source chunk in this many."""
    min_answer_f1: Annotated[float, Ge(0.0), Le(1.0)] = 0.5
    """Token F1 the grounded model's answer (over the retrieved passages) must reach against
    the candidate answer."""
    max_similarity: Annotated[float, Gt(0.0), Le(1.0)] = 0.8
    """A question whose content words overlap a kept question's this much (Jaccard) or more is
    a near-duplicate and dropped."""
    unanswerable_per_chunk: Annotated[int, Ge(0), Le(20)] = 1
    """Unanswerable questions written per chunk at most (0: none)."""
    question_tokens: Annotated[int, Ge(8), Le(256)] = 40
    """New tokens the teacher may write for a question."""
    answer_tokens: Annotated[int, Ge(4), Le(256)] = 24
    """New tokens the grounded model may write for its check answer."""

    def __post_init__(self) -> None:
        check_bounds(self)


@dataclass(frozen=True)
class EndpointSettings:
    """An OpenAI-compatible ``/v1/chat/completions`` endpoint: a hosted model, or a local vLLM
    or llama.cpp server."""

    base_url: str | None = None
    """The API root, e.g. ``https://api.openai.com/v1`` or ``http://localhost:8000/v1``; None:
    not configured (the ``openai`` teacher then refuses to start)."""
    model: Annotated[str, MinLen(1)] = "gpt-4o-mini"
    """The model name the endpoint knows."""
    api_key_env: Annotated[str, MinLen(1)] = "OPENAI_API_KEY"
    """The environment variable holding the key (sent as a bearer token; unset or empty: no
    key is sent, as a local server wants). The key itself never goes in a config file."""
    timeout_seconds: Annotated[float, Gt(0.0), Le(600.0)] = 60.0
    """Seconds one request may take."""
    retries: Annotated[int, Ge(0), Le(10)] = 2
    """Retries of a request that timed out, was rate-limited (429) or failed on the server's
    side (5xx), with a doubling pause from one second."""
    temperature: Annotated[float, Ge(0.0), Le(2.0)] = 0.0

    def __post_init__(self) -> None:
        check_bounds(self)
