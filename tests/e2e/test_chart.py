"""The Helm chart against the real control plane: lint, render, install, RBAC.

Why here: a chart is only proven by an API server that validates every object, enforces Pod
Security admission and RBAC. One release is shared by the module (installs cost seconds):
- `helm lint --strict` and `helm template` with default and non-default values, every object
  parsed and checked (restricted pod security, the labels the operator's model NetworkPolicies
  rely on, RBAC shape), and values.schema.json refusing bad values with a clear message;
- `helm install` into a namespace that *enforces* `restricted`: the ReplicaSets create their
  pods (kwok runs them) with no admission failures;
- every rendered object passes `kubectl apply --dry-run=server`;
- the operator, run locally with a token of the chart's ServiceAccount, reconciles examples/
  (proving the RBAC is enough), and that token is refused what the operator never does.
The release watches two tenant namespaces (Roles per namespace); a second release with the
default values (a ClusterRole) is checked with `kubectl auth can-i`.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from llmplatform.contract.config import CONFIG_MAP_NAME
from llmplatform.contract.shards import DEFAULT_MAX_SHARDS, shard_name
from llmplatform.render import shard_config_map_name
from llmplatform.render.workloads import GATEWAY_POD_NAME, child_labels
from llmplatform_testing.chart import (
    CHART,
    RELEASE,
    RESTRICTED,
    Release,
    assert_examples_reconciled,
    assert_never_refused,
    by_kind,
    create_namespace,
    delete_namespaces,
    examples_for,
    helm,
    one,
    template,
    token_kubeconfig,
)
from llmplatform_testing.controlplane import Cluster
from llmplatform_testing.kube import GROUP, VERSION, wait_for
from llmplatform_testing.operator_process import OperatorProcess
from llmplatform_testing.procs import free_port

OPERATOR_HEALTH_PORT = 0  # set by the operator_as_chart_sa fixture


def non_default_values(tenants: list[str]) -> list[str]:
    return [
        f"operator.watchNamespaces={{{','.join(tenants)}}}",
        "operator.leaseSeconds=6",
        "gateway.replicas=2",
        "gateway.providerSecrets={openai-credentials,anthropic-credentials}",
        "gateway.auditLog.enabled=true",
        "redis.existingSecret=llmp-redis",
        "gateway.extraArgs={--redis-failure-mode,refuse}",
    ]


# --------------------------------------------------------------------------- restricted PSS


def restricted_violations(pod_spec: dict[str, Any]) -> list[str]:
    """What in a pod spec breaks the `restricted` Pod Security Standard (and our stricter
    read-only root filesystem); empty when it complies."""
    out = []
    psc = pod_spec.get("securityContext") or {}
    for c in pod_spec.get("initContainers", []) + pod_spec["containers"]:
        sc = c.get("securityContext") or {}
        name = c["name"]
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            out.append(f"{name}: runAsNonRoot")
        if (sc.get("runAsUser", psc.get("runAsUser"))) == 0:
            out.append(f"{name}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{name}: seccompProfile")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            out.append(f"{name}: capabilities.drop ALL")
        if set((sc.get("capabilities") or {}).get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append(f"{name}: capabilities.add")
        if sc.get("privileged"):
            out.append(f"{name}: privileged")
        if not sc.get("readOnlyRootFilesystem"):
            out.append(f"{name}: readOnlyRootFilesystem")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            out.append(f"{name}: hostPort")
    allowed_volumes = {"name", "configMap", "secret", "emptyDir", "persistentVolumeClaim", "projected"}
    for v in pod_spec.get("volumes", []):
        if set(v) - allowed_volumes:
            out.append(f"volume {v['name']}: {sorted(set(v) - allowed_volumes)}")
    if pod_spec.get("hostNetwork") or pod_spec.get("hostPID") or pod_spec.get("hostIPC"):
        out.append("host namespaces")
    return out


def test_restricted_check_can_fail() -> None:
    assert restricted_violations({"containers": [{"name": "x"}]}) == [
        "x: runAsNonRoot",
        "x: seccompProfile",
        "x: allowPrivilegeEscalation",
        "x: capabilities.drop ALL",
        "x: readOnlyRootFilesystem",
    ]


# --------------------------------------------------------------------------- lint and template


def test_helm_lint_strict() -> None:
    for extra in ([], ["--strict"]):
        proc = helm("lint", str(CHART), *extra)
        assert "0 chart(s) failed" in proc.stdout, proc.stdout


def test_template_defaults() -> None:
    ns = "platform-x"
    objs = template(ns)
    kinds = sorted(o["kind"] for o in objs)
    assert kinds == sorted(
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",  # the Grafana dashboard
            "Deployment",
            "Deployment",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "Service",
            "ServiceAccount",
            "ServiceAccount",
        ]
    ), kinds
    for o in objs:
        assert o["apiVersion"] and o["metadata"]["name"]
        if o["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert o["metadata"]["namespace"] == ns, o["metadata"]
    # every pod meets `restricted`
    for dep in by_kind(objs, "Deployment"):
        assert restricted_violations(dep["spec"]["template"]["spec"]) == [], dep["metadata"]["name"]

    op = one(objs, "Deployment", "-operator")
    assert op["spec"]["replicas"] == 1 and op["spec"]["strategy"] == {"type": "Recreate"}
    args = op["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "operator" and f"--platform-namespace={ns}" in args and "--lease-seconds=15" in args
    assert not any(a.startswith("--namespace") for a in args)  # all namespaces by default
    container = op["spec"]["template"]["spec"]["containers"][0]
    assert {p["name"] for p in container["ports"]} == {"metrics", "health"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"

    gw = one(objs, "Deployment", "-gateway")
    pod = gw["spec"]["template"]
    # the operator's NetworkPolicy for every model admits exactly this label (render core)
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == GATEWAY_POD_NAME
    assert pod["spec"]["automountServiceAccountToken"] is False
    gc = pod["spec"]["containers"][0]
    assert gc["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gc["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # the single ConfigMap or the index, the shared shard and every tenant shard the operator
    # may write (--config-shards), in one projected folder, each optional
    config_volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "config")
    sources = [src["configMap"] for src in config_volume["projected"]["sources"]]
    shards = ("shared", *(shard_name(i) for i in range(DEFAULT_MAX_SHARDS)))
    slots = [shard_config_map_name(n) for n in shards]
    assert [src["name"] for src in sources] == [CONFIG_MAP_NAME, *slots]
    assert all(src["optional"] is True for src in sources)
    assert f"--config-shards={DEFAULT_MAX_SHARDS}" in args
    platform_role = next(o for o in by_kind(objs, "Role") if o["metadata"]["name"].endswith("-platform"))
    shard_rule = next(r for r in platform_role["rules"] if "delete" in r["verbs"])
    assert shard_rule["resources"] == ["configmaps"] and shard_rule["resourceNames"] == slots
    assert {"--config=/etc/llmplatform/gateway", "--secrets-dir=/var/run/llmplatform/secrets"} <= set(
        gc["args"]
    )
    assert not any("redis" in a for a in gc["args"])
    assert one(objs, "ServiceAccount", "-gateway")["automountServiceAccountToken"] is False

    netpol = one(objs, "NetworkPolicy")
    model_peer = netpol["spec"]["egress"][0]["to"][0]
    assert model_peer["namespaceSelector"] == {}
    assert model_peer["podSelector"]["matchLabels"].items() <= child_labels("any").items()
    egress_ports = {
        (p["protocol"], p["port"]) for rule in netpol["spec"]["egress"] for p in rule.get("ports", [])
    }
    assert {("UDP", 53), ("TCP", 53), ("TCP", 443)} <= egress_ports
    ingress_from = netpol["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}} in ingress_from

    dash = one(objs, "ConfigMap", "-dashboard")
    assert dash["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dash["data"]["llmplatform.json"])["panels"]
    assert not [o for o in objs if o["apiVersion"].startswith("monitoring.coreos.com")]


def test_template_non_default_values() -> None:
    ns = "platform-y"
    objs = template(
        ns,
        *non_default_values(["team-a", "team-b"]),
        "gateway.autoscaling.enabled=true",
        "gateway.auditLog.existingClaim=audit",
        "serviceMonitor.enabled=true",
        "grafanaDashboard.enabled=false",
        "redis.networkPolicyPeers[0].ipBlock.cidr=10.0.0.5/32",
    )
    for dep in by_kind(objs, "Deployment"):
        assert restricted_violations(dep["spec"]["template"]["spec"]) == []
    op_args = one(objs, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert {"--namespace=team-a", "--namespace=team-b", "--lease-seconds=6"} <= set(op_args)
    assert "--usage-redis-url=$(LLMPLATFORM_REDIS_URL)" in op_args

    gw = one(objs, "Deployment", "-gateway")
    assert "replicas" not in gw["spec"]  # the HPA owns it
    spec = gw["spec"]["template"]["spec"]
    gc = spec["containers"][0]
    assert "--redis-url=$(LLMPLATFORM_REDIS_URL)" in gc["args"]
    assert gc["args"][-2:] == ["--redis-failure-mode", "refuse"]
    assert "--audit-log=/var/log/llmplatform/audit.jsonl" in gc["args"]
    assert {
        "--audit-log-max-bytes=104857600",
        "--audit-log-keep=5",
        "--audit-log-rotate-seconds=86400",
    } <= set(gc["args"])
    assert gc["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "llmp-redis", "key": "redis-url"}
    mounts = {m["mountPath"]: m["name"] for m in gc["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    for secret in ("openai-credentials", "anthropic-credentials"):
        vol = volumes[mounts[f"/var/run/llmplatform/secrets/{ns}/{secret}"]]
        assert vol["secret"]["secretName"] == secret
    assert volumes[mounts["/var/log/llmplatform"]]["persistentVolumeClaim"] == {"claimName": "audit"}

    assert one(objs, "HorizontalPodAutoscaler")["spec"]["maxReplicas"] == 10
    monitors = by_kind(objs, "ServiceMonitor")
    assert [m["apiVersion"] for m in monitors] == ["monitoring.coreos.com/v1"] * 2
    assert not [o for o in objs if o["kind"] == "ConfigMap"]
    redis_rule = next(
        r
        for r in one(objs, "NetworkPolicy")["spec"]["egress"]
        if r.get("to") and "ports" in r and r["ports"][0]["port"] == 6379
    )
    assert redis_rule["to"] == [{"ipBlock": {"cidr": "10.0.0.5/32"}}]

    # Roles in each watched namespace and the release namespace; cluster-wide only Namespaces
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]) for r in by_kind(objs, "Role")}
    assert {ns for ns, _ in roles} == {"team-a", "team-b", ns}
    cluster_role = one(objs, "ClusterRole")
    assert cluster_role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["namespaces"],
            "verbs": ["list", "watch"],
        }
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("gatway.replicas=3", "additional properties 'gatway' not allowed"),
        ("gateway.replicas=-1", "/gateway/replicas"),
        ("gateway.autoscaling.targetCPUUtilizationPercentage=150", "/gateway/autoscaling"),
        ("operator.watchNamespaces={Not_A_Namespace}", "/operator/watchNamespaces/0"),
        ("gateway.networkPolicy.externalPorts={99999}", "/gateway/networkPolicy/externalPorts/0"),
        ("gateway.service.type=Ingress", "/gateway/service/type"),
    ],
)
def test_schema_rejects_bad_values(value: str, message: str) -> None:
    proc = helm("template", RELEASE, str(CHART), "--set", value, check=False)
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr
    assert message in proc.stderr, proc.stderr


# --------------------------------------------------------------------------- installed release


@pytest.fixture(scope="module")
def release(cluster: Cluster, crds: None) -> Iterator[Release]:
    """The chart installed (non-default values, Roles per tenant namespace) into a fresh
    namespace enforcing `restricted`, plus its two tenant namespaces."""
    suffix = uuid.uuid4().hex[:6]
    platform, tenants = f"chart-{suffix}", [f"chart-{suffix}-a", f"chart-{suffix}-b"]
    core = client.CoreV1Api(cluster.api())
    create_namespace(core, platform, RESTRICTED)
    for t in tenants:
        create_namespace(core, t)
    core.create_namespaced_secret(
        platform,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="llmp-redis"),
            string_data={"redis-url": "redis://redis.example:6379/0"},
        ),
    )
    values = non_default_values(tenants)
    sets = [a for v in values for a in ("--set", v)]
    try:
        helm(
            "install", RELEASE, str(CHART), "-n", platform, "--wait", "--timeout", "120s", *sets,
            kubeconfig=cluster.kubeconfig,
        )  # fmt: skip
        yield Release(cluster, platform, tenants, template(platform, *values))
    finally:
        helm("uninstall", RELEASE, "-n", platform, "--wait", kubeconfig=cluster.kubeconfig, check=False)
        delete_namespaces(core, [platform, *tenants])


def test_install_pods_are_admitted_under_restricted(release: Release) -> None:
    api = release.cluster.api()
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    ns = core.read_namespace(release.namespace)
    assert ns.metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"
    deployments = apps.list_namespaced_deployment(release.namespace).items
    assert sorted(d.metadata.name for d in deployments) == sorted(
        o["metadata"]["name"] for o in by_kind(release.objects, "Deployment")
    )
    for dep in deployments:
        want = dep.spec.replicas
        assert dep.status.available_replicas == want, dep.metadata.name
        selector = ",".join(f"{k}={v}" for k, v in dep.spec.selector.match_labels.items())
        pods = core.list_namespaced_pod(release.namespace, label_selector=selector).items
        assert len(pods) == want and all(p.status.phase == "Running" for p in pods), dep.metadata.name
    events = core.list_namespaced_event(release.namespace).items
    ours = tuple(d.metadata.name for d in deployments)
    failed = [
        f"{e.involved_object.name}: {e.message}"
        for e in events
        if e.reason == "FailedCreate" and e.involved_object.name.startswith(ours)
    ]
    assert failed == []


def test_admission_would_refuse_a_non_restricted_pod(release: Release) -> None:
    """The namespace label really is enforced: the same check refuses a plain pod."""
    core = client.CoreV1Api(release.cluster.api())
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="plain"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
    )
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(release.namespace, pod, dry_run="All")
    assert err.value.status == 403 and "violates PodSecurity" in err.value.body


@pytest.mark.parametrize("variant", ["defaults", "non-defaults"])
def test_every_rendered_object_passes_a_server_side_dry_run(release: Release, variant: str) -> None:
    """A second release's objects, created with --dry-run=server next to the installed one:
    the API server validates every object (schemas, immutable fields, RBAC escalation)."""
    sets = []
    if variant == "non-defaults":
        sets = [*non_default_values(release.tenants), "gateway.autoscaling.enabled=true"]
        sets += ["gateway.auditLog.existingClaim=audit"]
    name = f"dry-{variant}"
    args = ["template", name, str(CHART), "-n", release.namespace]
    rendered = helm(*args, *[a for v in sets for a in ("--set", v)]).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    out = release.cluster.kubectl("create", "--dry-run=server", "-f", "-", input=rendered)
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == len(docs) and all(line.endswith("(server dry run)") for line in lines), out


def test_upgrade_scales_the_gateway_and_pods_stay_admitted(release: Release) -> None:
    """`helm upgrade --reuse-values` with one change: the Deployment follows and its new pods
    are admitted under `restricted` too. (The operator Deployment is untouched: same spec.)"""
    apps = client.AppsV1Api(release.cluster.api())
    name = one(release.objects, "Deployment", "-gateway")["metadata"]["name"]
    helm(
        "upgrade", RELEASE, str(CHART), "-n", release.namespace, "--reuse-values",
        "--set", "gateway.replicas=3", "--wait", "--timeout", "120s",
        kubeconfig=release.cluster.kubeconfig,
    )  # fmt: skip
    try:
        dep = apps.read_namespaced_deployment(name, release.namespace)
        assert dep.spec.replicas == 3 and dep.status.available_replicas == 3
    finally:
        helm(
            "upgrade", RELEASE, str(CHART), "-n", release.namespace, "--reuse-values",
            "--set", "gateway.replicas=2", "--wait", "--timeout", "120s",
            kubeconfig=release.cluster.kubeconfig,
        )  # fmt: skip


# --------------------------------------------------------------------------- the operator's RBAC


@pytest.fixture(scope="module")
def operator_as_chart_sa(release: Release, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`llmplatform operator` as a local process, authenticated only by the chart
    ServiceAccount's token, with the chart's arguments (platform namespace, watched
    namespaces, leader election on)."""
    tmp = tmp_path_factory.mktemp("chart-operator")
    kubeconfig = token_kubeconfig(
        release.cluster, release.namespace, release.operator_sa, tmp / "sa.kubeconfig"
    )
    as_sa = Cluster(kubeconfig=kubeconfig, local=None)
    # the chart's own operator flags, with local ports (OperatorProcess sets the namespaces,
    # the Lease duration and the metrics port itself)
    global OPERATOR_HEALTH_PORT
    OPERATOR_HEALTH_PORT = free_port()
    own = ("--platform-namespace", "--namespace", "--lease-seconds", "--metrics-port", "--health-port")
    chart_args = [a for a in container_args(release.objects, "-operator")[1:] if a.split("=")[0] not in own]
    chart_args = [a for a in chart_args if not a.startswith("--usage-")]  # the release's Redis is fake
    op = OperatorProcess(as_sa, release.namespace, release.tenants, tmp / "operator.log")
    op.start(*chart_args, f"--health-port={OPERATOR_HEALTH_PORT}")
    try:
        release.cluster.kubectl("apply", "-f", "-", input=examples_for(release))
        yield kubeconfig
    finally:
        op.close()
    assert_never_refused(op)


def test_operator_with_chart_rbac_reconciles_examples(release: Release, operator_as_chart_sa: Path) -> None:
    assert_examples_reconciled(release.cluster, release.namespace, release.tenants)


def test_operator_health_endpoint_answers_as_the_probes_expect(operator_as_chart_sa: Path) -> None:
    """The chart's startup and liveness probes ask Kopf's /healthz on --health-port."""
    import urllib.request

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{OPERATOR_HEALTH_PORT}/healthz", timeout=3) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    wait_for(healthy, 30, "operator /healthz")


def sa_api(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


def refused(call: Any, *args: Any, **kwargs: Any) -> bool:
    try:
        call(*args, **kwargs)
    except ApiException as exc:
        return exc.status == 403
    return False


def test_operator_token_is_refused_what_it_never_does(release: Release, operator_as_chart_sa: Path) -> None:
    api = sa_api(operator_as_chart_sa)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    coord = client.CoordinationV1Api(api)
    ns, team_a = release.namespace, release.tenants[0]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": []}}
    checks = {
        "create pods": refused(core.create_namespaced_pod, ns, pod),
        "update a TenantQuota spec": refused(
            custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            team_a,
            "tenantquotas",
            "team-a",
            {"spec": {"limits": {"requestsPerMinute": 1}}},
        ),
        "delete a namespace": refused(core.delete_namespace, team_a),
        "read Secrets outside its namespaces": refused(core.list_namespaced_secret, "kube-system"),
        "read a namespace": refused(core.read_namespace, team_a),
        "write other ConfigMaps": refused(
            core.patch_namespaced_config_map, "kube-root-ca.crt", ns, {"metadata": {"labels": {"x": "y"}}}
        ),
        "read other Leases": refused(coord.read_namespaced_lease, "someone-else", ns),
        "update its own LLMModel spec": refused(
            custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            ns,
            "llmmodels",
            "gpt-4o-mini",
            {"spec": {"contextWindow": 1}},
        ),
    }
    assert [what for what, ok in checks.items() if not ok] == []
    # and what it needs does work with the same token (the refusals are not a broken token)
    assert core.list_namespaced_secret(team_a).items
    assert custom.list_namespaced_custom_object(GROUP, VERSION, team_a, "tenantquotas")["items"]


def can_i(cluster: Cluster, sa: str, *args: str) -> bool:
    proc = cluster.kubectl("auth", "can-i", f"--as={sa}", *args, check=False)
    return proc.strip() == "yes"


def test_default_values_cluster_role(cluster: Cluster, crds: None) -> None:
    """The default release (all namespaces): a ClusterRole for what every watched namespace
    needs, still no pods, no spec writes, no namespace deletion, Leases only its own."""
    suffix = uuid.uuid4().hex[:6]
    ns = f"chart-all-{suffix}"
    core = client.CoreV1Api(cluster.api())
    create_namespace(core, ns, RESTRICTED)
    try:
        helm(
            "install",
            "all",
            str(CHART),
            "-n",
            ns,
            "--wait",
            "--timeout",
            "120s",
            kubeconfig=cluster.kubeconfig,
        )
        sa = f"system:serviceaccount:{ns}:all-llm-platform-operator"
        allowed = [
            ("list", "secrets", "-A"),
            ("create", "secrets", "-n", "default"),
            ("watch", "tenantquotas.llmplatform.io", "-A"),
            ("patch", "tenantquotas.llmplatform.io", "--subresource=status", "-n", "default"),
            ("patch", "deployments.apps", "-n", "default"),
            ("delete", "networkpolicies.networking.k8s.io", "-n", "default"),
            ("create", "events", "-n", "default"),
            ("update", "leases.coordination.k8s.io/llmplatform-operator", "-n", ns),
            ("patch", f"configmaps/{CONFIG_MAP_NAME}", "-n", ns),
            ("patch", f"configmaps/{CONFIG_MAP_NAME}-t015", "-n", ns),
            ("delete", f"configmaps/{CONFIG_MAP_NAME}-shared", "-n", ns),
            ("watch", "namespaces"),
        ]
        refused_ = [
            ("create", "pods", "-n", ns),
            ("patch", "tenantquotas.llmplatform.io", "-n", "default"),
            ("delete", "namespaces"),
            ("update", "leases.coordination.k8s.io/other", "-n", ns),
            ("patch", f"configmaps/{CONFIG_MAP_NAME}", "-n", "default"),
            ("patch", "configmaps/other", "-n", ns),
            ("patch", f"configmaps/{CONFIG_MAP_NAME}-t016", "-n", ns),
            ("delete", f"configmaps/{CONFIG_MAP_NAME}", "-n", ns),
            ("get", "namespaces"),
            ("get", "nodes"),
            ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
        ]
        assert [a for a in allowed if not can_i(cluster, sa, *a)] == []
        assert [a for a in refused_ if can_i(cluster, sa, *a)] == []
        gw = f"system:serviceaccount:{ns}:all-llm-platform-gateway"
        assert not can_i(cluster, gw, "get", "configmaps", "-n", ns)
    finally:
        helm("uninstall", "all", "-n", ns, "--wait", kubeconfig=cluster.kubeconfig, check=False)
        delete_namespaces(core, [ns])


# --------------------------------------------------------------------------- the chart's commands


SECRET_SAMPLES = {"LLMPLATFORM_REDIS_URL": "redis://redis.platform-z.svc:6379/0"}
"""What the Secrets behind `$(VAR)` arguments hold in a working install (the kubelet expands
them before the process sees its arguments)."""


def container_args(objs: list[dict[str, Any]], suffix: str) -> list[str]:
    """The first container's arguments, with `$(VAR)` references to Secret-backed variables
    expanded as the kubelet does."""
    dep = one(objs, "Deployment", suffix)
    args = list(dep["spec"]["template"]["spec"]["containers"][0]["args"])
    for name, value in SECRET_SAMPLES.items():
        args = [a.replace(f"$({name})", value) for a in args]
    return args


@pytest.mark.parametrize("variant", ["defaults", "non-defaults"])
def test_chart_commands_parse_with_the_cli(variant: str) -> None:
    """Every flag the chart passes exists in `llmplatform` (a renamed flag fails here, not in
    a crash-looping pod)."""
    from llmplatform.cli import build_parser

    sets = non_default_values(["team-a"]) if variant == "non-defaults" else []
    objs = template("platform-z", *sets)
    for suffix, command in (("-operator", "operator"), ("-gateway", "gateway")):
        args = container_args(objs, suffix)
        parsed = build_parser().parse_args(args)
        assert parsed.command == command
    operator = build_parser().parse_args(container_args(objs, "-operator"))
    assert operator.platform_namespace == "platform-z"


def test_gateway_serves_the_operator_config_as_the_chart_mounts_it(
    release: Release, operator_as_chart_sa: Path, tmp_path: Path
) -> None:
    """The gateway, run with the chart's own arguments, on the ConfigMap the operator wrote
    laid out as the kubelet mounts it (a folder of keys) and the provider Secrets under
    <secrets-dir>/<namespace>/<name>/<key>: it loads the config and is ready."""
    import sys
    import time
    import urllib.request

    api = release.cluster.api()
    core = client.CoreV1Api(api)
    cm = wait_for(
        lambda: core.read_namespaced_config_map(CONFIG_MAP_NAME, release.namespace), 60, "ConfigMap"
    )
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    for key, value in (cm.data or {}).items():
        (config_dir / key).write_text(value)
    for key, value in (cm.binary_data or {}).items():
        (config_dir / key).write_bytes(base64.b64decode(value))
    secrets_dir = tmp_path / "secrets"
    for name in ("openai-credentials", "anthropic-credentials"):
        secret = core.read_namespaced_secret(name, release.namespace)
        folder = secrets_dir / release.namespace / name
        folder.mkdir(parents=True)
        for key, value in secret.data.items():
            (folder / key).write_bytes(base64.b64decode(value))

    args = container_args(release.objects, "-gateway")
    port = free_port()
    local = {
        "--config": str(config_dir),
        "--secrets-dir": str(secrets_dir),
        "--host": "127.0.0.1",
        "--port": str(port),
        "--audit-log": str(tmp_path / "audit.jsonl"),
    }
    command = []
    skip = False
    for arg in args:
        flag = arg.split("=", 1)[0]
        if skip:
            skip = False
            continue
        if flag in local:
            command.append(f"{flag}={local[flag]}")
        elif flag in ("--redis-url", "--redis-failure-mode"):  # the release's Redis does not exist
            skip = "=" not in arg
        else:
            command.append(arg)
    log = (tmp_path / "gateway.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "llmplatform.cli", *command], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "gateway.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    body = json.loads(r.read())
                    break
            except OSError:
                time.sleep(0.2)
        assert body.get("ready") is True, (body, (tmp_path / "gateway.log").read_text()[-3000:])
    finally:
        proc.terminate()
        proc.wait(10)


def test_template_tracing_sets_the_otel_variables_of_both_pods() -> None:
    def otel(objs: list[dict[str, Any]], suffix: str) -> dict[str, Any]:
        container = one(objs, "Deployment", suffix)["spec"]["template"]["spec"]["containers"][0]
        return {
            e["name"]: e.get("value", e.get("valueFrom"))
            for e in container.get("env", [])
            if "OTEL" in e["name"]
        }

    defaults = template("platform-t")
    assert otel(defaults, "-gateway") == {} and otel(defaults, "-operator") == {}  # off by default
    objs = template(
        "platform-t",
        "tracing.enabled=true",
        "tracing.endpoint=http://otel-collector.observability:4318",
        "tracing.samplingRatio=0.25",
        "tracing.resourceAttributes.deployment\\.environment\\.name=prod",
        "tracing.networkPolicyPeers[0].namespaceSelector.matchLabels.team=observability",
    )
    for suffix in ("-gateway", "-operator"):
        assert otel(objs, suffix) == {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.observability:4318",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=prod",
        }
    collector_rule = next(
        r for r in one(objs, "NetworkPolicy")["spec"]["egress"] if r.get("ports", [{}])[0].get("port") == 4318
    )
    assert collector_rule["to"] == [{"namespaceSelector": {"matchLabels": {"team": "observability"}}}]
    missing = helm("template", RELEASE, str(CHART), "--set", "tracing.enabled=true", check=False)
    assert missing.returncode != 0 and "tracing.endpoint is required" in missing.stderr
