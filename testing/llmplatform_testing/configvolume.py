"""A ConfigMap volume as the kubelet writes it, for gateways run as processes in tests.

Why: there is no kubelet on the kwok bed or in the gateway tests, yet the gateway must be
tested against what a pod sees: each key a symlink `<key> -> ..data/<key>`, `..data` a symlink
to a timestamped folder, and an update that swaps `..data` in one rename (the kubelet's
AtomicWriter). Which version of each ConfigMap lands in the folder is the caller's choice, so
a test can deliver an index before its shards, as the kubelet may.
"""

from __future__ import annotations

import base64
import itertools
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

_SEQ = itertools.count()


def files_of(config_maps: Iterable[Mapping[str, Any] | Any]) -> dict[str, bytes]:
    """Every key of the ConfigMaps (dicts as the API returns them, or kubernetes-client
    V1ConfigMap objects), as the files a projected volume of all of them holds."""
    out: dict[str, bytes] = {}
    for cm in config_maps:
        if isinstance(cm, Mapping):
            data, binary = cm.get("data") or {}, cm.get("binaryData") or {}
        else:
            data, binary = cm.data or {}, cm.binary_data or {}
        out.update({k: str(v).encode("utf-8") for k, v in data.items()})
        out.update({k: base64.b64decode(v) for k, v in binary.items()})
    return out


def write_volume(folder: Path, files: Mapping[str, bytes]) -> None:
    """Make `folder` hold exactly `files`, swapped in at once as the kubelet does."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / f"..{os.getpid()}_{next(_SEQ)}"
    stamp.mkdir()
    for name, content in files.items():
        (stamp / name).write_bytes(content)
    data = folder / "..data"
    old = data.resolve() if data.is_symlink() else None
    tmp = folder / "..data_tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(stamp.name)
    tmp.replace(data)
    for name in files:
        link = folder / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")
    for entry in folder.iterdir():
        if not entry.name.startswith(".") and entry.name not in files:
            entry.unlink()
    if old is not None and old != stamp.resolve():
        shutil.rmtree(old, ignore_errors=True)
