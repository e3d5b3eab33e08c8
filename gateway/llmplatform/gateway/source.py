"""Where the config comes from, and how a change is noticed.

Why polling: a ConfigMap mounted as a volume is updated by the kubelet swapping a symlink, which
inotify-based watchers miss unless they watch the parent directory; a cheap `stat` once a second
(path, mtime, size) sees every kind of update, needs no Kubernetes API access and works the same
for `--manifests DIR`. A changed source is parsed, validated and compiled completely before it
replaces the serving config, so a bad file never serves.

The gateway knows one source of its own, `ConfigFile`: `--config` takes the file or the mounted
ConfigMap folder (which holds `config.json`, or `config.json.gz` for large configs), and each
model's `apiKeySecretRef` is read from `<secrets-dir>/<namespace>/<name>/<key>` (how the chart
mounts the Secrets). Any other object with the `ConfigSource` methods serves as well: the CLI
composes `--manifests DIR` from the rendering core (`llmplatform.render.source.ManifestDir`), so
the gateway itself never renders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from llmplatform.contract.config import (
    CONFIG_GZ_KEY,
    CONFIG_KEY,
    GatewayConfig,
    SecretResolver,
    read_config_file,
)

DEFAULT_SECRETS_DIR = "/var/run/llmplatform/secrets"


class ConfigSource(Protocol):
    """What the gateway polls: a cheap fingerprint, and the config with its Secret reader."""

    def describe(self) -> str:
        """For log lines: what is read."""
        ...

    def fingerprint(self) -> object:
        """Changes whenever the config may have changed (raises OSError when unreadable)."""
        ...

    def load(self) -> tuple[GatewayConfig, SecretResolver]:
        """The config and how to read the Secrets it names; raises when it is not valid."""
        ...


def stat_fingerprint(path: Path) -> tuple[str, int, int, int]:
    """(path, inode, mtime, size): follows the kubelet's ..data symlink to the current file."""
    st = path.stat()
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
                stat_fingerprint(self.path / k)
                for k in (CONFIG_KEY, CONFIG_GZ_KEY)
                if (self.path / k).exists()
            )
        return stat_fingerprint(self.path)

    def _secret(self, namespace: str, name: str, key: str) -> bytes | None:
        try:
            return (self.secrets_dir / namespace / name / key).read_bytes()
        except OSError:
            return None

    def load(self) -> tuple[GatewayConfig, SecretResolver]:
        return read_config_file(self.path), self._secret
