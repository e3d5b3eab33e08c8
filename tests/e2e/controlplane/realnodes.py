"""The test bed with a real node: pods really run (``bed.py up --nodes real``).

Why: the kwok bed fakes its nodes, so images, probes, ConfigMap volume updates,
port-forward and NetworkPolicies are never exercised. Here one node runs real containers:

    containerd 2 + runc, kubelet, CNI (bridge, host-local, portmap, loopback),
    kube-proxy (iptables), CoreDNS, kube-router (NetworkPolicy, iptables + ipset)

Network isolation: the WHOLE bed (etcd, the control plane and the node) runs inside one
network namespace that the bed creates (``ip netns add``) and deletes. The node's address
is a veth inside it, pods hang off a CNI bridge inside it, and kube-proxy's and
kube-router's iptables rules live in it, so the machine's own interfaces, routes,
iptables rules and sysctls are never touched. Host-side tests reach the API server
through a loopback forwarder (``netns_forward.py``): it listens on the host's 127.0.0.1
and connects inside the namespace. ``kubectl logs/exec/port-forward`` go through the API
server to the kubelet's address inside the namespace.

Everything else is under the state folder too (containerd root and state, kubelet
root-dir, CNI config and IP leases, pod network namespaces). ``cleanup_leftovers`` removes
all of it, also after a crash: processes found by their state path, mounts under the
state folder, and the namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nodes_build
from bed import (
    SERVICE_CIDR,
    ControlPlane,
    _alive,
    _die_with_parent,
    _kubeconfig,
    _pki,
    free_port,
    run_kubectl,
)

NODE_NAME = "llmp-node-0"
NODE_IP = "10.250.0.1"
NODE_PREFIX = 24
POD_SUBNET = "10.244.0.0/24"
POD_CIDR_ALL = "10.244.0.0/16"
DNS_SERVICE_IP = "10.96.0.10"
PAUSE_IMAGE = "localhost/llmplatform/pause:1"
CLONE_NEWNET = 0x40000000
NODE_COMPONENTS = ("containerd", "kubelet", "kube-proxy", "coredns", "kube-router")


def netns_name(state: Path) -> str:
    """One namespace per state folder, so two beds (or a crashed one) never share one."""
    return "llmp-" + hashlib.sha256(str(state.resolve()).encode()).hexdigest()[:10]


def netns_path(name: str) -> Path:
    return Path("/run/netns") / name


def enter_netns(name: str) -> None:
    """setns(2) the calling thread into the bed's network namespace (nothing else changes)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open(netns_path(name), os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")


def create_netns(name: str) -> None:
    """The namespace, its loopback, the node's veth address, forwarding (all inside it)."""
    _ip("netns", "add", name)
    _ip("-n", name, "link", "set", "lo", "up")
    _ip("-n", name, "link", "add", "llmnode0", "type", "veth", "peer", "name", "llmnode1")
    _ip("-n", name, "addr", "add", f"{NODE_IP}/{NODE_PREFIX}", "dev", "llmnode0")
    _ip("-n", name, "link", "set", "llmnode0", "up")
    _ip("-n", name, "link", "set", "llmnode1", "up")
    # Locally made connections to Service IPs need a route before kube-proxy's DNAT.
    _ip("-n", name, "route", "add", SERVICE_CIDR, "dev", "llmnode0")
    for key in ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"):
        _sysctl_in_netns(name, key, "1")


def _sysctl_in_netns(name: str, key: str, value: str) -> None:
    """Write a per-namespace sysctl from a child that entered the namespace (never the host's)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import realnodes; realnodes.enter_netns(sys.argv[2]);"
        "open('/proc/sys/' + sys.argv[3], 'w').write(sys.argv[4])"
    )
    # /proc/sys/net reflects the namespace of the process that opened it.
    subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), name, key, value],
        check=True,
        capture_output=True,
    )


# --------------------------------------------------------------------------- cleanup


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve())
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mnt = line.split()[4].replace("\\040", " ")
        if mnt == prefix or mnt.startswith(prefix + "/"):
            out.append(mnt)
    return out


def unmount_under(root: Path) -> None:
    """Unmount everything below ``root`` (kubelet volumes, container rootfs, pod netns), deepest first."""
    for _ in range(5):
        mounts = _mounts_under(root)
        if not mounts:
            return
        for m in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)


def _procs_referencing(root: Path) -> list[int]:
    """Processes whose command line names the state folder (shims, containerd, kubelet...)."""
    needle = str(root.resolve()).encode()
    me = os.getpid()
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == me:
            continue
        with contextlib.suppress(OSError):
            if needle in (d / "cmdline").read_bytes():
                pids.append(int(d.name))
    return pids


def _descendants(pids: list[int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (d / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], list(pids)
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cleanup_leftovers(state: Path) -> None:
    """Remove what a (crashed) real-node bed leaves outside its processes' control.

    Order matters: kill containers and shims (found through the state path on their
    command line) and their children, then unmount, then delete the namespace.
    """
    victims = _descendants(_procs_referencing(state))
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in victims):
        time.sleep(0.1)
    if state.exists():
        unmount_under(state)
    name = netns_name(state)
    if netns_path(name).exists():
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    # The kubelet links container logs from the fixed /var/log/containers into podLogsDir.
    for link in Path("/var/log/containers").glob("*.log"):
        with contextlib.suppress(OSError):
            if link.is_symlink() and str(state.resolve()) in os.readlink(link):
                link.unlink()
    # libcni caches results per network name (ours is unique to this bed) and, for the
    # loopback that containerd sets up itself, per pod sandbox id.
    sandboxes = {d.name for d in state.glob("containerd/*/io.containerd.grpc.v1.cri/sandboxes/*")}
    results = Path("/var/lib/cni/results")
    for f in [*results.glob(f"{name}-*"), *(results / f"cni-loopback-{i}-lo" for i in sandboxes)]:
        with contextlib.suppress(OSError):
            f.unlink()


# --------------------------------------------------------------------------- pause image


def pause_image_archive(pause_binary: Path, out: Path) -> Path:
    """An OCI image archive holding only our static ``pause`` binary (the pods' sandbox)."""

    def blob(data: bytes) -> tuple[str, bytes]:
        return "sha256:" + hashlib.sha256(data).hexdigest(), data

    layer_tar = io.BytesIO()
    with tarfile.open(fileobj=layer_tar, mode="w") as tf:
        info = tarfile.TarInfo("pause")
        data = pause_binary.read_bytes()
        info.size, info.mode, info.mtime = len(data), 0o755, 0
        tf.addfile(info, io.BytesIO(data))
    diff_id = "sha256:" + hashlib.sha256(layer_tar.getvalue()).hexdigest()
    layer_digest, layer = blob(gzip.compress(layer_tar.getvalue(), mtime=0))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    config_digest, config_bytes = blob(json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": len(config_bytes),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest,
                "size": len(layer),
            }
        ],
    }
    manifest_digest, manifest_bytes = blob(json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": len(manifest_bytes),
                "annotations": {
                    "io.containerd.image.name": PAUSE_IMAGE,
                    "org.opencontainers.image.ref.name": "1",
                },
            }
        ],
    }
    with tarfile.open(out, "w") as tf:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tf.addfile(info, io.BytesIO(data))

        add("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        add("index.json", json.dumps(index).encode())
        for digest, data in (
            (layer_digest, layer),
            (config_digest, config_bytes),
            (manifest_digest, manifest_bytes),
        ):
            add("blobs/sha256/" + digest.split(":")[1], data)
    return out


# --------------------------------------------------------------------------- the bed


def images_bundle() -> Path:
    """The archive ``make images`` leaves for the bed to load (images/build.py bundle_path)."""
    return Path(nodes_build.build.cache_root()) / "images" / "archives" / "images.tar"


@dataclass
class RealNodeBed(ControlPlane):
    """``ControlPlane`` whose processes run in a bed network namespace, plus one real node."""

    node_bin: Path = field(default_factory=nodes_build.bin_dir)
    netns: str = ""

    def __post_init__(self) -> None:
        self.netns = self.netns or netns_name(self.state)

    # -- hooks into ControlPlane

    def _preexec(self, name: str) -> Any:
        netns, detach = self.netns, self.detach

        def run() -> None:
            if not detach:
                _die_with_parent()
            if name != "netns-forward":  # the forwarder opens its listener first, then enters
                enter_netns(netns)

        return run

    def _apiserver_address_args(self) -> list[str]:
        # Listen on every address of the namespace: 127.0.0.1 for the forwarder and the
        # components, the node address for pods (the `kubernetes` Service's endpoint).
        return [
            "--bind-address=0.0.0.0",
            f"--advertise-address={NODE_IP}",
            # logs/exec/port-forward: the API server calls the kubelet with its own client cert.
            f"--kubelet-client-certificate={self.pki['apiserver-kubelet-client.crt']}",
            f"--kubelet-client-key={self.pki['apiserver-kubelet-client.key']}",
            "--kubelet-preferred-address-types=InternalIP",
        ]

    def _controller_manager_extra_args(self) -> list[str]:
        return ["--allocate-node-cidrs=true", "--node-cidr-mask-size=24"]

    def _bin(self, name: str) -> str:
        node = self.node_bin / name
        return str(node if node.exists() and name in nodes_build.BINARIES else self.bin_dir / name)

    def logs_tail(self, lines: int = 60) -> str:
        parts = []
        for comp in dict.fromkeys(("etcd", "kube-apiserver", *self.pids, *NODE_COMPONENTS)):
            p = self.log_path(comp)
            if p.exists():
                tail = p.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"----- {comp} last {len(tail)} lines -----\n" + "\n".join(tail))
        return "\n".join(parts)

    def pods_report(self) -> str:
        """Pods, their nodes and the latest events: what a failing real-node test shows first."""
        pods = self.kubectl("get", "pods", "-A", "-o", "wide", check=False)
        events = self.kubectl("get", "events", "-A", "--sort-by=.lastTimestamp", check=False)
        return f"----- pods -----\n{pods}\n----- events (last 40) -----\n" + "\n".join(
            events.splitlines()[-40:]
        )

    # -- lifecycle

    def start(self) -> None:
        t0 = time.monotonic()
        if os.geteuid() != 0:
            raise RuntimeError(
                "the real-node bed runs as root (network namespaces, mounts, containers); "
                f"this process runs as uid {os.geteuid()}"
            )
        missing = nodes_build.missing_host_parts()
        if missing:
            raise RuntimeError("the real-node bed needs: apt-get install -y " + " ".join(missing))
        cleanup_leftovers(self.state)
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / "logs").mkdir(exist_ok=True)
        create_netns(self.netns)
        # Free on the host's loopback (the forwarder listens there); the namespace is new, so
        # free inside it too.
        for name in ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler"):
            self.ports[name] = free_port()
        self.pki = _pki_real(self.state)
        self._kubeconfigs()
        for who, user in (
            ("node", f"system:node:{NODE_NAME}"),
            ("kube-proxy", "system:kube-proxy"),
            ("bed-addons", "llmplatform-bed-addons"),
        ):
            _kubeconfig(
                self.state / f"{who}.kubeconfig",
                self.server,
                self.pki["ca.crt"],
                self.pki[f"{who}.crt"],
                self.pki[f"{who}.key"],
                user,
            )
        self._save()
        self._spawn(
            "netns-forward",
            [
                sys.executable,
                str(Path(__file__).parent / "netns_forward.py"),
                self.netns,
                str(self.ports["apiserver"]),
            ],
        )
        self._start_etcd()
        self._wait_in_netns("etcd", self.ports["etcd"], 30)
        self.start_apiserver()
        self.wait_apiserver_ready(90)
        self.timings["apiserver_ready"] = time.monotonic() - t0
        self._start_controller_manager()
        self._start_scheduler()
        self._start_containerd()
        # The pause image first (every pod needs it); `make images`' bundle (~400 MB to unpack)
        # loads while the node comes up.
        self.load_image(pause_image_archive(self.node_bin / "pause", self.state / "pause.oci.tar"))
        loader = _Background(self._load_bundle)
        self._start_kubelet()
        self._start_kube_proxy()
        self._start_coredns()
        self.wait_nodes_ready(120)
        self._start_kube_router()  # it looks its Node up once, at start
        self._wait_default_service_account(60)
        self.timings["nodes_ready"] = time.monotonic() - t0
        loader.join()
        self.timings["images_loaded"] = time.monotonic() - t0
        self.timings["all_ready"] = time.monotonic() - t0
        self._save()

    def stop(self) -> None:
        """SIGKILL to every component at once, then `cleanup_leftovers`.

        Why not ControlPlane's one-by-one SIGTERM: the whole bed (node, containers, etcd's
        data, the namespace with every rule) is thrown away right after, so a graceful stop
        saves nothing, and it cost 56 s measured (`bed.py down`), components using up their
        grace period one after another."""
        started = time.monotonic()
        pids = dict(self.pids)
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        for name, pid in pids.items():
            proc = self.procs.pop(name, None)
            while time.monotonic() < deadline and (proc.poll() is None if proc else _alive(pid)):
                time.sleep(0.05)
        self.pids.clear()
        cleanup_leftovers(self.state)
        self.timings["stop"] = time.monotonic() - started
        if not self.keep_state and self.state.exists():
            shutil.rmtree(self.state, ignore_errors=True)

    def _save(self) -> None:
        super()._save()
        info = json.loads((self.state / "pids.json").read_text())
        info.update({"nodes": "real", "netns": self.netns})
        (self.state / "pids.json").write_text(json.dumps(info, indent=2))

    # -- waiting

    def _wait_in_netns(self, name: str, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive(name)
            code = "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1)"
            if self.netns_run([sys.executable, "-c", code, str(port)], check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise TimeoutError(f"{name} did not listen on {port} within {timeout}s\n{self.logs_tail()}")

    def netns_run(
        self, args: list[str], check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the bed's namespace (as ``ip netns exec`` would, without new mounts)."""
        netns = self.netns
        return subprocess.run(
            args,
            preexec_fn=lambda: enter_netns(netns),
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def wait_nodes_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for c in self.pids:
                self._check_alive(c)
            with contextlib.suppress(Exception):
                node = self.get_json(f"/api/v1/nodes/{NODE_NAME}")
                for c in node.get("status", {}).get("conditions", []):
                    if c["type"] == "Ready" and c["status"] == "True":
                        return
            time.sleep(0.5)
        raise TimeoutError(f"node {NODE_NAME} not Ready within {timeout}s\n{self.logs_tail()}")

    # -- the node

    @property
    def containerd_socket(self) -> Path:
        return self.state / "containerd" / "containerd.sock"

    def ctr(self, *args: str, timeout: float = 300) -> str:
        proc = subprocess.run(
            [self._bin("ctr"), "--address", str(self.containerd_socket), "-n", "k8s.io", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def _start_containerd(self) -> None:
        cd = self.state / "containerd"
        (cd / "root").mkdir(parents=True, exist_ok=True)
        (cd / "state").mkdir(parents=True, exist_ok=True)
        cni = self.state / "cni"
        (cni / "net.d").mkdir(parents=True, exist_ok=True)
        (cni / "net.d" / "10-bed.conflist").write_text(json.dumps(self._cni_conflist(), indent=2))
        cfg = cd / "config.toml"
        cfg.write_text(
            CONTAINERD_CONFIG.format(
                root=cd / "root",
                state=cd / "state",
                socket=self.containerd_socket,
                runc=self._bin("runc"),
                cni_bin=nodes_build.CNI_DIR,
                cni_conf=cni / "net.d",
                pause=PAUSE_IMAGE,
            )
        )
        # containerd finds containerd-shim-runc-v2 on its PATH.
        env = {**os.environ, "PATH": f"{self.node_bin}:{os.environ.get('PATH', '')}"}
        self._spawn(
            "containerd", [self._bin("containerd"), "--config", str(cfg), "--log-level", "warn"], env=env
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self._check_alive("containerd")
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.ctr("version", timeout=5)
                return
            time.sleep(0.2)
        raise TimeoutError(f"containerd did not answer within 60s\n{self.logs_tail()}")

    def _cni_conflist(self) -> dict[str, Any]:
        return {
            "cniVersion": "1.0.0",
            "name": self.netns,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_SUBNET}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.state / "cni" / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }

    def _load_bundle(self) -> None:
        """Import the images ``make images`` left in the cache (none: only the pause image)."""
        if images_bundle().exists():
            self.load_image(images_bundle())

    def load_image(self, archive: Path) -> None:
        self.ctr("images", "import", str(archive))

    def _start_kubelet(self) -> None:
        node = self.state / "kubelet"
        node.mkdir(parents=True, exist_ok=True)
        (self.state / "resolv.conf").write_text(f"nameserver {DNS_SERVICE_IP}\n")
        cfg = node / "config.json"
        cfg.write_text(json.dumps(self._kubelet_config(), indent=2))
        self._spawn(
            "kubelet",
            [
                self._bin("kubelet"),
                f"--config={cfg}",
                f"--kubeconfig={self.state / 'node.kubeconfig'}",
                f"--root-dir={node / 'root'}",
                f"--cert-dir={node / 'pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
                "--node-labels=llmplatform.io/bed-node=real",
                "--v=1",
            ],
        )

    def _kubelet_config(self) -> dict[str, Any]:
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # This VM has cgroup v1 (hybrid); kubelet >= 1.35 refuses it unless told.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupsPerQOS": False,
            "enforceNodeAllocatable": [],
            "failSwapOn": False,
            "localStorageCapacityIsolation": False,
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "address": NODE_IP,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(self.pki["ca.crt"])},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "clusterDNS": [DNS_SERVICE_IP],
            "clusterDomain": "cluster.local",
            "resolvConf": str(self.state / "resolv.conf"),
            # A shared test machine's disk may be fuller than a node's defaults allow.
            "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            # ConfigMap volumes are refreshed at this period (plus the cache TTL).
            "syncFrequency": "10s",
            "serializeImagePulls": False,
            "maxPods": 60,
            "podLogsDir": str(self.state / "pod-logs"),
        }

    def _start_kube_proxy(self) -> None:
        cfg = self.state / "kube-proxy.json"
        cfg.write_text(
            json.dumps(
                {
                    "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                    "kind": "KubeProxyConfiguration",
                    "clientConnection": {"kubeconfig": str(self.state / "kube-proxy.kubeconfig")},
                    "mode": "iptables",
                    "clusterCIDR": POD_CIDR_ALL,
                    "hostnameOverride": NODE_NAME,
                    "healthzBindAddress": "127.0.0.1:10256",
                    "metricsBindAddress": "127.0.0.1:10249",
                    # nf_conntrack_max and the timeouts are machine-wide: leave them alone.
                    "conntrack": {
                        "maxPerCore": 0,
                        "min": 0,
                        "tcpEstablishedTimeout": "0s",
                        "tcpCloseWaitTimeout": "0s",
                    },
                    "iptables": {"localhostNodePorts": False},
                }
            )
        )
        self._spawn("kube-proxy", [self._bin("kube-proxy"), f"--config={cfg}", "--v=1"])

    def _start_coredns(self) -> None:
        corefile = self.state / "Corefile"
        corefile.write_text(COREFILE.format(node_ip=NODE_IP, kubeconfig=self.state / "bed-addons.kubeconfig"))
        self.kubectl("apply", "-f", "-", input=json.dumps(DNS_SERVICE))
        self._spawn("coredns", [self._bin("coredns"), "-conf", str(corefile)])

    def _start_kube_router(self) -> None:
        self._spawn(
            "kube-router",
            [
                self._bin("kube-router"),
                f"--kubeconfig={self.state / 'bed-addons.kubeconfig'}",
                "--run-firewall=true",
                "--run-router=false",
                "--run-service-proxy=false",
                "--enable-cni=false",  # the bed's own bridge CNI; kube-router only enforces policy
                f"--hostname-override={NODE_NAME}",
                "--health-port=0",
                "--metrics-port=0",
                "--v=1",
            ],
        )


class _Background:
    """Run a function in a thread; ``join`` re-raises what it raised."""

    def __init__(self, fn: Any) -> None:
        import threading

        self.error: BaseException | None = None

        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # handed to join()
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error


def _pki_real(state: Path) -> dict[str, Path]:
    return _pki(
        state,
        extra_ips=(NODE_IP,),
        extra_clients=(
            ("node", f"system:node:{NODE_NAME}", ("system:nodes",)),
            ("kube-proxy", "system:kube-proxy", ()),
            ("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",)),
            # CoreDNS and kube-router read cluster-wide objects; a bed-only admin identity.
            ("bed-addons", "llmplatform-bed-addons", ("system:masters",)),
        ),
    )


CONTAINERD_CONFIG = """\
# Generated by tests/e2e/controlplane/realnodes.py for one test bed; everything under its state folder.
version = 3
root = "{root}"
state = "{state}"

[grpc]
  address = "{socket}"

[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "{pause}"

[plugins."io.containerd.cri.v1.runtime"]
  # This VM refuses negative oom_score_adj; without this every sandbox fails to start.
  restrict_oom_score_adj = true
  # Pod network namespaces under the state folder, not /var/run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{cni_bin}"]
    conf_dir = "{cni_conf}"
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
      BinaryName = "{runc}"
      SystemdCgroup = false

[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"

[plugins."io.containerd.nri.v1.nri"]
  disable = true

[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""

COREFILE = """\
.:53 {{
    bind {node_ip}
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} llmplatform-e2e
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
"""

# CoreDNS runs as a node process; this selector-less Service and its EndpointSlice give pods
# the usual cluster DNS address.
DNS_SERVICE = {
    "apiVersion": "v1",
    "kind": "List",
    "items": [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
            "spec": {
                "clusterIP": DNS_SERVICE_IP,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                ],
            },
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kube-dns-node",
                "namespace": "kube-system",
                "labels": {"kubernetes.io/service-name": "kube-dns"},
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}}],
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
            ],
        },
    ],
}


def kubectl_in(state: Path, binary: str, *args: str) -> str:
    return run_kubectl(binary, state / "admin.kubeconfig", *args)
