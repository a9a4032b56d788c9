"""Reading a YAML config without YAML's two silent surprises.

- **Duplicate keys.** YAML parsers keep the last of two equal keys, so a second ``checker:``
  block silently drops the first. :func:`load_yaml` refuses them, naming the key and both lines.
- **Words read as booleans.** YAML 1.1 (PyYAML) reads unquoted ``yes``, ``no``, ``on`` and ``off``
  as ``true``/``false``. Where a setting wants a boolean that is what the user meant; where it
  wants a word (``stopwords: no``) the error would only say the value is wrong. The loader
  remembers where it read such a word, and :func:`explain_yaml_booleans` adds to a validation
  error at that place that the value was read as a boolean and should be quoted.

>>> document = load_yaml("index:\\n  lexical: {stopwords: no}\\n", source="c.yaml")
>>> document
{'index': {'lexical': {'stopwords': False}}}
>>> document.booleans[0].path, document.booleans[0].line, document.booleans[0].word
('index.lexical.stopwords', 2, 'no')
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml

from ragtune.errors import ConfigError

__all__ = ["BooleanWord", "YamlDocument", "explain_yaml_booleans", "load_yaml"]

_BOOL_TAG = "tag:yaml.org,2002:bool"
_MERGE = "<<"
T = TypeVar("T")


@dataclass(frozen=True)
class BooleanWord:
    """An unquoted word YAML read as a boolean (``no`` -> false), and where."""

    path: str
    line: int
    word: str
    value: bool


class YamlDocument(dict[str, Any]):
    """A config's top-level mapping, with the words YAML read as booleans in it."""

    booleans: tuple[BooleanWord, ...] = ()


def load_yaml(text: str, *, source: str) -> YamlDocument | Any:
    """Parse a YAML config; duplicate keys raise :class:`ConfigError` (all of them at once).

    A top-level mapping comes back as a :class:`YamlDocument` (a dict); anything else as
    PyYAML gives it, for the caller to refuse. Raises ``yaml.YAMLError`` for broken YAML.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        duplicates = list(_duplicate_keys(node, ""))
        if duplicates:
            raise ConfigError(source, duplicates)
        data = loader.construct_document(node)
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        return data
    document = YamlDocument(data)
    document.booleans = tuple(_boolean_words(node, ""))
    return document


def explain_yaml_booleans(validate: Callable[[Any, str], T], data: Any, source: str) -> T:
    """``validate(data, source)``, with a note on each problem where YAML read a word as a
    boolean: the value to quote, and its line."""
    try:
        return validate(data, source)
    except ConfigError as error:
        booleans = {b.path: b for b in getattr(data, "booleans", ())}
        if not any(path in booleans for path, _ in error.problems):
            raise
        problems = []
        for path, message in error.problems:
            word = booleans.get(path)
            if word is not None:
                message += (
                    f" (YAML read the unquoted {word.word!r} on line {word.line} as the boolean "
                    f"{str(word.value).lower()}; quote it, {path.rsplit('.', 1)[-1]}: "
                    f'"{word.word}", if you mean the word)'
                )
            problems.append((path, message))
        raise ConfigError(error.source, problems) from None


def _join(path: str, part: object) -> str:
    return f"{path}.{part}" if path else str(part)


def _duplicate_keys(node: yaml.Node, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, yaml.MappingNode):
        first_line: dict[object, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else repr(key_node)
            line = key_node.start_mark.line + 1
            if key != _MERGE and key in first_line:
                yield (
                    _join(path, key),
                    f"the key {key!r} appears twice, on line {first_line[key]} and line {line}; "
                    "YAML would keep only the second and silently drop the first. Merge them "
                    "into one",
                )
            first_line.setdefault(key, line)
            yield from _duplicate_keys(value_node, _join(path, key))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, _join(path, index))


def _boolean_words(node: yaml.Node, path: str) -> Iterator[BooleanWord]:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else repr(key_node)
            yield from _boolean_words(value_node, _join(path, key))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _boolean_words(item, _join(path, index))
    elif (
        isinstance(node, yaml.ScalarNode)
        and node.tag == _BOOL_TAG
        and node.style is None  # quoted scalars are strings already
        and node.value.lower() not in ("true", "false")
    ):
        value = node.value.lower() in ("yes", "on", "y")
        yield BooleanWord(path, node.start_mark.line + 1, node.value, value)
