"""The registry of the three kinds: names, short names, printer columns and their types.

Why a table: the CRD generator, the rendering core (which parses `kind` into a type) and the
tests all need the same facts about each kind; one table keeps them from disagreeing.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplatform.api.base import K8sModel
from llmplatform.api.common import GROUP
from llmplatform.api.llmmodel import LLMModel, LLMModelSpec, LLMModelStatus
from llmplatform.api.routingpolicy import RoutingPolicy, RoutingPolicySpec, RoutingPolicyStatus
from llmplatform.api.tenantquota import TenantQuota, TenantQuotaSpec, TenantQuotaStatus
from llmplatform.contract.names import (
    KIND_MODEL,
    KIND_POLICY,
    KIND_QUOTA,
    PLURAL_MODEL,
    PLURAL_POLICY,
    PLURAL_QUOTA,
)

CATEGORY = "llmplatform"


@dataclass(frozen=True)
class PrinterColumn:
    """One `additionalPrinterColumns` entry (a column of `kubectl get`)."""

    name: str
    type: str
    json_path: str
    description: str
    priority: int = 0
    format: str | None = None


def _condition(type_: str, description: str) -> PrinterColumn:
    return PrinterColumn(type_, "string", f'.status.conditions[?(@.type=="{type_}")].status', description)


AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp", "Time since the resource was created.")


@dataclass(frozen=True)
class KindInfo:
    """Everything the generator needs to write one CRD."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    resource: type[K8sModel]
    spec: type[K8sModel]
    status: type[K8sModel]
    printer_columns: tuple[PrinterColumn, ...]

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def file_name(self) -> str:
        return f"{GROUP}_{self.plural}.yaml"


KINDS: tuple[KindInfo, ...] = (
    KindInfo(
        kind=KIND_MODEL,
        plural=PLURAL_MODEL,
        short_names=("llmm",),
        resource=LLMModel,
        spec=LLMModelSpec,
        status=LLMModelStatus,
        printer_columns=(
            PrinterColumn("Tier", "string", ".spec.tier", "Service tier."),
            PrinterColumn("Provider", "string", ".spec.provider", "Upstream API flavour."),
            _condition("Ready", "Whether the gateway can route to the model."),
            PrinterColumn("Endpoint", "string", ".status.endpoint", "Resolved URL the gateway calls."),
            AGE,
        ),
    ),
    KindInfo(
        kind=KIND_POLICY,
        plural=PLURAL_POLICY,
        short_names=("llmrp",),
        resource=RoutingPolicy,
        spec=RoutingPolicySpec,
        status=RoutingPolicyStatus,
        printer_columns=(
            PrinterColumn("Default", "boolean", ".spec.default", "Applies to quotas that name no policy."),
            PrinterColumn("Default Tier", "string", ".spec.defaultTier", "Tier used for model auto."),
            _condition("Ready", "Whether every model the policy names exists and is usable."),
            AGE,
        ),
    ),
    KindInfo(
        kind=KIND_QUOTA,
        plural=PLURAL_QUOTA,
        short_names=("tq",),
        resource=TenantQuota,
        spec=TenantQuotaSpec,
        status=TenantQuotaStatus,
        printer_columns=(
            PrinterColumn("Organization", "string", ".spec.organization", "Organization of the tenant."),
            _condition("Approved", "Whether the request is within the policy's ceilings."),
            _condition("Ready", "Whether the tenant is in the gateway config with its keys."),
            AGE,
        ),
    ),
)

KINDS_BY_NAME: dict[str, KindInfo] = {k.kind: k for k in KINDS}
