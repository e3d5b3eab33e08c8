"""The worst case of a request as sent: how many output tokens it may make the upstream bill.

Why its own module: admission reserves this worst case against token limits and budgets
before the upstream is called, so every request parameter that multiplies or adds billed
output must be read here, in one place (the list, with the parameters that do not change the
bill, is in docs/gateway.md, "Worst case of a request"). A parameter that changes the bill in
a way the model's pricing cannot express (audio output, per-call tool fees) is refused with
a 400 rather than under-reserved.

- chat: output per choice is `max_completion_tokens` / `max_tokens` (the larger when both
  are sent), else the model's maxOutputTokens, else the adapter's default, else the rest of
  the context window; times `n`; plus the predicted-output text (`prediction`, billed as
  output when rejected) per choice.
- completions: the same per choice, times `max(n, best_of)` (best_of choices are generated
  and billed, n returned), times the number of prompts in a prompt list; `echo` adds the
  prompt to every choice.
- embeddings: no output; the prompt estimate sums every input of an input list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmplatform.gateway.errors import GatewayError
from llmplatform.gateway.tokens import text_tokens

MAX_N = 128
"""OpenAI's own ceiling for `n`."""
MAX_BEST_OF = 20
"""OpenAI's own ceiling for `best_of`."""
REFUSED = {
    "audio": "audio output is priced apart from text tokens, which model pricing cannot express",
    "web_search_options": "web search is billed per call, which model pricing cannot express",
}
"""Chat parameters the gateway cannot reserve for: refused with this reason."""
TEXT_MODALITIES: tuple[set[str], ...] = ({"text"}, set())


@dataclass(frozen=True, slots=True)
class Shape:
    """What the request asks for, read once: per-choice output cap (None: the model's), how
    many choices are generated and billed, and output billed on top of the cap per choice."""

    max_tokens: int | None = None
    choices: int = 1
    extra_per_choice: int = 0


def _bad(param: str, message: str) -> GatewayError:
    return GatewayError(400, message, code="invalid_request", param=param)


def _count(body: dict[str, Any], name: str, ceiling: int) -> int:
    value = body.get(name)
    if value is None:
        return 1
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= ceiling:
        raise _bad(name, f"'{name}' must be an integer from 1 to {ceiling}")
    return value


def _max_tokens(body: dict[str, Any]) -> int | None:
    found: list[int] = []
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise _bad(name, f"{name} must be a positive integer")
        found.append(value)
    return max(found) if found else None


def _prompts(prompt: Any) -> int:
    """How many prompts a completions `prompt` holds (each gets its own choices)."""
    if isinstance(prompt, list) and prompt and not all(isinstance(x, int) for x in prompt):
        return len(prompt)
    return 1


def shape(body: dict[str, Any], endpoint: str, prompt_tokens: int) -> Shape:
    """The request's Shape, or a 400 naming the parameter that cannot be honoured."""
    if endpoint == "embeddings":
        return Shape(max_tokens=0)
    max_tokens = _max_tokens(body)
    n = _count(body, "n", MAX_N)
    if endpoint == "chat":
        for name, reason in REFUSED.items():
            if body.get(name) is not None:
                raise _bad(name, f"'{name}' is not supported by this gateway: {reason}")
        modalities = body.get("modalities")
        if modalities is not None and (
            not isinstance(modalities, list) or set(modalities) not in TEXT_MODALITIES
        ):
            raise _bad("modalities", "only text output is supported: 'modalities' must be [\"text\"]")
        prediction = body.get("prediction")
        extra = text_tokens(str(prediction.get("content"))) if isinstance(prediction, dict) else 0
        return Shape(max_tokens, n, extra)
    best_of = _count(body, "best_of", MAX_BEST_OF) if body.get("best_of") is not None else n
    if best_of < n:
        raise _bad("best_of", "'best_of' must be greater than or equal to 'n'")
    prompts = _prompts(body.get("prompt"))
    echo = prompt_tokens // prompts if body.get("echo") is True else 0
    return Shape(max_tokens, best_of * prompts, echo)
