"""HTTPS on the gateway's own port: the official `openai` client over TLS against a CA made
here, client certificates verified in the handshake, and certificates rotated the way the
kubelet rotates a mounted Secret, under load, with no failed request.

Why processes and real handshakes: what matters is what a client sees on the wire (which
certificate a new connection gets, whether an open stream survives the swap, whether a
client without a certificate gets as far as sending a request), so each check opens real TLS
connections to a real gateway (two workers for the rotation: each reloads on its own).
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmplatform_testing import gateway as h
from llmplatform_testing.certs import CA, Issued, SecretDir, client_context
from llmplatform_testing.procs import cli, free_port, wait_for

KEY = "llmp-test-tls-key"
MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def world(gateway_world: h.World) -> h.World:
    w = gateway_world
    url = w.mock("alpha", chunk_delay_ms=50, completion_tokens=500)
    timeouts = {"connectSeconds": 2, "requestSeconds": 30, "streamIdleSeconds": 5}
    w["docs"] = [
        h.model("alpha", url),
        h.policy({"standard": ["alpha"]}, timeouts=timeouts),
        *h.tenant("team-a", {"alice": KEY}, ["standard"], userLimits={"requestsPerMinute": 100000}),
    ]
    ca = w["ca"] = CA("llmplatform-test-ca")
    first = w["first"] = ca.issue("gateway-first")
    certs = w["certs"] = SecretDir(w.tmp / "tls")
    certs.update({"tls.crt": first.cert_pem, "tls.key": first.key_pem})
    tls_flags = ["--tls-cert-file", str(certs.file("tls.crt")), "--tls-key-file", str(certs.file("tls.key"))]
    w["tls_flags"] = tls_flags
    w.gateway(w["docs"], *tls_flags, "--workers", "2", tls=client_context(ca))
    return w


def https_client(base: str, ctx: ssl.SSLContext, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=base + "/v1",
        api_key=KEY,
        max_retries=0,
        http_client=httpx.Client(verify=ctx, timeout=60),
        **kwargs,
    )


def served_certificate(base: str, ctx: ssl.SSLContext) -> bytes:
    """The DER certificate a brand-new TLS connection to the gateway is given."""
    port = int(base.rsplit(":", 1)[1])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_openai_client_over_https(world: h.World) -> None:
    c = https_client(world["base"], client_context(world["ca"]))
    assert world["base"].startswith("https://")
    reply = c.chat.completions.create(model="auto", messages=MESSAGES, max_tokens=3)
    assert reply.choices[0].message.content
    chunks = list(c.chat.completions.create(model="auto", messages=MESSAGES, max_tokens=4, stream=True))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert c.embeddings.create(model="standard", input="hi").data[0].embedding
    assert [m.id for m in c.models.list().data] == ["alpha"]


def test_a_client_that_does_not_trust_the_ca_is_refused(world: h.World) -> None:
    stranger = client_context(CA("some-other-ca"))
    with pytest.raises(openai.APIConnectionError) as err:
        https_client(world["base"], stranger).chat.completions.create(model="auto", messages=MESSAGES)
    assert "CERTIFICATE_VERIFY_FAILED" in repr(err.value.__cause__)
    # and plain HTTP on the TLS port gets no answer at all
    plain = world["base"].replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(plain + "/healthz", timeout=5)


# --------------------------------------------------------------------------- client certificates


@pytest.fixture(scope="module")
def mtls(world: h.World) -> dict[str, Any]:
    """A second gateway that requires client certificates from `client_ca`, with its probes on
    a plain-HTTP --health-port (the kubelet has no client certificate)."""
    client_ca = CA("llmplatform-test-client-ca")
    ca_file = client_ca.write(world.tmp / "client-ca.crt")
    good = client_ca.issue("app-1", server=False).write(world.tmp / "client", "good")
    wrong = CA("not-the-client-ca").issue("app-2", server=False).write(world.tmp / "client", "wrong")
    health = free_port()
    trusted = client_context(world["ca"], client=good)
    base = world.serve(
        ["--manifests", str(world["manifests"])],
        *world["tls_flags"],
        "--tls-client-ca-file", str(ca_file),
        "--health-port", str(health),
        name="mtls", tls=trusted,
    )  # fmt: skip
    return {"base": base, "trusted": trusted, "good": good, "wrong": wrong, "health": health}


def requests_seen(mtls: dict[str, Any]) -> float:
    return h.metric(f"http://127.0.0.1:{mtls['health']}", "llmplatform_requests_total")


def test_a_client_certificate_from_the_ca_is_accepted(mtls: dict[str, Any]) -> None:
    before = requests_seen(mtls)
    c = https_client(mtls["base"], mtls["trusted"])
    assert c.chat.completions.create(model="auto", messages=MESSAGES, max_tokens=2).choices
    assert requests_seen(mtls) == before + 1


@pytest.mark.parametrize("presented", ["none", "wrong"])
def test_a_client_without_a_valid_certificate_is_refused_in_the_handshake(
    world: h.World, mtls: dict[str, Any], presented: str
) -> None:
    """No certificate, or one from another CA: the openai client fails to connect, and the
    gateway answered no request (its request counter, read on the health port, is unchanged)."""
    ctx = client_context(world["ca"], client=mtls["wrong"] if presented == "wrong" else None)
    before = requests_seen(mtls)
    with pytest.raises(openai.APIConnectionError):
        https_client(mtls["base"], ctx).chat.completions.create(model="auto", messages=MESSAGES)
    # the same on a raw socket: the TLS 1.3 client learns of the refusal on its first read,
    # as an alert or (asyncio and uvloop close a connection whose handshake failed without
    # flushing the alert) as the end of the stream; never as an HTTP answer
    port = int(mtls["base"].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                answer: bytes | str = tls.recv(100)
        except (ssl.SSLError, ConnectionResetError) as exc:
            answer = repr(exc)
    assert answer == b"" or isinstance(answer, str), answer
    assert requests_seen(mtls) == before


def test_the_health_port_answers_probes_in_plain_http(mtls: dict[str, Any]) -> None:
    health = f"http://127.0.0.1:{mtls['health']}"
    assert httpx.get(health + "/healthz").json() == {"status": "alive"}
    assert httpx.get(health + "/readyz").json()["ready"] is True
    assert httpx.get(health + "/v1/models").status_code == 404  # probes and metrics only


# --------------------------------------------------------------------------- rotation


class Load:
    """Threads sending requests with the openai client until stopped, counting failures: each
    keeps one client (pooled keep-alive connections opened before the rotation) and every
    third request uses a brand-new client (a new handshake, possibly mid-rotation)."""

    def __init__(self, base: str, ctx: ssl.SSLContext, threads: int = 4) -> None:
        self.base, self.ctx = base, ctx
        self.stop = threading.Event()
        self.done = 0
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, index: int) -> None:
        kept = https_client(self.base, self.ctx)
        n = 0
        while not self.stop.is_set():
            n += 1
            c = https_client(self.base, self.ctx) if n % 3 == 0 else kept
            try:
                if (n + index) % 2:
                    chunks = c.chat.completions.create(
                        model="auto", messages=MESSAGES, max_tokens=3, stream=True
                    )
                    assert sum(1 for ch in chunks if ch.choices and ch.choices[0].delta.content) == 3
                else:
                    assert c.chat.completions.create(model="auto", messages=MESSAGES, max_tokens=3).choices
            except Exception as exc:  # every failure counts, whatever it is
                with self.lock:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
            else:
                with self.lock:
                    self.done += 1
            finally:
                if c is not kept:
                    c.close()
        kept.close()

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=120)

    def wait_more(self, n: int) -> None:
        start = self.done
        wait_for(lambda: self.done >= start + n or self.failures, 120, f"{n} more requests")


def tls_metric(base: str, ctx: ssl.SSLContext, name: str, **labels: str) -> float:
    from llmplatform_testing.metrics import metric_value

    return metric_value(httpx.get(base + "/metrics", verify=ctx).text, name, **labels)


def audit_record(world: h.World, client_request_id: str) -> dict[str, Any]:
    """The one audit record of a request sent with this x-request-id, from either worker's file
    (`--workers 2`: `<log>.w0`, `<log>.w1`; the sink writes every 0.1 s)."""

    def found() -> list[dict[str, Any]]:
        lines = []
        for path in world.tmp.glob(world["log"].name + ".w*"):
            lines += path.read_text().splitlines()
        records = (json.loads(line) for line in lines if line.strip())
        return [r for r in records if r.get("client_request_id") == client_request_id]

    wait_for(lambda: found(), 15, f"the audit record of {client_request_id}")
    time.sleep(0.3)  # a second record would show up by now
    records = found()
    assert len(records) == 1, records
    return records[0]


def test_rotation_under_load_drops_nothing_and_new_connections_get_the_new_certificate(
    world: h.World,
) -> None:
    ca: CA = world["ca"]
    first: Issued = world["first"]
    ctx = client_context(ca)
    base = world["base"]
    assert served_certificate(base, ctx) == first.der
    second = ca.issue("gateway-second")
    rejected = tls_metric(base, ctx, "llmplatform_tls_reloads_total", result="rejected")

    # a stream that is open across the swap: 200 chunks of 50 ms, the swap after its first
    long_stream: dict[str, Any] = {}
    first_chunk = threading.Event()

    def stream_across() -> None:
        c = https_client(base, ctx)
        tokens = 0
        try:
            for ch in c.chat.completions.create(
                model="auto",
                messages=MESSAGES,
                max_tokens=200,
                stream=True,
                extra_headers={"x-request-id": "stream-across-the-swap"},
            ):
                if ch.choices and ch.choices[0].delta.content:
                    tokens += 1
                    long_stream["last"] = time.monotonic()
                    first_chunk.set()
                if ch.choices and ch.choices[0].finish_reason:
                    long_stream["finish_reason"] = ch.choices[0].finish_reason
            long_stream["ended"] = time.monotonic()
        except Exception as exc:
            long_stream["error"] = repr(exc)
        finally:
            long_stream["tokens"] = tokens
            first_chunk.set()

    streamer = threading.Thread(target=stream_across)
    with Load(base, ctx) as load:
        load.wait_more(20)
        # 1. a broken renewal (the new certificate with the old key): refused, logged, counted;
        #    both workers keep serving the old certificate
        world["certs"].update({"tls.crt": second.cert_pem, "tls.key": first.key_pem})
        reloads = "llmplatform_tls_reloads_total"
        wait_for(
            lambda: tls_metric(base, ctx, reloads, result="rejected") >= rejected + 2,
            30,
            "both workers to refuse the broken pair",
        )
        assert tls_metric(base, ctx, "llmplatform_tls_stale") == 1
        assert all(served_certificate(base, ctx) == first.der for _ in range(10))
        load.wait_more(10)
        # 2. the good renewal: new connections get the new certificate from every worker
        streamer.start()
        assert first_chunk.wait(30), "the long stream did not start"
        swapped = time.monotonic()
        world["certs"].update({"tls.crt": second.cert_pem, "tls.key": second.key_pem})

        def twenty_in_a_row() -> bool:
            return all(served_certificate(base, ctx) == second.der for _ in range(20))

        wait_for(twenty_in_a_row, 30, "new connections to get the new certificate", interval=0.2)
        renewed = time.monotonic()
        assert tls_metric(base, ctx, "llmplatform_tls_stale") == 0
        load.wait_more(20)
        streamer.join(timeout=60)
    assert load.failures == [], load.failures[:5]
    assert load.done >= 50
    # The connection opened before the swap streamed every chunk to a clean end, most of them
    # after new connections got the new certificate (a chunk every 50 ms: "long after" is
    # seconds of them), and the gateway audited it as whole.
    assert "error" not in long_stream and "ended" in long_stream, long_stream
    assert long_stream["tokens"] == 200 and long_stream["finish_reason"] == "length", long_stream
    assert swapped < renewed < long_stream["last"] - 1.0, (swapped, renewed, long_stream)
    record = audit_record(world, "stream-across-the-swap")
    assert (record["status"], record["error_code"], record["tokens_out"]) == (200, None, 200), record
    log = world["gw"].log.read_text()
    assert "TLS certificate rejected, the previous one keeps serving" in log
    assert "KEY_VALUES_MISMATCH" in log
    assert log.count('"TLS certificate reloaded"') == 2  # one per worker


# --------------------------------------------------------------------------- request heads


@pytest.fixture(scope="module")
def quick_heads(world: h.World) -> str:
    """A third gateway whose request heads must arrive within 1 s (--header-read-timeout; 10 s
    by default), its model with room for a 1 MB prompt."""
    docs = [h.model("alpha", world["alpha"], contextWindow=2_000_000), *world["docs"][1:]]
    flags = [*world["tls_flags"], "--header-read-timeout", "1"]
    return world.gateway(docs, *flags, name="quick-heads", tls=client_context(world["ca"]))


def test_streams_whose_request_body_is_read_in_pieces_outlive_the_head_deadline(
    world: h.World, quick_heads: str
) -> None:
    """Why the rotation test's long stream once lost its last chunks: body bytes read after
    aiohttp had taken the request's head, but before the request's handler task had started
    (a loop turn later on Python 3.11), were taken for the start of a next request and armed
    the head deadline, which closed the connection --header-read-timeout later, mid-stream.
    A 1 MB body is read in many pieces, so one of them nearly always falls in that turn (7 of
    8 such requests over TLS before the fix, against 1 in 20 small ones): three of them, each
    streaming for twice the deadline, on one kept-alive connection, all end whole, and the
    gateway closed no connection for a late head."""
    ctx = client_context(world["ca"])
    closed = "llmplatform_connections_closed_total"
    before = tls_metric(quick_heads, ctx, closed, reason="head_timeout")
    big: list[Any] = [{"role": "user", "content": "hello " * 170_000}]
    with https_client(quick_heads, ctx) as c:
        for _ in range(3):
            chunks = list(c.chat.completions.create(model="auto", messages=big, max_tokens=40, stream=True))
            assert sum(1 for ch in chunks if ch.choices and ch.choices[0].delta.content) == 40
            assert chunks[-1].choices[0].finish_reason == "length"
        time.sleep(1.5)  # a deadline armed by the last request's body would have fired by now
    assert tls_metric(quick_heads, ctx, closed, reason="head_timeout") == before


# --------------------------------------------------------------------------- flags


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(*args), capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tls-key-file", "x.key"], "--tls-cert-file and --tls-key-file go together"),
        (["--tls-client-ca-file", "ca.crt"], "--tls-client-ca-file needs --tls-cert-file"),
        (["--tls-cert-file", "/nonexistent.crt", "--tls-key-file", "/nonexistent.key"], "cannot load"),
        (["--health-port", "18080"], "--health-port must differ from --port"),
    ],
)
def test_bad_tls_flags_stop_the_gateway_before_it_listens(flags: list[str], message: str) -> None:
    proc = run_cli("gateway", "--manifests", "examples", "--port", "18080", *flags)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_a_mismatched_pair_at_start_is_refused(world: h.World, tmp_path: Path) -> None:
    a, b = world["ca"].issue("a"), world["ca"].issue("b")
    cert, _ = a.write(tmp_path, "a")
    _, key = b.write(tmp_path, "b")
    proc = run_cli(
        "gateway", "--manifests", "examples", "--port", str(free_port()),
        "--tls-cert-file", str(cert), "--tls-key-file", str(key),
    )  # fmt: skip
    assert proc.returncode == 2 and "KEY_VALUES_MISMATCH" in proc.stderr, proc.stderr
