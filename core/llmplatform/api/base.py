"""The base class every custom-resource type derives from, and the Kubernetes list markers.

Why a shared base: the pydantic types are the single source of the CRD schemas (crdgen turns
them into `crds/*.yaml`), so each type must carry what the API server enforces (camelCase
names, descriptions, CEL rules, list semantics) *and* enforce it when YAML is read without an
API server. Putting that in one base class means a type cannot opt out by accident.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from llmplatform.api.cel import CelRule, holds

LIST_TYPE = "x-kubernetes-list-type"
LIST_MAP_KEYS = "x-kubernetes-list-map-keys"
PRESERVE_UNKNOWN = "x-kubernetes-preserve-unknown-fields"
INT_OR_STRING = "x-kubernetes-int-or-string"
VALIDATIONS = "x-kubernetes-validations"


def list_map(*keys: str) -> dict[str, Any]:
    """Field extra for a list of objects that the API server treats as a map keyed by `keys`
    (so duplicate keys are rejected and server-side apply merges by key)."""
    return {LIST_TYPE: "map", LIST_MAP_KEYS: list(keys)}


def list_set() -> dict[str, Any]:
    """Field extra for a list of scalars whose items must be unique."""
    return {LIST_TYPE: "set"}


def preserve_unknown() -> dict[str, Any]:
    """Field extra for an object passed through unvalidated (e.g. core/v1 resources)."""
    return {PRESERVE_UNKNOWN: True}


def _add_k8s_extensions(schema: dict[str, Any], cls: type[Any]) -> None:
    """pydantic hook: copy the class's CEL rules into its JSON schema."""
    rules: Sequence[CelRule] = getattr(cls, "cel_rules", ())
    if rules:
        schema[VALIDATIONS] = [r.to_schema() for r in rules]


class K8sModel(BaseModel):
    """Base for spec and status types: camelCase on the wire, unknown fields rejected,
    attribute docstrings become schema descriptions, and `cel_rules` are both written into
    the CRD and evaluated on every validation."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        use_attribute_docstrings=True,
        extra="forbid",
        frozen=True,
        json_schema_extra=_add_k8s_extensions,
    )

    cel_rules: ClassVar[tuple[CelRule, ...]] = ()

    def to_wire(self) -> dict[str, Any]:
        """The object as the API server would store it: camelCase, no null fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @model_validator(mode="after")
    def _enforce_k8s_rules(self) -> K8sModel:
        for name, field in type(self).model_fields.items():
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            value = getattr(self, name)
            if value is None or LIST_TYPE not in extra:
                continue
            alias = field.alias or name
            _check_list_uniqueness(alias, extra, value)
        rules = type(self).cel_rules
        if rules:
            wire = self.to_wire()
            for rule in rules:
                if not holds(rule, wire):
                    raise ValueError(rule.message)
        return self


def _check_list_uniqueness(alias: str, extra: dict[str, Any], value: Sequence[Any]) -> None:
    """Mirror the API server's list-type checks: `set` items and `map` keys must be unique."""
    seen: set[Any] = set()
    keys = extra.get(LIST_MAP_KEYS)
    for item in value:
        if isinstance(keys, list):
            wire = item.to_wire() if isinstance(item, K8sModel) else item
            key: Any = tuple(wire.get(k) for k in keys)
            shown = ", ".join(f"{k}={v!r}" for k, v in zip(keys, key, strict=True))
        else:
            key, shown = item, repr(item)
        if key in seen:
            raise ValueError(f"{alias}: duplicate entry {shown}")
        seen.add(key)


class LenientModel(K8sModel):
    """Base for status types: the operator writes them, and an older or newer operator may
    have written fields this version does not know, so unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")


def defaulted(model: type[K8sModel]) -> Any:
    """A field holding a nested object that exists even when omitted, with every default.

    The CRD default is the fully defaulted object rather than `{}`: the API server checks a
    schema default against the CEL rules as written, without applying nested defaults first.
    """
    return Field(default_factory=model, json_schema_extra={"default": model().to_wire()})
