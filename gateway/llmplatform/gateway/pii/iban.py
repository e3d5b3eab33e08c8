"""IBANs: two upper-case letters (a country of the ISO 13616 registry), then the check digits
and the BBAN, with up to three separators (spaces, dashes, dots, slashes, `_`) between
characters; the country's length and a valid mod-97 checksum are required, so no separator
makes a look-alike an IBAN."""

from __future__ import annotations

import re

from llmplatform.gateway.pii.model import SEPARATORS, Cand

# IBAN lengths by country (ISO 13616 registry).
_IBAN_LEN = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


_ALPHANUMERIC_AS_NUMBER = str.maketrans(
    {c: str(int(c, 36)) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"}
)
"""Letters as their mod-97 numbers (A = 10 ... Z = 35), one translate instead of a loop."""
_SEPARATOR_CHARS = "".join(sorted(SEPARATORS)).replace("\\", "\\\\").replace("-", "\\-")
_BBAN = {
    n: re.compile(rf"(?:[{_SEPARATOR_CHARS}]{{0,3}}[A-Z0-9]){{{n - 2}}}") for n in set(_IBAN_LEN.values())
}
"""After the country code: the check digits and the BBAN, `n - 2` characters for an IBAN of
length `n`, each after up to three separators (greedy, so a run of four separators ends it)."""
_NO_SEPARATORS = str.maketrans("", "", "".join(SEPARATORS))


def iban_ok(iban: str) -> bool:
    """`iban` without spaces, upper case: the country's length and the mod-97 checksum."""
    if _IBAN_LEN.get(iban[:2]) != len(iban) or not (iban.isascii() and iban.isalnum()):
        return False
    moved = iban[4:] + iban[:4]
    return int(moved.translate(_ALPHANUMERIC_AS_NUMBER)) % 97 == 1


def iban(text: str, s: int, out: list[Cand]) -> None:
    """An IBAN starting at `s` (two upper-case letters, then the check digits)."""
    want = _IBAN_LEN.get(text[s : s + 2])
    if want is None:
        return
    m = _BBAN[want].match(text, s + 2)
    if m is None:
        return
    i = m.end()
    free = i >= len(text) or not (text[i].isalnum() or text[i] == "_")
    if free and iban_ok(text[s : s + 2] + m.group().translate(_NO_SEPARATORS)):
        out.append((s, i, "iban"))
