"""`make demo`: the whole platform on one machine, shown with the official openai client.

Why this exists: a newcomer with only this repository should see the real thing work — the
operator reconciling resources on a real Kubernetes API server and the gateway enforcing what
the operator rendered — without a cloud account, Docker or a GPU. So the demo:

1. builds (first use only, with progress) and starts the local control plane of the e2e tests
   (etcd, kube-apiserver, controller-manager, scheduler and kwok with two fake GPU nodes);
2. installs `crds/`, starts Redis, the operator and local test upstreams (the project's
   `mock-upstream`, clearly labelled as a test server; the Anthropic one speaks the Messages API);
3. `kubectl apply -f examples/` unchanged and waits until everything is Ready;
4. runs the gateway as a local process on the ConfigMap the operator wrote, as a pod would
   mount it (there is no kubelet here to run pods). Model URLs point at api.openai.com, at
   api.anthropic.com and at a cluster Service, none of which resolve here, so the copy handed
   to the gateway maps each model to its local test upstream — the one stand-in of the demo,
   for DNS and egress — and the provider-key Secrets are copied into the folder layout the
   chart mounts;
5. shows routing by tier, a fallback when an upstream fails, data-governance redaction, a 429
   for a tenant over its limit, and the TenantQuota usage in `kubectl get tq`.

Every scene checks what it shows; `--once` exits afterwards (non-zero if a scene did not behave
as described), which is how the e2e test runs it. Without `--once` everything keeps running
until Ctrl-C, SIGTERM or SIGHUP (each stops every child it started), with the gateway on http://127.0.0.1:8080/v1.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai

from llmplatform.contract.config import seal
from llmplatform.render import CONFIG_GZ_KEY, CONFIG_KEY, CONFIG_MAP_NAME, dump_config, load_config
from llmplatform_testing import ROOT, procs
from llmplatform_testing import gateway as gh  # real processes on loopback: Redis, upstreams, gateway
from llmplatform_testing.controlplane import bed, build  # the e2e control plane

PLATFORM = "llm-platform"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def stop_on_signal(signum: int, frame: Any) -> None:
    """SIGTERM and SIGHUP (a closed terminal) stop the demo like Ctrl-C: through the same
    `finally` that stops every child, instead of Python's default of dying on the spot."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


TEAM_B_KEY_SECRET = ("team-b", "team-b-gateway-key", "key")


class DemoFailed(RuntimeError):
    """A scene did not behave as the demo says it does."""


def say(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def wait_for(what: str, fn: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Poll `fn` until it returns something truthy; errors count as "not yet" (the last is named)."""
    try:
        return procs.wait_for(fn, timeout, what, interval=interval, ignore=(Exception,))
    except procs.WaitTimeout as exc:
        raise DemoFailed(str(exc)) from None


@dataclass
class Platform:
    """Everything the demo started, stopped in reverse order."""

    state: Path
    cp: bed.ControlPlane | None = None
    procs: list[procs.Proc] = field(default_factory=list)
    upstreams: dict[str, str] = field(default_factory=dict)
    """LLMModel name -> local test upstream base URL."""
    gateway_url: str = ""
    redis_url: str = ""
    stop_sync: threading.Event = field(default_factory=threading.Event)

    def kubectl(self, *args: str, check: bool = True) -> str:
        assert self.cp is not None
        return self.cp.kubectl(*args, check=check)

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def close(self, keep_logs: bool = False) -> None:
        """Stop every child, saying which: each runs in its own session (so a stray ^C to the
        terminal cannot half-kill the platform) and is stopped by its process group. Signals
        are ignored meanwhile, so a second Ctrl-C or SIGTERM cannot cut the teardown short."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        self.stop_sync.set()
        say("stopping everything")
        for proc in reversed(self.procs):
            say(f"  stopping {Path(proc.log).stem} (pid {proc.popen.pid})")
            with contextlib.suppress(Exception):
                proc.stop()
        if self.cp is not None:
            say(f"  stopping the control plane ({', '.join(self.cp.pids)})")
            self.cp.keep_state = keep_logs
            self.cp.stop()
        stop_strays()
        say("stopped: no process of the demo is left running")


def stop_strays() -> None:
    """Stop any child not in the lists above: one interrupted while starting (a signal or a
    timeout while it was being waited for, before it was recorded). Each child leads its own
    process group, so its workers go with it."""
    me = str(os.getpid())
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] != me or fields[0] == "Z":
            if fields[1] == me:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(int(entry), os.WNOHANG)
            continue
        pid = int(entry)
        say(f"  stopping {Path(f'/proc/{entry}/exe').resolve().name} (pid {pid}), a child still running")
        with contextlib.suppress(OSError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGTERM)
            else:
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
            time.sleep(0.1)
        else:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)


# ------------------------------------------------------------------------------ bring-up


def start_platform(p: Platform, port: int) -> None:
    say("control plane: binaries from the cache (built on first use)")
    bins = build.ensure_built()
    p.cp = bed.ControlPlane(state=p.state / "cluster", bin_dir=bins)
    p.cp.start()
    say(f"control plane ready in {p.cp.timings['all_ready']:.1f}s: {p.cp.server}")
    p.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    p.kubectl(
        "wait",
        "--for=condition=Established",
        "crd",
        "-l",
        "app.kubernetes.io/part-of=llm-platform",
        "--timeout=60s",
        check=False,
    )
    wait_for(
        "CRDs served", lambda: "llmmodels" in p.kubectl("api-resources", "--api-group=llmplatform.io"), 30
    )

    redis, p.redis_url = gh.start_redis(p.state)
    p.procs.append(redis)
    say(f"redis: {p.redis_url}")
    for name in ("gpt-4o-mini", "llama-3-8b"):
        proc, url = gh.start_mock(p.state, name, models=name)
        p.procs.append(proc)
        p.upstreams[name] = url + "/v1"
    proc, url = gh.start_anthropic(p.state, "mock-claude-sonnet")  # validates with the `anthropic` types
    p.procs.append(proc)
    p.upstreams["claude-sonnet"] = url
    say("test upstreams: " + ", ".join(f"{k} -> {v}" for k, v in p.upstreams.items()))

    assert p.cp is not None
    op = procs.Proc(
        procs.cli(
            "operator",
            "--kubeconfig",
            str(p.cp.kubeconfig),
            "--platform-namespace",
            PLATFORM,
            "--usage-redis-url",
            p.redis_url,
            "--usage-seconds",
            "2",
            "--health-port",
            str(procs.free_port()),
        ),
        p.state / "operator.log",
    )
    p.procs.append(op)
    say(f"operator started (log: {op.log})")

    say("kubectl apply -f examples/")
    print(p.kubectl("apply", "-f", str(ROOT / "examples")), end="")
    wait_for("LLMModels Ready", lambda: all_true(p.get("llmm", "-n", PLATFORM), "Ready"), 120)
    wait_for("RoutingPolicy Ready", lambda: all_true(p.get("llmrp", "-n", PLATFORM), "Ready"), 60)
    wait_for("TenantQuotas Ready", lambda: all_true(p.get("tq", "-A"), "Ready", expect=2), 60)
    print(p.kubectl("get", "llmplatform", "-A"), end="")

    cfg_dir, secrets_dir = p.state / "gateway-config", p.state / "secrets"
    cfg_dir.mkdir()
    wait_for("gateway ConfigMap", lambda: sync_config(p, cfg_dir, secrets_dir), 60)
    threading.Thread(target=sync_loop, args=(p, cfg_dir, secrets_dir), daemon=True).start()
    if not port_free(port):
        say(f"port {port} is busy; using a free one")
        port = procs.free_port()
    gw, p.gateway_url = gh.start_gateway(
        p.state,
        ["--config", str(cfg_dir)],
        "--secrets-dir",
        str(secrets_dir),
        "--redis-url",
        p.redis_url,
        "--audit-log",
        str(p.state / "audit.jsonl"),
        port=port,
        name="gateway",
    )
    p.procs.append(gw)
    say(f"gateway: {p.gateway_url}/v1 serving the operator's ConfigMap (log: {gw.log})")


def all_true(listing: dict[str, Any], cond: str, expect: int | None = None) -> bool:
    items = listing.get("items", [])
    if expect is not None and len(items) != expect:
        return False
    return bool(items) and all(
        any(
            c["type"] == cond and c["status"] == "True" for c in (i.get("status") or {}).get("conditions", [])
        )
        for i in items
    )


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def sync_config(p: Platform, cfg_dir: Path, secrets_dir: Path) -> bool:
    """Do what the kubelet does for a gateway pod: mount the ConfigMap and the provider-key
    Secrets; plus the demo's stand-in for DNS (each model URL -> its local test upstream)."""
    cm = json.loads(
        p.kubectl("get", "configmap", CONFIG_MAP_NAME, "-n", PLATFORM, "-o", "json", check=False) or "{}"
    )
    if not cm:
        return False
    if CONFIG_KEY in (cm.get("data") or {}):
        raw: str | bytes = cm["data"][CONFIG_KEY]
    else:
        raw = gzip.decompress(base64.b64decode(cm["binaryData"][CONFIG_GZ_KEY]))
    config = load_config(raw)
    models = [m.model_copy(update={"url": p.upstreams.get(m.name, m.url)}) for m in config.models]
    text = dump_config(seal(config.model_copy(update={"models": models})))
    for m in config.models:
        ref = m.api_key_secret_ref
        if ref is None:
            continue
        target = secrets_dir / ref.namespace / ref.name / ref.key
        if not target.exists():
            secret = p.get("secret", ref.name, "-n", ref.namespace)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(base64.b64decode(secret["data"][ref.key]))
    path = cfg_dir / CONFIG_KEY
    if not path.exists() or path.read_text() != text:
        tmp = cfg_dir / ".config.json.tmp"
        tmp.write_text(text)
        os.replace(tmp, path)  # atomic, like the kubelet's symlink swap
    return True


def sync_loop(p: Platform, cfg_dir: Path, secrets_dir: Path) -> None:
    while not p.stop_sync.wait(1.0):
        with contextlib.suppress(Exception):
            sync_config(p, cfg_dir, secrets_dir)


# ------------------------------------------------------------------------------ scenes


def secret_value(p: Platform, namespace: str, name: str, key: str = "api-key") -> str:
    return base64.b64decode(p.get("secret", name, "-n", namespace)["data"][key]).decode()


def client_for(p: Platform, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=p.gateway_url + "/v1", api_key=key, max_retries=0)


def ask(c: openai.OpenAI, model: str, text: str = "Say hello.") -> tuple[int, dict[str, str], Any]:
    """One chat call; returns status, the llmplatform/ratelimit headers and the parsed body or error."""
    try:
        raw = c.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": text}], max_tokens=16
        )
    except openai.APIStatusError as exc:
        return exc.status_code, dict(exc.response.headers), exc.body
    return raw.http_response.status_code, dict(raw.headers), raw.parse()


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise DemoFailed(what)


def scene_routing(p: Platform, results: list[str]) -> None:
    say("scene 1: routing by tier (team-b, business_user; allowed tiers standard and efficient)")
    b = client_for(p, secret_value(p, *TEAM_B_KEY_SECRET))
    for requested, served in (
        ("auto", "gpt-4o-mini"),
        ("standard", "gpt-4o-mini"),
        ("efficient", "llama-3-8b"),
    ):
        status, h, _ = ask(b, requested)
        say(
            f"  model={requested!r:12} -> {status} served by {h.get('x-llmplatform-model')} "
            f"(tier {h.get('x-llmplatform-tier')})"
        )
        expect(
            status == 200 and h.get("x-llmplatform-model") == served,
            f"{requested} should be served by {served}",
        )
    status, _, body = ask(b, "premium")
    say(f"  model='premium'    -> {status}: {error_message(body)}")
    expect(status == 403, "team-b may not use the premium tier")
    results.append(
        "routing by tier: auto/standard -> gpt-4o-mini, efficient -> llama-3-8b, premium refused for team-b"
    )


def scene_fallback(p: Platform, results: list[str]) -> None:
    say("scene 2: fallback (the gpt-4o-mini upstream is made to fail with 503)")
    mock = p.upstreams["gpt-4o-mini"].removesuffix("/v1")
    httpx.post(mock + "/_mock/config", json={"failure_rate": 1.0, "failure_status": 503}).raise_for_status()
    try:
        b = client_for(p, secret_value(p, *TEAM_B_KEY_SECRET))
        status, h, _ = ask(b, "standard")
        say(
            f"  model='standard' -> {status} served by {h.get('x-llmplatform-model')} "
            f"(tier {h.get('x-llmplatform-tier')}, fallback level {h.get('x-llmplatform-fallback-level')})"
        )
        expect(
            status == 200
            and h.get("x-llmplatform-model") == "llama-3-8b"
            and h.get("x-llmplatform-fallback-level") == "1",
            "standard should fall back to llama-3-8b",
        )
    finally:
        httpx.post(mock + "/_mock/config", json={"failure_rate": 0.0}).raise_for_status()
    results.append("fallback: gpt-4o-mini failing -> served by llama-3-8b at fallback level 1")


def scene_governance(p: Platform, results: list[str]) -> None:
    say("scene 3: data governance (PII redaction, GDPR residency)")
    b = client_for(p, secret_value(p, *TEAM_B_KEY_SECRET))
    mock = p.upstreams["gpt-4o-mini"].removesuffix("/v1")
    httpx.post(mock + "/_mock/reset").raise_for_status()
    address = "jane.doe@example.com"
    status, h, _ = ask(b, "standard", f"Write a two-line reply to {address} about invoice 4471.")
    sent = json.dumps(httpx.get(mock + "/_mock/stats").json()["last_body"]["messages"])
    say(
        f"  team-b: e-mail address to 'standard' -> {status} served by {h.get('x-llmplatform-model')}, "
        f"class {h.get('x-llmplatform-data-classification')}, redacted {h.get('x-llmplatform-redacted')}"
    )
    say(f"  what gpt-4o-mini received: {sent}")
    expect(
        status == 200
        and h.get("x-llmplatform-redacted") == "true"
        and "[EMAIL_REDACTED]" in sent
        and address not in sent,
        "the e-mail address should leave the gateway redacted",
    )
    a = client_for(p, secret_value(p, "team-a", "team-a-alice"))
    status, h, _ = ask(a, "premium")
    say(
        f"  team-a (gdpr) asks for 'premium' (claude-sonnet is in the US) -> {status} served by "
        f"{h.get('x-llmplatform-model')} (region EU, fallback level {h.get('x-llmplatform-fallback-level')})"
    )
    expect(
        status == 200 and h.get("x-llmplatform-model") == "llama-3-8b",
        "a gdpr tenant should be served by the EU model, never the US one",
    )
    results.append(
        "governance: e-mail address redacted before gpt-4o-mini (cleared for internal); "
        "gdpr tenant's premium request served in the EU by llama-3-8b"
    )


def scene_limit(p: Platform, results: list[str]) -> None:
    say("scene 4: rate limit (team-a's user limit is 60 requests per minute per user)")
    say(
        "  each request sends max_tokens=16, so it reserves its prompt + 16 tokens against token limits "
        "until it ends, not llama-3-8b's maxOutputTokens (2048)"
    )
    a = client_for(p, secret_value(p, "team-a", "team-a-alice"))
    earlier = 0
    for i in range(1, 100):
        status, h, body = ask(a, "efficient")
        if i == 1 and status == 200:  # what alice used this minute before the scene
            earlier = 59 - int(h.get("x-ratelimit-remaining-requests", "59"))
        if status == 429:
            n = i - 1 + earlier  # alice's admitted requests this minute, earlier scenes included
            before = f" ({earlier} of them in an earlier scene)" if earlier else ""
            say(f"  alice's requests 1-{n} this minute admitted{before}")
            say(f"  request {n + 1}: 429 {error_message(body)} (Retry-After {h.get('retry-after')}s)")
            results.append(
                f"rate limit: requests 1-{n} admitted (alice's limit: 60 per minute), "
                f"request {n + 1}: 429, Retry-After {h.get('retry-after')}s"
            )
            return
        expect(status == 200, f"request {i} failed with {status}: {error_message(body)}")
    raise DemoFailed("no 429 within 99 requests")


def scene_usage(p: Platform, results: list[str]) -> None:
    say("scene 5: usage reported by the operator in TenantQuota status")

    def tokens() -> int:
        tq = p.get("tq", "team-a", "-n", "team-a")
        return int(((tq.get("status") or {}).get("usage") or {}).get("tokensToday", 0))

    wait_for("team-a usage in status", tokens, 30)
    print(
        p.kubectl(
            "get",
            "tq",
            "-A",
            "-o",
            "custom-columns=NAMESPACE:.metadata.namespace,NAME:.metadata.name,"
            "APPROVED:.status.conditions[?(@.type=='Approved')].status,"
            "REQ/MIN:.status.usage.requestsThisMinute,TOKENS TODAY:.status.usage.tokensToday,"
            "COST THIS MONTH (USD):.status.usage.costThisMonthUSD",
        ),
        end="",
    )
    results.append(f"usage: team-a tokensToday={tokens()} in kubectl get tq")


def error_message(body: Any) -> str:
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return str(err.get("message", err))
    return str(body)


SCENES = (scene_routing, scene_fallback, scene_governance, scene_limit, scene_usage)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--once", action="store_true", help="run the scenes, print the summary and exit")
    ap.add_argument("--port", type=int, default=8080, help="gateway port (default 8080; a free one if busy)")
    args = ap.parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop_on_signal)
    p = Platform(state=Path(tempfile.mkdtemp(prefix="llmplatform-demo-")))
    results: list[str] = []
    ok = False
    try:
        t0 = time.monotonic()
        start_platform(p, args.port)
        for scene in SCENES:
            scene(p, results)
        ok = True
        print("\n== summary " + "=" * 60)
        for line in results:
            print(f"  ok  {line}")
        print(f"  all scenes passed; platform up and demonstrated in {time.monotonic() - t0:.0f}s")
        if not args.once:
            assert p.cp is not None
            print(f"\n  gateway:    {p.gateway_url}/v1   (team-b key: {secret_value(p, *TEAM_B_KEY_SECRET)})")
            print(
                f"  kubectl:    KUBECONFIG={p.cp.kubeconfig} {bed.build.bin_dir()}/kubectl get llmplatform -A"
            )
            print(f"  audit log:  {p.state / 'audit.jsonl'}")
            print("  Ctrl-C (or SIGTERM, SIGHUP) stops everything.", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
        return 0
    except DemoFailed as exc:
        say(f"FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        p.close(keep_logs=not ok)
        if ok:
            shutil.rmtree(p.state, ignore_errors=True)
        else:
            say(f"logs kept in {p.state}")


if __name__ == "__main__":
    sys.exit(main())
