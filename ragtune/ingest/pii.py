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
from ragtune.text import SPACELESS

__all__ = ["PHONE_REGIONS", "PII_KINDS", "Edit", "ScrubResult", "scrub"]

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


# Issuer identification number ranges and the lengths each issuer uses (ISO/IEC 7812 as
# the networks publish them). A Luhn-valid number outside them is a timestamp, a catalogue
# number or a tracking reference, not a card.
_CARD_ISSUERS: tuple[tuple[tuple[str, ...], tuple[int, ...]], ...] = (
    (("4",), (13, 16, 19)),  # Visa
    (("51-55", "2221-2720"), (16,)),  # Mastercard
    (("34", "37"), (15,)),  # American Express
    (("6011", "644-649", "65"), (16, 17, 18, 19)),  # Discover
    (("62", "81"), (16, 17, 18, 19)),  # UnionPay
    (("3528-3589",), (16, 17, 18, 19)),  # JCB
    (("300-305", "3095", "36", "38-39"), (14, 15, 16, 17, 18, 19)),  # Diners Club
    (
        ("5018", "5020", "5038", "5893", "6304", "6759", "6761-6763"),
        tuple(range(12, 20)),
    ),  # Maestro
    (("2200-2204",), (16, 17, 18, 19)),  # Mir
    (("60", "6521-6522", "508", "353", "356"), (16,)),  # RuPay
    (("636",), (16, 17, 18, 19)),  # InterPayment
    (("5019",), (16,)),  # Dankort
    (
        (
            "4011",
            "4312",
            "4389",
            "4514",
            "4576",
            "5041",
            "5066-5067",
            "509",
            "6277",
            "6362",
            "6363",
            "650",
            "6516",
            "6550",
        ),
        (16,),
    ),  # Elo
    (("606282", "3841"), (16, 19)),  # Hipercard
    (("9792",), (16,)),  # Troy
    (("5061", "6500-6509", "507865-507964"), (16, 18, 19)),  # Verve
)


def _issuer_lengths(digits: str) -> tuple[int, ...]:
    """The lengths the issuer whose range ``digits`` starts in uses (empty: no issuer)."""
    lengths: set[int] = set()
    for ranges, allowed in _CARD_ISSUERS:
        for span in ranges:
            low, _, high = span.partition("-")
            prefix = digits[: len(low)]
            if low <= prefix <= (high or low):
                lengths.update(allowed)
    return tuple(sorted(lengths))


def _card(candidate: str) -> int | None:
    digits = _digits(candidate)
    if (
        13 <= len(digits) <= 19
        and len(digits) in _issuer_lengths(digits)
        and _luhn_ok(digits)
        and len(set(digits)) > 1
    ):
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

# A number glued to Latin letters or digits is part of a code ("SKU4111...", "v1.2.3.4"); text
# in other scripts may touch it directly ("电话4155550142", "карта4111..."), as Chinese,
# Japanese and Thai are written without spaces.
_CODE = r"[0-9A-Za-z_\u00c0-\u024f]"
_CODE_CHAR = re.compile(_CODE)
# Letters and digits of an e-mail address (RFC 6531 allows any script's), except those of
# scripts written without spaces, which are the text around it: "邮箱ana@example.org".
_MAIL = rf"[^\W{SPACELESS}]"
_LABEL = rf"[^\W_{SPACELESS}](?:(?:[^\W_{SPACELESS}]|-)*[^\W_{SPACELESS}])?"

_IBAN_RE = re.compile(
    rf"(?<!{_CODE})[A-Z]{{2}}\d{{2}}(?: ?[A-Z0-9]{{4}}){{2,7}}(?: ?[A-Z0-9]{{1,3}})?(?!{_CODE})"
)

_PATTERNS: tuple[tuple[str, re.Pattern[str], _Validator], ...] = (
    (
        "EMAIL",
        re.compile(
            rf"(?<!{_MAIL})(?<![.%+-])(?:{_MAIL}|[.%+-])+@{_LABEL}(?:\.{_LABEL})*"
            rf"\.[^\W\d_{SPACELESS}]{{2,}}(?!{_MAIL}|-)"
        ),
        _whole,
    ),
    ("IBAN", _IBAN_RE, _iban),
    (
        "CARD",
        # Contiguous digits, or the printed groupings (4-4-4-4[-3], Amex 4-6-5) with one
        # kind of separator throughout.
        re.compile(
            rf"(?<!{_CODE})(?<!-)(?:\d{{13,19}}"
            r"|\d{4}(?P<s1>[ -])\d{4}(?P=s1)\d{4}(?P=s1)\d{1,4}(?:(?P=s1)\d{1,3})?"
            r"|\d{4}(?P<s2>[ -])\d{6}(?P=s2)\d{4,5})"
            rf"(?!{_CODE})(?!-\d)"
        ),
        _card,
    ),
    (
        "SSN",
        re.compile(
            rf"(?<!{_CODE})(?<!-)(?!000|666|9\d\d)\d{{3}}-(?!00)\d{{2}}-(?!0000)\d{{4}}(?!{_CODE}|-)"
        ),
        _whole,
    ),
    (
        "IP",
        # The look-behinds keep versions (v1.2.3.4, 1.2.3.4.5) and longer dotted numbers.
        re.compile(rf"(?<!{_CODE})(?<!\.)(?<!\d\.){_OCTET}(?:\.{_OCTET}){{3}}(?!\d|\.\d)"),
        _whole,
    ),
    ("IP", re.compile(rf"(?<!{_CODE})(?<![:.])(?:{_IPV6})(?!{_CODE}|:)"), _ipv6),
)

_PRIORITY = {kind: rank for rank, kind in enumerate(PII_KINDS)}

PHONE_REGIONS = ("US", "GB")
"""Regions whose national numbers are recognised without a country code: the North American
plan (with its ``011`` international prefix) and the UK's (numbers starting with 0, and the
``00`` international prefix most of the world dials). Numbers with ``+`` and a country code
are recognised for every country."""


def _regions_for(window: str) -> tuple[str, ...]:
    """The region to parse a candidate in: a ``+`` number parses the same in any; a national
    number starting with 0 (or the ``00`` prefix) is read as GB's, any other as NANP's (with
    its ``011`` prefix)."""
    digits = window.lstrip("(")
    if digits.startswith("0") and not digits.startswith("011"):
        return ("GB",)
    return ("US",)


# Where a phone number could be: a digit run with phone separators (phonenumbers then decides).
_PHONE_WINDOW = re.compile(r"[+(]?\d[\d \t().\-/\u00a0]{5,}\d")
# The North American layout: (555) 123-4567, 555-123-4567, 555.123.4567, +1 555 123 4567.
_NANP_LAYOUT = re.compile(r"(?:\+?1[ .-]?)?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}")


def _phones(text: str) -> list[tuple[int, int]]:
    """Spans of phone numbers, found by Google's libphonenumber (the ``phonenumbers`` package).

    A number counts when libphonenumber says it is valid and written in groups its country
    writes (``STRICT_GROUPING``: spaces, dots, dashes, brackets, ``+``/``00``/``011``
    prefixes, or no separators at all), or when it is written in the North American layout (examples and test data use the
    fictional 555 numbers, which stand for real ones). Latin letters or digits directly
    before or after make it part of a code instead.
    """
    import phonenumbers

    possible, strict = phonenumbers.Leniency.POSSIBLE, phonenumbers.Leniency.STRICT_GROUPING
    spans: set[tuple[int, int]] = set()
    for window in _PHONE_WINDOW.finditer(text):
        if sum(ch.isdigit() for ch in window.group()) < 7:
            continue  # shorter than any number with its area code
        low, high = max(0, window.start() - 1), min(len(text), window.end() + 1)
        piece = text[low:high]
        for region in _regions_for(window.group()):
            for match in phonenumbers.PhoneNumberMatcher(piece, region, leniency=possible):
                start, end = low + match.start, low + match.end
                if _CODE_CHAR.match(text, end) or (start > 0 and _CODE_CHAR.match(text, start - 1)):
                    continue  # glued to letters or digits: a code
                laid_out = match.number.country_code == 1 and _NANP_LAYOUT.fullmatch(
                    match.raw_string
                )
                # Valid, and grouped the way its country writes it (or not grouped at all).
                grouped = laid_out or any(
                    phonenumbers.PhoneNumberMatcher(match.raw_string, region, leniency=strict)
                )
                if grouped:
                    spans.add((start, end))
    return sorted(spans)


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
    candidates += [(start, end, "PHONE") for start, end in _phones(text)]
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
