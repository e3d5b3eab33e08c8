"""Process management for `llmplatform gateway`: logging, workers, signals.

Why processes and SO_REUSEPORT: one Python process is bound to one core by the GIL; N worker
processes each bind the same port with SO_REUSEPORT and the kernel spreads connections across
them, with no proxy in front. Each worker loads and hot-reloads the config on its own and keeps
its own upstream health; limits are shared only through Redis (`--redis-url`). The parent only
starts the workers, restarts one that dies, and stops them all on SIGTERM/SIGINT.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmplatform.gateway.keyfilter import redact

if TYPE_CHECKING:
    from llmplatform.gateway.source import ConfigSource
    from llmplatform.gateway.tls import TlsFiles

RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
GC_YOUNG_THRESHOLD = 50_000
"""Container allocations (net of frees) between two collections of the youngest generation;
CPython's default is 700. A request allocates a few hundred containers that reference counting
frees when it ends, so with 16 requests in flight the default ran a collection every few dozen
requests, each one moving the in-flight requests' objects to older generations, which in turn
set off full collections of the whole heap (about 30 ms each with the small benchmark config,
longer with a bigger config). Cyclic garbage (about one object per request) is still
collected, in larger batches. Measured: about -29 us CPU per request (-8%) under wrk at 16
connections, and no full collection in 30,000 requests instead of six."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra={...}` fields (request_id, model, ...) become keys.
    Every line passes through `keyfilter.redact`: whatever a log call or a library put in the
    message, the fields or the traceback, no key reaches the log."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in RESERVED})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


@dataclass
class WorkerSpec:
    host: str
    port: int
    config: str | None
    secrets_dir: str
    redis_url: str | None
    redis_failure_mode: str
    audit_log: str | None
    max_body_bytes: int
    reload_interval: float
    log_level: str
    audit_log_max_bytes: int = 0
    audit_log_keep: int = 0
    audit_fsync_seconds: float = 1.0
    audit_log_rotate_seconds: float = 86400.0
    max_upstream_body_bytes: int = 32 * 1024 * 1024
    client_write_seconds: float = 60.0
    body_read_seconds: float = 60.0
    head_read_seconds: float = 10.0
    """A connection must deliver a whole request head this soon (connection.py)."""
    reload_max_removed: float = 0.5
    source: ConfigSource | None = None
    """A config source other than `--config` (the CLI passes `--manifests` as one); it must be
    picklable, since every worker process gets a copy."""
    tls: TlsFiles | None = None
    """Serve HTTPS with these files, re-read when they change (tls.py)."""
    shutdown_delay: float = 0.0
    """On SIGTERM, keep serving this long while draining (`Gateway.drain`), then stop."""
    health_port: int | None = None
    """Also serve /healthz, /readyz and /metrics in plain HTTP here (probes, scraping), for
    when clients must present a certificate that the kubelet and Prometheus do not have."""


def run_worker(spec: WorkerSpec) -> None:
    """Serve on spec.host:spec.port until SIGTERM/SIGINT (one process)."""
    import asyncio

    from aiohttp import web

    from llmplatform.gateway.connection import GuardedRunner
    from llmplatform.gateway.server import Gateway, Settings
    from llmplatform.gateway.source import ConfigFile
    from llmplatform.gateway.tls import CertReloader

    setup_logging(spec.log_level)
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    source = spec.source if spec.source is not None else ConfigFile(str(spec.config), spec.secrets_dir)
    # every Settings field is a WorkerSpec field of the same name
    settings = Settings(**{f.name: getattr(spec, f.name) for f in dataclasses.fields(Settings)})
    gateway = Gateway(source, settings)
    certs = CertReloader(spec.tls) if spec.tls is not None else None

    async def main() -> None:
        runner = GuardedRunner(
            gateway.app(), head_seconds=spec.head_read_seconds, access_log=None, handle_signals=False
        )
        await runner.setup()
        ssl_context = certs.listening if certs is not None else None
        site = web.TCPSite(
            runner, spec.host, spec.port, ssl_context=ssl_context, reuse_port=True, backlog=1024
        )
        await site.start()
        tasks = [asyncio.create_task(certs.run(spec.reload_interval))] if certs is not None else []
        health: web.AppRunner | None = None
        if spec.health_port is not None:
            health = GuardedRunner(
                gateway.health_app(),
                head_seconds=spec.head_read_seconds,
                access_log=None,
                handle_signals=False,
            )
            await health.setup()
            await web.TCPSite(health, spec.host, spec.health_port, reuse_port=True).start()
        logging.getLogger("llmplatform.gateway").info(
            "gateway listening",
            extra={
                "host": spec.host,
                "port": spec.port,
                "tls": certs is not None,
                "health_port": spec.health_port,
            },
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        if spec.shutdown_delay > 0:
            gateway.drain()
            await asyncio.sleep(spec.shutdown_delay)
        for task in tasks:
            task.cancel()
        if health is not None:
            await health.cleanup()
        await runner.cleanup()

    run_loop(main())


def run_loop(coro: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed, unless LLMPLATFORM_EVENT_LOOP=asyncio asks for the
    standard loop: the benchmark's bare aiohttp proxy serves about a third more requests per
    second on uvloop."""
    import asyncio

    if os.environ.get("LLMPLATFORM_EVENT_LOOP", "auto") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(coro)
            return
    asyncio.run(coro)


def worker_spec(spec: WorkerSpec, index: int) -> WorkerSpec:
    """Worker `index`'s spec: its own audit file `FILE.w<index>`, hence its own hash chain, which
    a replacement worker continues (no lock, no interleaving, rotation without coordination)."""
    if spec.audit_log is None:
        return spec  # stdout: one chain per worker, lines never split (see audit.py)
    return dataclasses.replace(spec, audit_log=f"{spec.audit_log}.w{index}")


def serve(spec: WorkerSpec, workers: int) -> int:
    if workers <= 1:
        run_worker(spec)
        return 0
    setup_logging(spec.log_level)
    log = logging.getLogger("llmplatform.gateway")
    metrics_dir = tempfile.mkdtemp(prefix="llmplatform-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # inherited by the spawned workers
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=run_worker, args=(worker_spec(spec, i),), name=f"gateway-worker-{i}")
        for i in range(workers)
    ]
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for p in procs:
        p.start()
    try:
        while not stopping:
            time.sleep(0.2)
            for i, p in enumerate(procs):
                if not p.is_alive() and not stopping:
                    log.error("worker exited, restarting", extra={"worker": i, "exitcode": p.exitcode})
                    procs[i] = ctx.Process(
                        target=run_worker, args=(worker_spec(spec, i),), name=f"gateway-worker-{i}"
                    )
                    procs[i].start()
    finally:
        for p in procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGTERM)
        for p in procs:
            p.join(timeout=spec.shutdown_delay + 10)
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0
