"""Names shared by the resource types, the rendering core, the operator and the gateway.

Why one place: a kind, plural, label or tier spelled differently in two components is a bug
that no type checker sees (the operator would watch or prune objects the core never labelled).
"""

from __future__ import annotations

from typing import Literal

GROUP = "llmplatform.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
API_PATH = f"/apis/{API_VERSION}"

KIND_MODEL = "LLMModel"
KIND_POLICY = "RoutingPolicy"
KIND_QUOTA = "TenantQuota"
PLURAL_MODEL = "llmmodels"
PLURAL_POLICY = "routingpolicies"
PLURAL_QUOTA = "tenantquotas"
PLURALS: dict[str, str] = {KIND_MODEL: PLURAL_MODEL, KIND_POLICY: PLURAL_POLICY, KIND_QUOTA: PLURAL_QUOTA}
"""Kind -> plural of the three llmplatform.io kinds."""

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "llmplatform"
MANAGED_BY: dict[str, str] = {MANAGED_BY_LABEL: MANAGED_BY_VALUE}
"""The label on every object the platform creates (the operator prunes only these)."""
MODEL_LABEL = f"{GROUP}/model"
QUOTA_LABEL = f"{GROUP}/tenantquota"
KEY_LABEL = f"{GROUP}/api-key"
CONFIG_HASH_ANNOTATION = f"{GROUP}/config-hash"
CONFIG_SHARD_LABEL = f"{GROUP}/config-shard"
"""On each shard ConfigMap of a sharded gateway config: the shard's name (`shared`, `t000`, ...)."""

Tier = Literal["premium", "standard", "efficient", "specialized"]
TIERS: tuple[Tier, ...] = ("premium", "standard", "efficient", "specialized")
DataClassification = Literal["public", "internal", "confidential", "restricted"]
CLASSIFICATIONS: tuple[DataClassification, ...] = ("public", "internal", "confidential", "restricted")
"""Lowest to highest: a class's rank is its index."""

GATEWAY_SECRETS_DIR = "/var/run/llmplatform/secrets"
"""Where the gateway reads each model's `apiKeySecretRef`: `<dir>/<namespace>/<name>/<key>`
(its `--secrets-dir` default; the chart mounts `gateway.providerSecrets` there, and the
operator reads the gateway Deployment's mounts against the same layout)."""
PROVIDER_SECRETS_VALUE = "gateway.providerSecrets"
"""The chart value that mounts provider Secrets into the gateway, named by the operator's
CredentialsNotMounted condition and by the gateway when a credential cannot be read."""
Framework = Literal["gdpr", "hipaa", "sox", "pci_dss", "soc2"]
FRAMEWORKS: tuple[Framework, ...] = ("gdpr", "hipaa", "sox", "pci_dss", "soc2")
RETENTION_DAYS: dict[str, int] = {
    "gdpr": 90,
    "hipaa": 2557,
    "sox": 2557,
    "pci_dss": 365,
    "soc2": 365,
}
"""How long audit records (and nothing else: the gateway keeps no content) of a tenant under
each framework are kept by default, overridable in a RoutingPolicy's `retention`. Reasons
(docs/security.md, "Retention"): gdpr: storage limitation (Art. 5(1)(e)) asks for the shortest
period that serves the purpose, 90 days covers a quarter's incident review; hipaa: 45 CFR
164.316(b)(2) keeps documentation 6 years, plus a year of margin (7 x 365 + 2 leap days);
sox: auditors' records 7 years (17 CFR 210.2-06); pci_dss: Requirement 10.5.1, audit log
history at least 12 months; soc2: one Type II observation period, 12 months."""
DEFAULT_RETENTION_DAYS = 90
"""Retention of a tenant under no framework, and of records that belong to no tenant (process
start and close, refused unauthenticated requests): the gdpr period, so that declaring gdpr
never shortens a tenant's trail."""
REGULATED_TRANSIT_FRAMEWORKS: frozenset[str] = frozenset({"hipaa", "pci_dss"})
"""Frameworks whose tenants' requests must reach a model over TLS (or over plain HTTP inside
the cluster to a self-hosted model the policy allows, behind its NetworkPolicy)."""
