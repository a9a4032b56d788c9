"""The Assistant: guard, retrieve, generate, check, decide, in one call.

::

    assistant = Assistant.from_config("configs/default.yaml")
    answer = assistant.ask("How many days do I have to return an item?", tenant="acme")
    answer.text, answer.grounded, [s.verdict for s in answer.sentences]

Per question: the input guard (length, denied topics); retrieval (restricted to the tenant);
abstention when the best passage scores below ``abstain.min_retrieval_score``; instruction-like
sentences cut out of passages (retrieved text is data); generation with the tenant's adapter;
the citation checker; the ``on_unsupported`` policy (abstain, flag or drop); personal data
redacted from the answer; one telemetry event. Each stage is chosen by the config.

When the adapter a request resolves to has a canary running (:mod:`ragtune.generate.canary`),
the request is pinned to the current or the canary version by the seeded split, sticky per
``user``. With a live store (``live.root``), every answer is recorded for the live metrics, the
canary is judged when a look is due, and :meth:`Assistant.feedback` takes ratings.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.errors import (
    AdapterError,
    AdapterMismatchError,
    AdapterNotFoundError,
    RagtuneError,
    RequestError,
)
from ragtune.policy import AssistantPolicy, resolve_adapter
from ragtune.types import (
    TENANT_DEFAULT,
    AdapterChoice,
    AdapterFolder,
    AdapterRef,
    AdapterRequest,
    Answer,
    CanaryArm,
    ClaimVerdict,
    NoAdapter,
    Passage,
    StageTimings,
    TenantDefault,
    new_response_id,
    parse_adapter_choice,
)

if TYPE_CHECKING:
    from ragtune.check import SupportCitationChecker
    from ragtune.check.support import Calibration
    from ragtune.config import RagtuneConfig
    from ragtune.generate import AdapterEntry, AdapterRegistry, Generator
    from ragtune.guard import InputGuard
    from ragtune.live.recorder import LiveRecorder
    from ragtune.live.store import FeedbackRecord
    from ragtune.retrieve.base import Retriever
    from ragtune.telemetry import Telemetry

__all__ = ["Assistant", "Decision", "Question", "decide"]


@dataclass(frozen=True)
class Question:
    """One question of :meth:`Assistant.answer_stream`, with its own tenant and adapter."""

    text: str
    tenant: str | None = None
    adapter: AdapterChoice | TenantDefault = TENANT_DEFAULT
    max_new_tokens: int | None = None
    """Fewer new tokens than the configured decoding allows; None: as configured."""
    user: str | None = None
    """The asking user's id (the OpenAI ``user`` field): keeps them on one side of a canary.
    None: an anonymous request, split on its own."""
    response_id: str = field(default_factory=new_response_id)
    """The answer's id, what feedback on it names."""


class Assistant:
    """See the module doc. Stages are ready objects; :meth:`from_config` builds them."""

    def __init__(
        self,
        retriever: Retriever,
        generator: Generator,
        checker: SupportCitationChecker | None,
        *,
        policy: AssistantPolicy,
        registry: AdapterRegistry | None = None,
        answerability: Calibration | None = None,
        input_guard: InputGuard | None = None,
        redact: Callable[[str], str] | None = None,
        telemetry: Telemetry | None = None,
        live: LiveRecorder | None = None,
        close: Callable[[], None] | None = None,
    ) -> None:
        self.retriever = retriever
        self.generator = generator
        self.checker = checker
        self.policy = policy
        self.registry = registry
        self.answerability = answerability
        """The calibrated answerability model (:mod:`ragtune.check.answerability`); with one,
        every request records the model's abstention probability and the assistant decides."""
        self.input_guard = input_guard
        self.redact = redact
        self.telemetry = telemetry
        self.live = live
        """Records answers (live metrics, canary looks) and feedback; None: neither."""
        self._close = close

    @classmethod
    def from_config(
        cls, config: str | Path | dict[str, Any] | RagtuneConfig, *, index: Path | None = None
    ) -> Assistant:
        """Build every stage from a config file, dict or loaded config (``index`` overrides its path).

        Each tenant's default adapter is loaded and checked here: an adapter that does not
        exist, is another tenant's, or is not of the configured ``type`` fails at start-up.
        """
        from ragtune.check import SupportChecker, SupportCitationChecker
        from ragtune.config import RagtuneConfig, load_config
        from ragtune.guard import InputGuard
        from ragtune.index.location import open_index
        from ragtune.ingest.pii import scrub
        from ragtune.live.recorder import LiveRecorder
        from ragtune.telemetry import Telemetry

        cfg = config if isinstance(config, RagtuneConfig) else load_config(config)
        location = cfg.index_location(index)
        store = open_index(location)
        try:
            embedder = cfg.embedder_for_index(location)
            retriever = cfg.retriever.build(store, embedder)
            generator = cfg.build_generator()
            checker = None
            if cfg.checker.type == "support":
                from ragtune.check import load_calibrations

                calibrations = (
                    load_calibrations(cfg.checker.calibration) if cfg.checker.calibration else None
                )
                scorer = SupportChecker(
                    calibrations=calibrations,
                    embedder=embedder if "similarity" in cfg.checker.signals else None,
                    evidence_model=generator if "evidence" in cfg.checker.signals else None,
                    support_model=cfg.build_support_model(),
                    min_support=cfg.checker.min_support,
                )
                checker = SupportCitationChecker(scorer, attribute=cfg.checker.attribute_uncited)
            topics = list(cfg.guard.denied_topics)
            guard = InputGuard(
                topics, embedder=embedder if any(t.description for t in topics) else None
            )
            registry = generator.registry  # one view of the pointers: the pool's
            redact = (lambda text: scrub(text).text) if cfg.guard.redact_pii else None
            telemetry = Telemetry(cfg.telemetry.events, spans=cfg.telemetry.spans)
            live = (
                LiveRecorder(
                    cfg.live_settings(), registry=registry, telemetry=telemetry, redact=redact
                )
                if cfg.live.root is not None
                else None
            )
            assistant = cls(
                retriever,
                generator,
                checker,
                policy=cfg.assistant_policy(),
                registry=registry,
                answerability=cfg.answerability_model(),
                input_guard=guard,
                redact=redact,
                telemetry=telemetry,
                live=live,
                close=store.close,
            )
            assistant._check_defaults(cfg.adapters.kinds())
        except BaseException:
            store.close()
            raise
        return assistant

    def _check_defaults(self, kinds: dict[AdapterChoice, str]) -> None:
        """Load every configured default adapter; refuse one of the wrong kind or tenant."""
        defaults = self.policy.adapters
        configured: list[tuple[str | None, AdapterChoice]] = [
            *defaults.per_tenant.items(),
            (None, defaults.without_tenant),
        ]
        for tenant, choice in configured:
            card = self.generator.load_adapter(choice)
            if card is None:
                continue
            where = f"adapters.defaults.{tenant}" if tenant else "adapters.without_tenant"
            if tenant is not None and card.tenant != tenant:
                raise AdapterMismatchError(
                    f"{where} is {choice}, an adapter of tenant {card.tenant!r}: a tenant's "
                    "default must be one of its own adapters"
                )
            wanted = kinds.get(choice)
            if wanted is not None and card.kind != wanted:
                raise AdapterMismatchError(
                    f"{where} says type {wanted!r} but {choice} is a {card.kind!r} adapter: "
                    "fix the type in the config"
                )

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None

    def __enter__(self) -> Assistant:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- asking ----------------------------------------------------------------------------------

    def ask(
        self,
        question: str,
        *,
        tenant: str | None = None,
        adapter: AdapterRequest = TENANT_DEFAULT,
        user: str | None = None,
    ) -> Answer:
        """Answer one question from the tenant's documents (see the module doc)."""
        return self.ask_many([question], tenant=tenant, adapter=adapter, user=user)[0]

    def ask_many(
        self,
        questions: Sequence[str],
        *,
        tenant: str | None = None,
        adapter: AdapterRequest = TENANT_DEFAULT,
        user: str | None = None,
    ) -> list[Answer]:
        """Answer many questions; generation runs in batches of the generator's batch size.

        ``adapter`` defaults to the tenant's default adapter (the base model when it has
        none). ``user`` keeps the user on one side of a running canary (None: each question
        is split on its own). Raises on the first question that is refused (empty, too long,
        an adapter that is not the tenant's), before any work is done.
        """
        for question in questions:
            self._check_request(question)
        requested = self._parse_adapter(adapter)
        answers: list[Answer | None] = [None] * len(questions)
        batch = [Question(q, tenant, requested, user=user) for q in questions]
        with self._one_view():  # the call reads each adapter pointer once (no yield inside)
            self.adapter_for(tenant, requested)
            for index, outcome in self.answer_stream(batch):
                if isinstance(outcome, BaseException):
                    raise outcome
                answers[index] = outcome
        return answers  # type: ignore[return-value]

    def _one_view(self) -> contextlib.AbstractContextManager[None]:
        """Each adapter pointer read once inside (see :meth:`AdapterRegistry.one_view`)."""
        if self.registry is None:
            return contextlib.nullcontext()
        return self.registry.one_view()

    def feedback(
        self,
        response_id: str,
        rating: str,
        *,
        tenant: str | None,
        correction: str | None = None,
    ) -> FeedbackRecord:
        """Keep a user's rating (``up`` or ``down``) of one of ``tenant``'s answers, with an
        optional correction (what the answer should have said).

        ``response_id`` is :attr:`Answer.response_id` (over HTTP, the completion's ``id``). An
        id that ``tenant`` never received is refused (:class:`~ragtune.errors.FeedbackError`),
        another tenant's alike. ``ragtune feedback export`` turns ratings into eval questions.
        """
        from ragtune.live.recorder import keep_feedback

        return keep_feedback(self.live, response_id, rating, tenant=tenant, correction=correction)

    def adapters(self, tenant: str) -> list[AdapterEntry]:
        """The adapters registered for ``tenant`` (for ``GET /v1/models``)."""
        return self.registry.list(tenant) if self.registry is not None else []

    def adapter_for(
        self, tenant: str | None, requested: AdapterChoice | TenantDefault
    ) -> AdapterChoice:
        """The concrete adapter a request of ``tenant`` uses, checked (its card is read; it is
        not loaded here).

        :data:`TENANT_DEFAULT` becomes the tenant's default adapter (the base model when it has
        none). An adapter of another tenant is refused with the very message of an adapter
        that does not exist (:class:`~ragtune.errors.AdapterNotFoundError`), so a request
        cannot tell another tenant's adapters exist. A request without a tenant may use any.
        """
        return resolve_adapter(self.policy.adapters, self.generator.adapter_card, tenant, requested)

    def answer_stream(
        self,
        questions: Sequence[Question],
        *,
        cancelled: Callable[[int], bool] | None = None,
    ) -> Iterator[tuple[int, Answer | RagtuneError]]:
        """Answer questions of any tenants and adapters together, yielding ``(i, answer)`` as
        each is done (questions that abstain before generation come first).

        Generation runs them in mixed-adapter batches of the generator's batch size. A question
        that is refused (empty, too long, an adapter that does not exist or is not its
        tenant's) yields ``(i, error)`` and the others go on. ``cancelled(i)`` is asked while
        generating: a question it says yes to stops early and yields nothing more. One
        telemetry event per answer.
        """
        from ragtune.generate import GenerationRequest

        pending: list[tuple[int, _Work, str | None, GenerationRequest]] = []
        for index, question in enumerate(questions):
            refused: RagtuneError | None = None
            with self._one_view():  # one state of the registry for the question's steps
                try:
                    self._check_request(question.text)
                    chosen = self.adapter_for(question.tenant, question.adapter)
                    adapter, arm = self._split(chosen, question)
                    adapter, arm = self._load(adapter, arm)  # a broken version: refused alone
                    settings = self._decode_settings(question.max_new_tokens)
                    item = _Work(
                        question.text,
                        time.perf_counter(),
                        response_id=question.response_id,
                        user=question.user,
                        adapter=adapter,
                        canary=arm,
                    )
                    self._guard_and_retrieve(item, question.tenant)
                except RagtuneError as exc:
                    refused = exc
            if refused is not None:  # yielded outside the view: a view never spans a yield
                yield index, refused
                continue
            if item.answer is not None:
                yield index, self._emit(item.answer, item)
            else:
                request = GenerationRequest(
                    item.question,
                    item.shown,
                    adapter,
                    settings,
                    scored_abstention=self.answerability is not None,
                )
                pending.append((index, item, question.tenant, request))
        size = self.generator.status().max_batch_size
        for lo in range(0, len(pending), size):
            chunk = pending[lo : lo + size]
            requests = [request for _i, _w, _t, request in chunk]
            stop = None if cancelled is None else (lambda j, c=chunk: cancelled(c[j][0]))
            started = time.perf_counter()
            with self._span("generate", batch=len(requests)):
                for j, event in self.generator.stream_many(requests, cancelled=stop):
                    if isinstance(event, str) or event.finish_reason == "cancelled":
                        continue
                    index, item, tenant, _request = chunk[j]
                    item.generation_seconds = time.perf_counter() - started
                    yield index, self._emit(self._finish(item, event, tenant), item)

    @staticmethod
    def _parse_adapter(adapter: AdapterRequest) -> AdapterChoice | TenantDefault:
        if isinstance(adapter, NoAdapter | AdapterRef | AdapterFolder | TenantDefault):
            return adapter
        if not isinstance(adapter, str):
            raise RequestError(
                f"adapter={adapter!r} is not an adapter choice: pass TENANT_DEFAULT (the "
                "tenant's default), 'none' (the base model), 'tenant/name[@vN]' or 'folder:PATH'"
            )
        try:
            return parse_adapter_choice(adapter)
        except ValueError as exc:
            raise AdapterNotFoundError(str(exc)) from None

    def _decode_settings(self, max_new_tokens: int | None) -> Any:
        configured = self.policy.decoding
        if max_new_tokens is None:
            return configured
        limit = configured.max_new_tokens
        if not 1 <= max_new_tokens <= limit:
            raise RequestError(
                f"max_new_tokens {max_new_tokens} is outside 1..{limit}: ask for fewer (or raise "
                "generator.max_new_tokens)"
            )
        return replace(configured, max_new_tokens=max_new_tokens)

    def _split(
        self, choice: AdapterChoice, question: Question
    ) -> tuple[AdapterChoice, CanaryArm | None]:
        """Pin an unversioned registered adapter with a running canary to the current or the
        canary version, by the seeded split (sticky per user); any other choice is as given."""
        if self.registry is None or not isinstance(choice, AdapterRef) or choice.version:
            return choice, None
        from ragtune.generate.canary import split, split_key

        pointer = self.registry.pointer(choice.tenant, choice.name)
        if pointer.canary is None or pointer.current is None:
            return choice, None
        key, sticky = split_key(question.user, question.response_id)
        return split(choice, pointer.current, pointer.canary, key, sticky=sticky)

    def _load(
        self, adapter: AdapterChoice, arm: CanaryArm | None
    ) -> tuple[AdapterChoice, CanaryArm | None]:
        """Load the request's adapter. A canary version that cannot serve on this base model
        ends its canary (said in the history) and the request goes to the current version."""
        try:
            self.generator.load_adapter(adapter)
            return adapter, arm
        except AdapterNotFoundError:
            raise
        except AdapterError as exc:
            if arm is None or arm.arm != "canary" or self.registry is None:
                raise
            import logging

            from ragtune.errors import CanaryError
            from ragtune.types import parse_adapter_ref

            ref = parse_adapter_ref(arm.adapter)
            with contextlib.suppress(CanaryError):  # ended already
                self.registry.end_canary(
                    ref,
                    reason=f"automatic rollback: v{arm.version} cannot be loaded ({exc})",
                    canary_id=arm.canary_id,
                )
            logging.getLogger(__name__).warning("canary %s ended: %s", adapter, exc)
            current = self.registry.current_version(ref.tenant, ref.name)
            fallback = AdapterRef(ref.tenant, ref.name, current)
            self.generator.load_adapter(fallback)
            return fallback, None

    def _emit(self, answer: Answer, item: _Work) -> Answer:
        if self.telemetry is not None:
            from ragtune.telemetry import answer_event

            self.telemetry.emit(answer_event(answer))
        if self.live is not None:
            from ragtune.errors import LiveStoreError

            try:
                self.live.record(answer, item.adapter, item.user)
            except (LiveStoreError, OSError) as exc:  # the answer stands; the record is lost
                import logging

                logging.getLogger(__name__).warning(
                    "answer %s not recorded in the live store: %s", answer.response_id, exc
                )
        return answer

    def _check_request(self, question: str) -> None:
        if not isinstance(question, str) or not question.strip():
            raise RequestError("the question is empty: ask something")
        limit = self.policy.guard.max_question_chars
        if len(question) > limit:
            raise RequestError(
                f"the question has {len(question)} characters, more than the limit of {limit}: "
                "shorten it (or raise guard.max_question_chars)"
            )

    def _guard_and_retrieve(self, item: _Work, tenant: str | None) -> None:
        started = time.perf_counter()
        if self.input_guard is not None:
            decision = self.input_guard.check(item.question)
            if not decision.allowed:
                item.guard_seconds = time.perf_counter() - started
                item.answer = self._abstain(item, f"denied topic: {decision.topic}", [], tenant)
                return
        item.guard_seconds = time.perf_counter() - started
        started = time.perf_counter()
        with self._span("retrieve", tenant=tenant):
            passages = self.retriever.retrieve(item.question, self.policy.top_k, tenant=tenant)
        item.retrieve_seconds = time.perf_counter() - started
        item.passages = passages
        if not passages or passages[0].score < self.policy.abstain.min_retrieval_score:
            item.answer = self._abstain(item, "weak retrieval", [], tenant)
            return
        shown = []
        for passage in passages:
            if self.policy.guard.strip_injections:
                from ragtune.guard import neutralise

                clean, removed = neutralise(passage.text)
                if removed:
                    item.flags.append(
                        f"instructions removed from passage {passage.chunk_id}: {len(removed)} sentence(s)"
                    )
                    if not clean.strip():
                        continue
                    passage = replace(passage, text=clean)
            shown.append(passage)
        item.shown = shown

    def _finish(self, item: _Work, generation: Any, tenant: str | None) -> Answer:
        from ragtune.generate import ABSTENTION, is_abstention

        cited = tuple(generation.passages)
        draft = generation.text
        if self.answerability is not None and generation.abstain_probability is not None:
            judged = self._answerable(item, draft, cited, generation.abstain_probability)
            if judged["probability"] < self._answerable_threshold():
                return self._answer(
                    item,
                    ABSTENTION,
                    (),
                    True,
                    "not answerable",
                    cited,
                    generation,
                    tenant,
                    draft=draft,
                )
        if is_abstention(draft) or not draft.strip():
            return self._answer(
                item,
                ABSTENTION,
                (),
                True,
                "model abstained",
                cited,
                generation,
                tenant,
                draft=draft,
            )
        started = time.perf_counter()
        verdicts: tuple[ClaimVerdict, ...] = ()
        recall = precision = 0.0
        if self.checker is not None:
            with self._span("check", tenant=tenant):
                result = self.checker.check_answer(draft, cited, item.question)
            verdicts, recall, precision = result.verdicts, result.alce.recall, result.alce.precision
            checked_text = result.text or draft
        else:
            checked_text = draft
        item.check_seconds = time.perf_counter() - started
        decision = decide(
            verdicts, checked_text, cited, self.policy, checked=self.checker is not None
        )
        text, verdicts, abstained, reason = (
            decision.text,
            decision.verdicts,
            decision.abstained,
            decision.reason,
        )
        item.flags.extend(decision.flags)
        if self.redact is not None and not abstained:
            redacted = self.redact(text)
            if redacted != text:
                item.flags.append("personal data redacted from the answer")
                text = redacted
        return self._answer(
            item,
            text,
            verdicts,
            abstained,
            reason,
            cited,
            generation,
            tenant,
            draft=draft,
            grounded=decision.grounded,
            recall=recall,
            precision=precision,
            dropped=decision.dropped,
        )

    def _answerable(
        self, item: _Work, draft: str, cited: Sequence[Passage], abstain_probability: float
    ) -> dict[str, float]:
        """The answerability signals of a draft and their calibrated probability (kept on the
        work item for the Answer)."""
        from ragtune.check.answerability import answer_signals

        assert self.answerability is not None
        signals = answer_signals(item.question, draft, [p.text for p in cited], abstain_probability)
        probability = self.answerability.probability(signals)
        item.answerability = {
            **signals,
            "abstain_probability": round(abstain_probability, 4),
            "probability": round(probability, 4),
        }
        return item.answerability

    def _answerable_threshold(self) -> float:
        assert self.answerability is not None
        override = self.policy.abstain.min_answerable
        return self.answerability.threshold if override is None else override

    def _abstain(
        self, item: _Work, reason: str, cited: list[Passage], tenant: str | None
    ) -> Answer:
        from ragtune.generate import ABSTENTION

        return self._answer(item, ABSTENTION, (), True, reason, tuple(cited), None, tenant)

    def _answer(
        self,
        item: _Work,
        text: str,
        verdicts: tuple[ClaimVerdict, ...],
        abstained: bool,
        reason: str | None,
        cited: tuple[Passage, ...],
        generation: Any,
        tenant: str | None,
        *,
        draft: str = "",
        grounded: bool = False,
        recall: float = 0.0,
        precision: float = 0.0,
        dropped: tuple[ClaimVerdict, ...] = (),
    ) -> Answer:
        timings = StageTimings(
            guard=item.guard_seconds,
            retrieve=item.retrieve_seconds,
            generate=item.generation_seconds,
            prefill=generation.prefill_seconds if generation else 0.0,
            decode=generation.decode_seconds if generation else 0.0,
            check=item.check_seconds,
            total=time.perf_counter() - item.started,
        )
        return Answer(
            question=item.question,
            text=text,
            sentences=verdicts,
            grounded=grounded,
            abstained=abstained,
            abstain_reason=reason,
            passages=tuple(item.passages),
            cited=cited,
            timings=timings,
            tenant=tenant,
            adapter=generation.adapter if generation else None,
            adapter_version=generation.adapter_version if generation else None,
            citation_recall=round(recall, 4),
            citation_precision=round(precision, 4),
            flags=tuple(item.flags),
            draft=draft,
            dropped=dropped,
            prompt_tokens=generation.prompt_tokens if generation else 0,
            output_tokens=generation.output_tokens if generation else 0,
            finish_reason=generation.finish_reason if generation else "",
            answerability=dict(item.answerability),
            response_id=item.response_id,
            canary=item.canary,
        )

    def _span(self, name: str, **attributes: Any) -> Any:
        import contextlib

        return (
            self.telemetry.span(name, **attributes) if self.telemetry else contextlib.nullcontext()
        )


@dataclass
class _Work:
    """One question on its way through the stages."""

    question: str
    started: float
    response_id: str = ""
    user: str | None = None
    adapter: AdapterChoice = field(default_factory=NoAdapter)
    """The concrete adapter the request was sent to (pinned when a canary split it)."""
    canary: CanaryArm | None = None
    passages: list[Passage] = field(default_factory=list)
    shown: list[Passage] = field(default_factory=list)
    answer: Answer | None = None
    guard_seconds: float = 0.0
    retrieve_seconds: float = 0.0
    generation_seconds: float = 0.0
    check_seconds: float = 0.0
    flags: list[str] = field(default_factory=list)
    answerability: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """What the answer becomes after the checker: see :func:`decide`."""

    text: str
    verdicts: tuple[ClaimVerdict, ...]
    abstained: bool
    reason: str | None
    grounded: bool
    flags: tuple[str, ...] = ()
    dropped: tuple[ClaimVerdict, ...] = ()
    """The sentences ``drop`` removed, also when none was left and the assistant abstains
    (their verdicts then stay in ``verdicts`` as well)."""


def decide(
    verdicts: Sequence[ClaimVerdict],
    draft: str,
    cited: Sequence[Passage],
    policy: AssistantPolicy,
    *,
    checked: bool = True,
) -> Decision:
    """Apply ``policy.on_unsupported`` to a checked draft. Pure.

    A sentence counts when it has a citation, or always under ``must_cite``. With a failing
    counted sentence: ``abstain`` answers with the abstention sentence and lists the passages
    found; ``flag`` keeps the text (not grounded); ``drop`` removes the failing sentences (and
    abstains when none is left). Grounded means at least one counted sentence and none failing.
    """
    verdicts = tuple(verdicts)
    if not checked:
        return Decision(draft, verdicts, False, None, False)
    counted = [v for v in verdicts if policy.guard.must_cite or v.verdict != "no citation"]
    failing = [v for v in counted if not v.supported]
    if not failing:
        return Decision(draft, verdicts, False, None, bool(counted))
    if policy.answer.on_unsupported == "abstain":
        return Decision(_abstention_with_sources(cited), verdicts, True, "unsupported", False)
    if policy.answer.on_unsupported == "drop":
        kept = tuple(v for v in verdicts if v not in failing)
        flag = (f"dropped {len(failing)} unsupported sentence(s)",)
        if not any(v in counted for v in kept):
            return Decision(
                _abstention_with_sources(cited),
                verdicts,
                True,
                "unsupported",
                False,
                flag,
                tuple(failing),
            )
        return Decision(
            " ".join(v.sentence for v in kept), kept, False, None, True, flag, tuple(failing)
        )
    return Decision(
        draft, verdicts, False, None, False, (f"{len(failing)} unsupported sentence(s) kept",)
    )


def _abstention_with_sources(cited: Sequence[Passage]) -> str:
    """The abstention sentence and a list of what was found, so the user can read it."""
    from ragtune.generate import ABSTENTION

    if not cited:
        return ABSTENTION
    found = "; ".join(f"[{i}] {p.title or p.source} ({p.source})" for i, p in enumerate(cited, 1))
    return f"{ABSTENTION} Closest passages: {found}."
