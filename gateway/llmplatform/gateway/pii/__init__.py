"""Finding personal data and secrets in prompt text, classifying it and redacting it.

Why this package exists: the gateway decides per request how sensitive its text is (which
models may receive it, whether it must be redacted first, what the audit record says), so it
scans every prompt on the hot path. That fixes the design:

- Speed (target: scan + redact of a 4 KB prompt, median <= 0.2 ms on CPython 3.11). CPython's
  `re` pays a few nanoseconds per character for every pass over the text, so there is one pass
  per *trigger*, not one per finding type: a single pass over digit runs (numeric.py) drives
  every numeric detector, `@` for e-mails, `::`/`:h:` for IPv6 and `-----BEGIN` for PEM
  headers are found by literal search (memchr speed). A pass whose pattern begins with a
  character class costs about 7 ns per character, one that begins with a literal a fraction
  of that, so the digit passes (numeric.py and the view's separator check) run on a folded
  copy of the text in which every digit is `0` (model.fold), shared by both. The costly checks
  (Luhn, mod-97, IP parsing, entropy, the case-insensitive context searches) run only on
  candidates, behind cheap necessary conditions (tests/gateway/unit/test_pii_fast_paths.py
  compares each shortcut with the plain check it guards).
- Validation over pattern matching: cards must pass Luhn, IBANs their country's length and
  mod-97, SSNs exclude the never-issued ranges, IPs must parse.
- Evasion: detection runs on a normalised view of the text (normalize.py: NFKC, format
  characters removed, digits of every script mapped to ASCII, odd separators between digits
  unified) and the findings are mapped back to the original characters, so what is redacted
  is exactly the obfuscated original.
- Locality, so that streams can be redacted exactly: no match ever contains a newline or tab,
  and a space only where it is *glued* (after a digit or `)`, or between an upper-case letter
  and an upper-case letter or digit: the spaces of `+44 20 7946 0958`, `500 mg`,
  `DE89 3704 ...`, `BEGIN RSA PRIVATE KEY`). Every other whitespace character is a *break*
  that no finding crosses; context words ("MRN:", "phone") are only looked *back* at, at most
  `CONTEXT` characters. So the findings of a text are those of its pieces between breaks, and
  `StreamRedactor` can emit each piece as soon as its break has arrived while giving exactly
  the output of `redact(text, scan(text))` (property-tested).

One detector family per module (email, phone, ids: SSN and cards, iban, network, credentials,
medical: HIPAA identifiers), each module's docstring saying what it accepts and why; see
bench/results/governance.md for what the decisions cost in precision and recall.
"""

from llmplatform.gateway.pii import medical
from llmplatform.gateway.pii.credentials import ENTROPY_BITS, RANDOM_MIXING, entropy
from llmplatform.gateway.pii.iban import iban_ok
from llmplatform.gateway.pii.ids import luhn_ok, ssn_ok
from llmplatform.gateway.pii.model import (
    CLASSIFICATIONS,
    CONTEXT,
    PLACEHOLDERS,
    RESTRICTED_TYPES,
    TYPES,
    Finding,
)
from llmplatform.gateway.pii.scanner import merge, redact, scan, scan_raw
from llmplatform.gateway.pii.stream import MAX_HOLD, StreamRedactor
from llmplatform.gateway.pii.terms import CONFIDENTIAL_TERMS, INTERNAL_TERMS, classify

__all__ = [
    "CLASSIFICATIONS",
    "CONFIDENTIAL_TERMS",
    "CONTEXT",
    "ENTROPY_BITS",
    "INTERNAL_TERMS",
    "MAX_HOLD",
    "PLACEHOLDERS",
    "RANDOM_MIXING",
    "RESTRICTED_TYPES",
    "TYPES",
    "Finding",
    "StreamRedactor",
    "classify",
    "entropy",
    "iban_ok",
    "luhn_ok",
    "medical",
    "merge",
    "redact",
    "scan",
    "scan_raw",
    "ssn_ok",
]
