"""Pure parts of the response cache: the key, the LRU bounds and expiry, and the conversions
between a stored JSON response and an SSE stream."""

from __future__ import annotations

import asyncio
import json
import time

from llmplatform.gateway import cache as rc

BODY = {"model": "auto", "messages": [{"role": "user", "content": "hi"}], "temperature": 0, "max_tokens": 4}


def test_key_ignores_fields_that_do_not_change_the_output() -> None:
    base = rc.key("t", "chat", "tier:standard", BODY)
    same = {
        **BODY,
        "model": "standard",
        "user": "u",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert rc.key("t", "chat", "tier:standard", same) == base
    assert rc.key("t", "chat", "tier:standard", dict(reversed(list(BODY.items())))) == base
    assert rc.key("other", "chat", "tier:standard", BODY) != base
    assert rc.key("t", "completions", "tier:standard", BODY) != base
    assert rc.key("t", "chat", "model:ns/alpha", BODY) != base
    assert rc.key("t", "chat", "tier:standard", {**BODY, "temperature": 0.0001}) != base
    assert rc.key("t", "chat", "tier:standard", {**BODY, "seed": 1}) != base


def test_applies_only_to_temperature_zero_by_default() -> None:
    on = rc.CacheSettings(enabled=True)
    assert rc.applies(on, BODY)
    assert rc.applies(on, {**BODY, "temperature": 0.0})
    assert not rc.applies(on, {**BODY, "temperature": 0.2})
    assert not rc.applies(on, {k: v for k, v in BODY.items() if k != "temperature"})
    assert not rc.applies(on, {**BODY, "temperature": False})
    assert rc.applies(rc.CacheSettings(enabled=True, temperature_zero_only=False), {**BODY, "temperature": 1})
    assert not rc.applies(rc.CacheSettings(enabled=False), BODY)


def test_lru_is_bounded_by_entries_and_bytes() -> None:
    async def run() -> None:
        lru = rc.LocalCache(max_entries=3, max_bytes=16 * 1000)
        for i in range(5):
            await lru.put(f"k{i}", rc.Entry("m", "t", b"x" * 100), 60)
        assert len(lru) == 3 and await lru.get("k0") is None and await lru.get("k4") is not None
        await lru.get("k2")  # k2 becomes most recent, so k3 goes next
        await lru.put("k5", rc.Entry("m", "t", b"y"), 60)
        assert await lru.get("k3") is None and await lru.get("k2") is not None
        await lru.put("big", rc.Entry("m", "t", b"z" * 999), 60)  # over max_bytes/16: not stored
        assert await lru.get("big") is None
        small = rc.LocalCache(max_entries=100, max_bytes=16 * 300)
        for i in range(40):
            await small.put(f"k{i}", rc.Entry("m", "t", b"x" * 250), 60)
        assert small.bytes <= small.max_bytes and len(small) < 40

    asyncio.run(run())


def test_entries_expire() -> None:
    async def run() -> None:
        lru = rc.LocalCache()
        await lru.put("k", rc.Entry("m", "t", b"{}"), 1)
        assert await lru.get("k") is not None
        lru._items["k"] = (time.monotonic() - 0.01, lru._items["k"][1])
        assert await lru.get("k") is None and lru.bytes == 0

    asyncio.run(run())


def _events(sse: bytes) -> list[object]:
    out: list[object] = []
    for event in sse.split(b"\n\n"):
        if event.startswith(b"data: "):
            data = event[6:]
            out.append("[DONE]" if data == b"[DONE]" else json.loads(data))
    return out


def test_stream_round_trip_through_the_stored_json() -> None:
    collector = rc.Collector("chat")
    base = {"id": "c1", "created": 1, "model": "m", "object": "chat.completion.chunk"}
    collector.feed({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    for piece in ("hel", "lo ", "world"):
        collector.feed(
            {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
        )
    collector.feed({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    collector.feed({**base, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 3}})
    stored = collector.result()
    assert stored is not None
    doc = json.loads(stored)
    assert doc["choices"][0]["message"]["content"] == "hello world"
    assert doc["usage"]["completion_tokens"] == 3
    events = _events(rc.as_stream(stored, "chat", include_usage=True))
    assert events[-1] == "[DONE]"
    assert [e for e in events if isinstance(e, dict) and e.get("usage")]
    text = "".join(
        e["choices"][0]["delta"].get("content") or "" for e in events if isinstance(e, dict) and e["choices"]
    )
    assert text == "hello world"
    assert not [
        e
        for e in _events(rc.as_stream(stored, "chat", include_usage=False))
        if isinstance(e, dict) and e.get("usage")
    ]


def test_streams_with_tool_calls_are_not_stored() -> None:
    collector = rc.Collector("chat")
    collector.feed(
        {"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0}]}, "finish_reason": None}]}
    )
    collector.feed({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    assert collector.result() is None
    unfinished = rc.Collector("completions")
    unfinished.feed({"id": "c", "choices": [{"index": 0, "text": "abc"}]})
    assert unfinished.result() is None  # a stream that never finished is not an answer
