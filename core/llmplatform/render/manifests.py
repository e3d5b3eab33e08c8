"""Read a folder of YAML manifests into render's inputs, with no cluster involved.

Why: `llmplatform render DIR` and `llmplatform gateway --manifests DIR` must see exactly what
`kubectl apply -f DIR` would create. Files are read in sorted order and documents are split
by kind; other kinds (Namespaces, for example) are kept aside rather than rejected, since a
GitOps folder naturally holds them too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmplatform.render.inputs import KIND_TYPES

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class Manifests:
    """What a folder holds, by role."""

    resources: list[dict[str, Any]] = field(default_factory=list)
    secrets: list[dict[str, Any]] = field(default_factory=list)
    other: list[dict[str, Any]] = field(default_factory=list)


class ManifestError(ValueError):
    """A file that is not valid YAML or a document that is not a Kubernetes object."""


def _documents(path: Path) -> list[dict[str, Any]]:
    try:
        docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: {exc}") from exc
    out: list[dict[str, Any]] = []
    for index, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, dict) or "kind" not in doc:
            raise ManifestError(f"{path}: document {index + 1} is not a Kubernetes object")
        if doc["kind"] == "List" or str(doc["kind"]).endswith("List"):
            out.extend(item for item in doc.get("items") or [] if isinstance(item, dict))
        else:
            out.append(doc)
    return out


def load_manifests(directory: str | Path) -> Manifests:
    """All objects in the .yaml/.yml files under `directory` (recursively, sorted by path)."""
    root = Path(directory)
    if not root.is_dir():
        raise ManifestError(f"{root}: not a directory")
    manifests = Manifests()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in YAML_SUFFIXES):
        for doc in _documents(path):
            if doc["kind"] in KIND_TYPES:
                manifests.resources.append(doc)
            elif doc["kind"] == "Secret" and doc.get("apiVersion") == "v1":
                manifests.secrets.append(doc)
            else:
                manifests.other.append(doc)
    return manifests
