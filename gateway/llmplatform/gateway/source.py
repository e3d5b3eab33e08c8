"""Where the config comes from, and how a change is noticed.

Why polling: a ConfigMap mounted as a volume is updated by the kubelet swapping a symlink, which
inotify-based watchers miss unless they watch the parent directory; a cheap `stat` once a second
(path, mtime, size) sees every kind of update, needs no Kubernetes API access and works the same
for `--manifests DIR`. A changed file is parsed, validated and compiled completely before it
replaces the serving config, so a bad file never serves.

`--config` takes the file or the mounted ConfigMap folder (which holds `config.json`, or
`config.json.gz` for large configs).

Upstream credentials: with `--config` each model's `apiKeySecretRef` is read from
`<secrets-dir>/<namespace>/<name>/<key>` (how the chart mounts the Secrets); with
`--manifests` from the Secret manifests in the folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from llmplatform.gateway.compiled import Compiled, compile_config
from llmplatform.render import CONFIG_GZ_KEY, CONFIG_KEY, load_manifests, read_config_file, render
from llmplatform.render.secrets import SecretStore

DEFAULT_SECRETS_DIR = "/var/run/llmplatform/secrets"


def _stat(path: Path) -> tuple[str, int, int, int]:
    st = path.stat()  # follows the kubelet's ..data symlink to the current file
    return (str(path), st.st_ino, st.st_mtime_ns, st.st_size)


class ConfigFile:
    def __init__(self, path: str, secrets_dir: str = DEFAULT_SECRETS_DIR) -> None:
        self.path = Path(path)
        self.secrets_dir = Path(secrets_dir)

    def describe(self) -> str:
        return f"config file {self.path}"

    def fingerprint(self) -> object:
        if self.path.is_dir():  # the mounted ConfigMap folder: config.json or config.json.gz
            return tuple(
                _stat(self.path / k) for k in (CONFIG_KEY, CONFIG_GZ_KEY) if (self.path / k).exists()
            )
        return _stat(self.path)

    def _secret(self, namespace: str, name: str, key: str) -> bytes | None:
        try:
            return (self.secrets_dir / namespace / name / key).read_bytes()
        except OSError:
            return None

    def load(self) -> Compiled:
        return compile_config(read_config_file(self.path), self._secret)


class ManifestDir:
    def __init__(self, path: str, platform_namespace: str = "llm-platform") -> None:
        self.path = Path(path)
        self.platform_namespace = platform_namespace

    def describe(self) -> str:
        return f"manifests {self.path}"

    def fingerprint(self) -> object:
        entries = []
        for root, _dirs, files in os.walk(self.path):
            for name in files:
                if name.endswith((".yaml", ".yml")):
                    entries.append(_stat(Path(root) / name))
        return tuple(sorted(entries))

    def load(self) -> Compiled:
        manifests = load_manifests(self.path)
        result = render(manifests.resources, manifests.secrets, platform_namespace=self.platform_namespace)
        store = SecretStore(manifests.secrets)
        return compile_config(result.gateway_config, store.value)


ConfigSource = ConfigFile | ManifestDir
