"""Build what a *real* node of the test bed runs, from the published Go modules.

Why this exists: the kwok bed fakes its nodes, so nothing there ever runs a container.
The real-node bed (``bed.py up --nodes real``) needs a kubelet, kube-proxy, a container
runtime, DNS and a NetworkPolicy enforcer. None is downloadable as a binary here, and
Debian's containerd 1.6, runc 1.1.5 and crun 1.8.1 are too old for Kubernetes 1.36, so
we compile them the same way ``build.py`` compiles the control plane: pinned versions,
one shared cache, one lock, a stamp that records what was built and how long it took.

This is a separate recipe with its own stamp (``nodes-stamp.json``) and folder
(``node-bin``): the kwok bed does not pay for it, and editing it never invalidates the
control-plane binaries. It has its own lock (``.nodes-lock``): holding the control
plane's lock for the node build would stall every kwok test session meanwhile.

- kubelet, kube-proxy: the same wrapper module around ``k8s.io/kubernetes`` as build.py.
- containerd, containerd-shim-runc-v2, ctr: ``github.com/containerd/containerd/v2``.
- runc: needs cgo and libseccomp (Debian ``libseccomp-dev`` + ``pkg-config``).
- CoreDNS: ``github.com/coredns/coredns``.
- kube-router (firewall only) as the NetworkPolicy enforcer. It enforces with iptables
  and ipset, both present on this kernel; kube-network-policies needs ``nft_queue``
  (absent here) and Cilium's eBPF agent is far heavier. kube-router v2.1.0 has reported
  security flaws, so it is confined to the throw-away bed: it runs inside the bed's
  own network namespace, with the bed's own kubeconfig, never on a shared host.
- pause: the pods' sandbox process (ours, below), so no registry image is needed.
- The CNI plugins (bridge, host-local, portmap, loopback) come from Debian's
  ``containernetworking-plugins`` (``/usr/lib/cni``); nothing to build.

Usage::

    python tests/e2e/controlplane/nodes_build.py    # build (or reuse); prints the bin dir
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build as build  # re-exported: realnodes uses nodes_build.build

CONTAINERD_VERSION = "v2.4.2"
RUNC_VERSION = "v1.5.3"
COREDNS_VERSION = "v1.15.0"
KUBE_ROUTER_VERSION = "v2.1.0"

NODE_KUBE_COMMANDS = ("kubelet", "kube-proxy")
BINARIES = (
    *NODE_KUBE_COMMANDS,
    "containerd",
    "containerd-shim-runc-v2",
    "ctr",
    "runc",
    "coredns",
    "kube-router",
    "pause",
)
CNI_DIR = Path("/usr/lib/cni")
CNI_PLUGINS = ("bridge", "host-local", "portmap", "loopback")
# Debian packages the node needs at run time (or to build runc): checked, never installed here.
HOST_TOOLS = {
    "iptables": "iptables",
    "ipset": "ipset",
    "pkg-config": "pkg-config",
}


PAUSE_MAIN = """// Command pause is the sandbox process of the test bed's pods: it holds the pod's
// namespaces and waits until it is told to stop.
package main

import (
\t"os"
\t"os/signal"
\t"syscall"
)

func main() {
\tc := make(chan os.Signal, 1)
\tsignal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
\t<-c
}
"""


def bin_dir() -> Path:
    return build.version_dir() / "node-bin"


def recipe_hash() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def missing_host_parts() -> list[str]:
    """What Debian must provide before the real-node bed can build or run, as install hints."""
    missing = [pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None]
    if not Path("/usr/include/seccomp.h").exists():
        missing.append("libseccomp-dev")
    if not all((CNI_DIR / p).exists() for p in CNI_PLUGINS):
        missing.append("containernetworking-plugins")
    return sorted(set(missing))


def build_node_kube(out: Path, work: Path) -> None:
    """kubelet and kube-proxy through build.py's wrapper module (same replaces, same ldflags)."""
    env = build._go_env()
    version = build.KUBERNETES_VERSION
    scratch = work / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "go.mod").write_text("module scratch\n\ngo 1.26.0\n")
    kgomod = build._download_gomod("k8s.io/kubernetes", version, scratch, env)
    mod = work / "kube"
    mod.mkdir(parents=True, exist_ok=True)
    (mod / "go.mod").write_text(build.wrapper_gomod(kgomod, version))
    pkgs = [f"k8s.io/kubernetes/cmd/{c}" for c in NODE_KUBE_COMMANDS]
    build._run(["go", "get", *[f"{p}@{version}" for p in pkgs]], mod, env)
    build._run(
        ["go", "build", "-trimpath", "-ldflags", build.version_ldflags(version), "-o", str(out) + "/", *pkgs],
        mod,
        env,
    )


def build_runc(out: Path, work: Path) -> None:
    env = build._go_env(gobin=out)
    env["CGO_ENABLED"] = "1"
    build._run(
        [
            "go",
            "install",
            "-trimpath",
            "-tags",
            "seccomp",
            "-ldflags",
            "-s -w",
            f"github.com/opencontainers/runc@{RUNC_VERSION}",
        ],
        work,
        env,
    )


def build_containerd(out: Path, work: Path) -> None:
    env = build._go_env(gobin=out)
    pkgs = [
        f"github.com/containerd/containerd/v2/cmd/{c}@{CONTAINERD_VERSION}"
        for c in ("containerd", "containerd-shim-runc-v2", "ctr")
    ]
    build._run(["go", "install", "-trimpath", "-ldflags", "-s -w", *pkgs], work, env)


def build_pause(out: Path, work: Path) -> None:
    mod = work / "pause"
    mod.mkdir(parents=True, exist_ok=True)
    (mod / "go.mod").write_text("module llmplatform.local/pause\n\ngo 1.26.0\n")
    (mod / "main.go").write_text(PAUSE_MAIN)
    build._run(
        ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out / "pause"), "."], mod, build._go_env()
    )


def ensure_built(force: bool = False) -> Path:
    """Build every node binary into the cache unless a complete build with this recipe is there."""
    vdir = build.version_dir()
    vdir.mkdir(parents=True, exist_ok=True)
    bdir = bin_dir()
    stamp = vdir / "nodes-stamp.json"
    with open(vdir / ".nodes-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and stamp.exists() and all((bdir / b).exists() for b in BINARIES):
            if json.loads(stamp.read_text()).get("recipe") == recipe_hash():
                return bdir
            build._log("node build recipe changed; rebuilding")
        missing = missing_host_parts()
        if missing:
            raise RuntimeError(
                "the real-node bed needs these Debian packages: apt-get install -y " + " ".join(missing)
            )
        if shutil.which("go") is None:
            raise RuntimeError("the Go toolchain (go >= 1.26) is needed to build the node binaries")
        started = time.monotonic()
        tmp_bin = Path(tempfile.mkdtemp(prefix="node-bin-", dir=vdir))
        timings: dict[str, float] = {}
        with tempfile.TemporaryDirectory(prefix="llmplatform-nodebuild-") as w:
            work = Path(w)
            steps: tuple[tuple[str, Callable[[], object]], ...] = (
                ("pause", lambda: build_pause(tmp_bin, work)),
                ("kubelet+kube-proxy", lambda: build_node_kube(tmp_bin, work)),
                ("runc", lambda: build_runc(tmp_bin, work)),
                ("containerd", lambda: build_containerd(tmp_bin, work)),
                (
                    "coredns",
                    lambda: build.build_go_install(
                        tmp_bin, work, "github.com/coredns/coredns", COREDNS_VERSION
                    ),
                ),
                (
                    "kube-router",
                    lambda: build.build_go_install(
                        tmp_bin,
                        work,
                        "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router",
                        KUBE_ROUTER_VERSION,
                    ),
                ),
            )
            for name, step in steps:
                t = time.monotonic()
                step()
                timings[name] = time.monotonic() - t
                build._log(f"built {name} in {timings[name]:.0f}s")
        absent = [b for b in BINARIES if not (tmp_bin / b).exists()]
        if absent:
            raise RuntimeError(f"node build finished but these binaries are missing: {absent}")
        if bdir.exists():
            shutil.rmtree(bdir)
        tmp_bin.rename(bdir)
        total = time.monotonic() - started
        stamp.write_text(
            json.dumps(
                {
                    "recipe": recipe_hash(),
                    "kubernetes": build.KUBERNETES_VERSION,
                    "containerd": CONTAINERD_VERSION,
                    "runc": RUNC_VERSION,
                    "coredns": COREDNS_VERSION,
                    "kube-router": KUBE_ROUTER_VERSION,
                    "seconds": round(total, 1),
                    "step_seconds": {k: round(v, 1) for k, v in timings.items()},
                    "built_at": _dt.datetime.now(_dt.UTC).isoformat(),
                },
                indent=2,
            )
        )
        build._log(f"built {', '.join(BINARIES)} in {total:.0f}s into {bdir}")
        return bdir


def main() -> int:
    try:
        print(ensure_built(force="--force" in sys.argv[1:]))
    except RuntimeError as exc:
        print(f"node build failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
