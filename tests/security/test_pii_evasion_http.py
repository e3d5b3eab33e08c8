"""Issue #12 item 5: a tenant tries to get personal data past the gateway to a model cleared
only for public data, with the official `openai` client, one request per evasion technique.

The model `pub` is cleared for public data and redaction is on, so every request must reach it
redacted. What left the gateway is read back from the mock upstream (`last_body`) and must hold
no finding at all: it is scanned again with the gateway's own request scan (which sees every
string), and the obfuscated value itself must not appear in it.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from llmplatform.gateway import governance as gv
from llmplatform_testing import gateway as h

KEY = "llmp-evasion-admin-key"
CARD = "4111 1111 1111 1111"
EMAIL = "jane.doe@example.com"
SSN = "078-05-1120"
ZW = "\u200b"


@pytest.fixture(scope="module")
def world(gateway_world: h.World) -> h.World:
    url = gateway_world.mock("pub")
    docs = [
        h.model("pub", url, maxDataClassification="public"),
        h.policy({"standard": ["pub"]}, dataGovernance={"piiRedaction": True}),
        *h.tenant("evader", {"admin": KEY}, ["standard"]),
    ]
    gateway_world.gateway(docs)
    return gateway_world


@pytest.fixture
def client(world: dict[str, Any]) -> openai.OpenAI:
    h.mock_config(world["pub"], reply=None)
    return openai.OpenAI(base_url=world["base"] + "/v1", api_key=KEY, max_retries=0)


def upstream_saw(world: dict[str, Any], endpoint: str, *values: str) -> dict[str, Any]:
    """The body the upstream received; fails if it carries any finding or any of `values`."""
    body = h.mock_stats(world["pub"])["last_body"]
    assert isinstance(body, dict)
    found = gv.scan(body, endpoint, False)
    assert found.findings == {}, (found.findings, body)
    text = json.dumps(body, ensure_ascii=False)
    assert [v for v in values if v in text] == [], text
    assert "_REDACTED]" in text
    return body


def chat(client: openai.OpenAI, messages: list[dict[str, Any]], **kw: Any) -> Any:
    raw = client.chat.completions.with_raw_response.create(
        model="standard", messages=messages, max_tokens=3, **kw
    )
    assert raw.headers["x-llmplatform-redacted"] == "true"
    return raw


def script(value: str, zero: int) -> str:
    """`value` with its digits written in the script whose zero is `zero`."""
    return "".join(chr(zero + int(c)) if c.isdigit() else c for c in value)


OBFUSCATED = {
    "zero-width space inside": ZW.join("4111 1111 1111 1111"),
    "soft hyphen and word joiner": "078\u00ad-05\u2060-1120",
    "bidi controls": "\u202a4111\u202c 1111 \u2066\u20681111\u2069 1111",
    "fullwidth digits": script(CARD, 0xFF10),
    "arabic-indic digits": script(SSN, 0x0660),
    "devanagari digits": script(CARD, 0x0966),
    "mathematical digits": script(SSN, 0x1D7CE),
    "fullwidth at": "jane.doe\uff20example.com",
    "small at and ideographic stop": "jane.doe\ufe6bexample\u3002com",
    "slashes between digits": "078/05/1120",
    "dots between digits": "4111.1111.1111.1111",
    "spaced dashes": "4111 - 1111 - 1111 - 1111",
    "en dashes": "078\u201305\u20131120",
    "thin spaces": "4111\u20091111\u20091111\u20091111",
}


@pytest.mark.parametrize("technique", sorted(OBFUSCATED))
def test_obfuscated_values_in_content(world: dict[str, Any], client: openai.OpenAI, technique: str) -> None:
    value = OBFUSCATED[technique]
    chat(client, [{"role": "user", "content": f"please store {value} for me"}])
    body = upstream_saw(world, "chat", value)
    content = body["messages"][0]["content"]
    # exactly the value's characters were replaced (a format character before it may stay)
    assert content.startswith("please store ") and content.endswith("_REDACTED] for me"), content


def test_value_split_across_content_parts(world: dict[str, Any], client: openai.OpenAI) -> None:
    parts = [{"type": "text", "text": "card 4111 11"}, {"type": "text", "text": "11 1111 1111 thanks"}]
    chat(client, [{"role": "user", "content": parts}])
    body = upstream_saw(world, "chat")
    assert [p["text"] for p in body["messages"][0]["content"]] == [
        "card [CARD_REDACTED]",
        "[CARD_REDACTED] thanks",
    ]


def test_value_split_across_messages(world: dict[str, Any], client: openai.OpenAI) -> None:
    messages = [
        {"role": "user", "content": "my email is jane.doe@"},
        {"role": "assistant", "content": "example.com, noted"},
        {"role": "user", "content": "thanks"},
    ]
    chat(client, messages)
    body = upstream_saw(world, "chat")
    assert [m["content"] for m in body["messages"]] == [
        "my email is [EMAIL_REDACTED]",
        "[EMAIL_REDACTED], noted",
        "thanks",
    ]


def test_json_escaped_tool_arguments_and_tool_results(world: dict[str, Any], client: openai.OpenAI) -> None:
    arguments = "".join(
        f"\\u{ord(c):04x}" if c.isdigit() or c == "@" else c for c in json.dumps({"card": CARD, "to": EMAIL})
    )
    messages = [
        {"role": "user", "content": "pay"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "pay", "arguments": arguments}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": json.dumps({"ssn": "\u0030\u0037\u0038-05-1120"})},
    ]
    chat(client, messages)
    body = upstream_saw(world, "chat", arguments)
    sent = json.loads(body["messages"][1]["tool_calls"][0]["function"]["arguments"])
    assert sent == {"card": "[CARD_REDACTED]", "to": "[EMAIL_REDACTED]"}
    assert json.loads(body["messages"][2]["content"]) == {"ssn": "[SSN_REDACTED]"}


FIELDS: dict[str, dict[str, Any]] = {
    "message name": {"messages": [{"role": "user", "name": f"ssn-{SSN}", "content": "hi"}]},
    "tool name and description": {
        "tools": [
            {
                "type": "function",
                "function": {"name": "lookup", "description": f"owner {EMAIL}", "parameters": {}},
            }
        ]
    },
    "tool parameter schema": {
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "pay",
                    "parameters": {
                        "type": "object",
                        "properties": {"card": {"type": "string", "default": CARD}},
                    },
                },
            }
        ]
    },
    "response_format schema": {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "r", "schema": {"type": "object", "description": f"ssn {SSN}"}},
        }
    },
    "user": {"user": EMAIL},
    "metadata": {"metadata": {"customer": EMAIL}, "store": True},
    "stop": {"stop": [SSN, "END"]},
    "image URL": {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "describe"},
                    {"type": "image_url", "image_url": {"url": f"https://img.example/x.png?owner={EMAIL}"}},
                ],
            }
        ]
    },
    "prediction": {"prediction": {"type": "content", "content": f"card {CARD}"}},
    "an unknown extra field": {"extra_body": {"x_note": f"ssn {SSN}"}},
}


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_every_forwarded_field(world: dict[str, Any], client: openai.OpenAI, field: str) -> None:
    kw = dict(FIELDS[field])
    messages = kw.pop("messages", [{"role": "user", "content": "hello"}])
    chat(client, messages, **kw)
    upstream_saw(world, "chat", CARD, EMAIL, SSN)


def test_completions_prompt_list(world: dict[str, Any], client: openai.OpenAI) -> None:
    raw = client.completions.with_raw_response.create(
        model="standard", prompt=["hello", f"mail {EMAIL.replace('@', chr(0xFF20))}"], max_tokens=3
    )
    assert raw.headers["x-llmplatform-redacted"] == "true"
    body = upstream_saw(world, "completions")
    assert body["prompt"] == ["hello", "mail [EMAIL_REDACTED]"]


def test_embeddings_input_list(world: dict[str, Any], client: openai.OpenAI) -> None:
    raw = client.embeddings.with_raw_response.create(model="standard", input=["plain", f"ssn {ZW.join(SSN)}"])
    assert raw.headers["x-llmplatform-redacted"] == "true"
    body = upstream_saw(world, "embeddings")
    assert body["input"] == ["plain", "ssn [SSN_REDACTED]"]
