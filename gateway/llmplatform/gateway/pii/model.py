"""What the detectors share: the finding types and placeholders, the `Finding` record, the
classification names, and the small boundary helpers every detector uses to decide where a
value may start and end (`free_left`, `free_right`, `glued`...). See the package docstring for
the locality rules these helpers implement."""

from __future__ import annotations

from typing import NamedTuple

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


class Finding(NamedTuple):
    """One finding: its type (see TYPES) and its span `text[start:end]`. A named tuple, not a
    frozen dataclass: a scan creates one per finding on the hot path, and a tuple is built in
    half the time."""

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


_DROP_DIGITS = str.maketrans("", "", "0123456789")


def count_digits(s: str) -> int:
    """How many ASCII digits `s` holds."""
    return len(s) - len(s.translate(_DROP_DIGITS))


_FOLD_DIGITS = bytes.maketrans(b"0123456789", b"0000000000")
_FOLD_DIGITS_AND_TILDE = bytes.maketrans(b"0123456789~", b"0000000000?")


def fold(text: str) -> bytes:
    """`text` as one ASCII byte per character, for the passes that look for digits: every
    ASCII digit becomes `0`, the micro signs `µ` and `μ` (which can follow a dosage's number)
    `~`, every other non-ASCII character and `~` itself `?`, the rest stays. Why: a pattern
    that begins with a character class (`[0-9]`) makes `re` test every character of the text
    through a call, about 7 ns each on the benchmark machine (30 us per 4 KB), while one that
    begins with a literal (`0` here) is searched by a tight loop, several times faster;
    folding costs about 3 us per 4 KB. Positions are those of `text` (one byte per code
    point), and a pattern that reads digits only as a class (never a particular digit), no `?`
    and no non-ASCII character but the micro signs (written `~`) matches the folded bytes
    exactly where it matches `text` (tests/gateway/unit/test_pii_fast_paths.py compares them)."""
    if text.isascii():
        return text.encode("ascii").translate(_FOLD_DIGITS_AND_TILDE)
    text = text.replace("~", "?").replace("\u00b5", "~").replace("\u03bc", "~")
    return text.encode("ascii", "replace").translate(_FOLD_DIGITS)


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
