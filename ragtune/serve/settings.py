"""The settings of ``ragtune serve`` (the ``serve:`` section of a config, keys aside)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from annotated_types import Ge, Gt, Le

from ragtune.settings import check_bounds

__all__ = ["ServeSettings"]


@dataclass(frozen=True)
class ServeSettings:
    """Where the server listens and the limits it holds requests to."""

    host: str = "127.0.0.1"
    port: Annotated[int, Ge(0), Le(65535)] = 8000
    max_queue: Annotated[int, Ge(1), Le(100_000)] = 32
    """Requests waiting for the model; beyond it, 429 with Retry-After."""
    batch_wait_ms: Annotated[float, Ge(0.0), Le(1000.0)] = 10.0
    """How long a batch waits to fill once one request waits."""
    max_body_bytes: Annotated[int, Ge(1024)] = 65_536
    """Larger request bodies get 413."""
    max_messages: Annotated[int, Ge(1), Le(10_000)] = 64
    max_tokens: Annotated[int, Ge(1)] | None = None
    """Cap on a request's max_tokens; None: the generator's max_new_tokens."""
    request_timeout_s: Annotated[float, Gt(0.0)] = 300.0
    """A request not answered by then gets 504 and is cancelled."""

    def __post_init__(self) -> None:
        check_bounds(self)
