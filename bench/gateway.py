"""Benchmark the gateway on loopback against the project's mock upstream (a test server).

Why: the gateway sits on every request's path, so what it adds is tracked as numbers. One run
measures, against the same upstream:
  (a) the upstream directly, (b) a bare aiohttp pass-through proxy (the practical ceiling for
  one Python process), on the standard asyncio loop and on uvloop (the gateway's loop, so the
  targets compare against that one), (c) our gateway with one worker and the default policy enforced (auth,
  limits with headers, routing and scoring, metrics, audit to a file), (d) LiteLLM's proxy
  when it is installed (in its own virtualenv; see --litellm), and (e) the gateway with data
  governance off and on, side by side, on realistic prompts (Faker, several locales, 0.3-1.5 KB,
  about half with personal data): "off" is piiRedaction false with the model cleared for
  restricted data (every request is still scanned and classified, as the gateway always does,
  but nothing is redacted); "on" is piiRedaction true with the model cleared only for internal
  data, so every prompt with personal data is redacted before it leaves. The scan itself is
  also timed in process on the same prompts, so its share of a request is visible.
For each: requests/s at 16 connections (wrk), p50 / p99 at 1 connection (wrk --latency) and
the added latency over (a), streaming time to first chunk (a Python client, 1 connection),
and the gateway's RSS with a 10,000-tenant, 1,000-model config. Also item 8 of the issue: the
upstream client, httpx vs aiohttp, at 16 concurrent requests from one event loop.

wrk, the mock and the server under test share the machine's cores, so absolute numbers are
lower than on separate machines; the comparison between (a)-(d) is what matters.
Results: bench/results/gateway.json and gateway.md, with the machine noted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from llmplatform_testing.gateway import start_redis
from llmplatform_testing.machine import machine, page_header, write_results
from llmplatform_testing.procs import Proc, cli, free_port

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
KEY = "llmp-bench-key"
BODY = {
    "model": "bench",
    "messages": [{"role": "user", "content": "Say hello to the benchmark."}],
    "max_tokens": 16,
}
DEFAULT_LITELLM = Path.home() / ".cache" / "llmplatform" / "litellm-venv" / "bin" / "litellm"


def realistic_prompts(n: int = 64, seed: int = 7) -> list[dict[str, Any]]:
    """Chat bodies a support or analytics team might send: free text of 0.3-1.5 KB, about
    half carrying personal data (e-mail, phone, IBAN, card, SSN, IP address)."""
    from faker import Faker

    fake = Faker(["en_US", "de_DE", "fr_FR", "en_GB"])
    fake.seed_instance(seed)
    pii = [
        lambda: f"You can reach the customer at {fake.email()}.",
        lambda: f"Call back on {fake.phone_number()} after 5pm.",
        lambda: f"Refund to IBAN {fake.iban()} please.",
        lambda: f"The card on file is {fake.credit_card_number(card_type='visa16')}.",
        lambda: f"Their SSN is {fake.unique.ssn()} according to the form.",
        lambda: f"Login attempts came from {fake.ipv4_public()}.",
    ]
    bodies = []
    for i in range(n):
        parts = [fake.paragraph(nb_sentences=fake.random_int(3, 12)) for _ in range(fake.random_int(1, 3))]
        if i % 2 == 0:
            parts.insert(fake.random_int(0, len(parts)), pii[(i // 2) % len(pii)]())
        text = " ".join(parts)
        bodies.append(
            {
                "model": "bench",
                "messages": [
                    {"role": "system", "content": "You are a helpful support assistant. Answer briefly."},
                    {"role": "user", "content": f"Summarise this ticket for {fake.name()}: {text}"},
                ],
                "max_tokens": 16,
            }
        )
    return bodies


def scan_cost(bodies: list[dict[str, Any]], rounds: int = 20) -> dict[str, float]:
    """In-process time to scan and classify (and, when needed, redact) one request body."""
    from llmplatform.gateway import governance as gv

    samples = []
    for _ in range(rounds):
        for body in bodies:
            start = time.perf_counter()
            found = gv.scan(body, "chat", False)
            if found.findings:
                found.redacted()
            samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    return {
        "p50_us": round(samples[len(samples) // 2], 1),
        "p99_us": round(samples[int(len(samples) * 0.99)], 1),
        "mean_us": round(statistics.fmean(samples), 1),
        "prompts_with_findings": sum(1 for b in bodies if gv.scan(b, "chat", False).findings),
        "prompts": len(bodies),
    }


# -- (b) the bare pass-through proxy ---------------------------------------------------------


def bare_proxy(port: int, upstream: str, loop: str) -> None:
    """Forward every POST to the upstream with one pooled session; stream bodies through."""
    import aiohttp
    from aiohttp import web

    session: aiohttp.ClientSession | None = None

    async def start(app: web.Application) -> None:
        nonlocal session
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)

    async def forward(request: web.Request) -> web.StreamResponse:
        assert session is not None
        body = await request.read()
        headers = {"content-type": "application/json", "authorization": "Bearer upstream"}
        async with session.post(upstream + request.path, data=body, headers=headers) as resp:
            if resp.content_type != "text/event-stream":
                return web.Response(
                    body=await resp.read(), status=resp.status, content_type=resp.content_type
                )
            out = web.StreamResponse(status=resp.status, headers={"content-type": "text/event-stream"})
            await out.prepare(request)
            async for chunk in resp.content.iter_any():
                await out.write(chunk)
            await out.write_eof()
            return out

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.on_startup.append(start)
    app.router.add_post("/{tail:.*}", forward)
    app.router.add_get("/healthz", healthz)
    if loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def manifests(directory: Path, upstream: str, governance: str | None = None) -> Path:
    """The examples' default policy, one model on the mock, one tenant with limits and user
    limits high enough never to refuse (so every request does the full limit work).
    `governance` "off" / "on": see the module docstring, (e)."""
    import yaml

    big = 10**9
    docs = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "up", "namespace": "llm-platform"},
            "stringData": {"k": "sk-bench"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "key", "namespace": "team"},
            "stringData": {"k": KEY},
        },
        {
            "apiVersion": "llmplatform.io/v1alpha1",
            "kind": "LLMModel",
            "metadata": {"name": "bench", "namespace": "llm-platform"},
            "spec": {
                "tier": "standard",
                "contextWindow": 128000,
                "pricing": {"inputPerMillionTokens": 0.15, "outputPerMillionTokens": 0.6},
                "endpoint": {"url": upstream + "/v1", "apiKeySecretRef": {"name": "up", "key": "k"}},
            },
        },
    ]
    if governance is not None:
        docs[-1]["spec"]["maxDataClassification"] = "internal" if governance == "on" else "restricted"
        # Declared over TLS, as a model that may receive restricted data must be (#19); the
        # gateway runs with --upstream-override to the mock, which keeps the declared TLS status.
        docs[-1]["spec"]["endpoint"]["url"] = "https://bench.invalid/v1"
    policy = next(
        d for d in yaml.safe_load_all((ROOT / "examples" / "30-routingpolicy.yaml").read_text()) if d
    )
    policy["spec"]["tiers"] = [{"name": "standard", "models": ["bench"]}]
    policy["spec"]["fallback"]["acrossTiers"] = []
    policy["spec"].pop("tenantCeilings", None)
    # the example's in-cluster plaintext allowance names its own models, not `bench`
    policy["spec"].get("dataGovernance", {}).pop("allowInClusterPlaintext", None)
    if governance is not None:
        policy["spec"]["dataGovernance"] = {"piiRedaction": governance == "on", "rules": []}
    docs.append(policy)
    limits = {
        "requestsPerMinute": big,
        "requestsPerHour": big,
        "tokensPerMinute": big,
        "tokensPerDay": big,
        "costPerMonthUSD": big,
    }
    docs.append(
        {
            "apiVersion": "llmplatform.io/v1alpha1",
            "kind": "TenantQuota",
            "metadata": {"name": "team", "namespace": "team"},
            "spec": {
                "allowedTiers": ["standard"],
                "limits": limits,
                "userLimits": {"requestsPerMinute": big},
                "apiKeys": [
                    {
                        "name": "bench",
                        "user": "bench",
                        "role": "admin",
                        "secretRef": {"name": "key", "key": "k"},
                    }
                ],
            },
        }
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "all.yaml").write_text(yaml.safe_dump_all(docs))
    return directory


def big_config(path: Path, upstream: str, tenants: int, models: int) -> dict[str, Any]:
    """A sealed gateway config with many tenants and models, built from the config types
    directly (the gateway only ever sees this file)."""
    from llmplatform.contract import config as gc
    from llmplatform.render import dump_config, hash_api_key

    model_entries = [
        gc.ModelEntry(
            id=f"llm-platform/m{i:04d}",
            namespace="llm-platform",
            name=f"m{i:04d}",
            tier="standard",
            provider="openai",
            upstream_model=f"m{i:04d}",
            url=upstream + "/v1",
            api_key_secret_ref=None,
            self_hosted=False,
            context_window=128000,
            max_output_tokens=4096,
            pricing=gc.Pricing(input_per_million_tokens=1, output_per_million_tokens=2),
            priors=gc.Priors(expected_latency_ms=500, availability=0.99),
            capabilities=["chat", "completions"],
            max_data_classification="internal",
            region=None,
        )
        for i in range(models)
    ]
    policy = gc.PolicyEntry(
        id="llm-platform/default",
        namespace="llm-platform",
        name="default",
        default=True,
        default_tier="standard",
        tiers=[gc.TierEntry(name="standard", models=[m.id for m in model_entries[:8]])],
        fallback=gc.Fallback(
            max_attempts=3, retry_on=[429, 500, 502, 503, 504, "timeout", "connect"], across_tiers=[]
        ),
        scoring=gc.Scoring(availability=0.4, cost=0.3, latency=0.2, priority=0.1),
        timeouts=gc.Timeouts(connect_seconds=5, request_seconds=120, stream_idle_seconds=60),
        circuit_breaker=gc.CircuitBreaker(consecutive_failures=5, open_seconds=30),
        data_governance=gc.DataGovernance(pii_redaction=True, rules=[]),
        cache=gc.Cache(enabled=False, ttl_seconds=300, temperature_zero_only=True),
    )
    tenant_entries = [
        gc.TenantEntry(
            id=f"t{i:05d}/q",
            namespace=f"t{i:05d}",
            name="q",
            organization=f"org {i}",
            policy=policy.id,
            allowed_tiers=["standard"],
            limits=gc.Limits(requests_per_minute=1000, tokens_per_day=10**7),
            user_limits=None,
            compliance=gc.Compliance(frameworks=[], region=None),
            keys=[
                gc.KeyEntry(
                    name="k", user=f"u{i}", role="admin", sha256=hash_api_key(KEY if i == 0 else f"key-{i}")
                )
            ],
        )
        for i in range(tenants)
    ]
    config = gc.seal(
        gc.GatewayConfig(
            default_policy=policy.id, models=model_entries, policies=[policy], tenants=tenant_entries
        )
    )
    text = dump_config(config)
    path.write_text(text)
    return {"tenants": tenants, "models": models, "config_bytes": len(text.encode())}


# -- measurement -----------------------------------------------------------------------------

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(
    url: str,
    connections: int,
    seconds: int,
    key: str | None,
    lua_dir: Path,
    bodies: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """wrk against the chat endpoint: BODY on every request, or `bodies` in turn."""
    script = lua_dir / "post.lua"
    auth = f'wrk.headers["Authorization"] = "Bearer {key}"\n' if key else ""
    rotate = ""
    if bodies:
        items = ",\n".join(json.dumps(json.dumps(b)) for b in bodies)
        rotate = (
            f"local bodies = {{\n{items}\n}}\nlocal i = 0\n"
            "request = function()\n  i = i % #bodies + 1\n"
            "  return wrk.format(nil, nil, nil, bodies[i])\nend\n"
        )
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(BODY))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n' + auth + rotate
    )
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url + "/v1/chat/completions",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    pct = {
        m.group(1): float(m.group(2)) * UNITS[m.group(3)]
        for m in re.finditer(r"\s(50|99)%\s+([\d.]+)(us|ms|s)\b", out)
    }
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)  # shown per row; must be 0
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests_per_s": rps,
        "p50_ms": pct.get("50"),
        "p99_ms": pct.get("99"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else None,
    }


async def first_chunks(url: str, key: str | None, n: int) -> dict[str, float]:
    """Time to the first SSE event of a streamed chat completion, one request at a time."""
    import aiohttp

    headers = {"content-type": "application/json", **({"authorization": f"Bearer {key}"} if key else {})}
    body = json.dumps({**BODY, "stream": True}).encode()
    samples = []
    async with aiohttp.ClientSession() as session:
        for i in range(n + 10):
            start = time.perf_counter()
            async with session.post(url + "/v1/chat/completions", data=body, headers=headers) as resp:
                assert resp.status == 200, resp.status
                await resp.content.readline()
                if i >= 10:  # warm-up
                    samples.append((time.perf_counter() - start) * 1000)
                await resp.read()
    samples.sort()
    return {"p50_ms": statistics.median(samples), "p99_ms": samples[int(len(samples) * 0.99) - 1]}


async def client_comparison(upstream: str, n: int = 3000, concurrency: int = 16) -> dict[str, float]:
    """Item 8: the upstream client from one event loop, httpx vs aiohttp, requests/s."""
    import aiohttp
    import httpx

    body = json.dumps(BODY).encode()
    headers = {"content-type": "application/json"}
    url = upstream + "/v1/chat/completions"

    async def run(call: Any) -> float:
        sem = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with sem:
                await call()

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return n / (time.perf_counter() - start)

    result = {}
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as hc:

        async def via_httpx() -> None:
            r = await hc.post(url, content=body, headers=headers)
            r.read()

        await run(via_httpx)
        result["httpx_requests_per_s"] = await run(via_httpx)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as ac:

        async def via_aiohttp() -> None:
            async with ac.post(url, data=body, headers=headers) as r:
                await r.read()

        await run(via_aiohttp)
        result["aiohttp_requests_per_s"] = await run(via_aiohttp)
    return result


def measure(
    name: str,
    url: str,
    key: str | None,
    args: argparse.Namespace,
    tmp: Path,
    bodies: list[dict[str, Any]] | None = None,
    proc: Proc | None = None,
) -> dict[str, Any]:
    """wrk at 16 and 1 connections and first chunks; with `proc` (the server under test), its
    CPU time (user + system, workers included) per request over the 16-connection run: what a
    request costs, which unlike req/s hardly depends on what else the machine is running."""
    print(f"== {name}", flush=True)
    wrk(url, 16, 2, key, tmp, bodies)  # warm-up
    cpu0 = proc.cpu_seconds() if proc else 0.0
    throughput = wrk(url, 16, args.seconds, key, tmp, bodies)
    if proc is not None:
        requests = throughput["requests_per_s"] * args.seconds
        throughput["cpu_ms_per_request"] = round(1000 * (proc.cpu_seconds() - cpu0) / requests, 4)
    result = {
        "throughput_16c": throughput,
        "latency_1c": wrk(url, 1, args.seconds, key, tmp, bodies),
        "stream_first_chunk_1c": asyncio.run(first_chunks(url, key, args.stream_requests)),
    }
    print(json.dumps(result), flush=True)
    return result


def revision(rev: str, tmp: Path, name: str) -> tuple[str, dict[str, str]]:
    """Revision `rev` checked out as a detached worktree `tmp/name`: its short hash and the
    environment that runs its gateway on this virtualenv's packages (its source roots first on
    PYTHONPATH: `llmplatform` is a namespace package, so they shadow the editable install's).
    The caller removes the worktree (`git worktree remove`)."""
    src = tmp / name
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(src), rev], check=True)
    short = subprocess.run(
        ["git", "-C", str(src), "rev-parse", "--short", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    path = os.pathsep.join(str(src / d) for d in ("core", "operator", "gateway"))
    return short, {**os.environ, "PYTHONPATH": path}


def drop_worktrees(tmp: Path) -> None:
    for name in ("baseline-src", "current-src"):
        if (tmp / name).exists():
            git = ["git", "-C", str(ROOT), "worktree"]
            subprocess.run([*git, "remove", "--force", str(tmp / name)], check=False)


def baseline_rounds(
    args: argparse.Namespace,
    tmp: Path,
    upstream: str,
    targets: dict[str, Any],
    current_env: dict[str, str] | None,
) -> dict[str, Any]:
    """The gateway of another revision beside the current one (this tree, or `--current`),
    alternated (baseline, current, baseline) so the machine's noise hits both; each side's
    best round is its row."""
    rev, env = revision(args.baseline, tmp, "baseline-src")
    rounds: dict[str, list[dict[str, Any]]] = {"current": [targets["c_gateway_1_worker"]], "baseline": []}
    for who in ("baseline", "current", "baseline"):
        port = free_port()
        g_args = ["gateway", "--manifests", str(manifests(tmp / f"m-{who}", upstream))]
        audit = str(tmp / f"audit-{who}.jsonl")
        g_args += ["--host", "127.0.0.1", "--port", str(port), "--audit-log", audit]
        g = Proc(cli(*g_args), tmp / f"gateway-{who}.log", env=env if who == "baseline" else current_env)
        try:
            g.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
            url = f"http://127.0.0.1:{port}"
            rounds[who].append(measure(f"gateway ({who})", url, KEY, args, tmp, proc=g))
        finally:
            g.stop()
    for who, name in (("current", "c_gateway_1_worker"), ("baseline", f"c0_gateway_baseline_{rev}")):
        best = max(rounds[who], key=lambda x: x["throughput_16c"]["requests_per_s"])
        kept = {k: v for k, v in rounds[who][0].items() if k in ("rss_mb_after", "audit_records")}
        targets[name] = {
            **kept,
            **best,
            "rounds_rps_16c": [x["throughput_16c"]["requests_per_s"] for x in rounds[who]],
        }
    return {"rev": rev, "target": f"c0_gateway_baseline_{rev}"}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per measurement")
    parser.add_argument("--stream-requests", type=int, default=300)
    parser.add_argument(
        "--litellm", default=str(DEFAULT_LITELLM), help="litellm executable (skipped if absent)"
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also measure the gateway of git revision REV (a detached worktree, run on this venv), "
        "alternated with this tree's, for before/after comparisons in one run",
    )
    parser.add_argument(
        "--current",
        metavar="REV",
        help="run revision REV's gateway as the current one (the c rows) instead of this tree's; "
        "with --baseline, a before/after of two revisions (the other rows still run this tree)",
    )
    parser.add_argument(
        "--results", default="gateway", help="results file name in bench/results (default: gateway)"
    )
    parser.add_argument(
        "--tracing",
        action="store_true",
        help="only the cost of OpenTelemetry tracing: the gateway with tracing off, at sampling 1.0 and "
        "0.1, exporting to a real collector (bench/gateway_tracing.py; results gateway-tracing.*)",
    )
    parser.add_argument("--bare-proxy", nargs=3, metavar=("PORT", "UPSTREAM", "LOOP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_proxy:
        bare_proxy(int(args.bare_proxy[0]), args.bare_proxy[1], args.bare_proxy[2])
        return 0
    if shutil.which("wrk") is None:
        print("bench-gateway needs wrk (apt-get install -y wrk)", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="llmplatform-bench-"))
    procs: list[Proc] = []
    import aiohttp

    results: dict[str, Any] = {
        "machine": machine(aiohttp=aiohttp.__version__),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        up_port = free_port()
        upstream = f"http://127.0.0.1:{up_port}"
        mock = Proc(cli("mock-upstream", "--port", str(up_port)), tmp / "mock.log")
        procs.append(mock)
        mock.wait_http(upstream + "/healthz", timeout=60)
        if args.tracing:
            import gateway_tracing

            results["tracing"] = gateway_tracing.run(
                args, tmp, upstream, manifests(tmp / "m", upstream), KEY, measure, procs
            )
            results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
            name = args.results if args.results != "gateway" else "gateway-tracing"
            write_results(RESULTS, name, results, gateway_tracing.markdown(results))
            return 0
        results["client_comparison"] = asyncio.run(client_comparison(upstream))
        print(json.dumps(results["client_comparison"]), flush=True)
        targets: dict[str, Any] = {}
        targets["a_upstream_direct"] = measure("upstream", upstream, None, args, tmp)

        for loop, name in (("asyncio", "b_bare_aiohttp_proxy"), ("uvloop", "b2_bare_aiohttp_proxy_uvloop")):
            bare_port = free_port()
            bare = Proc(
                [sys.executable, __file__, "--bare-proxy", str(bare_port), upstream, loop],
                tmp / f"bare-{loop}.log",
            )
            procs.append(bare)
            bare.wait_http(f"http://127.0.0.1:{bare_port}/healthz", timeout=60)
            targets[name] = measure(
                f"bare proxy ({loop})", f"http://127.0.0.1:{bare_port}", None, args, tmp, proc=bare
            )
            bare.stop()

        gw_port = free_port()
        gw_args = ["gateway", "--manifests", str(manifests(tmp / "m", upstream)), "--host", "127.0.0.1"]
        gw_args += ["--port", str(gw_port), "--audit-log", str(tmp / "audit.jsonl")]
        current_env = None
        if args.current:
            results["current_rev"], current_env = revision(args.current, tmp, "current-src")
        gw = Proc(cli(*gw_args), tmp / "gateway.log", env=current_env)
        procs.append(gw)
        gw.wait_http(f"http://127.0.0.1:{gw_port}/readyz", timeout=60)
        gw_url = f"http://127.0.0.1:{gw_port}"
        targets["c_gateway_1_worker"] = measure("gateway", gw_url, KEY, args, tmp, proc=gw)
        targets["c_gateway_1_worker"]["rss_mb_after"] = round(gw.rss_mib(), 1)
        audit_lines = sum('"kind":"request"' in line for line in (tmp / "audit.jsonl").open())
        targets["c_gateway_1_worker"]["audit_records"] = audit_lines
        gw.stop()

        # The production path with more than one replica: the same gateway, limits in Redis.
        redis, redis_url = start_redis(tmp)
        procs.append(redis)
        rport = free_port()
        r_args = [*gw_args[:-4], "--port", str(rport), "--audit-log", str(tmp / "audit-redis.jsonl")]
        rgw = Proc(cli(*r_args, "--redis-url", redis_url), tmp / "gateway-redis.log", env=current_env)
        procs.append(rgw)
        rgw.wait_http(f"http://127.0.0.1:{rport}/readyz", timeout=60)
        targets["c1_gateway_redis"] = measure(
            "gateway, limits in Redis", f"http://127.0.0.1:{rport}", KEY, args, tmp, proc=rgw
        )
        rgw.stop()
        redis.stop()
        if args.baseline:
            results["baseline"] = baseline_rounds(args, tmp, upstream, targets, current_env)

        prompts = realistic_prompts()
        results["governance_scan_in_process"] = scan_cost(prompts)
        runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
        for mode in ("off", "on", "off", "on"):  # alternated twice: the machine's noise hits both
            port = free_port()
            g_args = ["gateway", "--manifests", str(manifests(tmp / f"gov-{mode}", upstream, mode))]
            g_args += [
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--audit-log",
                str(tmp / f"gov-{mode}.jsonl"),
                "--upstream-override",
                f"bench={upstream}/v1",
            ]
            g = Proc(cli(*g_args), tmp / f"gateway-gov-{mode}.log")
            procs.append(g)
            g.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
            url = f"http://127.0.0.1:{port}"
            runs[mode].append(measure(f"gateway, governance {mode}", url, KEY, args, tmp, prompts))
            g.stop()
        for mode, measured in runs.items():
            best = max(measured, key=lambda x: x["throughput_16c"]["requests_per_s"])
            targets[f"e_gateway_governance_{mode}"] = {
                **best,
                "rounds_rps_16c": [x["throughput_16c"]["requests_per_s"] for x in measured],
            }

        litellm = Path(args.litellm)
        if litellm.exists():
            port = free_port()
            cfg = tmp / "litellm.yaml"
            cfg.write_text(
                "model_list:\n  - model_name: bench\n    litellm_params:\n      model: openai/bench\n"
                f"      api_base: {upstream}/v1\n      api_key: sk-bench\n"
            )
            master = "sk-bench-master-" + os.urandom(16).hex()  # LiteLLM refuses to start without one
            env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
            env["LITELLM_MASTER_KEY"] = master
            lite = Proc(
                [
                    str(litellm),
                    "--config",
                    str(cfg),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--num_workers",
                    "1",
                ],
                tmp / "litellm.log",
                env=env,
            )
            procs.append(lite)
            lite.wait_http(f"http://127.0.0.1:{port}/health/liveliness", timeout=180)
            targets["d_litellm_proxy"] = measure("litellm", f"http://127.0.0.1:{port}", master, args, tmp)
            version = subprocess.run(
                [str(litellm.parent / "pip"), "show", "litellm"], capture_output=True, text=True
            ).stdout
            targets["d_litellm_proxy"]["version"] = next(
                (v.split(":", 1)[1].strip() for v in version.splitlines() if v.startswith("Version")), None
            )
            lite.stop()
        else:
            targets["d_litellm_proxy"] = {
                "skipped": f"{litellm} not found (install litellm[proxy] into that virtualenv)"
            }
        results["targets"] = targets

        print("== memory with a large config", flush=True)
        big = tmp / "big.json"
        results["memory"] = big_config(big, upstream, tenants=10_000, models=1_000)
        port = free_port()
        big_gw = Proc(
            cli(
                "gateway",
                "--config",
                str(big),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--audit-log",
                str(tmp / "a2.jsonl"),
            ),
            tmp / "big.log",
        )
        procs.append(big_gw)
        start = time.monotonic()
        big_gw.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=300)
        results["memory"]["startup_s"] = round(time.monotonic() - start, 2)
        results["memory"]["rss_mb_loaded"] = round(big_gw.rss_mib(), 1)
        wrk(f"http://127.0.0.1:{port}", 16, 3, KEY, tmp)
        results["memory"]["rss_mb_after_traffic"] = round(big_gw.rss_mib(), 1)
        big_gw.stop()
    finally:
        for p in procs:
            p.stop()
        drop_worktrees(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["summary"] = summarize(results)
    write_results(RESULTS, args.results, results, markdown(results))
    return 0


def summarize(r: dict[str, Any]) -> dict[str, Any]:
    t = r["targets"]
    up, gw = t["a_upstream_direct"], t["c_gateway_1_worker"]
    bare = t["b2_bare_aiohttp_proxy_uvloop"]  # same event loop as the gateway: the fair ceiling
    plain = t["b_bare_aiohttp_proxy"]
    lite = t["d_litellm_proxy"]

    def added(x: dict[str, Any], key: str) -> float:
        return round(x["latency_1c"][key] - up["latency_1c"][key], 3)

    s: dict[str, Any] = {
        "gateway_rps_16c": gw["throughput_16c"]["requests_per_s"],
        "bare_proxy_rps_16c": bare["throughput_16c"]["requests_per_s"],
        "gateway_over_bare_proxy": round(
            gw["throughput_16c"]["requests_per_s"] / bare["throughput_16c"]["requests_per_s"], 3
        ),
        "gateway_added_p50_ms": added(gw, "p50_ms"),
        "gateway_added_p99_ms": added(gw, "p99_ms"),
        "bare_proxy_added_p50_ms": added(bare, "p50_ms"),
        "bare_proxy_asyncio_rps_16c": plain["throughput_16c"]["requests_per_s"],
        "gateway_over_bare_proxy_asyncio": round(
            gw["throughput_16c"]["requests_per_s"] / plain["throughput_16c"]["requests_per_s"], 3
        ),
        "gateway_added_first_chunk_p50_ms": round(
            gw["stream_first_chunk_1c"]["p50_ms"] - up["stream_first_chunk_1c"]["p50_ms"], 3
        ),
        "gateway_rss_mb_10k_tenants_1k_models": r["memory"]["rss_mb_after_traffic"],
    }
    rgw = t.get("c1_gateway_redis")
    if rgw:
        s["gateway_redis_rps_16c"] = rgw["throughput_16c"]["requests_per_s"]
        s["gateway_redis_over_bare_proxy"] = round(
            rgw["throughput_16c"]["requests_per_s"] / bare["throughput_16c"]["requests_per_s"], 3
        )
        s["gateway_redis_added_p50_ms"] = added(rgw, "p50_ms")
    s["cpu_ms_per_request"] = {
        name: x["throughput_16c"]["cpu_ms_per_request"]
        for name, x in t.items()
        if isinstance(x, dict) and "cpu_ms_per_request" in x.get("throughput_16c", {})
    }
    if r.get("current_rev"):
        s["current_rev"] = r["current_rev"]
    if r.get("baseline"):
        base = t[r["baseline"]["target"]]
        s["baseline_rev"] = r["baseline"]["rev"]
        s["baseline_rps_16c"] = base["throughput_16c"]["requests_per_s"]
        s["gateway_over_baseline"] = round(
            gw["throughput_16c"]["requests_per_s"] / base["throughput_16c"]["requests_per_s"], 3
        )
        s["baseline_added_p50_ms"] = added(base, "p50_ms")
    gov_off, gov_on = t.get("e_gateway_governance_off"), t.get("e_gateway_governance_on")
    if gov_off and gov_on:
        s["governance_off_rps_16c"] = gov_off["throughput_16c"]["requests_per_s"]
        s["governance_on_rps_16c"] = gov_on["throughput_16c"]["requests_per_s"]
        s["governance_on_over_off"] = round(s["governance_on_rps_16c"] / s["governance_off_rps_16c"], 3)
        s["governance_on_added_p50_ms"] = round(
            gov_on["latency_1c"]["p50_ms"] - gov_off["latency_1c"]["p50_ms"], 3
        )
        s["governance_rounds_rps_16c"] = {
            "off": gov_off.get("rounds_rps_16c"),
            "on": gov_on.get("rounds_rps_16c"),
        }
        scan = r["governance_scan_in_process"]
        # the scan's share of the gateway's time per request at the measured rate (one core)
        s["governance_scan_share_of_request"] = round(scan["mean_us"] * s["governance_off_rps_16c"] / 1e6, 3)
    if "throughput_16c" in lite:
        s["litellm_rps_16c"] = lite["throughput_16c"]["requests_per_s"]
        s["gateway_over_litellm"] = round(
            gw["throughput_16c"]["requests_per_s"] / lite["throughput_16c"]["requests_per_s"], 1
        )
        s["litellm_added_p50_ms"] = added(lite, "p50_ms")
    s["targets"] = {
        "throughput >= 30x LiteLLM": None
        if "gateway_over_litellm" not in s
        else s["gateway_over_litellm"] >= 30,
        "throughput >= 0.5 of bare proxy (both on uvloop)": s["gateway_over_bare_proxy"] >= 0.5,
        "added p50 <= 1.0 ms": s["gateway_added_p50_ms"] <= 1.0,
        "in-process limits >= 0.6 of bare proxy (#15)": s["gateway_over_bare_proxy"] >= 0.6,
        "in-process limits added p50 <= 0.5 ms (#15)": s["gateway_added_p50_ms"] <= 0.5,
        "Redis limits >= 0.45 of bare proxy (#15)": None
        if "gateway_redis_over_bare_proxy" not in s
        else s["gateway_redis_over_bare_proxy"] >= 0.45,
        "Redis limits added p50 <= 0.8 ms (#15)": None
        if "gateway_redis_added_p50_ms" not in s
        else s["gateway_redis_added_p50_ms"] <= 0.8,
        "first chunk added <= 2 ms": s["gateway_added_first_chunk_p50_ms"] <= 2.0,
        "RSS <= 200 MB per worker (10k tenants, 1k models)": s["gateway_rss_mb_10k_tenants_1k_models"] <= 200,
        "governance on within 20% of off (req/s @16 conn)": None
        if "governance_on_over_off" not in s
        else s["governance_on_over_off"] >= 0.8,
    }
    return s


def markdown(r: dict[str, Any]) -> str:
    m, s, t = r["machine"], r["summary"], r["targets"]
    lines = page_header(
        "Gateway benchmark",
        f"{r['started']} by `make bench-gateway` (bench/gateway.py)",
        m,
        f"aiohttp {m['aiohttp']}. Everything on loopback: wrk (1 thread), the mock upstream (a test "
        "server) and the server under test share the cores; the gateway is the most CPU-bound, so "
        "its numbers suffer most. ",
    )
    lines += [
        "| target | req/s @16 conn | p50 @1 conn (ms) | p99 @1 conn (ms) "
        "| stream 1st chunk p50 (ms) | CPU ms per request @16 | non-2xx |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, x in t.items():
        if "throughput_16c" not in x:
            lines.append(f"| {name} | skipped: {x.get('skipped')} | | | | | |")
            continue
        cpu = x["throughput_16c"].get("cpu_ms_per_request")
        lines.append(
            f"| {name} | {x['throughput_16c']['requests_per_s']:.0f} | {x['latency_1c']['p50_ms']:.3f} | "
            f"{x['latency_1c']['p99_ms']:.3f} | {x['stream_first_chunk_1c']['p50_ms']:.3f} | "
            f"{'' if cpu is None else f'{cpu:.3f}'} | "
            f"{x['throughput_16c']['non_2xx'] + x['latency_1c']['non_2xx']} |"
        )
    lines += ["", "## Against the issue's targets", ""]
    lines += [f"- {k}: {'met' if v else ('n/a' if v is None else 'MISSED')}" for k, v in s["targets"].items()]
    lines += [
        "",
        "## Summary",
        "",
        "```json",
        json.dumps({k: v for k, v in s.items() if k != "targets"}, indent=2),
        "```",
    ]
    lines += [
        "",
        "## Upstream client (issue item 8), 16 concurrent from one loop",
        "",
        "```json",
        json.dumps(r["client_comparison"], indent=2),
        "```",
    ]
    if "governance_scan_in_process" in r:
        lines += [
            "",
            "## Governance: scanning one realistic request body in process",
            "",
            "The (e) rows run the same realistic prompts (64 bodies in turn, 0.3-1.5 KB, about half "
            "with personal data) through two gateways: off = piiRedaction false and the model cleared "
            "for restricted data (the gateway still scans and classifies every request: there is no "
            "switch that skips it), on = piiRedaction true and the model cleared for internal data "
            "only (prompts with findings leave redacted). Each ran twice, alternating; the table shows "
            "the better round. This is the scan (and redaction, for prompts with findings) alone, per "
            "request body, in process:",
            "",
            "```json",
            json.dumps(r["governance_scan_in_process"], indent=2),
            "```",
        ]
    lines += ["", "## Memory", "", "```json", json.dumps(r["memory"], indent=2), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
