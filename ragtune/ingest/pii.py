"""Find personal data in text and replace it with typed placeholders.

:func:`scrub` replaces e-mail addresses, phone numbers, payment cards, IBANs, US social
security numbers and IP addresses with ``[EMAIL]``, ``[PHONE]``, ``[CARD]``, ``[IBAN]``,
``[SSN]`` and ``[IP]``. It keeps a record of every edit, so an offset in the scrubbed text
can be mapped back to the original (:meth:`ScrubResult.to_source`): chunks are cut from
scrubbed text, while citations point at the original document.

The patterns favour precision: a number is only personal data when it has the structure
(separators, a ``+`` country code) or passes the checksum (Luhn for cards, mod-97 for
IBANs) of one. Order numbers, dates, times, versions, prices and ISBNs survive.

Example::

    >>> result = scrub("Write to ana@example.org or call +44 20 7946 0958.")
    >>> result.text
    'Write to [EMAIL] or call [PHONE].'
    >>> dict(result.counts)
    {'EMAIL': 1, 'PHONE': 1}
"""

from __future__ import annotations

import bisect
import functools
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ragtune.ingest.line_ends import to_source

__all__ = ["PII_KINDS", "Edit", "ScrubResult", "scrub"]

PII_KINDS = ("EMAIL", "IBAN", "CARD", "SSN", "IP", "PHONE")
"""The kinds :func:`scrub` detects, most specific first (the order breaks overlap ties)."""


@dataclass(frozen=True)
class Edit:
    """One replacement: ``original[source_start:source_end]`` became ``scrubbed[start:end]``."""

    kind: str
    source_start: int
    source_end: int
    start: int
    end: int


@dataclass(frozen=True)
class ScrubResult:
    """Scrubbed text, how many items of each kind were replaced, and where."""

    text: str
    counts: Mapping[str, int]
    edits: tuple[Edit, ...]

    @functools.cached_property
    def _starts(self) -> tuple[int, ...]:
        # Edits are sorted by position; their starts in the scrubbed text are bisect keys.
        return tuple(edit.start for edit in self.edits)

    def to_source(self, offset: int, *, is_end: bool) -> int:
        """Map an offset in the scrubbed text to the matching offset in the original text.

        An offset strictly inside a placeholder maps to the start of the replaced span
        when it starts a range and to its end when it ends one (``is_end=True``), so a
        range that cuts a placeholder still covers the whole original item.
        """
        return to_source(self.edits, offset, is_end=is_end, starts=self._starts)


# A validator looks at a candidate match and returns how many of its characters are
# personal data (the whole match, or a prefix for IBANs), or None to reject it.
_Validator = Callable[[str], int | None]


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, ch in enumerate(reversed(digits)):
        value = int(ch)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card(candidate: str) -> int | None:
    digits = _digits(candidate)
    if 13 <= len(digits) <= 19 and _luhn_ok(digits) and len(set(digits)) > 1:
        return len(candidate)
    return None


def _iban_ok(compact: str) -> bool:
    if not 11 <= len(compact) - 4 <= 30:
        return False
    rearranged = compact[4:] + compact[:4]
    # ISO 7064 mod 97-10: letters count as 10..35, and a valid IBAN leaves remainder 1.
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _iban(candidate: str) -> int | None:
    # The pattern may run into a following all-caps word ("... 00 SEPA"), so shorter
    # prefixes that end at a group boundary get a chance too, longest first.
    cuts = [len(candidate)] + [i for i in range(len(candidate) - 1, 4, -1) if candidate[i] == " "]
    for cut in cuts:
        if _iban_ok(candidate[:cut].replace(" ", "")):
            return cut
    return None


def _phone(candidate: str) -> int | None:
    return len(candidate) if 7 <= len(_digits(candidate)) <= 15 else None


def _ipv6(candidate: str) -> int | None:
    # Compressed forms without a digit are mostly words ("A::B", "dead::beef" in code).
    if candidate.count(":") == 7 or any(ch.isdigit() for ch in candidate):
        return len(candidate)
    return None


def _whole(candidate: str) -> int | None:
    return len(candidate)


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_HEX = r"[0-9A-Fa-f]{1,4}"
_IPV6 = "|".join(
    [
        rf"(?:{_HEX}:){{7}}{_HEX}",
        rf"(?:{_HEX}:){{1,7}}:",
        rf"(?:{_HEX}:){{1,6}}:{_HEX}",
        rf"(?:{_HEX}:){{1,5}}(?::{_HEX}){{1,2}}",
        rf"(?:{_HEX}:){{1,4}}(?::{_HEX}){{1,3}}",
        rf"(?:{_HEX}:){{1,3}}(?::{_HEX}){{1,4}}",
        rf"(?:{_HEX}:){{1,2}}(?::{_HEX}){{1,5}}",
        rf"{_HEX}:(?::{_HEX}){{1,6}}",
        rf":(?::{_HEX}){{1,7}}",
    ]
)

_IBAN_RE = re.compile(r"(?<!\w)[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?!\w)")

_PATTERNS: tuple[tuple[str, re.Pattern[str], _Validator], ...] = (
    (
        "EMAIL",
        re.compile(
            r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@"
            r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
            r"\.[A-Za-z]{2,}(?![\w-])"
        ),
        _whole,
    ),
    ("IBAN", _IBAN_RE, _iban),
    (
        "CARD",
        # Contiguous digits, or the printed groupings (4-4-4-4[-3], Amex 4-6-5) with one
        # kind of separator throughout.
        re.compile(
            r"(?<![\w-])(?:\d{13,19}"
            r"|\d{4}(?P<s1>[ -])\d{4}(?P=s1)\d{4}(?P=s1)\d{1,4}(?:(?P=s1)\d{1,3})?"
            r"|\d{4}(?P<s2>[ -])\d{6}(?P=s2)\d{4,5})"
            r"(?!\w)(?!-\d)"
        ),
        _card,
    ),
    (
        "SSN",
        re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-])"),
        _whole,
    ),
    (
        "IP",
        # The look-behinds keep versions (v1.2.3.4, 1.2.3.4.5) and longer dotted numbers.
        re.compile(rf"(?<![\w.])(?<!\d\.){_OCTET}(?:\.{_OCTET}){{3}}(?!\d|\.\d)"),
        _whole,
    ),
    ("IP", re.compile(rf"(?<![\w:.])(?:{_IPV6})(?![\w:])"), _ipv6),
    (
        "PHONE",
        # International: "+CC" then groups with separators, or "+CC" and digits only.
        re.compile(
            r"(?<![\w+])\+\d{1,3}"
            r"(?:(?:[ .-]?\(\d{1,4}\)[ .-]?\d{1,5}|[ .-]\d{1,5})(?:[ .-]\d{1,5}){1,5}|\d{6,14})"
            r"(?!\w)(?![.-]\d)"
        ),
        _phone,
    ),
    (
        "PHONE",
        # North American: (555) 123-4567, 555-123-4567, 555.123.4567, optional leading 1.
        re.compile(
            r"(?<![\w.+-])(?:1[ .-])?"
            r"(?:\(\d{3}\) ?\d{3}[ .-]\d{4}|\d{3}(?P<sep>[.-])\d{3}(?P=sep)\d{4})"
            r"(?!\w)(?![.-]\d)"
        ),
        _phone,
    ),
)

_PRIORITY = {kind: rank for rank, kind in enumerate(PII_KINDS)}


def _inside(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    """Whether ``[start, end)`` lies within one of ``spans`` (sorted, not overlapping)."""
    index = bisect.bisect_right(spans, start, key=lambda span: span[0]) - 1
    return index >= 0 and end <= spans[index][1]


def _find(text: str) -> list[tuple[int, int, str]]:
    """All accepted matches as ``(start, end, kind)``, sorted, with overlaps resolved."""
    candidates: list[tuple[int, int, str]] = []
    # Digits inside an IBAN-shaped run are account digits even when the check fails (a
    # typo): a Luhn-valid stretch of them is not a card.
    iban_shaped = [m.span() for m in _IBAN_RE.finditer(text)]
    for kind, pattern, validate in _PATTERNS:
        for match in pattern.finditer(text):
            length = validate(match.group())
            start, end = match.start(), match.start() + (length or 0)
            if not length or (kind == "CARD" and _inside(start, end, iban_shaped)):
                continue
            candidates.append((start, end, kind))
    # Longer matches win, then the more specific kind: a card inside an IBAN, or digits a
    # phone pattern also fits, are replaced once, as the bigger, checksummed item.
    candidates.sort(key=lambda c: (-(c[1] - c[0]), _PRIORITY[c[2]], c[0]))
    taken: list[tuple[int, int, str]] = []  # sorted, never overlapping
    for candidate in candidates:
        start, end, _ = candidate
        # Only the last taken span that starts before this one ends can overlap it.
        index = bisect.bisect_left(taken, (end,))
        if index == 0 or taken[index - 1][1] <= start:
            taken.insert(index, candidate)
    return taken


def scrub(text: str) -> ScrubResult:
    """Replace personal data in ``text`` with placeholders such as ``[EMAIL]``.

    Returns the scrubbed text, the number of replacements per kind (only kinds found),
    and the edits that :meth:`ScrubResult.to_source` uses to map offsets back.
    """
    parts: list[str] = []
    edits: list[Edit] = []
    counts: Counter[str] = Counter()
    cursor = 0  # in the original text
    length = 0  # of the scrubbed text built so far
    for source_start, source_end, kind in _find(text):
        kept = text[cursor:source_start]
        placeholder = f"[{kind}]"
        parts += [kept, placeholder]
        start = length + len(kept)
        length = start + len(placeholder)
        edits.append(Edit(kind, source_start, source_end, start, length))
        counts[kind] += 1
        cursor = source_end
    parts.append(text[cursor:])
    return ScrubResult(text="".join(parts), counts=dict(counts), edits=tuple(edits))
