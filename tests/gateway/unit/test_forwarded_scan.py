"""Every string a request forwards is scanned and redacted (forwarded.py), not only message
content: one test per field a tenant could hide a value in, JSON-escaped tool arguments, values
split across content parts and messages, and binary payloads left intact."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from llmplatform.gateway import governance as gv

CARD = "4111 1111 1111 1111"
EMAIL = "jane.doe@example.com"
SSN = "078-05-1120"


def redacted(body: dict[str, Any], endpoint: str = "chat") -> tuple[dict[str, Any], dict[str, int]]:
    before = copy.deepcopy(body)
    found = gv.scan(body, endpoint, False)
    out = found.redacted()[0] if found.findings else body
    assert body == before, "the client's body must not be changed"
    return out, found.findings


def leaks(doc: Any, *values: str) -> list[str]:
    text = json.dumps(doc, ensure_ascii=False)
    return [v for v in values if v in text]


def user(content: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": content}], **extra}


FIELDS: dict[str, dict[str, Any]] = {
    "message name": {"model": "m", "messages": [{"role": "user", "name": f"ssn {SSN}", "content": "hi"}]},
    "tool names and descriptions": user(
        "hi",
        tools=[{"type": "function", "function": {"name": "lookup", "description": f"mail {EMAIL}"}}],
    ),
    "tool parameter schemas": user(
        "hi",
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "pay",
                    "parameters": {
                        "type": "object",
                        "properties": {"card": {"type": "string", "default": CARD, "enum": [SSN]}},
                    },
                },
            }
        ],
    ),
    "response_format schema": user(
        "hi",
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"description": f"for {EMAIL}", "examples": [CARD]}},
        },
    ),
    "user": user("hi", user=EMAIL),
    "metadata": user("hi", metadata={"customer": EMAIL, "ref": f"card {CARD}"}),
    "stop": user("hi", stop=[EMAIL, SSN]),
    "image URL": user(
        [{"type": "image_url", "image_url": {"url": f"https://img.example/a.png?owner={EMAIL}&ssn={SSN}"}}]
    ),
    "prediction": user("hi", prediction={"type": "content", "content": f"card {CARD}"}),
    "assistant function_call": {
        "model": "m",
        "messages": [{"role": "assistant", "function_call": {"name": "f", "arguments": f"ssn {SSN}"}}],
    },
    "tool result JSON": {
        "model": "m",
        "messages": [{"role": "tool", "tool_call_id": "c1", "content": json.dumps({"email": EMAIL})}],
    },
    "an unknown future field": user("hi", future_field={"nested": [f"mail {EMAIL}"]}),
    "an object key": user("hi", metadata={EMAIL: "owner"}),
}


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_every_forwarded_field_is_scanned_and_redacted(name: str) -> None:
    body = FIELDS[name]
    out, findings = redacted(body)
    assert findings, name
    assert leaks(out, CARD, EMAIL, SSN) == [], out


def test_json_escaped_tool_arguments() -> None:
    arguments = json.dumps({"to": EMAIL, "note": f"card {CARD}"}, ensure_ascii=False)
    escaped = "".join(f"\\u{ord(c):04x}" if c.isalnum() else c for c in arguments)  # valid JSON still
    call = {"id": "c1", "type": "function", "function": {"name": "send", "arguments": escaped}}
    body = {"model": "m", "messages": [{"role": "assistant", "tool_calls": [call]}]}
    assert EMAIL not in escaped and json.loads(escaped)["to"] == EMAIL
    out, findings = redacted(body)
    assert findings == {"email": 1, "card": 1}
    sent = json.loads(out["messages"][0]["tool_calls"][0]["function"]["arguments"])
    assert sent == {"to": "[EMAIL_REDACTED]", "note": "card [CARD_REDACTED]"}


def test_completions_prompt_list_and_embeddings_input_list() -> None:
    out, _ = redacted({"model": "m", "prompt": ["hello", f"mail {EMAIL}"]}, "completions")
    assert out["prompt"] == ["hello", "mail [EMAIL_REDACTED]"]
    out, _ = redacted({"model": "m", "input": [f"ssn {SSN}", "plain", [1, 2, 3]]}, "embeddings")
    assert out["input"] == ["ssn [SSN_REDACTED]", "plain", [1, 2, 3]]


def test_a_number_that_is_a_card() -> None:
    out, findings = redacted(user("hi", metadata={"n": 4111111111111111}, seed=12345))
    assert findings == {"card": 1} and out["metadata"]["n"] == "[CARD_REDACTED]" and out["seed"] == 12345


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("pay with 4111 1111 ", "1111 1111 thanks"),  # cut at a space
        ("pay with 4111 11", "11 1111 1111 thanks"),  # cut inside a group
        ("pay with 4111 1111", "1111 1111 thanks"),  # the space dropped at the cut
        ("mail jane.doe@", "example.com now"),
        ("ssn 078-05", "-1120 ok"),
    ],
)
def test_a_value_split_across_content_parts(left: str, right: str) -> None:
    parts = [{"type": "text", "text": left}, {"type": "text", "text": right}]
    out, findings = redacted(user(parts))
    assert findings, (left, right)
    sent = [p["text"] for p in out["messages"][0]["content"]]
    assert "REDACTED]" in sent[0] and "REDACTED]" in sent[1], sent
    assert sent[0].startswith(left.split()[0]) and sent[1].endswith(right.split()[-1])


def test_a_value_split_across_messages_and_many_small_parts() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "my card is 4111 11"},
            {"role": "assistant", "content": "go on"},
            {"role": "user", "content": "ok"},
        ],
    }
    assert redacted(body)[1] == {}  # no value yet: "go on" is between the halves
    body["messages"][1]["content"] = "11 1111 1111"
    out, findings = redacted(body)
    assert findings == {"card": 1}
    assert [m["content"] for m in out["messages"]] == ["my card is [CARD_REDACTED]", "[CARD_REDACTED]", "ok"]
    digits = [{"type": "text", "text": c} for c in "078-05-1120"]
    out, findings = redacted(user([{"type": "text", "text": "ssn "}, *digits]))
    assert findings == {"ssn": 1}
    assert "".join(p["text"] for p in out["messages"][0]["content"]).count("[SSN_REDACTED]") == len(digits)


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        (
            "messages",
            {
                "model": "m",
                "messages": [{"role": "user", "content": "example.com now"}],
                "system": "mail jane.doe@",
            },
        ),
        ("responses", {"model": "m", "input": "example.com now", "instructions": "mail jane.doe@"}),
    ],
)
def test_a_value_split_between_the_system_prompt_and_the_first_turn(
    endpoint: str, body: dict[str, Any]
) -> None:
    """The model reads the system prompt (instructions) first wherever the JSON puts it: a
    client that sends it after the conversation cannot hide a value across that boundary."""
    out, findings = redacted(body, endpoint)
    assert findings == {"email": 1}
    assert not leaks(out, "jane.doe", "example.com")


def test_split_across_text_parts_of_the_joined_text_only() -> None:
    """Protocol words are not part of the joined text: `role` between two messages does not
    hide a split, and `type` values never join with content."""
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "reach jane.doe"}]},
            {"role": "user", "content": [{"type": "text", "text": "@example.com"}]},
        ],
    }
    assert redacted(body)[1] == {"email": 1}


def test_a_complete_value_is_not_glued_to_the_next_message() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": f"Reply to {EMAIL}."},
            {"role": "user", "content": "Ping me"},
        ],
    }
    out, findings = redacted(body)
    assert findings == {"email": 1}
    assert [m["content"] for m in out["messages"]] == ["Reply to [EMAIL_REDACTED].", "Ping me"]
    body["messages"] = [{"role": "user", "content": f"mail {EMAIL}"}, {"role": "user", "content": "owner: x"}]
    assert [m["content"] for m in redacted(body)[0]["messages"]] == ["mail [EMAIL_REDACTED]", "owner: x"]
    # a value that reaches the end of its part may continue in the next one
    parts = [{"type": "text", "text": "call +49 (0) 6546 325"}, {"type": "text", "text": "660 now"}]
    out, findings = redacted(user(parts))
    assert [p["text"] for p in out["messages"][0]["content"]] == [
        "call [PHONE_REDACTED]",
        "[PHONE_REDACTED] now",
    ]
    assert findings == {"phone": 1}  # one number, counted once


def test_binary_payloads_are_forwarded_intact() -> None:
    png = base64.b64encode(bytes(range(256)) * 8).decode()
    audio = base64.b64encode(bytes(reversed(range(256))) * 8).decode()
    body = user(
        [
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
            {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}},
            {"type": "text", "text": f"mail {EMAIL}"},
        ]
    )
    out, findings = redacted(body)
    assert findings == {"email": 1}
    parts = out["messages"][0]["content"]
    assert parts[0]["image_url"]["url"].endswith(png) and parts[1]["input_audio"]["data"] == audio


def test_hostile_json_in_strings_is_scanned_as_text() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    nan = '{"x": NaN, "to": "' + EMAIL + '"}'
    nested = json.dumps({"a": json.dumps({"b": json.dumps({"c": json.dumps({"d": EMAIL})})})})
    out, findings = redacted(user("hi", metadata={"deep": deep, "nan": nan, "nested": nested}))
    assert out["metadata"]["deep"] == deep
    assert findings == {"email": 2} and EMAIL not in json.dumps(out)
    assert "NaN" in out["metadata"]["nan"]  # scanned as text, not re-encoded
