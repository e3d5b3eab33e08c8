"""The single `llmplatform` entry point.

Why one entry point: the operator, the gateway and the offline tools (render, audit)
share one rendering core, and shipping them as subcommands of one program means one
version, one install and one place for users to look. Each subcommand registers itself
here when it lands.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from llmplatform.contract import redisurl, shardargs
from llmplatform.contract.names import GATEWAY_SECRETS_DIR

if TYPE_CHECKING:
    from llmplatform.gateway.main import WorkerSpec
    from llmplatform.gateway.source import ConfigSource
    from llmplatform.gateway.tls import TlsFiles

Handler = Callable[[argparse.Namespace], int]


def package_version() -> str:
    """The installed distribution's version, so `--version` matches what pip installed."""
    try:
        return version("llmplatform")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmplatform",
        description=(
            "Kubernetes-native LLM platform: an operator that renders LLMModel, RoutingPolicy "
            "and TenantQuota resources into workloads and gateway config, and the gateway that "
            "enforces it."
        ),
    )
    parser.add_argument("--version", action="version", version=f"llmplatform {package_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_render_parser(subparsers)
    add_operator_parser(subparsers)
    add_gateway_parser(subparsers)
    add_mock_upstream_parser(subparsers)
    add_audit_parser(subparsers)
    add_usage_parser(subparsers)
    return parser


def add_operator_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from llmplatform.operator.args import add_parser

    add_parser(subparsers)


def add_render_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    render = subparsers.add_parser(
        "render",
        help="print every object the operator would create for a folder of manifests",
        description=(
            "Render LLMModel, RoutingPolicy, TenantQuota and Secret manifests from DIR (all .yaml/.yml "
            "files, recursively) into the Deployments, Services, HPAs, NetworkPolicies and gateway "
            "ConfigMap the operator would apply, as multi-document YAML on standard output. Resources "
            "that are not ready (missing models or Secrets, quotas over their ceiling, pending keys) are "
            "reported on standard error; the exit status is 1 when a resource fails validation."
        ),
    )
    render.add_argument("directory", metavar="DIR", help="folder of manifests")
    render.add_argument(
        "--platform-namespace",
        default="llm-platform",
        metavar="NS",
        help="namespace of the gateway and its ConfigMap (default: llm-platform)",
    )
    shardargs.add_arguments(render)
    render.set_defaults(handler=run_render)


def run_render(args: argparse.Namespace) -> int:
    from llmplatform.render import dump_objects, load_manifests, render

    try:
        manifests = load_manifests(args.directory)
        result = render(
            manifests.resources,
            manifests.secrets,
            platform_namespace=args.platform_namespace,
            shard_bytes=args.config_shard_bytes,
            max_shards=args.config_shards,
        )
    except ValueError as exc:
        print(f"llmplatform render: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(dump_objects(result.objects))
    if result.sharded is not None and result.sharded.oversize:
        print(
            f"llmplatform render: gateway config shard(s) {', '.join(result.sharded.oversize)} exceed "
            f"--config-shard-bytes {args.config_shard_bytes} even at --config-shards {args.config_shards}",
            file=sys.stderr,
        )
    invalid = False
    verdicts = [("LLMModel", v.namespace, v.name, v.conditions) for v in result.models]
    verdicts += [("RoutingPolicy", v.namespace, v.name, v.conditions) for v in result.policies]
    verdicts += [("TenantQuota", v.namespace, v.name, v.conditions) for v in result.quotas]
    for kind, namespace, name, conditions in verdicts:
        for condition in conditions:
            if condition.status != "True":
                print(
                    f"{kind} {namespace}/{name}: {condition.type}={condition.status} "
                    f"({condition.reason}) {condition.message}",
                    file=sys.stderr,
                )
            invalid = invalid or condition.reason == "InvalidSpec"
    return 1 if invalid else 0


def add_gateway_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gw = subparsers.add_parser(
        "gateway",
        help="serve the OpenAI-compatible gateway for a rendered config or a folder of manifests",
        description=(
            "Serve the gateway. --config is the rendered ConfigMap content (config.json) as the pod mounts "
            "it; --manifests renders a folder of LLMModel / RoutingPolicy / TenantQuota / Secret YAML on "
            "the spot. Either source is re-read when it changes; a config that fails to load is rejected "
            "and the previous one keeps serving."
        ),
    )
    source = gw.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", metavar="FILE", help="rendered gateway config (config.json)")
    source.add_argument("--manifests", metavar="DIR", help="folder of manifests to render (no cluster)")
    gw.add_argument("--host", default="0.0.0.0", help="address to bind (default: 0.0.0.0)")
    gw.add_argument("--port", type=int, default=8080, help="port to bind (default: 8080)")
    gw.add_argument(
        "--workers", type=int, default=1, metavar="N", help="processes sharing the port (default: 1)"
    )
    gw.add_argument(
        "--redis-url",
        metavar="URL",
        type=redisurl.argument,
        help="shared limit store: redis://, rediss:// (TLS), redis+sentinel://host:26379,.../<service>, "
        "redis+cluster://host:6379,... (rediss+ for TLS); without it limits are per process",
    )
    gw.add_argument(
        "--redis-failure-mode",
        choices=["local", "refuse"],
        default="local",
        help="when Redis is unreachable: enforce limits per process (local, default) or answer 503 (refuse)",
    )
    gw.add_argument(
        "--audit-log", metavar="FILE", help="append audit records here (default: standard output)"
    )
    gw.add_argument(
        "--audit-log-max-bytes",
        type=int,
        default=100 * 1024 * 1024,
        metavar="N",
        help="rotate the audit log before it grows past N bytes; 0: never (default: 100 MiB)",
    )
    gw.add_argument(
        "--audit-log-keep",
        type=int,
        default=0,
        metavar="N",
        help="at most N rotated audit files, deleting older ones even before their retention (recorded "
        "in the chain, logged as an error); 0: files are deleted only when their retention ends (default)",
    )
    gw.add_argument(
        "--audit-log-rotate-seconds",
        type=float,
        default=86400.0,
        metavar="S",
        help="also rotate the audit log once its file is S seconds old, so that files expire by "
        "retention a day at a time; 0: by size only (default: 86400)",
    )
    gw.add_argument(
        "--audit-fsync-seconds",
        type=float,
        default=1.0,
        metavar="S",
        help="fsync the audit log at most every S seconds after a write; 0: after every write; "
        "negative: only on rotation and shutdown (default: 1)",
    )
    gw.add_argument(
        "--secrets-dir",
        default=GATEWAY_SECRETS_DIR,
        metavar="DIR",
        help="with --config: upstream keys are read from DIR/<namespace>/<secret>/<key>",
    )
    gw.add_argument("--platform-namespace", default="llm-platform", metavar="NS", help="with --manifests")
    gw.add_argument(
        "--max-body-bytes", type=int, default=10 * 1024 * 1024, metavar="N", help="413 above this"
    )
    gw.add_argument(
        "--reload-interval", type=float, default=1.0, metavar="SECONDS", help="config poll period"
    )
    gw.add_argument(
        "--max-upstream-body-bytes",
        type=int,
        default=32 * 1024 * 1024,
        metavar="N",
        help="largest upstream answer read (a JSON body, or all events of a stream); above it the "
        "client gets a 502 upstream_response_too_large (in-band for a started stream) (default: 32 MiB)",
    )
    gw.add_argument(
        "--client-write-timeout",
        dest="client_write_seconds",
        type=float,
        default=60.0,
        metavar="S",
        help="close a client connection that does not take a write within S seconds (default: 60)",
    )
    gw.add_argument(
        "--header-read-timeout",
        dest="head_read_seconds",
        type=float,
        default=10.0,
        metavar="S",
        help="close a connection that has not sent a whole request head within S seconds of "
        "opening or of starting the request; 0: no limit (default: 10)",
    )
    gw.add_argument(
        "--body-read-timeout",
        dest="body_read_seconds",
        type=float,
        default=60.0,
        metavar="S",
        help="answer 408 and close when a request body has not arrived within S seconds (default: 60)",
    )
    gw.add_argument(
        "--reload-max-removed",
        type=float,
        default=0.5,
        metavar="SHARE",
        help="reject a reloaded config that removes more than this share of the serving models or "
        "keys (one that removes all of either is always rejected) (default: 0.5)",
    )
    gw.add_argument(
        "--tls-cert-file",
        metavar="FILE",
        help="serve HTTPS with this PEM certificate chain (with --tls-key-file); re-read when it "
        "changes (every --reload-interval), a pair that fails to load never replaces the serving one",
    )
    gw.add_argument("--tls-key-file", metavar="FILE", help="the PEM private key of --tls-cert-file")
    gw.add_argument(
        "--tls-client-ca-file",
        metavar="FILE",
        help="require client certificates signed by these PEM CA certificates (in the TLS handshake)",
    )
    gw.add_argument(
        "--health-port",
        type=int,
        metavar="P",
        help="also serve /healthz, /readyz and /metrics in plain HTTP on P (for probes and "
        "scraping when clients must present a certificate)",
    )
    gw.add_argument(
        "--shutdown-delay",
        type=float,
        default=0.0,
        metavar="S",
        help="on SIGTERM keep serving S seconds while /readyz fails and every response closes its "
        "connection, then stop (lets a Service move clients away in a rollout; default: 0)",
    )
    gw.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    gw.add_argument(
        "--upstream-override",
        action="append",
        default=[],
        metavar="MODEL=URL",
        help="send MODEL (LLMModel name or namespace/name; * for every model) to URL instead of its "
        "endpoint.url, e.g. a local upstream; repeatable",
    )
    gw.add_argument(
        "--mock",
        action="store_true",
        help="start `llmplatform mock-upstream` (a TEST SERVER with canned answers) on a free "
        "loopback port and send every OpenAI-API model to it (what `make run` does); models of "
        "other providers (anthropic) keep their URL, and a warning names them",
    )
    gw.set_defaults(handler=run_gateway)


def start_mock_upstream() -> tuple[subprocess.Popen[bytes], str]:
    """`llmplatform mock-upstream` as a child on a free loopback port, once it answers."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "llmplatform.cli", "mock-upstream", "--host", "127.0.0.1"]
    proc = subprocess.Popen([*cmd, "--port", str(port)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("llmplatform mock-upstream did not start")


def run_gateway(args: argparse.Namespace) -> int:
    from llmplatform.contract.telemetry import TelemetryConfigError, tracing_settings
    from llmplatform.gateway.main import serve
    from llmplatform.gateway.source import ConfigFile, UpstreamOverrides, parse_override

    try:
        tls = tls_files(args)
        if args.health_port is not None and args.health_port == args.port:
            # with SO_REUSEPORT both would bind, and connections would land on either at random
            raise ValueError("--health-port must differ from --port")
        if args.shutdown_delay < 0:
            raise ValueError(f"--shutdown-delay must be 0 or more seconds, not {args.shutdown_delay}")
    except ValueError as exc:
        print(f"llmplatform gateway: {exc}", file=sys.stderr)
        return 2
    source: ConfigSource | None = None
    if args.manifests:  # the CLI composes render + gateway; the gateway itself never renders
        from llmplatform.render.source import ManifestDir

        source = ManifestDir(args.manifests, args.platform_namespace)
    try:
        overrides = dict(parse_override(o) for o in args.upstream_override)
    except ValueError as exc:
        print(f"llmplatform gateway: --upstream-override: {exc}", file=sys.stderr)
        return 2
    try:  # checked here, before any worker starts, so a bad variable is one clear line
        tracing_settings(os.environ, "llmplatform-gateway")
    except TelemetryConfigError as exc:
        print(f"llmplatform gateway: tracing: {exc}", file=sys.stderr)
        return 2
    mock = None
    wildcard: frozenset[str] | None = None
    if args.mock:
        mock, url = start_mock_upstream()
        overrides.setdefault("*", url)
        wildcard = frozenset({"openai"})  # the mock speaks the OpenAI API only
        print(f"llmplatform gateway: --mock: mock-upstream (test server) at {url}", file=sys.stderr)
    if overrides:
        inner = source if source is not None else ConfigFile(args.config, args.secrets_dir)
        source = UpstreamOverrides(inner, overrides, wildcard)
    try:
        return serve(gateway_spec(args, source, tls), args.workers)
    finally:
        if mock is not None:
            mock.terminate()
            mock.wait(timeout=10)


def tls_files(args: argparse.Namespace) -> TlsFiles | None:
    """The TLS flags, checked: both halves of the pair, and files that load (a gateway that
    cannot serve its certificate must not start, let alone start answering in plain HTTP)."""
    import ssl

    from llmplatform.gateway.tls import TlsFiles, build_context, resolve

    if args.tls_cert_file is None and args.tls_key_file is None:
        if args.tls_client_ca_file is not None:
            raise ValueError("--tls-client-ca-file needs --tls-cert-file and --tls-key-file")
        return None
    if args.tls_cert_file is None or args.tls_key_file is None:
        raise ValueError("--tls-cert-file and --tls-key-file go together")
    files = TlsFiles(args.tls_cert_file, args.tls_key_file, args.tls_client_ca_file)
    try:
        build_context(resolve(files)[0])
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the TLS files ({', '.join(files.paths())}): {exc}") from None
    return files


def gateway_spec(
    args: argparse.Namespace, source: ConfigSource | None, tls: TlsFiles | None = None
) -> WorkerSpec:
    from llmplatform.gateway.main import WorkerSpec

    return WorkerSpec(
        tls=tls,
        health_port=args.health_port,
        shutdown_delay=args.shutdown_delay,
        host=args.host,
        port=args.port,
        config=args.config,
        source=source,
        secrets_dir=args.secrets_dir,
        redis_url=args.redis_url,
        redis_failure_mode=args.redis_failure_mode,
        audit_log=args.audit_log,
        audit_log_max_bytes=args.audit_log_max_bytes,
        audit_log_keep=args.audit_log_keep,
        audit_log_rotate_seconds=args.audit_log_rotate_seconds,
        audit_fsync_seconds=args.audit_fsync_seconds,
        max_body_bytes=args.max_body_bytes,
        reload_interval=args.reload_interval,
        log_level=args.log_level,
        max_upstream_body_bytes=args.max_upstream_body_bytes,
        client_write_seconds=args.client_write_seconds,
        head_read_seconds=args.head_read_seconds,
        body_read_seconds=args.body_read_seconds,
        reload_max_removed=args.reload_max_removed,
    )


def add_mock_upstream_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mock = subparsers.add_parser(
        "mock-upstream",
        help="TEST SERVER ONLY: a fake OpenAI-compatible upstream with injectable failures",
        description=(
            "A TEST SERVER, not a model: answers /v1/chat/completions, /v1/completions, /v1/embeddings "
            "and /v1/models like OpenAI (JSON and SSE with usage) with canned text, and fails on demand. "
            "Change settings at run time with POST /_mock/config; read counters at GET /_mock/stats."
        ),
    )
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=int, default=9000)
    mock.add_argument("--latency-ms", type=float, default=0.0, help="delay before answering")
    mock.add_argument("--chunk-delay-ms", type=float, default=0.0, help="delay between streamed chunks")
    mock.add_argument(
        "--completion-tokens", type=int, default=16, help="tokens per answer (capped by max_tokens)"
    )
    mock.add_argument("--failure-rate", type=float, default=0.0, help="share of requests that fail (0..1)")
    mock.add_argument(
        "--failure-mode",
        choices=["status", "timeout", "drop"],
        default="status",
        help="status: answer --failure-status; timeout: hang; drop: close the connection (mid-stream)",
    )
    mock.add_argument("--failure-status", type=int, default=500)
    mock.add_argument("--hang-seconds", type=float, default=3600.0, help="how long timeout failures hang")
    mock.add_argument("--models", default="mock-model", help="comma-separated ids for /v1/models")
    mock.add_argument("--seed", type=int, default=None, help="seed for the failure draw")
    mock.add_argument("--tls-cert-file", metavar="PEM", help="serve HTTPS with this certificate (chain)")
    mock.add_argument("--tls-key-file", metavar="PEM", help="the certificate's private key")
    mock.set_defaults(handler=run_mock_upstream)


def run_mock_upstream(args: argparse.Namespace) -> int:
    from llmplatform.gateway.mockupstream import MockSettings, serve

    settings = MockSettings(
        latency_ms=args.latency_ms,
        chunk_delay_ms=args.chunk_delay_ms,
        completion_tokens=args.completion_tokens,
        failure_rate=args.failure_rate,
        failure_mode=args.failure_mode,
        failure_status=args.failure_status,
        hang_seconds=args.hang_seconds,
        models=[m for m in args.models.split(",") if m],
        seed=args.seed,
    )
    serve(args.host, args.port, settings, args.tls_cert_file, args.tls_key_file)
    return 0


def add_audit_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = subparsers.add_parser("audit", help="work with the gateway's audit logs")
    commands = audit.add_subparsers(dest="audit_command", metavar="COMMAND", required=True)
    verify = commands.add_parser(
        "verify",
        help="check audit logs' hash chains",
        description=(
            "Check the hash chains of audit log files (JSON Lines, rotated files included, in any "
            "order). Exit 0 with a summary per chain when intact; exit 1 naming the first bad record "
            "(file:line, seq, reason) for an edited, deleted, inserted or reordered record, a truncated "
            "line or a broken link between files."
        ),
    )
    verify.add_argument("files", nargs="+", metavar="FILE")
    verify.add_argument(
        "--partial",
        action="store_true",
        help="accept chains that start after seq 1 (older rotated files were deleted)",
    )
    verify.set_defaults(handler=run_audit_verify)


def run_audit_verify(args: argparse.Namespace) -> int:
    from llmplatform.gateway.auditverify import summary, verify

    try:
        report = verify(args.files, partial=args.partial)
    except OSError as exc:
        print(f"llmplatform audit verify: {exc}", file=sys.stderr)
        return 2
    if report.problem is not None:
        print(f"FAILED: {report.problem}")
        return 1
    print(summary(report))
    return 0


def add_usage_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    usage = subparsers.add_parser("usage", help="usage over time, from the gateway's audit logs")
    commands = usage.add_subparsers(dest="usage_command", metavar="COMMAND", required=True)
    rep = commands.add_parser(
        "report",
        help="per-tenant, per-model, per-day (or month) totals from audit logs (the chargeback source)",
        description=(
            "Totals of requests, errors (status >= 400), response-cache hits, tokens in/out and cost per "
            "period (UTC), tenant and model, from audit log files: pass every file (rotated FILE.1 ... "
            "and per-worker FILE.w<i> included, in any order; a record passed twice counts once). "
            "Reads request records only (start/close records and torn lines are skipped) and verifies "
            "nothing: run `llmplatform audit verify` on the same files for that."
        ),
    )
    rep.add_argument("files", nargs="+", metavar="FILE")
    rep.add_argument("--by", choices=["day", "month"], default="day", help="period (default: day)")
    rep.add_argument("--format", choices=["table", "csv", "json"], default="table")
    rep.add_argument("--tenant", metavar="NS/NAME", help="only this tenant (as in the audit records)")
    rep.add_argument("--since", metavar="DATE", help="from this UTC date or RFC 3339 time (inclusive)")
    rep.add_argument("--until", metavar="DATE", help="before this UTC date or RFC 3339 time (exclusive)")
    rep.set_defaults(handler=run_usage_report)


def run_usage_report(args: argparse.Namespace) -> int:
    from llmplatform.gateway.usagereport import render, report

    files = []
    try:
        for name in args.files:
            with open(name, encoding="utf-8", errors="replace") as f:
                files.append(f.read().splitlines())
        rep = report(files, by=args.by, tenant=args.tenant, since=args.since, until=args.until)
    except (OSError, ValueError) as exc:
        print(f"llmplatform usage report: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(render(rep, args.format))
    if rep.skipped_lines:
        print(f"llmplatform usage report: skipped {rep.skipped_lines} unreadable line(s)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
