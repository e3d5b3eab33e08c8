"""`make demo --once` end to end: the README's main command must keep working.

Why a test: the demo is the newcomer's first hour. It starts its own control plane, operator,
gateway and test upstreams and checks every scene it shows (it exits non-zero when one does
not behave as described), so running it here proves the whole chain from `kubectl apply -f
examples/` to the openai client still works.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from llmplatform_testing import ROOT

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("LLMPLATFORM_E2E_KUBECONFIG")),
    reason="the demo always runs its own local control plane",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_once_passes_every_scene() -> None:
    free = str(free_port())
    proc = subprocess.run(
        [sys.executable, str(ROOT / "demo/run.py"), "--once", "--port", free],
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "all scenes passed" in out
    scenes = (
        "routing by tier:",
        "fallback:",
        "governance: e-mail address redacted",
        "rate limit: requests 1-",
        "usage: team-a tokensToday=",
    )
    for line in scenes:
        assert f"ok  {line}" in out, out[-6000:]


def descendants(pid: int) -> list[int]:
    """Every process below pid (read from /proc: children of children included)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def listening_ports(pids: list[int]) -> set[int]:
    """TCP ports the given processes listen on (their socket inodes in /proc/net/tcp{,6})."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_sigterm_stops_every_child_and_frees_their_ports() -> None:
    """`kill -TERM` on a running demo (not --once) stops Redis, the test upstreams, the operator,
    the gateway and the control plane, says so, and leaves none of their ports held."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "demo/run.py"), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    children: list[int] = []
    try:
        deadline = time.monotonic() + 600
        while not any("stops everything" in line for line in lines):
            assert proc.poll() is None, "".join(lines)[-6000:]
            assert time.monotonic() < deadline, "".join(lines)[-6000:]
            time.sleep(1)
        children = descendants(proc.pid)
        ports = listening_ports(children)
        assert len(children) >= 8, children  # 5 control-plane parts, redis, 3 upstreams, operator, gateway
        assert port in ports, (port, ports)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        reader.join(timeout=10)
        out = "".join(lines)
        assert "stopping everything" in out and "stopping the control plane" in out, out[-3000:]
        assert "stopped: no process of the demo is left running" in out, out[-3000:]
        left = [pid for pid in children if alive(pid)]
        assert not left, f"still running after SIGTERM: {left}\n{out[-3000:]}"
        # free: nobody listens on them and a new server can bind them (SO_REUSEADDR, as servers
        # do, since the closed connections of the old ones linger in TIME_WAIT for a minute)
        assert not listening_ports(descendants(1)) & ports, "a port of the demo is still listened on"
        held = []
        for p in sorted(ports):
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    held.append(p)
        assert not held, f"ports still held after SIGTERM: {held}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in children:
            with contextlib.suppress(OSError):
                if alive(pid):
                    os.killpg(pid, signal.SIGKILL)
