"""Classification (`classify`): SSN, card, MRN, ICD-10, dosage and secrets -> restricted (a
live credential is as damaging as a card number); any other finding -> confidential; the words
in `CONFIDENTIAL_TERMS` -> confidential; the words in `INTERNAL_TERMS` -> internal; otherwise
public."""

from __future__ import annotations

from llmplatform.gateway.pii.model import CLASSIFICATIONS, RESTRICTED_TYPES, Finding
from llmplatform.gateway.pii.normalize import view

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

# Each term with a substring to probe for first: one `in` per probe on the lower-cased text,
# and the terms behind a probe are checked (whole words) only when it is there.
_TERM_PROBES: dict[str, tuple[str, ...]] = {}
for term_ in sorted(CONFIDENTIAL_TERMS + INTERNAL_TERMS, key=len, reverse=True):
    probe_ = next((p for p in ("secret", "internal", "distribut") if p in term_), term_)
    _TERM_PROBES.setdefault(probe_, ())
    _TERM_PROBES[probe_] += (term_,)


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
    v = None if text.isascii() else view(text)  # `confi\u200bdential` is confidential
    low = (v.text if v is not None else text).lower()
    for probe, terms in _TERM_PROBES.items():
        if probe not in low:
            continue
        for term in terms:
            if _has_word(low, term):
                if term in _CONFIDENTIAL_SET:
                    return "confidential"
                level = max(level, 1)
    return CLASSIFICATIONS[level]
