"""Tests for personal-data scrubbing: true positives, near misses, counts, offset mapping."""

from __future__ import annotations

import random

import pytest

from ragtune.ingest.pii import PII_KINDS, ScrubResult, scrub

POSITIVES = [
    ("ana.b+news@example.co.uk", "EMAIL"),
    ("j_doe@mail-server.org", "EMAIL"),
    ("+44 20 7946 0958", "PHONE"),
    ("+1 (555) 123-4567", "PHONE"),
    ("+33 1 23 45 67 89", "PHONE"),
    ("+44 (0)20 7946 0958", "PHONE"),
    ("+4915112345678", "PHONE"),
    ("(555) 123-4567", "PHONE"),
    ("555-123-4567", "PHONE"),
    ("555.123.4567", "PHONE"),
    ("1-800-555-0199", "PHONE"),
    ("4111 1111 1111 1111", "CARD"),
    ("4111-1111-1111-1111", "CARD"),
    ("5500005555555559", "CARD"),
    ("3782 822463 10005", "CARD"),
    ("DE89 3704 0044 0532 0130 00", "IBAN"),
    ("DE89370400440532013000", "IBAN"),
    ("GB82 WEST 1234 5698 7654 32", "IBAN"),
    ("FR14 2004 1010 0505 0001 3M02 606", "IBAN"),
    ("123-45-6789", "SSN"),
    ("192.168.1.10", "IP"),
    ("10.0.0.1", "IP"),
    ("2001:0db8:85a3:0000:0000:8a2e:0370:7334", "IP"),
    ("2001:db8::1", "IP"),
    ("fe80::1ff:fe23:4567:890a", "IP"),
    ("::1", "IP"),
]

NEAR_MISSES = [
    "Order #10482913",
    "ORD-2024-000123",
    "INV 2024 0042 17",
    "2024-03-15",
    "15/03/2024",
    "03.15.2024",
    "2024-03-15T12:30:45",
    "12:30:45",
    "10:30",
    "1.2.3",
    "v2.10.4.1",
    "1.2.3.4.5",
    "Python 3.11.7",
    "256.1.1.1",
    "$1,299.00",
    "4111 1111 1111 1112",  # fails the Luhn check
    "4111111111111112",
    "0000000000000000",  # Luhn-valid but no card
    "DE89 3704 0044 0532 0130 01",  # wrong IBAN check digits
    "DE88370400440532013000",
    "123456789",  # an SSN needs its dashes
    "000-12-3456",
    "666-12-3456",
    "900-12-3456",
    "123-00-4567",
    "123-45-0000",
    "12.5%",
    "up 3.75 % on the year",
    "ISBN 978-3-16-148410-0",
    "ISBN 0-306-40615-2",
    "90210",
    "90210-1234",
    "SW1A 1AA",
    "555-1234",
    "+1",
    "std::vector",
    "A::B",
    "ab@c",
]


@pytest.mark.parametrize(("item", "kind"), POSITIVES)
def test_each_kind_is_replaced(item: str, kind: str) -> None:
    text = f"Contact: {item}. Thanks"
    result = scrub(text)
    assert result.text == f"Contact: [{kind}]. Thanks"
    assert result.counts == {kind: 1}
    (edit,) = result.edits
    assert text[edit.source_start : edit.source_end] == item
    assert result.text[edit.start : edit.end] == f"[{kind}]"


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_survive(text: str) -> None:
    sentence = f"See {text} for details."
    result = scrub(sentence)
    assert result.text == sentence
    assert result.counts == {}
    assert result.edits == ()


def test_counts_per_kind() -> None:
    text = (
        "Mail ana@example.org or bo@example.org, call 555-123-4567 or +44 20 7946 0958, "
        "pay with 4111 1111 1111 1111 to DE89 3704 0044 0532 0130 00, SSN 123-45-6789, "
        "host 10.0.0.1 and 2001:db8::1. Order #10482913 ships 2024-03-15 at 12:30:45."
    )
    result = scrub(text)
    assert result.counts == {"EMAIL": 2, "PHONE": 2, "CARD": 1, "IBAN": 1, "SSN": 1, "IP": 2}
    assert "Order #10482913 ships 2024-03-15 at 12:30:45." in result.text
    assert set(result.counts) <= set(PII_KINDS)


def test_overlaps_are_replaced_once_by_the_bigger_item() -> None:
    # The IBAN's digits hold Luhn-valid runs; the address holds a phone-shaped run.
    text = "IBAN DE89 3704 0044 0532 0130 00, mail 555-123-4567@example.com"
    result = scrub(text)
    assert result.text == "IBAN [IBAN], mail [EMAIL]"
    assert result.counts == {"IBAN": 1, "EMAIL": 1}


def test_iban_followed_by_a_capitalised_word() -> None:
    result = scrub("Pay DE89 3704 0044 0532 0130 00 SEPA only")
    assert result.text == "Pay [IBAN] SEPA only"


def test_to_source_is_identity_without_personal_data() -> None:
    text = "Order #10482913 shipped on 2024-03-15 (version 1.2.3)."
    result = scrub(text)
    assert result.text == text
    for offset in range(len(text) + 1):
        assert result.to_source(offset, is_end=False) == offset
        assert result.to_source(offset, is_end=True) == offset


def test_to_source_inside_a_placeholder() -> None:
    text = "mail ana@example.org now"
    result = scrub(text)
    (edit,) = result.edits
    assert (edit.start, edit.end) == (5, 12)
    assert (edit.source_start, edit.source_end) == (5, 20)
    assert result.to_source(5, is_end=False) == 5
    assert result.to_source(5, is_end=True) == 5
    assert result.to_source(8, is_end=False) == 5  # a range starting inside covers the item
    assert result.to_source(8, is_end=True) == 20  # a range ending inside covers the item
    assert result.to_source(12, is_end=True) == 20
    assert result.to_source(13, is_end=False) == 21
    assert result.to_source(len(result.text), is_end=True) == len(text)


WORDS = ["alpha", "beta", "order", "on", "the", "Leave", "policy,", "ships", "x"]


def _check_alignment(original: str, result: ScrubResult) -> None:
    inside = {i for e in result.edits for i in range(e.start, e.end)}
    previous = 0
    for offset in range(len(result.text) + 1):
        source = result.to_source(offset, is_end=False)
        assert source >= previous  # the mapping never goes backwards
        previous = source
        if offset not in inside and offset < len(result.text):
            assert original[source] == result.text[offset]
    # Cutting out the edits from both sides leaves the same text.
    kept_source, kept, cursor_source, cursor = [], [], 0, 0
    for e in result.edits:
        kept_source.append(original[cursor_source : e.source_start])
        kept.append(result.text[cursor : e.start])
        cursor_source, cursor = e.source_end, e.end
    assert "".join(kept_source) + original[cursor_source:] == "".join(kept) + result.text[cursor:]


@pytest.mark.parametrize("seed", range(20))
def test_offsets_line_up_on_random_texts(seed: int) -> None:
    rng = random.Random(seed)
    tokens, expected = [], []
    for _ in range(rng.randint(1, 12)):
        word = rng.choice(WORDS)
        tokens.append(word)
        expected.append(word)
        if rng.random() < 0.5:
            item = rng.choice(POSITIVES)
            tokens.append(item[0])
            expected.append(f"[{item[1]}]")
    original = " ".join(tokens)
    result = scrub(original)
    assert result.text == " ".join(expected)
    _check_alignment(original, result)


def test_empty_text() -> None:
    result = scrub("")
    assert (result.text, dict(result.counts), result.edits) == ("", {}, ())
    assert result.to_source(0, is_end=True) == 0


# --- issue 14, item 8: the common written forms of each kind ----------------------------

WRITTEN_FORMS = [
    ("reachable on 415 555 0142", "reachable on [PHONE]"),  # the reported case: spaces
    ("call 415.555.0142 today", "call [PHONE] today"),
    ("call 4155550142 today", "call [PHONE] today"),
    ("from abroad: 0044 20 7946 0958", "from abroad: [PHONE]"),
    ("from the US: 011 44 20 7946 0958", "from the US: [PHONE]"),
    ("London office 020 7946 0958", "London office [PHONE]"),
    ("Berlin +49 30 901820", "Berlin [PHONE]"),
    ("电话4155550142", "电话[PHONE]"),  # text in another script directly before
    ("請致電+81 3-1234-5678。", "請致電[PHONE]。"),
    ("тел.4155550142", "тел.[PHONE]"),
    ("邮箱ana@example.org请联系", "邮箱[EMAIL]请联系"),  # ... and directly after
    ("write to josé.núñez@correo.es", "write to [EMAIL]"),  # an accented local part
    ("müller@bücher.de.", "[EMAIL]."),
    ("карта4111111111111111", "карта[CARD]"),
]


@pytest.mark.parametrize(("text", "expected"), WRITTEN_FORMS)
def test_common_written_forms_are_scrubbed(text: str, expected: str) -> None:
    assert scrub(text).text == expected


@pytest.mark.parametrize("text", ["SKU4155550142", "call 555-0142", "version 4.15.555.0142"])
def test_codes_and_short_local_numbers_are_not_phones(text: str) -> None:
    assert scrub(text).text == text


# --- issue 14, item 9: a card needs an issuer's prefix and one of its lengths -----------


def _luhn_valid(prefix: str, length: int) -> str:
    """``prefix`` padded with zeros to ``length`` digits, the last one the Luhn check digit."""
    body = prefix.ljust(length - 1, "0")
    for check in "0123456789":
        if _luhn_ok(body + check):
            return body + check
    raise AssertionError("unreachable")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, ch in enumerate(reversed(digits)):
        value = int(ch) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


@pytest.mark.parametrize(
    "number",
    [
        _luhn_valid("17000000123", 13),  # a millisecond timestamp
        _luhn_valid("978306406", 13),  # a 978-prefixed catalogue number
        _luhn_valid("9400111899", 16),  # a 16-digit tracking reference
        # A second instance of the kind: issuer prefixes at lengths the issuer never uses.
        _luhn_valid("4111", 14),  # Visa issues 13, 16 and 19 digits
        _luhn_valid("5500", 17),  # Mastercard issues 16
        _luhn_valid("3782", 16),  # American Express issues 15
    ],
)
def test_luhn_valid_numbers_without_an_issuer_are_not_cards(number: str) -> None:
    assert _luhn_ok(number)
    text = f"Reference {number} attached."
    assert scrub(text).text == text


@pytest.mark.parametrize(
    "number",
    [
        _luhn_valid("4000", 16),  # Visa
        _luhn_valid("4000", 13),
        _luhn_valid("2221", 16),  # Mastercard's 2-series
        _luhn_valid("6011", 16),  # Discover
        _luhn_valid("3530", 16),  # JCB
        _luhn_valid("6200", 19),  # UnionPay
        _luhn_valid("3000", 14),  # Diners Club
    ],
)
def test_numbers_in_an_issuer_range_and_length_are_cards(number: str) -> None:
    assert scrub(f"Card {number} on file.").text == "Card [CARD] on file."
