"""What the detectors share: the finding types and placeholders, the `Finding` record, the
classification names, and the small boundary helpers every detector uses to decide where a
value may start and end (`free_left`, `free_right`, `glued`...). See the package docstring for
the locality rules these helpers implement."""

from __future__ import annotations

from dataclasses import dataclass

CLASSIFICATIONS = ("public", "internal", "confidential", "restricted")
"""Ascending sensitivity, the order of LLMModel.maxDataClassification."""

TYPES = (
    "email",
    "phone",
    "ssn",
    "card",
    "ipv4",
    "ipv6",
    "iban",
    "secret",
    "mrn",
    "icd10",
    "dosage",
)
PLACEHOLDERS = {
    "email": "[EMAIL_REDACTED]",
    "phone": "[PHONE_REDACTED]",
    "ssn": "[SSN_REDACTED]",
    "card": "[CARD_REDACTED]",
    "ipv4": "[IP_REDACTED]",
    "ipv6": "[IP_REDACTED]",
    "iban": "[IBAN_REDACTED]",
    "secret": "[SECRET_REDACTED]",
    "mrn": "[MRN_REDACTED]",
    "icd10": "[ICD10_REDACTED]",
    "dosage": "[DOSAGE_REDACTED]",
}
RESTRICTED_TYPES = frozenset({"ssn", "card", "mrn", "icd10", "dosage", "secret"})

CONTEXT = 48
"""How far back (characters) context words are looked for; StreamRedactor keeps this much."""
DIGITS = frozenset("0123456789")
UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
UPPER_DIGITS = UPPER | DIGITS
BREAKS = frozenset("\n\r\t\f\v")
SEPARATORS = frozenset(" .-/\\_")
"""What may separate the digit groups of a value (normalize.py collapses odd runs of them)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One finding: its type (see TYPES) and its span `text[start:end]`."""

    type: str
    start: int
    end: int


Cand = tuple[int, int, str]  # start, end, type ("secret+" for prefixed secrets)


# --- helpers ------------------------------------------------------------------------------


def free_left(text: str, i: int) -> bool:
    """No letter, digit or `_` right before `i`, and not the tail of a longer number."""
    if i == 0:
        return True
    c = text[i - 1]
    if c.isalnum() or c == "_":
        return False
    return not (c in " .-/" and i >= 2 and text[i - 2] in DIGITS)


def word_start(text: str, i: int) -> bool:
    return i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")


def free_right(text: str, e: int, seps: str = ".-") -> bool:
    """No letter, digit or `_` at `e`, and no separator followed by a digit."""
    if e >= len(text):
        return True
    c = text[e]
    if c.isalnum() or c == "_":
        return False
    return not (c in seps and e + 1 < len(text) and text[e + 1] in DIGITS)


def count_digits(s: str) -> int:
    return sum(map(s.count, "0123456789"))


def glued(text: str, i: int) -> bool | None:
    """Whether the space at `i` may lie inside a finding (in the text or in its normalised
    view); None when `text[i + 1]` is needed but not there yet. A non-ASCII neighbour may be
    a digit, an upper-case letter or a removed format character in the view, a space in a run
    of up to three separators after a digit may be collapsed into one group separator
    (normalize.py), and IBANs accept such runs between their groups (`GB82 / WEST / 1234`),
    so those spaces are glued too."""
    if i == 0:
        return False
    before = text[i - 1]
    if before in DIGITS or before == ")" or not before.isascii():
        return True
    if before in SEPARATORS:
        k = i - 3 if i >= 3 and text[i - 2] in SEPARATORS else i - 2
        return k >= 0 and (text[k] in UPPER_DIGITS or not text[k].isascii())
    if before in UPPER:
        if i + 1 >= len(text):
            return None
        after = text[i + 1]
        return after in UPPER_DIGITS or after in SEPARATORS or not after.isascii()
    return False
