"""Run a real Kubernetes control plane as local processes: the e2e test bed.

Why: the operator and gateway are only trustworthy if they have been exercised
against a real API server (schema and CEL validation, status subresource, owner
reference garbage collection, RBAC, watches that expire). There is no Docker engine
here, so we run the upstream binaries built by ``build.py`` directly:

    etcd -> kube-apiserver -> kube-controller-manager, kube-scheduler, kwok

kwok plays the kubelet for two fake nodes, so a Deployment's pods are scheduled and
reported Running and Ready without running any container.

Everything lives in one state folder: certificates, kubeconfigs, the etcd data dir,
one log file per component and ``pids.json``. The same code serves the pytest
fixture (``ControlPlane`` used as a context manager) and ``make cluster-up`` /
``make cluster-down`` (``python bed.py up|down|status``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build

FAKE_NODES = ("kwok-node-0", "kwok-node-1")
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


# kwok ships its behaviour as "Stage" objects; these are the stock ones kwokctl uses by
# default: nodes become Ready and keep a heartbeat, pods go Running/Ready and are removed.
KWOK_STAGES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat/node-heartbeat.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)


def kwok_stages_config() -> Path:
    """Write (once) a kwok config holding the stock stages of the pinned kwok release.

    kwok v0.8 refuses to start without stages. Rather than re-typing them, we read them
    from the kwok module itself (``go mod download`` is a no-op when the build already
    fetched it) and cache the result next to the binaries.
    """
    out = build.version_dir() / f"kwok-stages-{build.KWOK_VERSION}.yaml"
    if out.exists():
        return out
    proc = subprocess.run(
        ["go", "mod", "download", "-json", f"sigs.k8s.io/kwok@{build.KWOK_VERSION}"],
        capture_output=True,
        text=True,
        env=build._go_env(),
        cwd=tempfile.gettempdir(),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"could not fetch kwok {build.KWOK_VERSION} stages: {proc.stderr or proc.stdout}")
    src = Path(json.loads(proc.stdout)["Dir"])
    docs = [(src / rel).read_text().strip() for rel in KWOK_STAGES]
    tmp = out.with_suffix(".tmp")
    tmp.write_text("\n---\n".join(docs) + "\n")
    tmp.replace(out)
    return out


def run_kubectl(
    binary: str,
    kubeconfig: Path,
    *args: str,
    input: str | None = None,
    check: bool = True,
    timeout: float = 120,
) -> str:
    """kubectl against `kubeconfig`; its stdout, or RuntimeError with its stderr when `check`."""
    proc = subprocess.run(
        [binary, f"--kubeconfig={kubeconfig}", *args],
        input=input,
        text=True,
        capture_output=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def free_port() -> int:
    """A port the kernel just gave us on loopback; released for the component to bind."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- certificates


def _pki(
    state: Path,
    extra_ips: tuple[str, ...] = (),
    extra_clients: tuple[tuple[str, str, tuple[str, ...]], ...] = (),
) -> dict[str, Path]:
    """Mint a throw-away CA, the API server's serving cert, client certs and the SA key.

    Client certificates carry the identities the RBAC bootstrap policy already knows
    (``system:masters`` for the admin, ``system:kube-controller-manager`` and
    ``system:kube-scheduler``), so RBAC is exercised exactly as in a kubeadm cluster.
    ``extra_ips`` are added to the API server's names (a real node's address) and
    ``extra_clients`` are more ``(file name, common name, organizations)`` client certificates.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    pki = state / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    later = now + dt.timedelta(days=30)

    def write_key(path: Path, key: Any) -> None:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        path.chmod(0o600)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "llmplatform-e2e-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca.crt": pki / "ca.crt", "ca.key": pki / "ca.key"}
    paths["ca.crt"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    write_key(paths["ca.key"], ca_key)

    def issue(name: str, cn: str, orgs: tuple[str, ...] = (), server: bool = False) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(later)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server:
            b = b.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.DNSName("kubernetes"),
                        x509.DNSName("kubernetes.default"),
                        x509.DNSName("kubernetes.default.svc"),
                        x509.DNSName("kubernetes.default.svc.cluster.local"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address("10.96.0.1")),
                        *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in extra_ips),
                    ]
                ),
                critical=False,
            ).add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        else:
            b = b.add_extension(x509.ExtendedKeyUsage([x509.OID_CLIENT_AUTH]), critical=False)
        cert = b.sign(ca_key, hashes.SHA256())
        paths[f"{name}.crt"] = pki / f"{name}.crt"
        paths[f"{name}.key"] = pki / f"{name}.key"
        paths[f"{name}.crt"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_key(paths[f"{name}.key"], key)

    issue("apiserver", "kube-apiserver", server=True)
    issue("admin", "llmplatform-e2e-admin", ("system:masters",))
    issue("controller-manager", "system:kube-controller-manager")
    issue("scheduler", "system:kube-scheduler")
    issue("kwok", "kwok-controller", ("system:masters",))
    for name, cn, orgs in extra_clients:
        issue(name, cn, orgs)

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    paths["sa.key"] = pki / "sa.key"
    paths["sa.pub"] = pki / "sa.pub"
    write_key(paths["sa.key"], sa_key)
    paths["sa.pub"].write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return paths


def _kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path, user: str) -> None:
    """Write a kubeconfig with embedded data so it stays valid when copied elsewhere."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "llmplatform-e2e", "cluster": {"server": server, "certificate-authority-data": b64(ca)}}
        ],
        "users": [
            {"name": user, "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}
        ],
        "contexts": [{"name": "llmplatform-e2e", "context": {"cluster": "llmplatform-e2e", "user": user}}],
        "current-context": "llmplatform-e2e",
    }
    path.write_text(json.dumps(cfg, indent=2))
    path.chmod(0o600)


# --------------------------------------------------------------------------- processes


@dataclass
class ControlPlane:
    """A running control plane rooted in ``state``; usable as a context manager.

    ``detach=True`` starts the processes in their own sessions and leaves them running
    when this Python process exits (``make cluster-up``); otherwise ``stop()`` (called
    by ``__exit__``, also on failure) terminates them and removes the state folder.
    """

    state: Path
    bin_dir: Path
    detach: bool = False
    keep_state: bool = False
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    pki: dict[str, Path] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        return self.state / "admin.kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    def log_path(self, component: str) -> Path:
        return self.state / "logs" / f"{component}.log"

    # -- lifecycle

    def __enter__(self) -> ControlPlane:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        t0 = time.monotonic()
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / "logs").mkdir(exist_ok=True)
        for name in ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler", "kwok"):
            self.ports[name] = free_port()
        self.pki = _pki(self.state)
        self._kubeconfigs()
        self._save()
        self._start_etcd()
        self._wait_tcp("etcd", self.ports["etcd"], 30)
        self.timings["etcd"] = time.monotonic() - t0
        self.start_apiserver()
        self.wait_apiserver_ready(90)
        self.timings["apiserver_ready"] = time.monotonic() - t0
        self._start_controller_manager()
        self._start_scheduler()
        self._start_kwok()
        self._create_fake_nodes()
        self.wait_nodes_ready(60)
        self._wait_default_service_account(60)
        self.timings["all_ready"] = time.monotonic() - t0
        self._save()

    def stop(self) -> None:
        """Terminate every component (SIGTERM, then SIGKILL) and remove the state folder."""
        for name in reversed(list(self.pids)):
            self._kill(name)
        if not self.keep_state and self.state.exists():
            shutil.rmtree(self.state, ignore_errors=True)

    # -- helpers used by tests

    def restart_apiserver(self) -> None:
        """Stop and start kube-apiserver on the same port and etcd (for watch-expiry tests)."""
        self._kill("kube-apiserver")
        self.start_apiserver()
        self.wait_apiserver_ready(90)

    def logs_tail(self, lines: int = 60) -> str:
        parts = []
        for comp in COMPONENTS:
            p = self.log_path(comp)
            if p.exists():
                tail = p.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"----- {comp} ({p}) last {len(tail)} lines -----\n" + "\n".join(tail))
        return "\n".join(parts)

    def peak_rss_kib(self) -> dict[str, int]:
        """Each component's peak resident set (VmHWM), read from /proc while it runs."""
        out = {}
        for name, pid in self.pids.items():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        out[name] = int(line.split()[1])
        return out

    # -- internals

    def _kubeconfigs(self) -> None:
        ca = self.pki["ca.crt"]
        for who, user in (
            ("admin", "admin"),
            ("controller-manager", "system:kube-controller-manager"),
            ("scheduler", "system:kube-scheduler"),
            ("kwok", "kwok"),
        ):
            name = "admin.kubeconfig" if who == "admin" else f"{who}.kubeconfig"
            _kubeconfig(
                self.state / name, self.server, ca, self.pki[f"{who}.crt"], self.pki[f"{who}.key"], user
            )

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.log_path(name), "ab")  # noqa: SIM115 - handed to the child process
        log.write(f"\n===== {time.strftime('%H:%M:%S')} starting {' '.join(args)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.state,
            env=env,
            start_new_session=True,  # own process group: never killed by a stray ^C to pytest
            preexec_fn=self._preexec(name),
        )
        log.close()
        self.procs[name] = proc
        self.pids[name] = proc.pid
        self._save()
        time.sleep(0.05)
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited at once with {proc.returncode}\n{self.logs_tail()}")

    def _preexec(self, name: str) -> Any:
        """What the child runs before exec (the real-node bed also enters its network namespace)."""
        return None if self.detach else _die_with_parent

    def _kill(self, name: str) -> None:
        pid = self.pids.pop(name, None)
        proc = self.procs.pop(name, None)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if proc is not None:
                if proc.poll() is not None:
                    break
            elif not _alive(pid):
                break
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            if proc is not None:
                proc.wait(5)
        self._save()

    def _save(self) -> None:
        (self.state / "pids.json").write_text(
            json.dumps(
                {
                    "pids": self.pids,
                    "ports": self.ports,
                    "kubeconfig": str(self.kubeconfig),
                    "timings": self.timings,
                },
                indent=2,
            )
        )

    def _bin(self, name: str) -> str:
        return str(self.bin_dir / name)

    def _start_etcd(self) -> None:
        self._spawn(
            "etcd",
            [
                self._bin("etcd"),
                "--name=e2e",
                f"--data-dir={self.state / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{self.ports['etcd']}",
                f"--advertise-client-urls=http://127.0.0.1:{self.ports['etcd']}",
                f"--listen-peer-urls=http://127.0.0.1:{self.ports['etcd-peer']}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{self.ports['etcd-peer']}",
                f"--initial-cluster=e2e=http://127.0.0.1:{self.ports['etcd-peer']}",
                "--log-level=warn",
                # Test data is throw-away; skipping fsync keeps a 2-core machine responsive.
                "--unsafe-no-fsync",
                "--quota-backend-bytes=4294967296",
            ],
        )

    def start_apiserver(self) -> None:
        p = self.pki
        self._spawn(
            "kube-apiserver",
            [
                self._bin("kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
                *self._apiserver_address_args(),
                f"--secure-port={self.ports['apiserver']}",
                f"--tls-cert-file={p['apiserver.crt']}",
                f"--tls-private-key-file={p['apiserver.key']}",
                f"--client-ca-file={p['ca.crt']}",
                "--authorization-mode=Node,RBAC",
                f"--service-account-key-file={p['sa.pub']}",
                f"--service-account-signing-key-file={p['sa.key']}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                f"--cert-dir={self.state / 'apiserver-certs'}",
                "--v=1",
            ],
        )

    def _apiserver_address_args(self) -> list[str]:
        return [
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # The advertise address is loopback, which Endpoints may not hold.
            "--endpoint-reconciler-type=none",
        ]

    def _controller_manager_extra_args(self) -> list[str]:
        return []

    def _start_controller_manager(self) -> None:
        p = self.pki
        kc = str(self.state / "controller-manager.kubeconfig")
        self._spawn(
            "kube-controller-manager",
            [
                self._bin("kube-controller-manager"),
                f"--kubeconfig={kc}",
                f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports['controller-manager']}",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={p['sa.key']}",
                f"--root-ca-file={p['ca.crt']}",
                f"--cluster-signing-cert-file={p['ca.crt']}",
                f"--cluster-signing-key-file={p['ca.key']}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--cluster-cidr={POD_CIDR}",
                # Fast feedback for tests: the HPA loop and GC resync run more often.
                "--horizontal-pod-autoscaler-sync-period=5s",
                *self._controller_manager_extra_args(),
                "--v=1",
            ],
        )

    def _start_scheduler(self) -> None:
        kc = str(self.state / "scheduler.kubeconfig")
        self._spawn(
            "kube-scheduler",
            [
                self._bin("kube-scheduler"),
                f"--kubeconfig={kc}",
                f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports['scheduler']}",
                "--leader-elect=false",
                "--v=1",
            ],
        )

    def _start_kwok(self) -> None:
        self._spawn(
            "kwok",
            [
                self._bin("kwok"),
                f"--kubeconfig={self.state / 'kwok.kubeconfig'}",
                f"--config={kwok_stages_config()}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--manage-nodes-with-label-selector=",
                "--cidr=10.0.0.1/24",
                "--node-ip=10.0.0.1",
                f"--server-address=127.0.0.1:{self.ports['kwok']}",
                f"--node-port={self.ports['kwok']}",
            ],
        )

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        return run_kubectl(self._bin("kubectl"), self.kubeconfig, *args, input=input, check=check)

    def _create_fake_nodes(self) -> None:
        docs = []
        for name in FAKE_NODES:
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                        "labels": {
                            "type": "kwok",
                            "kubernetes.io/hostname": name,
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            "kubernetes.io/role": "agent",
                            # fake GPUs, so self-hosted model servers (vLLM) get scheduled
                            "nvidia.com/gpu.present": "true",
                        },
                    },
                    "spec": {},
                    "status": {
                        "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110", "nvidia.com/gpu": "8"},
                        "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110", "nvidia.com/gpu": "8"},
                    },
                }
            )
        self.kubectl(
            "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})
        )

    # -- waiting

    def _wait_tcp(self, name: str, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive(name)
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                return
            time.sleep(0.1)
        raise TimeoutError(f"{name} did not listen on {port} within {timeout}s\n{self.logs_tail()}")

    def _check_alive(self, name: str) -> None:
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}\n{self.logs_tail()}")

    def _ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki["ca.crt"]))
        ctx.load_cert_chain(str(self.pki["admin.crt"]), str(self.pki["admin.key"]))
        return ctx

    def get_json(self, path: str, timeout: float = 5) -> Any:
        with urllib.request.urlopen(self.server + path, context=self._ssl(), timeout=timeout) as r:
            return json.loads(r.read())

    def wait_apiserver_ready(self, timeout: float) -> None:
        """Ready means ``/readyz`` answers 200 *and* API discovery lists the core groups."""
        deadline = time.monotonic() + timeout
        ctx = self._ssl()
        last = ""
        while time.monotonic() < deadline:
            self._check_alive("kube-apiserver")
            try:
                with urllib.request.urlopen(self.server + "/readyz", context=ctx, timeout=3) as r:
                    if r.status == 200:
                        groups = {g["name"] for g in self.get_json("/apis")["groups"]}
                        core = self.get_json("/api")["versions"]
                        if {"apps", "rbac.authorization.k8s.io", "apiextensions.k8s.io"} <= groups and core:
                            return
                        last = f"discovery incomplete: {sorted(groups)}"
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise TimeoutError(f"kube-apiserver not ready within {timeout}s ({last})\n{self.logs_tail()}")

    def wait_nodes_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        ready: set[str] = set()
        while time.monotonic() < deadline:
            for c in COMPONENTS:
                self._check_alive(c)
            nodes = self.get_json("/api/v1/nodes")["items"]
            ready = {
                n["metadata"]["name"]
                for n in nodes
                for c in n.get("status", {}).get("conditions", [])
                if c["type"] == "Ready" and c["status"] == "True"
            }
            if set(FAKE_NODES) <= ready:
                return
            time.sleep(0.2)
        raise TimeoutError(
            f"kwok nodes not Ready within {timeout}s (ready: {sorted(ready)})\n{self.logs_tail()}"
        )

    def _wait_default_service_account(self, timeout: float) -> None:
        """Pods need the namespace's ``default`` ServiceAccount, made by the controller manager."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive("kube-controller-manager")
            try:
                self.get_json("/api/v1/namespaces/default/serviceaccounts/default")
                return
            except urllib.error.HTTPError:
                time.sleep(0.2)
        raise TimeoutError(f"default ServiceAccount not created within {timeout}s\n{self.logs_tail()}")


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL the component if the test process dies without cleanup."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours still "exists"; /proc tells us it is dead.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return False
    return True


# --------------------------------------------------------------------------- command line


def default_state_dir() -> Path:
    return Path(
        os.environ.get("LLMPLATFORM_CLUSTER_STATE", Path(tempfile.gettempdir()) / "llmplatform-cluster")
    )


def make_bed(state: Path, nodes: str = "kwok", **kwargs: Any) -> ControlPlane:
    """The kwok bed (fake nodes) or the real-node bed (``realnodes.py``), binaries built first."""
    bins = build.ensure_built()
    if nodes == "kwok":
        return ControlPlane(state=state, bin_dir=bins, **kwargs)
    if nodes != "real":
        raise ValueError(f"nodes must be 'kwok' or 'real', not {nodes!r}")
    import nodes_build
    import realnodes

    return realnodes.RealNodeBed(state=state, bin_dir=bins, node_bin=nodes_build.ensure_built(), **kwargs)


def cmd_up(state: Path, nodes: str = "kwok") -> int:
    if (state / "pids.json").exists():
        info = json.loads((state / "pids.json").read_text())
        if any(_alive(p) for p in info["pids"].values()):
            print(f"a cluster is already running from {state}; `make cluster-down` first", file=sys.stderr)
            print(f"KUBECONFIG={info['kubeconfig']}")
            return 0
        cmd_down(state)
    cp = make_bed(state, nodes, detach=True, keep_state=True)
    try:
        cp.start()
    except BaseException:
        cp.keep_state = True  # keep the logs for the user to read
        for name in list(cp.pids):
            cp._kill(name)
        if nodes == "real":
            import realnodes

            realnodes.cleanup_leftovers(state)
        print(f"cluster failed to start; logs are in {state / 'logs'}", file=sys.stderr)
        raise
    detail = ""
    if "nodes_ready" in cp.timings:
        t = cp.timings
        detail = f" (real node Ready at {t['nodes_ready']:.1f}s, images loaded at {t['images_loaded']:.1f}s)"
    print(
        f"control plane up in {cp.timings['all_ready']:.1f}s{detail}; logs in {state / 'logs'}",
        file=sys.stderr,
    )
    print(f"KUBECONFIG={cp.kubeconfig}")
    return 0


def cmd_down(state: Path) -> int:
    import realnodes

    pidfile = state / "pids.json"
    if not pidfile.exists():
        # A real-node bed that crashed before writing pids.json still leaves mounts and a namespace.
        realnodes.cleanup_leftovers(state)
        if state.exists():
            shutil.rmtree(state, ignore_errors=True)
        print(f"no cluster state in {state}", file=sys.stderr)
        return 0
    info = json.loads(pidfile.read_text())
    cp: ControlPlane
    if info.get("nodes") == "real":
        cp = realnodes.RealNodeBed(state=state, bin_dir=build.bin_dir(), netns=info["netns"])
    else:
        cp = ControlPlane(state=state, bin_dir=build.bin_dir())
    cp.pids = {k: int(v) for k, v in info["pids"].items()}
    cp.stop()
    print(f"stopped {', '.join(info['pids'])} and removed {state}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Start or stop the local Kubernetes control plane.")
    ap.add_argument("action", choices=["up", "down"])
    ap.add_argument(
        "--nodes",
        choices=["kwok", "real"],
        default=os.environ.get("NODES") or "kwok",
        help="kwok: fake nodes (default); real: one node running real containers (realnodes.py)",
    )
    ap.add_argument(
        "--state", type=Path, default=None, help="state folder (default: $TMPDIR/llmplatform-cluster)"
    )
    args = ap.parse_args(argv)
    state = (args.state or default_state_dir()).resolve()
    return cmd_up(state, args.nodes) if args.action == "up" else cmd_down(state)


if __name__ == "__main__":
    sys.exit(main())
