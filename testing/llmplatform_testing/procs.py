"""Child processes on loopback and waiting for them: one implementation for tests, bench, demo.

Why process groups: a gateway with workers, a Redis or a test server is started in its own
session and stopped by its own process group id, so stopping it never touches anything this
process did not start, and never leaves a worker behind.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition did not hold in time (an AssertionError, so pytest reports it as a failure)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    check: Callable[[], T],
    timeout: float = 5.0,
    what: str = "condition",
    *,
    interval: float = 0.05,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call `check` until it returns something truthy and return that; exceptions of the types
    in `ignore` count as "not yet" (the last one is named on timeout)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            got = check()
            if got:
                return got
            last = got
        except ignore as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def cli(*args: str) -> list[str]:
    """The `llmplatform` command of this interpreter, with `args`."""
    return [sys.executable, "-m", "llmplatform.cli", *args]


class Proc:
    """A child process we started, with its output in `log`, stopped by its own process group.

    With `ready_url`, the constructor returns once that URL answers 2xx (or raises with the
    log's tail if the process exits or the time runs out). The default wait is generous: on a
    loaded 2-core machine a Python server's imports alone can take 15 s (the Anthropic test
    server's strict validator did, at load 16), and a slow start is not what tests test."""

    def __init__(
        self,
        args: list[str],
        log: Path,
        ready_url: str | None = None,
        timeout: float = 60,
        env: dict[str, str] | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.log = log
        self.args = args
        self._file = log.open("ab")
        self.popen = subprocess.Popen(
            args, stdout=self._file, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
        if ready_url is not None:
            self.wait_http(ready_url, timeout, verify=verify)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def wait_http(
        self,
        url: str,
        timeout: float = 60,
        headers: dict[str, str] | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        """Return once `url` answers 2xx; raise if the process exits first or time runs out.
        `verify`: the TLS client context for an https URL (trusting the test's CA)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.args} exited with {self.popen.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(url, timeout=1, headers=headers, verify=verify).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{url} not ready after {timeout}s:\n{self.log_tail()}")

    def rss_mib(self, field: str = "VmRSS") -> float:
        """Resident memory (or, with field="VmHWM", its peak) from /proc, in MiB."""
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process and every live process below it (workers)."""
        tick = os.sysconf("SC_CLK_TCK")
        parents: dict[int, int] = {}
        times: dict[int, float] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            pid = int(stat.parent.name)
            parents[pid] = int(fields[1])
            times[pid] = (int(fields[11]) + int(fields[12])) / tick
        total, todo = 0.0, [self.popen.pid]
        while todo:
            pid = todo.pop()
            total += times.get(pid, 0.0)
            todo += [child for child, parent in parents.items() if parent == pid]
        return total

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM to the process group, SIGKILL after `timeout`; idempotent."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)  # its own session: our child and its workers only
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._file.close()
