"""The domain-language objective: next-token prediction on a tenant's chunks through the adapter
(continued pre-training), alone (``train.data.objective: lm``) or beside the grounded
examples (``mixed``).

Each chunk is one example: its title and text as plain tokens (no chat template, no prompt),
every token after the first a target, cut to ``max_length`` tokens. In ``mixed`` runs a chunk
token weighs ``lm_weight`` of an answer token in the loss (:class:`~ragtune.train.loop.Encoded`
``weight``). Chunks are split into training and validation by the same document hash as the
questions (:func:`~ragtune.train.data.held_documents`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ragtune.train.loop import Encoded

__all__ = ["TextExample", "encode_text", "texts_sha256"]


@dataclass(frozen=True)
class TextExample:
    """One chunk to learn the language of."""

    text: str
    """The chunk's title (when it has one) and text."""
    document: str
    """The document the chunk belongs to (the unit of the train/validation split)."""


def encode_text(
    tokenizer: Any, example: TextExample, *, max_length: int, weight: float = 1.0
) -> Encoded | None:
    """The example as an :class:`~ragtune.train.loop.Encoded` (cut to ``max_length`` tokens,
    every token but the first a target, weighing ``weight``); None when it has fewer than two
    tokens."""
    ids = [int(t) for t in tokenizer(example.text, add_special_tokens=False)["input_ids"]]
    ids = ids[:max_length]
    if len(ids) < 2:
        return None
    return Encoded(tuple(ids), (-100, *ids[1:]), weight)


def texts_sha256(texts: Sequence[TextExample]) -> str:
    """A hash of the chunks' content, combined into the card's ``training_data_sha256``."""
    digest = hashlib.sha256()
    for t in texts:
        digest.update(json.dumps([t.text, t.document], ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()
