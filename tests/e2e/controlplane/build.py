"""Build a real Kubernetes control plane from the published Go modules.

Why this exists: our machines have no Docker engine and no prebuilt Kubernetes to
download, but they do reach the Go module proxy. Every component we need for
end-to-end tests (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
etcd, kwok, helm) is published there as Go source, so we compile them once into a
cache outside the checkout and reuse them on every later run.

``k8s.io/kubernetes`` cannot be built with ``go install pkg@version`` because its
go.mod points every staging module (``k8s.io/api``, ``k8s.io/apimachinery``, ...) at
``v0.0.0`` plus a local ``replace``. We therefore write a small wrapper module whose
``replace`` lines map each staging module to its published ``v0.X.Y`` tag. The list
is generated from the pinned release's own go.mod, never typed by hand, and the
wrapper copies that go.mod's ``godebug`` line so the binaries behave like upstream's.

Usage::

    python tests/e2e/controlplane/build.py          # build (or reuse) and print the bin dir
    python tests/e2e/controlplane/build.py --clean  # remove the whole cache
"""

from __future__ import annotations

import argparse
import datetime as _dt
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KUBERNETES_VERSION = "v1.36.3"
KWOK_VERSION = "v0.8.0"
HELM_VERSION = "v3.22.0"

KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
BINARIES = (*KUBE_COMMANDS, "etcd", "kwok", "helm")

ETCD_MAIN = """// Command etcd is upstream etcd's server entry point, built at the version
// that the pinned Kubernetes release itself depends on.
package main

import (
\t"os"

\t"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
\tetcdmain.Main(os.Args)
}
"""

SUMDB_HINT = (
    "The Go checksum database could not be reached. The go command normally reaches it "
    "through the module proxy (GOPROXY=https://proxy.golang.org,direct and "
    "GOSUMDB=sum.golang.org). If neither works on this network, set GOSUMDB=off (or "
    "GONOSUMDB=k8s.io,sigs.k8s.io,go.etcd.io,helm.sh) and GOFLAGS=-mod=mod for this build; "
    "the module proxy still serves the same, immutable module versions."
)


def cache_root() -> Path:
    """The cache lives outside the checkout so fresh clones and CI reuse it."""
    env = os.environ.get("LLMPLATFORM_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "llmplatform"


def version_dir(version: str = KUBERNETES_VERSION) -> Path:
    return cache_root() / f"k8s-{version}"


def bin_dir(version: str = KUBERNETES_VERSION) -> Path:
    return version_dir(version) / "bin"


def recipe_hash() -> str:
    """Changing this file or the pins invalidates the cache (the stamp stores the hash)."""
    h = hashlib.sha256()
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:16]


def _log(msg: str) -> None:
    print(f"[controlplane-build {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    _log("$ " + " ".join(cmd))
    proc = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True)
    if proc.returncode != 0:
        out = (proc.stdout or "") + (proc.stderr or "")
        hint = ""
        if re.search(r"sum\.golang\.org|checksum database|verifying .*: .*dial", out):
            hint = "\n\n" + SUMDB_HINT
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{out[-6000:]}{hint}")
    return proc.stdout


def _go_env(gobin: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOPROXY", "https://proxy.golang.org,direct")
    env["CGO_ENABLED"] = "0"
    env["GOFLAGS"] = (env.get("GOFLAGS", "") + " -buildvcs=false").strip()
    # The pinned releases need Go >= 1.26; never let the go command fetch another toolchain
    # behind our back unless the caller asked for one.
    env.setdefault("GOTOOLCHAIN", "local")
    if gobin is not None:
        env["GOBIN"] = str(gobin)
    return env


def staging_replaces(kubernetes_gomod: str, version: str) -> tuple[list[tuple[str, str]], str | None]:
    """Return ``(module, published version)`` for every staging replace, and the godebug line.

    A staging module is one that the release's go.mod replaces with ``./staging/src/<module>``;
    staging modules are published with tag ``v0.<minor>.<patch>`` for release ``v1.<minor>.<patch>``.
    """
    m = re.fullmatch(r"v1\.(\d+)\.(\d+)", version)
    if not m:
        raise ValueError(f"unsupported Kubernetes version {version!r}")
    staging_version = f"v0.{m.group(1)}.{m.group(2)}"
    pairs = []
    for mod, path in re.findall(
        r"^\s*(?:replace\s+)?(\S+)\s+=>\s+(\./staging/src/\S+)\s*$", kubernetes_gomod, re.M
    ):
        if path != f"./staging/src/{mod}":
            raise ValueError(f"unexpected staging layout: {mod} => {path}")
        pairs.append((mod, staging_version))
    if not pairs:
        raise ValueError("no staging replace lines found in the Kubernetes go.mod")
    godebug = None
    gd = re.search(r"^godebug\s+.*$|^godebug\s*\((?:.|\n)*?\)", kubernetes_gomod, re.M)
    if gd:
        godebug = gd.group(0)
    return sorted(pairs), godebug


def wrapper_gomod(kubernetes_gomod: str, version: str) -> str:
    """The go.mod of the wrapper module that builds the Kubernetes commands and etcd."""
    pairs, godebug = staging_replaces(kubernetes_gomod, version)
    go_line = re.search(r"^go\s+(\S+)", kubernetes_gomod, re.M)
    lines = [
        "// Generated by tests/e2e/controlplane/build.py; do not edit.",
        "module llmplatform.local/controlplane",
        "",
        f"go {go_line.group(1) if go_line else '1.26.0'}",
        "",
    ]
    if godebug:
        lines += [godebug, ""]
    lines += [f"require k8s.io/kubernetes {version}", "", "replace ("]
    lines += [f"\t{mod} => {mod} {ver}" for mod, ver in pairs]
    lines += [")", ""]
    return "\n".join(lines)


def version_ldflags(version: str) -> str:
    """The same -X flags as upstream's hack/lib/version.sh, so /version tells the truth."""
    m = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)", version)
    assert m
    build_date = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    values = {
        "gitVersion": version,
        "gitMajor": m.group(1),
        "gitMinor": m.group(2),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": build_date,
    }
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X '{pkg}.{k}={v}'" for k, v in values.items()]
    return " ".join(flags)


def _download_gomod(module: str, version: str, workdir: Path, env: dict[str, str]) -> str:
    out = _run(["go", "mod", "download", "-json", f"{module}@{version}"], workdir, env)
    info = json.loads(out)
    if info.get("Error"):
        raise RuntimeError(f"go mod download {module}@{version}: {info['Error']}")
    return Path(info["GoMod"]).read_text()


def build_kubernetes(out: Path, work: Path, version: str) -> None:
    env = _go_env()
    scratch = work / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "go.mod").write_text("module scratch\n\ngo 1.26.0\n")
    kgomod = _download_gomod("k8s.io/kubernetes", version, scratch, env)

    mod = work / "kube"
    (mod / "etcd").mkdir(parents=True, exist_ok=True)
    (mod / "go.mod").write_text(wrapper_gomod(kgomod, version))
    (mod / "etcd" / "main.go").write_text(ETCD_MAIN)
    pkgs = [f"k8s.io/kubernetes/cmd/{c}" for c in KUBE_COMMANDS]
    # `go get` resolves the whole requirement graph of the pinned release through the
    # replaces above; etcd comes in at the version Kubernetes itself requires.
    _run(["go", "get", *[f"{p}@{version}" for p in pkgs], "go.etcd.io/etcd/server/v3/etcdmain"], mod, env)
    _run(
        ["go", "build", "-trimpath", "-ldflags", version_ldflags(version), "-o", str(out) + "/", *pkgs],
        mod,
        env,
    )
    _run(["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out / "etcd"), "./etcd"], mod, env)


def build_go_install(out: Path, work: Path, pkg: str, version: str) -> None:
    env = _go_env(gobin=out)
    _run(["go", "install", "-trimpath", "-ldflags", "-s -w", f"{pkg}@{version}"], work, env)


def ensure_built(version: str = KUBERNETES_VERSION, force: bool = False) -> Path:
    """Build every binary into the cache unless a complete build is already there.

    Guarded by an exclusive file lock so that parallel test sessions (or `make cluster-up`
    racing pytest) build once and share the result.
    """
    vdir = version_dir(version)
    vdir.mkdir(parents=True, exist_ok=True)
    bdir = vdir / "bin"
    stamp = vdir / "stamp.json"
    with open(vdir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and stamp.exists() and all((bdir / b).exists() for b in BINARIES):
            data = json.loads(stamp.read_text())
            if data.get("recipe") == recipe_hash():
                return bdir
            _log("build recipe changed; rebuilding")
        if shutil.which("go") is None:
            raise RuntimeError("the Go toolchain (go >= 1.26) is needed to build the control plane")
        _log("building the control plane on first use: about 10-15 minutes on 2 cores; later runs reuse it")
        started = time.monotonic()
        tmp_bin = Path(tempfile.mkdtemp(prefix="bin-", dir=vdir))
        with tempfile.TemporaryDirectory(prefix="llmplatform-build-") as w:
            work = Path(w)
            timings: dict[str, float] = {}
            t = time.monotonic()
            build_kubernetes(tmp_bin, work, version)
            timings["kubernetes+etcd"] = time.monotonic() - t
            t = time.monotonic()
            build_go_install(tmp_bin, work, "sigs.k8s.io/kwok/cmd/kwok", KWOK_VERSION)
            timings["kwok"] = time.monotonic() - t
            t = time.monotonic()
            build_go_install(tmp_bin, work, "helm.sh/helm/v3/cmd/helm", HELM_VERSION)
            timings["helm"] = time.monotonic() - t
        missing = [b for b in BINARIES if not (tmp_bin / b).exists()]
        if missing:
            raise RuntimeError(f"build finished but these binaries are missing: {missing}")
        if bdir.exists():
            shutil.rmtree(bdir)
        tmp_bin.rename(bdir)
        total = time.monotonic() - started
        stamp.write_text(
            json.dumps(
                {
                    "recipe": recipe_hash(),
                    "kubernetes": version,
                    "kwok": KWOK_VERSION,
                    "helm": HELM_VERSION,
                    "seconds": round(total, 1),
                    "step_seconds": {k: round(v, 1) for k, v in timings.items()},
                    "built_at": _dt.datetime.now(_dt.UTC).isoformat(),
                },
                indent=2,
            )
        )
        _log(f"built {', '.join(BINARIES)} in {total:.0f}s into {bdir}")
        return bdir


def clean() -> None:
    root = cache_root()
    if root.exists():
        shutil.rmtree(root)
    print(f"removed {root}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clean", action="store_true", help="remove the whole build cache")
    ap.add_argument("--force", action="store_true", help="rebuild even when the cache is complete")
    args = ap.parse_args(argv)
    if args.clean:
        clean()
        return 0
    try:
        print(ensure_built(force=args.force))
    except RuntimeError as exc:
        print(f"control-plane build failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
