"""The queue in front of the one base model: requests from many clients become mixed-adapter
batches, and a full queue refuses at once instead of letting clients hang.

One worker thread owns the model. It takes up to ``max_batch`` waiting requests (after waiting
``batch_wait`` seconds for a batch to fill once the first one arrives), answers them together
through :meth:`~ragtune.assistant.Assistant.answer_stream`, and hands each answer to the
asyncio future of its request as soon as that one is done. A request whose client went away is
marked cancelled: if it is still waiting it is skipped, if it is being generated the decoder
drops its row at the next step. An unexpected error fails the requests of that batch, not the
server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ragtune.errors import RagtuneError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from ragtune.assistant import Question
    from ragtune.types import Answer


class Answerer(Protocol):
    """What the scheduler needs: :meth:`ragtune.Assistant.answer_stream`."""

    def answer_stream(
        self, questions: Sequence[Question], *, cancelled: Callable[[int], bool] | None = None
    ) -> Iterator[tuple[int, Answer | RagtuneError]]: ...


__all__ = ["Answerer", "QueueFullError", "Scheduler", "Ticket"]

log = logging.getLogger(__name__)


class QueueFullError(RagtuneError):
    """The queue holds ``max_queue`` requests; ``retry_after`` estimates when there is room."""

    def __init__(self, depth: int, retry_after: int) -> None:
        super().__init__(
            f"the server is busy ({depth} requests are waiting): retry in {retry_after} s"
        )
        self.retry_after = retry_after


@dataclass
class Ticket:
    """One request in the queue."""

    question: Question
    future: asyncio.Future[Answer | BaseException]
    loop: asyncio.AbstractEventLoop
    enqueued_at: float = field(default_factory=time.perf_counter)
    started_at: float = 0.0
    cancelled: bool = False

    @property
    def queue_seconds(self) -> float:
        return max((self.started_at or time.perf_counter()) - self.enqueued_at, 0.0)

    def deliver(self, outcome: Answer | BaseException) -> None:
        def settle() -> None:
            if not self.future.done():
                self.future.set_result(outcome)

        with contextlib.suppress(RuntimeError):  # a closed event loop: nobody waits any more
            self.loop.call_soon_threadsafe(settle)


class Scheduler:
    def __init__(
        self,
        assistant: Answerer,
        *,
        max_queue: int,
        max_batch: int,
        batch_wait: float = 0.01,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self.assistant = assistant
        self.max_queue = max_queue
        self.max_batch = max(1, max_batch)
        self.batch_wait = batch_wait
        self.on_batch = on_batch
        self._waiting: deque[Ticket] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._batch_seconds = 0.0  # moving average, for Retry-After
        self._thread = threading.Thread(target=self._run, name="ragtune-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Refuse new work, fail what waits, and let the batch being generated finish."""
        with self._cond:
            self._stopping = True
            waiting, self._waiting = list(self._waiting), deque()
            self._cond.notify_all()
        for ticket in waiting:
            ticket.deliver(RagtuneError("the server is shutting down: retry elsewhere"))
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def depth(self) -> int:
        return len(self._waiting)

    def retry_after(self) -> int:
        batches = self.depth / self.max_batch + 1
        return max(1, math.ceil(self._batch_seconds * batches))

    def submit(self, question: Question) -> Ticket:
        """Queue ``question`` (from a coroutine); raises :class:`QueueFullError` when full."""
        loop = asyncio.get_running_loop()
        ticket = Ticket(question, loop.create_future(), loop)
        with self._cond:
            if self._stopping:
                raise RagtuneError("the server is shutting down: retry elsewhere")
            if len(self._waiting) >= self.max_queue:
                raise QueueFullError(len(self._waiting), self.retry_after())
            self._waiting.append(ticket)
            self._cond.notify()
        return ticket

    def _take(self) -> list[Ticket]:
        with self._cond:
            while not self._waiting and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return []
            deadline = time.monotonic() + self.batch_wait
            while len(self._waiting) < self.max_batch and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch: list[Ticket] = []
            while self._waiting and len(batch) < self.max_batch:
                ticket = self._waiting.popleft()
                if not ticket.cancelled:
                    batch.append(ticket)
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                if self._stopping:
                    return
                continue
            started = time.perf_counter()
            for ticket in batch:
                ticket.started_at = started
            self._answer(batch)
            seconds = time.perf_counter() - started
            self._batch_seconds = (
                seconds if not self._batch_seconds else (0.8 * self._batch_seconds + 0.2 * seconds)
            )
            if self.on_batch is not None:
                self.on_batch(len(batch), seconds)

    def _answer(self, batch: list[Ticket]) -> None:
        done: set[int] = set()
        try:
            stream = self.assistant.answer_stream(
                [t.question for t in batch], cancelled=lambda i: batch[i].cancelled
            )
            for index, outcome in stream:
                done.add(index)
                batch[index].deliver(outcome)
        except Exception as exc:  # a bug or a broken adapter must not take the server down
            log.exception("a batch of %d failed", len(batch))
            for index, ticket in enumerate(batch):
                if index not in done:
                    ticket.deliver(exc)
            return
        for index, ticket in enumerate(batch):
            if index not in done:  # cancelled while generating
                ticket.deliver(asyncio.CancelledError())
