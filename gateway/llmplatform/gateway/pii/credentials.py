"""Secrets: live credentials in prompt text.

Secrets are found in tokens (runs of `[A-Za-z0-9+/_=.-]`) of >= 20 characters that contain a
digit: well-known key prefixes (OpenAI/Anthropic `sk-`, AWS `AKIA`/`ASIA`..., GitHub
`ghp_`/`github_pat_`..., Slack `xox?-`, Google `AIza`, GitLab, Stripe, Hugging Face, npm, PyPI,
SendGrid, JWTs) or any part of >= 32 characters that has upper case, lower case and digits
mixed like random text (`RANDOM_MIXING`, `ENTROPY_BITS`). A key without a single digit is
missed (for a random 20-character key, about 0.5%). Hex strings (UUIDs, git commit ids, SHA
digests) are *not* secrets: they are single-case, are usually public identifiers, and flagging
them would break code review prompts. PEM private-key headers are secrets; the base64 lines
under them are caught by the entropy rule."""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter

from llmplatform.gateway.pii.model import DIGITS, Cand, count_digits

ENTROPY_BITS = 4.0
"""Minimum Shannon entropy (bits per character) of a >= 32-character mixed token (random
base62 of 32-64 characters: 1st percentile 4.29; camelCase names with a number: median 4.25,
so entropy alone cannot tell them apart and RANDOM_MIXING does most of the work)."""
RANDOM_MIXING = 0.4
"""Minimum share of neighbouring characters that change class (digit / upper / lower / other)
in such a token: random base62 1st percentile 0.44, camelCase or SNAKE_CASE names with a
number 99th percentile 0.41 (measured on 8,000 and 3,700 samples)."""

TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_=.-")
TOKEN_FWD = re.compile(r"[A-Za-z0-9+/_=.\-]*")
PEM = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
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


def entropy(s: str) -> float:
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def secrets_in_token(text: str, ts: int, te: int, out: list[Cand]) -> None:
    found = False
    for m in _SECRET_PREFIXED.finditer(text, ts, te):
        s, e = m.span()
        if s > 0 and (text[s - 1].isalnum()):
            continue
        body = m.group()
        if body.startswith("sk-") and not count_digits(body):
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
    return 0 if c in DIGITS else 1 if c.isupper() else 2 if c.islower() else 3


def _looks_random(part: str) -> bool:
    """Upper case, lower case and digits, mixed like random text: at least RANDOM_MIXING of
    neighbouring characters change class (random base62: about 0.62, camelCase names with a
    number: about 0.3), and at least ENTROPY_BITS bits per character."""
    classes = [_char_class(c) for c in part]
    if not (0 in classes and 1 in classes and 2 in classes):
        return False
    changes = sum(1 for a, b in itertools.pairwise(classes) if a != b)
    return changes >= RANDOM_MIXING * (len(part) - 1) and entropy(part) >= ENTROPY_BITS


def token(text: str, s: int, e: int, pos: int, out: list[Cand]) -> int:
    """Checks the token around the digit run `text[s:e]` for secrets; returns its end."""
    after = text.find(" ", e, e + 20)
    if after != -1 and after - text.rfind(" ", max(pos, s - 20), s) <= 20:
        return after  # the word holding the run is too short to hold a secret
    ts = s
    while ts > pos and text[ts - 1] in TOKEN_CHARS:
        ts -= 1
    m = TOKEN_FWD.match(text, e)
    te = m.end() if m else e
    if te - ts >= 20:
        secrets_in_token(text, ts, te, out)
    return te
