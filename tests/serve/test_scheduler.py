"""The queue in front of the model, with a small deterministic answerer in place of the model:
batching, a full queue, a failing batch that does not stop the worker, shutting down."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Sequence

import pytest

from ragtune.assistant import Question
from ragtune.errors import RagtuneError
from ragtune.serve.scheduler import QueueFullError, Scheduler
from ragtune.types import Answer, StageTimings


def _answer(text: str) -> Answer:
    return Answer(text, f"echo: {text}", (), False, False, None, (), (), StageTimings())


class Echo:
    """Answers every question with its own text; "boom" fails the whole batch (a bug); while
    ``gate`` is clear the worker is busy."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.batches: list[list[str]] = []

    def answer_stream(
        self, questions: Sequence[Question], *, cancelled: Callable[[int], bool] | None = None
    ) -> Iterator[tuple[int, Answer | RagtuneError]]:
        self.gate.wait(10)
        self.batches.append([q.text for q in questions])
        if any(q.text == "boom" for q in questions):
            raise RuntimeError("a bug in the model code")
        for i, question in enumerate(questions):
            if cancelled is None or not cancelled(i):
                yield i, _answer(question.text)


def _run(scheduler: Scheduler, texts: Sequence[str]) -> list[Answer | BaseException]:
    async def ask() -> list[Answer | BaseException]:
        tickets = [scheduler.submit(Question(t)) for t in texts]
        return list(await asyncio.gather(*(t.future for t in tickets)))

    return asyncio.run(ask())


def test_waiting_questions_are_answered_together_in_batches_of_at_most_max_batch() -> None:
    echo = Echo()
    scheduler = Scheduler(echo, max_queue=10, max_batch=3, batch_wait=0.2)
    scheduler.start()
    try:
        answers = _run(scheduler, [f"q{i}" for i in range(5)])
    finally:
        scheduler.stop()
    assert [a.text for a in answers if isinstance(a, Answer)] == [f"echo: q{i}" for i in range(5)]
    assert echo.batches == [["q0", "q1", "q2"], ["q3", "q4"]]


def test_a_full_queue_refuses_at_once_with_a_retry_estimate() -> None:
    echo = Echo()
    echo.gate.clear()  # the model is busy
    scheduler = Scheduler(echo, max_queue=2, max_batch=1, batch_wait=0.0)
    scheduler.start()

    async def burst() -> tuple[list[object], list[Answer | BaseException]]:
        first = scheduler.submit(Question("first"))  # taken by the worker, which then blocks
        while scheduler.depth:
            await asyncio.sleep(0.01)
        waiting = [scheduler.submit(Question(f"w{i}")) for i in range(2)]
        refused: list[object] = []
        with pytest.raises(QueueFullError) as caught:
            scheduler.submit(Question("one too many"))
        refused.append(caught.value.retry_after)
        echo.gate.set()
        return refused, list(await asyncio.gather(first.future, *(t.future for t in waiting)))

    try:
        refused, answers = asyncio.run(burst())
    finally:
        scheduler.stop()
    assert refused == [1] and [a.text for a in answers if isinstance(a, Answer)] == [
        "echo: first",
        "echo: w0",
        "echo: w1",
    ]


def test_a_failing_batch_fails_its_questions_and_the_worker_goes_on() -> None:
    echo = Echo()
    scheduler = Scheduler(echo, max_queue=10, max_batch=2, batch_wait=0.2)
    scheduler.start()
    try:
        failed = _run(scheduler, ["fine", "boom"])
        after = _run(scheduler, ["later"])
    finally:
        scheduler.stop()
    assert all(isinstance(f, RuntimeError) for f in failed)
    assert isinstance(after[0], Answer) and after[0].text == "echo: later"


def test_stopping_fails_what_waits_and_refuses_new_questions() -> None:
    echo = Echo()
    echo.gate.clear()
    scheduler = Scheduler(echo, max_queue=5, max_batch=1, batch_wait=0.0)
    scheduler.start()

    async def scenario() -> list[Answer | BaseException]:
        first = scheduler.submit(Question("first"))
        while scheduler.depth:
            await asyncio.sleep(0.01)
        waiting = scheduler.submit(Question("waiting"))
        stopping = asyncio.get_running_loop().run_in_executor(None, scheduler.stop)
        await asyncio.sleep(0.1)
        with pytest.raises(RagtuneError, match="shutting down"):
            scheduler.submit(Question("too late"))
        echo.gate.set()  # the batch in progress finishes
        await stopping
        return list(await asyncio.gather(first.future, waiting.future))

    first, waiting = asyncio.run(scenario())
    assert isinstance(first, Answer) and first.text == "echo: first"
    assert isinstance(waiting, RagtuneError) and "shutting down" in str(waiting)
