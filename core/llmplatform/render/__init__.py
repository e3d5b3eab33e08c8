"""The rendering core: LLMModel / RoutingPolicy / TenantQuota (+ Secrets) in, Kubernetes objects,
the versioned gateway config and per-resource status verdicts out.

Why one package with no I/O (except the explicit manifest reader): the operator, `llmplatform
render` and `llmplatform gateway --manifests` all call `render`, so they cannot disagree, and
every rule is unit-testable without a cluster.
"""

from llmplatform.contract.config import (
    CONFIG_GZ_KEY,
    CONFIG_KEY,
    CONFIG_MAP_NAME,
    SCHEMA_VERSION,
    GatewayConfig,
    UnsupportedSchemaVersion,
    dump_config,
    load_config,
    read_config_file,
)
from llmplatform.contract.names import KEY_LABEL, QUOTA_LABEL
from llmplatform.render.conditions import merge_conditions, model_ready_condition
from llmplatform.render.core import (
    DEFAULT_PLATFORM_NAMESPACE,
    RenderResult,
    config_from_config_map,
    config_from_config_maps,
    config_map,
    render,
)
from llmplatform.render.gatewaycm import shard_config_map_name
from llmplatform.render.manifests import ManifestError, Manifests, load_manifests
from llmplatform.render.mounts import GatewayMounts, missing_deployment, mounts_from_deployment
from llmplatform.render.quotas import generated_secret_name
from llmplatform.render.secrets import GeneratedKey, hash_api_key
from llmplatform.render.verdicts import (
    ApiKeySecretVerdict,
    ConditionVerdict,
    ModelVerdict,
    PolicyVerdict,
    QuotaVerdict,
)
from llmplatform.render.workloads import child_labels, child_name, service_url
from llmplatform.render.yamlout import dump_objects

__all__ = [
    "CONFIG_GZ_KEY",
    "CONFIG_KEY",
    "CONFIG_MAP_NAME",
    "DEFAULT_PLATFORM_NAMESPACE",
    "KEY_LABEL",
    "QUOTA_LABEL",
    "SCHEMA_VERSION",
    "ApiKeySecretVerdict",
    "ConditionVerdict",
    "GatewayConfig",
    "GatewayMounts",
    "GeneratedKey",
    "ManifestError",
    "Manifests",
    "ModelVerdict",
    "PolicyVerdict",
    "QuotaVerdict",
    "RenderResult",
    "UnsupportedSchemaVersion",
    "child_labels",
    "child_name",
    "config_from_config_map",
    "config_from_config_maps",
    "config_map",
    "dump_config",
    "dump_objects",
    "generated_secret_name",
    "hash_api_key",
    "load_config",
    "load_manifests",
    "merge_conditions",
    "missing_deployment",
    "model_ready_condition",
    "mounts_from_deployment",
    "read_config_file",
    "render",
    "service_url",
    "shard_config_map_name",
]
