"""`llmplatform operator` as a real subprocess against a cluster, with its metrics read back.

Why one class: the e2e tests and the operator benchmark both start the operator, wait for its
reconcile passes on its metrics endpoint and stop it; they differ only in flags.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any, ClassVar

import httpx

from llmplatform_testing.metrics import scrape
from llmplatform_testing.procs import WaitTimeout, cli, free_port, wait_for


class OperatorProcess:
    """The operator watching `namespaces` (all when empty) of the cluster at `cluster` (a
    kubeconfig path, or anything with a `kubeconfig` attribute), its metrics on a free port and
    its output in `log_path`. Instances started and not yet closed are in `running`, so a test
    report can attach their logs (also of one the test itself stopped)."""

    running: ClassVar[list[OperatorProcess]] = []

    def __init__(
        self,
        cluster: Any,
        platform: str,
        namespaces: list[str],
        log_path: Path,
        *,
        lease_seconds: float | None = 6,
        verbose: bool = True,
    ) -> None:
        self.kubeconfig = Path(cluster if isinstance(cluster, str | Path) else cluster.kubeconfig)
        self.platform, self.namespaces, self.log_path = platform, namespaces, log_path
        self.lease_seconds, self.verbose = lease_seconds, verbose
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0

    def start(self, *extra: str, env: dict[str, str] | None = None) -> OperatorProcess:
        """Start it with `extra` flags and `env` added to its environment."""
        self.metrics_port = free_port()
        args = cli("operator", "--platform-namespace", self.platform)
        for ns in self.namespaces:
            args += ["--namespace", ns]
        args += ["--metrics-port", str(self.metrics_port)]
        if self.lease_seconds is not None:
            args += ["--lease-seconds", f"{self.lease_seconds:g}"]
        if self.verbose:
            args.append("--verbose")
        full_env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1", **(env or {})}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([*args, *extra], env=full_env, stdout=log, stderr=subprocess.STDOUT)
        OperatorProcess.running.append(self)
        return self

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a Prometheus sample over the series matching `labels`."""
        return scrape(f"http://127.0.0.1:{self.metrics_port}/metrics", name, **labels)

    def wait_passes(self, n: int, timeout: float = 60) -> None:
        """Until the operator has completed `n` reconcile passes; fails at once if it exits."""

        def done() -> bool:
            assert self.proc is not None and self.proc.poll() is None, f"operator exited:\n{self.log()}"
            return self.metric("llmplatform_operator_passes_total") >= n

        try:
            wait_for(done, timeout, f"{n} operator passes", interval=0.2, ignore=(httpx.HTTPError,))
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}:\n{self.log()[-4000:]}") from None

    def peak_rss_mib(self) -> float:
        """The operator's peak resident memory (VmHWM), in MiB."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
        return -1.0

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Signal it and wait (SIGKILL after 20 s); its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def close(self) -> None:
        """Stop it and forget it (its log is no longer attached to failing tests)."""
        self.stop()
        if self in OperatorProcess.running:
            OperatorProcess.running.remove(self)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
