"""`render`: resources and Secrets in; Kubernetes objects, gateway config and verdicts out.

Why one pure function: the operator, `llmplatform render` and `llmplatform gateway
--manifests` all call it, so they cannot disagree about what a set of manifests means. It does
no I/O and depends only on its input *as a set*: the same resources in any order give
byte-identical objects and config, which is what makes a level-based reconcile (render,
compare, apply) idempotent.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from llmplatform.contract import config as gc
from llmplatform.contract import shards as gs
from llmplatform.render.gatewaycm import config_from_config_map as config_from_config_map
from llmplatform.render.gatewaycm import config_from_config_maps as config_from_config_maps
from llmplatform.render.gatewaycm import config_map as config_map
from llmplatform.render.gatewaycm import gateway_config_maps
from llmplatform.render.inputs import parse_resources
from llmplatform.render.models import invalid_model
from llmplatform.render.mounts import GatewayMounts
from llmplatform.render.policies import default_policy, invalid_policy
from llmplatform.render.quotas import PreviousConfig, QuotaOutcome, invalid_quota, provider_credentials
from llmplatform.render.resolver import QuotaInputs, Resolver
from llmplatform.render.secrets import GeneratedKey, SecretStore
from llmplatform.render.verdicts import ConditionVerdict, ModelVerdict, PolicyVerdict, QuotaVerdict

DEFAULT_PLATFORM_NAMESPACE = "llm-platform"


@dataclass(frozen=True)
class RenderResult:
    """Everything the operator applies and writes.

    `objects` holds, per serving model (ordered by namespace/name), its Deployment, Service,
    HPA (when replicas.max > min) and NetworkPolicy, then the gateway config's ConfigMaps: the
    single one, or the shard ConfigMaps followed by the index (always last; see gatewaycm.py).
    Verdicts are ordered by namespace/name. `generated_keys` are the key Secrets that should
    exist (the operator mints the missing ones), ordered by namespace/name.
    """

    objects: list[dict[str, Any]]
    gateway_config: gc.GatewayConfig
    config_json: str
    models: tuple[ModelVerdict, ...]
    policies: tuple[PolicyVerdict, ...]
    quotas: tuple[QuotaVerdict, ...]
    generated_keys: tuple[GeneratedKey, ...] = ()
    sharded: gs.ShardedConfig | None = None
    """The sharded form of the config, None when one ConfigMap holds it."""

    @property
    def config_map(self) -> dict[str, Any]:
        """The single gateway ConfigMap, or the index of a sharded config."""
        return self.objects[-1]

    @property
    def config_maps(self) -> list[dict[str, Any]]:
        """Every ConfigMap that carries the gateway config (shards first, the index last)."""
        count = 1 if self.sharded is None else len(self.sharded.shards) + 1
        return self.objects[-count:]

    def model(self, namespace: str, name: str) -> ModelVerdict | None:
        return next((v for v in self.models if (v.namespace, v.name) == (namespace, name)), None)

    def policy(self, namespace: str, name: str) -> PolicyVerdict | None:
        return next((v for v in self.policies if (v.namespace, v.name) == (namespace, name)), None)

    def quota(self, namespace: str, name: str) -> QuotaVerdict | None:
        return next((v for v in self.quotas if (v.namespace, v.name) == (namespace, name)), None)


def _drop_shared_keys(outcomes: list[QuotaOutcome]) -> list[QuotaOutcome]:
    """A key must identify one tenant and user. Keys whose hash appears more than once (the
    same Secret value used twice) are dropped everywhere, whichever came first, and the
    quotas that had them say so."""
    counts = Counter(k.sha256 for o in outcomes if o.tenant for k in o.tenant.keys)
    shared = {h for h, n in counts.items() if n > 1}
    if not shared:
        return outcomes
    result = []
    for outcome in outcomes:
        tenant = outcome.tenant
        dropped = [k.name for k in tenant.keys if k.sha256 in shared] if tenant else []
        if tenant is None or not dropped:
            result.append(outcome)
            continue
        tenant = tenant.model_copy(update={"keys": [k for k in tenant.keys if k.sha256 not in shared]})
        ready = ConditionVerdict(
            "Ready",
            "False",
            "DuplicateApiKey",
            f"API key(s) {', '.join(dropped)} share their value with another key and are disabled",
        )
        result.append(
            dataclasses.replace(
                outcome, verdict=dataclasses.replace(outcome.verdict, ready=ready), tenant=tenant
            )
        )
    return result


def render(
    resources: Iterable[Mapping[str, Any]],
    secrets: Iterable[Mapping[str, Any]],
    *,
    platform_namespace: str = DEFAULT_PLATFORM_NAMESPACE,
    previous: gc.GatewayConfig | None = None,
    serving_overrides: Mapping[str, Any] | None = None,
    gateway_mounts: GatewayMounts | None = None,
    shard_bytes: int = gs.DEFAULT_SHARD_BYTES,
    max_shards: int = gs.DEFAULT_MAX_SHARDS,
    resolver: Resolver | None = None,
) -> RenderResult:
    """Render LLMModel / RoutingPolicy / TenantQuota dicts plus the Secrets they name.

    `previous` is the gateway config in force (the operator passes its last ConfigMap): a
    tenant whose RoutingPolicy is lost keeps its earlier grant under the policy it had there.
    Without it (`llmplatform render`, `--manifests`) such a tenant is left out.

    `gateway_mounts` are the credentials the gateway's pods can read (the operator derives them
    from the gateway Deployment, see mounts.py): a model whose Secret is not among them is left
    out and not Ready. None (no Deployment to look at: `llmplatform render`, `--manifests`, a
    gateway run as a process) checks only that the Secret and its key exist.

    `shard_bytes` and `max_shards` decide when the config is split into shards and into how
    many (see llmplatform.contract.shards); the defaults are the operator's.

    Raises ValueError for input that is not a set (a resource or Secret given twice) or that
    holds another kind; invalid resources do not raise, they get an InvalidSpec verdict.

    `resolver` resolves each object (resolver.py); the default recomputes every one, which
    makes this the reference the incremental renderer (incremental.py) is tested against.
    """
    resolver = resolver or Resolver()
    inputs = parse_resources(resources)
    store = SecretStore(secrets)

    model_outcomes = [resolver.model(inputs.models[i], store, gateway_mounts) for i in sorted(inputs.models)]
    model_entries = [o.entry for o in model_outcomes if o.entry is not None]
    usable = frozenset(e.id for e in model_entries)
    model_verdicts = [o.verdict for o in model_outcomes]

    default_id = default_policy(inputs.policies)
    known_models = frozenset([*inputs.models, *(id_ for kind, id_ in inputs.invalid if kind == "LLMModel")])
    policy_outcomes = [
        resolver.policy(inputs.policies[i], inputs.models, known_models, usable, default_id)
        for i in sorted(inputs.policies)
    ]
    policy_verdicts = [o.verdict for o in policy_outcomes]

    given = QuotaInputs(
        policies=inputs.policies,
        default_id=default_id,
        secrets=store,
        platform_namespace=platform_namespace,
        invalid_policies=frozenset(id_ for kind, id_ in inputs.invalid if kind == "RoutingPolicy"),
        providers=provider_credentials(inputs.models, store),
        previous=PreviousConfig.of(previous),
        usable_models=usable,
    )
    quota_outcomes = _drop_shared_keys(
        [resolver.quota(inputs.quotas[i], given) for i in sorted(inputs.quotas)]
    )
    kept_policies = {o.kept_policy.id: o.kept_policy for o in quota_outcomes if o.kept_policy is not None}
    quota_verdicts = [o.verdict for o in quota_outcomes]

    for (kind, _), invalid in inputs.invalid.items():
        if kind == "LLMModel":
            model_verdicts.append(invalid_model(invalid))
        elif kind == "RoutingPolicy":
            policy_verdicts.append(invalid_policy(invalid))
        else:
            quota_verdicts.append(invalid_quota(invalid))

    config, text = resolver.seal_and_dump(
        gc.GatewayConfig(
            default_policy=default_id,
            models=model_entries,
            policies=sorted(
                [*(o.entry for o in policy_outcomes if o.entry is not None), *kept_policies.values()],
                key=lambda p: p.id,
            ),
            tenants=[o.tenant for o in quota_outcomes if o.tenant is not None],
        )
    )
    objects: list[dict[str, Any]] = []
    for model_id in sorted(inputs.models):
        parsed = inputs.models[model_id]
        objects.extend(resolver.children(parsed, platform_namespace, serving_overrides))
    config_maps, sharded = gateway_config_maps(config, text, platform_namespace, shard_bytes, max_shards)
    objects.extend(config_maps)

    def by_id(v: ModelVerdict | PolicyVerdict | QuotaVerdict) -> tuple[str, str]:
        return (v.namespace, v.name)

    return RenderResult(
        objects=objects,
        gateway_config=config,
        config_json=text,
        models=tuple(sorted(model_verdicts, key=by_id)),
        policies=tuple(sorted(policy_verdicts, key=by_id)),
        quotas=tuple(sorted(quota_verdicts, key=by_id)),
        generated_keys=tuple(k for o in quota_outcomes for k in o.generated),
        sharded=sharded,
    )
