"""The normalised view the detectors run on, with a map back to the original characters.

Why: the detectors match ASCII digits, `@`, `-`, `.` and spaces. A tenant who wants PII past
a model cleared only for public data writes the same value with other characters that a human
or a model still reads the same way: zero-width or other format characters inside it (U+200B
between two digits), fullwidth or other-script digits (U+FF14, Arabic-Indic U+0664, Devanagari
U+096A), compatibility symbols (fullwidth and small commercial at, circled digits), odd dashes
and spaces (en dash, minus sign, thin space), or odd separators between digits (`123/45/6789`,
`4111 - 1111 - 1111 - 1111`). The view undoes all of these, and each of its characters knows
which original characters it came from, so a finding in the view is redacted as exactly the
obfuscated original span (`View.span`).

What the view does, character by character (`map_char`):
- format characters (category Cf: zero-width space/joiners, soft hyphen, bidi controls, word
  joiner, BOM, tags...) and other default-ignorable fillers (variation selectors, the
  combining grapheme joiner, Hangul fillers) are removed;
- a decimal digit of any script becomes its ASCII digit (`unicodedata.decimal`);
- everything else is replaced by its NFKC form (fullwidth, small and circled forms,
  mathematical digits, ligatures), whose dashes (category Pd, minus signs) become `-`, spaces
  (Zs) ` `, line and paragraph separators a newline, dot-like marks `.` and slash-like marks
  `/` (`DOTS`, `SLASHES`).
And between two digits (`_ODD_SEP`): a single `/`, `\\` or `_`, or a run of two or three
separators (spaces, dots, dashes, slashes, `_`), becomes one `-` (a run of spaces only: one
space; of dots only: one dot), which the detectors already read as a group separator.

Cost: an ASCII text with no odd separator between digits is its own view (`view` returns None
after one `isascii` and one regex search), and so is a non-ASCII text none of whose
characters change: the characters that can change are one precomputed character class
(unicode_table.py, generated from this module's `map_char`; a unit test checks it against the
running Python's Unicode database), found by one regex search. Only texts that do change pay
for building the view and its index map.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache

from llmplatform.gateway.pii.model import fold
from llmplatform.gateway.pii.unicode_table import CHANGED_RANGES

DOTS = frozenset("\u00b7\u2022\u2024\u2027\u2219\u22c5\u30fb\u3002\uff0e\uff61\u0701\u0702\u2e31")
"""Dot-like marks read as `.` between digits (middle dot, bullet, one-dot leader, hyphenation
point, bullet operator, dot operator, katakana middle dot, ideographic full stop...)."""
SLASHES = frozenset("\u2044\u2215\u29f8\u29f9\u2571\u2572\uff0f\uff3c\u2216\u29f5")
"""Slash-like marks read as `/` (fraction and division slash, big solidus, box drawings,
set minus, reverse solidus operator, fullwidth forms)."""
MINUSES = frozenset("\u2212\u2796\ufe63\uff0d\u02d7\u2e3a\u2e3b")
"""Minus signs and dash-like marks outside category Pd read as `-`."""
IGNORABLE = frozenset(
    [chr(c) for c in (0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180B, 0x180C, 0x180D, 0x180F)]
    + [chr(c) for c in (0x3164, 0xFFA0)]
    + [chr(c) for c in range(0xFE00, 0xFE10)]
    + [chr(c) for c in range(0xE0100, 0xE01F0)]
)
"""Default-ignorable characters outside category Cf, removed like format characters."""

# The characters map_char changes, as one class of Basic Multilingual Plane ranges (which `re`
# compiles to a lookup table, so a search costs about as much as a memchr) or any character
# beyond it (a class with astral ranges is tested range by range, 20 times slower; the few
# astral characters, mostly emoji, are looked up one by one instead).
_CHANGED = re.compile(
    "["
    + "".join(f"\\u{a:04x}-\\u{b:04x}" if a != b else f"\\u{a:04x}" for a, b in CHANGED_RANGES if b <= 0xFFFF)
    + "]|[\\U00010000-\\U0010ffff]"
    if CHANGED_RANGES
    else "(?!)"  # only while unicode_table.py is being generated
)
_SEP_CHARS = " .\\-/\\\\_"
_ODD_SEP = re.compile(rf"0([{_SEP_CHARS}]{{2,3}}|[/\\\\_])(?=0)".encode())
"""Odd separators between two digits (group 1), searched in the folded text (model.fold: every
digit is `0`, so the pattern begins with a literal, which `re` finds several times faster
than a character class)."""


def _fold(ch: str) -> str:
    """One character of an NFKC form, folded to what the detectors read."""
    if ch.isascii():
        return ch
    cat = unicodedata.category(ch)
    if cat == "Nd":
        return str(unicodedata.decimal(ch))
    if cat == "Pd" or ch in MINUSES:
        return "-"
    if cat == "Zs":
        return " "
    if cat in ("Zl", "Zp"):
        return "\n"
    if ch in DOTS:
        return "."
    if ch in SLASHES:
        return "/"
    if cat == "Cf" or ch in IGNORABLE:
        return ""
    return ch


@lru_cache(maxsize=4096)
def map_char(c: str) -> str:
    """What the single character `c` is in the view ("" when it is removed)."""
    cat = unicodedata.category(c)
    if cat == "Cf" or c in IGNORABLE:
        return ""
    if cat == "Nd":
        return str(unicodedata.decimal(c))
    return "".join(_fold(ch) for ch in unicodedata.normalize("NFKC", c))


def compute_changed_ranges() -> list[tuple[int, int]]:
    """The code point ranges `map_char` changes (unicode_table.py holds them; regenerate with
    `python -m llmplatform.gateway.pii.normalize > .../unicode_table.py` after a Python
    upgrade: a unit test fails when they differ from the running Unicode database)."""
    ranges: list[tuple[int, int]] = []
    for o in range(0x80, 0x110000):
        if 0xD800 <= o <= 0xDFFF:
            continue
        c = chr(o)
        if unicodedata.category(c) in ("Cn", "Co") or map_char.__wrapped__(c) == c:
            continue
        if ranges and ranges[-1][1] == o - 1:
            ranges[-1] = (ranges[-1][0], o)
        else:
            ranges.append((o, o))
    return ranges


@dataclass(frozen=True, slots=True)
class _Map:
    """A piecewise map from positions in a rewritten text back to the text it came from:
    segment i starts at `to[i]` in the rewritten text and at `at[i]` in the source, and is
    either copied (`length[i]` is -1: position by position) or a replacement of the source's
    `[at[i], at[i] + length[i])` (every character of it maps to that whole span). Building
    one costs a few operations per change, not per character."""

    to: list[int]
    at: list[int]
    length: list[int]

    def start(self, p: int) -> int:
        i = bisect_right(self.to, p) - 1
        return self.at[i] + (p - self.to[i] if self.length[i] < 0 else 0)

    def end(self, p: int) -> int:
        """The end in the source of the character at `p`."""
        i = bisect_right(self.to, p) - 1
        n = self.length[i]
        return self.at[i] + (p - self.to[i] + 1 if n < 0 else n)


@dataclass(frozen=True, slots=True)
class View:
    """The normalised text; `span` maps its spans back to the original text (through the
    character map, then the separator map, either of which may be absent)."""

    text: str
    chars: _Map | None
    separators: _Map | None

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of the view's `text[start:end]` (end > start)."""
        s, e = start, end - 1
        if self.separators is not None:
            s, e = self.separators.start(s), self.separators.end(e) - 1
        if self.chars is not None:
            return self.chars.start(s), self.chars.end(e)
        return s, e + 1

    def index(self, pos: int) -> int:
        """The first position of the view whose character starts at or after the original
        position `pos` (len(text) if none does)."""
        lo, hi = 0, len(self.text)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.span(mid, mid + 1)[0] < pos:
                lo = mid + 1
            else:
                hi = mid
        return lo


def view(text: str, folded: bytes | None = None) -> View | None:
    """The normalised view of `text`, or None when it is `text` itself. `folded` is
    `fold(text)` when the caller has it already (the scanner shares it with the digit pass)."""
    m = None if text.isascii() else _CHANGED.search(text)
    if m is None:
        folded = fold(text) if folded is None else folded
        return None if _ODD_SEP.search(folded) is None else _separators(text, folded, None)
    mapped, chars = _map_chars(text, m.start())
    folded = fold(mapped)
    if _ODD_SEP.search(folded) is None:
        return View(mapped, chars, None) if mapped != text else None
    return _separators(mapped, folded, chars)


def _segment(to: list[int], at: list[int], length: list[int], v: int, a: int, n: int) -> None:
    to.append(v)
    at.append(a)
    length.append(n)


def _map_chars(text: str, first: int) -> tuple[str, _Map]:
    parts: list[str] = []
    to: list[int] = []
    at: list[int] = []
    length: list[int] = []
    pos = vpos = 0
    for m in _CHANGED.finditer(text, first):
        i = m.start()
        if i > pos:
            parts.append(text[pos:i])
            _segment(to, at, length, vpos, pos, -1)
            vpos += i - pos
        r = map_char(text[i])
        parts.append(r)
        _segment(to, at, length, vpos, i, 1)
        vpos += len(r)
        pos = i + 1
    parts.append(text[pos:])
    _segment(to, at, length, vpos, pos, -1)
    return "".join(parts), _Map(to, at, length)


def _separators(text: str, folded: bytes, chars: _Map | None) -> View:
    parts: list[str] = []
    to: list[int] = []
    at: list[int] = []
    length: list[int] = []
    pos = vpos = 0
    for m in _ODD_SEP.finditer(folded):
        a, b = m.span(1)
        parts.append(text[pos:a])
        _segment(to, at, length, vpos, pos, -1)
        vpos += a - pos
        run = text[a:b]
        parts.append(" " if run.strip(" ") == "" else "." if run.strip(".") == "" else "-")
        _segment(to, at, length, vpos, a, b - a)
        vpos += 1
        pos = b
    parts.append(text[pos:])
    _segment(to, at, length, vpos, pos, -1)
    return View("".join(parts), chars, _Map(to, at, length))


if __name__ == "__main__":  # regenerate unicode_table.py
    import sys

    rows = compute_changed_ranges()
    sys.stdout.write(
        '"""Generated by `python -m llmplatform.gateway.pii.normalize` (Unicode '
        f'{unicodedata.unidata_version}):\nthe code points normalize.map_char changes."""\n\n'
        "CHANGED_RANGES: tuple[tuple[int, int], ...] = (\n"
    )
    sys.stdout.write("".join(f"    (0x{a:X}, 0x{b:X}),\n" for a, b in rows))
    sys.stdout.write(")\n")
