"""Provider adapters: one module per upstream API, one registry keyed by `Provider`.

Adding a provider (see docs/gateway.md, "Adding a provider"): write `providers/<name>.py` with
a class that has the methods of `providers.base.Adapter`, add its value to `Provider` and its
instance to `ADAPTERS`, and allow the value in `LLMModel.spec.provider`. Nothing else in the
gateway names a provider: `compiled.py` gives every model its adapter at load time, and the
upstream code calls the adapter.
"""

from __future__ import annotations

from enum import StrEnum

from llmplatform.gateway.providers.anthropic import AnthropicAdapter
from llmplatform.gateway.providers.base import Adapter
from llmplatform.gateway.providers.openai import OpenAIAdapter


class Provider(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"


ADAPTERS: dict[str, Adapter] = {
    Provider.OPENAI: OpenAIAdapter(),
    Provider.ANTHROPIC: AnthropicAdapter(),
}
"""Provider -> its adapter. A model of any other provider is left out of routing rather than
sent requests it cannot parse."""


def adapter_for(provider: str) -> Adapter | None:
    return ADAPTERS.get(provider)
