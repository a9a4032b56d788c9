"""The generator: one base model in memory, many adapters, one adapter chosen per request.

:class:`HFGenerator` owns a transformers causal LM and its own decode loop (greedy or sampling,
stop sequences, streaming, prefill and decode timers). Requests in one batch may each use a
different adapter of any kind: prefix key/values and soft prompts are injected per row by
:mod:`ragtune.generate.batching`, LoRA rows are routed by PEFT's ``adapter_names``.

Adapters are named by registry reference (``acme/support`` means its current version, and the
pointer is re-read on every request, so a promotion is picked up by the next request) or loaded
from a folder. Loaded adapters stay in memory (least recently used beyond ``max_loaded`` are
dropped). A version that cannot be loaded is refused with an :class:`~ragtune.errors.AdapterError`;
when it was promoted under a running generator, the version that was serving keeps serving.

Example::

    generator = HFGenerator(load_base_model(), registry=AdapterRegistry("adapters"))
    generation = generator.generate("How long is the warranty?", passages, adapter="acme/support")
    generation.text, generation.adapter_version, generation.tokens_per_second
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.errors import AdapterError, AdapterNotFoundError, GenerationError
from ragtune.generate.adapters import (
    AdapterCard,
    AdapterKind,
    StoredAdapter,
    check_compatible,
    model_shape,
    prefix_kv,
    read_adapter,
)
from ragtune.generate.batching import BASE_ADAPTER, Row, make_batch, select_rows, step_inputs
from ragtune.generate.prompts import INSTRUCTION, Example, Prompt, build_prompt
from ragtune.generate.registry import AdapterRegistry, ResolvedAdapter, parse_ref
from ragtune.types import Generation, Passage

if TYPE_CHECKING:
    import torch

    from ragtune.generate.models import LoadedModel

__all__ = [
    "DecodeSettings",
    "GenerationRequest",
    "GenerationStream",
    "HFGenerator",
    "LoadedAdapter",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeSettings:
    """How to decode. ``temperature`` 0 is greedy; above 0 samples with nucleus ``top_p``."""

    max_new_tokens: int = 96
    min_new_tokens: int = 0
    """End-of-sequence is suppressed until this many tokens (benchmarks use it for fixed lengths)."""
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    """Seed for sampling; None draws from torch's global generator."""
    stop: tuple[str, ...] = ()
    """Strings that end the answer; the first one found and everything after it are removed."""

    def check(self, limit: int) -> None:
        problems = []
        if not 1 <= self.max_new_tokens <= limit:
            problems.append(f"max_new_tokens must be 1..{limit}, got {self.max_new_tokens}")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            problems.append(f"min_new_tokens must be 0..max_new_tokens, got {self.min_new_tokens}")
        if not 0.0 <= self.temperature <= 5.0:
            problems.append(f"temperature must be 0..5, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            problems.append(f"top_p must be in (0, 1], got {self.top_p}")
        if any(not s for s in self.stop) or len(self.stop) > 16:
            problems.append("stop sequences must be non-empty strings, at most 16 of them")
        if problems:
            raise GenerationError("; ".join(problems))


@dataclass(frozen=True)
class GenerationRequest:
    """One question over its passages (or a raw prompt) for :meth:`HFGenerator.generate_many`."""

    question: str = ""
    passages: Sequence[Passage] = ()
    adapter: str | None = None
    settings: DecodeSettings | None = None
    prompt_ids: Sequence[int] | None = None
    """A ready prompt (token ids); when given, ``question`` and ``passages`` are not used."""


@dataclass(frozen=True)
class LoadedAdapter:
    """An adapter held in memory, ready to be used by any row of a batch."""

    key: str
    card: AdapterCard
    folder: Path
    prefix: tuple[tuple[torch.Tensor, torch.Tensor], ...] | None = None
    soft_prompt: torch.Tensor | None = None
    lora_name: str | None = None
    nbytes: int = 0
    load_seconds: float = 0.0

    @property
    def kind(self) -> AdapterKind:
        return self.card.kind

    @property
    def virtual_tokens(self) -> int:
        if self.prefix:
            return int(self.prefix[0][0].shape[1])
        return 0 if self.soft_prompt is None else int(self.soft_prompt.shape[0])

    def row(self, token_ids: Sequence[int]) -> Row:
        return Row(token_ids, prefix=self.prefix, soft_prompt=self.soft_prompt, lora=self.lora_name)


@dataclass
class _Active:
    """A request being decoded."""

    index: int
    prompt_ids: Sequence[int]
    adapter: LoadedAdapter | None
    settings: DecodeSettings
    prompt: Prompt | None
    passages: Sequence[Passage]
    rng: Any
    generated: list[int] = field(default_factory=list)
    emitted: int = 0
    text: str = ""
    finish: str = ""
    first_token_at: float = 0.0
    done_at: float = 0.0


class HFGenerator:
    """A Hugging Face causal LM with per-request adapters; see the module doc.

    ``context_window`` caps prompt + answer (default: the model's own limit, at most 8192).
    ``max_batch_size`` bounds how many requests :meth:`generate_many` decodes together.
    Thread-safe: one lock serialises forward passes and adapter loads.
    """

    def __init__(
        self,
        base: LoadedModel,
        *,
        registry: AdapterRegistry | None = None,
        settings: DecodeSettings | None = None,
        context_window: int | None = None,
        max_batch_size: int = 8,
        max_loaded: int = 32,
        instruction: str = INSTRUCTION,
        examples: Sequence[Example] = (),
        max_passages: int = 5,
        passage_tokens: int = 4096,
    ) -> None:
        self.base = base
        self.model = base.model
        self.tokenizer = base.tokenizer
        self.registry = registry
        self.settings = settings or DecodeSettings()
        self.instruction = instruction
        self.examples = tuple(examples)
        self.max_passages = max_passages
        self.passage_tokens = passage_tokens
        limit = min(int(getattr(self.model.config, "max_position_embeddings", 0) or 8192), 8192)
        self.context_window = min(context_window or limit, limit)
        if self.context_window < 64:
            raise GenerationError(
                f"context_window {self.context_window} is too small: use at least 64"
            )
        self.max_batch_size = max(1, max_batch_size)
        self.max_loaded = max(1, max_loaded)
        self.default_adapter: str | None = None
        self.adapter_loads = 0
        """How many times an adapter version was brought into memory (first use, a promotion or
        rollback picked up, a reload after eviction): the serving metric of adapter switches."""
        self._shape = model_shape(self.model)
        self._loaded: OrderedDict[str, LoadedAdapter] = OrderedDict()
        self._serving: dict[str, str] = {}  # "tenant/name" -> key of the version last served
        self._warned: set[tuple[str, int | None]] = set()
        self._peft: Any = None
        self._lora_count = 0
        self._lora_state = ""  # which LoRA routing the model is set for (see _lora_mode)
        self._lock = threading.RLock()
        self._eos = self._eos_ids()
        if self.model.device.type == "cpu":
            prefer_gemv_layout(self.model)

    # -- adapters --------------------------------------------------------------------------------

    @property
    def loaded_adapters(self) -> list[LoadedAdapter]:
        return list(self._loaded.values())

    def load_adapter(self, source: str | Path | ResolvedAdapter) -> LoadedAdapter:
        """Load (or find already loaded) an adapter: a registry reference, a resolved version or a folder."""
        with self._lock:
            resolved = self._resolve(source)
            key = (
                resolved.key
                if isinstance(resolved, ResolvedAdapter)
                else f"path:{resolved.resolve()}"
            )
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
            folder = resolved.folder if isinstance(resolved, ResolvedAdapter) else resolved
            started = time.perf_counter()
            stored = read_adapter(folder)
            check_compatible(stored, self.base)  # refuse before anything in memory changes
            loaded = self._materialise(stored, key)
            loaded = replace(loaded, load_seconds=time.perf_counter() - started)
            self._loaded[key] = loaded
            self.adapter_loads += 1
            self._evict()
            return loaded

    def check_adapter(self, folder: Path) -> None:
        """Raise unless the adapter in ``folder`` loads into this base model (nothing is kept)."""
        check_compatible(read_adapter(folder), self.base)

    def activate(self, adapter: str | Path | None) -> LoadedAdapter | None:
        """Make ``adapter`` the default for requests that name none (None: the base model)."""
        with self._lock:
            if adapter is None:
                self.default_adapter = None
                return None
            loaded = self._adapter_for(str(adapter))
            self.default_adapter = str(adapter)
            return loaded

    def unload_adapter(self, key: str) -> None:
        with self._lock:
            loaded = self._loaded.pop(key, None)
            if loaded is None:
                raise AdapterNotFoundError(f"adapter {key} is not loaded")
            if loaded.lora_name and self._peft is not None:
                self._peft.delete_adapter(loaded.lora_name)
                self._lora_state = ""

    def promote(self, ref: str, version: int) -> ResolvedAdapter:
        """Promote a registered version after loading it here; a version that fails is refused."""
        registry = self._require_registry()
        target = registry.resolve(f"{parse_ref(ref).tenant}/{parse_ref(ref).name}@v{version}")
        self.load_adapter(target)
        return registry.promote(ref, version)

    def _resolve(self, source: str | Path | ResolvedAdapter) -> ResolvedAdapter | Path:
        if isinstance(source, ResolvedAdapter | Path):
            return source
        if source.startswith("path:"):
            return Path(source[5:])
        if "/" in source and self.registry is not None:
            # A registry reference first: a folder that happens to have the same relative path
            # must not shadow a tenant's adapter (nor stand in for one the registry lacks).
            try:
                return self.registry.resolve(source)
            except AdapterNotFoundError:
                if not Path(source).is_dir():
                    raise
        if Path(source).is_dir():
            return Path(source)
        if self.registry is None:
            raise AdapterNotFoundError(
                f"adapter {source!r}: no such folder, and no adapter registry is configured"
            )
        return self.registry.resolve(source)

    def _adapter_for(self, name: str | None) -> LoadedAdapter | None:
        """The loaded adapter a request asks for, following the registry's current pointer."""
        if name is None:
            return None
        if name in self._loaded:
            return self._loaded[name]
        try:
            return self.load_adapter(name)
        except AdapterError:
            previous = self._serving.get(name)
            if previous is None or previous not in self._loaded:
                raise
            # The current pointer moved to a version that does not load: keep serving the last
            # good one rather than fail every request, and say so once per bad version.
            current = self.registry.current_version(*name.split("/")[:2]) if self.registry else None
            if (name, current) not in self._warned:
                self._warned.add((name, current))
                log.warning(
                    "adapter %s: current version v%s refused, still serving %s",
                    name,
                    current,
                    previous,
                    exc_info=True,
                )
            return self._loaded[previous]

    def _materialise(self, stored: StoredAdapter, key: str) -> LoadedAdapter:
        card = stored.card
        device, dtype = self.model.device, self.model.dtype
        if card.kind in ("prompt", "prefix"):
            weight = stored.tensors["prompt_embeddings"].to(device=device, dtype=dtype)
            if card.kind == "prefix":
                s = self._shape
                pairs = tuple(prefix_kv(weight, s["layers"], s["kv_heads"], s["head_dim"]))
                return LoadedAdapter(key, card, stored.folder, prefix=pairs, nbytes=stored.nbytes)
            return LoadedAdapter(
                key, card, stored.folder, soft_prompt=weight.contiguous(), nbytes=stored.nbytes
            )
        return self._load_lora(stored, key)

    def _load_lora(self, stored: StoredAdapter, key: str) -> LoadedAdapter:
        from peft import PeftModel

        self._lora_count += 1
        name = f"lora{self._lora_count}"
        try:
            if self._peft is None:
                self._peft = PeftModel.from_pretrained(
                    self.model, str(stored.folder), adapter_name=name, is_trainable=False
                )
                self._peft.eval()
            else:
                self._peft.load_adapter(str(stored.folder), adapter_name=name, is_trainable=False)
        except Exception as exc:  # shapes were checked; anything left is a damaged file
            if self._peft is not None and name in getattr(self._peft, "peft_config", {}):
                self._peft.delete_adapter(name)
            raise AdapterError(f"adapter {key}: PEFT could not load it ({exc})") from exc
        finally:
            self._lora_state = ""
        return LoadedAdapter(key, stored.card, stored.folder, lora_name=name, nbytes=stored.nbytes)

    def _evict(self) -> None:
        """Drop least recently used adapters beyond ``max_loaded`` (never the newest one)."""
        while len(self._loaded) > self.max_loaded:
            self.unload_adapter(next(iter(self._loaded)))

    def _require_registry(self) -> AdapterRegistry:
        if self.registry is None:
            raise AdapterError("no adapter registry is configured (generator.adapters_root)")
        return self.registry

    # -- prompts ---------------------------------------------------------------------------------

    def prompt(
        self,
        question: str,
        passages: Sequence[Passage],
        *,
        reserve: int,
        virtual_tokens: int = 0,
        examples: bool = True,
    ) -> Prompt:
        """The grounded prompt for ``question`` over as many ``passages`` as fit.

        The worked examples (when the generator has them) are shown with ``examples`` only:
        requests with an adapter go without, as adapters are trained without them.
        """
        if not question.strip():
            raise GenerationError("the question is empty: ask something")
        try:
            return build_prompt(
                self.tokenizer,
                question,
                passages,
                context_window=self.context_window - virtual_tokens,
                reserve=reserve,
                instruction=self.instruction,
                examples=self.examples if examples else (),
                max_passages=self.max_passages,
                passage_tokens=self.passage_tokens,
            )
        except ValueError as exc:
            raise GenerationError(f"{exc}: shorten the question or lower max_new_tokens") from exc

    # -- generation ------------------------------------------------------------------------------

    def generate(
        self,
        question: str,
        passages: Sequence[Passage] = (),
        *,
        adapter: str | None = None,
        settings: DecodeSettings | None = None,
    ) -> Generation:
        """Answer ``question`` from ``passages`` with ``adapter`` (default: the active one)."""
        request = GenerationRequest(question, passages, adapter, settings)
        return self.generate_many([request])[0]

    def generate_many(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Answer many requests, ``max_batch_size`` at a time, adapters mixed freely in a batch."""
        results: list[Generation] = []
        for lo in range(0, len(requests), self.max_batch_size):
            chunk = requests[lo : lo + self.max_batch_size]
            results.extend(_drain(self._decode(chunk)))
        return results

    def stream(self, request: GenerationRequest) -> GenerationStream:
        """Iterate over the answer's text as it is produced; ``.result`` holds the Generation after."""
        return GenerationStream(self._decode([request]))

    def stream_many(
        self,
        requests: Sequence[GenerationRequest],
        *,
        cancelled: Callable[[int], bool] | None = None,
    ) -> Iterator[tuple[int, str | Generation]]:
        """Decode ``requests`` as one batch and yield events as they happen.

        ``(i, text)`` is new final text of request ``i``; ``(i, generation)`` comes once, when
        request ``i`` is done (before the others in the batch may be). ``cancelled(i)`` is
        asked before every step: a request it says yes to stops there, with finish reason
        ``cancelled`` (a client went away), and the batch goes on without it. At most
        ``max_batch_size`` requests.
        """
        if len(requests) > self.max_batch_size:
            raise GenerationError(
                f"{len(requests)} requests in one batch; the most is {self.max_batch_size}"
            )
        yield from self._decode(requests, cancelled=cancelled)

    def log_likelihood(
        self,
        prompt_ids: Sequence[int],
        continuation_ids: Sequence[int],
        *,
        adapter: str | None = None,
    ) -> float:
        """log p(continuation | prompt) under ``adapter`` (default: the active one), in nats."""
        return self.log_likelihoods([(prompt_ids, continuation_ids, adapter)])[0]

    def log_likelihoods(
        self, items: Sequence[tuple[Sequence[int], Sequence[int], str | None]]
    ) -> list[float]:
        """:meth:`log_likelihood` for many (prompt, continuation, adapter) at once, in one batch."""
        import torch

        if any(not prompt or not cont for prompt, cont, _ in items):
            raise GenerationError("log_likelihood needs a non-empty prompt and continuation")
        scores: list[float] = []
        with self._lock, torch.inference_mode():
            for lo in range(0, len(items), self.max_batch_size):
                chunk = items[lo : lo + self.max_batch_size]
                rows = []
                for prompt, cont, adapter in chunk:
                    loaded = self._adapter_for(adapter or self.default_adapter)
                    ids = [int(t) for t in (*prompt, *cont)]
                    if len(ids) + (loaded.virtual_tokens if loaded else 0) > self.context_window:
                        raise GenerationError(
                            f"{len(ids)} tokens exceed the context window of {self.context_window}"
                        )
                    rows.append(loaded.row(ids) if loaded else Row(ids))
                batch = make_batch(
                    rows,
                    self._embedder(),
                    num_layers=self._shape["layers"],
                    any_lora=self._peft is not None,
                )
                out = self._forward(
                    inputs_embeds=batch.inputs_embeds,
                    attention_mask=batch.attention_mask,
                    position_ids=batch.position_ids,
                    past_key_values=batch.cache,
                    adapter_names=batch.adapter_names,
                    # Only the positions that predict a continuation token: content is
                    # right-aligned, so the last (longest continuation + 1) columns hold them.
                    logits_to_keep=max(len(cont) for _p, cont, _a in chunk) + 1,
                )
                width = out.logits.shape[1]
                for i, (_prompt, cont, _adapter) in enumerate(chunk):
                    n = len(cont)
                    logp = torch.log_softmax(
                        out.logits[i, width - n - 1 : width - 1].float(), dim=-1
                    )
                    target = torch.tensor([int(t) for t in cont], device=logp.device)[:, None]
                    scores.append(float(logp.gather(1, target).sum()))
        return scores

    def _prepare(self, index: int, request: GenerationRequest) -> _Active:
        import torch

        settings = request.settings or self.settings
        settings.check(self.context_window // 2)
        adapter = self._adapter_for(request.adapter or self.default_adapter)
        virtual = adapter.virtual_tokens if adapter else 0
        prompt = None
        if request.prompt_ids is not None:
            ids = [int(i) for i in request.prompt_ids]
            if not ids:
                raise GenerationError("the prompt is empty")
            if len(ids) + virtual + settings.max_new_tokens > self.context_window:
                raise GenerationError(
                    f"the prompt has {len(ids)} tokens; with {settings.max_new_tokens} new tokens "
                    f"and {virtual} virtual tokens it exceeds the context window of {self.context_window}"
                )
        else:
            prompt = self.prompt(
                request.question,
                request.passages,
                reserve=settings.max_new_tokens,
                virtual_tokens=virtual,
                examples=adapter is None,
            )
            ids = list(prompt.token_ids)
        rng = None
        if settings.temperature > 0 and settings.seed is not None:
            rng = torch.Generator(device=self.model.device).manual_seed(settings.seed)
        if adapter is not None and "/" in (request.adapter or self.default_adapter or ""):
            self._serving[str(request.adapter or self.default_adapter)] = adapter.key
        return _Active(index, ids, adapter, settings, prompt, request.passages, rng)

    def _decode(
        self,
        requests: Sequence[GenerationRequest],
        cancelled: Callable[[int], bool] | None = None,
    ) -> Generator[tuple[int, str | Generation], None, list[Generation]]:
        """The decode loop, as a generator of events (see :meth:`stream_many`); returns the
        Generations in request order."""
        import torch

        with self._lock, torch.inference_mode():
            rows = [self._prepare(i, r) for i, r in enumerate(requests)]
            if not rows:
                return []
            any_lora = self._peft is not None
            embed = self._embedder()
            started = time.perf_counter()
            batch = make_batch(
                [a.adapter.row(a.prompt_ids) if a.adapter else Row(a.prompt_ids) for a in rows],
                embed,
                num_layers=self._shape["layers"],
                any_lora=any_lora,
            )
            out = self._forward(
                inputs_embeds=batch.inputs_embeds,
                attention_mask=batch.attention_mask,
                position_ids=batch.position_ids,
                past_key_values=batch.cache,
                adapter_names=batch.adapter_names,
            )
            prefill_seconds = time.perf_counter() - started
            cache, mask, positions = out.past_key_values, batch.attention_mask, batch.next_positions
            names = batch.adapter_names
            live = list(rows)
            logits = out.logits[:, -1, :]
            while True:
                now = time.perf_counter()
                next_ids = []
                for row, row_logits in zip(live, logits, strict=True):
                    if cancelled is not None and cancelled(row.index):
                        row.finish = "cancelled"
                        next_ids.append(0)
                        continue
                    token = self._choose(row_logits, row)
                    row.first_token_at = row.first_token_at or now
                    next_ids.append(token)
                    delta = self._advance(row, token)
                    if delta:
                        yield row.index, delta
                keep = [i for i, row in enumerate(live) if not row.finish]
                for row in live:
                    if row.finish and not row.done_at:
                        row.done_at = time.perf_counter()
                        yield row.index, self._result(row, prefill_seconds)
                if not keep:
                    break
                if len(keep) < len(live):
                    index = torch.tensor(keep, device=mask.device)
                    select_rows(cache, index)
                    mask, positions = mask[index], positions[index]
                    names = [names[i] for i in keep] if names else None
                    live = [live[i] for i in keep]
                    next_ids = [next_ids[i] for i in keep]
                mask, step_positions = step_inputs(mask, positions)
                ids = torch.tensor(next_ids, device=mask.device)[:, None]
                out = self._forward(
                    inputs_embeds=embed(ids[:, 0])[:, None, :],
                    attention_mask=mask,
                    position_ids=step_positions,
                    past_key_values=cache,
                    adapter_names=names,
                )
                cache, positions = out.past_key_values, positions + 1
                logits = out.logits[:, -1, :]
        return [self._result(row, prefill_seconds) for row in rows]

    def _embedder(self) -> Callable[[torch.Tensor], torch.Tensor]:
        table = self.model.get_input_embeddings()
        device = self.model.device
        return lambda ids: table(ids.to(device))

    def _forward(self, *, logits_to_keep: int = 1, **inputs: Any) -> Any:
        """One forward pass; LoRA rows routed the cheapest way the batch allows.

        PEFT's per-row ``adapter_names`` path registers hooks on every LoRA layer and splits
        each layer's input by adapter on every call, which costs about a third of a decode step
        at this size even for rows without LoRA. So a batch whose rows all use the same LoRA
        (or none) runs with that adapter set active (or LoRA layers disabled) through the plain
        model; only a batch that really mixes LoRA adapters takes PEFT's per-row path.
        """
        names = inputs.pop("adapter_names")
        if self._peft is not None and names:
            distinct = set(names)
            if len(distinct) > 1:
                self._lora_mode("mixed")
                return self._peft(
                    **inputs, adapter_names=names, use_cache=True, logits_to_keep=logits_to_keep
                )
            self._lora_mode(next(iter(distinct)))
        return self.model(**inputs, use_cache=True, logits_to_keep=logits_to_keep)

    def _lora_mode(self, mode: str) -> None:
        """Disable LoRA layers (``__base__``), activate one adapter, or enable all for mixing."""
        if mode == self._lora_state:
            return
        lora_model = self._peft.base_model
        if mode == BASE_ADAPTER:
            lora_model.disable_adapter_layers()
        else:
            lora_model.enable_adapter_layers()
            if mode != "mixed":
                lora_model.set_adapter(mode, inference_mode=True)
        self._lora_state = mode

    def _choose(self, logits: torch.Tensor, row: _Active) -> int:
        import torch

        settings = row.settings
        if len(row.generated) < settings.min_new_tokens and self._eos:
            logits = logits.clone()
            logits[list(self._eos)] = float("-inf")
        if settings.temperature <= 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits.float() / settings.temperature, dim=-1)
        if settings.top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            cumulative = torch.cumsum(sorted_probs, dim=-1)
            cut = cumulative - sorted_probs > settings.top_p  # keep the smallest set reaching top_p
            sorted_probs[cut] = 0.0
            probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
        return int(torch.multinomial(probs, 1, generator=row.rng))

    def _advance(self, row: _Active, token: int) -> str:
        """Record ``token``; set ``row.finish`` when it ends; return text that is now final."""
        settings = row.settings
        if token in self._eos:
            row.finish = "eos"
        else:
            row.generated.append(token)
            if len(row.generated) >= settings.max_new_tokens:
                row.finish = "length"
        text = str(self.tokenizer.decode(row.generated, skip_special_tokens=True))
        for stop in settings.stop:
            at = text.find(stop)
            if at >= 0:
                text, row.finish = text[:at], "stop"
        row.text = text
        if row.finish:
            final = len(text)
        else:
            final = len(text.rstrip("\ufffd"))  # an incomplete multi-byte character waits
            for stop in settings.stop:  # so does a tail that may be the start of a stop string
                for n in range(min(len(stop) - 1, final), 0, -1):
                    if text[:final].endswith(stop[:n]):
                        final -= n
                        break
        final = max(final, row.emitted)
        delta = text[row.emitted : final]
        row.emitted = final
        return delta

    def _result(self, row: _Active, prefill_seconds: float) -> Generation:
        adapter = row.adapter
        return Generation(
            text=row.text.strip(),
            prompt_tokens=len(row.prompt_ids),
            output_tokens=len(row.generated) + (1 if row.finish == "eos" else 0),
            prefill_seconds=prefill_seconds,
            decode_seconds=max(row.done_at - row.first_token_at, 0.0)
            if row.first_token_at
            else 0.0,
            finish_reason=row.finish,
            adapter=f"{adapter.card.tenant}/{adapter.card.name}" if adapter else None,
            adapter_version=(adapter.card.version or None) if adapter else None,
            passages=_prompt_passages(row),
            prompt=row.prompt.text if row.prompt else "",
            token_ids=tuple(row.generated),
        )

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (self.model.generation_config, self.model.config, self.tokenizer):
            value = getattr(source, "eos_token_id", None)
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, list | tuple):
                ids.update(int(v) for v in value)
        return ids


def prefer_gemv_layout(model: Any) -> None:
    """Store each linear layer's weight transposed in memory (same values, same shape).

    Decoding multiplies one row by every weight matrix. On x86 CPUs, MKL runs that product
    about twice as fast from a column-major weight (``x @ W`` with ``W`` contiguous as
    in_features x out_features) as from PyTorch's row-major default: measured on SmolLM2's
    49152 x 576 output layer, 4.3 ms against 8.0 ms, and 10% off a whole decode step. Prefill is
    unchanged. Nothing is copied twice: each weight is replaced by a transposed view of its
    transposed copy. A tied input embedding shares the layout; gathering a few rows from it
    stays cheap.
    """
    import torch

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and module.weight.is_contiguous():
                module.weight.data = module.weight.data.t().contiguous().t()


def _prompt_passages(row: _Active) -> tuple[Passage, ...]:
    """The passages the prompt held, in citation order, with the text the model saw."""
    if row.prompt is None:
        return ()
    held = []
    for shown, index in zip(row.prompt.passages, row.prompt.source_indices, strict=True):
        original = row.passages[index]
        held.append(replace(original, text=shown.text) if shown.cut else original)
    return tuple(held)


class GenerationStream:
    """Iterating yields text pieces as they are decoded; :attr:`result` is set at the end."""

    def __init__(
        self, events: Generator[tuple[int, str | Generation], None, list[Generation]]
    ) -> None:
        self._events = events
        self.result: Generation | None = None

    def __iter__(self) -> Iterator[str]:
        try:
            while True:
                _index, event = next(self._events)
                if isinstance(event, str):
                    yield event
        except StopIteration as stop:
            self.result = stop.value[0]

    def close(self) -> None:
        """Stop decoding early (a client went away)."""
        close = getattr(self._events, "close", None)
        if close is not None:
            close()


def _drain(
    events: Generator[tuple[int, str | Generation], None, list[Generation]],
) -> list[Generation]:
    while True:
        try:
            next(events)
        except StopIteration as stop:
            return list(stop.value)
