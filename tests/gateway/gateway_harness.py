"""Real processes on loopback for the gateway tests: mock upstreams, gateways, Redis.

Why real processes: the gateway's contract is its HTTP surface, its process model (workers,
reload) and its use of Redis; all of those run here in a second, so nothing is faked except
the model itself (the project's own mock-upstream test server).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

PLATFORM = "llm-platform"
API = "llmplatform.io/v1alpha1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A child process we started, stopped by its own pid."""

    def __init__(self, args: list[str], log: Path, ready_url: str | None = None, timeout: float = 20) -> None:
        self.log = log
        self.args = args
        self._file = log.open("ab")
        self.popen = subprocess.Popen(
            args, stdout=self._file, stderr=subprocess.STDOUT, start_new_session=True
        )
        if ready_url is not None:
            self.wait_http(ready_url, timeout)

    def wait_http(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.args} exited with {self.popen.returncode}:\n{self.log.read_text()[-3000:]}"
                )
            try:
                if httpx.get(url, timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{url} not ready after {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)  # its own session: our child and its workers only
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._file.close()


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "llmplatform.cli", *args]


def start_mock(tmp: Path, name: str, **settings: Any) -> tuple[Proc, str]:
    port = free_port()
    args = ["mock-upstream", "--port", str(port)]
    for key, value in settings.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    proc = Proc(cli(*args), tmp / f"mock-{name}.log", f"http://127.0.0.1:{port}/healthz")
    return proc, f"http://127.0.0.1:{port}"


def start_gateway(
    tmp: Path, source: list[str], *extra: str, port: int | None = None, name: str = "gw"
) -> tuple[Proc, str]:
    port = port or free_port()
    args = [
        "gateway",
        *source,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--reload-interval",
        "0.2",
        *extra,
    ]
    if "--audit-log" not in extra:
        args += ["--audit-log", str(tmp / f"{name}-audit.jsonl")]
    proc = Proc(cli(*args), tmp / f"{name}.log", f"http://127.0.0.1:{port}/readyz")
    return proc, f"http://127.0.0.1:{port}"


def start_redis(tmp: Path, port: int | None = None) -> tuple[Proc, str]:
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
    raise RuntimeError("redis-server did not start")


# -- manifests ------------------------------------------------------------------------------


def model(name: str, url: str, tier: str = "standard", **spec: Any) -> dict[str, Any]:
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


def policy(tiers: dict[str, list[str]], **spec: Any) -> dict[str, Any]:
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


def tenant(name: str, keys: dict[str, str], allowed: list[str], **spec: Any) -> list[dict[str, Any]]:
    """A TenantQuota with one Secret per key (key name -> key value)."""
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


UPSTREAM_KEY = "sk-upstream-SECRET-do-not-leak"


def write_manifests(directory: Path, docs: list[dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    docs = [secret_doc("upstream", PLATFORM, {"api-key": UPSTREAM_KEY}), *docs]
    tmp = directory / ".all.yaml.tmp"
    tmp.write_text(yaml.safe_dump_all(docs))
    tmp.replace(directory / "all.yaml")
    return directory


def mock_config(url: str, **settings: Any) -> None:
    httpx.post(url + "/_mock/config", json=settings).raise_for_status()
    httpx.post(url + "/_mock/reset").raise_for_status()


def mock_stats(url: str) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(url + "/_mock/stats").json()
    return stats


def metric(base: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`, from `base`/metrics."""
    return metric_value(httpx.get(base + "/metrics").text, name, **labels)


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples named `name` (the full sample name, e.g. `x_total` or `x_bucket`) in a
    Prometheus text exposition whose labels include `labels`. One parser (prometheus_client's)
    for every test and benchmark that reads our metrics."""
    return float(
        sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )
    )
