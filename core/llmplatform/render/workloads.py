"""The Kubernetes objects the operator creates for a self-hosted (`serving`) LLMModel.

Why these choices:
- Children are named `llmm-<model>` in the model's namespace, so they never collide with a
  user's own objects and `kubectl get deploy` shows where they come from.
- Labels are explicit and fixed, never copied from the parent: a copied Argo CD tracking label
  would make Argo CD prune the children as strays of the parent's app.
- With an HPA, the Deployment leaves `replicas` unset so re-applying it never fights the HPA.
- The NetworkPolicy admits only gateway pods: the gateway is where keys, quotas, audit and
  data governance are enforced, so nothing may reach a model server around it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from llmplatform.api.common import API_VERSION
from llmplatform.api.llmmodel import LLMModel, Serving
from llmplatform.contract.names import MANAGED_BY_LABEL, MANAGED_BY_VALUE, MODEL_LABEL

CHILD_PREFIX = "llmm-"
GATEWAY_POD_NAME = "llmplatform-gateway"
MODEL_SERVER_NAME = "llmplatform-model-server"
CONTAINER_NAME = "model-server"


def child_name(model_name: str) -> str:
    """Name of a serving model's Deployment, Service, HPA and NetworkPolicy."""
    return f"{CHILD_PREFIX}{model_name}"


def child_labels(model_name: str) -> dict[str, str]:
    """The complete label set of every child and of the model-server pods."""
    return {
        "app.kubernetes.io/name": MODEL_SERVER_NAME,
        "app.kubernetes.io/instance": child_name(model_name),
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/part-of": "llmplatform",
        MANAGED_BY_LABEL: MANAGED_BY_VALUE,
        MODEL_LABEL: model_name,
    }


def selector_labels(model_name: str) -> dict[str, str]:
    """Pod selector: a stable subset of the labels (Deployment selectors are immutable)."""
    return {"app.kubernetes.io/instance": child_name(model_name), MODEL_LABEL: model_name}


def service_url(model_name: str, namespace: str, port: int) -> str:
    """The in-cluster base URL of a serving model's OpenAI API."""
    return f"http://{child_name(model_name)}.{namespace}.svc.cluster.local:{port}/v1"


def owner_reference(model: LLMModel) -> dict[str, Any] | None:
    """The controller reference to the LLMModel, or None when it has no uid (offline render)."""
    if not model.metadata.uid:
        return None
    return {
        "apiVersion": API_VERSION,
        "kind": "LLMModel",
        "name": model.metadata.name,
        "uid": model.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(model: LLMModel, namespace: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": child_name(model.metadata.name),
        "namespace": namespace,
        "labels": child_labels(model.metadata.name),
    }
    owner = owner_reference(model)
    if owner is not None:
        meta["ownerReferences"] = [owner]
    return meta


# What `--serving-overrides` (chart value operator.servingOverrides) may replace in every
# self-hosted model's server container or pod, with the JSON type each must have.
SERVING_OVERRIDE_FIELDS: dict[str, type] = {
    "image": str,
    "args": list,
    "resources": dict,
    "nodeSelector": dict,
    "tolerations": list,
}


def parse_serving_overrides(text: str) -> dict[str, Any]:
    """Parse and check `--serving-overrides`: a JSON object with some of SERVING_OVERRIDE_FIELDS.

    Why it exists: a cluster that cannot run the models' real servers (no GPUs, a test or CI
    cluster, a laptop) can still run the platform end to end by serving every self-hosted model
    with another image (e.g. `llmplatform mock-upstream`) and other resources, without editing
    the LLMModels. Raises ValueError naming the bad field.
    """
    import json

    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"--serving-overrides is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("--serving-overrides must be a JSON object")
    for key, value in data.items():
        want = SERVING_OVERRIDE_FIELDS.get(key)
        if want is None:
            raise ValueError(
                f"--serving-overrides: unknown field {key!r} (allowed: {', '.join(SERVING_OVERRIDE_FIELDS)})"
            )
        if not isinstance(value, want) or (key == "image" and not value):
            raise ValueError(
                f"--serving-overrides: {key} must be a {'non-empty ' if key == 'image' else ''}"
                f"JSON {want.__name__.replace('str', 'string').replace('dict', 'object')}"
            )
        if isinstance(value, list) and key == "args" and not all(isinstance(a, str) for a in value):
            raise ValueError("--serving-overrides: args must be a list of strings")
    return data


def has_hpa(serving: Serving) -> bool:
    return serving.replicas.max > serving.replicas.min


def deployment(
    model: LLMModel, serving: Serving, namespace: str, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    name = model.metadata.name
    probe: dict[str, Any] = (
        {"httpGet": {"path": serving.readiness_path, "port": "http"}}
        if serving.readiness_path
        else {"tcpSocket": {"port": "http"}}
    )
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": serving.image,
        "ports": [{"name": "http", "containerPort": serving.port, "protocol": "TCP"}],
        "readinessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 3},
    }
    if serving.args:
        container["args"] = list(serving.args)
    if serving.env:
        container["env"] = [e.to_wire() for e in serving.env]
    if serving.resources:
        container["resources"] = copy.deepcopy(serving.resources)
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "containers": [container],
    }
    if serving.node_selector:
        pod_spec["nodeSelector"] = dict(serving.node_selector)
    if serving.tolerations:
        pod_spec["tolerations"] = copy.deepcopy(serving.tolerations)
    _apply_overrides(container, pod_spec, overrides or {})
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(name)},
        "template": {"metadata": {"labels": child_labels(name)}, "spec": pod_spec},
    }
    if not has_hpa(serving):
        spec["replicas"] = serving.replicas.min
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(model, namespace),
        "spec": spec,
    }


def _apply_overrides(
    container: dict[str, Any], pod_spec: dict[str, Any], overrides: Mapping[str, Any]
) -> None:
    """Replace (an empty value: remove) the overridden fields; see parse_serving_overrides."""
    for key, value in overrides.items():
        target = container if key in ("image", "args", "resources") else pod_spec
        if value:
            target[key] = copy.deepcopy(value)
        else:
            target.pop(key, None)


def service(model: LLMModel, serving: Serving, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(model, namespace),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(model.metadata.name),
            "ports": [{"name": "http", "port": serving.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def hpa(model: LLMModel, serving: Serving, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(model, namespace),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": child_name(model.metadata.name),
            },
            "minReplicas": serving.replicas.min,
            "maxReplicas": serving.replicas.max,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": serving.autoscaling.target_cpu_utilization_percentage,
                        },
                    },
                }
            ],
        },
    }


def network_policy(
    model: LLMModel, serving: Serving, namespace: str, platform_namespace: str
) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(model, namespace),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(model.metadata.name)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": platform_namespace}
                            },
                            "podSelector": {"matchLabels": {"app.kubernetes.io/name": GATEWAY_POD_NAME}},
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": serving.port}],
                }
            ],
        },
    }


def serving_children(
    model: LLMModel, namespace: str, platform_namespace: str, overrides: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Deployment, Service, HPA (only when replicas.max > min) and NetworkPolicy, in that order."""
    serving = model.spec.serving
    if serving is None:
        return []
    children = [deployment(model, serving, namespace, overrides), service(model, serving, namespace)]
    if has_hpa(serving):
        children.append(hpa(model, serving, namespace))
    children.append(network_policy(model, serving, namespace, platform_namespace))
    return children
