"""The adapter registry: versions, the current pointer, promote, rollback, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragtune.cli import app
from ragtune.errors import AdapterCorruptError, AdapterError, AdapterNotFoundError
from ragtune.generate.registry import AdapterRef, AdapterRegistry, parse_ref
from tests.generate.conftest import MakeAdapter


def test_register_numbers_versions_and_the_first_becomes_current(
    make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    registry = AdapterRegistry(tmp_path / "adapters")
    one = registry.register(make_adapter("lora", seed=1))
    two = registry.register(make_adapter("prefix", seed=2))
    assert (one.card.version, one.current) == (1, True)
    assert (two.card.version, two.current) == (2, False)
    assert two.folder == tmp_path / "adapters" / "acme" / "support" / "v2"
    assert registry.resolve("acme/support").card.version == 1
    assert registry.resolve("acme/support@v2").card.kind == "prefix"
    [entry] = registry.list()
    assert (entry.tenant, entry.name, entry.versions, entry.current) == (
        "acme",
        "support",
        (1, 2),
        1,
    )
    # The registered copy carries its version; the source folder is untouched.
    assert json.loads((two.folder / "adapter.json").read_text())["version"] == 2


def test_promote_and_rollback_follow_the_history(make_adapter: MakeAdapter, tmp_path: Path) -> None:
    registry = AdapterRegistry(tmp_path / "adapters")
    for seed in (1, 2, 3):
        registry.register(make_adapter("lora", seed=seed))
    registry.promote("acme/support", 3)
    registry.promote("acme/support@v2")
    assert registry.current_version("acme", "support") == 2
    assert registry.rollback("acme/support").card.version == 3
    assert registry.rollback("acme/support").card.version == 1
    with pytest.raises(AdapterError, match="nothing to roll back to"):
        registry.rollback("acme/support")
    assert registry.current_version("acme", "support") == 1


def test_register_with_another_tenant_and_name(make_adapter: MakeAdapter, tmp_path: Path) -> None:
    registry = AdapterRegistry(tmp_path / "adapters")
    registry.register(make_adapter("prompt"), tenant="globex", name="billing")
    assert [f"{e.tenant}/{e.name}" for e in registry.list()] == ["globex/billing"]
    assert registry.resolve("globex/billing").card.tenant == "globex"
    assert registry.list("acme") == []


def test_a_failed_check_registers_nothing(make_adapter: MakeAdapter, tmp_path: Path) -> None:
    registry = AdapterRegistry(tmp_path / "adapters")
    registry.register(make_adapter("lora"))

    def refuse(folder: Path) -> None:
        raise AdapterError("does not fit")

    with pytest.raises(AdapterError, match="does not fit"):
        registry.register(make_adapter("lora", seed=5), promote=True, check=refuse)
    [entry] = registry.list()
    assert entry.versions == (1,) and entry.current == 1
    assert not [
        p
        for p in (tmp_path / "adapters" / "acme" / "support").iterdir()
        if p.name.startswith(".staging")
    ]


def test_a_refused_promotion_leaves_the_pointer(make_adapter: MakeAdapter, tmp_path: Path) -> None:
    registry = AdapterRegistry(tmp_path / "adapters")
    registry.register(make_adapter("lora", seed=1))
    registry.register(make_adapter("lora", seed=2))

    def refuse(folder: Path) -> None:
        raise AdapterError("refused")

    with pytest.raises(AdapterError):
        registry.promote("acme/support", 2, check=refuse)
    assert registry.current_version("acme", "support") == 1


def test_broken_adapter_is_not_registered(make_adapter: MakeAdapter, tmp_path: Path) -> None:
    registry = AdapterRegistry(tmp_path / "adapters")
    folder = make_adapter("lora")
    (folder / "adapter_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(AdapterCorruptError):
        registry.register(folder)
    assert registry.list() == []


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("acme/nothing", "no adapter acme/nothing"),
        ("acme/support@v9", "has no version v9 \\(versions: v1\\)"),
        ("acme", "not an adapter reference"),
        ("../x/support", "not an adapter reference"),
        (".hidden/support", "not a valid name"),
        ("acme/support@v0", "versions start at v1"),
    ],
)
def test_unknown_references_name_the_problem(
    make_adapter: MakeAdapter, tmp_path: Path, ref: str, message: str
) -> None:
    registry = AdapterRegistry(tmp_path / "adapters")
    registry.register(make_adapter("lora"))
    with pytest.raises(AdapterNotFoundError, match=message):
        registry.resolve(ref)


def test_damaged_pointer_is_reported(make_adapter: MakeAdapter, tmp_path: Path) -> None:
    registry = AdapterRegistry(tmp_path / "adapters")
    registry.register(make_adapter("lora"))
    (tmp_path / "adapters" / "acme" / "support" / "current.json").write_text("{bro")
    with pytest.raises(AdapterCorruptError, match="promote a version to rewrite it"):
        registry.resolve("acme/support")


def test_parse_ref() -> None:
    assert parse_ref("acme/support@3") == AdapterRef("acme", "support", 3)
    assert str(parse_ref(" acme/support@v12 ")) == "acme/support@v12"


def test_adapters_cli_lists_shows_promotes_and_rolls_back(
    make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from ragtune.cli import app

    root = tmp_path / "adapters"
    registry = AdapterRegistry(root)
    registry.register(make_adapter("lora", seed=1))
    registry.register(make_adapter("prefix", seed=2))
    run = CliRunner().invoke
    listed = run(app, ["adapters", "list", "--root", str(root)])
    assert listed.exit_code == 0 and "acme/support" in listed.stdout and "*v1 v2" in listed.stdout
    assert (
        run(app, ["adapters", "promote", "acme/support", "v2", "--root", str(root)]).exit_code == 0
    )
    shown = json.loads(run(app, ["adapters", "show", "acme/support", "--root", str(root)]).stdout)
    assert shown["version"] == 2 and shown["current"] and shown["kind"] == "prefix"
    assert (
        "kind: lora -> prefix"
        in run(app, ["adapters", "diff", "acme/support", "v1", "v2", "--root", str(root)]).stdout
    )
    assert (
        "acme/support@v1 is now current"
        in run(app, ["adapters", "rollback", "acme/support", "--root", str(root)]).stdout
    )


@pytest.mark.parametrize("version", ["vX", "v0", "1.5", ""])
def test_adapters_cli_refuses_a_bad_version(
    make_adapter: MakeAdapter, tmp_path: Path, version: str
) -> None:
    from typer.testing import CliRunner

    from ragtune.cli import app

    root = tmp_path / "adapters"
    AdapterRegistry(root).register(make_adapter("lora"))
    result = CliRunner().invoke(
        app, ["adapters", "promote", "acme/support", version, "--root", str(root)]
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, AdapterNotFoundError)
    assert "is not a version" in str(result.exception)
    assert AdapterRegistry(root).current_version("acme", "support") == 1


@pytest.mark.parametrize(
    "damage",
    [
        '{"current": 2, "hist',
        '{"history": ["x"]}',
        '{"history": [1, null]}',
        '{"current": true}',
        '{"current": -1}',
        '{"canary": 5}',
        '{"seq": "3"}',
        "[1, 2]",
    ],
)
def test_any_damaged_pointer_is_named_and_promote_repairs_it(
    damage: str, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    registry = AdapterRegistry(tmp_path / "adapters")
    registry.register(make_adapter("lora", seed=1))
    registry.register(make_adapter("lora", seed=2))
    registry.register(make_adapter("lora", seed=3, name="other"))
    (tmp_path / "adapters" / "acme" / "support" / "current.json").write_text(damage)
    with pytest.raises(AdapterCorruptError, match="damaged.*ragtune adapters promote"):
        registry.resolve("acme/support")
    # One damaged name does not hide the others, and says what is wrong with it.
    entries = {e.name: e for e in registry.list()}
    assert entries["other"].current == 1 and not entries["other"].damaged
    assert entries["support"].current is None and "damaged" in entries["support"].damaged
    # The fix the message gives works, from the command it names: promoting rewrites it, and
    # the repair reads back last in the history.
    before = max(e.seq for e in registry.history("acme/support"))
    result = CliRunner().invoke(
        app, ["adapters", "promote", "acme/support", "v2", "--root", str(tmp_path / "adapters")]
    )
    assert result.exit_code == 0, result.output
    assert registry.resolve("acme/support").card.version == 2
    last = registry.history("acme/support")[-1]
    assert (last.action, last.version) == ("promoted", 2) and last.seq > before


def test_history_is_in_pointer_order_whatever_order_events_were_appended(
    make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    """Writers append their event after their compare-and-swap, so two writers can append in
    the other order; each event carries its pointer write's number and is read back by it."""
    registry = AdapterRegistry(tmp_path / "adapters")
    for seed in (1, 2, 3):
        registry.register(make_adapter("lora", seed=seed))
    registry.promote("acme/support", 2)
    registry.promote("acme/support", 3)
    path = tmp_path / "adapters" / "acme" / "support" / "history.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[2], lines[1]]) + "\n")  # appended out of order
    events = registry.history("acme/support")
    assert [(e.action, e.version) for e in events] == [
        ("promoted", 1),
        ("promoted", 2),
        ("promoted", 3),
    ]
    assert [e.seq for e in events] == [1, 2, 3]
    assert json.loads((path.parent / "current.json").read_text())["seq"] == 3


@pytest.mark.parametrize(
    ("root", "message"),
    [
        ("s3://", "names no bucket"),
        ("s3:/bucket/adapters", "one slash"),
        ("file:adapters", "file:///absolute/path"),
        ("gs://bucket/adapters", "not supported"),
    ],
)
def test_roots_that_are_neither_a_folder_nor_a_supported_url_are_refused(
    root: str, message: str, tmp_path: Path
) -> None:
    from ragtune.config import load_config
    from ragtune.errors import ConfigError

    with pytest.raises(AdapterError, match=message):
        AdapterRegistry(root, cache=tmp_path)
    with pytest.raises(ConfigError, match=message):  # `ragtune config validate` says so too
        load_config({"adapters": {"root": root}})


def test_file_urls_name_folders(tmp_path: Path) -> None:
    assert AdapterRegistry(f"file://{tmp_path}/a").root == tmp_path / "a"
    assert AdapterRegistry(f"file://localhost{tmp_path}/a").root == tmp_path / "a"


def test_a_bad_tenant_name_is_refused_as_not_found(
    make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    registry = AdapterRegistry(tmp_path / "adapters")
    with pytest.raises(AdapterNotFoundError, match="tenant"):
        registry.register(make_adapter("lora"), tenant="../x")
    with pytest.raises(AdapterNotFoundError, match="tenant"):
        registry.list("../x")


def test_pointer_max_age_lets_served_requests_reuse_a_read(
    make_adapter: MakeAdapter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    serving = AdapterRegistry(tmp_path / "adapters", pointer_max_age=30.0)
    operator = AdapterRegistry(tmp_path / "adapters")  # another process, say
    serving.register(make_adapter("lora", seed=1))
    serving.register(make_adapter("lora", seed=2))
    assert serving.resolve("acme/support").card.version == 1
    operator.promote("acme/support", 2)
    assert serving.resolve("acme/support").card.version == 1  # within 30 s: the last read
    assert serving.card("acme/support").version == 1
    assert operator.resolve("acme/support").card.version == 2  # max age 0: every read
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + 31.0)
    assert serving.resolve("acme/support").card.version == 2
    serving.rollback("acme/support")  # its own change: seen at once
    assert serving.pointer("acme", "support").current == 1


def test_pointer_max_age_is_a_validated_setting(tmp_path: Path) -> None:
    from ragtune.config import load_config
    from ragtune.errors import ConfigError

    cfg = load_config({"adapters": {"root": str(tmp_path), "pointer_max_age": 5}})
    assert cfg.adapters.registry().pointer_max_age == 5.0
    for bad in (-1, float("inf"), 3601):
        with pytest.raises(ConfigError, match="pointer_max_age"):
            load_config({"adapters": {"pointer_max_age": bad}})
    with pytest.raises(ValueError, match="pointer_max_age"):
        AdapterRegistry(tmp_path, pointer_max_age=-1)
