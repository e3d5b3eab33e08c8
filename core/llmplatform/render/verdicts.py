"""What the operator writes to each resource's status, as computed by the rendering core.

Why verdicts are data: the operator's handlers stay short (read, render, patch), and the rules
behind every condition (missing models, ceilings, default-policy conflicts, pending keys) are
pure functions that unit tests cover without a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ConditionStatus = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class ConditionVerdict:
    """A condition without the bookkeeping (lastTransitionTime, observedGeneration) that only
    the operator can add; see `conditions.merge_conditions`."""

    type: str
    status: ConditionStatus
    reason: str
    message: str


@dataclass(frozen=True)
class ModelVerdict:
    """Status of one LLMModel.

    `ready` is what the manifests alone decide. For a serving model it is Unknown
    (DeploymentPending): the operator combines it with its Deployment's available replicas
    through `conditions.model_ready_condition`.
    """

    namespace: str
    name: str
    serving: bool
    endpoint: str | None
    in_config: bool
    ready: ConditionVerdict
    problems: tuple[str, ...] = ()

    @property
    def conditions(self) -> tuple[ConditionVerdict, ...]:
        return (self.ready,)

    def status_fields(self) -> dict[str, Any]:
        """Kind-specific status fields (besides conditions and observedGeneration)."""
        return {"endpoint": self.endpoint} if self.endpoint is not None else {}


@dataclass(frozen=True)
class PolicyVerdict:
    """Status of one RoutingPolicy. `is_default` is true only for the policy that won the
    default (oldest creationTimestamp, then namespace/name)."""

    namespace: str
    name: str
    is_default: bool
    in_config: bool
    ready: ConditionVerdict
    missing_models: tuple[str, ...] = ()
    unusable_models: tuple[str, ...] = ()

    @property
    def conditions(self) -> tuple[ConditionVerdict, ...]:
        return (self.ready,)

    def status_fields(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class ApiKeySecretVerdict:
    """Where one API key of a quota lives and whether it can be read yet.

    `generated` keys are the operator's to create (a random key in Secret `secret_name`, data
    key `secret_key`, owned by the TenantQuota); `present` is false until that Secret exists.
    """

    name: str
    secret_namespace: str
    secret_name: str
    secret_key: str
    generated: bool
    present: bool

    def status_entry(self) -> dict[str, str]:
        return {"name": self.name, "secretName": self.secret_name, "key": self.secret_key}


@dataclass(frozen=True)
class QuotaVerdict:
    """Status of one TenantQuota.

    `granted` is the grant on record (wire form, camelCase): the requested limits filled up
    to the ceilings when approved, else the previous status.granted, else None. The operator
    writes status.granted only when it is not None, so an earlier grant is never erased by a
    rejected request. `in_config` says whether the gateway enforces it (it needs a policy).
    """

    namespace: str
    name: str
    policy: str | None
    approved: ConditionVerdict
    ready: ConditionVerdict
    granted: dict[str, Any] | None
    in_config: bool
    api_key_secrets: tuple[ApiKeySecretVerdict, ...] = field(default=())

    @property
    def conditions(self) -> tuple[ConditionVerdict, ...]:
        return (self.approved, self.ready)

    @property
    def pending_keys(self) -> tuple[str, ...]:
        """Names of keys whose Secret (or data key) does not exist yet."""
        return tuple(k.name for k in self.api_key_secrets if not k.present)

    def status_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"apiKeySecrets": [k.status_entry() for k in self.api_key_secrets]}
        if self.granted is not None:
            out["granted"] = self.granted
        return out
