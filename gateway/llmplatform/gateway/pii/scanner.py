"""Runs the detectors over a text and its normalised view and resolves overlapping
candidates into findings; redacts.

A text is scanned as it is (`scan_raw`) and, when normalize.py changes it, its normalised view
too; the view's findings are mapped back to original spans and merged with the raw ones
(overlapping findings become one finding over the union of their spans, so no part of a value
found either way leaks). The raw scan stays because the view can also hide a value: `_` between
digits inside a `github_pat_` token becomes `-`."""

from __future__ import annotations

from llmplatform.gateway.pii.credentials import PEM
from llmplatform.gateway.pii.email import emails
from llmplatform.gateway.pii.model import PLACEHOLDERS, Cand, Finding, fold
from llmplatform.gateway.pii.network import ipv6
from llmplatform.gateway.pii.normalize import view
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


def scan_raw(text: str, hipaa: bool, pos: int = 0, folded: bytes | None = None) -> list[Finding]:
    """Findings that start at or after `pos`; `text[:pos]` (ending in a break) is context.
    `folded` is `fold(text)` when the caller has it already."""
    out: list[Cand] = []
    if text.find("@", pos) != -1:
        emails(text, pos, out)
    numeric(text, pos, hipaa, out, folded)
    if text.find(":", pos) != -1:
        ipv6(text, pos, out)
    if text.find("-----BEGIN", pos) != -1:
        for m in PEM.finditer(text, pos):
            out.append((m.start(), m.end(), "secret+"))
    return resolve(out) if out else []


def scan(text: str, *, hipaa: bool = False) -> list[Finding]:
    """All findings in `text` or its normalised view, as spans of `text`, sorted by position
    and not overlapping."""
    return scan_from(text, hipaa, 0)


def scan_from(text: str, hipaa: bool, pos: int) -> list[Finding]:
    """`scan` for the findings that start at or after `pos` (`text[:pos]`, ending in a break,
    is context), for StreamRedactor."""
    folded = fold(text)  # the digit pass and the view's separator check share it
    found = scan_raw(text, hipaa, pos, folded)
    v = view(text, folded)
    if v is None:
        return found
    vpos = v.index(pos) if pos else 0
    more = [Finding(f.type, *v.span(f.start, f.end)) for f in scan_raw(v.text, hipaa, vpos)]
    return merge(found, more) if found else more


def merge(a: list[Finding], b: list[Finding]) -> list[Finding]:
    """The union of two sorted lists of non-overlapping findings: findings that overlap become
    one over both spans, typed like the longest of them (then by priority: the digits of a
    token cut by a format character can look like a phone number on their own)."""
    out: list[Finding] = []
    longest: Finding | None = None
    for f in sorted(a + b, key=lambda f: (f.start, f.end)):
        if out and longest is not None and f.start < out[-1].end:
            if (f.end - f.start, -_PRIO[f.type]) > (longest.end - longest.start, -_PRIO[longest.type]):
                longest = f
            out[-1] = Finding(longest.type, out[-1].start, max(out[-1].end, f.end))
        else:
            out.append(f)
            longest = f
    return out


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
