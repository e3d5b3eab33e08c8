"""The operator's few API writes, in one place, each counted.

Why a wrapper: every write the operator makes goes through here, so "no writes when nothing
changed" is a number (the `llmplatform_operator_writes_total` metric and `Kube.writes`) that
tests and the benchmark read, and the field manager and apply semantics are set once.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import Counter

from llmplatform.contract.names import API_PATH, PLURALS

log = logging.getLogger("llmplatform.operator.writes")

FIELD_MANAGER = "llmplatform-operator"
REQUEST_TIMEOUT = 30.0

WRITES = Counter(
    "llmplatform_operator_writes",
    "API writes made by the operator, by verb and kind (lease renewals not included)",
    ["verb", "kind"],
)

# kind -> (API path prefix, plural). Only the kinds the rendering core produces or the
# operator writes; anything else is a programming error.
_PATHS: dict[str, tuple[str, str]] = {
    "Deployment": ("/apis/apps/v1", "deployments"),
    "Service": ("/api/v1", "services"),
    "HorizontalPodAutoscaler": ("/apis/autoscaling/v2", "horizontalpodautoscalers"),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Secret": ("/api/v1", "secrets"),
    **{kind: (API_PATH, plural) for kind, plural in PLURALS.items()},
    "Event": ("/api/v1", "events"),
}


class Kube:
    """Thread-safe: the reconcile pass issues writes from a small thread pool."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self._lock = threading.Lock()
        self.writes: collections.Counter[tuple[str, str]] = collections.Counter()

    def _count(self, verb: str, kind: str, namespace: str = "", name: str = "") -> None:
        log.debug("%s %s %s/%s", verb, kind, namespace, name)
        with self._lock:
            self.writes[(verb, kind)] += 1
        WRITES.labels(verb, kind).inc()

    def total_writes(self) -> int:
        with self._lock:
            return sum(self.writes.values())

    def _path(self, kind: str, namespace: str, name: str | None = None, sub: str | None = None) -> str:
        prefix, plural = _PATHS[kind]
        path = f"{prefix}/namespaces/{namespace}/{plural}"
        if name is not None:
            path += f"/{name}"
        if sub is not None:
            path += f"/{sub}"
        return path

    def _call(
        self, method: str, path: str, body: Any, content_type: str, query: list[tuple[str, str]] | None = None
    ) -> Any:
        """One request through the client's own connection pool, TLS and auth settings; the
        JSON answer as plain dicts (no model classes: the rendered objects are dicts too)."""
        request = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*request, _request_timeout=REQUEST_TIMEOUT)
        data = response.read()
        if response.status >= 400:
            raise ApiException(http_resp=response)
        return json.loads(data) if data else None

    def apply(self, obj: dict[str, Any]) -> Any:
        """Server-side apply under FIELD_MANAGER, forcing conflicts: the operator is the owner
        of every field it renders, so a hand edit of one of them is reverted (drift repair)."""
        meta = obj["metadata"]
        self._count("apply", obj["kind"], meta["namespace"], meta["name"])
        return self._call(
            "PATCH",
            self._path(obj["kind"], meta["namespace"], meta["name"]),
            obj,
            "application/apply-patch+yaml",
            [("fieldManager", FIELD_MANAGER), ("force", "true")],
        )

    def patch_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> Any:
        """A merge patch of the status subresource: the spec is never written."""
        self._count("patch-status", kind, namespace, name)
        return self._call(
            "PATCH",
            self._path(kind, namespace, name, "status"),
            {"status": status},
            "application/merge-patch+json",
            [("fieldManager", FIELD_MANAGER)],
        )

    def create(self, obj: dict[str, Any]) -> Any | None:
        """Create; None when it already exists (a cache that has not caught up yet)."""
        meta = obj["metadata"]
        self._count("create", obj["kind"], meta["namespace"], meta.get("name", ""))
        try:
            return self._call(
                "POST",
                self._path(obj["kind"], meta["namespace"]),
                obj,
                "application/json",
                [("fieldManager", FIELD_MANAGER)],
            )
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise

    def delete(self, kind: str, namespace: str, name: str, uid: str | None = None) -> None:
        """Delete, guarded by uid when given so a same-named successor is never removed."""
        self._count("delete", kind, namespace, name)
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self._call("DELETE", self._path(kind, namespace, name), body, "application/json")
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    def get(self, kind: str, namespace: str, name: str) -> Any | None:
        try:
            return self._call("GET", self._path(kind, namespace, name), None, "application/json")
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
