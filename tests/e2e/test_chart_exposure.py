"""The chart's exposure (Ingress, Gateway API HTTPRoute) and the gateway's own TLS, against the
real API server.

Why here: an Ingress or an HTTPRoute is only proven by the API server that admits it (the
HTTPRoute by the Gateway API CRDs' schema and CEL rules, fetched through the Go module proxy
into the bed's cache), and TLS values only by the gateway actually starting with the flags,
mounts and probes the chart renders:
- `helm template` renders what charts/llm-platform/README.md documents (annotations for
  streaming and cert-manager, TLS hosts, parentRefs, timeouts, mounts, probe schemes);
- values.schema.json refuses bad exposure and TLS values with the path of the bad key;
- `helm install` of all of it into a namespace enforcing `restricted` is admitted, and the
  objects read back from the API server are the rendered ones; a route the CRD's CEL rule
  refuses fails the upgrade with the API server's message;
- the gateway, run with the chart's own arguments on the TLS Secret as the kubelet lays it
  out, answers the chart's probes as the kubelet sends them (HTTPS without verification, or
  plain HTTP on the health port when clients need certificates).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from llmplatform_testing import ROOT, gatewayapi
from llmplatform_testing.certs import CA, SecretDir, client_context
from llmplatform_testing.chart import (
    CHART,
    RELEASE,
    RESTRICTED,
    by_kind,
    create_namespace,
    delete_namespaces,
    helm,
    one,
    template,
)
from llmplatform_testing.controlplane import Cluster
from llmplatform_testing.procs import Proc, cli, free_port

GATEWAY_API = "gateway.networking.k8s.io"
STREAMING_ANNOTATIONS = {
    "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
    "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
    "nginx.ingress.kubernetes.io/proxy-buffering": "off",
    "nginx.ingress.kubernetes.io/proxy-request-buffering": "off",
    "nginx.ingress.kubernetes.io/proxy-body-size": "10m",
}
INGRESS = [
    "ingress.enabled=true",
    "ingress.className=nginx",
    "ingress.host=llm.example.com",
    "ingress.tlsSecretName=llm-example-com-tls",
    "ingress.certManager.clusterIssuer=letsencrypt",
]
ROUTE = [
    "httpRoute.enabled=true",
    "httpRoute.parentRefs[0].name=shared",
    "httpRoute.parentRefs[0].namespace=infra",
    "httpRoute.parentRefs[0].sectionName=https",
    "httpRoute.hostnames={llm.example.com}",
]
TLS = ["gateway.tls.enabled=true", "gateway.tls.secretName=gateway-tls"]
CLIENT_CA = ["gateway.tls.clientCASecret=gateway-client-ca"]
BACKEND_TLS = ["httpRoute.backendTLS.caConfigMap=gateway-ca"]


def gateway_container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(one(objs, "Deployment", "-gateway")["spec"]["template"]["spec"]["containers"][0])


# --------------------------------------------------------------------------- rendering


def test_nothing_is_exposed_by_default() -> None:
    objs = template("p")
    assert not by_kind(objs, "Ingress") and not by_kind(objs, "HTTPRoute")
    gc = gateway_container(objs)
    assert not [a for a in gc["args"] if a.startswith(("--tls", "--health-port"))]
    assert gc["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http", "scheme": "HTTP"}
    assert one(objs, "Service", "-gateway")["spec"]["ports"][0]["name"] == "http"


def test_ingress_renders_streaming_timeouts_cert_manager_and_tls() -> None:
    objs = template("p", *INGRESS)
    ing = one(objs, "Ingress")
    annotations = ing["metadata"]["annotations"]
    assert annotations == {**STREAMING_ANNOTATIONS, "cert-manager.io/cluster-issuer": "letsencrypt"}
    spec = ing["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [{"hosts": ["llm.example.com"], "secretName": "llm-example-com-tls"}]
    (rule,) = spec["rules"]
    assert rule["host"] == "llm.example.com"
    (path,) = rule["http"]["paths"]
    service = one(objs, "Service", "-gateway")
    assert path["backend"]["service"] == {"name": service["metadata"]["name"], "port": {"name": "http"}}
    assert (path["path"], path["pathType"]) == ("/", "Prefix")


def test_ingress_to_a_tls_gateway_speaks_https_to_it_unless_told_otherwise() -> None:
    objs = template(
        "p", *INGRESS, *TLS, "ingress.certManager.clusterIssuer=", "ingress.certManager.issuer=ca"
    )
    ing = one(objs, "Ingress")
    assert ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"] == "HTTPS"
    assert ing["metadata"]["annotations"]["cert-manager.io/issuer"] == "ca"
    assert "cert-manager.io/cluster-issuer" not in ing["metadata"]["annotations"]
    assert ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] == {"name": "https"}
    # the user's own annotation wins; and annotations can be replaced entirely
    key = "ingress.annotations.nginx\\.ingress\\.kubernetes\\.io/backend-protocol=GRPCS"
    mine = one(template("p", *INGRESS, *TLS, key), "Ingress")["metadata"]["annotations"]
    assert mine["nginx.ingress.kubernetes.io/backend-protocol"] == "GRPCS"
    bare = one(template("p", *INGRESS, "ingress.annotations=null"), "Ingress")["metadata"]["annotations"]
    assert bare == {"cert-manager.io/cluster-issuer": "letsencrypt"}


def test_httproute_renders_parent_refs_hostnames_and_long_timeouts() -> None:
    objs = template("p", *ROUTE)
    assert not by_kind(objs, "BackendTLSPolicy")  # plain HTTP to the pods
    route = one(objs, "HTTPRoute")
    assert route["apiVersion"] == f"{GATEWAY_API}/v1"
    spec = route["spec"]
    assert spec["parentRefs"] == [{"name": "shared", "namespace": "infra", "sectionName": "https"}]
    assert spec["hostnames"] == ["llm.example.com"]
    (rule,) = spec["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    service = one(objs, "Service", "-gateway")
    assert rule["backendRefs"] == [{"name": service["metadata"]["name"], "port": 80}]
    assert rule["timeouts"] == {"request": "3600s", "backendRequest": "3600s"}


def test_httproute_to_a_tls_gateway_comes_with_a_backend_tls_policy() -> None:
    objs = template("p", *ROUTE, *TLS, *BACKEND_TLS)
    policy = one(objs, "BackendTLSPolicy")
    service = one(objs, "Service", "-gateway")["metadata"]["name"]
    assert policy["apiVersion"] == f"{GATEWAY_API}/v1"
    assert policy["spec"] == {
        "targetRefs": [{"group": "", "kind": "Service", "name": service, "sectionName": "https"}],
        "validation": {
            "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "gateway-ca"}],
            "hostname": f"{service}.p.svc",
        },
    }
    custom = template("p", *ROUTE, *TLS, *BACKEND_TLS, "httpRoute.backendTLS.hostname=llm-gateway.internal")
    assert one(custom, "BackendTLSPolicy")["spec"]["validation"]["hostname"] == "llm-gateway.internal"


def test_gateway_tls_mounts_the_secret_folder_and_probes_over_https() -> None:
    objs = template("p", *TLS)
    gc = gateway_container(objs)
    assert {
        "--tls-cert-file=/var/run/llmplatform/tls/tls.crt",
        "--tls-key-file=/var/run/llmplatform/tls/tls.key",
    } <= set(gc["args"])
    assert not [a for a in gc["args"] if a.startswith(("--tls-client-ca-file", "--health-port"))]
    mount = next(m for m in gc["volumeMounts"] if m["mountPath"] == "/var/run/llmplatform/tls")
    assert "subPath" not in mount  # a subPath mount never sees a renewed Secret
    volumes = {
        v["name"]: v for v in one(objs, "Deployment", "-gateway")["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes[mount["name"]]["secret"]["secretName"] == "gateway-tls"
    assert [p["name"] for p in gc["ports"]] == ["https"]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert gc[probe]["httpGet"] == {"path": path, "port": "https", "scheme": "HTTPS"}
    (port,) = one(objs, "Service", "-gateway")["spec"]["ports"]
    assert (port["name"], port["targetPort"], port["appProtocol"]) == ("https", "https", "https")


def test_client_certificates_move_probes_and_metrics_to_the_health_port() -> None:
    objs = template("p", *TLS, *CLIENT_CA, "serviceMonitor.enabled=true")
    gc = gateway_container(objs)
    assert {"--tls-client-ca-file=/var/run/llmplatform/client-ca/ca.crt", "--health-port=8081"} <= set(
        gc["args"]
    )
    assert {p["name"]: p["containerPort"] for p in gc["ports"]} == {"https": 8080, "health": 8081}
    assert gc["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health", "scheme": "HTTP"}
    assert gc["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health", "scheme": "HTTP"}
    assert [p["name"] for p in one(objs, "Service", "-gateway")["spec"]["ports"]] == ["https", "health"]
    monitor = one(objs, "ServiceMonitor", "-gateway")
    assert monitor["spec"]["endpoints"][0]["port"] == "health"
    netpol_ports = one(objs, "NetworkPolicy")["spec"]["ingress"][0]["ports"]
    assert {p["port"] for p in netpol_ports} == {8080, 8081}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["ingress.enabled=true"], "/ingress/host"),
        (["ingress.enabled=true", "ingress.host=Not_A_Host"], "/ingress/host"),
        (["ingress.enabled=true", "ingress.host=a.example", "ingress.pathType=Glob"], "/ingress/pathType"),
        (["ingress.enabled=yes"], "/ingress/enabled"),
        (
            ["ingress.enabled=true", "ingress.host=a.example", "ingress.certManager.issuer=x"],
            "/ingress/tlsSecretName",
        ),
        (
            [
                "ingress.certManager.issuer=x",
                "ingress.certManager.clusterIssuer=y",
                "ingress.tlsSecretName=t",
            ],
            "/ingress/certManager",
        ),
        (["httpRoute.enabled=true"], "/httpRoute/parentRefs"),
        (["httpRoute.parentRefs[0].namespace=infra"], "/httpRoute/parentRefs/0"),
        (
            ["httpRoute.parentRefs[0].name=g", "httpRoute.parentRefs[0].port=0"],
            "/httpRoute/parentRefs/0/port",
        ),
        (["httpRoute.timeouts.request=1hour"], "/httpRoute/timeouts/request"),
        (["httpRoute.hostnames={Bad_Host}"], "/httpRoute/hostnames/0"),
        (["gateway.tls.enabled=true"], "/gateway/tls/secretName"),
        (["gateway.tls.clientCASecret=ca"], "/gateway/tls/enabled"),
        (
            ["gateway.tls.enabled=true", "gateway.tls.secretName=t", "gateway.tls.healthPort=0"],
            "/gateway/tls/healthPort",
        ),
        (["gateway.tls.secretName=Bad_Name"], "/gateway/tls/secretName"),
        ([*ROUTE, *TLS], "/httpRoute/backendTLS/caConfigMap"),
    ],
)
def test_schema_rejects_bad_exposure_and_tls_values(values: list[str], message: str) -> None:
    args = [a for v in values for a in ("--set", v)]
    proc = helm("template", RELEASE, str(CHART), *args, check=False)
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr
    assert message in proc.stderr, proc.stderr


# --------------------------------------------------------------------------- installed


@pytest.fixture(scope="module")
def gateway_api(cluster: Cluster) -> None:
    """The Gateway API CRDs (standard channel, fetched into the cache), Established. Left
    installed, like crds/: another cluster's Gateway API is not ours to remove."""
    for f in gatewayapi.crd_files():
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(f))
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(f))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    ca, client_ca = CA("exposure-test-ca"), CA("exposure-test-client-ca")
    folder = tmp_path_factory.mktemp("exposure-certs")
    return {
        "ca": ca,
        "server": ca.issue("gateway", sans=("127.0.0.1", "localhost")),
        "client_ca": client_ca,
        "client": client_ca.issue("app", server=False).write(folder, "client"),
    }


@pytest.fixture(scope="module")
def exposed(
    cluster: Cluster, crds: None, gateway_api: None, certs: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """The chart with an Ingress, an HTTPRoute and gateway TLS with client certificates,
    installed into a namespace enforcing `restricted`, with its two Secrets."""
    ns = f"expose-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(cluster.api())
    create_namespace(core, ns, RESTRICTED)
    core.create_namespaced_secret(
        ns,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="gateway-tls"),
            type="kubernetes.io/tls",
            string_data={
                "tls.crt": certs["server"].cert_pem.decode(),
                "tls.key": certs["server"].key_pem.decode(),
            },
        ),
    )
    core.create_namespaced_secret(
        ns,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="gateway-client-ca"),
            string_data={"ca.crt": certs["client_ca"].cert_pem.decode()},
        ),
    )
    core.create_namespaced_config_map(
        ns,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="gateway-ca"), data={"ca.crt": certs["ca"].cert_pem.decode()}
        ),
    )
    values = [*INGRESS, *ROUTE, *TLS, *CLIENT_CA, *BACKEND_TLS]
    sets = [a for v in values for a in ("--set", v)]
    try:
        helm(
            "install", RELEASE, str(CHART), "-n", ns, "--wait", "--timeout", "120s", *sets,
            kubeconfig=cluster.kubeconfig,
        )  # fmt: skip
        yield {"namespace": ns, "values": values, "objects": template(ns, *values)}
    finally:
        helm("uninstall", RELEASE, "-n", ns, "--wait", kubeconfig=cluster.kubeconfig, check=False)
        delete_namespaces(core, [ns])


def test_install_is_admitted_and_reads_back_as_rendered(cluster: Cluster, exposed: dict[str, Any]) -> None:
    ns, objs = exposed["namespace"], exposed["objects"]
    api = cluster.api()
    ing = one(objs, "Ingress")
    live_ing = client.NetworkingV1Api(api).read_namespaced_ingress(ing["metadata"]["name"], ns)
    live = api.sanitize_for_serialization(live_ing)
    helm_own = {"meta.helm.sh/release-name", "meta.helm.sh/release-namespace"}
    annotations = {k: v for k, v in live["metadata"]["annotations"].items() if k not in helm_own}
    assert annotations == ing["metadata"]["annotations"]
    assert live["spec"] == ing["spec"]

    route = one(objs, "HTTPRoute")
    live_route = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GATEWAY_API, "v1", ns, "httproutes", route["metadata"]["name"]
    )
    # the API server fills in the CRD's defaults (parentRef group/kind, backendRef group/kind/weight)
    (rule,) = live_route["spec"]["rules"]
    assert rule["timeouts"] == {"request": "3600s", "backendRequest": "3600s"}
    assert rule["matches"] == route["spec"]["rules"][0]["matches"]
    (backend,) = rule["backendRefs"]
    assert (backend["name"], backend["port"], backend["kind"]) == (
        route["spec"]["rules"][0]["backendRefs"][0]["name"],
        80,
        "Service",
    )
    (parent,) = live_route["spec"]["parentRefs"]
    assert {k: parent[k] for k in ("name", "namespace", "sectionName")} == route["spec"]["parentRefs"][0]
    assert (parent["group"], parent["kind"]) == (GATEWAY_API, "Gateway")
    assert live_route["spec"]["hostnames"] == ["llm.example.com"]

    policy = one(objs, "BackendTLSPolicy")
    live_policy = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GATEWAY_API, "v1", ns, "backendtlspolicies", policy["metadata"]["name"]
    )
    assert live_policy["spec"] == policy["spec"]

    dep = client.AppsV1Api(api).read_namespaced_deployment(
        one(objs, "Deployment", "-gateway")["metadata"]["name"], ns
    )
    assert dep.status.available_replicas == dep.spec.replicas  # pods admitted under `restricted`
    probe = dep.spec.template.spec.containers[0].readiness_probe.http_get
    assert (probe.port, probe.scheme) == ("health", "HTTP")


def test_the_api_server_refuses_a_route_the_gateway_api_forbids(
    cluster: Cluster, exposed: dict[str, Any]
) -> None:
    """The chart's schema checks the duration format; the CRD's CEL rule (backendRequest may not
    exceed request) is the API server's, and its message reaches the user through helm."""
    args = ["upgrade", RELEASE, str(CHART), "-n", exposed["namespace"], "--reuse-values"]
    proc = helm(
        *args, "--set", "httpRoute.timeouts.backendRequest=2h", kubeconfig=cluster.kubeconfig, check=False
    )
    assert proc.returncode != 0
    assert "backendRequest timeout cannot be longer than request timeout" in proc.stderr, proc.stderr


# --------------------------------------------------------------------------- the chart's gateway


def run_chart_gateway(
    objs: list[dict[str, Any]], secrets: dict[str, dict[str, bytes]], tmp: Path
) -> tuple[Proc, dict[str, Any], dict[str, int]]:
    """`llmplatform gateway` with the chart's own arguments: the Secrets laid out as the kubelet
    mounts them (a `..data` symlink per folder), examples/ as the config, local ports. Returns
    the process, the container spec and the chart's port names mapped to the local ports."""
    gc = gateway_container(objs)
    mounts = {m["name"]: m["mountPath"] for m in gc["volumeMounts"]}
    local_dirs = {}
    for name, files in secrets.items():
        folder = SecretDir(tmp / name)
        folder.update(files)
        local_dirs[mounts[name]] = str(folder.path)
    ports = {p["name"]: free_port() for p in gc["ports"]}
    chart_ports = {p["name"]: p["containerPort"] for p in gc["ports"]}
    args = []
    for arg in gc["args"][1:]:
        flag, _, value = arg.partition("=")
        if flag == "--config":
            arg = f"--manifests={ROOT / 'examples'}"
        elif flag in ("--secrets-dir", "--host"):
            continue
        elif flag == "--port":
            arg = f"--port={ports[next(n for n, p in chart_ports.items() if p == int(value))]}"
        elif flag == "--health-port":
            arg = f"--health-port={ports['health']}"
        for mount, local in local_dirs.items():
            arg = arg.replace(mount, local)
        args.append(arg)
    proc = Proc(
        cli("gateway", "--host=127.0.0.1", *args, f"--audit-log={tmp / 'audit.jsonl'}"), tmp / "gateway.log"
    )
    return proc, gc, ports


def kubelet_probe(gc: dict[str, Any], ports: dict[str, int], which: str) -> httpx.Response:
    """The probe as the kubelet sends it: HTTPS without verifying the certificate and without a
    client certificate, or plain HTTP."""
    get = gc[which]["httpGet"]
    url = f"{get['scheme'].lower()}://127.0.0.1:{ports[get['port']]}{get['path']}"
    return httpx.get(url, verify=False, timeout=5)


def wait_ready(proc: Proc, gc: dict[str, Any], ports: dict[str, int]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.popen.poll() is None, proc.log_tail()
        try:
            if kubelet_probe(gc, ports, "readinessProbe").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the chart's readiness probe never passed:\n{proc.log_tail()}")


@pytest.mark.parametrize("variant", ["tls", "client-certificates"])
def test_the_chart_gateway_serves_tls_and_answers_its_probes(
    certs: dict[str, Any], tmp_path: Path, variant: str
) -> None:
    values = [*TLS, *(CLIENT_CA if variant == "client-certificates" else [])]
    objs = template("p", *values)
    server = certs["server"]
    secrets = {"tls": {"tls.crt": server.cert_pem, "tls.key": server.key_pem}}
    if variant == "client-certificates":
        secrets["client-ca"] = {"ca.crt": certs["client_ca"].cert_pem}
    proc, gc, ports = run_chart_gateway(objs, secrets, tmp_path)
    try:
        wait_ready(proc, gc, ports)
        assert kubelet_probe(gc, ports, "livenessProbe").json() == {"status": "alive"}
        https = f"https://127.0.0.1:{ports['https']}/healthz"
        if variant == "tls":
            assert httpx.get(https, verify=client_context(certs["ca"])).status_code == 200
        else:
            # the main port: a client without a certificate is refused (so is the kubelet's
            # HTTPS probe, which is why the probes moved), one with a certificate is served
            with pytest.raises(httpx.HTTPError):
                httpx.get(https, verify=client_context(certs["ca"]), timeout=5)
            with pytest.raises(httpx.HTTPError):
                httpx.get(https, verify=False, timeout=5)
            trusted = client_context(certs["ca"], client=certs["client"])
            assert httpx.get(https, verify=trusted).status_code == 200
    finally:
        proc.stop()
