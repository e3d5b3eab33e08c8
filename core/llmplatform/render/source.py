"""`llmplatform gateway --manifests DIR`: a gateway config source that renders a folder.

Why here and not in the gateway: the gateway must not load the rendering core, the resource
types or CEL (see docs/architecture.md). The CLI composes the two halves instead: it hands the
gateway this object, which has the methods of `llmplatform.gateway.source.ConfigSource` and
renders the folder with the same `render()` the operator calls. It is a plain picklable object,
so each spawned gateway worker gets its own copy and polls the folder itself (hot reload).
"""

from __future__ import annotations

import os
from pathlib import Path

from llmplatform.contract.config import GatewayConfig, SecretResolver
from llmplatform.render.core import render
from llmplatform.render.manifests import load_manifests
from llmplatform.render.secrets import SecretStore


class ManifestDir:
    def __init__(self, path: str, platform_namespace: str = "llm-platform") -> None:
        self.path = Path(path)
        self.platform_namespace = platform_namespace

    def describe(self) -> str:
        return f"manifests {self.path}"

    def fingerprint(self) -> object:
        """(path, inode, mtime, size) of every YAML file below the folder."""
        entries = []
        for root, _dirs, files in os.walk(self.path):
            for name in files:
                if name.endswith((".yaml", ".yml")):
                    st = (Path(root) / name).stat()
                    entries.append((os.path.join(root, name), st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(sorted(entries))

    def load(self) -> tuple[GatewayConfig, SecretResolver]:
        manifests = load_manifests(self.path)
        result = render(manifests.resources, manifests.secrets, platform_namespace=self.platform_namespace)
        return result.gateway_config, SecretStore(manifests.secrets).value
