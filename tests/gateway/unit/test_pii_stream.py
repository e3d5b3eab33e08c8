"""StreamRedactor: split a text at any points, feed the pieces, and the output (and the
findings) must be exactly those of `redact(text, scan(text))`; the text held back must stay
small so that a redacted stream keeps streaming."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from llmplatform.gateway.pii import MAX_HOLD, Finding, StreamRedactor, redact, scan

SAMPLES = [
    "jane.doe@example.com",
    "(415) 555-0134",
    "+44 20 7946 0958",
    "+49 (0) 9141 777631",
    "0161 496 0066",
    "123-45-6789",
    "SSN 123456789",
    "4111 1111 1111 1111",
    "4111111111111111",
    "192.168.1.20",
    "2001:db8::1",
    "DE89 3704 0044 0532 0130 00",
    "GB82WEST12345698765432",
    "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
    "AKIAIOSFODNN7EXAMPLE",
    "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5",
    "-----BEGIN RSA PRIVATE KEY-----",
    "MRN: 12345678",
    "dx E11.9",
    "ICD-10 I10",
    "500 mg",
    "2.5 mL",
    "Mobile: 0961073668",
    "call ",
    "phone",
    "2024-01-05",
    "v1.2.3",
    "$1,299.00",
]
ALPHABET = "0123456789 abcdefxyzABCDEFXYZ.-+()@:/_=\n\t"
fragment = st.one_of(st.sampled_from(SAMPLES), st.text(alphabet=ALPHABET, max_size=12))
texts = st.lists(fragment, max_size=14).map("".join)


def stream(text: str, cuts: list[int], hipaa: bool) -> tuple[str, list[Finding]]:
    redactor = StreamRedactor(hipaa=hipaa)
    out: list[str] = []
    found: list[Finding] = []
    prev = 0
    for cut in [*sorted(set(cuts)), len(text)]:
        piece, fs = redactor.feed(text[prev:cut])
        out.append(piece)
        found += fs
        prev = cut
    piece, fs = redactor.finish()
    return "".join(out) + piece, found + fs


@settings(max_examples=400, deadline=None)
@given(data=st.data(), hipaa=st.booleans())
def test_any_split_gives_the_same_output_as_redact(data: st.DataObject, hipaa: bool) -> None:
    text = data.draw(texts)
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=12))
    expected = scan(text, hipaa=hipaa)
    out, found = stream(text, cuts, hipaa)
    assert out == redact(text, expected)
    assert found == expected


def test_character_by_character() -> None:
    text = (
        "Hi, I am Jane (jane.doe@example.com), call +44 20 7946 0958 or (415) 555-0134.\n"
        "Card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, MRN: 12345678, 500 mg."
    )
    out, found = stream(text, list(range(len(text))), hipaa=True)
    assert out == redact(text, scan(text, hipaa=True))
    assert [f.type for f in found] == ["email", "phone", "phone", "card", "iban", "mrn", "dosage"]


def test_prose_is_held_back_at_most_a_word() -> None:
    text = "The quick brown fox jumps over the lazy dog, " * 20
    redactor = StreamRedactor()
    emitted = worst = 0
    for fed, ch in enumerate(text, 1):
        emitted += len(redactor.feed(ch)[0])
        worst = max(worst, fed - emitted)
    assert worst <= len("jumps ")


def test_a_number_is_held_until_it_ends() -> None:
    redactor = StreamRedactor()
    assert redactor.feed("call +44 20 ") == ("call ", [])
    assert redactor.feed("7946 0958") == ("", [])
    # A space after a digit may still be inside a finding ("500 mg"): the next break decides.
    assert redactor.feed(" now") == ("", [])
    out, found = redactor.feed(" ok")
    assert out == "[PHONE_REDACTED] now "
    assert found == [Finding("phone", 5, 21)]
    assert redactor.finish() == ("ok", [])


def test_text_without_breaks_is_held_at_most_max_hold() -> None:
    redactor = StreamRedactor()
    out, _ = redactor.feed("x" * (MAX_HOLD - 1))
    assert out == ""
    out, _ = redactor.feed("xy")
    assert out == "x" * MAX_HOLD + "y"


def test_a_long_word_fed_in_small_pieces_is_not_rescanned() -> None:
    redactor = StreamRedactor()
    held = "a" * (MAX_HOLD - 10)
    for i in range(0, len(held), 3):
        assert redactor.feed(held[i : i + 3]) == ("", [])
    assert redactor._seen == len(held)
    out, _ = redactor.feed(" b c")
    assert out == held + " b "
