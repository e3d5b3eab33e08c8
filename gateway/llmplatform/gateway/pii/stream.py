"""Redacting a streamed completion piece by piece, with exactly the output of a whole scan."""

from __future__ import annotations

from llmplatform.gateway.pii.model import BREAKS, CONTEXT, Finding, glued
from llmplatform.gateway.pii.scanner import redact, scan_from

MAX_HOLD = 4096
"""StreamRedactor emits at least every this many characters, even without a break."""


class StreamRedactor:
    """Redacts text that arrives in pieces (a streamed completion) exactly as `redact(text,
    scan(text))` would, emitting each piece as soon as the break after it has arrived.

    Held back is only the text since the last break (usually the current word; a phone number
    or IBAN with its spaces; never more than MAX_HOLD characters, after which the held text
    is scanned and emitted as it is, the one case where the output can differ). Findings
    carry offsets into the whole original stream."""

    def __init__(self, hipaa: bool = False) -> None:
        self._hipaa = hipaa
        self._context = ""  # the last CONTEXT + 8 characters already emitted (original text)
        self._pending = ""
        self._offset = 0  # stream offset of _pending[0]
        self._seen = 0  # _pending[: _seen - 1] is known to hold no break

    def feed(self, text: str) -> tuple[str, list[Finding]]:
        self._pending += text
        cut = self._last_break()
        if cut <= 0 and len(self._pending) >= MAX_HOLD:
            cut = len(self._pending)
        return self._emit(cut) if cut > 0 else ("", [])

    def finish(self) -> tuple[str, list[Finding]]:
        return self._emit(len(self._pending)) if self._pending else ("", [])

    def _last_break(self) -> int:
        """Length of the longest prefix of the pending text that ends with a break."""
        joined = self._context[-1:] + self._pending
        shift = len(joined) - len(self._pending)
        # Only the new text and the last character seen before it (a space after an upper-case
        # letter waits for the next character) need a look, so a long word costs O(n) overall.
        for i in range(len(joined) - 1, shift + max(0, self._seen - 1) - 1, -1):
            c = joined[i]
            if c in BREAKS or (c == " " and glued(joined, i) is False):
                return i - shift + 1
        self._seen = len(self._pending)
        return 0

    def _emit(self, cut: int) -> tuple[str, list[Finding]]:
        chunk = self._pending[:cut]
        self._pending = self._pending[cut:]
        self._seen = len(self._pending)  # what follows the last break holds no break
        joined = self._context + chunk
        base = len(self._context)
        found = scan_from(joined, self._hipaa, base)
        out = redact(joined, found)[base:] if found else chunk
        shift = self._offset - base
        self._offset += len(chunk)
        self._context = joined[-(CONTEXT + 8) :]
        return out, [Finding(f.type, f.start + shift, f.end + shift) for f in found]
