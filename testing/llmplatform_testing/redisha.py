"""Highly available Redis on loopback for tests: a Redis Cluster of real `redis-server`
processes, and a primary with a replica watched by three Sentinels.

Why real processes: what the limiter must survive (slot routing, MOVED answers, a primary that
dies and a replica Sentinel promotes) only happens in real Redis; Debian's `redis-server` runs
all of it (`--cluster-enabled`, `--sentinel`) in a few MB each, and `redis-cli --cluster
create` assigns the slots. Nothing here persists to disk.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

from llmplatform_testing.procs import Proc, wait_for

NO_PERSISTENCE = ("--save", "", "--appendonly", "no")
SERVICE = "llmp"
"""The Sentinel service name of the test primary."""


def binary(name: str = "redis-server") -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed; apt-get install -y redis-server")
    return found


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 < 65536 and _free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def cli_call(port: int, *args: str, timeout: float = 10) -> str:
    """`redis-cli -p PORT ARGS` on 127.0.0.1; its output."""
    done = subprocess.run(
        [binary("redis-cli"), "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.stdout + done.stderr


def server(tmp: Path, port: int, *args: str) -> Proc:
    """One `redis-server` on 127.0.0.1:port without persistence, once it answers PING."""
    directory = tmp / f"redis-{port}"
    directory.mkdir(parents=True, exist_ok=True)
    where = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)]
    proc = Proc([binary(), *where, *NO_PERSISTENCE, *args], tmp / f"redis-{port}.log")
    try:
        wait_for(lambda: "PONG" in cli_call(port, "PING"), timeout=20, what=f"redis on {port}")
    except BaseException:
        proc.stop()
        raise
    return proc


def start_cluster(tmp: Path, primaries: int = 3) -> tuple[list[Proc], str]:
    """A Redis Cluster of `primaries` primaries (no replicas) with every slot assigned; returns
    the processes and its `redis+cluster://` URL."""
    procs: list[Proc] = []
    try:
        ports = []
        for _ in range(primaries):
            port = cluster_port()
            procs.append(
                server(tmp, port, "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf")
            )
            ports.append(port)
        nodes = [f"127.0.0.1:{p}" for p in ports]
        out = cli_call(ports[0], "--cluster", "create", *nodes, "--cluster-yes", timeout=60)
        if "All 16384 slots covered" not in out:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{out}")
        for port in ports:
            wait_for(
                lambda port=port: "cluster_state:ok" in cli_call(port, "CLUSTER", "INFO"),  # type: ignore[misc]
                timeout=30,
                what=f"cluster state ok on {port}",
            )
    except BaseException:
        for proc in procs:
            proc.stop()
        raise
    return procs, "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)


def slot_owner(port: int, key: str) -> str:
    """host:port of the cluster primary that holds `key` (asked through the node on `port`)."""
    slot = int(cli_call(port, "CLUSTER", "KEYSLOT", key).strip())
    for line in cli_call(port, "CLUSTER", "NODES").splitlines():
        fields = line.split()
        if "master" in fields[2]:
            for spec in fields[8:]:
                low, _, high = spec.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return fields[1].split("@")[0]
    raise RuntimeError(f"no primary holds slot {slot}")


class SentinelSet:
    """A primary, one replica and three Sentinels (quorum 2) that declare the primary down
    after `down_ms` and fail over to the replica."""

    def __init__(self, tmp: Path, down_ms: int = 1000) -> None:
        from llmplatform_testing.procs import free_port

        self.tmp = tmp
        self.procs: list[Proc] = []
        try:
            self.primary_port = free_port()
            self.primary = server(tmp, self.primary_port)
            self.replica_port = free_port()
            self.replica = server(tmp, self.replica_port, "--replicaof", "127.0.0.1", str(self.primary_port))
            self.procs += [self.primary, self.replica]
            wait_for(
                lambda: "master_link_status:up" in cli_call(self.replica_port, "INFO", "replication"),
                timeout=30,
                what="the replica in sync",
            )
            self.sentinel_ports = [free_port() for _ in range(3)]
            for port in self.sentinel_ports:
                conf = tmp / f"sentinel-{port}.conf"
                conf.write_text(
                    f"port {port}\nbind 127.0.0.1\ndir {tmp}\n"
                    f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 2\n"
                    f"sentinel down-after-milliseconds {SERVICE} {down_ms}\n"
                    f"sentinel failover-timeout {SERVICE} 10000\n"
                    f"sentinel parallel-syncs {SERVICE} 1\n"
                )
                self.procs.append(Proc([binary(), str(conf), "--sentinel"], tmp / f"sentinel-{port}.log"))
            for port in self.sentinel_ports:
                wait_for(
                    lambda port=port: "slaves=1,sentinels=3" in cli_call(port, "INFO", "sentinel"),  # type: ignore[misc]
                    timeout=30,
                    what=f"sentinel {port} to see the replica and the other sentinels",
                )
        except BaseException:
            self.close()
            raise
        self.url = f"redis+sentinel://{','.join(f'127.0.0.1:{p}' for p in self.sentinel_ports)}/{SERVICE}/0"

    def primary_address(self) -> str:
        """host:port of the primary as the first Sentinel reports it."""
        out = cli_call(self.sentinel_ports[0], "SENTINEL", "get-master-addr-by-name", SERVICE).split()
        return ":".join(out[:2])

    def kill_primary(self) -> None:
        """SIGKILL the current primary (no chance to hand over)."""
        self.primary.popen.kill()
        self.primary.stop()

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()


def tls_files(tmp: Path) -> dict[str, Path]:
    """A throw-away CA and a server certificate for IP 127.0.0.1 (openssl), in `tmp`."""
    tmp.mkdir(parents=True, exist_ok=True)
    files = {name: tmp / f"{name}.pem" for name in ("ca", "ca-key", "server", "server-key")}
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError(
            "openssl is not installed; the Redis TLS test needs it: apt-get install -y openssl"
        )

    def run(*args: str | Path) -> None:
        subprocess.run([openssl, *map(str, args)], check=True, capture_output=True, timeout=120)

    new_key = ("-newkey", "rsa:2048", "-nodes")
    run(
        "req",
        "-x509",
        *new_key,
        "-days",
        "2",
        "-subj",
        "/CN=llmp-test-ca",
        "-keyout",
        files["ca-key"],
        "-out",
        files["ca"],
    )
    csr, ext = tmp / "server.csr", tmp / "server.ext"
    run("req", *new_key, "-subj", "/CN=127.0.0.1", "-keyout", files["server-key"], "-out", csr)
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        files["ca"],
        "-CAkey",
        files["ca-key"],
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        ext,
        "-out",
        files["server"],
    )
    return files


def start_tls_server(tmp: Path) -> tuple[Proc, str]:
    """One `redis-server` that speaks only TLS (no client certificates asked) on 127.0.0.1;
    returns it and a `rediss://` URL that trusts its CA."""
    from llmplatform_testing.procs import free_port

    files = tls_files(tmp / "tls")
    port = free_port()
    directory = tmp / f"redis-tls-{port}"
    directory.mkdir(parents=True, exist_ok=True)
    tls = ["--tls-port", str(port), "--port", "0", "--tls-auth-clients", "no"]
    tls += ["--tls-cert-file", str(files["server"]), "--tls-key-file", str(files["server-key"])]
    tls += ["--tls-ca-cert-file", str(files["ca"])]
    proc = Proc(
        [binary(), "--bind", "127.0.0.1", "--dir", str(directory), *NO_PERSISTENCE, *tls],
        tmp / f"redis-tls-{port}.log",
    )
    ping = ("--tls", "--cacert", str(files["ca"]), "PING")
    try:
        wait_for(lambda: "PONG" in cli_call(port, *ping), timeout=20, what=f"TLS redis on {port}")
    except BaseException:
        proc.stop()
        raise
    return proc, f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={files['ca']}"
