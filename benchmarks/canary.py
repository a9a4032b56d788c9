"""The canary figure (issue 20): how many requests until a bad canary is rolled back by itself
and the share of users who saw it; and whether a canary equal to current is ever rolled back
(20 seeded runs, each judged at every look of its plan).

A simulation: SQuAD-dev questions replayed through ragtune's real serving path, with the model
and retrieval simulated. Real: the HTTP server (``create_app`` under uvicorn on loopback, httpx
clients sending the OpenAI ``user`` field), the scheduler, the Assistant, the adapter registry
with the canary in its pointer file, the seeded sticky split, the SQLite live store, the looks
and their statistical test, the automatic rollback, and the citation checker (its lexical
signals, calibrated). Simulated: retrieval returns the question's gold paragraph first and two
other paragraphs; each adapter version answers from a profile on its card:

- current v1 and the equal canary: abstain on 25% of questions; otherwise the gold paragraph's
  sentence holding the answer, cited [1], or on 10% of them a sentence of another paragraph
  cited [1] (which the checker finds unsupported);
- the bad canary ("trained to abstain"): abstains on 60%.

Users: ``--users`` ids; each request comes from one drawn uniformly, so most users ask several
times and the split's stickiness matters. The equal-canary runs go through the Assistant in
process (``--equal-transport direct``, the same code below HTTP) because they need thousands of
requests each; ``--equal-transport http`` sends them over HTTP too.

Rerun (from the repository root; the defaults are the CLI's: share 0.1, 200 requests per look,
5 looks, max drop abstain_rate=0.05,support=0.05), on a quiet machine::

    .venv/bin/python benchmarks/canary.py --bad-runs 5 --equal-runs 20

Results go to ``benchmarks/out/canary.json``; ``--quick`` is a smoke run of a few minutes
(``canary-quick.json``), not a figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.fakes, tests.serve.server

import _common

from ragtune import Assistant
from ragtune.assistant import Question
from ragtune.errors import AdapterNotFoundError
from ragtune.generate.adapters import AdapterCard
from ragtune.generate.canary import CanaryPlan, parse_max_drop
from ragtune.generate.protocol import GenerationRequest, GeneratorStatus
from ragtune.generate.registry import AdapterRegistry
from ragtune.live.recorder import LiveRecorder
from ragtune.live.settings import LiveSettings
from ragtune.policy import AdapterDefaults, AnswerPolicy, AssistantPolicy
from ragtune.text import sentence_spans
from ragtune.types import AdapterChoice, AdapterRef, Generation, NoAdapter, Passage
from tests.fakes import register_fake
from tests.serve.server import running

if TYPE_CHECKING:
    from fastapi import FastAPI

TENANT, NAME = "bench", "support"
KEY = "rt-bench-canary"
PROFILES = {
    "current": {"abstain": 0.25, "wrong": 0.10},
    "equal": {"abstain": 0.25, "wrong": 0.10},
    "bad": {"abstain": 0.60, "wrong": 0.10},
}


# -- the simulated stages -------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One eval question with its gold paragraph and the sentence that answers it."""

    question: str
    gold: str
    answer_sentence: str


def load_items(data: Path, limit: int) -> tuple[list[Item], dict[str, dict[str, Any]]]:
    paragraphs = {p["id"]: p for p in _common.read_jsonl(data / "passages.jsonl")}
    items, seen = [], set()
    for row in _common.read_jsonl(data / "questions.jsonl"):
        if not row.get("answerable", True) or row["question"] in seen:
            continue
        text = paragraphs[row["passage_id"]]["text"]
        sentence = next(
            (text[a:b] for a, b in sentence_spans(text) if row["answers"][0] in text[a:b]), None
        )
        if sentence is None:
            continue
        seen.add(row["question"])
        items.append(Item(row["question"], row["passage_id"], sentence.strip()))
        if len(items) >= limit:
            break
    return items, paragraphs


class ReplayRetriever:
    """The question's gold paragraph first, then two others drawn by the question's hash."""

    def __init__(self, items: Sequence[Item], paragraphs: dict[str, dict[str, Any]]) -> None:
        self.gold = {item.question: item.gold for item in items}
        self.paragraphs = paragraphs
        self.ids = sorted(paragraphs)

    def retrieve(
        self,
        query: str,
        k: int,
        *,
        tenant: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[Passage]:
        rng = random.Random(hashlib.sha256(query.encode()).digest())
        gold = self.gold[query]
        ids = [gold, *(i for i in rng.sample(self.ids, k + 1) if i != gold)][:k]
        return [
            Passage(
                f"{pid}:0",
                pid,
                self.paragraphs[pid]["text"],
                1.0 - rank / 10,
                rank + 1,
                pid,
                0,
                len(self.paragraphs[pid]["text"]),
                self.paragraphs[pid].get("title", ""),
            )
            for rank, pid in enumerate(ids)
        ]


class ProfileGenerator:
    """Answers as each registered version's profile says (``settings["profile"]`` on its card),
    drawing with its own seeded generator; a simulated model, with the registry for real."""

    def __init__(self, registry: AdapterRegistry, items: Sequence[Item], seed: int) -> None:
        self.registry = registry
        self.answers = {item.question: item.answer_sentence for item in items}
        self.rng = random.Random(seed)
        self.lock = threading.Lock()

    def status(self) -> GeneratorStatus:
        return GeneratorStatus("simulated", "cpu", 8, 0, 0, grounding="none")

    def adapter_card(self, choice: AdapterChoice) -> AdapterCard | None:
        if isinstance(choice, NoAdapter):
            return None
        if not isinstance(choice, AdapterRef):
            raise AdapterNotFoundError(f"no adapter {choice}")
        return self.registry.resolve(choice).card

    load_adapter = adapter_card

    def stream_many(
        self,
        requests: Sequence[GenerationRequest],
        *,
        cancelled: Callable[[int], bool] | None = None,
    ) -> Iterator[tuple[int, str | Generation]]:
        from ragtune.generate import ABSTENTION

        for i, request in enumerate(requests):
            card = self.adapter_card(request.adapter)
            profile = PROFILES[card.settings["profile"]] if card else PROFILES["current"]
            with self.lock:
                abstain, wrong = self.rng.random(), self.rng.random()
            passages = tuple(request.passages)
            if abstain < profile["abstain"]:
                text = ABSTENTION
            elif wrong < profile["wrong"] and len(passages) > 1:
                spans = sentence_spans(passages[1].text)
                text = passages[1].text[spans[0][0] : spans[0][1]].strip() + " [1]"
            else:
                text = self.answers[request.question] + " [1]"
            yield (
                i,
                Generation(
                    text,
                    400,
                    24,
                    0.0,
                    0.0,
                    "eos",
                    adapter=f"{card.tenant}/{card.name}" if card else None,
                    adapter_version=card.version if card else None,
                    passages=passages,
                ),
            )


def _world(
    work: Path,
    items: Sequence[Item],
    paragraphs: dict[str, Any],
    candidate: str,
    plan: CanaryPlan,
    seed: int,
) -> tuple[Assistant, AdapterRegistry]:
    from ragtune.check import SupportCitationChecker
    from ragtune.check.support import SupportChecker

    registry = AdapterRegistry(work / "adapters")
    register_fake(registry, work / "made-current", TENANT, NAME, profile="current")
    version = register_fake(registry, work / "made-candidate", TENANT, NAME, profile=candidate)
    registry.start_canary(AdapterRef(TENANT, NAME), version, plan)
    policy = AssistantPolicy(
        top_k=3,
        answer=AnswerPolicy("drop"),
        adapters=AdapterDefaults(per_tenant={TENANT: AdapterRef(TENANT, NAME)}),
    )
    live = LiveRecorder(LiveSettings(root=work / "live"), registry=registry)
    assistant = Assistant(
        ReplayRetriever(items, paragraphs),
        ProfileGenerator(registry, items, seed),
        SupportCitationChecker(SupportChecker(), attribute=True),
        policy=policy,
        registry=registry,
        live=live,
    )
    return assistant, registry


# -- one run --------------------------------------------------------------------------------------


def _over_http(assistant: Assistant) -> FastAPI:
    from ragtune.serve import ApiKey, KeyRing, ServeSettings, create_app, hash_key

    keys = KeyRing.from_config([ApiKey(TENANT, key_sha256=hash_key(KEY))])
    return create_app(assistant, ServeSettings(max_queue=64), keys)


def run(
    args: argparse.Namespace,
    items: Sequence[Item],
    paragraphs: dict[str, Any],
    candidate: str,
    seed: int,
    transport: str,
) -> dict[str, Any]:
    """Replay questions from random users until the canary ends or finishes its looks."""
    plan = CanaryPlan(
        share=args.share,
        min_requests=args.min_requests,
        max_drop=parse_max_drop(args.max_drop),
        looks=args.looks,
        seed=seed,
    )
    work = Path(tempfile.mkdtemp(prefix="canary-bench-"))
    try:
        assistant, registry = _world(work, items, paragraphs, candidate, plan, seed)
        rng = random.Random(seed)
        limit = int(args.min_requests * args.looks / args.share * 3)
        if transport == "http":
            with running(_over_http(assistant)) as url:
                return _replay(_http_asker(url), registry, rng, items, args, candidate, limit)
        return _replay(_direct_asker(assistant), registry, rng, items, args, candidate, limit)
    finally:
        shutil.rmtree(work, ignore_errors=True)


Asker = Callable[[str, str], bool]
"""``ask(question, user)``: whether the answer came from the canary arm."""


def _http_asker(url: str) -> Asker:
    import httpx

    client = httpx.Client(timeout=120, headers={"Authorization": f"Bearer {KEY}"})

    def ask(question: str, user: str) -> bool:
        body = {"model": TENANT, "user": user, "messages": [{"role": "user", "content": question}]}
        reply = client.post(f"{url}/v1/chat/completions", json=body)
        reply.raise_for_status()
        arm = reply.json()["ragtune"]["canary"]
        return arm is not None and arm["arm"] == "canary"

    return ask


def _direct_asker(assistant: Assistant) -> Asker:
    def ask(question: str, user: str) -> bool:
        [(_, answer)] = list(assistant.answer_stream([Question(question, TENANT, user=user)]))
        if isinstance(answer, BaseException):
            raise answer
        return answer.canary is not None and answer.canary.arm == "canary"

    return ask


def _replay(
    ask: Asker,
    registry: AdapterRegistry,
    rng: random.Random,
    items: Sequence[Item],
    args: argparse.Namespace,
    candidate: str,
    limit: int,
) -> dict[str, Any]:
    saw: dict[str, bool] = {}
    """Per active user: whether any of their answers came from the canary."""
    started = time.perf_counter()
    sent = 0
    ended = None
    while sent < limit:
        user = f"user-{rng.randrange(args.users)}"
        on_canary = ask(items[rng.randrange(len(items))].question, user)
        saw[user] = saw.get(user, False) or on_canary
        sent += 1
        canary = registry.pointer(TENANT, NAME).canary
        if canary is None:
            ended = "rolled back"
            break
        if canary.looks_done >= args.looks:
            ended = canary.status
            break
    looks = [e for e in registry.history(f"{TENANT}/{NAME}") if e.action.startswith("canary ")]
    last = looks[-1]
    decision = last.detail.get("decision", {})
    return {
        "candidate": candidate,
        "outcome": ended or "unfinished",
        "requests": sent,
        "canary_requests_at_end": decision.get("canary_requests"),
        "looks": sum(e.action == "canary look" for e in looks) + (ended == "rolled back"),
        "users_active": len(saw),
        "users_saw_canary": sum(saw.values()),
        "reason": last.reason,
        "seconds": round(time.perf_counter() - started, 1),
    }


# -- the figure -----------------------------------------------------------------------------------


def _summary(bad: list[dict[str, Any]], equal: list[dict[str, Any]], users: int) -> dict[str, Any]:
    """Medians over the bad runs that were rolled back; outcomes of the equal runs."""
    rolled = [r for r in bad if r["outcome"] == "rolled back"]

    def median(values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    def outcomes(runs: list[dict[str, Any]], outcome: str) -> str:
        return f"{sum(r['outcome'] == outcome for r in runs)}/{len(runs)}"

    return {
        "bad_rolled_back": outcomes(bad, "rolled back"),
        "bad_requests_to_rollback_median": median([r["requests"] for r in rolled]),
        "bad_canary_requests_at_rollback_median": median(
            [r["canary_requests_at_end"] for r in rolled]
        ),
        "bad_users_saw_canary_share_of_active_median": median(
            [r["users_saw_canary"] / r["users_active"] for r in rolled]
        ),
        "bad_users_saw_canary_share_of_all_median": median(
            [r["users_saw_canary"] / users for r in rolled]
        ),
        "equal_false_rollbacks": outcomes(equal, "rolled back"),
        "equal_ready_to_promote": outcomes(equal, "ready to promote"),
        "equal_inconclusive": outcomes(equal, "inconclusive"),
        "equal_requests_median": median([r["requests"] for r in equal]),
    }


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--share", type=float, default=0.1)
    p.add_argument("--min-requests", type=int, default=200)
    p.add_argument("--looks", type=int, default=5)
    p.add_argument("--max-drop", default="abstain_rate=0.05,support=0.05")
    p.add_argument("--users", type=int, default=2000, help="distinct user ids")
    p.add_argument("--questions", type=int, default=2000, help="eval questions replayed")
    p.add_argument("--bad-runs", type=int, default=5)
    p.add_argument("--equal-runs", type=int, default=20)
    p.add_argument("--equal-transport", choices=("direct", "http"), default="direct")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run, not a figure: 40 requests per look, 3 looks, 300 users and "
        "questions, 1 bad and 2 equal runs (written to canary-quick.json)",
    )
    args = p.parse_args()
    if args.quick:
        args.min_requests, args.looks, args.users, args.questions = 40, 3, 300, 300
        args.bad_runs, args.equal_runs = 1, 2
    data = _common.require_data(args.data, ["questions.jsonl", "passages.jsonl"])
    items, paragraphs = load_items(data, args.questions)
    print(
        f"{len(items)} questions; plan: share {args.share}, {args.min_requests} per look, "
        f"{args.looks} looks, max drop {args.max_drop}",
        flush=True,
    )
    bad = []
    for seed in range(args.bad_runs):
        bad.append(run(args, items, paragraphs, "bad", seed, "http"))
        print(f"  bad seed {seed}: {bad[-1]}", flush=True)
    equal = []
    for seed in range(args.equal_runs):
        equal.append(run(args, items, paragraphs, "equal", 1000 + seed, args.equal_transport))
        print(
            f"  equal seed {1000 + seed}: {equal[-1]['outcome']} after {equal[-1]['requests']}",
            flush=True,
        )
    summary = _summary(bad, equal, args.users)
    print(json.dumps(summary, indent=2))
    path = _common.write_results(
        args.out,
        "canary-quick" if args.quick else "canary",
        {
            "args": vars(args),
            "machine": _common.machine_info(),
            "summary": summary,
            "bad": bad,
            "equal": equal,
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
