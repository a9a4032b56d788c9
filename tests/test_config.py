"""Configs: every shipped one validates; bad ones report every problem with its field path."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragtune.cli import app
from ragtune.config import HybridRetrieverConfig, RagtuneConfig, load_config
from ragtune.errors import ConfigError

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


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
        ({"adapter": {"type": "lora"}}, "give exactly one of ref"),
        ({"adapter": {"type": "lora", "ref": "a/b", "path": "x"}}, "give exactly one of ref"),
        ({"adapter": {"type": "ia3", "ref": "a/b"}}, "generator.adapter"),
        ({"dtype": "fp8"}, "generator.dtype"),
        ({"max_new_tokens": 0}, "generator.max_new_tokens"),
    ],
)
def test_bad_generator_sections_name_the_field(generator: dict, message: str) -> None:  # type: ignore[type-arg]
    from ragtune.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_config({"generator": generator})


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
