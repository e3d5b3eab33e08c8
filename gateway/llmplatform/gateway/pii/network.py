"""IP addresses. IPv4: four dotted groups that `ipaddress` accepts (found from the digit runs,
see numeric.py). IPv6: from each `:h:` hint, a run of hex digits, colons and dots that
`ipaddress` accepts, with two non-empty groups and four hex digits, so `::1`, `a[1::2]` and
`std::vector` are not addresses."""

from __future__ import annotations

import ipaddress
import re

from llmplatform.gateway.pii.model import Cand, free_right

HEX_CHARS = frozenset("0123456789abcdefABCDEF:.")
_V6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")
IPV4 = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")


def ipv4(text: str, s: int, out: list[Cand]) -> None:
    m = IPV4.match(text, s)
    if m and free_right(text, m.end(), ".-") and all(_octet_ok(o) for o in m.group().split(".")):
        out.append((s, m.end(), "ipv4"))


def _octet_ok(octet: str) -> bool:
    """One of IPV4's groups (1-3 ASCII digits) as `ipaddress.IPv4Address` accepts it: at most
    255 and no leading zero (ambiguous with octal). Checked here because constructing an
    IPv4Address costs a few microseconds on the hot path (a unit test compares the two)."""
    return int(octet) <= 255 and (octet[0] != "0" or len(octet) == 1)


def ipv6(text: str, pos: int, out: list[Cand]) -> None:
    n = len(text)
    m = _V6_HINT.search(text, pos)
    while m is not None:
        s = m.start()
        while s > pos and text[s - 1] in HEX_CHARS:
            s -= 1
        e = m.end()
        while e < n and text[e] in HEX_CHARS:
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
