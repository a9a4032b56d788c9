"""Configs: every shipped one validates; bad ones report every problem with its field path."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragtune.cli import app
from ragtune.config import HybridRetrieverConfig, RagtuneConfig, load_config
from ragtune.errors import ConfigError

ROOT = Path(__file__).parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def test_there_are_shipped_configs():
    assert any(p.name == "default.yaml" for p in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_validates(path):
    assert isinstance(load_config(path), RagtuneConfig)


def test_defaults_are_the_embedded_setup():
    config = load_config(None)
    assert config.embedder.model == "all-minilm-l6-v2"
    assert isinstance(config.retriever, HybridRetrieverConfig)
    assert config.ingest.scrub_pii is True


def test_every_problem_is_reported_with_its_path(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "embedder:\n  batch_size: 0\n  modle: x\n"
        "chunking:\n  chunk_tokens: 100\n  overlap_tokens: 200\n"
        "retriever:\n  type: hybrid\n  top_k: -1\n  dense_weigth: 1\n"
        "index:\n  vectors: {type: ivf-pq, nlist: 4, nprobe: 8}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    paths = {path for path, _ in info.value.problems}
    assert {
        "embedder.batch_size",
        "embedder.modle",
        "chunking",
        "retriever.top_k",
        "retriever.dense_weigth",
        "index.vectors",
    } <= paths
    assert "unknown field" in str(info.value)


def test_unknown_stage_type_names_the_choices():
    with pytest.raises(ConfigError) as info:
        load_config({"retriever": {"type": "semantic"}})
    ((path, message),) = info.value.problems
    assert path == "retriever" and "dense" in message and "hybrid" in message


def test_yaml_syntax_error_names_the_line(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("embedder:\n  model: [unclosed\nchunking: {}\n")
    with pytest.raises(ConfigError, match="line"):
        load_config(broken)


def test_non_mapping_and_missing_files(tmp_path):
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listing)
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.yaml")


def test_config_validate_command(tmp_path):
    good, bad = CONFIGS[0], tmp_path / "bad.yaml"
    bad.write_text("retriever:\n  top_k: zero\n")
    runner = CliRunner()
    ok = runner.invoke(app, ["config", "validate", str(good)])
    assert ok.exit_code == 0 and "ok" in ok.output
    failed = runner.invoke(app, ["config", "validate", str(good), str(bad)])
    assert failed.exit_code == 1 and "retriever.top_k" in failed.output


@pytest.mark.parametrize(
    ("generator", "message"),
    [
        ({"dtype": "fp8"}, "generator.dtype"),
        ({"max_new_tokens": 0}, "generator.max_new_tokens"),
        ({"max_new_tokens": 4, "min_new_tokens": 9}, "cannot exceed max_new_tokens"),
        ({"adapter": {"type": "lora", "ref": "acme/x"}}, "generator.adapter moved to adapters"),
        ({"adapters_root": "x"}, "moved to adapters.root"),
    ],
)
def test_bad_generator_sections_name_the_field(generator: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=message):
        load_config({"generator": generator})


@pytest.mark.parametrize(
    ("adapters", "path", "message"),
    [
        ({"defaults": {"acme": {"type": "lora"}}}, "adapters.defaults.acme", "exactly one of ref"),
        (
            {"defaults": {"acme": {"type": "lora", "ref": "a/b", "path": "x"}}},
            "adapters.defaults.acme",
            "exactly one of ref",
        ),
        (
            {"defaults": {"acme": {"type": "ia3", "ref": "acme/b"}}},
            "adapters.defaults.acme",
            "'none', 'prompt', 'prefix', 'lora'",
        ),
        (
            {"defaults": {"acme": {"type": "lora", "ref": "globex/support"}}},
            "adapters",
            "a tenant's default must be one of its own adapters",
        ),
        (
            {"defaults": {"acme": {"type": "lora", "ref": "not a ref"}}},
            "adapters.defaults.acme",
            "is not an adapter: write tenant/name",
        ),
        ({"max_loaded": 0}, "adapters.max_loaded", "greater than or equal to 1"),
    ],
)
def test_bad_adapter_sections_name_the_field(adapters: dict, path: str, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as info:
        load_config({"adapters": adapters})
    ((where, what),) = info.value.problems
    assert where == path and message in what


def test_error_paths_are_the_yaml_paths_not_pydantic_tags() -> None:
    """An unknown key under a LoRA training adapter is train.adapter.bogus, not
    train.adapter.lora.bogus (the tag pydantic inserts after a tagged union)."""
    with pytest.raises(ConfigError) as info:
        load_config(
            {
                "train": {"adapter": {"type": "lora", "bogus": 1}},
                "retriever": {"type": "dense", "top_k": 0},
                "index": {"vectors": {"type": "hnsw", "m": 1}},
            }
        )
    paths = {path for path, _ in info.value.problems}
    assert {"train.adapter.bogus", "retriever.top_k", "index.vectors.m"} <= paths


def test_tenant_defaults_become_concrete_choices() -> None:
    from ragtune.types import NO_ADAPTER, AdapterFolder, AdapterRef

    config = load_config(
        {
            "adapters": {
                "defaults": {
                    "acme": {"type": "prompt", "ref": "acme/support"},
                    "globex": {"type": "lora", "path": "folders/globex"},
                }
            }
        }
    )
    defaults = config.assistant_policy().adapters
    assert defaults.for_tenant("acme") == AdapterRef("acme", "support")
    assert defaults.for_tenant("globex") == AdapterFolder(Path("folders/globex"))
    assert defaults.for_tenant("initech") == NO_ADAPTER
    assert defaults.for_tenant(None) == NO_ADAPTER


def test_each_setting_is_declared_once_with_one_default() -> None:
    """A config section's defaults are its stage dataclass's: they cannot drift apart."""
    from ragtune.check import CheckerSettings
    from ragtune.generate import DecodeSettings, GeneratorSettings, LoraSpec, ModelSettings
    from ragtune.index import EmbedderSettings, FlatSpec, LexicalSpec
    from ragtune.ingest.chunking import ChunkingSettings, IngestSettings
    from ragtune.live import LiveSettings
    from ragtune.policy import AnswerPolicy, GuardPolicy
    from ragtune.retrieve import FusionSettings
    from ragtune.synth import EndpointSettings, SynthSettings
    from ragtune.train.loop import TrainSettings

    config = load_config(None)
    pairs = [
        (config.generator, DecodeSettings()),
        (config.generator, GeneratorSettings()),
        (config.generator, ModelSettings()),
        (config.checker, CheckerSettings()),
        (config.checker, AnswerPolicy()),
        (config.guard, GuardPolicy()),
        (config.retriever, FusionSettings()),
        (config.train.loop, TrainSettings()),
        (config.train.adapter, LoraSpec()),
        (config.embedder, EmbedderSettings()),
        (config.chunking, ChunkingSettings()),
        (config.ingest, IngestSettings()),
        (config.index.vectors, FlatSpec()),
        (config.index.lexical, LexicalSpec()),
        (config.live, LiveSettings()),
        (config.synth, SynthSettings()),
        (config.synth.endpoint, EndpointSettings()),
    ]
    import dataclasses

    for section, stage in pairs:
        for f in dataclasses.fields(stage):
            assert getattr(section, f.name) == getattr(stage, f.name), (type(stage), f.name)


def test_bad_checker_and_guard_sections_name_the_field() -> None:
    from ragtune.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_config(
            {
                "checker": {"on_unsupported": "ignore", "signals": ["vibes"]},
                "guard": {
                    "denied_topics": [{"name": "x"}, {"name": "y", "patterns": ["(unclosed"]}]
                },
            }
        )
    message = str(info.value)
    assert "checker.on_unsupported" in message and "checker.signals" in message
    assert "give keywords, patterns or a description" in message
    assert "not a valid regular expression" in message


@pytest.mark.parametrize(
    ("grounding", "model", "message"),
    [
        ("/nonexistent/grounding", "smollm2-135m-instruct", "neither shipped, none nor a folder"),
        ("shipped", "/some/own/model", "ships a grounding adapter only for"),
    ],
)
def test_a_grounding_that_cannot_load_is_a_config_error(grounding, model, message, tmp_path):  # type: ignore[no-untyped-def]
    import yaml

    raw = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    raw["generator"]["grounding"] = grounding
    raw["generator"]["model"] = model
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_a_grounding_folder_without_an_adapter_is_a_config_error(tmp_path):  # type: ignore[no-untyped-def]
    import yaml

    raw = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    (tmp_path / "empty").mkdir()
    raw["generator"]["grounding"] = str(tmp_path / "empty")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="holds no adapter_config.json"):
        load_config(path)


def test_the_synth_section_matches_the_default_yaml_and_names_bad_fields() -> None:
    from ragtune.errors import ConfigError

    shipped = load_config(ROOT / "configs" / "default.yaml")
    assert shipped.synth == load_config(None).synth
    with pytest.raises(ConfigError) as raised:
        load_config(
            {"synth": {"teacher": "oracle", "per_chunk": 0, "endpoint": {"api_key": "sk-x"}}}
        )
    paths = {path for path, _message in raised.value.problems}
    assert {"synth.teacher", "synth.per_chunk", "synth.endpoint.api_key"} <= paths
