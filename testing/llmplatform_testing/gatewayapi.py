"""The Gateway API CRDs (standard channel) for chart tests that create an HTTPRoute.

Why fetched and not vendored: the CRDs are another project's files (kubernetes-sigs/gateway-api,
Apache-2.0); the Go module proxy, which the bed already uses for every binary it builds, serves
that project's module at a pinned version, and its zip holds `config/crd/standard/*.yaml`. They
are copied once into the bed's cache (~/.cache/llmplatform, next to the binaries), so later runs
need no network.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from llmplatform_testing.controlplane import build

VERSION = "v1.6.3"
"""The newest release whose go.mod the pinned Go toolchain accepts (v1.7 asks for Go 1.27)."""
MODULE = "sigs.k8s.io/gateway-api"
CRDS = ("gatewayclasses", "gateways", "httproutes", "backendtlspolicies")
"""What the chart's HTTPRoute, its parents and its BackendTLSPolicy need (the standard channel
also has GRPC/TLS routes, ReferenceGrants, ListenerSets and an admission policy, unused here)."""


def crd_files(version: str = VERSION) -> list[Path]:
    """The CRD files, from the cache or fetched into it with `go mod download`."""
    folder = build.cache_root() / f"gateway-api-{version}"
    files = [folder / f"gateway.networking.k8s.io_{name}.yaml" for name in CRDS]
    if all(f.exists() for f in files):
        return files
    proc = subprocess.run(
        ["go", "mod", "download", "-json", f"{MODULE}@{version}"],
        capture_output=True,
        text=True,
        env=build._go_env(),
        cwd=tempfile.gettempdir(),
        timeout=600,
    )
    info = json.loads(proc.stdout) if proc.stdout.strip() else {}
    if proc.returncode != 0 or info.get("Error"):
        raise RuntimeError(f"go mod download {MODULE}@{version} failed: {info.get('Error') or proc.stderr}")
    source = Path(info["Dir"]) / "config" / "crd" / "standard"
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        tmp = f.with_suffix(".tmp")
        tmp.write_text((source / f.name).read_text())
        tmp.replace(f)
    return files
