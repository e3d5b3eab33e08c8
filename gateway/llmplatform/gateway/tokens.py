"""Prompt token estimates for the context-window filter and worst-case reservations.

Why a heuristic and not tiktoken: tiktoken downloads its BPE tables on first use, which a
gateway pod without internet egress (and this project's offline CI) cannot do, and models
behind the gateway use many different tokenizers anyway. The estimate is deliberately on the
high side (one token per 3 UTF-8 bytes, which over-counts English BPE by ~30% and is close for
code and non-Latin text, plus OpenAI's per-message overhead), because it only decides
admission: over-estimating reserves a little too much, and settlement then corrects to the
usage the upstream reports.
"""

from __future__ import annotations

from typing import Any

BYTES_PER_TOKEN = 3
MESSAGE_OVERHEAD = 4
REPLY_PRIMING = 3


def text_tokens(text: str) -> int:
    if not text:
        return 0
    return -(-len(text.encode("utf-8", "replace")) // BYTES_PER_TOKEN)


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return text_tokens(content)
    if isinstance(content, list):  # multi-part content: text parts count, images a flat amount
        total = 0
        for part in content:
            if isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    total += text_tokens(part["text"])
                elif part.get("type") in ("image_url", "input_image"):
                    total += 765  # OpenAI's high-detail tile budget for one image
                else:  # audio, files and parts to come: their encoded size, on the high side
                    total += text_tokens(str(part))
            elif isinstance(part, str):
                total += text_tokens(part)
        return total
    if content is None:
        return 0
    return text_tokens(str(content))


def chat_prompt_tokens(messages: Any) -> int:
    if not isinstance(messages, list):
        return 0
    total = REPLY_PRIMING
    for message in messages:
        total += MESSAGE_OVERHEAD
        if isinstance(message, dict):
            total += _content_tokens(message.get("content"))
            if isinstance(message.get("name"), str):
                total += text_tokens(message["name"])
            if message.get("tool_calls") is not None:
                total += text_tokens(str(message["tool_calls"]))
    return total


def prompt_tokens(body: dict[str, Any], endpoint: str) -> int:
    """Estimated input tokens of a request body for the given endpoint kind."""
    if endpoint == "chat":
        total = chat_prompt_tokens(body.get("messages"))
        for name in ("tools", "functions", "response_format"):
            if body.get(name) is not None:  # sent with the prompt, billed as input
                total += text_tokens(str(body[name]))
        return total
    field = body.get("prompt") if endpoint == "completions" else body.get("input")
    if isinstance(field, str):
        return text_tokens(field)
    if isinstance(field, list):
        if all(isinstance(x, int) for x in field):  # one pre-tokenized prompt
            return len(field)
        return sum(
            len(x) if isinstance(x, list) else text_tokens(x if isinstance(x, str) else str(x)) for x in field
        )
    return 0
