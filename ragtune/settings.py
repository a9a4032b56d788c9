"""Settings are declared once: a frozen dataclass per stage, its bounds in the type hints.

A stage's settings dataclass (``DecodeSettings``, ``LoraSpec``, ``TrainSettings`` ...) declares
each field once, with its default, its bounds as ``Annotated[int, Ge(1), Le(4096)]``
(`annotated-types <https://github.com/annotated-types/annotated-types>`_) and a docstring. The
stage uses it; :mod:`ragtune.config` validates a YAML section against it (pydantic reads the same
bounds) and only assembles. :func:`check_bounds`, called from each dataclass's
``__post_init__``, applies the same bounds when a settings object is made in Python.

>>> from ragtune.generate.decoding import DecodeSettings
>>> DecodeSettings(max_new_tokens=0, top_p=2.0)
Traceback (most recent call last):
...
ValueError: max_new_tokens must be >= 1, got 0; top_p must be <= 1.0, got 2.0
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Hashable
from functools import cache
from typing import Any, TypeVar, cast

import annotated_types as at

__all__ = ["check_bounds", "pick"]

T = TypeVar("T")
_UNIONS = (typing.Union, types.UnionType)


@cache
def _bounds(cls: type) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    # Each base class's annotations resolve in its own module (get_type_hints walks the MRO).
    hints = typing.get_type_hints(cls, include_extras=True)
    found = []
    for f in dataclasses.fields(cls):
        hint = hints.get(f.name)
        options = typing.get_args(hint) if typing.get_origin(hint) in _UNIONS else (hint,)
        metadata = [m for option in options for m in getattr(option, "__metadata__", ())]
        if metadata:  # Annotated[int, Ge(1)], also inside Optional[...]
            found.append((f.name, tuple(metadata)))
    return tuple(found)


def check_bounds(obj: Any) -> None:
    """Raise ``ValueError`` when a field of the dataclass ``obj`` breaks an ``Annotated`` bound
    (``Ge``, ``Gt``, ``Le``, ``Lt``, ``MinLen``, ``MaxLen``); a None value is not checked."""
    problems = []
    for name, metadata in _bounds(cast(Hashable, type(obj))):
        value = getattr(obj, name)
        if value is None:
            continue
        for bound in metadata:
            problem = _broken(bound, value)
            if problem:
                problems.append(f"{name} must be {problem}, got {value!r}")
    if problems:
        raise ValueError("; ".join(problems))


def _broken(bound: Any, value: Any) -> str | None:
    if isinstance(bound, at.Ge) and not value >= bound.ge:
        return f">= {bound.ge}"
    if isinstance(bound, at.Gt) and not value > bound.gt:
        return f"> {bound.gt}"
    if isinstance(bound, at.Le) and not value <= bound.le:
        return f"<= {bound.le}"
    if isinstance(bound, at.Lt) and not value < bound.lt:
        return f"< {bound.lt}"
    if isinstance(bound, at.MinLen) and len(value) < bound.min_length:
        return f"at least {bound.min_length} long"
    if isinstance(bound, at.MaxLen) and len(value) > bound.max_length:
        return f"at most {bound.max_length} long"
    return None


def pick(cls: type[T], source: Any, **overrides: Any) -> T:
    """A ``cls`` settings object from the same-named fields of ``source`` (a config section
    that carries them), with ``overrides``: how the config hands a stage its own settings."""
    values = {f.name: getattr(source, f.name) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**(values | overrides))
