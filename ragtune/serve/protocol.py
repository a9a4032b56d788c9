"""The OpenAI chat-completions protocol as ragtune speaks it: request models and pure functions
that turn an :class:`~ragtune.types.Answer` into a completion, stream chunks or an error body.

A request's question is the text of its last message, which must be the user's; earlier turns
and system messages are accepted and not used (answers come from the passages, not the
conversation). The reply is a normal completion whose text carries the ``[n]`` markers, plus
``citations`` (one entry per marker of each kept sentence: passage id, source, span, quoted
text, support verdict) and a ``ragtune`` object (abstained, grounded, timings, adapter version,
canary arm). The reply's ``id`` is the answer's response id, what ``POST /v1/feedback`` names.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ragtune.text import sentence_spans
from ragtune.types import Answer

__all__ = [
    "ChatCompletionRequest",
    "ChatMessage",
    "FeedbackRequest",
    "completion",
    "error_body",
    "final_chunk",
    "model_entry",
    "question_of",
    "role_chunk",
    "text_chunk",
    "text_pieces",
]


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text or "" for p in self.content if p.type == "text")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The fields ragtune reads; other OpenAI fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1, le=1, description="one answer per request")
    user: str | None = None

    @field_validator("model")
    @classmethod
    def _model_name(cls, value: str) -> str:
        if not re.fullmatch(
            r"[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*(@v[0-9]+)?)?", value
        ):
            raise ValueError("write the model as tenant or tenant/adapter or tenant/adapter@vN")
        return value

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class FeedbackRequest(BaseModel):
    """``POST /v1/feedback``: a rating of one answer, and what it should have said."""

    model_config = ConfigDict(extra="forbid")
    response_id: str = Field(min_length=1, max_length=200)
    """The ``id`` of the chat completion rated."""
    rating: Literal["up", "down"]
    correction: str | None = None
    """What the answer should have said (becomes the answer in ``ragtune feedback export``)."""


def question_of(request: ChatCompletionRequest) -> str:
    """The question: the last message, which must be the user's (raises ValueError)."""
    last = request.messages[-1]
    if last.role != "user":
        raise ValueError(f"the last message is the {last.role}'s: end the messages with the user's")
    text = last.text().strip()
    if not text:
        raise ValueError("the last user message has no text: ask something")
    return text


def _completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def citations(answer: Answer) -> list[dict[str, Any]]:
    """One entry per marker of each kept sentence."""
    entries = []
    for index, sentence in enumerate(answer.sentences):
        for citation in sentence.citations:
            passage = citation.passage
            entries.append(
                {
                    "marker": citation.number,
                    "sentence": index,
                    "passage_id": passage.chunk_id if passage else None,
                    "document_id": passage.doc_id if passage else None,
                    "source": citation.source,
                    "title": passage.title if passage else "",
                    "span": list(citation.span),
                    "quote": citation.quote,
                    "verdict": sentence.verdict,
                    "support": round(sentence.support, 4),
                    "attributed": citation.attributed,
                }
            )
    return entries


def ragtune_extension(answer: Answer, queue_seconds: float = 0.0) -> dict[str, Any]:
    timings = {k: round(v * 1000, 1) for k, v in vars(answer.timings).items()}
    timings["queue"] = round(queue_seconds * 1000, 1)
    return {
        "abstained": answer.abstained,
        "abstain_reason": answer.abstain_reason,
        "grounded": answer.grounded,
        "adapter": answer.adapter,
        "adapter_version": answer.adapter_version,
        "timings_ms": timings,
        "dropped": [
            {"sentence": v.sentence, "verdict": v.verdict, "support": round(v.support, 4)}
            for v in answer.dropped
        ],
        "flags": list(answer.flags),
        "citation_recall": answer.citation_recall,
        "citation_precision": answer.citation_precision,
        "canary": (
            None
            if answer.canary is None
            else {"arm": answer.canary.arm, "version": answer.canary.version}
        ),
        "passages": [
            {"passage_id": p.chunk_id, "source": p.source, "score": round(p.score, 4)}
            for p in answer.passages
        ],
    }


def _finish_reason(answer: Answer) -> str:
    return "length" if answer.finish_reason == "length" else "stop"


def _usage(answer: Answer) -> dict[str, int]:
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": answer.prompt_tokens + answer.output_tokens,
    }


def completion(answer: Answer, model: str, queue_seconds: float = 0.0) -> dict[str, Any]:
    """The non-streamed reply."""
    return {
        "id": answer.response_id or _completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text},
                "finish_reason": _finish_reason(answer),
            }
        ],
        "usage": _usage(answer),
        "citations": citations(answer),
        "ragtune": ragtune_extension(answer, queue_seconds),
    }


def _chunk(
    completion_id: str, model: str, delta: dict[str, Any], finish: str | None
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def role_chunk(completion_id: str, model: str) -> dict[str, Any]:
    return _chunk(completion_id, model, {"role": "assistant", "content": ""}, None)


def text_chunk(completion_id: str, model: str, text: str) -> dict[str, Any]:
    return _chunk(completion_id, model, {"content": text}, None)


def final_chunk(
    completion_id: str,
    model: str,
    answer: Answer,
    queue_seconds: float = 0.0,
    *,
    include_usage: bool = False,
) -> dict[str, Any]:
    """The last chunk: finish reason, citations and the ``ragtune`` object (and usage if asked)."""
    chunk = _chunk(completion_id, model, {}, _finish_reason(answer))
    chunk["citations"] = citations(answer)
    chunk["ragtune"] = ragtune_extension(answer, queue_seconds)
    if include_usage:
        chunk["usage"] = _usage(answer)
    return chunk


def text_pieces(text: str) -> list[str]:
    """The answer in sentence-sized pieces for streaming; joined they give ``text`` back.

    Sentences are the shared segmenter's (:func:`ragtune.text.sentence_spans`); each piece
    runs to the next sentence's start, so the spaces between stay in the text.
    """
    cuts = [start for start, _end in sentence_spans(text)][1:]
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    return [p for p in pieces if p] or ([text] if text else [])


def model_entry(model_id: str, created: float, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "created": int(created),
        "owned_by": model_id.split("/")[0],
        "ragtune": extra,
    }


def error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def new_completion_id() -> str:
    return _completion_id()
