"""Finding personal data and secrets in prompt text, classifying it and redacting it.

Why this module exists: the gateway decides per request how sensitive its text is (which
models may receive it, whether it must be redacted first, what the audit record says), so it
scans every prompt on the hot path. That fixes the design:

- Speed (target: scan + redact of a 4 KB prompt, median <= 0.2 ms on CPython 3.11). CPython's
  `re` pays a few nanoseconds per character for every pass over the text, so there is one pass
  per *trigger*, not one per finding type: a single pass over digit runs drives every numeric
  detector (phone, SSN, card, IPv4, IBAN, ICD-10, dosage, MRN, and the secret tokens, which are
  found through the digits inside them), `@` for e-mails, `::`/`:h:` for IPv6 and
  `-----BEGIN` for PEM headers are found by literal search (memchr speed). Each digit run is
  sent only to the detectors its neighbours make possible, with an anchored `match`, and the
  costly checks (Luhn, mod-97, `ipaddress`, entropy) run only on those candidates.
- Validation over pattern matching: cards must pass Luhn and start like a card (2-6), IBANs
  must have their country's length and a valid mod-97 checksum, SSNs exclude the ranges the
  SSA never issues (area 000, 666, 900-999; group 00; serial 0000), IPs must parse (and an
  IPv6 address needs two non-empty groups and four hex digits, so `::1`, `a[1::2]` and
  `std::vector` are not addresses).
- Locality, so that streams can be redacted exactly: no match ever contains a newline or tab,
  and a space only where it is *glued* (after a digit or `)`, or between an upper-case letter
  and an upper-case letter or digit: the spaces of `+44 20 7946 0958`, `500 mg`,
  `DE89 3704 ...`, `BEGIN RSA PRIVATE KEY`). Every other whitespace character is a *break*
  that no finding crosses; context words ("MRN:", "phone") are only looked *back* at, at most
  `CONTEXT` characters. So the findings of a text are those of its pieces between breaks, and
  `StreamRedactor` can emit each piece as soon as its break has arrived while giving exactly
  the output of `redact(text, scan(text))` (property-tested).

Decisions (see also bench/results/governance.md for what they cost in precision and recall):
- Secrets are found in tokens (runs of `[A-Za-z0-9+/_=.-]`) of >= 20 characters that contain
  a digit: well-known key prefixes (OpenAI/Anthropic `sk-`, AWS `AKIA`/`ASIA`..., GitHub
  `ghp_`/`github_pat_`..., Slack `xox?-`, Google `AIza`, GitLab, Stripe, Hugging Face, npm,
  PyPI, SendGrid, JWTs) or any part of >= 32 characters that has upper case, lower case and
  digits mixed like random text (`RANDOM_MIXING`, `ENTROPY_BITS`). A key without a single
  digit is missed (for a random 20-character key, about 0.5%). Hex strings (UUIDs, git commit
  ids, SHA digests) are *not* secrets: they are single-case, are usually public identifiers,
  and flagging them would break code review prompts. PEM private-key headers are secrets; the
  base64 lines under them are caught by the entropy rule.
- Phone numbers: international (`+` or `00` then 8-15 digits, with `(0)`, spaces, dots or
  dashes), North American (`(415) 555-0134`, `415-555-0134`, `415.555.0134`, `1-415-...`,
  extensions `x123`), European national numbers with a trunk `0` and a separator
  (`0161 496 0066`, `(030) 1234567`, `04 15 39 15 00`) or without one when it has 10-11
  digits (`0612345678`; not a valid ISBN-10; a zero-padded id starts with `00`), other bare
  runs of 9-13 digits only when a phone word ("phone", "call", "Tel", "Handy", "portable",
  "my number"...) comes shortly before.
- HIPAA (only with `hipaa=True`): MRNs need a context word ("MRN", "medical record number",
  "patient ID"...); dosages are a number with a drug unit (mg, mcg, mL, units, IU, mEq, mmol,
  tablets...), not g or L, which are as often groceries ("20 units" of stock is a dosage too:
  insulin). ICD-10 codes are a chapter-valid letter + 2 digits; the dot form (`E11.9`) is always
  a code, and so is a bare category (`I10`) after a coding word or note heading ("ICD",
  "diagnosis", "dx", "code", "Assessment", "Problem list"...). A bare category with no such word
  (`ICD10_BARE`): for a hipaa tenant a missed code is a disclosure while a redacted "A10" only
  costs a model name, so it is a code *by default*, and rejected only on evidence that it names
  something else: (1) it is no category of ICD-10 (WHO 2019) nor ICD-10-CM (2026)
  (`_ICD_CATEGORIES`: `A10`, `B12`, `U12` are unused, so they are never codes); (2) it is part
  of a longer token (`RTX-A10`, `A10-G`, a spreadsheet range `A1:B12`); (3) the word right
  before or right after it says what kind of thing it is, and that is not medical
  (`ICD10_NON_MEDICAL_WORDS`: `NVIDIA A10`, `A10 GPU`, `vitamin B12`, `F16 jet`, `M25
  motorway`). Only the *adjacent* word counts: a vehicle or road word a few words away must not
  hide a transport-accident code (`hit by a car, V43`). The word after is safe for streaming:
  the space after a code's last digit is glued, so the next word is in the same piece. A bare
  category with no context at all ("See Q35 for details.") is therefore redacted.
- Classification (`classify`): SSN, card, MRN, ICD-10, dosage and secrets -> restricted (a
  live credential is as damaging as a card number); any other finding -> confidential; the
  words in `CONFIDENTIAL_TERMS` -> confidential; the words in `INTERNAL_TERMS` -> internal;
  otherwise public.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import re
from collections import Counter
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

CONFIDENTIAL_TERMS = (
    "confidential",
    "proprietary",
    "trade secret",
    "top secret",
    "company secret",
    "internal only",
    "internal use only",
    "for internal use",
    "do not distribute",
    "do not share",
    "not for distribution",
    "not for external",
    "under nda",
    "non-disclosure",
    "attorney-client",
    "privileged",
    "non-public",
    "insider information",
    "classified",
)
"""Phrases that make a text confidential by themselves (case-insensitive, whole words)."""

_CONFIDENTIAL_SET = frozenset(CONFIDENTIAL_TERMS)
INTERNAL_TERMS = ("internal", "internally", "intranet", "in-house", "employees only", "staff only")
"""Words that make a text at least internal (case-insensitive, whole words)."""

CONTEXT = 48
"""How far back (characters) context words are looked for; StreamRedactor keeps this much."""
MAX_HOLD = 4096
"""StreamRedactor emits at least every this many characters, even without a break."""
ENTROPY_BITS = 4.0
"""Minimum Shannon entropy (bits per character) of a >= 32-character mixed token (random
base62 of 32-64 characters: 1st percentile 4.29; camelCase names with a number: median 4.25,
so entropy alone cannot tell them apart and RANDOM_MIXING does most of the work)."""
RANDOM_MIXING = 0.4
"""Minimum share of neighbouring characters that change class (digit / upper / lower / other)
in such a token: random base62 1st percentile 0.44, camelCase or SNAKE_CASE names with a
number 99th percentile 0.41 (measured on 8,000 and 3,700 samples)."""

_DIGITS = frozenset("0123456789")
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_UPPER_DIGITS = _UPPER | _DIGITS
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_=.-")
_LOCAL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")
_HEX_CHARS = frozenset("0123456789abcdefABCDEF:.")
_BREAKS = frozenset("\n\r\t\f\v")

# Priority when findings overlap (lower wins; then the longer one).
_PRIO = {
    "secret+": 0,
    "email": 1,
    "iban": 2,
    "card": 3,
    "ssn": 4,
    "ipv6": 5,
    "ipv4": 6,
    "mrn": 7,  # needs a context word, so it is more specific than a phone number
    "phone": 8,
    "icd10": 9,
    "dosage": 10,
    "secret": 11,
}

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
_TOKEN_FWD = re.compile(r"[A-Za-z0-9+/_=.\-]*")
_MRN_PROBES = ("mrn", "medical record", "patient", "chart", "record number")
_DOMAIN = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
_LOCAL_RUN = re.compile(r"[A-Za-z0-9._%+-]+")
_V6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")
_PEM = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")

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
_PHONE_CTX = re.compile(
    r"(?i)\b(?:(?:phone|tel|mobile|cell|fax|call|calling|reach|text me|whatsapp|sms|dial|contact"
    r"|handy|rufen|erreichbar|t[ée]l|portable|appel(?:ez|le)?|joindre|m[óo]vil|cellulare|bel|mobiel)\b"
    r"|t[ée]l\.|mob\.|telefo\w*|t[ée]l[ée]phon\w*|anruf\w*|ll[aá]m\w*|chiam\w*"
    r"|(?:my|her|his|their|our|your|mon|son|sa|ma|su|mi|tu|suo|sua|mio|mia|meine|seine|ihre|die"
    r"|mijn|zijn|haar|het)\s+(?:number|num[ée]ro|n[úu]mero|nummer)\b)[^0-9\n.!?]{0,24}$"
)
_SSN = re.compile(r"[0-9]{3}([- ])[0-9]{2}\1[0-9]{4}")
_SSN_CTX = re.compile(r"(?i)(?:ssn|social security(?: number| no\.?| #)?)[^0-9\n]{0,12}$")
_CARD_GROUPED = re.compile(r"[0-9]{4}([ \-])[0-9]{4,6}\1[0-9]{4,5}(?:\1[0-9]{1,4})?(?:\1[0-9]{3})?")
_IPV4 = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
_DOSAGE = re.compile(
    r"(?i)[0-9]+(?:[.,][0-9]+)?[ ]?(?:mg|mcg|µg|μg|ug|ng|ml|units?|iu|meq|mmol"
    r"|tablets?|tabs?|capsules?|puffs?|drops?)(?:/(?:kg|day|d|hr?|dose|ml|m2|min))?(?![A-Za-z])"
)
_MRN_CTX = re.compile(
    r"(?i)(?:\bmrn|medical record(?:s)?(?: number| no\.?| #)?|patient (?:id|number|no\.?)"
    r"|chart (?:number|no\.?)|record number)[\s:#=.\-]*(?:is\s+|was\s+)?$"
)
_MRN = re.compile(r"[0-9]{2,}(?:-[0-9]{2,})*")
_ICD = re.compile(r"[A-Z][0-9]{2}(?:\.[0-9A-Z]{1,4})?(?![A-Za-z0-9])")
# Words that make a bare ICD-10 category ("I10") a code: coding words and the headings of
# clinical notes where codes are listed.
_ICD_CTX = re.compile(
    r"(?i)\b(?:icd|diagnos|dx|codes?|coded|assessment|problem list|pmh|history of|impression)"
)
ICD10_BARE = "unless_non_medical"
"""Bare categories (`I10`) without a coding word: "unless_non_medical" (codes unless they are
no category, part of a longer token or next to a non-medical word; see the module docstring),
"context" (never codes) or "always" (always codes). bench/governance measures all three."""
ICD10_NON_MEDICAL_WORDS = (
    # computing hardware and cloud
    "gpu", "nvidia", "cuda", "tesla", "radeon", "geforce", "quadro", "cpu", "chip", "card",
    "processor", "accelerator", "server", "vram", "aws", "ec2", "azure",
    # products and models
    "model", "version", "sku", "firmware", "camera", "lens", "laptop", "printer", "router",
    # vehicles and weapons
    "jet", "fighter", "aircraft", "plane", "tank", "car", "truck", "bus", "train", "engine",
    "rifle",
    # roads
    "motorway", "highway", "freeway", "autobahn", "road", "route", "junction", "traffic",
    # vitamins and supplements
    "vitamin", "supplement",
    # spreadsheets and places
    "column", "row", "sheet", "spreadsheet", "seat", "gate", "room", "flight",
)  # fmt: skip
"""Words that, right before or right after a bare category, say it names something else."""
_NON_MEDICAL = "|".join(ICD10_NON_MEDICAL_WORDS)
_ICD_NOT_BEFORE = re.compile(rf"(?i)\b(?:{_NON_MEDICAL})s?[ :]{{1,3}}$")
_ICD_NOT_AFTER = re.compile(rf"(?i) (?:{_NON_MEDICAL})s?(?![A-Za-z])")
# Highest valid two-digit category per chapter letter (ICD-10 / ICD-10-CM).
_ICD_MAX = {"D": 89, "E": 90, "H": 95, "K": 95, "P": 96, "T": 98, "U": 85}
# The categories of ICD-10 (WHO 2019) and ICD-10-CM (April 2026) together, by letter.
_ICD_RANGES = """
A 00-09 15-28 30-44 46 48-60 63-71 74-75 77-99
B 00-10 15-27 30 33-60 64-83 85-92 94-99
C 00-26 30-34 37-41 43-58 60-86 88 90-97
D 00-07 09-53 55-78 80-84 86 89
E 00-16 20-32 34-36 40-46 50-56 58-61 63-68 70-80 83-90
F 00-07 09-25 28-34 38-45 48 50-55 59-66 68-73 78-84 88-95 98-99
G 00-14 20-26 30-32 35-37 40-41 43-47 50-65 70-73 80-83 89-99
H 00-06 10-11 13 15-22 25-28 30-36 40 42-55 57-62 65-75 80-83 90-95
I 00-02 05-13 15-16 20-28 30-52 60-83 85-89 95-99
J 00-06 09-18 20-22 30-47 60-70 80-82 84-86 90-96 98-99
K 00-14 20-23 25-31 35-38 40-46 50-52 55-68 70-77 80-83 85-87 90-95
L 00-05 08 10-14 20-30 40-45 49-60 62-68 70-76 80-95 97-99
M 00-27 30-36 40-43 45-51 53-54 60-63 65-68 70-73 75-77 79-97 99
N 00-08 10-23 25-37 39-53 60-65 70-77 80-99
O 00-16 20-26 28-36 40-48 60-77 80-92 94-99
P 00-05 07-15 19-29 35-39 50-61 70-72 74-78 80-81 83-84 90-96
Q 00-07 10-18 20-28 30-45 50-56 60-87 89-93 95-99
R 00-07 09-23 25-27 29-37 39-65 68-99
S 00-99
T 00-71 73-76 78-88 90-98
U 04 07-09 82-85
V 00-06 09-99
W 00-46 49-62 64-70 73-81 83-94 99
X 00-06 08-54 57-99
Y 00-38 40-66 69-93 95-99
Z 00-05 08-99
"""
_ICD_CATEGORIES = frozenset(
    f"{line[0]}{n:02d}"
    for line in _ICD_RANGES.split("\n")
    if line
    for r in line.split()[1:]
    for n in range(int(r[:2]), int(r[-2:]) + 1)
)
_SECRET_PREFIXED = re.compile(
    r"sk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"
    r"|(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA|ASCA)[A-Z0-9]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|github_pat_[A-Za-z0-9_]{22,}"
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"
    r"|AIza[0-9A-Za-z_\-]{35}"
    r"|glpat-[A-Za-z0-9_\-]{20,}"
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|hf_[A-Za-z0-9]{30,}"
    r"|npm_[A-Za-z0-9]{36}"
    r"|pypi-[A-Za-z0-9_\-]{50,}"
    r"|SG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}"
    r"|eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}"
)
_TOKEN_PART = re.compile(r"[A-Za-z0-9+/_\-]{32,}")
# Each term with a substring to probe for first: one `in` per probe on the lower-cased text,
# and the terms behind a probe are checked (whole words) only when it is there.
_TERM_PROBES: dict[str, tuple[str, ...]] = {}
for _term in sorted(CONFIDENTIAL_TERMS + INTERNAL_TERMS, key=len, reverse=True):
    _probe = next((p for p in ("secret", "internal", "distribut") if p in _term), _term)
    _TERM_PROBES.setdefault(_probe, ())
    _TERM_PROBES[_probe] += (_term,)

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


@dataclass(frozen=True, slots=True)
class Finding:
    """One finding: its type (see TYPES) and its span `text[start:end]`."""

    type: str
    start: int
    end: int


# --- validators ---------------------------------------------------------------------------


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """`iban` without spaces, upper case: the country's length and the mod-97 checksum."""
    if _IBAN_LEN.get(iban[:2]) != len(iban):
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _isbn10(digits: str, before: str) -> bool:
    """A 10-digit run that is an ISBN-10 (valid check digit, or "ISBN" just before it)."""
    if "isbn" in before.lower():
        return True
    return len(digits) == 10 and sum((10 - i) * (ord(c) - 48) for i, c in enumerate(digits)) % 11 == 0


def ssn_ok(area: str, group: str, serial: str) -> bool:
    a = int(area)
    return a != 0 and a != 666 and a < 900 and group != "00" and serial != "0000"


def entropy(s: str) -> float:
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


# --- helpers ------------------------------------------------------------------------------


def _free_left(text: str, i: int) -> bool:
    """No letter, digit or `_` right before `i`, and not the tail of a longer number."""
    if i == 0:
        return True
    c = text[i - 1]
    if c.isalnum() or c == "_":
        return False
    return not (c in " .-/" and i >= 2 and text[i - 2] in _DIGITS)


def _word_start(text: str, i: int) -> bool:
    return i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")


def _free_right(text: str, e: int, seps: str = ".-") -> bool:
    """No letter, digit or `_` at `e`, and no separator followed by a digit."""
    if e >= len(text):
        return True
    c = text[e]
    if c.isalnum() or c == "_":
        return False
    return not (c in seps and e + 1 < len(text) and text[e + 1] in _DIGITS)


def _count_digits(s: str) -> int:
    return sum(map(s.count, "0123456789"))


def _glued(text: str, i: int) -> bool | None:
    """Whether the space at `i` may lie inside a finding; None when `text[i + 1]` is needed
    but not there yet."""
    if i == 0:
        return False
    before = text[i - 1]
    if before in _DIGITS or before == ")":
        return True
    if before in _UPPER:
        if i + 1 >= len(text):
            return None
        return text[i + 1] in _UPPER_DIGITS
    return False


# --- detectors ----------------------------------------------------------------------------

_Cand = tuple[int, int, str]  # start, end, type ("secret+" for prefixed secrets)


def _emails(text: str, pos: int, out: list[_Cand]) -> None:
    at = text.find("@", pos)
    while at != -1:
        lo = max(pos, at - 64)
        i = text.rfind(" ", lo, at) + 1 or lo  # fast path: the local part follows a space
        if (
            i == at
            or _LOCAL_RUN.fullmatch(text, i, at) is None
            or (i == lo and i > pos and text[i - 1] in _LOCAL_CHARS)
        ):
            i = at
            while i > lo and text[i - 1] in _LOCAL_CHARS:
                i -= 1
        while i < at and text[i] == ".":
            i += 1
        m = _DOMAIN.match(text, at + 1)
        if i < at and m is not None:
            end = m.end()
            dom = m.group()
            # need a dot and a 2+ letter top-level label
            dot = dom.rfind(".")
            if dot > 0 and len(dom) - dot > 2 and dom[dot + 1 :].isalpha():
                out.append((i, end, "email"))
                at = text.find("@", end)
                continue
        at = text.find("@", at + 1)


def _ipv6(text: str, pos: int, out: list[_Cand]) -> None:
    n = len(text)
    m = _V6_HINT.search(text, pos)
    while m is not None:
        s = m.start()
        while s > pos and text[s - 1] in _HEX_CHARS:
            s -= 1
        e = m.end()
        while e < n and text[e] in _HEX_CHARS:
            e += 1
        cand = text[s:e].rstrip(".")
        ok = s == 0 or not (text[s - 1].isalnum() or text[s - 1] == "_")
        if ok:
            for c in (cand, cand[:-1] if cand.endswith(":") and not cand.endswith("::") else ""):
                if not c:
                    continue
                end = s + len(c)
                if end < n and (text[end].isalnum() or text[end] == "_"):
                    continue
                try:
                    ipaddress.IPv6Address(c)
                except ValueError:
                    continue
                groups = [g for g in c.split(":") if g]
                if len(groups) >= 2 and sum(len(g) for g in groups) >= 4:
                    out.append((s, end, "ipv6"))
                break
        m = _V6_HINT.search(text, max(e, m.end()))


def _iban(text: str, s: int, out: list[_Cand]) -> None:
    """An IBAN starting at `s` (two upper-case letters, then the check digits)."""
    want = _IBAN_LEN.get(text[s : s + 2])
    if want is None:
        return
    n = len(text)
    chars = [text[s], text[s + 1]]
    i = s + 2
    while len(chars) < want and i < n:
        c = text[i]
        if c in _UPPER_DIGITS:
            chars.append(c)
            i += 1
        elif c == " " and i + 1 < n and text[i + 1] in _UPPER_DIGITS and text[i - 1] != " ":
            i += 1
        else:
            break
    free = i >= n or not (text[i].isalnum() or text[i] == "_")
    if len(chars) == want and free and iban_ok("".join(chars)):
        out.append((s, i, "iban"))


def _card_digits_ok(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_ok(digits)


def _secrets_in_token(text: str, ts: int, te: int, out: list[_Cand]) -> None:
    found = False
    for m in _SECRET_PREFIXED.finditer(text, ts, te):
        s, e = m.span()
        if s > 0 and (text[s - 1].isalnum()):
            continue
        body = m.group()
        if body.startswith("sk-") and not any(c in _DIGITS for c in body):
            continue
        out.append((s, e, "secret+"))
        found = True
    if found:
        return
    for m in _TOKEN_PART.finditer(text, ts, te):
        part = m.group().rstrip("=")
        if _looks_random(part):
            out.append((m.start(), m.start() + len(part), "secret"))


def _char_class(c: str) -> int:
    return 0 if c in _DIGITS else 1 if c.isupper() else 2 if c.islower() else 3


def _looks_random(part: str) -> bool:
    """Upper case, lower case and digits, mixed like random text: at least RANDOM_MIXING of
    neighbouring characters change class (random base62: about 0.62, camelCase names with a
    number: about 0.3), and at least ENTROPY_BITS bits per character."""
    classes = [_char_class(c) for c in part]
    if not (0 in classes and 1 in classes and 2 in classes):
        return False
    changes = sum(1 for a, b in itertools.pairwise(classes) if a != b)
    return changes >= RANDOM_MIXING * (len(part) - 1) and entropy(part) >= ENTROPY_BITS


def _token(text: str, s: int, e: int, pos: int, out: list[_Cand]) -> int:
    """Checks the token around the digit run `text[s:e]` for secrets; returns its end."""
    after = text.find(" ", e, e + 20)
    if after != -1 and after - text.rfind(" ", max(pos, s - 20), s) <= 20:
        return after  # the word holding the run is too short to hold a secret
    ts = s
    while ts > pos and text[ts - 1] in _TOKEN_CHARS:
        ts -= 1
    m = _TOKEN_FWD.match(text, e)
    te = m.end() if m else e
    if te - ts >= 20:
        _secrets_in_token(text, ts, te, out)
    return te


def _numeric(text: str, pos: int, hipaa: bool, out: list[_Cand]) -> None:
    """Every detector that needs a digit, driven by one pass over the digit runs that can
    start one (`_CAND`): each is sent only to the detectors its neighbours make possible."""
    n = len(text)
    token_end = -1
    mrn_ctx = hipaa and any(w in text[max(0, pos - CONTEXT) :].lower() for w in _MRN_PROBES)
    for run in (_CAND_HIPAA if hipaa else _CAND).finditer(text, pos):
        if run.lastgroup:
            continue  # a run that cannot start a finding
        s, e = run.span()
        p = text[s - 1] if s else ""
        nx = text[e] if e < n else ""
        if p.isalpha() or p == "_":
            if s >= token_end:
                token_end = _token(text, s, e, pos, out)
            if p in _UPPER:
                # IBAN: two upper-case letters then the check digits; ICD-10: one letter.
                if s - 2 >= pos and text[s - 2] in _UPPER and _word_start(text, s - 2):
                    _iban(text, s - 2, out)
                if hipaa and e - s == 2 and _word_start(text, s - 1):
                    _icd10(text, s - 1, out)
            continue
        if s >= token_end and (
            nx.isalpha()
            or nx == "_"
            or (p == "-" and s - 2 >= pos and text[s - 2].isalpha())
            or (nx == "-" and e + 1 < n and text[e + 1].isalpha())
        ):
            token_end = _token(text, s, e, pos, out)
        if p == "+":
            if _free_left(text, s - 1):
                _phone_intl(text, s - 1, out)
            continue
        if p and p in " .-/)" and s >= 2 and text[s - 2] in _DIGITS:
            continue  # a later group of a number that started earlier
        ln = e - s
        if p == "(" and _free_left(text, s - 1):
            _phone_local(text, s - 1, out)
        if p and p in _DIGITS:  # only when pos cuts a run (never for scan())
            continue
        if ln >= 3 and text[s] == "0" and text[s + 1] == "0":
            _phone_intl(text, s, out)
        if nx and nx in " .-":
            first = text[s]
            if ln == 3 or (first == "0" and ln <= 5) or (ln == 1 and first == "1"):
                _phone_local(text, s, out)
            if ln == 3 and nx != ".":
                m = _SSN.match(text, s)
                if m and _free_right(text, m.end()):
                    g = m.group()
                    if ssn_ok(g[:3], g[4:6], g[7:]):
                        out.append((s, m.end(), "ssn"))
            if ln <= 3 and nx == ".":
                m = _IPV4.match(text, s)
                if m and _free_right(text, m.end(), ".-"):
                    try:
                        ipaddress.IPv4Address(m.group())
                        out.append((s, m.end(), "ipv4"))
                    except ValueError:
                        pass
            elif ln == 4 and nx != "." and first in "23456":
                m = _CARD_GROUPED.match(text, s)
                digits = m.group().replace(" ", "").replace("-", "") if m else ""
                if m and _free_right(text, m.end(), " -") and _card_digits_ok(digits):
                    out.append((s, m.end(), "card"))
        if ln >= 9 and _free_right(text, e, " .-"):
            if ln <= 19 and _card_digits_ok(run.group()):
                out.append((s, e, "card"))
            if ln <= 13:
                back = text[max(0, s - 32) : s]
                if ln == 9 and _SSN_CTX.search(back):
                    g = run.group()
                    if ssn_ok(g[:3], g[3:5], g[5:]):
                        out.append((s, e, "ssn"))
                elif _PHONE_CTX.search(back) or (
                    ln in (10, 11)
                    and text[s] == "0"
                    and text[s + 1] != "0"
                    and not _isbn10(run.group(), back)
                ):
                    out.append((s, e, "phone"))
        if hipaa:
            if nx.isalpha() or nx in "µμ" or (nx and nx in " .," and e + 1 < n and text[e + 1] != " "):
                m = _DOSAGE.match(text, s)
                if m:
                    out.append((s, m.end(), "dosage"))
            if mrn_ctx and (ln >= 5 or nx == "-") and _MRN_CTX.search(text, max(0, s - CONTEXT), s):
                m = _MRN.match(text, s)
                if m and _free_right(text, m.end()) and 5 <= _count_digits(m.group()) <= 12:
                    out.append((s, m.end(), "mrn"))


def _phone_intl(text: str, s: int, out: list[_Cand]) -> None:
    m = _PHONE_INTL.match(text, s)
    if m is None:
        return
    number = m.group(1)
    digits = _count_digits(number.replace("(0)", "", 1)) - (2 if number.startswith("00") else 0)
    if number.startswith("00") and number.isdigit():
        return  # 00 without a separator: more often a zero-padded number than a phone
    if 8 <= digits <= 15 and _free_right(text, m.end()):
        out.append((s, m.end(), "phone"))


def _phone_local(text: str, s: int, out: list[_Cand]) -> None:
    """North American numbers and national numbers with a trunk 0, at `s` (a digit or `(`)."""
    m = _PHONE_NANP.match(text, s)
    if m and _free_right(text, m.end()):
        out.append((s, m.end(), "phone"))
        return
    m = _PHONE_NATIONAL.match(text, s)
    if m and _free_right(text, m.end()) and 9 <= _count_digits(m.group()) <= 12:
        out.append((s, m.end(), "phone"))


def _icd10(text: str, s: int, out: list[_Cand]) -> None:
    m = _ICD.match(text, s)
    if m is None:
        return
    code = m.group()
    if int(code[1:3]) > _ICD_MAX.get(code[0], 99):
        return
    e = m.end()
    if not _free_right(text, e, "."):  # E11.9.2 or E11x: a version or a part number
        return
    if (
        "." in code
        or ICD10_BARE == "always"
        or _ICD_CTX.search(text, max(0, s - CONTEXT), s)
        or (ICD10_BARE == "unless_non_medical" and _bare_code(text, s, e, code))
    ):
        out.append((s, e, "icd10"))


def _bare_code(text: str, s: int, e: int, code: str) -> bool:
    """A bare category `text[s:e]` without a coding word is a code unless it is no category,
    part of a longer token or next to a non-medical word (see the module docstring)."""
    if code not in _ICD_CATEGORIES:
        return False
    if s >= 2 and (
        (text[s - 1] in "-." and text[s - 2].isalnum()) or (text[s - 1] == ":" and text[s - 2] in _DIGITS)
    ):
        return False  # RTX-A10, A1:B12
    if e + 1 < len(text) and text[e] in "-:" and text[e + 1].isalnum():
        return False  # A10-G, B12:C20
    return not (_ICD_NOT_BEFORE.search(text, max(0, s - 24), s) or _ICD_NOT_AFTER.match(text, e))


def _resolve(cands: list[_Cand]) -> list[Finding]:
    cands.sort()
    overlap = any(cands[i][0] < cands[i - 1][1] for i in range(1, len(cands)))
    if overlap:
        kept: list[_Cand] = []
        for c in sorted(cands, key=lambda c: (_PRIO[c[2]], c[0] - c[1], c[0])):
            if all(c[1] <= k[0] or k[1] <= c[0] for k in kept):
                kept.append(c)
        cands = sorted(kept)
    return [Finding("secret" if t == "secret+" else t, s, e) for s, e, t in cands]


def _scan(text: str, hipaa: bool, pos: int = 0) -> list[Finding]:
    """Findings that start at or after `pos`; `text[:pos]` (ending in a break) is context."""
    out: list[_Cand] = []
    if text.find("@", pos) != -1:
        _emails(text, pos, out)
    _numeric(text, pos, hipaa, out)
    if text.find(":", pos) != -1:
        _ipv6(text, pos, out)
    if text.find("-----BEGIN", pos) != -1:
        for m in _PEM.finditer(text, pos):
            out.append((m.start(), m.end(), "secret+"))
    return _resolve(out) if out else []


# --- public interface ---------------------------------------------------------------------


def scan(text: str, *, hipaa: bool = False) -> list[Finding]:
    """All findings in `text`, sorted by position and not overlapping."""
    return _scan(text, hipaa)


def redact(text: str, findings: list[Finding]) -> str:
    """`text` with every finding replaced by its typed placeholder (`[EMAIL_REDACTED]`...)."""
    if not findings:
        return text
    parts: list[str] = []
    at = 0
    for f in findings:
        if f.start < at:
            continue
        parts.append(text[at : f.start])
        parts.append(PLACEHOLDERS[f.type])
        at = f.end
    parts.append(text[at:])
    return "".join(parts)


def _has_word(low: str, term: str) -> bool:
    i = low.find(term)
    while i != -1:
        e = i + len(term)
        if (i == 0 or not (low[i - 1].isalnum() or low[i - 1] in "_-")) and (
            e == len(low) or not (low[e].isalnum() or low[e] in "_-")
        ):
            return True
        i = low.find(term, i + 1)
    return False


def classify(text: str, findings: list[Finding]) -> str:
    """The data classification of `text` given its findings (see the module docstring)."""
    level = 0
    for f in findings:
        if f.type in RESTRICTED_TYPES:
            return "restricted"
        level = 2
    low = text.lower()
    for probe, terms in _TERM_PROBES.items():
        if probe not in low:
            continue
        for term in terms:
            if _has_word(low, term):
                if term in _CONFIDENTIAL_SET:
                    return "confidential"
                level = max(level, 1)
    return CLASSIFICATIONS[level]


class StreamRedactor:
    """Redacts text that arrives in pieces (a streamed completion) exactly as `redact(text,
    scan(text))` would, emitting each piece as soon as the break after it has arrived.

    Held back is only the text since the last break (usually the current word; a phone number
    or IBAN with its spaces; never more than MAX_HOLD characters, after which the held text
    is scanned and emitted as it is, the one case where the output can differ). Findings
    carry offsets into the whole original stream."""

    def __init__(self, hipaa: bool = False) -> None:
        self._hipaa = hipaa
        self._context = ""  # the last CONTEXT + 8 characters already emitted (original text)
        self._pending = ""
        self._offset = 0  # stream offset of _pending[0]
        self._seen = 0  # _pending[: _seen - 1] is known to hold no break

    def feed(self, text: str) -> tuple[str, list[Finding]]:
        self._pending += text
        cut = self._last_break()
        if cut <= 0 and len(self._pending) >= MAX_HOLD:
            cut = len(self._pending)
        return self._emit(cut) if cut > 0 else ("", [])

    def finish(self) -> tuple[str, list[Finding]]:
        return self._emit(len(self._pending)) if self._pending else ("", [])

    def _last_break(self) -> int:
        """Length of the longest prefix of the pending text that ends with a break."""
        joined = self._context[-1:] + self._pending
        shift = len(joined) - len(self._pending)
        # Only the new text and the last character seen before it (a space after an upper-case
        # letter waits for the next character) need a look, so a long word costs O(n) overall.
        for i in range(len(joined) - 1, shift + max(0, self._seen - 1) - 1, -1):
            c = joined[i]
            if c in _BREAKS or (c == " " and _glued(joined, i) is False):
                return i - shift + 1
        self._seen = len(self._pending)
        return 0

    def _emit(self, cut: int) -> tuple[str, list[Finding]]:
        chunk = self._pending[:cut]
        self._pending = self._pending[cut:]
        self._seen = len(self._pending)  # what follows the last break holds no break
        joined = self._context + chunk
        base = len(self._context)
        found = _scan(joined, self._hipaa, base)
        out = redact(joined, found)[base:] if found else chunk
        shift = self._offset - base
        self._offset += len(chunk)
        self._context = joined[-(CONTEXT + 8) :]
        return out, [Finding(f.type, f.start + shift, f.end + shift) for f in found]
