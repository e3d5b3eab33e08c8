"""Where the config comes from, and how a change is noticed.

Why polling: a ConfigMap mounted as a volume is updated by the kubelet swapping a symlink, which
inotify-based watchers miss unless they watch the parent directory; a cheap `stat` once a second
(path, mtime, size) sees every kind of update, needs no Kubernetes API access and works the same
for `--manifests DIR`. A changed source is parsed, validated and compiled completely before it
replaces the serving config, so a bad file never serves.

The gateway knows one source of its own, `ConfigFile`: `--config` takes the file or the mounted
ConfigMap folder (which holds `config.json`, or `config.json.gz` for large configs, or, for a
sharded config, `index.json` and the shard files of a projected volume: a generation is
applied only once every shard it lists is there with its hash, see
`llmplatform.contract.shards`), and each
model's `apiKeySecretRef` is read from `<secrets-dir>/<namespace>/<name>/<key>` (how the chart
mounts the Secrets). Any other object with the `ConfigSource` methods serves as well: the CLI
composes `--manifests DIR` from the rendering core (`llmplatform.render.source.ManifestDir`), so
the gateway itself never renders.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from llmplatform.contract.config import GatewayConfig, SecretResolver, seal
from llmplatform.contract.names import GATEWAY_SECRETS_DIR
from llmplatform.contract.shards import ShardCache, read_mounted_config

DEFAULT_SECRETS_DIR = GATEWAY_SECRETS_DIR


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


def _stat_or_none(path: Path) -> tuple[str, int, int, int] | None:
    try:
        return stat_fingerprint(path)
    except OSError:
        return None


class ConfigFile:
    """The config file (or mounted ConfigMap folder) and the credential files it names.

    The fingerprint covers the credential files the last load read, too: the kubelet updates
    a mounted Secret in place (a rotated key, an empty key filled in), and the gateway should
    call the model with the new key, or at all, without waiting for the next config change."""

    def __init__(self, path: str, secrets_dir: str = DEFAULT_SECRETS_DIR) -> None:
        self.path = Path(path)
        self.secrets_dir = Path(secrets_dir)
        self._read: set[Path] = set()
        """Credential files the last load asked for."""
        self._shards = ShardCache()
        """Shards of the last sharded config, by hash: a reload parses only the changed ones."""

    def describe(self) -> str:
        return f"config file {self.path}"

    def fingerprint(self) -> object:
        if self.path.is_dir():  # the mounted folder: every file in it (the kubelet's are symlinks)
            config: object = tuple(
                stat_fingerprint(entry)
                for entry in sorted(self.path.iterdir())
                if not entry.name.startswith(".") and entry.is_file()
            )
        else:
            config = stat_fingerprint(self.path)
        return (config, tuple(_stat_or_none(p) for p in sorted(self._read)))

    def _secret(self, namespace: str, name: str, key: str) -> bytes | None:
        path = self.secrets_dir / namespace / name / key
        self._read.add(path)
        try:
            return path.read_bytes()
        except OSError:
            return None

    def load(self) -> tuple[GatewayConfig, SecretResolver]:
        config = read_mounted_config(self.path, self._shards)
        self._read = set()
        return config, self._secret


def parse_override(text: str) -> tuple[str, str]:
    """`MODEL=URL` (`*=URL`: every model) -> (model, url); ValueError says what is wrong."""
    name, sep, url = text.partition("=")
    if not sep or not name or not url.startswith(("http://", "https://")):
        raise ValueError(f"expected MODEL=URL (or *=URL) with an http(s) URL, got {text!r}")
    return name, url.rstrip("/")


class UpstreamOverrides:
    """Another config source with some models' upstream URLs replaced.

    Why: `make run` and local trials serve manifests whose models point at api.openai.com or a
    cluster Service; `--upstream-override MODEL=URL` (or `--mock`) sends them to a local
    upstream instead without editing the manifests. A model is matched by its LLMModel name or
    its id (`namespace/name`); `*` matches every model whose provider is in
    `wildcard_providers` (all when None), so `--mock` can leave out models whose API the
    OpenAI-shaped mock does not speak. The URL is the model's base URL as in `endpoint.url`
    (for OpenAI-style upstreams it ends in /v1). Plain and picklable, like every source."""

    def __init__(
        self,
        inner: ConfigSource,
        overrides: dict[str, str],
        wildcard_providers: frozenset[str] | None = None,
    ) -> None:
        self.inner = inner
        self.overrides = overrides
        self.wildcard_providers = wildcard_providers
        self._warned: set[str] = set()

    def describe(self) -> str:
        return f"{self.inner.describe()} (upstream overrides: {self.overrides})"

    def fingerprint(self) -> object:
        return self.inner.fingerprint()

    def _url(self, name: str, model_id: str, provider: str) -> str | None:
        url = self.overrides.get(model_id) or self.overrides.get(name)
        if url is None and "*" in self.overrides:
            if self.wildcard_providers is None or provider in self.wildcard_providers:
                return self.overrides["*"]
            if model_id not in self._warned:
                self._warned.add(model_id)
                logging.getLogger("llmplatform.gateway").warning(
                    "upstream override *: model %s keeps its URL (provider %s is not served by the "
                    "override upstream)",
                    name,
                    provider,
                )
        return url

    def load(self) -> tuple[GatewayConfig, SecretResolver]:
        config, secrets = self.inner.load()
        models = []
        for m in config.models:
            url = self._url(m.name, m.id, m.provider)
            models.append(m if url is None else m.model_copy(update={"url": url}))
        return seal(config.model_copy(update={"models": models})), secrets
