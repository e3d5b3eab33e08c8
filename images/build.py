"""`make images` without Docker: the operator, gateway and mock-upstream images from images/Dockerfile.

Why: no Docker daemon and no image registry are reachable on the project's machines, yet the
chart's pods must really run in the real-node test bed. So:

1. **Base**: a Debian bookworm root file system made here from Debian's own packages with
   ``mmdebstrap`` (``--variant=minbase`` plus ``python3-venv``, ``python-is-python3`` and
   ``ca-certificates``: CPython 3.11 from Debian, the same minor version and Debian release as
   the Dockerfile's default ``python:3.11.x-slim-bookworm``). It is imported into buildah as
   ``localhost/llmplatform/python:3.11-bookworm`` and cached as a tar under
   ``~/.cache/llmplatform/images/base/`` (keyed by the package list).
2. **Build**: ``buildah bud`` runs images/Dockerfile unchanged, only with
   ``--build-arg PYTHON_IMAGE=localhost/llmplatform/python:3.11-bookworm``. A user with Docker
   builds the same stages from the official Python image instead::

       docker build -f images/Dockerfile --target gateway -t ghcr.io/llmplatform/gateway:<version> .

3. **Export**: the images are saved as one docker-archive,
   ``~/.cache/llmplatform/images/archives/images.tar`` (their shared layers once); the real-node
   bed imports it into its containerd when it starts (``ctr -n k8s.io images import``), and
   ``--load`` imports it into an already running real-node bed.

4. **Cache**: ``built.json`` next to the archive records a hash of everything the images are made
   from (the build context that ``.dockerignore`` lets through, the Dockerfile, this file, the
   base's package list, the image names). When it matches, ``make images`` (and the real-node
   tests, which call ``ensure_built``) reuse the archive without running buildah; a lock keeps
   two parallel builds from sharing buildah's storage.

Images are tagged with the chart's default names (``ghcr.io/llmplatform/<component>:<version>``),
so ``helm install`` with default values uses them without pulling (``IfNotPresent``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("operator", "gateway", "mock-upstream")
SUITE = "bookworm"
BASE_PACKAGES = ("python3-venv", "python-is-python3", "ca-certificates")
BASE_IMAGE = "localhost/llmplatform/python:3.11-bookworm"
REPO = os.environ.get("IMAGE_REPO", "ghcr.io/llmplatform")


def cache_root() -> Path:
    env = os.environ.get("LLMPLATFORM_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "llmplatform"


def archives_dir() -> Path:
    return cache_root() / "images" / "archives"


def bundle_path() -> Path:
    """All images in one docker-archive: the bed imports (and unpacks) shared layers once."""
    return archives_dir() / "images.tar"


CONTEXT = ("pyproject.toml", "README.md", "LICENSE", "core", "operator", "gateway")
"""What .dockerignore lets into the build context (a unit test checks the two agree)."""


def inputs_hash(targets: tuple[str, ...]) -> str:
    """Everything the images are built from: the context files (without bytecode), the
    Dockerfile, this recipe, the base's packages and the image names."""
    h = hashlib.sha256()
    h.update(" ".join([SUITE, *BASE_PACKAGES, *(image_name(t) for t in targets)]).encode())
    files = [ROOT / "images" / "Dockerfile", ROOT / ".dockerignore", Path(__file__).resolve()]
    for entry in CONTEXT:
        path = ROOT / entry
        files += sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
    for f in files:
        if "__pycache__" in f.parts or f.suffix == ".pyc":
            continue
        h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def merge_archives(parts: list[Path], out: Path) -> None:
    """One docker-archive holding every image of `parts`; a layer they share is stored once."""
    seen: set[str] = set()
    manifests: list[object] = []
    tmp = out.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as dst:
        for part in parts:
            with tarfile.open(part) as src:
                for member in src.getmembers():
                    if member.name == "manifest.json":
                        f = src.extractfile(member)
                        assert f is not None
                        manifests += json.load(f)
                    elif member.name not in seen and member.name != "repositories":
                        seen.add(member.name)
                        dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        data = json.dumps(manifests).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        dst.addfile(info, io.BytesIO(data))
    tmp.replace(out)


def version() -> str:
    m = re.search(r'^version = "(.*)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert m, "no version in pyproject.toml"
    return m.group(1)


def image_name(target: str, tag: str | None = None) -> str:
    return f"{REPO}/{target}:{tag or os.environ.get('IMAGE_TAG') or version()}"


def _log(msg: str) -> None:
    print(f"[images {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _run(cmd: list[str], **kw: object) -> None:
    _log("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True, **kw)  # type: ignore[call-overload]


def _buildah(*args: str) -> list[str]:
    storage = cache_root() / "images" / "buildah"
    return ["buildah", "--root", str(storage / "root"), "--runroot", str(storage / "run"), *args]


def base_tar() -> Path:
    """The Debian root file system (made once per package list, then reused)."""
    key = hashlib.sha256(f"{SUITE} {' '.join(BASE_PACKAGES)}".encode()).hexdigest()[:12]
    out = cache_root() / "images" / "base" / f"{SUITE}-python-{key}.tar"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.tar")
    _run(
        [
            "mmdebstrap",
            "--variant=minbase",
            "--include=" + ",".join(BASE_PACKAGES),
            # No apt lists and no docs in the image; nothing downloads packages at run time.
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--customize-hook=rm -rf $1/var/lib/apt/lists/* $1/var/cache/apt/*",
            SUITE,
            str(tmp),
        ]
    )
    tmp.rename(out)
    return out


def import_base() -> None:
    """Make the base tar a buildah image named BASE_IMAGE (skipped when it is already there)."""
    tar = base_tar()
    label = f"llmplatform.base-tar={tar.name}"
    proc = subprocess.run(
        _buildah("inspect", "--type", "image", "--format", "{{.OCIv1.Config.Labels}}", BASE_IMAGE),
        capture_output=True,
        text=True,
    )
    if proc.returncode == 0 and tar.name in proc.stdout:
        return
    ctr = subprocess.run(
        _buildah("from", "scratch"), check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        _run(_buildah("add", ctr, str(tar), "/"))
        _run(
            _buildah(
                "config",
                "--env",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--env",
                "LANG=C.UTF-8",
                "--label",
                label,
                "--cmd",
                "python3",
                ctr,
            )
        )
        _run(_buildah("commit", "--rm", ctr, BASE_IMAGE))
    except BaseException:
        subprocess.run(_buildah("rm", ctr), capture_output=True)
        raise


def _host_trust_volumes() -> list[str]:
    """Lend the build machine's CA bundle and pip settings to RUN steps (read-only, not committed).

    Why: networks that inspect TLS (as this project's machines do) re-sign PyPI's certificate
    with their own CA, which only the host trusts. Volumes are mounted for RUN steps only, so
    nothing of the host ends up in an image layer.
    """
    out = []
    for path in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pip.conf"):
        if Path(path).is_file():
            out += ["--volume", f"{path}:{path}:ro"]
    return out


PRUNE_BYTES = 6 << 30
"""buildah's storage past this size is pruned after a build (the next build then starts over)."""


def prune_when_large() -> None:
    """Remove untagged images once buildah's storage outgrows PRUNE_BYTES.

    Why not after every build: the untagged intermediate images ARE the layer cache (`--layers`);
    pruning them each time made every build reinstall the dependencies from PyPI (minutes)."""
    root = cache_root() / "images" / "buildah"
    size = 0
    for folder, _, files in os.walk(root):
        for f in files:
            with contextlib.suppress(OSError):  # a file removed meanwhile
                size += os.lstat(os.path.join(folder, f)).st_size
    if size > PRUNE_BYTES:
        _log(f"buildah storage holds {size >> 20} MiB: pruning untagged images")
        subprocess.run(_buildah("rmi", "--prune"), capture_output=True)


def ensure_built(targets: tuple[str, ...] = TARGETS, force: bool = False) -> Path:
    """The images' archive, built unless ``built.json`` says it was made from these very inputs."""
    archives_dir().mkdir(parents=True, exist_ok=True)
    with open(archives_dir().parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        key = inputs_hash(targets)
        stamp = archives_dir() / "built.json"
        fresh = not force and bundle_path().exists() and stamp.exists()
        if fresh and json.loads(stamp.read_text()).get("inputs") == key:
            _log(f"images up to date ({', '.join(image_name(t) for t in targets)}): {bundle_path()}")
            return bundle_path()
        build(targets, key)
        return bundle_path()


def build(targets: tuple[str, ...], key: str) -> None:
    for tool in ("buildah", "mmdebstrap"):
        if shutil.which(tool) is None:
            raise SystemExit(f"make images needs {tool}: apt-get install -y buildah mmdebstrap")
    t0 = time.monotonic()
    import_base()
    timings = {"base": time.monotonic() - t0}
    out = []
    archives_dir().mkdir(parents=True, exist_ok=True)
    for target in targets:
        t = time.monotonic()
        name = image_name(target)
        _run(
            _buildah(
                "bud",
                "--isolation",
                "chroot",
                "--pull-never",
                "--layers",
                "-f",
                str(ROOT / "images" / "Dockerfile"),
                "--target",
                target,
                "--build-arg",
                f"PYTHON_IMAGE={BASE_IMAGE}",
                *_host_trust_volumes(),
                "-t",
                name,
                str(ROOT),
            )
        )
        archive = archives_dir() / "parts" / f"{target}.tar"
        archive.parent.mkdir(exist_ok=True)
        archive.unlink(missing_ok=True)
        _run(_buildah("push", name, f"docker-archive:{archive}:{name}"))
        out.append(archive)
        timings[target] = time.monotonic() - t
    merge_archives(out, bundle_path())
    shutil.rmtree(archives_dir() / "parts")
    prune_when_large()
    (archives_dir() / "built.json").write_text(
        json.dumps(
            {
                "inputs": key,
                "images": [image_name(t) for t in targets],
                "seconds": {k: round(v, 1) for k, v in timings.items()},
            },
            indent=2,
        )
    )
    _log("built " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))


def load_into_running_bed(archives: list[Path]) -> None:
    """Import the archives into the real-node bed of `make cluster-up NODES=real`, if one runs."""
    sys.path.insert(0, str(ROOT / "tests" / "e2e" / "controlplane"))
    import bed

    state = bed.default_state_dir()
    info_path = state / "pids.json"
    if not info_path.exists() or json.loads(info_path.read_text()).get("nodes") != "real":
        _log(f"no real-node bed runs from {state}; the next `make cluster-up NODES=real` loads the images")
        return
    import realnodes

    node = realnodes.RealNodeBed(state=state, bin_dir=bed.build.bin_dir())
    for a in archives:
        node.load_image(a)
        _log(f"loaded {a.name} into the bed's containerd")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="*", help=f"default: {' '.join(TARGETS)}")
    ap.add_argument("--load", action="store_true", help="also import into a running real-node bed")
    ap.add_argument("--force", action="store_true", help="rebuild even when the inputs did not change")
    args = ap.parse_args(argv)
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        ap.error(f"unknown targets {sorted(unknown)}; choose from {TARGETS}")
    bundle = ensure_built(tuple(args.targets) or TARGETS, force=args.force)
    if args.load:
        load_into_running_bed([bundle])
    print(bundle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
