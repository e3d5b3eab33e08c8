"""The detectors against obfuscated values (issue #12 item 5): each technique a tenant could use
to get a value past them, one test per technique, redacting exactly the obfuscated original
characters; and look-alikes that the normalised view must leave alone."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmplatform.gateway.pii import StreamRedactor, redact, scan
from llmplatform.gateway.pii.normalize import compute_changed_ranges, map_char, view
from llmplatform.gateway.pii.unicode_table import CHANGED_RANGES

VALUES = {
    "card": "4111 1111 1111 1111",
    "ssn": "123-45-6789",
    "phone": "(415) 555-0134",
    "email": "jane.doe@example.com",
    "iban": "DE89 3704 0044 0532 0130 00",
    "ipv4": "192.168.10.20",
    "secret": "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
}
FORMAT_CHARS = [
    "\u200b",  # zero-width space
    "\u200c",  # zero-width non-joiner
    "\u200d",  # zero-width joiner
    "\u2060",  # word joiner
    "\u00ad",  # soft hyphen
    "\ufeff",  # zero-width no-break space (BOM)
    "\u202e",  # right-to-left override
    "\u2066",  # left-to-right isolate
    "\u180e",  # Mongolian vowel separator
    "\ufe0f",  # variation selector 16 (not Cf, default-ignorable)
    "\U000e0041",  # tag latin capital A
]
DIGIT_ZEROS = {
    "fullwidth": 0xFF10,
    "arabic-indic": 0x0660,
    "extended arabic-indic": 0x06F0,
    "devanagari": 0x0966,
    "bengali": 0x09E6,
    "thai": 0x0E50,
    "mathematical bold": 0x1D7CE,
    "mathematical monospace": 0x1D7F6,
}


def redacts_exactly(text: str, value: str, kind: str, *, hipaa: bool = False) -> None:
    """`value` (as written, obfuscated) is in `text`; the scan must find it as `kind` and
    redaction must replace exactly its characters."""
    start = text.index(value)
    found = scan(text, hipaa=hipaa)
    assert any(f.type == kind and f.start <= start and f.end >= start + len(value) for f in found), (
        text,
        found,
    )
    out = redact(text, found)
    assert value not in out
    assert (
        out
        == text[:start]
        + f"[{'IP' if kind == 'ipv4' else kind.upper()}_REDACTED]"
        + text[start + len(value) :]
    ), out


def with_digits(value: str, zero: int) -> str:
    return "".join(chr(zero + int(c)) if c.isdigit() else c for c in value)


@pytest.mark.parametrize("kind", sorted(VALUES))
@pytest.mark.parametrize("fmt", FORMAT_CHARS, ids=lambda c: f"U+{ord(c):04X}")
def test_format_characters_inside_a_value(kind: str, fmt: str) -> None:
    value = VALUES[kind]
    for i in range(1, len(value)):
        obfuscated = value[:i] + fmt + value[i:]
        redacts_exactly(f"note: {obfuscated} thanks", obfuscated, kind)
    every = fmt.join(value)
    redacts_exactly(f"note: {every} thanks", every, kind)


@pytest.mark.parametrize("kind", ["card", "ssn", "phone", "iban", "ipv4"])
@pytest.mark.parametrize("script", sorted(DIGIT_ZEROS))
def test_digits_of_other_scripts(kind: str, script: str) -> None:
    value = with_digits(VALUES[kind], DIGIT_ZEROS[script])
    redacts_exactly(f"here: {value} ok", value, kind)


def test_mixed_scripts_in_one_value() -> None:
    value = "\uff14111 \u0661\u0661\u0661\u0661 1111 \u0967\u0967\u0967\u0967"  # fullwidth, Arabic, Devanag.
    redacts_exactly(f"card {value} please", value, "card")


@pytest.mark.parametrize(
    "value",
    [
        "jane.doe\uff20example.com",  # fullwidth @
        "jane.doe\ufe6bexample.com",  # small commercial at
        "jane.doe@example\uff0ecom",  # fullwidth full stop
        "\uff4a\uff41\uff4e\uff45@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",  # fullwidth letters
        "jane.doe@example\u3002com",  # ideographic full stop
    ],
)
def test_symbol_forms_in_emails(value: str) -> None:
    redacts_exactly(f"mail {value} now", value, "email")


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("card", "\u2463\u2460\u2460\u2460 1111 1111 1111"),  # circled digits
        ("iban", "\uff24\uff25\uff18\uff19 3704 0044 0532 0130 00"),  # fullwidth letters and digits
        ("ssn", "\u00b9\u00b2\u00b3-45-6789"),  # superscripts
    ],
)
def test_compatibility_forms(kind: str, value: str) -> None:
    redacts_exactly(f"x {value} y", value, kind)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("ssn", "123/45/6789"),
        ("ssn", "123.45.6789"),
        ("ssn", "123 - 45 - 6789"),
        ("ssn", "123\u201345\u20136789"),  # en dash
        ("ssn", "123\u221245\u22126789"),  # minus sign
        ("ssn", "123_45_6789"),
        ("card", "4111.1111.1111.1111"),
        ("card", "4111/1111/1111/1111"),
        ("card", "4111 - 1111 - 1111 - 1111"),
        ("card", "4111\u20141111\u20141111\u20141111"),  # em dash
        ("card", "4111\u00a01111\u00a01111\u00a01111"),  # no-break space
        ("card", "4111\u20091111\u20091111\u20091111"),  # thin space
        ("card", "4111\u00b71111\u00b71111\u00b71111"),  # middle dot
        ("card", "4111\\1111\\1111\\1111"),
        ("phone", "415/555/0134"),
        ("phone", "415 . 555 . 0134"),
        ("phone", "+44\u00a020\u00a07946\u00a00958"),
        ("phone", "0161\u2013496\u20130066"),
        ("iban", "GB82 / WEST / 1234 / 5698 / 7654 / 32"),
        ("iban", "DE89.3704.0044.0532.0130.00"),
        ("iban", "GB82-WEST-1234-5698-7654-32"),
    ],
)
def test_unusual_separators(kind: str, value: str) -> None:
    redacts_exactly(f"value {value} end", value, kind)


@pytest.mark.parametrize(
    "text",
    [
        "Released 2024/05/11, see v1/2/3 and 12/05/2024.",
        "Mix 1/2 cup with 3/4 cup; ratio 16:9; page 12-15.",
        "Grüße aus München, ça va? Ελληνικά και русский текст.",
        "\u65e5\u672c\u8a9e \uff11\uff12\uff13 \u500b",  # Japanese with fullwidth digits in a short count
        "Family: \U0001f468\u200d\U0001f469\u200d\U0001f467 and a flag \U0001f3f3\ufe0f\u200d\U0001f308",
        "Scores 3 - 1 and 2 - 0; rooms 101 / 102.",
        "The build_2024_05 job and file_v1_2.txt.",
        "Order 4158 0481 86 shipped; see I / you / GB 12.",
    ],
)
def test_look_alikes_are_left_alone(text: str) -> None:
    assert scan(text) == [], scan(text)


def test_a_grouped_number_after_a_phone_word() -> None:
    redacts_exactly("Phone: 4158 0481 86", "4158 0481 86", "phone")


def test_view_maps_back_to_the_original_characters() -> None:
    text = "a\u200b\uff14b \u2460 12/34"
    v = view(text)
    assert v is not None
    assert v.text == "a4b 1 12-34"
    assert v.span(1, 2) == (2, 3)  # the fullwidth 4 (the removed zero-width space is before it)
    assert v.span(8, 9) == (9, 10)  # the "/" read as "-"
    assert view("plain ascii 123-45") is None
    assert view("Grüße") is None


def test_the_unicode_table_matches_this_pythons_unicode_database() -> None:
    """unicode_table.py is generated; regenerate it after a Python upgrade (see normalize.py)."""
    assert compute_changed_ranges() == list(CHANGED_RANGES)
    assert map_char("\u200b") == "" and map_char("\uff14") == "4" and map_char("\u0664") == "4"


SAMPLES = [
    ("card", "4111 1111 1111 1111"),
    ("card", "4111111111111111"),
    ("ssn", "123-45-6789"),
    ("phone", "+44 20 7946 0958"),
    ("phone", "(415) 555-0134"),
    ("email", "jane.doe@example.com"),
    ("iban", "DE89 3704 0044 0532 0130 00"),
    ("iban", "GB82WEST12345698765432"),
    ("ipv4", "192.168.1.20"),
    ("secret", "AKIAIOSFODNN7EXAMPLE"),
]


@settings(max_examples=300, deadline=None)
@given(
    sample=st.sampled_from(SAMPLES),
    inserts=st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(FORMAT_CHARS)), max_size=8),
    before=st.sampled_from(["", "see ", "value: ", "x\n"]),
    after=st.sampled_from(["", " today", ".", ", thanks"]),
)
def test_inserting_format_characters_keeps_a_value_detected(
    sample: tuple[str, str], inserts: list[tuple[int, str]], before: str, after: str
) -> None:
    kind, value = sample
    chars = list(value)
    for at, fmt in inserts:
        i = 1 + at % (len(chars) - 1) if len(chars) > 1 else 0
        chars.insert(i, fmt)
    obfuscated = "".join(chars)
    text = before + obfuscated + after
    start = len(before)
    found = scan(text)
    assert any(f.type == kind and f.start <= start and f.end >= start + len(obfuscated) for f in found), (
        text,
        found,
    )
    # and a stream split anywhere redacts it the same way
    r = StreamRedactor()
    out = "".join(r.feed(text[i : i + 3])[0] for i in range(0, len(text), 3)) + r.finish()[0]
    assert out == redact(text, found)
