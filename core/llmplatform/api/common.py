"""Types shared by the three kinds: names, enums, secret references, limits, conditions.

Why here: TenantQuota limits and RoutingPolicy ceilings must be the *same* type (a ceiling is
compared field by field with a request), and every status carries the same condition shape, so
these live once and both the CRD generator and the rendering core import them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from llmplatform.api.base import K8sModel, LenientModel, list_map
from llmplatform.contract.names import API_VERSION as API_VERSION
from llmplatform.contract.names import CLASSIFICATIONS as CLASSIFICATIONS
from llmplatform.contract.names import GROUP as GROUP
from llmplatform.contract.names import TIERS as TIERS
from llmplatform.contract.names import VERSION as VERSION
from llmplatform.contract.names import DataClassification as DataClassification
from llmplatform.contract.names import Tier as Tier

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

DnsLabel = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
DnsSubdomain = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]
SecretKey = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=253)]


class SecretKeyRef(K8sModel):
    """A key in a Secret in the same namespace as the resource that names it."""

    name: DnsSubdomain
    """Name of the Secret."""
    key: SecretKey
    """Key inside the Secret's data whose value is used."""


class Limits(K8sModel):
    """Rate and budget limits. An absent field means no limit of its own (a TenantQuota is
    then bounded only by its policy's ceiling for that field)."""

    requests_per_minute: int | None = Field(None, ge=0)
    """Maximum requests in any one-minute window."""
    requests_per_hour: int | None = Field(None, ge=0)
    """Maximum requests in any one-hour window."""
    tokens_per_minute: int | None = Field(None, ge=0)
    """Maximum tokens (prompt plus completion) in any one-minute window."""
    tokens_per_day: int | None = Field(None, ge=0)
    """Maximum tokens (prompt plus completion) per UTC day."""
    cost_per_month_usd: float | None = Field(None, ge=0, alias="costPerMonthUSD")
    """Maximum spend in US dollars per calendar month (UTC), at the models' list prices."""


LIMIT_FIELDS: tuple[str, ...] = tuple(field.alias or name for name, field in Limits.model_fields.items())


class Condition(LenientModel):
    """One observation of the resource's state, in the shape of metav1.Condition."""

    type: Annotated[str, StringConstraints(min_length=1, max_length=316)]
    """Kind of condition, e.g. Ready or Approved."""
    status: Literal["True", "False", "Unknown"]
    """Whether the condition holds."""
    reason: Annotated[str, StringConstraints(max_length=1024)] | None = None
    """Machine-readable CamelCase reason for the last transition."""
    message: Annotated[str, StringConstraints(max_length=32768)] | None = None
    """Human-readable explanation."""
    last_transition_time: str | None = Field(None, json_schema_extra={"format": "date-time"})
    """When the status last changed (RFC 3339)."""
    observed_generation: int | None = Field(None, ge=0)
    """The metadata.generation the condition was computed from."""


def conditions_field() -> Any:
    """The `conditions` field of every status: a list keyed by condition type."""
    return Field(default=None, max_length=16, json_schema_extra=list_map("type"))


class ObjectMeta(BaseModel):
    """The parts of metadata the platform reads. Not part of the CRD schema (the API server
    owns metadata); unknown metadata fields such as managedFields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, validate_by_name=True, validate_by_alias=True)

    name: str
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = Field(None, alias="creationTimestamp")
    deletion_timestamp: str | None = Field(None, alias="deletionTimestamp")
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
