"""Runs the detectors over a text and resolves overlapping candidates into findings; redacts."""

from __future__ import annotations

from llmplatform.gateway.pii.credentials import PEM
from llmplatform.gateway.pii.email import emails
from llmplatform.gateway.pii.model import PLACEHOLDERS, Cand, Finding
from llmplatform.gateway.pii.network import ipv6
from llmplatform.gateway.pii.numeric import numeric

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


def resolve(cands: list[Cand]) -> list[Finding]:
    cands.sort()
    overlap = any(cands[i][0] < cands[i - 1][1] for i in range(1, len(cands)))
    if overlap:
        kept: list[Cand] = []
        for c in sorted(cands, key=lambda c: (_PRIO[c[2]], c[0] - c[1], c[0])):
            if all(c[1] <= k[0] or k[1] <= c[0] for k in kept):
                kept.append(c)
        cands = sorted(kept)
    return [Finding("secret" if t == "secret+" else t, s, e) for s, e, t in cands]


def scan_raw(text: str, hipaa: bool, pos: int = 0) -> list[Finding]:
    """Findings that start at or after `pos`; `text[:pos]` (ending in a break) is context."""
    out: list[Cand] = []
    if text.find("@", pos) != -1:
        emails(text, pos, out)
    numeric(text, pos, hipaa, out)
    if text.find(":", pos) != -1:
        ipv6(text, pos, out)
    if text.find("-----BEGIN", pos) != -1:
        for m in PEM.finditer(text, pos):
            out.append((m.start(), m.end(), "secret+"))
    return resolve(out) if out else []


def scan(text: str, *, hipaa: bool = False) -> list[Finding]:
    """All findings in `text`, sorted by position and not overlapping."""
    return scan_raw(text, hipaa)


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
