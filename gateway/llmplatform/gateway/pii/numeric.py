"""The one pass over digit runs that drives every numeric detector (phone, SSN, card, IPv4,
IBAN, ICD-10, dosage, MRN, and the secret tokens, which are found through the digits inside
them). Each digit run is sent only to the detectors its neighbours make possible, with an
anchored `match`, and the costly checks (Luhn, mod-97, `ipaddress`, entropy) run only on those
candidates."""

from __future__ import annotations

import re

from llmplatform.gateway.pii.credentials import token
from llmplatform.gateway.pii.iban import iban
from llmplatform.gateway.pii.ids import CARD_GROUPED, SSN, SSN_CTX, card_digits_ok, ssn_ok
from llmplatform.gateway.pii.medical import DOSAGE, MRN, MRN_CTX, MRN_PROBES, icd10
from llmplatform.gateway.pii.model import (
    CONTEXT,
    DIGITS,
    UPPER,
    Cand,
    count_digits,
    fold,
    free_left,
    free_right,
    word_start,
)
from llmplatform.gateway.pii.network import ipv4
from llmplatform.gateway.pii.phone import PHONE_CTX, isbn10, phone_grouped, phone_intl, phone_local

# A digit run that can start a finding: 9+ digits (5+ with hipaa, for MRNs); or followed by a
# separator and a digit, or by a letter; or right after a letter, `_`, `+`, `(`, `/` or `=`;
# and not a later group of a longer number (`05` in `2024-05-11`), nor (without hipaa) a
# price-like `12.34`. Any other run matches as `skip`, so that `re` does not retry at each of
# its digits; an ISO date's year (`2024-05-11`) is skipped by `_ISO_DATE`. The patterns run on
# the folded text (model.fold: every digit is `0`, so they begin with the literal `0` and `re`
# skips to digits with a tight loop); possessive, so a match is a whole run.
_CAND_START = rb"0(?<!00)(?<!0[ .\-/)]0)"
_CAND = re.compile(
    _CAND_START + rb"(?:(?<=[A-Za-z_+(/=]0)0*+"
    rb"|0*+(?!\.00(?![0.]))(?:(?<=0{9})|(?=[ .\-)][0(]|[A-Za-z_+/=]))"
    rb"|0*+(?P<skip>))"
)
# With hipaa, also a number followed by a unit ("500 mg", "2.5 mL", "10 units", "5 µg": the
# fold makes the micro signs `~`).
_CAND_HIPAA = re.compile(
    _CAND_START + rb"(?:(?<=[A-Za-z_+(/=]0)0*+"
    rb"|0*+(?:(?<=0{5})|(?=[ .,\-)][0(A-Za-z~]|[A-Za-z~_+/=]))"
    rb"|0*+(?P<skip>))"
)
_UNIT_FIRST = frozenset("mMuUnNiItTcCpPdDµμ")
"""The first letters of DOSAGE's units: a number followed by another ASCII character (after
its decimals and one space) cannot be a dosage, so DOSAGE is not tried there; any non-ASCII
character may match a unit case-insensitively and is left to DOSAGE."""
_ISO_DATE = re.compile(r"[0-9]{4}-[01][0-9]-[0-3][0-9](?![0-9])")
_NO_SEPARATORS = str.maketrans("", "", " .-")


def numeric(text: str, pos: int, hipaa: bool, out: list[Cand], folded: bytes | None = None) -> None:
    """Every detector that needs a digit, driven by one pass over the digit runs that can
    start one (`CAND`): each is sent only to the detectors its neighbours make possible.
    `folded` is `fold(text)` when the caller has it already."""
    n = len(text)
    token_end = -1
    mrn_words = _MrnWords(text, pos)
    for run in (_CAND_HIPAA if hipaa else _CAND).finditer(fold(text) if folded is None else folded, pos):
        if run.lastgroup:
            continue  # a run that cannot start a finding
        s, e = run.span()
        nx = text[e] if e < n else ""
        if nx == "-" and e - s == 4 and _ISO_DATE.match(text, s):
            continue
        p = text[s - 1] if s else ""
        if p.isalpha() or p == "_":
            if s >= token_end:
                token_end = token(text, s, e, pos, out)
            if p in UPPER:
                # IBAN: two upper-case letters then the check digits; ICD-10: one letter.
                if s - 2 >= pos and text[s - 2] in UPPER and word_start(text, s - 2):
                    iban(text, s - 2, out)
                if hipaa and e - s == 2 and word_start(text, s - 1):
                    icd10(text, s - 1, out)
            continue
        if s >= token_end and (
            nx.isalpha()
            or nx == "_"
            or (p == "-" and s - 2 >= pos and text[s - 2].isalpha())
            or (nx == "-" and e + 1 < n and text[e + 1].isalpha())
        ):
            token_end = token(text, s, e, pos, out)
        if p == "+":
            if free_left(text, s - 1):
                phone_intl(text, s - 1, out)
            continue
        if p and p in " .-/)" and s >= 2 and text[s - 2] in DIGITS:
            continue  # a later group of a number that started earlier
        ln = e - s
        if p == "(" and free_left(text, s - 1):
            phone_local(text, s - 1, out)
        if p and p in DIGITS:  # only when pos cuts a run (never for scan())
            continue
        if ln >= 3 and text[s] == "0" and text[s + 1] == "0":
            phone_intl(text, s, out)
        if nx and nx in " .-":
            first = text[s]
            if ln == 3 or (first == "0" and ln <= 5) or (ln == 1 and first == "1"):
                phone_local(text, s, out)
            if ln < 9:
                phone_grouped(text, s, out)
            if ln == 3:
                m = SSN.match(text, s)
                if m and free_right(text, m.end()):
                    g = m.group()
                    if ssn_ok(g[:3], g[4:6], g[7:]):
                        out.append((s, m.end(), "ssn"))
            if ln <= 3 and nx == ".":
                ipv4(text, s, out)
            elif ln == 4 and first in "23456":
                m = CARD_GROUPED.match(text, s)
                digits = m.group().translate(_NO_SEPARATORS) if m else ""
                if m and free_right(text, m.end(), " .-") and card_digits_ok(digits):
                    out.append((s, m.end(), "card"))
        if ln >= 9 and free_right(text, e, " .-"):
            if ln <= 19 and card_digits_ok(text[s:e]):
                out.append((s, e, "card"))
            if ln <= 13:
                back = text[max(0, s - 32) : s]
                if ln == 9 and SSN_CTX.search(back):
                    g = text[s:e]
                    if ssn_ok(g[:3], g[3:5], g[5:]):
                        out.append((s, e, "ssn"))
                elif PHONE_CTX.search(back) or (
                    ln in (10, 11) and text[s] == "0" and text[s + 1] != "0" and not isbn10(text[s:e], back)
                ):
                    out.append((s, e, "phone"))
        if hipaa:
            if nx and (
                nx in _UNIT_FIRST
                or not nx.isascii()
                or (nx == " " and e + 1 < n and (text[e + 1] in _UNIT_FIRST or not text[e + 1].isascii()))
                or (nx in ".," and e + 1 < n and text[e + 1] in DIGITS)
            ):
                m = DOSAGE.match(text, s)
                if m:
                    out.append((s, m.end(), "dosage"))
            if (ln >= 5 or nx == "-") and mrn_words.near(s) and MRN_CTX.search(text, max(0, s - CONTEXT), s):
                m = MRN.match(text, s)
                if m and free_right(text, m.end()) and 5 <= count_digits(m.group()) <= 12:
                    out.append((s, m.end(), "mrn"))


class _MrnWords:
    """Whether a word of MRN_PROBES is within CONTEXT characters before a digit run, the cheap
    test before the costly case-insensitive MRN_CTX search (which needs one there). Tested on
    those characters alone (a few `in` on 48 lower-cased characters) for the first runs that
    ask, then once on the whole text (probing 4 KB costs about as much as a dozen local tests,
    so only a text with many numbers pays for it)."""

    __slots__ = ("_anywhere", "_local_tests", "_pos", "_text")
    LOCAL_TESTS = 8

    def __init__(self, text: str, pos: int) -> None:
        self._text = text
        self._pos = pos
        self._anywhere: bool | None = None
        self._local_tests = 0

    def near(self, s: int) -> bool:
        if self._anywhere is not None:
            return self._anywhere
        text = self._text
        self._local_tests += 1
        if self._local_tests > self.LOCAL_TESTS:
            low = text[max(0, self._pos - CONTEXT) :].lower()
            self._anywhere = any(w in low for w in MRN_PROBES)
            return self._anywhere
        back = text[max(0, s - CONTEXT) : s].lower()
        return any(w in back for w in MRN_PROBES)
