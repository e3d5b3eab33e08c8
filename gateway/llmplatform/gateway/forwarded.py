"""Every string a request forwards upstream, scanned for personal data, and the redacted copy.

Why generic: the gateway forwards the client's JSON body as it is (only `model` is replaced),
so anything in it reaches the model provider: message content and text parts, but also a
message's `name`, tool-call arguments, the tools' names, descriptions and parameter schemas,
`response_format` schemas, `user`, `metadata`, `stop`, image URLs, `prediction`, and any field
a future API version adds. A list of known text fields would miss the next one, so the walk
visits every string value and every object key of the body (except the fixed key names of
the API and of JSON Schema, `API_KEYS`), in document order (`_walk`):

- A string that holds JSON (it starts with `{` or `[` and parses: tool-call arguments, tool
  results) is decoded and walked too, so text hidden behind JSON escapes (`\\u0034\\u0031...`)
  is scanned as the text it stands for; when something in it is redacted, it is encoded
  again.
- Integers of nine or more digits are scanned as their digits (a card number sent as a
  number); a redacted one is forwarded as the placeholder string.
- Binary payloads are not text (and base64 looks like a random secret): a `data:...;base64,`
  URL is scanned up to its comma, and a `data` or `file_data` value that is all base64 (audio,
  files) is not scanned. What an image, a recording or a file contains is not scanned
  (docs/security.md).
- Only the top-level `model` is skipped: the gateway replaces it before forwarding.

Values split across strings: "4111 1111 " in one content part (or message) and
"1111 1111" in the next is one card to the model. Besides scanning each string alone, the
walk scans every boundary between consecutive text strings (`_boundaries`): up to `WINDOW`
characters on each side, joined directly and with a space, and keeps the findings that cross
a boundary, redacting the piece of each string they cover. Only the conversation's text is joined
(`PROSE_KEYS`: content and text parts, prompts, inputs), in order, so a message's `role`
does not separate its content from the previous message's, and a tool's name is not glued to
its arguments. A crossing finding that overlaps a finding of one side alone is kept (the two
become one) only when it continues that value rather than gluing the next word to it
(`_glues_a_word`).
"""

from __future__ import annotations

import itertools
import json
import re
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from llmplatform.gateway import pii
from llmplatform.gateway.bodies import MAX_DEPTH, depth_exceeds

WINDOW = 128
"""Characters taken on each side of a boundary between two strings (the longest values: a
spaced IBAN is 42, an e-mail address rarely over 64; context words are looked for 48 back)."""
PROSE_KEYS = frozenset({"content", "text", "prompt", "input", "instructions", "output", "system"})
"""Keys whose string values (and list items) are the conversation's text: message content and
text parts, completions prompts, embeddings inputs, Responses instructions and function call
outputs, the Messages API's system prompt. Only these are joined across boundaries."""
API_KEYS = frozenset(
    {"model", "messages", "role", "content", "name", "type", "text", "image_url", "url", "detail"}
    | {"tool_calls", "id", "function", "arguments", "tool_call_id", "tools", "description"}
    | {"parameters", "properties", "required", "items", "enum", "default", "stream"}
    | {"stream_options", "include_usage", "max_tokens", "max_completion_tokens", "temperature"}
    | {"top_p", "n", "stop", "user", "metadata", "response_format", "json_schema", "schema"}
    | {"strict", "seed", "logprobs", "top_logprobs", "logit_bias", "presence_penalty"}
    | {"frequency_penalty", "tool_choice", "parallel_tool_calls", "prompt", "input", "suffix"}
    | {"encoding_format", "dimensions", "input_audio", "data", "format", "file", "file_data"}
    | {"filename", "file_id", "prediction", "store", "service_tier", "reasoning_effort"}
    | {"modalities", "audio", "voice", "refusal", "function_call", "functions", "echo", "best_of"}
    | {"additionalProperties", "title", "anyOf", "oneOf", "allOf", "$ref", "$defs", "examples"}
    | {"instructions", "call_id", "output", "max_output_tokens", "truncation", "reasoning"}
    | {"system", "stop_sequences", "tool_use_id", "is_error", "input_schema", "source", "media_type"}
    | {"user_id", "cache_control", "thinking", "output_config", "disable_parallel_tool_use", "citations"}
)
"""Object keys of the OpenAI request schemas (chat, completions, embeddings, Responses), of
Anthropic's Messages API and JSON Schema's: fixed words, so these keys
are not scanned (their values are); any other key is, like a value."""
FIRST = ("system", "instructions")
"""Top-level keys whose text the model reads before the conversation's, wherever the client put
them in its JSON: walked first, so a value split between the end of the system prompt (Messages
API) or the instructions (Responses API) and the first turn is joined in the order the model
reads it, not in the order a client chose to hide it."""
BINARY_KEYS = frozenset({"data", "file_data"})
BINARY_MIN = 64
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]+")
MIN_INT = 10**8
_MAY_HOLD = re.compile(r"[0-9@:]|[^\x00-\x7f]|-----BEGIN")
"""Every finding needs one of these (a digit, `@`, `:`, a PEM header) in the text or, for a
non-ASCII text, possibly in its normalised view; a string without any is not scanned."""


@dataclass(slots=True)
class Piece:
    """One scanned string of the body, in walk order."""

    text: str
    joined: bool
    """Part of the joined text that is scanned across boundaries."""
    spans: list[pii.Finding] = field(default_factory=list)
    rank: int = 0


@dataclass(slots=True)
class Forwarded:
    """The scanned strings of a body, their findings, and how to rebuild it redacted."""

    body: dict[str, Any]
    pieces: list[Piece]
    findings: dict[str, int]
    decoded: dict[int, Any]
    """Parsed JSON of the strings that hold JSON, by their walk position."""

    def redacted(self, redact: Callable[[Piece], str]) -> dict[str, Any]:
        """A copy of the body with each scanned string replaced by `redact(piece)`; the body
        itself is not changed."""
        out: dict[str, Any] = _rebuild(self.body, True, self, iter(range(len(self.pieces))), redact)
        return out


def scan(body: dict[str, Any], hipaa: bool) -> Forwarded:
    decoded: dict[int, Any] = {}
    pieces: list[Piece] = []
    _walk(body, None, True, pieces, decoded)
    findings: dict[str, int] = {}
    for p in pieces:
        if _MAY_HOLD.search(p.text):
            p.spans = pii.scan(p.text, hipaa=hipaa)
        p.rank = _rank(p.text) if not p.spans and len(p.text) <= 64 else _RANKS[pii.classify(p.text, p.spans)]
        for f in p.spans:
            findings[f.type] = findings.get(f.type, 0) + 1
    for kind, parts in _boundaries([p for p in pieces if p.joined], hipaa):
        findings[kind] = findings.get(kind, 0) + 1
        rank = pii.CLASSIFICATIONS.index(pii.classify("", [pii.Finding(kind, 0, 0)]))
        for piece, s, e in parts:
            for g in piece.spans:  # a finding of one string that the crossing one continues
                if g.start < e and g.end > s:
                    findings[g.type] -= 1
            piece.spans = pii.merge(piece.spans, [pii.Finding(kind, s, e)])
            piece.rank = max(piece.rank, rank)
    return Forwarded(body, pieces, {k: n for k, n in findings.items() if n > 0}, decoded)


_RANKS = {c: i for i, c in enumerate(pii.CLASSIFICATIONS)}
_JSON_START = re.compile(r"\s*[\[{]")
_JSON_FIRST = frozenset("{[ \t\r\n")


@lru_cache(maxsize=4096)
def _rank(text: str) -> int:
    """The class rank of a short string without findings (keys, roles, names repeat)."""
    return _RANKS[pii.classify(text, [])]


def _binary(text: str, key: str | None) -> str:
    """What of a string is scanned: a base64 payload (a `data:...;base64,` URL, or the value
    of a `data`/`file_data` key that is all base64) only up to where the payload starts."""
    if text.startswith("data:"):
        comma = text.find(",")
        if comma != -1 and text[:comma].endswith(";base64"):
            return text[:comma]
    elif key in BINARY_KEYS and len(text) >= BINARY_MIN and _BASE64.fullmatch(text):
        return ""
    return text


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_not_json)
MAX_EMBEDDED = 3
"""How many levels of JSON inside a JSON string inside ... are decoded; deeper ones are
scanned as text."""


def _as_json(text: str, embedded: int) -> Any:
    """The JSON document a string holds (an object or an array, no NaN, nesting within the
    body's limit), or None: then it is scanned as text."""
    if embedded >= MAX_EMBEDDED or _JSON_START.match(text) is None:
        return None
    try:
        doc = _DECODER.decode(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict | list) or depth_exceeds(doc, MAX_DEPTH):
        return None
    return doc


def _items(obj: dict[str, Any], top: bool) -> Any:
    """An object's items in walk order: the body's `FIRST` keys first, else as they are."""
    if not top or not any(k in obj for k in FIRST):
        return obj.items()
    return [*((k, obj[k]) for k in FIRST if k in obj), *((k, v) for k, v in obj.items() if k not in FIRST)]


def _walk(
    value: Any, key: str | None, top: bool, out: list[Piece], decoded: dict[int, Any], embedded: int = 0
) -> None:
    if isinstance(value, str):
        first = value[:1]
        doc = _as_json(value, embedded) if first in _JSON_FIRST else None
        if doc is not None:
            decoded[len(out)] = doc
            out.append(Piece("", False))  # a placeholder keeps walk positions aligned
            _walk(doc, None, False, out, decoded, embedded + 1)
        elif first == "d" or key in BINARY_KEYS:
            out.append(Piece(_binary(value, key), key in PROSE_KEYS))
        else:
            out.append(Piece(value, key in PROSE_KEYS))
    elif isinstance(value, dict):
        for k, v in _items(value, top):
            if k not in API_KEYS:
                out.append(Piece(k, False))
            if not (top and k == "model"):
                _walk(v, k, False, out, decoded, embedded)
    elif isinstance(value, list):
        for v in value:
            _walk(v, key, False, out, decoded, embedded)
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= MIN_INT:
        out.append(Piece(str(value), False))


def _rebuild(
    value: Any,
    top: bool,
    fwd: Forwarded,
    counter: Iterator[int],
    redact: Callable[[Piece], str],
) -> Any:
    if isinstance(value, str):
        i = next(counter)
        doc = fwd.decoded.get(i)
        if doc is None:
            piece = fwd.pieces[i]
            if not piece.spans:
                return value
            out = redact(piece)
            # a base64 payload was scanned only up to where it starts: keep the rest as it was
            return out + value[len(piece.text) :]
        new = _rebuild(doc, False, fwd, counter, redact)
        return value if new == doc else json.dumps(new, ensure_ascii=False)
    if isinstance(value, dict):
        out_d: dict[str, Any] = {}
        for k, v in _items(value, top):
            name = k
            if k not in API_KEYS:
                piece = fwd.pieces[next(counter)]
                name = redact(piece) if piece.spans else k
            out_d[name] = v if top and k == "model" else _rebuild(v, False, fwd, counter, redact)
        return out_d
    if isinstance(value, list):
        return [_rebuild(v, False, fwd, counter, redact) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= MIN_INT:
        piece = fwd.pieces[next(counter)]
        return redact(piece) if piece.spans else value
    return value


Parts = list[tuple[Piece, int, int]]
"""The pieces of the strings a crossing finding covers: (string, start, end)."""


def _boundaries(joined: list[Piece], hipaa: bool) -> list[tuple[str, Parts]]:
    """Findings that cross a boundary between consecutive joined strings: their type and the
    piece of each string they cover (see the module docstring).

    The strings are joined directly and, separately, with a space; the text within `WINDOW`
    characters of the boundaries that have a digit, `@`, `:` or a non-ASCII character near
    them is scanned (windows that overlap are scanned as one region, so a conversation of many
    short messages costs at most two scans of its text, not a few per boundary). A boundary
    between digits (`4111 11` + `11 1111 1111`) is also scanned joined one way while the others
    around it are joined the other way, so a word right after the value in the next string does
    not hide it."""
    found: list[tuple[str, Parts]] = []
    seen: set[tuple[tuple[int, int, int], ...]] = set()

    def keep(kind: str, parts: Parts) -> None:
        if _glues_a_word(kind, parts):
            return
        sig = tuple((id(p), s, e) for p, s, e in parts)
        if sig not in seen:
            seen.add(sig)
            found.append((kind, parts))

    for sep in ("", " "):
        text = sep.join(p.text for p in joined)
        starts = list(itertools.accumulate((len(p.text) + len(sep) for p in joined[:-1]), initial=0))
        cuts = [starts[k] - len(sep) for k in range(1, len(joined))]
        near = [c for c in cuts if _MAY_HOLD.search(text, max(0, c - WINDOW), c + WINDOW + 1)]
        for lo, hi in _regions(near, len(text)):
            window = text[lo:hi]
            if _MAY_HOLD.search(window) is None:
                continue
            for f in pii.scan(window, hipaa=hipaa):
                fs, fe = lo + f.start, lo + f.end
                k = bisect_right(cuts, fs)  # the first cut after the start
                if k < len(cuts) and fe > cuts[k] + len(sep):
                    keep(f.type, _parts(joined, starts, fs, fe))
    for b in range(1, len(joined)):
        if not _between_digits(joined[b - 1].text, joined[b].text) or (b < 2 and b + 1 >= len(joined)):
            continue
        for here, other in (("", " "), (" ", "")):
            text, segments, cut = _window(joined, b, here, other)
            for f in pii.scan(text, hipaa=hipaa):
                if f.start < cut and f.end > cut + len(here):
                    keep(
                        f.type,
                        [
                            (joined[k], max(f.start, at) - at + off, min(f.end, at + n) - at + off)
                            for k, off, at, n in segments
                            if f.start < at + n and f.end > at
                        ],
                    )
    return found


def _regions(cuts: list[int], size: int) -> list[tuple[int, int]]:
    """The spans of text within WINDOW of a cut, overlapping ones merged."""
    out: list[tuple[int, int]] = []
    for c in cuts:
        lo, hi = max(0, c - WINDOW), min(size, c + WINDOW + 1)
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _parts(joined: list[Piece], starts: list[int], fs: int, fe: int) -> Parts:
    """The pieces of the joined strings that the joined text's `[fs, fe)` covers."""
    out: Parts = []
    for k in range(max(0, bisect_right(starts, fs) - 1), len(joined)):
        at = starts[k]
        if at >= fe:
            break
        n = len(joined[k].text)
        if fs < at + n:
            out.append((joined[k], max(fs, at) - at, min(fe, at + n) - at))
    return out


def _between_digits(left: str, right: str) -> bool:
    """Whether a boundary may cut a number: a digit (of any script) on each side, separators
    aside."""
    a, b = left.rstrip(_EDGE)[-1:], right.lstrip(_EDGE)[:1]
    return a.isdigit() and b.isdigit()


_EDGE = " .-/\\_:"
"""Separators a value may end (or start) with at a boundary and still go on in the next string
(`+33 4 73 61 53 ` + `12`, `3e01:32f9::a8df:` + `5906:...`)."""


def _glues_a_word(kind: str, parts: list[tuple[Piece, int, int]]) -> bool:
    """Whether a crossing finding only glues a neighbour to a value that one string holds by
    itself, rather than continuing it. When it overlaps a finding of one string alone, it is
    dropped if that finding does not reach the string's edge (separators aside: `_EDGE`), or if
    all it adds after that finding is letters
    and the value is no secret (`jane@example.com` + `owner`, `alice@corp.example.` + `Ping`:
    the first word of the next message; a value detected whole cannot go on with letters,
    except a token or an IPv6 address's hex digits, which a crossing finding only covers when
    the letters are hex). Letters added
    *before* the value are kept: `ksander` + `s@example.net` is one address, the price being
    that `my email` + `jane@example.com` redacts `email` too."""
    hits = [i for i, (p, s, e) in enumerate(parts) if any(g.start < e and g.end > s for g in p.spans)]
    if not hits:
        return False
    for p, s, e in parts:
        for g in p.spans:
            if g.start < e and g.end > s and p.text[: g.start].strip(_EDGE) and p.text[g.end :].strip(_EDGE):
                return True
    after = [p.text[s:e] for p, s, e in parts[hits[-1] + 1 :]]
    return bool(after) and kind not in ("secret", "ipv6") and all(t.isalpha() for t in after)


def _window(
    joined: list[Piece], b: int, here: str, other: str
) -> tuple[str, list[tuple[int, int, int, int]], int]:
    """The text around the boundary before `joined[b]`, joined by `here` and the other
    boundaries by `other`: segments are (piece index, offset in the piece, offset in the
    window, length); `cut` is where the boundary's separator starts."""
    left: list[tuple[int, int, int]] = []  # piece, offset in piece, length
    need, k = WINDOW, b - 1
    while need > 0 and k >= 0:
        t = joined[k].text
        n = min(need, len(t))
        left.append((k, len(t) - n, n))
        need -= n + 1
        k -= 1
    right: list[tuple[int, int, int]] = []
    need, k = WINDOW, b
    while need > 0 and k < len(joined):
        n = min(need, len(joined[k].text))
        right.append((k, 0, n))
        need -= n + 1
        k += 1
    parts: list[str] = []
    segments: list[tuple[int, int, int, int]] = []
    at = cut = 0
    for i, (k, off, n) in enumerate([*reversed(left), *right]):
        if i:
            sep = here if k == b else other
            if k == b:
                cut = at
            parts.append(sep)
            at += len(sep)
        parts.append(joined[k].text[off : off + n])
        segments.append((k, off, at, n))
        at += n
    return "".join(parts), segments, cut
