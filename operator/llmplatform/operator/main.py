"""`llmplatform operator`: leader election, then Kopf with the reconcile loop.

Why a Lease (not Kopf peering): a Lease is what every Kubernetes controller uses, needs no
extra CRDs, and the client library already implements it; only the leader runs Kopf, so two
replicas never write. Losing the lease ends the process (a restart makes it a follower),
exactly as client-go's controllers do. On a clean shutdown the lease is released, so a
restarted operator takes over at once instead of waiting out the lease.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
import threading
import uuid
from typing import Any

import kopf
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

from llmplatform.contract.telemetry import TelemetryConfigError
from llmplatform.operator.engine import Reconciler
from llmplatform.operator.handlers import Loop, register
from llmplatform.operator.kube import Kube
from llmplatform.operator.tracing import PassTracer

log = logging.getLogger("llmplatform.operator")
LEASE_NAME = "llmplatform-operator"


def _load_config(path: str | None) -> client.ApiClient:
    try:
        config.load_kube_config(config_file=path)
    except config.ConfigException:
        config.load_incluster_config()
    cfg = client.Configuration.get_default_copy()
    cfg.connection_pool_maxsize = 16
    return client.ApiClient(cfg)


def _connection_info(cfg: client.Configuration) -> kopf.ConnectionInfo:
    """Kopf's credentials from the client configuration already loaded (so --kubeconfig, the
    in-cluster token and client certificates all work the same for both)."""
    header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix("authorization")
    scheme, token = None, None
    if header:
        parts = header.split(" ", 1)
        scheme, token = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        scheme=scheme,
        token=token,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
    )


class Election:
    """Leader election on a coordination.k8s.io Lease, run in a daemon thread."""

    def __init__(self, namespace: str, identity: str, lease_seconds: int) -> None:
        self.lock = LeaseLock(LEASE_NAME, namespace, identity)
        self.identity = identity
        self.lease_seconds = lease_seconds
        self.leading = threading.Event()
        self.lost = threading.Event()

    def start(self) -> None:
        renew = max(2, self.lease_seconds * 2 // 3)
        retry = max(1, self.lease_seconds // 7)
        cfg = electionconfig.Config(self.lock, self.lease_seconds, renew, retry, self._started, self._stopped)
        threading.Thread(target=leaderelection.LeaderElection(cfg).run, daemon=True, name="lease").start()

    def _started(self) -> None:
        log.info("%s became the leader", self.identity)
        self.leading.set()

    def _stopped(self) -> None:
        log.error("%s lost the leader Lease", self.identity)
        self.lost.set()

    def release(self) -> None:
        """Give the Lease up if we hold it, so the next operator need not wait for it to expire."""
        api = client.CoordinationV1Api()
        try:
            lease = api.read_namespaced_lease(LEASE_NAME, self.lock.namespace, _request_timeout=5)
            if lease.spec and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                api.replace_namespaced_lease(LEASE_NAME, self.lock.namespace, lease, _request_timeout=5)
                log.info("released the leader Lease")
        except ApiException as exc:
            log.warning("could not release the Lease: %s", exc.reason)
        except (OSError, urllib3.exceptions.HTTPError) as exc:  # unreachable: the Lease just expires
            log.warning("could not release the Lease: %s", exc)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("celpy").setLevel(logging.WARNING)
    logging.getLogger("leaderelection").setLevel(logging.WARNING)
    # Kopf logs every handled event at INFO; with thousands of objects that is noise.
    logging.getLogger("kopf.objects").setLevel(logging.INFO if args.verbose else logging.WARNING)
    try:  # a bad OTEL_* variable is one clear line, before anything starts
        tracer = PassTracer.from_env()
    except TelemetryConfigError as exc:
        print(f"llmplatform operator: tracing: {exc}", file=sys.stderr)
        return 2
    api = _load_config(args.kubeconfig)
    identity = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port)
    election = None
    if not args.no_leader_election:
        election = Election(args.platform_namespace, identity, args.lease_seconds)
        election.start()
        log.info("waiting for the leader Lease %s/%s", args.platform_namespace, LEASE_NAME)
        election.leading.wait()
    try:
        return asyncio.run(_operate(args, api, identity, election, tracer))
    except KeyboardInterrupt:
        return 0
    finally:
        if election is not None and not election.lost.is_set():
            election.release()
        if tracer is not None:
            tracer.shutdown()  # export the last passes' spans


async def _operate(
    args: argparse.Namespace,
    api: client.ApiClient,
    identity: str,
    election: Election | None,
    tracer: PassTracer | None = None,
) -> int:
    reconciler = Reconciler(
        Kube(api),
        args.platform_namespace,
        identity=identity,
        serving_overrides=getattr(args, "serving_overrides", None) or None,
        shard_bytes=args.config_shard_bytes,
        max_shards=args.config_shards,
    )
    if args.usage_redis_url:
        from llmplatform.operator.usage import RedisUsage

        reconciler.usage = RedisUsage(args.usage_redis_url).read
    loop = Loop(
        reconciler,
        args.platform_namespace,
        resync_seconds=args.resync_seconds,
        usage_seconds=args.usage_seconds if args.usage_redis_url else None,
        gateway_deployment=getattr(args, "gateway_deployment", None),
        tracer=tracer,
    )
    registry = kopf.OperatorRegistry()
    register(registry, loop, args.platform_namespace)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return _connection_info(api.configuration)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.level = logging.WARNING
        settings.scanning.disabled = True  # no cluster-wide CRD/namespace scans: less RBAC
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.networking.error_backoffs = [1, 2, 5, 10]

    stop = asyncio.Event()
    if election is not None:
        asyncio.get_running_loop().create_task(_watch_lease(election, stop))
    namespaces = sorted(set(args.namespaces) | {args.platform_namespace}) if args.namespaces else ()
    await kopf.operator(
        registry=registry,
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        stop_flag=stop,
        liveness_endpoint=f"http://0.0.0.0:{args.health_port}/healthz" if args.health_port else None,
    )
    if election is not None and election.lost.is_set():
        print("llmplatform operator: lost the leader Lease; exiting", file=sys.stderr)
        return 1
    return 0


async def _watch_lease(election: Election, stop: asyncio.Event) -> None:
    while not election.lost.is_set():
        await asyncio.sleep(0.5)
    stop.set()
