"""Hand-picked positives and negatives per finding type, so a detector change that breaks one
shows up as a readable failure (the corpus in bench/governance measures the rates)."""

from __future__ import annotations

import itertools

import pytest

from llmplatform.gateway import pii
from llmplatform.gateway.pii import (
    CLASSIFICATIONS,
    Finding,
    StreamRedactor,
    classify,
    iban_ok,
    luhn_ok,
    redact,
    scan,
)


def found(text: str, *, hipaa: bool = False) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in scan(text, hipaa=hipaa)]


def only(kind: str, value: str, *, hipaa: bool = False, before: str = "see ", after: str = " today") -> None:
    text = before + value + after
    assert found(text, hipaa=hipaa) == [(kind, value)], text


def none_in(text: str, *, hipaa: bool = False) -> None:
    assert found(text, hipaa=hipaa) == [], text


@pytest.mark.parametrize(
    "value", ["jane.doe@example.com", "a+tag@mail.example.co.uk", "obrien_x@sub-domain.example.org"]
)
def test_email(value: str) -> None:
    only("email", value)


@pytest.mark.parametrize("text", ["user@localhost", "@mention", "a @ b.com", "name@example.c"])
def test_email_negatives(text: str) -> None:
    none_in(text)


@pytest.mark.parametrize(
    "value",
    [
        "(415) 555-0134",
        "415-555-0134",
        "415.555.0134",
        "+1 415 555 0134",
        "+1-415-555-0134",
        "1-800-555-0134",
        "(591)341-7776",
        "206.269.0743x9150",
        "+44 20 7946 0958",
        "+44(0)115 4960914",
        "+49 (0) 9141 777631",
        "+33 1 83 41 77 76",
        "+34912345678",
        "0049 30 1234567",
        "0161 496 0066",
        "(030) 1234567",
        "04 15 39 15 00",
        "(0406)-812415",
    ],
)
def test_phone(value: str) -> None:
    only("phone", value)


def test_bare_phone_needs_a_phone_word_or_a_trunk_zero() -> None:
    only("phone", "3420837783", before="call me on ")
    only("phone", "3420837783", before="Her number is ")
    none_in("invoice 3420837783 is paid")
    only("phone", "0961073668", before="order ")  # 0 + 9 digits: a European number
    none_in("see 0306406152 on p. 4")  # a valid ISBN-10
    none_in("ISBN 0961073668")
    none_in("id 0012345678 and 0093699367323126")  # zero-padded, not 00 + country code
    only("phone", "912345678", before="Tel.: ")
    only("phone", "912345678", before="Llámame al ")
    none_in("a product called 912345678")  # "call", not "called"
    none_in("Please call. Order 912345678 shipped")  # the hint is in another sentence


@pytest.mark.parametrize("text", ["version 1.2.3", "at 10:30:00", "in 2024-01-05", "+1 555", "12 345 678"])
def test_phone_negatives(text: str) -> None:
    none_in(text)


@pytest.mark.parametrize("value", ["123-45-6789", "078-05-1120", "899-99-9999", "123 45 6789"])
def test_ssn(value: str) -> None:
    only("ssn", value)


@pytest.mark.parametrize(
    "value", ["000-12-3456", "666-12-3456", "900-12-3456", "999-45-6789", "123-00-4567", "123-45-0000"]
)
def test_ssn_impossible_ranges(value: str) -> None:
    none_in(f"ssn {value} here")


def test_bare_ssn_needs_context() -> None:
    only("ssn", "123456789", before="SSN: ")
    none_in("ref 123456789 ok")


@pytest.mark.parametrize(
    "value",
    [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5555555555554444",
        "378282246310005",
        "3782 822463 10005",
        "6011111111111117",
        "4222222222222",
        "30569309025904",
    ],
)
def test_card(value: str) -> None:
    only("card", value)


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111112",  # Luhn fails
        "4111 1111 1111 1112",
        "1234567812345670",  # Luhn ok, but no card starts with 1
        "41111111111111111111",  # 20 digits
        "4111 1111 1111 1111 1",
    ],
)
def test_card_negatives(text: str) -> None:
    assert luhn_ok("1234567812345670")
    none_in(f"number {text} end")


@pytest.mark.parametrize("value", ["192.168.1.20", "8.8.8.8", "255.255.255.255", "10.0.0.1"])
def test_ipv4(value: str) -> None:
    only("ipv4", value)


@pytest.mark.parametrize(
    "text", ["999.1.1.1", "256.1.1.1", "v1.2.3.4", "1.2.3.4.5", "1.2.3", "10.0.19045.3803", "01.02.03.04"]
)
def test_ipv4_negatives(text: str) -> None:
    none_in(f"x {text} y")


@pytest.mark.parametrize(
    "value",
    [
        "2001:db8::1",
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "fe80::1ff:fe23:4567:890a",
        "::ffff:192.0.2.128",
        "cc1b:c3e:1c07:724e:44c5:b477:3fe3:1d03",
    ],
)
def test_ipv6(value: str) -> None:
    only("ipv6", value)


@pytest.mark.parametrize(
    "text", ["std::vector<int>", "a[1::2]", "at 10:30:45", "00:1a:2b:3c:4d:5e", "::1", "Note::", "1::2"]
)
def test_ipv6_negatives(text: str) -> None:
    none_in(f"x {text} y")


@pytest.mark.parametrize(
    "value",
    [
        "DE89 3704 0044 0532 0130 00",
        "DE89370400440532013000",
        "GB82WEST12345698765432",
        "GB82 WEST 1234 5698 7654 32",
        "FR1420041010050500013M02606",
        "NL91ABNA0417164300",
    ],
)
def test_iban(value: str) -> None:
    only("iban", value)


@pytest.mark.parametrize(
    "text",
    [
        "DE89370400440532013001",  # checksum
        "DE8937040044053201300",  # too short for DE
        "XX89370400440532013000",  # no such country
        "de89370400440532013000",  # lower case
    ],
)
def test_iban_negatives(text: str) -> None:
    assert iban_ok("DE89370400440532013000") and not iban_ok("DE89370400440532013001")
    none_in(f"IBAN {text} thanks")


@pytest.mark.parametrize(
    "value",
    [
        "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
        "sk-ant-api03-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb3dEf6h",
        "AKIAIOSFODNN7EXAMPLE",
        "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",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
        "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5",  # no prefix, high entropy
    ],
)
def test_secret(value: str) -> None:
    only("secret", value)


def test_secret_in_assignment_keeps_the_name() -> None:
    text = 'OPENAI_API_KEY="sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"'
    assert redact(text, scan(text)) == 'OPENAI_API_KEY="[SECRET_REDACTED]"'


def test_pem_header_is_a_secret() -> None:
    assert found("-----BEGIN RSA PRIVATE KEY-----\n") == [("secret", "-----BEGIN RSA PRIVATE KEY-----")]


@pytest.mark.parametrize(
    "text",
    [
        "550e8400-e29b-41d4-a716-446655440000",  # UUID
        "3f786850e387550fdab836ed7e6dc881de23001b",  # git commit id
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # sha256
        "getUserAccountBalanceForTheCurrentMonth2024",
        "task-force-2024-planning-document-final-v2",
        "sk-learn-is-a-python-library-for-ml",
    ],
)
def test_secret_negatives(text: str) -> None:
    none_in(f"x {text} y")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("MRN: 12345678", "12345678"),
        ("medical record number 1234567", "1234567"),
        ("Patient ID 00123456", "00123456"),
    ],
)
def test_mrn(text: str, value: str) -> None:
    assert found(text, hipaa=True) == [("mrn", value)]
    assert found(text) == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("dx E11.9 noted", "E11.9"),
        ("code S72.001A", "S72.001A"),
        ("ICD-10 I10 hypertension", "I10"),
        ("U07.1 confirmed", "U07.1"),
    ],
)
def test_icd10(text: str, value: str) -> None:
    assert found(text, hipaa=True) == [("icd10", value)]


@pytest.mark.parametrize(
    "text",
    [
        "the A10 GPU is fast",
        "take vitamin B12 daily",
        "an F16 jet flew over",
        "M25 traffic",
        "D95.1 is no chapter",  # D stops at D89
        "E11.9.2 is a version",
    ],
)
def test_icd10_negatives(text: str) -> None:
    none_in(text, hipaa=True)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Seen today for hypertension (I10).", "I10"),
        ("hypertension, I10, follow up in 3 months.", "I10"),
        ("Pt with HTN I10 and HLD, stable", "I10"),
        ("headache R51 since Monday", "R51"),
        ("pedestrian hit by a car, V03", "V03"),  # a vehicle word not adjacent: still a code
        ("for instance, Z23 was given", "Z23"),
    ],
)
def test_icd10_bare_category_in_prose_is_a_code(text: str, value: str) -> None:
    assert found(text, hipaa=True) == [("icd10", value)]
    assert found(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "rent an NVIDIA L40 for the job",  # L40 is a category (psoriasis)
        "the K80 GPU is old",
        "an L40 GPUs cluster",
        "she drove the M25 motorway home",
        "the motorway M25 was closed",
        "an F16 jet",
        "vitamin E10 is not a thing",
        "a Tesla V12 card",
        "seat E11 please",
        "the RTX-A10 and L40-S",  # part of a longer token
        "=SUM(A1:B12) and C20:D30",  # spreadsheet ranges
        "See A10 for details.",  # A10 is no ICD-10 category
        "B12 levels",
    ],
)
def test_icd10_bare_category_with_non_medical_evidence_is_untouched(text: str) -> None:
    none_in(text, hipaa=True)


@pytest.mark.parametrize(
    "text",
    [
        "Seen for HTN (I10).\nthe K80 GPU, then M25 motorway and vitamin B12",
        "NVIDIA L40 and I10 GPU\tR51 noted",
    ],
)
def test_icd10_bare_rule_streams_exactly(text: str) -> None:
    redactor = StreamRedactor(hipaa=True)
    out = "".join(redactor.feed(c)[0] for c in text) + redactor.finish()[0]
    assert out == redact(text, scan(text, hipaa=True))


def test_icd10_bare_setting() -> None:
    text = "Seen today for hypertension (I10)."
    try:
        pii.medical.ICD10_BARE = "context"
        assert found(text, hipaa=True) == []
        pii.medical.ICD10_BARE = "always"
        assert found("the K80 GPU", hipaa=True) == [("icd10", "K80")]
    finally:
        pii.medical.ICD10_BARE = "unless_non_medical"
    assert found(text, hipaa=True) == [("icd10", "I10")]


@pytest.mark.parametrize("value", ["500 mg", "2.5 mL", "10 units", "0.5 mcg", "40mg", "20 mEq", "2 tablets"])
def test_dosage(value: str) -> None:
    only("dosage", value, hipaa=True, before="give ", after=" daily")
    none_in(f"give {value} daily")


@pytest.mark.parametrize("text", ["500 MB of RAM", "2.5 GHz", "10 ms", "5 kg of flour", "5G network"])
def test_dosage_negatives(text: str) -> None:
    none_in(text, hipaa=True)


def test_redact_uses_typed_placeholders() -> None:
    text = "Mail jane@example.com, call +1 415 555 0134, card 4111 1111 1111 1111, ip 10.0.0.1 / 2001:db8::1"
    assert redact(text, scan(text)) == (
        "Mail [EMAIL_REDACTED], call [PHONE_REDACTED], card [CARD_REDACTED], ip [IP_REDACTED] / [IP_REDACTED]"
    )
    assert redact("nothing here", []) == "nothing here"


def test_findings_are_sorted_and_do_not_overlap() -> None:
    text = "x 4111 1111 1111 1111 y jane@example.com z 123-45-6789 DE89 3704 0044 0532 0130 00"
    fs = scan(text)
    assert [f.type for f in fs] == ["card", "email", "ssn", "iban"]
    assert all(a.end <= b.start for a, b in itertools.pairwise(fs))
    assert fs[0] == Finding("card", 2, 21)


@pytest.mark.parametrize(
    ("text", "hipaa", "expected"),
    [
        ("What is the capital of France?", False, "public"),
        ("Summarise the internal roadmap", False, "internal"),
        ("International travel tips", False, "public"),
        ("This memo is CONFIDENTIAL.", False, "confidential"),
        ("For internal use only: the Q3 plan", False, "confidential"),
        ("Our trade secret recipe", False, "confidential"),
        ("Write to jane@example.com", False, "confidential"),
        ("Server at 10.0.0.1", False, "confidential"),
        ("SSN 123-45-6789", False, "restricted"),
        ("Card 4111 1111 1111 1111", False, "restricted"),
        ("key sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", False, "restricted"),
        ("Give 500 mg twice daily", True, "restricted"),
        ("Give 500 mg twice daily", False, "public"),
    ],
)
def test_classify(text: str, hipaa: bool, expected: str) -> None:
    assert expected in CLASSIFICATIONS
    assert classify(text, scan(text, hipaa=hipaa)) == expected


def test_nothing_crosses_a_newline() -> None:
    assert found("call 415-555-\n0134") == []
    assert found("+44 20\n7946 0958") == []


def test_redacted_text_has_nothing_left_to_find() -> None:
    text = "jane@example.com +44 20 7946 0958 123-45-6789 DE89 3704 0044 0532 0130 00 MRN: 12345678"
    out = redact(text, scan(text, hipaa=True))
    assert scan(out, hipaa=True) == []
    assert classify(out, []) == "public"  # placeholders carry no sensitive words
