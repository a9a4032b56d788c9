"""The adapter registry on object storage: an S3 server (moto's, started here) behind s3fs.

The guarantees of the folder registry must hold there too: the pointer moves only by
compare-and-swap (two writers cannot both win), a version is invisible until its card is
written, every replica reaches the same registry, and a down endpoint is a clear error.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragtune.errors import AdapterError, CanaryError, RegistryUnavailableError
from ragtune.generate.canary import CanaryPlan
from ragtune.generate.models import LoadedModel
from ragtune.generate.registry import AdapterRegistry
from ragtune.generate.registry_storage import S3Storage, open_storage
from tests.generate.conftest import MakeAdapter

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A local S3 server for this module; credentials are moto's test ones."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    patch = pytest.MonkeyPatch()
    endpoint = f"http://{host}:{port}"
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        patch.setenv(name, value)
    import s3fs

    s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True).mkdir("adapters-test")
    yield endpoint
    patch.undo()
    server.stop()


@pytest.fixture
def s3_root(s3_endpoint: str, request: pytest.FixtureRequest) -> str:
    """A fresh prefix in the bucket for each test."""
    return f"s3://adapters-test/{request.node.name}"


def test_register_promote_rollback_and_history_on_s3(
    s3_root: str, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    registry = AdapterRegistry(s3_root, cache=tmp_path / "cache")
    one = registry.register(make_adapter("lora", seed=1))
    two = registry.register(make_adapter("prefix", seed=2))
    assert (one.card.version, one.current, two.card.version, two.current) == (1, True, 2, False)
    # Another machine (its own cache) sees the same registry.
    other = AdapterRegistry(s3_root, cache=tmp_path / "other-cache")
    [entry] = other.list()
    assert (entry.tenant, entry.name, entry.versions, entry.current, entry.kind) == (
        "acme",
        "support",
        (1, 2),
        1,
        "prefix",  # the newest version's kind
    )
    resolved = other.resolve("acme/support@v2")
    assert resolved.folder.is_relative_to(tmp_path / "other-cache")
    assert json.loads((resolved.folder / "adapter.json").read_text())["version"] == 2
    assert (resolved.folder / "adapter_model.safetensors").read_bytes() == (
        two.folder / "adapter_model.safetensors"
    ).read_bytes()
    assert not (resolved.folder / ".claim").exists()

    other.promote("acme/support", 2)
    assert registry.current_version("acme", "support") == 2  # no restart, no cache of pointers
    assert registry.rollback("acme/support").card.version == 1
    assert [(e.action, e.version) for e in registry.history("acme/support")] == [
        ("promoted", 1),
        ("promoted", 2),
        ("rolled back", 1),
    ]
    assert [c.version for c in registry.cards("acme", "support")] == [1, 2]


def test_the_pointer_moves_only_by_compare_and_swap(s3_endpoint: str, tmp_path: Path) -> None:
    storage = open_storage("s3://adapters-test/cas", tmp_path)
    assert isinstance(storage, S3Storage)
    assert storage.create("acme/support/current.json", '{"current": 1}')
    assert not storage.create("acme/support/current.json", '{"current": 9}')
    first = storage.read("acme/support/current.json")
    assert first is not None and json.loads(first.text) == {"current": 1}
    assert storage.swap("acme/support/current.json", '{"current": 2}', first.tag)
    # A writer holding the old tag lost the race: refused, and the winner's pointer stays.
    assert not storage.swap("acme/support/current.json", '{"current": 3}', first.tag)
    now = storage.read("acme/support/current.json")
    assert now is not None and json.loads(now.text) == {"current": 2} and now.tag != first.tag
    assert not storage.swap("acme/support/absent.json", "{}", first.tag)
    assert storage.read("acme/support/absent.json") is None


def test_concurrent_writers_neither_lose_a_version_nor_both_win(
    s3_root: str, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    sources = [make_adapter("lora", seed=seed) for seed in range(4)]
    registries = [AdapterRegistry(s3_root, cache=tmp_path / f"c{i}") for i in range(4)]
    versions: list[int] = []
    errors: list[BaseException] = []

    def register(index: int) -> None:
        try:
            versions.append(registries[index].register(sources[index]).card.version)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=register, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(versions) == [1, 2, 3, 4]
    pointer = registries[0].pointer("acme", "support")
    assert pointer.current is not None and pointer.history == ()
    assert [e.action for e in registries[0].history("acme/support")] == ["promoted"]

    # Two operators start a canary at once: exactly one wins, the other is refused.
    outcomes: list[str] = []

    def start(index: int, version: int) -> None:
        try:
            registries[index].start_canary("acme/support", version, CanaryPlan(share=0.1))
            outcomes.append("started")
        except CanaryError:
            outcomes.append("refused")

    others = [v for v in (1, 2, 3, 4) if v != pointer.current][:2]
    racers = [threading.Thread(target=start, args=(i, v)) for i, v in enumerate(others)]
    for thread in racers:
        thread.start()
    for thread in racers:
        thread.join()
    assert sorted(outcomes) == ["refused", "started"]
    canary = registries[3].pointer("acme", "support").canary
    assert canary is not None and canary.version in others


def test_a_version_without_its_card_is_not_a_version(
    s3_root: str, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    registry = AdapterRegistry(s3_root, cache=tmp_path / "cache")
    registry.register(make_adapter("lora", seed=1))
    # An upload that died after claiming v2 and sending its weights, before the card.
    storage = registry.storage
    assert storage.create("acme/support/v2/.claim", "{}")
    assert storage.create("acme/support/v2/adapter_model.safetensors", "partial")
    assert storage.versions("acme/support") == [1]
    with pytest.raises(AdapterError, match="no version v2"):
        registry.resolve("acme/support@v2")
    # The next registration skips the claimed number instead of mixing into it.
    three = registry.register(make_adapter("lora", seed=3))
    assert three.card.version == 3
    assert storage.versions("acme/support") == [1, 3]


def test_a_failed_check_leaves_nothing_on_s3(
    s3_root: str, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    registry = AdapterRegistry(s3_root, cache=tmp_path / "cache")

    def refuse(folder: Path) -> None:
        raise AdapterError("does not fit the base model")

    with pytest.raises(AdapterError, match="does not fit"):
        registry.register(make_adapter("lora"), check=refuse)
    assert registry.list() == []
    assert list((tmp_path / "cache").rglob("*.safetensors")) == []


def test_an_unreachable_endpoint_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    registry = AdapterRegistry("s3://adapters-test/down", cache=tmp_path / "cache")
    with pytest.raises(AdapterError, match="cannot be reached.*AWS_ENDPOINT_URL"):
        registry.register(make_adapter("lora"))


def test_a_missing_bucket_is_a_clear_error(s3_endpoint: str, tmp_path: Path) -> None:
    registry = AdapterRegistry("s3://no-such-bucket-here/x", cache=tmp_path)
    with pytest.raises(AdapterError, match="bucket .* does not exist"):
        registry.pointer("acme", "support")
    with pytest.raises(AdapterError, match="bucket .* does not exist"):
        registry.storage.create("acme/support/v1/.claim", "{}")


def test_protocols_without_conditional_writes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match=r"gs://.*s3://bucket/prefix"):
        AdapterRegistry("gs://bucket/adapters", cache=tmp_path)
    local = AdapterRegistry(f"file://{tmp_path}/adapters", cache=tmp_path / "cache")
    assert local.root == tmp_path / "adapters"


def test_the_config_keeps_an_s3_root_intact(tmp_path: Path) -> None:
    from ragtune.config import AdaptersConfig

    adapters = AdaptersConfig(root="s3://models/adapters", cache=tmp_path / "cache")
    assert adapters.root == "s3://models/adapters"


def test_a_generator_serves_from_an_s3_registry_and_follows_its_pointer(
    s3_root: str, make_adapter: MakeAdapter, tiny_base: LoadedModel, tmp_path: Path
) -> None:
    """What each Ray Serve replica does: load versions from the shared bucket (downloaded once
    into its own cache) and follow promotions made elsewhere, without a restart."""
    from ragtune.generate import AdapterPool, DecodeSettings, GeneratorSettings, HFGenerator
    from ragtune.generate.pool import PoolSettings
    from ragtune.types import AdapterRef
    from tests.generate.test_generator import PASSAGES, QUESTIONS

    operator = AdapterRegistry(s3_root, cache=tmp_path / "operator")
    operator.register(make_adapter("lora", seed=1))
    operator.register(make_adapter("prompt", seed=2))
    settings = PoolSettings(s3_root, cache=tmp_path / "replica")
    pool = AdapterPool(tiny_base, AdapterRegistry(s3_root, cache=settings.cache), settings)
    generator = HFGenerator(tiny_base, pool, GeneratorSettings(context_window=512))
    twelve = DecodeSettings(max_new_tokens=12)
    support = AdapterRef("acme", "support")
    first = generator.generate(QUESTIONS[0], PASSAGES, adapter=support, settings=twelve)
    operator.promote("acme/support", 2)
    second = generator.generate(QUESTIONS[0], PASSAGES, adapter=support, settings=twelve)
    operator.rollback("acme/support")
    third = generator.generate(QUESTIONS[0], PASSAGES, adapter=support, settings=twelve)
    assert [g.adapter_version for g in (first, second, third)] == [1, 2, 1]
    assert third.token_ids == first.token_ids
    assert (tmp_path / "replica").is_dir() and list((tmp_path / "replica").rglob("adapter.json"))


def test_serving_a_version_seen_before_reads_only_the_pointer(
    s3_root: str, make_adapter: MakeAdapter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = AdapterRegistry(s3_root, cache=tmp_path / "cache")
    registry.register(make_adapter("lora", seed=1))
    registry.resolve("acme/support")  # first time: downloaded into the cache
    storage = registry.storage
    reads: list[str] = []
    original = storage.read

    def counted(key: str) -> object:
        reads.append(key)
        return original(key)

    def no_listing(*args: object) -> object:
        raise AssertionError("a served request listed the bucket")

    monkeypatch.setattr(storage, "read", counted)
    monkeypatch.setattr(storage, "versions", no_listing)
    monkeypatch.setattr(storage, "children", no_listing)
    assert registry.resolve("acme/support").card.version == 1
    assert reads == ["acme/support/current.json"]


def test_a_cache_that_no_longer_matches_the_bucket_is_downloaded_again(
    s3_root: str, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    first = AdapterRegistry(s3_root, cache=cache)
    first.register(make_adapter("lora", seed=1))
    assert first.resolve("acme/support").card.kind == "lora"
    # The prefix is emptied and filled again: v1 is now another adapter.
    first.storage.fs.rm(s3_root.removeprefix("s3://"), recursive=True)  # type: ignore[attr-defined]
    AdapterRegistry(s3_root, cache=tmp_path / "elsewhere").register(make_adapter("prefix", seed=2))
    again = AdapterRegistry(s3_root, cache=cache)  # a new process, the old cache
    resolved = again.resolve("acme/support")
    assert resolved.card.kind == "prefix"
    assert json.loads((resolved.folder / "adapter_config.json").read_text())["peft_type"] == (
        "PREFIX_TUNING"
    )
    # A cached version that lost its card (a cache cleaner) heals on the next read.
    (resolved.folder / "adapter.json").unlink()
    healed = AdapterRegistry(s3_root, cache=cache).resolve("acme/support")
    assert (healed.folder / "adapter.json").is_file() and healed.card.kind == "prefix"


def test_a_cache_that_cannot_be_written_names_adapters_cache(
    s3_root: str, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    AdapterRegistry(s3_root, cache=tmp_path / "ok").register(make_adapter("lora"))
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    with pytest.raises(AdapterError, match=r"adapter cache .* adapters.cache"):
        AdapterRegistry(s3_root, cache=blocked).resolve("acme/support")


def test_an_outage_of_the_bucket_keeps_serving_what_is_loaded(
    s3_root: str,
    make_adapter: MakeAdapter,
    tiny_base: LoadedModel,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A replica whose bucket stops answering keeps answering with the versions it holds
    (pinned, and what an unversioned reference served last), within the client's timeouts."""
    import time

    import s3fs

    from ragtune.generate import AdapterPool
    from ragtune.generate.pool import PoolSettings
    from ragtune.types import AdapterRef

    operator = AdapterRegistry(s3_root, cache=tmp_path / "operator")
    operator.register(make_adapter("lora", seed=1))
    operator.register(make_adapter("lora", seed=2))
    settings = PoolSettings(s3_root, cache=tmp_path / "replica")
    registry = AdapterRegistry(s3_root, cache=settings.cache)
    pool = AdapterPool(tiny_base, registry, settings)
    assert pool.get(AdapterRef("acme", "support")).key == "acme/support@v1"
    assert pool.get(AdapterRef("acme", "support", 2)).key == "acme/support@v2"
    storage = registry.storage
    assert isinstance(storage, S3Storage)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    storage.fs = s3fs.S3FileSystem(
        endpoint_url="http://127.0.0.1:9",
        skip_instance_cache=True,
        config_kwargs={"connect_timeout": 1, "retries": {"max_attempts": 1}},
    )
    started = time.perf_counter()
    assert pool.get(AdapterRef("acme", "support", 2)).key == "acme/support@v2"
    assert registry.card("acme/support@v2").version == 2  # a front end's check, pinned
    assert time.perf_counter() - started < 0.5  # pinned and seen: no request at all
    # Unversioned: the pointer read last serves on (the front end's check, the load), and
    # after one failed attempt the storage is left alone for a few seconds.
    assert registry.card("acme/support").version == 1
    assert pool.get(AdapterRef("acme", "support")).key == "acme/support@v1"
    started = time.perf_counter()
    for _ in range(5):
        assert pool.get(AdapterRef("acme", "support")).key == "acme/support@v1"
    assert time.perf_counter() - started < 0.5
    with pytest.raises(RegistryUnavailableError, match="cannot be reached"):
        pool.get(AdapterRef("acme", "other"))  # never served: nothing to fall back on


def test_a_front_end_checks_cards_without_downloading_weights(
    s3_root: str, make_adapter: MakeAdapter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Ray ingress checks each request's adapter by its card: it must not pull every
    tenant's weights into its own cache, and after the first look it reads only the pointer."""
    AdapterRegistry(s3_root, cache=tmp_path / "operator").register(make_adapter("lora"))
    front = AdapterRegistry(s3_root, cache=tmp_path / "front")
    assert front.card("acme/support").ref == "acme/support@v1"
    assert not list((tmp_path / "front").rglob("*.safetensors"))
    reads: list[str] = []
    original = front.storage.read

    def counted(key: str) -> object:
        reads.append(key)
        return original(key)

    monkeypatch.setattr(front.storage, "read", counted)
    assert front.card("acme/support").kind == "lora"
    assert reads == ["acme/support/current.json"]
    with pytest.raises(AdapterError, match="no version v7"):
        front.card("acme/support@v7")


def test_adapters_show_reads_the_card_without_downloading_weights(
    s3_root: str, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from ragtune.cli import app

    AdapterRegistry(s3_root, cache=tmp_path / "writer-cache").register(make_adapter("lora", seed=1))
    cache = tmp_path / "reader-cache"
    shown = CliRunner().invoke(
        app, ["adapters", "show", "acme/support", "--root", s3_root, "--cache", str(cache)]
    )
    assert shown.exit_code == 0, shown.output
    card = json.loads(shown.stdout)
    assert (card["version"], card["current"], card["kind"]) == (1, True, "lora")
    assert card["location"] == f"{s3_root}/acme/support/v1"
    assert not list(cache.rglob("*.safetensors"))  # nothing but the card was read
