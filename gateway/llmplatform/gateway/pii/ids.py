"""Government and payment numbers: US SSNs (`-`, a space or a dot between the groups;
excluding the ranges the SSA never issues: area 000, 666, 900-999; group 00; serial 0000) and
payment cards (13-19 digits starting like a card, 2-6, passing Luhn), bare or grouped by `-`,
a space or a dot (numeric.py decides which runs get here)."""

from __future__ import annotations

import re

SSN = re.compile(r"[0-9]{3}([- .])[0-9]{2}\1[0-9]{4}")
SSN_CTX = re.compile(r"(?i)(?:ssn|social security(?: number| no\.?| #)?)[^0-9\n]{0,12}$")
CARD_GROUPED = re.compile(r"[0-9]{4}([ .\-])[0-9]{4,6}\1[0-9]{4,5}(?:\1[0-9]{1,4})?(?:\1[0-9]{3})?")


_LUHN_DOUBLED = str.maketrans("0123456789", "0246813579")
"""A digit doubled, minus 9 when that is over 9 (Luhn's rule for every second digit)."""


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a string of ASCII digits: every second digit from the right
    doubled (`_LUHN_DOUBLED`), the digit sum a multiple of 10. The digits are summed as the
    bytes of one string (no Python loop per digit)."""
    summed = digits[-1::-2] + digits[-2::-2].translate(_LUHN_DOUBLED)
    return (sum(summed.encode("ascii", "replace")) - 48 * len(summed)) % 10 == 0


def ssn_ok(area: str, group: str, serial: str) -> bool:
    a = int(area)
    return a != 0 and a != 666 and a < 900 and group != "00" and serial != "0000"


def card_digits_ok(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_ok(digits)
