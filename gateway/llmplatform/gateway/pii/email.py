"""E-mail addresses, found from each `@` (a literal search, so a text without one costs one
memchr): a local part of `[A-Za-z0-9._%+-]` and a domain with a dot and a 2+ letter top-level
label."""

from __future__ import annotations

import re

from llmplatform.gateway.pii.model import Cand

LOCAL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")
_DOMAIN = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
_LOCAL_RUN = re.compile(r"[A-Za-z0-9._%+-]+")


def emails(text: str, pos: int, out: list[Cand]) -> None:
    at = text.find("@", pos)
    while at != -1:
        lo = max(pos, at - 64)
        i = text.rfind(" ", lo, at) + 1 or lo  # fast path: the local part follows a space
        if (
            i == at
            or _LOCAL_RUN.fullmatch(text, i, at) is None
            or (i == lo and i > pos and text[i - 1] in LOCAL_CHARS)
        ):
            i = at
            while i > lo and text[i - 1] in LOCAL_CHARS:
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
