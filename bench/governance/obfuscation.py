"""Obfuscated positives and normalisation look-alikes for the PII benchmark (issue #12 item 5):
one class per evasion technique a tenant could use to get a value past the detectors.

Each class takes positives of corpus.py that the detector finds in their plain form (so a
class measures what the *technique* costs, not the base recall, which run.py reports per type)
and rewrites the labelled value with the technique, keeping the label on the rewritten span.
Classes that need a request body (values split across content parts or messages, JSON-escaped
tool arguments) are scored through the gateway's request scan (`governance.scan`), which is
what decides what leaves the gateway.

Look-alikes: text that the normalised view changes but that holds no personal data (slash
dates, fractions, non-Latin prose with its own digits, emoji sequences with zero-width
joiners, fullwidth quantities); they must stay untouched like corpus.py's hard negatives.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from corpus import SEED, Sample

FORMAT_CHARS = "\u200b\u200c\u200d\u2060\u00ad\ufeff\u202a\u202c\u2066\u2069\u180e\ufe0f"
SCRIPT_ZEROS = (0x0660, 0x06F0, 0x0966, 0x09E6, 0x0E50, 0x0AE6, 0x1040, 0x1D7CE, 0x1D7F6)
"""Arabic-Indic, extended Arabic-Indic, Devanagari, Bengali, Thai, Gujarati, Myanmar,
mathematical bold and monospace digits."""
DASHES = ("\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2212", "\ufe63", "\uff0d")
SPACES = ("\u00a0", "\u2009", "\u202f", "\u3000", "\u2002")
ODD_SEPARATORS = ("/", ".", " - ", " / ", "\\", "_", " . ", "  ")
HIPAA_TYPES = {"mrn", "icd10", "dosage"}


@dataclass(frozen=True)
class Case:
    """One obfuscated value: in a text (`sample`) or in a request body (`body`, scored by
    whether every string piece of the value is covered by a finding of the right type)."""

    cls: str
    sample: Sample | None = None
    body: dict[str, Any] | None = None
    pieces: tuple[tuple[tuple[int, ...], str], ...] = ()
    """For a body: (path of the string in the body, the piece of the value it holds)."""


def _rewrite(s: Sample, value: str) -> Sample:
    text = s.text[: s.start] + value + s.text[s.end :]
    return Sample(text, s.type, s.start, s.start + len(value), s.locale, s.group)


def _format_chars(rng: random.Random, v: str, kind: str) -> str | None:
    chars = list(v)
    for _ in range(rng.randint(1, 3)):
        chars.insert(rng.randrange(1, len(chars)), rng.choice(FORMAT_CHARS))
    return "".join(chars)


def _fullwidth(rng: random.Random, v: str, kind: str) -> str | None:
    # every printable ASCII character except the space has a fullwidth form at +0xFEE0
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" and rng.random() < 0.8 else c for c in v)


def _other_digits(rng: random.Random, v: str, kind: str) -> str | None:
    if not any(c.isdigit() for c in v):
        return None
    zero = rng.choice(SCRIPT_ZEROS)
    return "".join(chr(zero + int(c)) if c.isdigit() else c for c in v)


def _symbols(rng: random.Random, v: str, kind: str) -> str | None:
    table = {
        "@": ("\uff20", "\ufe6b"),
        ".": ("\uff0e", "\u3002", "\uff61"),
        "-": DASHES,
        " ": SPACES,
        "+": ("\uff0b", "\ufe62"),
        ":": ("\uff1a", "\ufe55"),
        "(": ("\uff08",),
        ")": ("\uff09",),
    }
    out = "".join(rng.choice(table[c]) if c in table else c for c in v)
    return out if out != v else None


GROUPS = {"card": (4, 4, 4, 4, 4), "iban": (4,) * 9, "ssn": (3, 2, 4)}
"""How a bare value of a type is grouped when written with separators."""
SEPARATED = frozenset({"card", "ssn", "phone", "iban", "mrn"})
"""Types whose digit groups a person may separate any way (in a secret, an address or a code,
another separator makes another value)."""


def _separators(rng: random.Random, v: str, kind: str) -> str | None:
    if kind not in SEPARATED:
        return None
    sep = rng.choice(ODD_SEPARATORS)
    groups = [i for i in range(1, len(v) - 1) if v[i] in " -" and v[i - 1].isdigit() and v[i + 1].isdigit()]
    if groups:  # replace the separators between digit groups
        chars = list(v)
        for i in groups:
            chars[i] = sep
        return "".join(chars)
    if kind in GROUPS and v.isalnum():  # a bare value: group it the way the type is written
        out, at = [], 0
        for n in GROUPS[kind]:
            if at < len(v):
                out.append(v[at : at + n])
                at += n
        out[-1] += v[at:]
        return sep.join(out)
    return None


TECHNIQUES: dict[str, Callable[[random.Random, str, str], str | None]] = {
    "format characters inside": _format_chars,
    "fullwidth forms": _fullwidth,
    "digits of other scripts": _other_digits,
    "symbol and dash forms": _symbols,
    "odd separators between digits": _separators,
}


def _detected(s: Sample, scan: Callable[[str, bool], list[Any]]) -> bool:
    return any(
        f.type == s.type and f.start <= s.start and f.end >= s.end
        for f in scan(s.text, s.type in HIPAA_TYPES)
    )


def cases(pos: list[Sample], scan: Callable[[str, bool], list[Any]], per_class: int) -> list[Case]:
    """Up to `per_class` cases per class, drawn evenly over the types that a technique applies
    to, from positives found in plain form."""
    rng = random.Random(SEED + 7)
    found = [s for s in pos if _detected(s, scan)]
    by_type: dict[str, list[Sample]] = {}
    for s in found:
        by_type.setdefault(str(s.type), []).append(s)
    out: list[Case] = []
    for name, technique in TECHNIQUES.items():
        made: list[Case] = []
        pools = {t: rng.sample(v, len(v)) for t, v in by_type.items()}
        while len(made) < per_class and any(pools.values()):
            for t in sorted(pools):
                if pools[t] and len(made) < per_class:
                    s = pools[t].pop()
                    value = technique(rng, s.text[s.start : s.end], str(s.type))
                    if value is not None:
                        made.append(Case(name, sample=_rewrite(s, value)))
        out += made
    non_hipaa = [s for s in found if s.type not in HIPAA_TYPES]
    for name in ("split across content parts", "split across messages", "JSON-escaped tool arguments"):
        for s in rng.sample(non_hipaa, min(per_class, len(non_hipaa))):
            out.append(_body_case(rng, name, s))
    return out


def _body_case(rng: random.Random, cls: str, s: Sample) -> Case:
    before, value, after = s.text[: s.start], s.text[s.start : s.end], s.text[s.end :]
    if cls == "JSON-escaped tool arguments":
        escaped = "".join(f"\\u{ord(c):04x}" if c.isalnum() or c in "@.+-" else c for c in value)
        arguments = '{"note": ' + json.dumps(before)[:-1] + escaped + json.dumps(after)[1:] + "}"
        call = {"id": "c1", "type": "function", "function": {"name": "save", "arguments": arguments}}
        body = {"model": "m", "messages": [{"role": "assistant", "tool_calls": [call]}]}
        return Case(cls, body=body, pieces=(((0, 0, 0), value),))
    cut = rng.randrange(1, len(value))
    left, right = before + value[:cut], value[cut:] + after
    if cls == "split across content parts":
        parts = [{"type": "text", "text": left}, {"type": "text", "text": right}]
        body = {"model": "m", "messages": [{"role": "user", "content": parts}]}
        return Case(cls, body=body, pieces=(((0, 0), value[:cut]), ((0, 1), value[cut:])))
    messages = [{"role": "user", "content": left}, {"role": "user", "content": right}]
    return Case(
        cls, body={"model": "m", "messages": messages}, pieces=(((0,), value[:cut]), ((1,), value[cut:]))
    )


def body_redacted(case: Case, redacted: dict[str, Any]) -> bool:
    """Whether no piece of the value is left in the redacted body."""
    text = json.dumps(redacted, ensure_ascii=False)
    if case.cls == "JSON-escaped tool arguments":
        args = redacted["messages"][0]["tool_calls"][0]["function"]["arguments"]
        note = json.loads(args)["note"]
        return case.pieces[0][1] not in note and "_REDACTED]" in note
    msgs = redacted["messages"]
    if case.cls == "split across content parts":
        texts = [p["text"] for p in msgs[0]["content"]]
    else:
        texts = [m["content"] for m in msgs]
    # each side must have lost its piece (a short piece may occur elsewhere in the prose)
    return all("_REDACTED]" in t for t in texts) and "_REDACTED]" in text


LOOKALIKES: dict[str, Callable[[random.Random], str]] = {
    "slash date": lambda r: f"{r.randrange(1, 29):02d}/{r.randrange(1, 13):02d}/{r.randrange(1990, 2030)}",
    "fraction or ratio": lambda r: r.choice(
        [f"{r.randrange(1, 9)}/{r.randrange(2, 10)} cup", f"{r.randrange(1, 20)}/{r.randrange(1, 20)}"]
    ),
    "arabic prose with its digits": lambda r: (
        "\u0627\u0644\u0637\u0627\u0628\u0642 "
        + "".join(chr(0x0660 + int(c)) for c in str(r.randrange(1, 40)))
    ),
    "hindi prose with its digits": lambda r: (
        "\u0915\u092e\u0930\u093e " + "".join(chr(0x0966 + int(c)) for c in str(r.randrange(1, 500)))
    ),
    "japanese with fullwidth numbers": lambda r: (
        "\u308a\u3093\u3054" + "".join(chr(0xFF10 + int(c)) for c in str(r.randrange(1, 1000))) + "\u500b"
    ),
    "emoji sequence": lambda r: r.choice(
        ["\U0001f468\u200d\U0001f469\u200d\U0001f467", "\U0001f3f3\ufe0f\u200d\U0001f308", "\u2764\ufe0f"]
    ),
    "score or range with odd dash": lambda r: f"{r.randrange(0, 9)} \u2013 {r.randrange(0, 9)}",
    "soft-hyphenated word": lambda r: r.choice(["infor\u00admation", "con\u00adtract", "pay\u00adment 12"]),
    "path with numbers": lambda r: f"/v{r.randrange(1, 4)}/items/{r.randrange(1, 999)}/{r.randrange(1, 99)}",
    "snake_case with numbers": lambda r: f"build_{r.randrange(2015, 2030)}_{r.randrange(1, 13):02d}",
}


def lookalikes(count: int) -> list[Sample]:
    rng = random.Random(SEED + 9)
    names = list(LOOKALIKES)
    out = []
    for n in range(count):
        group = names[n % len(names)]
        value = LOOKALIKES[group](rng)
        text = f"Note: see {value} for details."
        out.append(Sample(text, None, 10, 10 + len(value), "mixed", group))
    return out
