"""The ``local`` teacher: the configured base model writes the questions on this machine;
nothing leaves it. It writes with the bare base model: the grounding adapter teaches answering
from passages and abstaining, and with it merged the embedded SmolLM2 replied "I don't know" to
six question-writing prompts of six (the run loads the bare base beside the grounded one, which
still answers the filter's questions).

It asks through ragtune's own generator, with a ready prompt: the model's chat template over
:func:`~ragtune.synth.teacher.question_messages` (the worked examples left out when they would
not fit the model's context window), greedy, batched ``max_batch_size`` at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ragtune.generate.decoding import DecodeSettings
from ragtune.generate.prompts import render_chat
from ragtune.generate.protocol import GenerationRequest
from ragtune.synth.teacher import QuestionRequest, question_messages
from ragtune.types import NO_ADAPTER

__all__ = ["LocalTeacher"]


class LocalTeacher:
    """Questions from a local generator.

    ``generator`` has ``generate_many`` and ``context_window`` (an
    :class:`~ragtune.generate.HFGenerator`); ``tokenizer`` is its model's (for the chat
    template); ``model`` names it in the report.
    """

    def __init__(
        self, generator: Any, tokenizer: Any, *, model: str, decoding: DecodeSettings
    ) -> None:
        self._generator = generator
        self._tokenizer = tokenizer
        self._model = model
        # Greedy: one question per answer, the same on a rerun.
        self._decoding = replace(decoding, temperature=0.0)

    @property
    def name(self) -> str:
        return f"local:{self._model}"

    def write(self, requests: Sequence[QuestionRequest]) -> list[str]:
        asks = [
            GenerationRequest(
                r.sentence, (), NO_ADAPTER, self._decoding, prompt_ids=self._prompt_ids(r)
            )
            for r in requests
        ]
        return [g.text for g in self._generator.generate_many(asks)]

    def _prompt_ids(self, request: QuestionRequest) -> tuple[int, ...]:
        room = int(self._generator.context_window) - self._decoding.max_new_tokens
        ids = render_chat(self._tokenizer, question_messages(request))
        if len(ids) > room:  # a small context window: the instruction alone must do
            ids = render_chat(self._tokenizer, question_messages(request, examples=False))
        return tuple(ids)
