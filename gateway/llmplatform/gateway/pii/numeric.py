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
    free_left,
    free_right,
    word_start,
)
from llmplatform.gateway.pii.network import ipv4
from llmplatform.gateway.pii.phone import PHONE_CTX, isbn10, phone_grouped, phone_intl, phone_local

# A digit run that can start a finding: 9+ digits (5+ with hipaa, for MRNs); or followed by a
# separator and a digit, or by a letter; or right after a letter, `_`, `+`, `(`, `/` or `=`;
# and not a later group of a longer number (`05` in `2024-05-11`), nor an ISO date, nor
# (without hipaa) a price-like `12.34`. Any other run matches as `skip`, so that `re` does not
# retry at each of its digits. The pattern begins with a single `[0-9]`, so `re` skips to
# digits at C speed; possessive, so a match is a whole run.
_CAND_START = r"[0-9](?<![0-9]{2})(?<![0-9][ .\-/)][0-9])(?![0-9]{3}-[01][0-9]-[0-3][0-9](?![0-9]))"
_CAND = re.compile(
    _CAND_START + r"(?:(?<=[A-Za-z_+(/=][0-9])[0-9]*+"
    r"|[0-9]*+(?!\.[0-9]{2}(?![0-9.]))(?:(?<=[0-9]{9})|(?=[ .\-)][0-9(]|[A-Za-z_+/=]))"
    r"|[0-9]*+(?P<skip>))"
)
# With hipaa, also a number followed by a unit ("500 mg", "2.5 mL", "10 units").
_CAND_HIPAA = re.compile(
    _CAND_START + r"(?:(?<=[A-Za-z_+(/=][0-9])[0-9]*+"
    r"|[0-9]*+(?:(?<=[0-9]{5})|(?=[ .,\-)][0-9(A-Za-zµμ]|[A-Za-zµμ_+/=]))"
    r"|[0-9]*+(?P<skip>))"
)
_NO_SEPARATORS = str.maketrans("", "", " .-")


def numeric(text: str, pos: int, hipaa: bool, out: list[Cand]) -> None:
    """Every detector that needs a digit, driven by one pass over the digit runs that can
    start one (`CAND`): each is sent only to the detectors its neighbours make possible."""
    n = len(text)
    token_end = -1
    mrn_ctx = hipaa and any(w in text[max(0, pos - CONTEXT) :].lower() for w in MRN_PROBES)
    for run in (_CAND_HIPAA if hipaa else _CAND).finditer(text, pos):
        if run.lastgroup:
            continue  # a run that cannot start a finding
        s, e = run.span()
        p = text[s - 1] if s else ""
        nx = text[e] if e < n else ""
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
            if ln <= 19 and card_digits_ok(run.group()):
                out.append((s, e, "card"))
            if ln <= 13:
                back = text[max(0, s - 32) : s]
                if ln == 9 and SSN_CTX.search(back):
                    g = run.group()
                    if ssn_ok(g[:3], g[3:5], g[5:]):
                        out.append((s, e, "ssn"))
                elif PHONE_CTX.search(back) or (
                    ln in (10, 11) and text[s] == "0" and text[s + 1] != "0" and not isbn10(run.group(), back)
                ):
                    out.append((s, e, "phone"))
        if hipaa:
            if nx.isalpha() or nx in "µμ" or (nx and nx in " .," and e + 1 < n and text[e + 1] != " "):
                m = DOSAGE.match(text, s)
                if m:
                    out.append((s, m.end(), "dosage"))
            if mrn_ctx and (ln >= 5 or nx == "-") and MRN_CTX.search(text, max(0, s - CONTEXT), s):
                m = MRN.match(text, s)
                if m and free_right(text, m.end()) and 5 <= count_digits(m.group()) <= 12:
                    out.append((s, m.end(), "mrn"))
