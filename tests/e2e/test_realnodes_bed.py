"""The real-node bed itself: pods run, and what a user relies on works through them.

Why: every later real-node test (the quickstart, the chart's pods) stands on these: an image
built by `make images` runs under the `restricted` Pod Security level, `kubectl logs`, `exec`
and `port-forward` reach it from the host, cluster DNS and Services (kube-proxy) resolve and
route, and a NetworkPolicy is really enforced (kube-router), not only accepted by the API.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from llmplatform_testing.controlplane import Cluster, bed
from llmplatform_testing.realnodes import connect_code, eventually, py_in, run_pod


@pytest.fixture()
def ns(real_cluster: Cluster) -> Iterator[str]:
    """A namespace enforcing `restricted` Pod Security, deleted afterwards."""
    name = f"rn-{uuid.uuid4().hex[:6]}"
    real_cluster.kubectl("create", "namespace", name)
    real_cluster.kubectl(
        "label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted", "--overwrite"
    )
    yield name
    real_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_a_restricted_read_only_pod_runs_and_logs_exec_port_forward_work(
    real_cluster: Cluster, ns: str
) -> None:
    c = real_cluster
    pod_ip = run_pod(c, ns, "mock")
    assert pod_ip.startswith("10.244."), pod_ip
    # exec: the root file system really is read-only, /tmp (an emptyDir) is writable.
    out = py_in(
        c,
        ns,
        "mock",
        "import os\ntry:\n    open('/x','w')\nexcept OSError as e:\n    print('ro', e.errno)\n"
        "open('/tmp/x','w').write('ok'); print(os.getuid())",
    )
    assert out.split() == ["ro", "30", "65532"], out
    # port-forward from the host's loopback through the API server and the kubelet.
    port = bed.free_port()
    pf = subprocess.Popen(
        [
            c.local._bin("kubectl"),
            f"--kubeconfig={c.kubeconfig}",
            "-n",
            ns,
            "port-forward",
            "pod/mock",
            f"{port}:8000",
        ],  # type: ignore[union-attr]
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        body = b""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as r:
                    body = r.read()
                break
            except OSError:
                time.sleep(0.5)
        assert b"mock-model" in body
    finally:
        pf.terminate()
        pf.wait(10)
    # logs: the server's start line.
    assert "listening on http://0.0.0.0:8000/v1" in c.kubectl("-n", ns, "logs", "mock")


def test_dns_services_and_network_policy_are_real(real_cluster: Cluster, ns: str) -> None:
    c = real_cluster
    run_pod(c, ns, "server", {"app": "server"})
    run_pod(c, ns, "client", {"app": "client"})
    c.kubectl("-n", ns, "expose", "pod", "server", "--port=80", "--target-port=8000")
    svc = f"server.{ns}.svc.cluster.local"
    # DNS (CoreDNS) and the Service (kube-proxy) from inside a pod.
    # (kube-proxy programs the new Service within its sync period)
    eventually(lambda: "open" in py_in(c, ns, "client", connect_code(svc, 80)), "Service not reachable")
    # Deny all ingress to the server: the connection is now refused or times out.
    deny = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "deny"},
        "spec": {"podSelector": {"matchLabels": {"app": "server"}}, "policyTypes": ["Ingress"]},
    }
    c.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(deny))
    eventually(lambda: "blocked" in py_in(c, ns, "client", connect_code(svc, 80)), "deny not enforced")
    # Allow only pods labelled app=client: the client gets through again.
    allow = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow-client"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "server"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}],
        },
    }
    c.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(allow))
    eventually(lambda: "open" in py_in(c, ns, "client", connect_code(svc, 80)), "allow not enforced")


def test_host_network_is_untouched(real_cluster: Cluster) -> None:
    """The bed's bridge and rules live in its namespace: the host has no cni0 and no bed address."""
    names = socket.if_nameindex()
    assert not [n for _, n in names if n in ("cni0", "llmnode0")], names
    # kube-proxy's and kube-router's chains exist only in the bed's namespace.
    rb = real_cluster.local
    assert rb is not None
    host = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    inside = rb.netns_run(["iptables-save"]).stdout  # type: ignore[attr-defined]
    assert "KUBE-SERVICES" in inside and "KUBE-ROUTER" in inside.upper()
    assert "KUBE-" not in host
