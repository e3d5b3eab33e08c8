"""Which upstream credentials the gateway pods can read, taken from the gateway's Deployment.

Why from the Deployment itself (not from a list handed to the operator): the gateway reads a
model's `apiKeySecretRef` from `<secrets-dir>/<namespace>/<name>/<key>` (contract
`GATEWAY_SECRETS_DIR`), and what is there is decided by one object only, the gateway
Deployment's pod template, which the kubelet turns into mounts. The chart renders
`gateway.providerSecrets` into that template; a copy of the same list passed to the operator
(a flag, a ConfigMap) would be a second statement of the truth, and a `kubectl patch`, a
kustomize overlay or a second release would make the two disagree without anyone noticing.
Reading the template the pods are made from cannot drift: a model is Ready only when the
Secret it names is mounted where the gateway looks for it.

Pure, like the rest of the core: the operator passes the Deployment body (from its index) and
gets `GatewayMounts`; the render then asks `problem(namespace, name, key)` per model.

What counts as mounted, in the gateway container (the one named `gateway`, else the first):
a `secret` volume, or a `projected` volume's `secret` source, of Secret S mounted at
`<secrets-dir>/<the Deployment's namespace>/S` (every key, or the keys its `items` keep under
their own name), or one key mounted by `subPath` at `<secrets-dir>/<namespace>/S/<key>`. The
secrets dir is the container's `--secrets-dir` argument, else the contract's default. A pod
mounts only Secrets of its own namespace, so a Secret elsewhere is never mounted.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmplatform.contract.names import GATEWAY_SECRETS_DIR
from llmplatform.contract.names import PROVIDER_SECRETS_VALUE as CHART_VALUE

GATEWAY_CONTAINER = "gateway"

Readable = tuple[str, str, str | None]
"""(namespace, Secret name, key), None for the key: every key of the Secret."""


@dataclass(frozen=True)
class GatewayMounts:
    """The credentials a gateway Deployment's pods can read (see the module docstring)."""

    deployment: str
    """`namespace/name` of the gateway Deployment, for messages."""
    namespace: str
    found: bool
    readable: frozenset[Readable] = frozenset()
    secrets_dir: str = GATEWAY_SECRETS_DIR

    def problem(self, namespace: str, name: str, key: str) -> str | None:
        """Why the gateway cannot read key `key` of Secret `namespace/name`, or None if it can."""
        secret = f"Secret {namespace}/{name}"
        where = f"the gateway (Deployment {self.deployment})"
        if not self.found:
            return f"{where} does not exist, so it cannot read {secret}"
        if namespace != self.namespace:
            return (
                f"{where} cannot mount {secret}: a pod mounts only Secrets of its own namespace "
                f"({self.namespace}); keep the model's Secret in {self.namespace}"
            )
        if (namespace, name, None) in self.readable or (namespace, name, key) in self.readable:
            return None
        if any(r[:2] == (namespace, name) for r in self.readable):
            return f"{where} mounts {secret} without its key {key!r} (the volume's items leave it out)"
        return (
            f"{where} does not mount {secret} (key {key!r}): add {name} to the chart value "
            f"{CHART_VALUE} (helm upgrade ... --set '{CHART_VALUE}={{{name}}}')"
        )


def missing_deployment(namespace: str, name: str) -> GatewayMounts:
    return GatewayMounts(deployment=f"{namespace}/{name}", namespace=namespace, found=False)


def mounts_from_deployment(body: Mapping[str, Any]) -> GatewayMounts:
    """The credentials the pods of this gateway Deployment can read."""
    meta = body.get("metadata") or {}
    namespace = str(meta.get("namespace") or "default")
    name = str(meta.get("name", ""))
    pod = ((body.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers: Sequence[Mapping[str, Any]] = pod.get("containers") or []
    container = next((c for c in containers if c.get("name") == GATEWAY_CONTAINER), None)
    if container is None and containers:
        container = containers[0]
    if container is None:
        return GatewayMounts(deployment=f"{namespace}/{name}", namespace=namespace, found=True)
    secrets_dir = _secrets_dir(container.get("args") or [])
    volumes = {str(v.get("name")): v for v in pod.get("volumes") or []}
    readable: set[Readable] = set()
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(str(mount.get("name")))
        if volume is None:
            continue
        path = posixpath.normpath(str(mount.get("mountPath", "")))
        rel = posixpath.relpath(path, secrets_dir) if path.startswith(secrets_dir + "/") else ""
        parts = rel.split("/") if rel else []
        sub_path = str(mount.get("subPath") or "")
        if len(parts) == 2 and parts[0] == namespace and not sub_path:
            readable |= _secret_keys(volume, namespace, parts[1])
        elif len(parts) == 3 and parts[0] == namespace and sub_path == parts[2]:
            # one key as a file: the volume's file `<key>` is mounted at .../<secret>/<key>
            keys = _secret_keys(volume, namespace, parts[1])
            if (namespace, parts[1], None) in keys or (namespace, parts[1], parts[2]) in keys:
                readable.add((namespace, parts[1], parts[2]))
    return GatewayMounts(
        deployment=f"{namespace}/{name}",
        namespace=namespace,
        found=True,
        readable=frozenset(readable),
        secrets_dir=secrets_dir,
    )


def _secrets_dir(args: Sequence[Any]) -> str:
    """The gateway's `--secrets-dir` (either `--secrets-dir=X` or `--secrets-dir X`)."""
    for i, arg in enumerate(args):
        text = str(arg)
        if text.startswith("--secrets-dir="):
            return posixpath.normpath(text.split("=", 1)[1])
        if text == "--secrets-dir" and i + 1 < len(args):
            return posixpath.normpath(str(args[i + 1]))
    return GATEWAY_SECRETS_DIR


def _secret_keys(volume: Mapping[str, Any], namespace: str, secret: str) -> set[Readable]:
    """What a volume mounted at `<dir>/<namespace>/<secret>` lets the gateway read: Secret
    `secret`'s keys, if the volume is (or projects) that Secret."""
    sources: list[Mapping[str, Any]] = []
    if isinstance(volume.get("secret"), Mapping):
        src = volume["secret"]
        sources.append({"name": src.get("secretName"), "items": src.get("items")})
    if isinstance(volume.get("projected"), Mapping):
        for source in volume["projected"].get("sources") or []:
            if isinstance(source, Mapping) and isinstance(source.get("secret"), Mapping):
                sources.append(source["secret"])
    out: set[Readable] = set()
    for src in sources:
        if src.get("name") != secret:
            continue
        items = src.get("items")
        if not items:
            out.add((namespace, secret, None))
            continue
        out |= {
            (namespace, secret, str(item["key"]))
            for item in items
            if isinstance(item, Mapping) and item.get("key") and item.get("path") == item.get("key")
        }
    return out
