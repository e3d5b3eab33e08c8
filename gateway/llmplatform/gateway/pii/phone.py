"""Phone numbers: international (`+` or `00` then 8-15 digits, with `(0)`, spaces, dots or
dashes), North American (`(415) 555-0134`, `415-555-0134`, `415.555.0134`, `1-415-...`,
extensions `x123`), European national numbers with a trunk `0` and a separator
(`0161 496 0066`, `(030) 1234567`, `04 15 39 15 00`) or without one when it has 10-11 digits
(`0612345678`; not a valid ISBN-10; a zero-padded id starts with `00`), other bare runs of
9-13 digits only when a phone word ("phone", "call", "Tel", "Handy", "portable", "my
number"...) comes shortly before (numeric.py decides which runs get here)."""

from __future__ import annotations

import re

from llmplatform.gateway.pii.model import Cand, count_digits, free_right

_PHONE_INTL = re.compile(
    r"((?:\+|00)[1-9](?:[0-9]|[ .\-](?=[0-9(])|[ .\-]?\([0-9]{1,4}\)[ .\-]?(?=[0-9]))+)"
    r"(?:[ ]?(?:x|ext\.?)[0-9]{1,6})?"
)
_PHONE_NANP = re.compile(
    r"(?:1[ .\-])?(?:\([0-9]{3}\)[ ]?|[0-9]{3}[ .\-])[0-9]{3}[ .\-][0-9]{4}(?:[ ]?(?:x|ext\.?)[0-9]{1,6})?"
)
_PHONE_NATIONAL = re.compile(r"(?:\(0[0-9]{1,4}\)[ \-]?|0[1-9][0-9]{0,3}[ \-])[0-9]{2,}(?:[ \-][0-9]{2,})*")
# Words that make a bare run of 9-13 digits a phone number when they come shortly before it:
# phone words in the seven benchmark languages, and "my / her / son / il suo ... number".
PHONE_CTX = re.compile(
    r"(?i)\b(?:(?:phone|tel|mobile|cell|fax|call|calling|reach|text me|whatsapp|sms|dial|contact"
    r"|handy|rufen|erreichbar|t[ée]l|portable|appel(?:ez|le)?|joindre|m[óo]vil|cellulare|bel|mobiel)\b"
    r"|t[ée]l\.|mob\.|telefo\w*|t[ée]l[ée]phon\w*|anruf\w*|ll[aá]m\w*|chiam\w*"
    r"|(?:my|her|his|their|our|your|mon|son|sa|ma|su|mi|tu|suo|sua|mio|mia|meine|seine|ihre|die"
    r"|mijn|zijn|haar|het)\s+(?:number|num[ée]ro|n[úu]mero|nummer)\b)[^0-9\n.!?]{0,24}$"
)


_PHONE_GROUPS = re.compile(r"[0-9]+(?:[ .\-][0-9]+)+")


def phone_grouped(text: str, s: int, out: list[Cand]) -> None:
    """Digit groups in any grouping after a phone word (`Phone: 4158 0481 86`), 9-13 digits
    in all: what a bare run with a phone word is, once its digits are grouped."""
    m = _PHONE_GROUPS.match(text, s)
    if m is None or not free_right(text, m.end()) or not 9 <= count_digits(m.group()) <= 13:
        return
    if PHONE_CTX.search(text[max(0, s - 32) : s]):
        out.append((s, m.end(), "phone"))


def isbn10(digits: str, before: str) -> bool:
    """A 10-digit run that is an ISBN-10 (valid check digit, or "ISBN" just before it)."""
    if "isbn" in before.lower():
        return True
    return len(digits) == 10 and sum((10 - i) * (ord(c) - 48) for i, c in enumerate(digits)) % 11 == 0


def phone_intl(text: str, s: int, out: list[Cand]) -> None:
    m = _PHONE_INTL.match(text, s)
    if m is None:
        return
    number = m.group(1)
    digits = count_digits(number.replace("(0)", "", 1)) - (2 if number.startswith("00") else 0)
    if number.startswith("00") and number.isdigit():
        return  # 00 without a separator: more often a zero-padded number than a phone
    if 8 <= digits <= 15 and free_right(text, m.end()):
        out.append((s, m.end(), "phone"))


def phone_local(text: str, s: int, out: list[Cand]) -> None:
    """North American numbers and national numbers with a trunk 0, at `s` (a digit or `(`)."""
    m = _PHONE_NANP.match(text, s)
    if m and free_right(text, m.end()):
        out.append((s, m.end(), "phone"))
        return
    m = _PHONE_NATIONAL.match(text, s)
    if m and free_right(text, m.end()) and 9 <= count_digits(m.group()) <= 12:
        out.append((s, m.end(), "phone"))
