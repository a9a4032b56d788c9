"""YAML configs: duplicate keys refused, words read as booleans explained (issue 14, 11-12)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragtune.cli import app
from ragtune.config import load_config
from ragtune.errors import ConfigError

TWO_CHECKERS = """\
checker:
  min_support: 0.7
retriever:
  top_k: 3
checker:
  on_unsupported: flag
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_a_key_given_twice_is_an_error_naming_both_lines(tmp_path):
    path = _write(tmp_path, TWO_CHECKERS)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    ((where, message),) = info.value.problems
    assert where == "checker"
    assert "line 1" in message and "line 5" in message and "twice" in message
    result = CliRunner().invoke(app, ["config", "validate", str(path)])
    assert result.exit_code != 0 and "checker" in result.output and "line 5" in result.output


def test_duplicates_inside_sections_and_flow_mappings_are_all_reported(tmp_path):
    """A second instance: nested and inline duplicates, reported together."""
    path = _write(
        tmp_path,
        "generator:\n  max_new_tokens: 64\n  device: cpu\n  max_new_tokens: 96\n"
        "index:\n  lexical: {k1: 1.2, b: 0.7, k1: 2.0}\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = dict(info.value.problems)
    assert set(problems) == {"generator.max_new_tokens", "index.lexical.k1"}
    assert "line 2 and line 4" in problems["generator.max_new_tokens"]
    assert "line 6 and line 6" in problems["index.lexical.k1"]


def test_an_unquoted_no_is_explained_as_a_boolean(tmp_path):
    path = _write(tmp_path, "index:\n  lexical:\n    stopwords: no\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    ((where, message),) = info.value.problems
    assert where == "index.lexical.stopwords"
    assert "'english' or 'none'" in message
    assert "read the unquoted 'no' on line 3 as the boolean false" in message
    assert 'stopwords: "no"' in message


@pytest.mark.parametrize(
    ("yaml_text", "field", "word"),
    [
        # A second instance: other words, other settings that want a word.
        ("checker:\n  on_unsupported: off\n", "checker.on_unsupported", "off"),
        ("generator:\n  device: on\n", "generator.device", "on"),
        ("embedder:\n  backend: yes\n", "embedder.backend", "yes"),
    ],
)
def test_other_words_read_as_booleans_are_explained(tmp_path, yaml_text, field, word):
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, yaml_text))
    ((where, message),) = info.value.problems
    assert where == field and f"unquoted {word!r}" in message and "quote it" in message


def test_booleans_where_booleans_are_wanted_still_work(tmp_path):
    config = load_config(
        _write(tmp_path, "ingest:\n  scrub_pii: no\nchunking:\n  title_in_text: off\n")
    )
    assert config.ingest.scrub_pii is False and config.chunking.title_in_text is False
    quoted = _write(tmp_path, 'index:\n  lexical:\n    stopwords: "none"\n')
    assert load_config(quoted).index.lexical.stopwords == "none"
