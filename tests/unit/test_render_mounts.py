"""Which credentials the gateway Deployment mounts (render/mounts.py), and the Ready verdict of
a model whose Secret exists but is not mounted (CredentialsNotMounted).

The chart's own Deployment is checked the same way, through `helm template`, by
tests/e2e/test_quickstart.py (the README's helm command) and tests/e2e/test_operator.py (on
the API server); here the shapes a hand-written Deployment can take."""

from __future__ import annotations

from typing import Any

from llmplatform.render import missing_deployment, mounts_from_deployment, render
from render_factories import PLATFORM, endpoint_model, policy, secret

DIR = "/var/run/llmplatform/secrets"


def deployment(
    mounts: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    *,
    args: list[str] | None = None,
    namespace: str = PLATFORM,
    container: str = "gateway",
) -> dict[str, Any]:
    """A gateway Deployment as the API returns it, with these mounts and volumes."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "gw", "namespace": namespace},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "sidecar", "image": "x", "volumeMounts": []},
                        {
                            "name": container,
                            "image": "gw",
                            "args": args if args is not None else ["gateway", f"--secrets-dir={DIR}"],
                            "volumeMounts": mounts,
                        },
                    ],
                    "volumes": volumes,
                }
            }
        },
    }


def chart_like(*names: str, namespace: str = PLATFORM) -> dict[str, Any]:
    """What the chart renders for gateway.providerSecrets={names}."""
    return deployment(
        [
            {"name": f"provider-{i}", "mountPath": f"{DIR}/{namespace}/{n}", "readOnly": True}
            for i, n in enumerate(names)
        ],
        [{"name": f"provider-{i}", "secret": {"secretName": n}} for i, n in enumerate(names)],
        namespace=namespace,
    )


def test_chart_shaped_mounts_are_readable_and_others_named_with_the_chart_value() -> None:
    mounts = mounts_from_deployment(chart_like("openai-credentials"))
    assert mounts.deployment == f"{PLATFORM}/gw" and mounts.found
    assert mounts.problem(PLATFORM, "openai-credentials", "api-key") is None
    problem = mounts.problem(PLATFORM, "anthropic-credentials", "api-key")
    assert problem is not None
    assert f"does not mount Secret {PLATFORM}/anthropic-credentials" in problem
    assert "gateway.providerSecrets" in problem and "anthropic-credentials" in problem.split("helm")[1]


def test_no_provider_secrets_mounts_nothing() -> None:
    mounts = mounts_from_deployment(chart_like())
    assert mounts.readable == frozenset()
    assert mounts.problem(PLATFORM, "openai-credentials", "api-key") is not None


def test_items_keep_only_the_keys_under_their_own_name() -> None:
    dep = deployment(
        [{"name": "v", "mountPath": f"{DIR}/{PLATFORM}/creds"}],
        [
            {
                "name": "v",
                "secret": {
                    "secretName": "creds",
                    "items": [{"key": "api-key", "path": "api-key"}, {"key": "other", "path": "renamed"}],
                },
            }
        ],
    )
    mounts = mounts_from_deployment(dep)
    assert mounts.problem(PLATFORM, "creds", "api-key") is None
    problem = mounts.problem(PLATFORM, "creds", "other")  # the file is `renamed`, not `other`
    assert problem is not None and "without its key 'other'" in problem


def test_sub_path_and_projected_volumes() -> None:
    dep = deployment(
        [
            {"name": "one", "mountPath": f"{DIR}/{PLATFORM}/single/api-key", "subPath": "api-key"},
            {"name": "proj", "mountPath": f"{DIR}/{PLATFORM}/projected/"},
        ],
        [
            {"name": "one", "secret": {"secretName": "single"}},
            {"name": "proj", "projected": {"sources": [{"secret": {"name": "projected"}}]}},
        ],
    )
    mounts = mounts_from_deployment(dep)
    assert mounts.problem(PLATFORM, "single", "api-key") is None
    assert mounts.problem(PLATFORM, "single", "other") is not None
    assert mounts.problem(PLATFORM, "projected", "anything") is None


def test_a_mount_elsewhere_or_under_another_name_does_not_count() -> None:
    dep = deployment(
        [
            {"name": "a", "mountPath": "/etc/creds"},  # not under the secrets dir
            {"name": "b", "mountPath": f"{DIR}/{PLATFORM}/alias"},  # Secret creds-b read as `alias`
            {"name": "c", "mountPath": f"{DIR}/other-ns/creds-c"},  # not the pod's namespace
        ],
        [
            {"name": "a", "secret": {"secretName": "creds-a"}},
            {"name": "b", "secret": {"secretName": "creds-b"}},
            {"name": "c", "secret": {"secretName": "creds-c"}},
        ],
    )
    mounts = mounts_from_deployment(dep)
    assert mounts.readable == frozenset()
    problem = mounts.problem("other-ns", "creds-c", "k")
    assert problem is not None and "only Secrets of its own namespace" in problem


def test_the_containers_own_secrets_dir_and_only_the_gateway_container() -> None:
    mount = [{"name": "v", "mountPath": f"/srv/keys/{PLATFORM}/creds"}]
    volume = [{"name": "v", "secret": {"secretName": "creds"}}]
    moved = mounts_from_deployment(deployment(mount, volume, args=["gateway", "--secrets-dir", "/srv/keys"]))
    assert moved.secrets_dir == "/srv/keys" and moved.problem(PLATFORM, "creds", "k") is None
    default_dir = mounts_from_deployment(deployment(mount, volume, args=["gateway"]))
    assert default_dir.problem(PLATFORM, "creds", "k") is not None  # mounted where nobody looks
    sidecar = deployment([], volume)
    sidecar["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "v", "mountPath": f"{DIR}/{PLATFORM}/creds"}
    ]
    assert mounts_from_deployment(sidecar).problem(PLATFORM, "creds", "k") is not None


# --- the verdict ----------------------------------------------------------------------------


def models_and_secrets() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    resources = [
        endpoint_model("mounted", secret=("openai-credentials", "api-key")),
        endpoint_model("unmounted", secret=("anthropic-credentials", "api-key")),
        endpoint_model("keyless"),
        policy(tiers={"standard": ["mounted", "unmounted", "keyless"]}),
    ]
    secrets = [
        secret("openai-credentials", PLATFORM, **{"api-key": "sk-1"}),
        secret("anthropic-credentials", PLATFORM, **{"api-key": "sk-2"}),
    ]
    return resources, secrets


def test_a_model_whose_secret_is_not_mounted_is_not_ready_and_left_out() -> None:
    resources, secrets = models_and_secrets()
    result = render(
        resources, secrets, gateway_mounts=mounts_from_deployment(chart_like("openai-credentials"))
    )
    ready = {v.name: (v.ready.status, v.ready.reason) for v in result.models}
    assert ready == {
        "mounted": ("True", "Configured"),
        "unmounted": ("False", "CredentialsNotMounted"),
        "keyless": ("True", "Configured"),
    }
    verdict = result.model(PLATFORM, "unmounted")
    assert verdict is not None and "gateway.providerSecrets" in verdict.ready.message
    assert f"Secret {PLATFORM}/anthropic-credentials" in verdict.ready.message
    assert sorted(m.name for m in result.gateway_config.models) == ["keyless", "mounted"]


def test_without_a_deployment_to_read_only_the_secret_is_checked() -> None:
    """`llmplatform render`, `--manifests` and an operator without --gateway-deployment."""
    resources, secrets = models_and_secrets()
    result = render(resources, secrets)
    assert all(v.ready.status == "True" for v in result.models)


def test_a_missing_gateway_deployment_mounts_nothing() -> None:
    resources, secrets = models_and_secrets()
    result = render(resources, secrets, gateway_mounts=missing_deployment(PLATFORM, "gw"))
    verdict = result.model(PLATFORM, "mounted")
    assert verdict is not None and verdict.ready.reason == "CredentialsNotMounted"
    assert f"Deployment {PLATFORM}/gw) does not exist" in verdict.ready.message
    keyless = result.model(PLATFORM, "keyless")
    assert keyless is not None and keyless.ready.status == "True"


def test_an_empty_key_is_not_a_credential() -> None:
    result = render(
        [endpoint_model("m1", secret=("creds", "api-key"))], [secret("creds", PLATFORM, **{"api-key": " \n"})]
    )
    verdict = result.model(PLATFORM, "m1")
    assert verdict is not None and (verdict.ready.status, verdict.ready.reason) == ("False", "SecretKeyEmpty")
    assert not verdict.in_config


def test_a_ca_bundle_the_gateway_does_not_mount_keeps_the_model_out() -> None:
    """The gateway reads `caBundleSecretRef` from its secrets folder like a key: a bundle that
    exists but is not mounted would fail every request to the model, so it is not Ready."""
    model = endpoint_model("private")
    model["spec"]["endpoint"]["caBundleSecretRef"] = {"name": "private-ca", "key": "ca.pem"}
    resources = [model, policy(tiers={"standard": ["private"]})]
    secrets = [secret("private-ca", PLATFORM, **{"ca.pem": "-----BEGIN CERTIFICATE-----\nMIIB\n"})]
    unmounted = render(resources, secrets, gateway_mounts=mounts_from_deployment(chart_like()))
    verdict = unmounted.model(PLATFORM, "private")
    assert verdict is not None
    assert (verdict.ready.status, verdict.ready.reason) == ("False", "CredentialsNotMounted")
    assert verdict.ready.message.startswith("CA bundle: ") and "private-ca" in verdict.ready.message
    assert unmounted.gateway_config.models == []
    mounted = render(resources, secrets, gateway_mounts=mounts_from_deployment(chart_like("private-ca")))
    assert [m.name for m in mounted.gateway_config.models] == ["private"]
