"""Children of serving models: what exists, who owns it, how it is labelled and isolated."""

from __future__ import annotations

from typing import Any

from llmplatform.render import child_labels, render
from render_factories import PLATFORM, endpoint_model, serving_model


def kinds(objects: list[dict[str, Any]]) -> list[str]:
    return [o["kind"] for o in objects]


def children(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] != "ConfigMap"]


def test_serving_model_gets_deployment_service_hpa_and_network_policy() -> None:
    result = render([serving_model("llama", replicas=(1, 3))], [])
    assert kinds(result.objects) == [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "ConfigMap",
    ]
    for obj in children(result.objects):
        assert obj["metadata"]["name"] == "llmm-llama"
        assert obj["metadata"]["namespace"] == PLATFORM


def test_no_hpa_when_max_equals_min_and_deployment_sets_replicas() -> None:
    result = render([serving_model("llama", replicas=(2, 2))], [])
    assert "HorizontalPodAutoscaler" not in kinds(result.objects)
    deployment = result.objects[0]
    assert deployment["spec"]["replicas"] == 2


def test_with_hpa_the_deployment_leaves_replicas_to_it() -> None:
    result = render(
        [serving_model("llama", replicas=(2, 5), autoscaling={"targetCPUUtilizationPercentage": 60})], []
    )
    deployment, _, hpa, _ = children(result.objects)
    assert "replicas" not in deployment["spec"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] == 5
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "llmm-llama",
    }
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60


def test_endpoint_models_have_no_children() -> None:
    result = render([endpoint_model("gpt")], [])
    assert kinds(result.objects) == ["ConfigMap"]


def test_owner_references_point_at_the_model_when_it_has_a_uid() -> None:
    result = render([serving_model("llama", uid="1234-abcd", replicas=(1, 2))], [])
    for obj in children(result.objects):
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "llmplatform.io/v1alpha1",
                "kind": "LLMModel",
                "name": "llama",
                "uid": "1234-abcd",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


def test_no_owner_references_without_a_uid() -> None:
    result = render([serving_model("llama")], [])
    assert all("ownerReferences" not in o["metadata"] for o in result.objects)


def test_children_carry_explicit_labels_never_the_parents() -> None:
    parent_labels = {"argocd.argoproj.io/instance": "platform", "team": "ml"}
    parent_annotations = {
        "argocd.argoproj.io/tracking-id": "platform:llmplatform.io/LLMModel:x",
        "note": "hi",
    }
    result = render(
        [serving_model("llama", replicas=(1, 2), labels=parent_labels, annotations=parent_annotations)], []
    )
    expected = {
        "app.kubernetes.io/name": "llmplatform-model-server",
        "app.kubernetes.io/instance": "llmm-llama",
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/part-of": "llmplatform",
        "app.kubernetes.io/managed-by": "llmplatform",
        "llmplatform.io/model": "llama",
    }
    assert child_labels("llama") == expected
    for obj in children(result.objects):
        assert obj["metadata"]["labels"] == expected
        assert "annotations" not in obj["metadata"]
    pod = result.objects[0]["spec"]["template"]["metadata"]
    assert pod == {"labels": expected}
    rendered = str(result.objects)
    for value in (*parent_labels, *parent_annotations.values()):
        assert value not in rendered


def test_selectors_match_the_pod_labels() -> None:
    result = render([serving_model("llama", replicas=(1, 2))], [])
    deployment, service, _, netpol = children(result.objects)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (
        deployment["spec"]["selector"]["matchLabels"],
        service["spec"]["selector"],
        netpol["spec"]["podSelector"]["matchLabels"],
    ):
        assert selector.items() <= pod_labels.items()


def test_network_policy_admits_only_gateway_pods_on_the_server_port() -> None:
    result = render([serving_model("llama", port=9000)], [], platform_namespace="platform-x")
    netpol = children(result.objects)[-1]
    assert netpol["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = netpol["spec"]["ingress"]
    assert rule["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "platform-x"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "llmplatform-gateway"}},
        }
    ]
    assert rule["ports"] == [{"protocol": "TCP", "port": 9000}]


def test_container_gets_the_serving_settings() -> None:
    model = serving_model(
        "llama",
        namespace="models",
        args=["--model=x"],
        env=[
            {"name": "A", "value": "1"},
            {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ],
        resources={"limits": {"nvidia.com/gpu": "1"}},
        nodeSelector={"gpu": "true"},
        tolerations=[{"key": "gpu", "operator": "Exists"}],
        readinessPath="/health",
    )
    result = render([model], [])
    deployment, service = children(result.objects)[:2]
    assert deployment["metadata"]["namespace"] == "models"
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "vllm/vllm-openai:v0.6.3"
    assert container["args"] == ["--model=x"]
    assert container["env"][1] == {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
    assert container["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert pod["nodeSelector"] == {"gpu": "true"} and pod["tolerations"] == [
        {"key": "gpu", "operator": "Exists"}
    ]
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}
    ]
    verdict = result.model("models", "llama")
    assert verdict is not None
    assert verdict.endpoint == "http://llmm-llama.models.svc.cluster.local:8000/v1"


def test_readiness_falls_back_to_a_tcp_check() -> None:
    result = render([serving_model("llama")], [])
    probe = result.objects[0]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert probe["tcpSocket"] == {"port": "http"} and "httpGet" not in probe


def test_rendered_objects_do_not_alias_the_input() -> None:
    model = serving_model("llama", resources={"limits": {"cpu": "1"}})
    first = render([model], [])
    first.objects[0]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "99"
    second = render([model], [])
    assert second.objects[0]["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "1"}
    }
