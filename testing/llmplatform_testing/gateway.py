"""The gateway's test world on loopback: mock upstreams, the Anthropic test server, Redis,
gateway processes, and the manifests they serve.

Why real processes: the gateway's contract is its HTTP surface, its process model (workers,
reload) and its use of Redis; all of those run here in a second, so nothing is faked except
the model itself (the project's own test servers). Tests, the operator benchmark and the demo
start their upstreams and gateways with these functions.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from llmplatform_testing.metrics import metric_value
from llmplatform_testing.procs import Proc, cli, free_port

PLATFORM = "llm-platform"
API = "llmplatform.io/v1alpha1"
UPSTREAM_KEY = "sk-upstream-SECRET-do-not-leak"
"""The platform's key for every test upstream (Secret `upstream` in PLATFORM); tests check it
arrives upstream and never leaks."""


# -- processes -------------------------------------------------------------------------------


def start_mock(tmp: Path, name: str, **settings: Any) -> tuple[Proc, str]:
    """`llmplatform mock-upstream` (the OpenAI-style test server); settings are its flags."""
    port = free_port()
    args = ["mock-upstream", "--port", str(port)]
    for key, value in settings.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    proc = Proc(cli(*args), tmp / f"mock-{name}.log", f"http://127.0.0.1:{port}/healthz")
    return proc, f"http://127.0.0.1:{port}"


def start_anthropic(tmp: Path, name: str = "anthropic-server") -> tuple[Proc, str]:
    """The Anthropic Messages-API test server (`llmplatform_testing.anthropic_server`)."""
    port = free_port()
    args = [sys.executable, "-m", "llmplatform_testing.anthropic_server", "--port", str(port)]
    proc = Proc(args, tmp / f"{name}.log", f"http://127.0.0.1:{port}/healthz")
    return proc, f"http://127.0.0.1:{port}"


def start_gateway(
    tmp: Path,
    source: list[str],
    *extra: str,
    port: int | None = None,
    name: str = "gw",
    ready: str = "/readyz",
    tls: ssl.SSLContext | None = None,
    env: dict[str, str] | None = None,
) -> tuple[Proc, str]:
    """`llmplatform gateway` on 127.0.0.1, reloading every 0.2 s, its audit log at
    `tmp/<name>-audit.jsonl` unless `extra` names one; returns once `ready` answers 2xx (a
    gateway without a valid config answers /healthz but not /readyz). With `tls` (a client
    context that trusts the gateway's certificate; `extra` holds the --tls-* flags) the URL is
    https and the readiness check goes through that context. `env` is added to this process's
    environment (the OTEL_* variables of the tracing tests)."""
    port = port or free_port()
    args = ["gateway", *source, "--host", "127.0.0.1", "--port", str(port), "--reload-interval", "0.2"]
    args += extra
    if "--audit-log" not in extra:
        args += ["--audit-log", str(tmp / f"{name}-audit.jsonl")]
    base = f"{'https' if tls is not None else 'http'}://127.0.0.1:{port}"
    full_env = {**os.environ, **env} if env else None
    proc = Proc(
        cli(*args),
        tmp / f"{name}.log",
        f"{base}{ready}",
        verify=tls if tls is not None else True,
        env=full_env,
    )
    return proc, base


def start_redis(tmp: Path, port: int | None = None) -> tuple[Proc, str]:
    """A throw-away redis-server (no persistence) on 127.0.0.1; returns once it answers PING."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "redis-server is not installed; the gateway Redis tests need it: apt-get install -y redis-server"
        )
    port = port or free_port()
    proc = Proc(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        tmp / f"redis-{port}.log",
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.stop()
    raise RuntimeError(f"redis-server did not start:\n{proc.log_tail()}")


def mock_config(url: str, **settings: Any) -> None:
    """Change a running mock upstream's behaviour and zero its counters."""
    httpx.post(url + "/_mock/config", json=settings).raise_for_status()
    httpx.post(url + "/_mock/reset").raise_for_status()


def mock_stats(url: str) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(url + "/_mock/stats").json()
    return stats


def workers(gateway: Proc) -> set[int]:
    """The pids of a gateway's worker processes (not multiprocessing's resource tracker)."""
    pid = gateway.popen.pid
    found = set()
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.add(int(child))
        except OSError:
            continue
    return found


def listening(gateway: Proc) -> int:
    """How many times a gateway's workers have logged that they listen (a replaced worker adds one)."""
    return gateway.log.read_text(errors="replace").count('"gateway listening"')


def metric(base: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`, from `base`/metrics."""
    return metric_value(httpx.get(base + "/metrics").text, name, **labels)


# -- the world of one test module ------------------------------------------------------------


class World(dict[str, Any]):
    """What a gateway test module runs against, stopped as one by `close()`.

    A dict, so tests read `world["base"]` (the first gateway's URL), `world[name]` (an upstream's
    URL by the name it was started with), `world["tmp"]`, `world["log"]` (the first gateway's
    audit log), `world["manifests"]` and `world["gw"]` (the first gateway's Proc); a module adds
    its own keys as it likes."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp=tmp)
        self.tmp = tmp
        self.procs: list[Proc] = []

    def _keep(self, name: str, started: tuple[Proc, str]) -> str:
        proc, url = started
        self.procs.append(proc)
        self[name] = url
        return url

    def mock(self, name: str, **settings: Any) -> str:
        """Start a mock upstream; its URL is returned and kept as `world[name]`."""
        return self._keep(name, start_mock(self.tmp, name, **settings))

    def anthropic(self, name: str = "anthropic") -> str:
        """Start the Anthropic test server; its URL is returned and kept as `world[name]`."""
        return self._keep(name, start_anthropic(self.tmp))

    def redis(self) -> str:
        """Start a Redis; its URL is returned and kept as `world["redis"]`."""
        return self._keep("redis", start_redis(self.tmp))

    def manifests(self, docs: list[dict[str, Any]], name: str = "manifests") -> Path:
        """Write `docs` (and the upstream key Secret) to `tmp/<name>/all.yaml`."""
        return write_manifests(self.tmp / name, docs)

    def gateway(
        self,
        docs: list[dict[str, Any]],
        *extra: str,
        name: str = "gw",
        tls: ssl.SSLContext | None = None,
        env: dict[str, str] | None = None,
    ) -> str:
        """Start a gateway serving `docs` as manifests (the first gateway's in `tmp/manifests`,
        kept as `world["manifests"]`); see `serve`."""
        path = self.manifests(docs, "manifests" if "manifests" not in self else f"manifests-{name}")
        self.setdefault("manifests", path)
        return self.serve(["--manifests", str(path)], *extra, name=name, tls=tls, env=env)

    def serve(
        self,
        source: list[str],
        *extra: str,
        name: str = "gw",
        tls: ssl.SSLContext | None = None,
        env: dict[str, str] | None = None,
    ) -> str:
        """Start a gateway with `source` arguments (`["--config", path]`, `["--manifests", dir]`)
        and `extra` ones (`tls`: see `start_gateway`; `env` added to its environment). The first
        one started becomes `world["base"]`, `["gw"]` and `["log"]`."""
        proc, base = start_gateway(self.tmp, source, *extra, name=name, tls=tls, env=env)
        self.procs.append(proc)
        if "base" not in self:
            named = list(extra).index("--audit-log") + 1 if "--audit-log" in extra else 0
            log = Path(extra[named]) if named else self.tmp / f"{name}-audit.jsonl"
            self.update(base=base, gw=proc, log=log)
        return base

    def close(self) -> None:
        """Stop everything started, last first."""
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()


@contextmanager
def world(tmp: Path) -> Iterator[World]:
    """A `World` in `tmp`, closed afterwards also when the body raises."""
    w = World(tmp)
    try:
        yield w
    finally:
        w.close()


# -- manifests -------------------------------------------------------------------------------


def model(name: str, url: str, tier: str = "standard", **spec: Any) -> dict[str, Any]:
    """An LLMModel in PLATFORM at `url`/v1 (chat, completions, embeddings), with `spec` on top."""
    body: dict[str, Any] = {
        "tier": tier,
        "contextWindow": 8192,
        "capabilities": ["chat", "completions", "embeddings"],
        "pricing": {"inputPerMillionTokens": 1, "outputPerMillionTokens": 2},
        "endpoint": {"url": url + "/v1", "apiKeySecretRef": {"name": "upstream", "key": "api-key"}},
    }
    body.update(spec)
    return {
        "apiVersion": API,
        "kind": "LLMModel",
        "metadata": {"name": name, "namespace": PLATFORM},
        "spec": body,
    }


def self_hosted(name: str, tier: str = "standard", **spec: Any) -> dict[str, Any]:
    """An LLMModel the operator would deploy (`serving`): its config url is the cluster Service
    (plain http://, which the rendered NetworkPolicy protects), so a gateway serving it needs
    `override(name, url)` among its arguments to reach a test upstream instead."""
    doc = model(name, "http://unused", tier, **spec)
    del doc["spec"]["endpoint"]
    doc["spec"]["serving"] = {"image": "example.test/model-server:1", "port": 8000}
    return doc


def override(name: str, url: str) -> list[str]:
    """Gateway arguments sending model `name` to the upstream at `url` (a stand-in for DNS)."""
    return ["--upstream-override", f"{name}={url}/v1"]


def anthropic_model(name: str, url: str, tier: str = "efficient", **spec: Any) -> dict[str, Any]:
    """An LLMModel served by the Anthropic test server at `url` (chat only, model
    `claude-test-1`, at most 200 output tokens), with `spec` on top."""
    anthropic: dict[str, Any] = {
        "provider": "anthropic",
        "upstreamModel": "claude-test-1",
        "maxOutputTokens": 200,
        "capabilities": ["chat"],
        "endpoint": {"url": url, "apiKeySecretRef": {"name": "upstream", "key": "api-key"}},
    }
    return model(name, url, tier, **{**anthropic, **spec})


def policy(tiers: dict[str, list[str]], **spec: Any) -> dict[str, Any]:
    """The default RoutingPolicy with short timeouts and a breaker that never opens by accident."""
    body: dict[str, Any] = {
        "default": True,
        "defaultTier": next(iter(tiers)),
        "tiers": [{"name": t, "models": ms} for t, ms in tiers.items()],
        "fallback": {
            "maxAttempts": 3,
            "retryOn": [429, 500, 502, 503, 504, "timeout", "connect"],
            "acrossTiers": [],
        },
        "timeouts": {"connectSeconds": 1, "requestSeconds": 2, "streamIdleSeconds": 1},
        "circuitBreaker": {"consecutiveFailures": 1000, "openSeconds": 1},
    }
    body.update(spec)
    return {
        "apiVersion": API,
        "kind": "RoutingPolicy",
        "metadata": {"name": "default", "namespace": PLATFORM},
        "spec": body,
    }


def tenant(
    name: str, keys: dict[str, str], allowed: list[str], trust_client_user: bool = False, **spec: Any
) -> list[dict[str, Any]]:
    """A TenantQuota with one Secret per key (key name -> key value); `trust_client_user` sets
    `trustClientUser` on every key (a service that names its end users in the request's `user`)."""
    docs: list[dict[str, Any]] = []
    api_keys = []
    for key_name, value in keys.items():
        secret = f"{name}-{key_name}-key"
        docs.append(secret_doc(secret, name, {"key": value}))
        api_keys.append(
            {
                "name": key_name,
                "user": f"{key_name}@{name}",
                "role": "admin",
                "secretRef": {"name": secret, "key": "key"},
                **({"trustClientUser": True} if trust_client_user else {}),
            }
        )
    body = {"allowedTiers": allowed, "apiKeys": api_keys, **spec}
    docs.append(
        {
            "apiVersion": API,
            "kind": "TenantQuota",
            "metadata": {"name": name, "namespace": name},
            "spec": body,
        }
    )
    return docs


def secret_doc(name: str, namespace: str, values: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": values,
    }


def write_manifests(directory: Path, docs: list[dict[str, Any]]) -> Path:
    """`docs` plus the upstream key Secret as `directory/all.yaml`, replaced atomically (a
    gateway watching the folder never reads half a file)."""
    directory.mkdir(parents=True, exist_ok=True)
    docs = [secret_doc("upstream", PLATFORM, {"api-key": UPSTREAM_KEY}), *docs]
    tmp = directory / ".all.yaml.tmp"
    tmp.write_text(yaml.safe_dump_all(docs))
    tmp.replace(directory / "all.yaml")
    return directory
