"""Canary releases end to end on a fake model: the real registry, the real SQLite live stores,
the real citation checker (lexical signals) and the real HTTP server; only the generator is a
fake whose versions abstain as their cards say (``tests/fakes.py``).

The split (share within tolerance, sticky per user, pins bypass it), live metrics in ``/metrics``
and telemetry, feedback (isolated per tenant, exported as eval questions), the automatic
rollback of a bad canary with its reason in the history, and a restart that keeps the canary.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from ragtune import Assistant
from ragtune.errors import CanaryError, FeedbackError, ResponseNotFoundError
from ragtune.generate.canary import CanaryPlan
from ragtune.generate.registry import AdapterRegistry
from ragtune.live.recorder import LiveRecorder
from ragtune.live.settings import LiveSettings
from ragtune.policy import AdapterDefaults, AnswerPolicy, AssistantPolicy
from ragtune.telemetry import Telemetry
from ragtune.types import AdapterRef
from tests.fakes import FakeRetriever, RegistryGenerator, register_fake
from tests.serve.server import running

SUPPORT = AdapterRef("acme", "support")
FAQ = AdapterRef("globex", "faq")
DOCS = {
    "acme": [
        "Items can be returned within 30 days of delivery.",
        "The blender has a two-year warranty.",
    ],
    "globex": ["The platinum plan costs 450 dollars a month."],
}
ACME_KEY, GLOBEX_KEY = "rt-acme-canary", "rt-globex-canary"
QUESTION = "How long do I have to return an item?"


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Any]:
    """acme/support v1 (current, never abstains) and v2 (abstains always), globex/faq v1."""
    registry = AdapterRegistry(tmp_path / "adapters")
    register_fake(registry, tmp_path / "s1", "acme", "support")
    register_fake(registry, tmp_path / "s2", "acme", "support", abstain=1.0)
    register_fake(registry, tmp_path / "s3", "acme", "support")  # v3: as good as v1
    register_fake(registry, tmp_path / "f1", "globex", "faq")
    return {"root": tmp_path, "registry": registry}


def make_assistant(world: dict[str, Any], *, seed: int = 0, live: bool = True) -> Assistant:
    """A fresh Assistant over the world's registry and live stores (a restart makes another)."""
    from ragtune.check import SupportCitationChecker
    from ragtune.check.support import SupportChecker

    root: Path = world["root"]
    registry = AdapterRegistry(root / "adapters")  # its own object, as a new process would
    telemetry = Telemetry(root / "events.jsonl", spans=False)
    recorder = (
        LiveRecorder(LiveSettings(root=root / "live"), registry=registry, telemetry=telemetry)
        if live
        else None
    )
    policy = AssistantPolicy(
        top_k=2,
        answer=AnswerPolicy("flag"),
        adapters=AdapterDefaults(per_tenant={"acme": SUPPORT, "globex": FAQ}),
    )
    return Assistant(
        FakeRetriever(DOCS),
        RegistryGenerator(registry=registry, seed=seed),
        SupportCitationChecker(SupportChecker(), attribute=True),
        policy=policy,
        registry=registry,
        telemetry=telemetry,
        live=recorder,
    )


@pytest.fixture
def server(world: dict[str, Any]) -> Iterator[str]:
    with running(app_for(world)) as url:
        yield url


def app_for(world: dict[str, Any]) -> Any:
    from ragtune.serve import ApiKey, KeyRing, ServeSettings, create_app, hash_key

    keys = KeyRing.from_config(
        [
            ApiKey("acme", key_sha256=hash_key(ACME_KEY)),
            ApiKey("globex", key_sha256=hash_key(GLOBEX_KEY)),
        ]
    )
    return create_app(make_assistant(world), ServeSettings(), keys)


def chat(url: str, key: str, model: str, user: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": QUESTION}]}
    if user is not None:
        body["user"] = user
    return httpx.post(
        f"{url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )


def rate(url: str, key: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/feedback", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


def sample(url: str, name: str, **labels: str) -> float:
    """The value of one sample of the server's ``/metrics`` (0.0 when it is absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return 0.0


def events(world: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    lines = (world["root"] / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == kind]


# -- the split ------------------------------------------------------------------------------------


def test_split_share_is_within_tolerance_and_sticky_per_user(world: dict[str, Any]) -> None:
    world["registry"].start_canary(SUPPORT, 3, CanaryPlan(share=0.3, min_requests=10_000))
    assistant = make_assistant(world)
    first = {f"u{i}": assistant.ask(QUESTION, tenant="acme", user=f"u{i}") for i in range(300)}
    share = sum(a.adapter_version == 3 for a in first.values()) / len(first)
    assert abs(share - 0.3) < 0.08  # 3 standard errors of a share of 300 users
    for user, answer in list(first.items())[:30]:
        again = assistant.ask("Is there a warranty on the blender?", tenant="acme", user=user)
        assert again.adapter_version == answer.adapter_version  # sticky
        assert again.canary is not None and again.canary.sticky
        assert again.canary.key == answer.canary.key  # type: ignore[union-attr]
    anonymous = {assistant.ask(QUESTION, tenant="acme").adapter_version for _ in range(40)}
    assert anonymous == {1, 3}  # without a user id each request is split on its own
    for answer in first.values():
        assert answer.canary is not None
        assert answer.canary.arm == ("canary" if answer.adapter_version == 3 else "current")


def test_pinned_versions_and_other_tenants_are_never_split(world: dict[str, Any]) -> None:
    world["registry"].start_canary(SUPPORT, 3, CanaryPlan(share=0.5, min_requests=10_000))
    assistant = make_assistant(world)
    for i in range(20):
        pinned = assistant.ask(QUESTION, tenant="acme", adapter="acme/support@v1", user=f"u{i}")
        assert (pinned.adapter_version, pinned.canary) == (1, None)
        canary_pinned = assistant.ask(QUESTION, tenant="acme", adapter="acme/support@v3")
        assert (canary_pinned.adapter_version, canary_pinned.canary) == (3, None)
        globex = assistant.ask("What does platinum cost?", tenant="globex", user=f"u{i}")
        assert (globex.adapter, globex.canary) == ("globex/faq", None)
    split = [assistant.ask(QUESTION, tenant="acme", user=f"u{i}") for i in range(20)]
    assert {a.canary.arm for a in split if a.canary} == {"current", "canary"}


def test_http_split_by_the_user_field_metrics_per_version_and_events(
    world: dict[str, Any], server: str
) -> None:
    world["registry"].start_canary(SUPPORT, 3, CanaryPlan(share=0.5, min_requests=10_000))
    seen: dict[str, set[int]] = {}
    arms = {"current": 0, "canary": 0}
    for i in range(12):
        for model in ("acme", "acme/support"):
            reply = chat(server, ACME_KEY, model, user=f"user-{i}").json()
            seen.setdefault(f"user-{i}", set()).add(reply["ragtune"]["adapter_version"])
            arms[reply["ragtune"]["canary"]["arm"]] += 1
            assert reply["ragtune"]["canary"]["version"] == reply["ragtune"]["adapter_version"]
            assert reply["id"].startswith("chatcmpl-")
    assert all(len(versions) == 1 for versions in seen.values())
    assert set().union(*seen.values()) == {1, 3}
    pinned = chat(server, ACME_KEY, "acme/support@v3", user="user-0").json()
    assert pinned["ragtune"]["canary"] is None and pinned["ragtune"]["adapter_version"] == 3
    labels = {"tenant": "acme", "adapter": "acme/support"}
    answers = "ragtune_version_answers_total"
    assert sample(server, answers, **labels, version="3", arm="canary") == arms["canary"]
    assert sample(server, answers, **labels, version="1", arm="current") == arms["current"]
    assert sample(server, answers, **labels, version="3", arm="none") == 1.0  # the pinned one
    # every answer cites its passage, which supports it: one supported sentence each
    supported = "ragtune_version_supported_sentences_total"
    assert sample(server, supported, **labels, version="3") == arms["canary"] + 1
    assert sample(server, "ragtune_version_abstentions_total", **labels, version="1") == 0.0
    asked = events(world, "ask")
    assert len(asked) == 25 and all("question" not in e for e in asked)
    assert {e["canary"]["arm"] for e in asked if e["canary"]} == {"current", "canary"}


# -- feedback -------------------------------------------------------------------------------------


def test_feedback_is_isolated_between_tenants(world: dict[str, Any], server: str) -> None:
    acme = chat(server, ACME_KEY, "acme", user="alice").json()
    globex = chat(server, GLOBEX_KEY, "globex", user="bob").json()
    stolen = rate(server, GLOBEX_KEY, {"response_id": acme["id"], "rating": "down"})
    unknown = rate(server, GLOBEX_KEY, {"response_id": "chatcmpl-nothing", "rating": "down"})
    assert stolen.status_code == unknown.status_code == 404
    message = stolen.json()["error"]["message"].replace(acme["id"], "ID")
    assert message == unknown.json()["error"]["message"].replace("chatcmpl-nothing", "ID")
    own = rate(server, ACME_KEY, {"response_id": acme["id"], "rating": "up"})
    assert own.status_code == 200
    assert own.json() | {"response_id": "x"} == {
        "object": "feedback",
        "response_id": "x",
        "rating": "up",
        "corrected": False,
        "adapter": "acme/support",
        "adapter_version": 1,
    }
    assert (
        rate(server, GLOBEX_KEY, {"response_id": globex["id"], "rating": "down"}).status_code == 200
    )
    missing = rate(server, ACME_KEY, {"rating": "up"})
    assert missing.status_code == 400 and "response_id: Field required" in missing.text
    assert '"response_id": the id of the chat completion' in missing.json()["error"]["message"]
    bad = rate(server, ACME_KEY, {"response_id": acme["id"], "rating": "meh"})
    assert bad.status_code == 400 and "rating" in bad.json()["error"]["message"]
    assert rate(server, "rt-wrong", {"response_id": acme["id"], "rating": "up"}).status_code == 401
    # each tenant's store holds its own answers only
    from ragtune.live.store import LiveStore

    live = world["root"] / "live"
    assert LiveStore(live, "acme").answer(globex["id"]) is None
    kept = LiveStore(live, "acme").answer(acme["id"])
    assert kept is not None and (kept.adapter, kept.version, kept.arm) == ("acme/support", 1, None)
    assert kept.question == QUESTION and kept.documents == ("acme/0.md",) and kept.created > 0
    assert kept.unit != "alice" and len(kept.unit) == 24  # a hash, never the raw user id
    assert LiveStore(live, "globex").answer(acme["id"]) is None
    assert [r.response_id for r in LiveStore(live, "acme").rated()] == [acme["id"]]
    rated = {"tenant": "acme", "adapter": "acme/support", "version": "1", "rating": "up"}
    assert sample(server, "ragtune_feedback_total", **rated) == 1.0
    feedback = events(world, "feedback")
    assert len(feedback) == 2 and all("correction" not in e for e in feedback)


def test_python_feedback_refuses_another_tenants_answer_like_an_unknown_one(
    world: dict[str, Any],
) -> None:
    assistant = make_assistant(world)
    answer = assistant.ask(QUESTION, tenant="acme", user="alice")
    assert answer.response_id.startswith("resp-")
    with pytest.raises(ResponseNotFoundError) as stolen:
        assistant.feedback(answer.response_id, "down", tenant="globex")
    with pytest.raises(ResponseNotFoundError) as unknown:
        assistant.feedback("resp-nothing", "down", tenant="globex")
    assert str(stolen.value).replace(answer.response_id, "ID") == str(unknown.value).replace(
        "resp-nothing", "ID"
    )
    with pytest.raises(FeedbackError, match="send 'up' or 'down'"):
        assistant.feedback(answer.response_id, "great", tenant="acme")
    with pytest.raises(FeedbackError, match="give response_id"):
        assistant.feedback(" ", "up", tenant="acme")
    with pytest.raises(FeedbackError, match="more than the limit of 4000"):
        assistant.feedback(answer.response_id, "down", tenant="acme", correction="x" * 4001)
    record = assistant.feedback(answer.response_id, "down", tenant="acme", correction="30 days.")
    assert (record.rating, record.correction, record.version) == ("down", "30 days.", 1)
    with pytest.raises(FeedbackError, match="set live.root"):
        make_assistant(world, live=False).feedback(answer.response_id, "up", tenant="acme")


def test_feedback_export_round_trips_through_the_eval_reader(
    world: dict[str, Any], tmp_path: Path
) -> None:
    from ragtune.cli import app
    from ragtune.eval.questions import read_questions

    assistant = make_assistant(world)
    good = assistant.ask(QUESTION, tenant="acme", user="a")
    corrected = assistant.ask("Is there a warranty on the blender?", tenant="acme", user="b")
    unhelpful = assistant.ask("What is the warranty?", tenant="acme", user="c")
    abstained = assistant.ask(QUESTION, tenant="acme", adapter="acme/support@v2", user="d")
    assert abstained.abstained and not good.abstained
    assistant.feedback(good.response_id, "up", tenant="acme")
    assistant.feedback(corrected.response_id, "down", tenant="acme", correction="Two years.")
    assistant.feedback(unhelpful.response_id, "down", tenant="acme")
    assistant.feedback(abstained.response_id, "up", tenant="acme")
    globex = assistant.ask("What does platinum cost?", tenant="globex")
    assistant.feedback(globex.response_id, "up", tenant="globex")
    out = tmp_path / "qa.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "feedback",
            "export",
            "--tenant",
            "acme",
            "--out",
            str(out),
            "--root",
            str(world["root"] / "live"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "3 question(s) written" in result.stdout and "1 answer(s) rated down" in result.stdout
    questions = {q.id: q for q in read_questions(out)}
    assert set(questions) == {good.response_id, corrected.response_id, abstained.response_id}
    assert questions[good.response_id].answers == (DOCS["acme"][0],)  # markers removed
    assert questions[good.response_id].question == QUESTION
    assert questions[corrected.response_id].answers == ("Two years.",)
    assert not questions[abstained.response_id].answerable
    assert globex.response_id not in out.read_text()
    # the cited document: what eval scores retrieval against and train takes the gold from
    assert questions[good.response_id].passage_id == "acme/0.md"
    [sentence] = corrected.sentences
    cited = sentence.citations[0].passage
    assert cited is not None and questions[corrected.response_id].passage_id == cited.source
    assert questions[abstained.response_id].passage_id is None
    assert_trainable(list(questions.values()))
    missing = CliRunner().invoke(
        app,
        ["feedback", "export", "--tenant", "initech", "--out", str(out), "--root", str(tmp_path)],
    )
    assert isinstance(missing.exception, FeedbackError) and "give --root" in str(missing.exception)


def assert_trainable(questions: list[Any]) -> None:
    """``ragtune train``'s data step turns every exported question into an example, the gold
    passage looked up by ``passage_id``."""
    from ragtune.generate.prompts import PromptPassage
    from ragtune.train.data import DataSettings, build_examples

    by_source = {f"acme/{i}.md": PromptPassage("", text) for i, text in enumerate(DOCS["acme"])}
    examples = build_examples(
        questions,
        lambda _q, k: list(by_source.items())[:k],
        lambda document, _answers: by_source.get(document),
        DataSettings(passages=2, unanswerable_share=None),
    )
    assert sorted(e.kind != "unanswerable" for e in examples) == [False, True, True]
    assert {e.document for e in examples if e.kind != "unanswerable"} == {"acme/0.md"}


# -- automatic decisions --------------------------------------------------------------------------


def test_a_bad_canary_is_rolled_back_with_its_reason_in_the_history(
    world: dict[str, Any], server: str
) -> None:
    registry: AdapterRegistry = world["registry"]
    plan = CanaryPlan(share=0.5, min_requests=20, looks=3, max_drop={"abstain_rate": 0.1})
    registry.start_canary(SUPPORT, 2, plan)
    sent = 0
    while registry.pointer("acme", "support").canary is not None:
        assert sent < 200, "the bad canary was never rolled back"
        chat(server, ACME_KEY, "acme", user=f"user-{sent}")
        sent += 1
    last = registry.history(SUPPORT)[-1]
    assert (last.action, last.version) == ("canary rolled back", 2)
    assert last.reason.startswith("automatic rollback: look 1/3 at 20 canary requests")
    assert "abstain_rate worse by" in last.reason and "allowed 0.1" in last.reason
    decision = last.detail["decision"]
    [test] = decision["tests"]
    assert decision["action"] == "rollback" and test["verdict"] == "worse"
    assert (test["current"], test["canary"]) == (0.0, 1.0)
    assert test["alpha"] == pytest.approx(0.05 / 3) and test["p"] < test["alpha"]
    after = [chat(server, ACME_KEY, "acme", user=f"user-{i}").json() for i in range(10)]
    assert {r["ragtune"]["adapter_version"] for r in after} == {1}
    [look] = events(world, "canary_look")
    assert look["action"] == "rollback" and look["canary_version"] == 2


def test_a_canary_that_cannot_load_ends_and_its_requests_go_to_current(
    world: dict[str, Any],
) -> None:
    registry: AdapterRegistry = world["registry"]
    broken = register_fake(registry, world["root"] / "s4", "acme", "support", loads=False)
    registry.start_canary(SUPPORT, broken, CanaryPlan(share=0.5))
    assistant = make_assistant(world)
    answers = [assistant.ask(QUESTION, tenant="acme", user=f"user-{i}") for i in range(10)]
    assert {a.adapter_version for a in answers} == {1} and not any(a.abstained for a in answers)
    assert registry.pointer("acme", "support").canary is None
    last = registry.history(SUPPORT)[-1]
    assert (last.action, last.version) == ("canary rolled back", broken)
    assert last.reason == (
        f"automatic rollback: v{broken} cannot be loaded "
        f"(acme/support@v{broken} was made for another base model)"
    )


def test_a_good_canary_is_ready_to_promote_and_status_says_so(
    world: dict[str, Any], tmp_path: Path
) -> None:
    from ragtune.cli import app

    registry: AdapterRegistry = world["registry"]
    plan = CanaryPlan(
        share=0.3, min_requests=20, looks=2, max_drop={"abstain_rate": 0.1, "support": 0.1}
    )
    registry.start_canary(SUPPORT, 3, plan)
    assistant = make_assistant(world)
    for i in range(120):
        assistant.ask(QUESTION, tenant="acme", user=f"user-{i}")
    canary = registry.pointer("acme", "support").canary
    assert canary is not None and canary.looks_done >= 1 and canary.status == "ready to promote"
    runner = CliRunner()
    root, live = str(world["root"] / "adapters"), str(world["root"] / "live")
    shown = runner.invoke(
        app, ["adapters", "status", "acme/support", "--root", root, "--live", live]
    )
    assert shown.exit_code == 0, shown.output
    assert "canary v3: share 0.3" in shown.stdout and "status: ready to promote" in shown.stdout
    assert "abstain_rate" in shown.stdout and "current" in shown.stdout
    assert "every metric within its allowed drop" in shown.stdout
    as_json = json.loads(
        runner.invoke(
            app, ["adapters", "status", "acme/support", "--root", root, "--live", live, "--json"]
        ).stdout
    )
    assert {v["version"]: v["role"] for v in as_json["versions"]} == {1: "current", 3: "canary"}
    promoted = runner.invoke(app, ["adapters", "promote", "acme/support", "v3", "--root", root])
    assert "now current (canary v3 ended by promoting it)" in promoted.stdout
    assert registry.pointer("acme", "support").canary is None


def test_a_server_restart_keeps_the_canary_state(world: dict[str, Any]) -> None:
    registry: AdapterRegistry = world["registry"]
    # the first look at 40 canary requests: after the 24 users below asked twice (once before
    # the restart, once after: about 24 on the canary), and some more after the restart
    plan = CanaryPlan(share=0.5, min_requests=40, looks=2, max_drop={"abstain_rate": 0.1})
    canary = registry.start_canary(SUPPORT, 3, plan)
    before: dict[str, int] = {}
    with running(app_for(world)) as url:
        for i in range(24):  # about 12 on the canary: no look yet
            before[f"user-{i}"] = chat(url, ACME_KEY, "acme", user=f"user-{i}").json()["ragtune"][
                "adapter_version"
            ]
    state = registry.pointer("acme", "support").canary
    assert state == canary and state.looks_done == 0
    from ragtune.live.store import LiveStore

    on_canary = LiveStore(world["root"] / "live", "acme").canary_requests(canary.id, "canary")
    assert 0 < on_canary < plan.min_requests
    after_on_canary = 0
    with running(app_for(world)) as url:  # a new process: new Assistant, registry and store objects
        for user, version in before.items():  # the same users stay on the same arms
            reply = chat(url, ACME_KEY, "acme", user=user).json()["ragtune"]
            assert reply["adapter_version"] == version
            after_on_canary += reply["canary"]["arm"] == "canary"
        i = 100
        while registry.pointer("acme", "support").canary.looks_done == 0:  # type: ignore[union-attr]
            assert i < 300
            reply = chat(url, ACME_KEY, "acme", user=f"user-{i}").json()["ragtune"]
            after_on_canary += reply["canary"]["arm"] == "canary"
            i += 1
    look = registry.history(SUPPORT)[-1]
    assert look.action == "canary look" and look.detail["decision"]["canary_requests"] == 40
    assert on_canary + after_on_canary == 40  # the look counted the requests before the restart


# -- the CLI --------------------------------------------------------------------------------------


def test_cli_canary_refusals_name_the_fix_and_change_nothing(world: dict[str, Any]) -> None:
    from ragtune.cli import app

    runner = CliRunner()
    root = str(world["root"] / "adapters")
    pointer = world["root"] / "adapters" / "acme" / "support" / "current.json"
    before = pointer.read_text()

    def canary(*args: str) -> Any:
        return runner.invoke(app, ["adapters", "canary", "acme/support", *args, "--root", root])

    for args, said in [
        (["v3", "--share", "1.5"], "share must be < 1.0"),
        (["v3", "--share", "0"], "share must be > 0.0"),
        (["v3", "--share", "0.1", "--max-drop", "abstain_rate:0.05"], "is not metric=number"),
        (["v3", "--share", "0.1", "--max-drop", "speed=1"], "not a metric a canary watches"),
        (["v9", "--share", "0.1"], "no version v9"),
        (["v1", "--share", "0.1"], "already current"),
    ]:
        result = canary(*args)
        assert result.exception is not None and said in str(result.exception), (args, result.output)
        assert pointer.read_text() == before
    started = canary(
        "v3",
        "--share",
        "0.1",
        "--min-requests",
        "50",
        "--max-drop",
        "abstain_rate=0.05,support=0.03",
    )
    assert started.exit_code == 0, started.output
    assert "v3 gets 0.1 of acme/support's traffic against v1 (seed 0)" in started.stdout
    running_now = pointer.read_text()
    again = canary("v2", "--share", "0.1")
    assert isinstance(again.exception, CanaryError) and "already running" in str(again.exception)
    assert pointer.read_text() == running_now
    listed = runner.invoke(app, ["adapters", "list", "--root", root])
    assert "(canary v3, share 0.1)" in listed.stdout
    ended = runner.invoke(app, ["adapters", "rollback", "acme/support", "--root", root])
    assert "canary v3 ended: acme/support@v1 stays current" in ended.stdout
    history = world["registry"].history(SUPPORT)
    assert [e.action for e in history] == ["promoted", "canary started", "canary rolled back"]
    assert history[-1].reason == "rolled back by hand"


def test_one_ask_reads_each_adapter_pointer_once_and_the_next_ask_reads_it_again(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The adapter check, the canary split, the load and the generation of one call see one
    state of the registry, read once; a promotion made meanwhile reaches the next call."""
    world["registry"].start_canary(SUPPORT, 3, CanaryPlan(share=0.5, min_requests=10_000))
    assistant = make_assistant(world, live=False)
    registry = assistant.registry
    assert registry is not None
    reads: list[str] = []
    original = registry.storage.read

    def counted(key: str) -> Any:
        if key.endswith("current.json"):
            reads.append(key)
        return original(key)

    monkeypatch.setattr(registry.storage, "read", counted)
    first = assistant.ask(QUESTION, tenant="acme", user="u1")
    assert reads == ["acme/support/current.json"] and first.adapter_version in (1, 3)
    world["registry"].promote(SUPPORT, 3)  # ends the canary, from another registry object
    reads.clear()
    second = assistant.ask(QUESTION, tenant="acme", user="u1")
    assert reads == ["acme/support/current.json"]
    assert second.adapter_version == 3 and second.canary is None
