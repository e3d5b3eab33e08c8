"""The seam between `render` and the per-object rules: one call per model, policy, quota and
serving model's children, each given exactly the inputs its rule reads, and one to seal and
serialize the assembled config.

Why a seam: `render` is the reference, and it resolves every object on every call. The
incremental renderer (incremental.py) passes a `Resolver` that remembers each object's outcome
together with what that outcome read, and reuses it while neither changed. Everything around
these calls (the default policy, provider credentials, shared keys, assembling and sealing the
config) is the same code for both, so the two can only differ in whether an outcome was
recomputed, never in how it is combined.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any

from llmplatform.api.llmmodel import LLMModel
from llmplatform.api.routingpolicy import RoutingPolicy
from llmplatform.api.tenantquota import TenantQuota
from llmplatform.contract import config as gc
from llmplatform.render.inputs import Parsed
from llmplatform.render.models import ModelOutcome, resolve_model
from llmplatform.render.mounts import GatewayMounts
from llmplatform.render.policies import PolicyOutcome, resolve_policy
from llmplatform.render.quotas import PreviousConfig, ProviderCredentials, QuotaOutcome, resolve_quota
from llmplatform.render.secrets import SecretStore
from llmplatform.render.workloads import serving_children


@dataclass(frozen=True)
class QuotaInputs:
    """What every quota's rule may read (each quota reads only the entries it leads to)."""

    policies: Mapping[str, Parsed[RoutingPolicy]]
    default_id: str | None
    secrets: SecretStore
    platform_namespace: str
    invalid_policies: Container[str]
    providers: ProviderCredentials
    previous: PreviousConfig | None
    usable_models: Container[str]


class Resolver:
    """Resolve each object from scratch: what `render` does by default."""

    def model(
        self, parsed: Parsed[LLMModel], secrets: SecretStore, mounts: GatewayMounts | None
    ) -> ModelOutcome:
        return resolve_model(parsed, secrets, mounts)

    def policy(
        self,
        parsed: Parsed[RoutingPolicy],
        models: Mapping[str, Parsed[LLMModel]],
        known_models: Container[str],
        usable_models: Container[str],
        default_id: str | None,
    ) -> PolicyOutcome:
        return resolve_policy(parsed, models, known_models, usable_models, default_id)

    def quota(self, parsed: Parsed[TenantQuota], given: QuotaInputs) -> QuotaOutcome:
        return resolve_quota(
            parsed,
            given.policies,
            given.default_id,
            given.secrets,
            given.platform_namespace,
            given.invalid_policies,
            providers=given.providers,
            previous=given.previous,
            usable_models=given.usable_models,
        )

    def children(
        self, parsed: Parsed[LLMModel], platform_namespace: str, overrides: Mapping[str, Any] | None
    ) -> list[dict[str, Any]]:
        """A serving model's Deployment, Service, HPA and NetworkPolicy (none for an endpoint
        model). Callers must not mutate them: an incremental resolver hands out the same dicts
        again."""
        return serving_children(parsed.resource, parsed.namespace, platform_namespace, overrides)

    def seal_and_dump(self, config: gc.GatewayConfig) -> tuple[gc.GatewayConfig, str]:
        """The config with its contentHash, and its `config.json` text."""
        sealed = gc.seal(config)
        return sealed, gc.dump_config(sealed)
