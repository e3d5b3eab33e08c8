"""Turn resource dicts (as the API returns them, or as read from YAML) into typed objects.

Why a separate step: the rendering rules should only ever see valid, typed resources. A
resource that fails validation (possible offline, or for objects stored under an older CRD)
does not stop the render; it is recorded with its error so its status can say why, and it is
left out of everything else.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from llmplatform.api.base import K8sModel
from llmplatform.api.llmmodel import LLMModel
from llmplatform.api.routingpolicy import RoutingPolicy
from llmplatform.api.tenantquota import TenantQuota

R = TypeVar("R", bound=K8sModel)

KIND_TYPES: dict[str, type[K8sModel]] = {
    "LLMModel": LLMModel,
    "RoutingPolicy": RoutingPolicy,
    "TenantQuota": TenantQuota,
}

MAX_ERRORS_SHOWN = 5


@dataclass(frozen=True)
class Parsed(Generic[R]):
    """One resource: the typed object (status parsed leniently, dropped if malformed)."""

    namespace: str
    name: str
    resource: R

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Invalid:
    """A resource that failed validation, and why."""

    kind: str
    namespace: str
    name: str
    error: str

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class Inputs:
    """All resources, typed, keyed by id ("namespace/name") per kind."""

    models: dict[str, Parsed[LLMModel]] = field(default_factory=dict)
    policies: dict[str, Parsed[RoutingPolicy]] = field(default_factory=dict)
    quotas: dict[str, Parsed[TenantQuota]] = field(default_factory=dict)
    invalid: dict[tuple[str, str], Invalid] = field(default_factory=dict)

    def exists(self, kind: str, id_: str) -> bool:
        """Whether a resource of `kind` with `id_` was given, valid or not."""
        tables: dict[str, Mapping[str, Any]] = {
            "LLMModel": self.models,
            "RoutingPolicy": self.policies,
            "TenantQuota": self.quotas,
        }
        table = tables[kind]
        return id_ in table or (kind, id_) in self.invalid


def format_validation_error(error: ValidationError) -> str:
    """A one-line summary of pydantic errors, e.g. `spec.tier: Input should be ...`."""
    parts = []
    for item in error.errors()[:MAX_ERRORS_SHOWN]:
        loc = ".".join(str(p) for p in item["loc"])
        parts.append(f"{loc}: {item['msg']}" if loc else str(item["msg"]))
    if error.error_count() > MAX_ERRORS_SHOWN:
        parts.append(f"and {error.error_count() - MAX_ERRORS_SHOWN} more")
    return "; ".join(parts)


# Parsed resources by (kind, uid, resourceVersion). An object the API server returns is
# immutable for a given uid and resourceVersion, and the operator renders the same thousands
# of unchanged objects on every pass; validating them again (pydantic plus CEL rules) was a
# quarter of a pass at 2,300 objects. Manifests from files carry no resourceVersion and are
# never cached.
_PARSED: OrderedDict[tuple[str, str, str], K8sModel] = OrderedDict()
_PARSED_MAX = 50_000


def _parse_cached(kind: str, raw: Mapping[str, Any], namespace: str) -> K8sModel:
    meta = raw.get("metadata") or {}
    uid, rv = meta.get("uid"), meta.get("resourceVersion")
    if not uid or not rv:
        return _parse_one(kind, raw, namespace)
    key = (kind, str(uid), str(rv))
    parsed = _PARSED.get(key)
    if parsed is None:
        parsed = _parse_one(kind, raw, namespace)
        _PARSED[key] = parsed
        if len(_PARSED) > _PARSED_MAX:
            _PARSED.popitem(last=False)
    return parsed


def _parse_one(kind: str, raw: Mapping[str, Any], namespace: str) -> K8sModel:
    model_type = KIND_TYPES[kind]
    body = {k: v for k, v in raw.items() if k != "status"}
    body["metadata"] = {**(raw.get("metadata") or {}), "namespace": namespace}
    parsed = model_type.model_validate(body)
    status = raw.get("status")
    if isinstance(status, Mapping):
        # status is the operator's own output; a malformed one is simply ignored
        with contextlib.suppress(ValidationError):
            parsed = model_type.model_validate({**body, "status": status})
    return parsed


def parse_resources(resources: Iterable[Mapping[str, Any]]) -> Inputs:
    """Index and validate resources. Objects being deleted are skipped; a resource given twice
    (same kind, namespace and name) is an error, since either copy could be meant."""
    inputs = Inputs()
    seen: set[tuple[str, str, str]] = set()
    for raw in resources:
        kind = str(raw.get("kind", ""))
        if kind not in KIND_TYPES:
            raise ValueError(f"render takes LLMModel, RoutingPolicy and TenantQuota, not {kind!r}")
        meta = raw.get("metadata") or {}
        namespace = str(meta.get("namespace") or "default")
        name = str(meta.get("name", ""))
        if (kind, namespace, name) in seen:
            raise ValueError(f"{kind} {namespace}/{name} is given more than once")
        seen.add((kind, namespace, name))
        if meta.get("deletionTimestamp"):
            continue
        try:
            parsed = _parse_cached(kind, raw, namespace)
        except ValidationError as exc:
            inputs.invalid[(kind, f"{namespace}/{name}")] = Invalid(
                kind, namespace, name, format_validation_error(exc)
            )
            continue
        if isinstance(parsed, LLMModel):
            inputs.models[f"{namespace}/{name}"] = Parsed(namespace, name, parsed)
        elif isinstance(parsed, RoutingPolicy):
            inputs.policies[f"{namespace}/{name}"] = Parsed(namespace, name, parsed)
        elif isinstance(parsed, TenantQuota):
            inputs.quotas[f"{namespace}/{name}"] = Parsed(namespace, name, parsed)
    return inputs
