"""What the Assistant calls after each answer (record it; judge a canary when a look is due)
and when a user rates an answer.

Each answer goes to its tenant's store with its numbers (:mod:`ragtune.live.metrics`), its
version and canary arm, the hashed split key, and its question and text (the question with
personal data scrubbed when the assistant redacts answers), which feedback export needs.
Telemetry gets a ``feedback`` event per rating and a ``canary_look`` event per look: numbers and
ids, never the question, the answer or the correction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ragtune.errors import FeedbackError
from ragtune.eval.records import passage_key
from ragtune.generate.canary import split_key
from ragtune.live.canary import decision_event, judge
from ragtune.live.metrics import observe
from ragtune.live.settings import LiveSettings
from ragtune.live.stats import CanaryDecision
from ragtune.live.store import AnswerRecord, FeedbackRecord, LiveStore, Rating
from ragtune.types import AdapterChoice, AdapterRef, Answer, NoAdapter

if TYPE_CHECKING:
    from ragtune.generate.registry import AdapterRegistry
    from ragtune.telemetry import Telemetry

__all__ = ["LiveRecorder", "keep_feedback", "parse_rating"]

log = logging.getLogger(__name__)

_PRUNE_EVERY_S = 3600.0


def parse_rating(value: object) -> Rating:
    """``up`` or ``down`` (:class:`FeedbackError` otherwise)."""
    if value == "up" or value == "down":
        return value
    raise FeedbackError(f"rating {value!r} is not a rating: send 'up' or 'down'")


def keep_feedback(
    live: LiveRecorder | None,
    response_id: str,
    rating: str,
    *,
    tenant: str | None,
    correction: str | None = None,
) -> FeedbackRecord:
    """Keep a user's rating of one of ``tenant``'s answers in ``live`` (see
    :meth:`ragtune.Assistant.feedback`); None: feedback is not kept, a
    :class:`~ragtune.errors.FeedbackError` that says how to turn it on."""
    from ragtune.errors import FeedbackError

    if live is None:
        raise FeedbackError(
            "feedback is not kept: set live.root in the config (the folder of the "
            "per-tenant live stores)"
        )
    return live.feedback(tenant, response_id, parse_rating(rating), correction)


class LiveRecorder:
    """Records answers and feedback in per-tenant stores under ``settings.root``."""

    def __init__(
        self,
        settings: LiveSettings,
        *,
        registry: AdapterRegistry | None,
        telemetry: Telemetry | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        if settings.root is None:
            raise ValueError("LiveRecorder needs settings.root: the folder of the live stores")
        self.settings = settings
        self.root = settings.root
        self.registry = registry
        self.telemetry = telemetry
        self.redact = redact
        self._stores: dict[str | None, LiveStore] = {}
        self._pruned: dict[str | None, float] = {}
        self._lock = threading.Lock()

    def store(self, tenant: str | None) -> LiveStore:
        """``tenant``'s store (one object per tenant, made on first use)."""
        with self._lock:
            if tenant not in self._stores:
                self._stores[tenant] = LiveStore(self.root, tenant)
            return self._stores[tenant]

    def record(
        self, answer: Answer, adapter: AdapterChoice, user: str | None
    ) -> CanaryDecision | None:
        """Keep ``answer`` (served by ``adapter``, for ``user``); return the canary decision
        this answer brought about, if a look was due."""
        store = self.store(answer.tenant)
        name, version = _label(adapter, answer)
        arm = answer.canary
        question = self.redact(answer.question) if self.redact is not None else answer.question
        store.record(
            AnswerRecord(
                response_id=answer.response_id,
                adapter=name,
                version=version,
                unit=arm.key if arm is not None else split_key(user, answer.response_id)[0],
                question=question,
                answer=answer.text,
                observation=observe(answer),
                canary_id=arm.canary_id if arm is not None else None,
                arm=arm.arm if arm is not None else None,
                documents=_cited_documents(answer),
            )
        )
        self._prune(answer.tenant, store)
        if arm is None or arm.arm != "canary" or self.registry is None:
            return None
        decision = judge(self.registry, store, arm)
        if decision is not None and self.telemetry is not None:
            self.telemetry.emit(decision_event(answer.tenant, arm.canary_id, decision))
        return decision

    def feedback(
        self, tenant: str | None, response_id: str, rating: Rating, correction: str | None
    ) -> FeedbackRecord:
        """Keep a rating (and correction) of one of ``tenant``'s answers.

        Raises :class:`FeedbackError` for an empty or unknown response id (another tenant's is
        unknown here), a rating other than up or down, or a correction over the limit.
        """
        if not isinstance(response_id, str) or not response_id.strip():
            raise FeedbackError(
                "the feedback names no answer: give response_id, the `id` of the chat "
                "completion (Answer.response_id in Python)"
            )
        rating = parse_rating(rating)
        if correction is not None:
            correction = correction.strip() or None
        limit = self.settings.max_correction_chars
        if correction is not None and len(correction) > limit:
            raise FeedbackError(
                f"the correction has {len(correction)} characters, more than the limit of "
                f"{limit}: shorten it (or raise live.max_correction_chars)"
            )
        record = self.store(tenant).rate(response_id.strip(), rating, correction)
        if self.telemetry is not None:
            self.telemetry.emit(
                {
                    "event": "feedback",
                    "time": time.time(),
                    "tenant": tenant,
                    "response_id": record.response_id,
                    "rating": record.rating,
                    "corrected": record.correction is not None,
                    "adapter": record.adapter,
                    "adapter_version": record.version,
                    "canary_id": record.canary_id,
                    "arm": record.arm,
                }
            )
        return record

    def _prune(self, tenant: str | None, store: LiveStore) -> None:
        now = time.monotonic()
        if now - self._pruned.get(tenant, -_PRUNE_EVERY_S) < _PRUNE_EVERY_S:
            return
        self._pruned[tenant] = now
        removed = store.prune(self.settings.keep_days)
        if removed:
            log.info("removed %d answers older than %g days", removed, self.settings.keep_days)


def _label(adapter: AdapterChoice, answer: Answer) -> tuple[str, int | None]:
    """The adapter column and version of an answer: the routed choice (a request that abstained
    before generation still counts for the version it was sent to)."""
    if isinstance(adapter, NoAdapter):
        return "none", None
    if isinstance(adapter, AdapterRef):
        return f"{adapter.tenant}/{adapter.name}", adapter.version or answer.adapter_version
    return str(adapter), answer.adapter_version


def _cited_documents(answer: Answer) -> tuple[str, ...]:
    """The documents the answer's sentences cite, in the order first cited."""
    cited = (c.passage for s in answer.sentences for c in s.citations if c.passage is not None)
    return tuple(dict.fromkeys(passage_key(p) for p in cited))
