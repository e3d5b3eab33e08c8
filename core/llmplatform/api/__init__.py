"""The llmplatform.io/v1alpha1 API: pydantic types that are the single source of the CRDs.

Why pydantic: the same types validate manifests offline (render, gateway --manifests), give
the operator and rendering core typed access, and generate `crds/*.yaml` (see crdgen), so the
schema the API server enforces and the one Python enforces cannot drift apart.
"""

from llmplatform.api.common import API_VERSION, GROUP, VERSION, Condition, Limits, ObjectMeta, SecretKeyRef
from llmplatform.api.kinds import KINDS, KINDS_BY_NAME, KindInfo
from llmplatform.api.llmmodel import LLMModel, LLMModelSpec, LLMModelStatus
from llmplatform.api.routingpolicy import RoutingPolicy, RoutingPolicySpec, RoutingPolicyStatus
from llmplatform.api.tenantquota import TenantQuota, TenantQuotaSpec, TenantQuotaStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "KINDS",
    "KINDS_BY_NAME",
    "VERSION",
    "Condition",
    "KindInfo",
    "LLMModel",
    "LLMModelSpec",
    "LLMModelStatus",
    "Limits",
    "ObjectMeta",
    "RoutingPolicy",
    "RoutingPolicySpec",
    "RoutingPolicyStatus",
    "SecretKeyRef",
    "TenantQuota",
    "TenantQuotaSpec",
    "TenantQuotaStatus",
]
