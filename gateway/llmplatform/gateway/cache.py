"""The exact-match response cache: a repeated identical request is answered without an upstream.

Why exact match on a normalised request: a cached answer is only right for the same input.
The key is a SHA-256 over the tenant, the endpoint, the resolved target (the named model's id,
or `tier:<name>` for a tier or `auto`) and the request body without the fields that do not
change the output (`model` as typed, `user`, `stream`, `stream_options`), serialised with
sorted keys. Tenants never share entries. By default only `temperature: 0` requests are
cached (policy `cache.temperatureZeroOnly`); a request without `temperature` samples at the
provider's default (1) and is not cached then.

Where entries live: in process, a bounded LRU (entries and bytes) with per-entry expiry; with
`--redis-url`, in the same Redis as the limiter (`SET ... EX ttl`), so every replica and worker
shares them. A Redis error counts as a miss and is logged once per outage; the request goes
upstream.

What is stored: the JSON response as the client received it (non-streamed), or one assembled
from a stream's chunks (text streams only; a stream with tool calls is not stored), plus the
model and tier that produced it. A streamed request is answered from the cache as an SSE
stream built from that JSON (role, content, finish and, when asked, usage chunks).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from llmplatform.contract import redisurl
from llmplatform.gateway import sse
from llmplatform.gateway.limits import MAX_CONNECTIONS

log = logging.getLogger("llmplatform.gateway.cache")

EXCLUDED = frozenset({"model", "user", "stream", "stream_options"})
DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
PREFIX = "llmplatform:cache:"


@dataclass(frozen=True, slots=True)
class CacheSettings:
    enabled: bool = False
    ttl_seconds: int = 300
    temperature_zero_only: bool = True


@dataclass(frozen=True, slots=True)
class Entry:
    model: str
    tier: str
    body: bytes
    """The JSON response."""

    def dump(self) -> bytes:
        return f"{self.model}\n{self.tier}\n".encode() + self.body

    @classmethod
    def load(cls, raw: bytes) -> Entry | None:
        parts = raw.split(b"\n", 2)
        if len(parts) != 3:
            return None
        return cls(parts[0].decode(), parts[1].decode(), parts[2])


def applies(settings: CacheSettings, body: dict[str, Any]) -> bool:
    if not settings.enabled:
        return False
    if not settings.temperature_zero_only:
        return True
    t = body.get("temperature")
    return isinstance(t, int | float) and not isinstance(t, bool) and t == 0


def key(tenant: str, endpoint: str, target: str, body: dict[str, Any]) -> str:
    rest = {k: v for k, v in body.items() if k not in EXCLUDED}
    doc = json.dumps([endpoint, target, rest], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{PREFIX}{tenant}:{hashlib.sha256(doc.encode('utf-8', 'surrogatepass')).hexdigest()}"


class LocalCache:
    """An LRU bounded by entry count and by total bytes; expired entries are dropped on read."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    async def get(self, k: str) -> Entry | None:
        item = self._items.get(k)
        if item is None:
            return None
        if item[0] <= time.monotonic():
            self._drop(k)
            return None
        self._items.move_to_end(k)
        return Entry.load(item[1])

    async def put(self, k: str, entry: Entry, ttl: int) -> None:
        raw = entry.dump()
        if len(raw) > self.max_bytes // 16:  # one huge answer must not flush the whole cache
            return
        if k in self._items:
            self._drop(k)
        self._items[k] = (time.monotonic() + ttl, raw)
        self.bytes += len(raw)
        while len(self._items) > self.max_entries or self.bytes > self.max_bytes:
            self._drop(next(iter(self._items)))

    def _drop(self, k: str) -> None:
        _, raw = self._items.pop(k)
        self.bytes -= len(raw)

    async def close(self) -> None:
        self._items.clear()


class RedisCache:
    """Entries in Redis with Redis expiry, shared by every gateway process that uses it."""

    def __init__(self, url: str, timeout: float = 0.5, connect_timeout: float = 2.0) -> None:
        import redis.asyncio as aioredis

        self._redis: Any = redisurl.connect(
            aioredis, url, timeout, connect_timeout, MAX_CONNECTIONS
        )  # as the limiter
        self._failing = False

    def _failed(self, exc: Exception) -> None:
        if not self._failing:
            log.warning("response cache: redis error, treating as misses: %s", exc)
        self._failing = True

    async def get(self, k: str) -> Entry | None:
        from redis.exceptions import RedisError

        try:
            raw = await self._redis.get(k)
        except (TimeoutError, RedisError, OSError) as exc:
            self._failed(exc)
            return None
        self._failing = False
        return Entry.load(raw) if raw is not None else None

    async def put(self, k: str, entry: Entry, ttl: int) -> None:
        from redis.exceptions import RedisError

        try:
            await self._redis.set(k, entry.dump(), ex=ttl)
        except (TimeoutError, RedisError, OSError) as exc:
            self._failed(exc)

    async def close(self) -> None:
        await self._redis.aclose()


# -- streams to and from the stored JSON ------------------------------------------------------


def as_stream(body: bytes, endpoint: str, include_usage: bool) -> bytes:
    """A stored JSON response as the SSE stream the same request would have received."""
    doc = json.loads(body)
    chat = endpoint == "chat"
    kind = "chat.completion.chunk" if chat else "text_completion"
    base = {k: doc[k] for k in ("id", "created", "model", "system_fingerprint") if k in doc}
    base["object"] = kind
    out: list[bytes] = []
    for choice in doc.get("choices") or []:
        index = choice.get("index", 0)
        if chat:
            message = choice.get("message") or {}
            delta: dict[str, Any] = {
                "role": message.get("role", "assistant"),
                "content": message.get("content"),
            }
            if message.get("tool_calls"):
                delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(message["tool_calls"])]
            out.append(
                sse.frame({**base, "choices": [{"index": index, "delta": delta, "finish_reason": None}]})
            )
            last: dict[str, Any] = {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}
        else:
            out.append(
                sse.frame(
                    {
                        **base,
                        "choices": [{"index": index, "text": choice.get("text", ""), "finish_reason": None}],
                    }
                )
            )
            last = {"index": index, "text": "", "finish_reason": choice.get("finish_reason")}
        out.append(sse.frame({**base, "choices": [last]}))
    if include_usage and isinstance(doc.get("usage"), dict):
        out.append(sse.frame({**base, "choices": [], "usage": doc["usage"]}))
    out.append(sse.DONE + sse.SEPARATOR)
    return b"".join(out)


@dataclass
class Collector:
    """Assembles a streamed text response into the JSON response it stands for, so a stream
    can fill the cache. Gives up (nothing is stored) on tool calls or anything unexpected."""

    endpoint: str
    ok: bool = True
    base: dict[str, Any] = field(default_factory=dict)
    texts: dict[int, list[str]] = field(default_factory=dict)
    finish: dict[int, Any] = field(default_factory=dict)
    usage: dict[str, Any] | None = None

    def feed(self, chunk: Any) -> None:
        if not self.ok:
            return
        if not isinstance(chunk, dict) or not isinstance(chunk.get("choices", []), list):
            self.ok = False
            return
        if not self.base:
            self.base = {k: chunk[k] for k in ("id", "created", "model", "system_fingerprint") if k in chunk}
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                self.ok = False
                return
            index = choice.get("index", 0)
            if self.endpoint == "chat":
                delta = choice.get("delta") or {}
                if not isinstance(delta, dict) or delta.get("tool_calls") or delta.get("function_call"):
                    self.ok = False
                    return
                piece = delta.get("content")
            else:
                piece = choice.get("text")
            if isinstance(piece, str):
                self.texts.setdefault(index, []).append(piece)
            if choice.get("finish_reason") is not None:
                self.finish[index] = choice["finish_reason"]

    def result(self) -> bytes | None:
        if not self.ok or not self.base or not self.finish:
            return None
        choices = []
        for index in sorted(set(self.texts) | set(self.finish)):
            text = "".join(self.texts.get(index, []))
            choice: dict[str, Any] = {
                "index": index,
                "finish_reason": self.finish.get(index),
                "logprobs": None,
            }
            if self.endpoint == "chat":
                choice["message"] = {"role": "assistant", "content": text, "refusal": None}
            else:
                choice["text"] = text
            choices.append(choice)
        kind = "chat.completion" if self.endpoint == "chat" else "text_completion"
        doc: dict[str, Any] = {**self.base, "object": kind, "choices": choices}
        if self.usage is not None:
            doc["usage"] = self.usage
        return json.dumps(doc, separators=(",", ":")).encode()
