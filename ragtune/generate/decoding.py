"""Decoding, free of any model: choosing a token from logits, stop text, one step over rows.

Everything here works on logits tensors and token ids, so it is tested on random logits
without a model (``tests/generate/test_decoding.py``). The generator owns the forward passes
and calls :func:`decode_step` once per step.

Shapes: ``logits`` of one row is ``(vocab,)``; of a batch ``(rows, vocab)``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from annotated_types import Ge, Gt, Le, MaxLen

from ragtune.settings import check_bounds

if TYPE_CHECKING:
    import torch

__all__ = [
    "DecodeSettings",
    "RowState",
    "choose_token",
    "cut_at_stop",
    "decode_step",
    "final_length",
]


@dataclass(frozen=True)
class DecodeSettings:
    """How to decode. ``temperature`` 0 is greedy; above 0 samples with nucleus ``top_p``."""

    max_new_tokens: Annotated[int, Ge(1), Le(4096)] = 96
    """The answer's length limit, in tokens."""
    min_new_tokens: Annotated[int, Ge(0)] = 0
    """End-of-sequence is suppressed until this many tokens (benchmarks use it for fixed lengths)."""
    temperature: Annotated[float, Ge(0.0), Le(5.0)] = 0.0
    """0: greedy."""
    top_p: Annotated[float, Gt(0.0), Le(1.0)] = 1.0
    seed: int = 0
    """Seeds each sampled request's own generator, so the same request samples the same answer."""
    stop: Annotated[tuple[str, ...], MaxLen(16)] = ()
    """Strings that end the answer; the first one found and everything after it are removed."""

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError(
                f"min_new_tokens ({self.min_new_tokens}) cannot exceed max_new_tokens "
                f"({self.max_new_tokens})"
            )
        if any(not s for s in self.stop):
            raise ValueError("stop sequences must be non-empty strings")


def choose_token(
    logits: torch.Tensor,
    settings: DecodeSettings,
    *,
    banned: Collection[int] = (),
    rng: Any = None,
) -> int:
    """The next token from one row's ``(vocab,)`` logits: greedy at temperature 0, else a
    nucleus sample (the smallest set of tokens whose probability reaches ``top_p``) drawn with
    ``rng`` (a ``torch.Generator``). ``banned`` tokens are never chosen."""
    import torch

    if banned:
        logits = logits.clone()
        logits[list(banned)] = float("-inf")
    if settings.temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / settings.temperature, dim=-1)
    if settings.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        cumulative = torch.cumsum(sorted_probs, dim=-1)
        sorted_probs[cumulative - sorted_probs > settings.top_p] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=rng))


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the first stop string (whichever comes first in it), and whether one was
    found.

    >>> cut_at_stop("Two years.\\nQuestion: why?", ["\\nQuestion:"])
    ('Two years.', True)
    """
    found = [at for at in (text.find(s) for s in stops) if at >= 0]
    if not found:
        return text, False
    return text[: min(found)], True


def final_length(text: str, stops: Sequence[str], *, finished: bool) -> int:
    """How much of ``text`` can be shown now: all of it once finished; before that, not an
    incomplete multi-byte character (U+FFFD at the end) nor a tail that may be the start of a
    stop string.

    >>> final_length("It lasts two years.\\nQu", ["\\nQuestion:"], finished=False)
    19
    """
    if finished:
        return len(text)
    final = len(text.rstrip("\ufffd"))
    for stop in stops:
        for n in range(min(len(stop) - 1, final), 0, -1):
            if text[:final].endswith(stop[:n]):
                final -= n
                break
    return final


@dataclass
class RowState:
    """One request's progress through decoding."""

    settings: DecodeSettings
    banned_first: frozenset[int] = frozenset()
    """Tokens never chosen as the first one (the abstention's first token, when the caller
    decides abstention itself)."""
    rng: Any = None
    generated: list[int] = field(default_factory=list)
    text: str = ""
    emitted: int = 0
    finish: str = ""
    """Empty while decoding; then ``eos``, ``length``, ``stop`` or ``cancelled``."""


def decode_step(
    rows: Sequence[RowState],
    logits: torch.Tensor,
    *,
    eos: Collection[int],
    detokenize: Callable[[list[int]], str],
    cancelled: Callable[[int], bool] | None = None,
) -> list[tuple[int, str]]:
    """Advance every unfinished row by one token chosen from its row of ``(rows, vocab)``
    ``logits``; return ``(token, new final text)`` per row (token 0 for a row that finished
    now without one: cancelled).

    A row ends on an end-of-sequence token (after ``min_new_tokens``), at ``max_new_tokens``,
    at a stop string (cut off with what follows), or when ``cancelled(i)`` says so.
    """
    out: list[tuple[int, str]] = []
    for i, (row, row_logits) in enumerate(zip(rows, logits, strict=True)):
        if row.finish:
            out.append((0, ""))
            continue
        if cancelled is not None and cancelled(i):
            row.finish = "cancelled"
            out.append((0, ""))
            continue
        banned = set(row.banned_first) if not row.generated else set()
        if len(row.generated) < row.settings.min_new_tokens:
            banned |= set(eos)
        token = choose_token(row_logits, row.settings, banned=banned, rng=row.rng)
        if token in eos:
            row.finish = "eos"
        else:
            row.generated.append(token)
            if len(row.generated) >= row.settings.max_new_tokens:
                row.finish = "length"
        text, stopped = cut_at_stop(detokenize(row.generated), row.settings.stop)
        if stopped:
            row.finish = "stop"
        row.text = text
        final = max(final_length(text, row.settings.stop, finished=bool(row.finish)), row.emitted)
        out.append((token, text[row.emitted : final]))
        row.emitted = final
    return out
