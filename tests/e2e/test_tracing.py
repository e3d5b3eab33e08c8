"""OpenTelemetry traces against a real OpenTelemetry Collector (issue #17, part 3).

The collector is built from its Go modules (tests/e2e/controlplane/collector_build.py), started
on a free loopback port with its OTLP receiver and file exporter, and what it wrote is all the
tests read: span names and kinds, GenAI and platform attributes, parent/child links, the
client's `traceparent` continued and handed on to the upstream, events for fallback and
rate-limit decisions, the sampler, and that a marker put in prompts and answers never reaches
the collector. Requests go through the official `openai` client. The operator's reconcile
passes are traced too (one test, on the real control plane).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from llmplatform_testing import gateway as h
from llmplatform_testing.collector import Collector, Span
from llmplatform_testing.controlplane import Cluster
from llmplatform_testing.kube import Api, model, policy
from llmplatform_testing.procs import cli, wait_for

KEY = "llmp-test-tracing-key"
TINY_KEY = "llmp-test-tracing-tiny-key"
PROMPT_MARKER = "PROMPTMARK" + secrets.token_hex(6)
ANSWER_MARKER = "ANSWERMARK" + secrets.token_hex(6)
EMAIL = f"jane.{secrets.token_hex(4)}@example.org"
SERVER, CLIENT = 2, 3
"""OTLP span kinds."""
ERROR = 2
"""OTLP status code."""


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    c = Collector(tmp_path_factory.mktemp("collector"))
    try:
        yield c
    finally:
        c.stop()


def otel_env(c: Collector, service: str, **extra: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": c.endpoint,
        "OTEL_SERVICE_NAME": service,
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # milliseconds: spans reach the collector soon
        **extra,
    }


@pytest.fixture(scope="module")
def world(gateway_world: h.World, collector: Collector) -> h.World:
    primary, backup = gateway_world.mock("primary"), gateway_world.mock("backup")
    h.mock_config(primary, reply=f"the answer is {ANSWER_MARKER} indeed")
    h.mock_config(backup, reply=f"backup says {ANSWER_MARKER}")
    anthropic = gateway_world.anthropic()
    docs = [
        h.model("alpha", primary, upstreamModel="alpha-upstream"),
        h.model("beta", backup),
        h.anthropic_model("claude", anthropic),
        h.policy(
            {"standard": ["alpha", "beta"], "efficient": ["claude"]},
            dataGovernance={"piiRedaction": True, "rules": []},
        ),
        *h.tenant("team-t", {"ci": KEY}, ["standard", "efficient"]),
        *h.tenant("team-tiny", {"ci": TINY_KEY}, ["standard"], limits={"requestsPerMinute": 1}),
    ]
    gateway_world.gateway(docs, env=otel_env(collector, "gw-traced"))
    return gateway_world


def client(w: h.World, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=w["base"] + "/v1", api_key=key, max_retries=0)


def new_parent(sampled: bool = True) -> tuple[str, str, str]:
    """(trace id, span id, traceparent) of a client span."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


def trace_of(c: Collector, trace_id: str, count: int) -> tuple[Span, list[Span]]:
    """The request span of a trace and its attempt spans (in start order of the attempts)."""
    spans = c.wait_spans(lambda s: s.trace_id == trace_id, count)
    (request,) = [s for s in spans if s.kind == SERVER]
    attempts = sorted(
        (s for s in spans if s.kind == CLIENT), key=lambda s: s.attributes["llmplatform.fallback_level"]
    )
    return request, attempts


def ask(text: str) -> list[Any]:
    return [{"role": "user", "content": f"{text} {PROMPT_MARKER}"}]


def test_a_request_continues_the_clients_trace_and_hands_it_to_the_upstream(
    world: h.World, collector: Collector
) -> None:
    trace_id, parent_id, traceparent = new_parent()
    answer = client(world).chat.completions.create(
        model="alpha", messages=ask("hello"), max_tokens=20, extra_headers={"traceparent": traceparent}
    )
    # both markers did pass through the gateway
    assert ANSWER_MARKER in (answer.choices[0].message.content or "")
    assert PROMPT_MARKER in json.dumps(h.mock_stats(world["primary"])["last_body"])
    request, (attempt,) = trace_of(collector, trace_id, 2)

    assert request.parent_id == parent_id and request.service == "gw-traced"
    assert request.name == "chat alpha"
    a = request.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "alpha"
    assert a["gen_ai.response.model"] == "alpha-upstream"
    assert a["gen_ai.provider.name"] == a["gen_ai.system"] == "openai"
    assert answer.usage is not None
    assert a["gen_ai.usage.input_tokens"] == answer.usage.prompt_tokens
    assert a["gen_ai.usage.output_tokens"] == answer.usage.completion_tokens
    assert a["llmplatform.tenant"].endswith("team-t")
    assert a["llmplatform.tier"] == "standard" and a["llmplatform.model"] == "alpha"
    assert a["llmplatform.fallback_level"] == 0 and a["llmplatform.redacted"] is False
    assert a["llmplatform.classification"] == "public"
    assert a["http.response.status_code"] == 200 and "error.type" not in a
    (decision,) = request.event("llmplatform.rate_limit")
    assert decision["llmplatform.decision"] == "admitted"

    assert attempt.parent_id == request.span_id and attempt.name == "chat alpha-upstream"
    assert attempt.attributes["gen_ai.request.model"] == "alpha-upstream"
    assert attempt.attributes["server.address"] == "127.0.0.1"
    assert attempt.attributes["http.response.status_code"] == 200
    # the upstream saw the client's trace, with the attempt span as the parent
    seen = h.mock_stats(world["primary"])["last_headers"]["traceparent"]
    assert seen == f"00-{trace_id}-{attempt.span_id}-01"


def test_a_stream_is_one_request_span_with_its_usage(world: h.World, collector: Collector) -> None:
    trace_id, _, traceparent = new_parent()
    text, usage = "", None
    for chunk in client(world).chat.completions.create(
        model="alpha",
        messages=ask("stream please"),
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"traceparent": traceparent},
    ):
        text += "".join(c.delta.content or "" for c in chunk.choices)
        usage = chunk.usage or usage
    assert ANSWER_MARKER in text and usage is not None
    request, (attempt,) = trace_of(collector, trace_id, 2)
    assert request.attributes["llmplatform.stream"] is True
    assert request.attributes["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert attempt.attributes["gen_ai.usage.output_tokens"] == usage.completion_tokens


def test_a_fallback_is_an_event_and_a_failed_attempt_span(world: h.World, collector: Collector) -> None:
    h.mock_config(world["primary"], fail_next=1, failure_status=503)
    trace_id, _, traceparent = new_parent()
    client(world).chat.completions.create(
        model="alpha", messages=ask("fall back"), extra_headers={"traceparent": traceparent}
    )
    request, (failed, served) = trace_of(collector, trace_id, 3)
    assert failed.status == ERROR and failed.attributes["error.type"] == "503"
    assert failed.attributes["llmplatform.model"] == "alpha"
    assert (
        served.attributes["llmplatform.model"] == "beta"
        and served.attributes["llmplatform.fallback_level"] == 1
    )
    assert {failed.parent_id, served.parent_id} == {request.span_id}
    (fallback,) = request.event("llmplatform.fallback")
    assert fallback["llmplatform.from_model"] == "alpha" and fallback["llmplatform.to_model"] == "beta"
    assert fallback["error.type"] == "503"
    assert request.attributes["llmplatform.fallback_level"] == 1
    assert request.attributes["llmplatform.model"] == "beta"
    seen = h.mock_stats(world["backup"])["last_headers"]["traceparent"]
    assert seen == f"00-{trace_id}-{served.span_id}-01"


def test_a_rate_limited_request_says_why(world: h.World, collector: Collector) -> None:
    tiny = client(world, TINY_KEY)
    tiny.chat.completions.create(model="alpha", messages=ask("first"))
    trace_id, _, traceparent = new_parent()
    with pytest.raises(openai.RateLimitError):
        tiny.chat.completions.create(
            model="alpha", messages=ask("second"), extra_headers={"traceparent": traceparent}
        )
    request, attempts = trace_of(collector, trace_id, 1)
    assert attempts == []
    assert request.attributes["http.response.status_code"] == 429
    assert request.attributes["error.type"] == "rate_limit_exceeded"
    (decision,) = request.event("llmplatform.rate_limit")
    assert decision["llmplatform.decision"] == "denied"
    assert decision["llmplatform.limit.field"] == "requests_per_minute"
    assert decision["llmplatform.limit.scope"] == "tenant"


def test_a_redacted_request_says_so_and_its_personal_data_stays_out(
    world: h.World, collector: Collector
) -> None:
    trace_id, _, traceparent = new_parent()
    client(world).chat.completions.create(
        model="alpha", messages=ask(f"write to {EMAIL} please"), extra_headers={"traceparent": traceparent}
    )
    assert EMAIL not in json.dumps(h.mock_stats(world["primary"])["last_body"])  # it was redacted
    request, (attempt,) = trace_of(collector, trace_id, 2)
    assert request.attributes["llmplatform.redacted"] is True
    assert attempt.attributes["llmplatform.redacted"] is True
    assert request.attributes["llmplatform.classification"] not in ("public", "internal")


def test_an_anthropic_model_is_traced_with_its_provider(world: h.World, collector: Collector) -> None:
    trace_id, _, traceparent = new_parent()
    client(world).chat.completions.create(
        model="claude", messages=ask("hi claude"), max_tokens=30, extra_headers={"traceparent": traceparent}
    )
    request, (attempt,) = trace_of(collector, trace_id, 2)
    assert request.attributes["gen_ai.provider.name"] == "anthropic"
    assert attempt.attributes["gen_ai.system"] == "anthropic"
    assert attempt.attributes["gen_ai.request.model"] == "claude-test-1"
    assert request.attributes["llmplatform.tier"] == "efficient"


def test_a_request_without_a_valid_traceparent_starts_a_trace(world: h.World, collector: Collector) -> None:
    malformed = {"traceparent": "00-not-a-trace-01"}  # ignored, as W3C Trace Context says
    client(world).embeddings.create(model="alpha", input=f"embed {PROMPT_MARKER}", extra_headers=malformed)
    seen = h.mock_stats(world["primary"])["last_headers"]["traceparent"]
    _, trace_id, attempt_id, flags = seen.split("-")
    request, (attempt,) = trace_of(collector, trace_id, 2)
    assert request.parent_id == "" and attempt.span_id == attempt_id
    assert int(flags, 16) & 1  # sampled (the SDK may also set W3C level 2's "random" bit)
    assert request.attributes["gen_ai.operation.name"] == "embeddings"


def test_the_sampler_ratio_and_the_clients_sampled_flag_are_honoured(
    world: h.World, collector: Collector
) -> None:
    """Ratio 0: no span is exported, yet the trace context still reaches the upstream (its
    sampled flag off); a client's sampled parent is followed (parent-based sampler)."""
    env = otel_env(
        collector,
        "gw-ratio-zero",
        OTEL_TRACES_SAMPLER="parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0",
    )
    docs = [
        h.model("alpha", world["primary"]),
        h.policy({"standard": ["alpha"]}),
        *h.tenant("team-t", {"ci": KEY}, ["standard"]),
    ]
    path = h.write_manifests(world.tmp / "manifests-ratio", docs)
    proc, base = h.start_gateway(world.tmp, ["--manifests", str(path)], name="gw-ratio", env=env)
    try:
        c = openai.OpenAI(base_url=base + "/v1", api_key=KEY, max_retries=0)
        unsampled_trace, _, traceparent = new_parent(sampled=False)
        c.chat.completions.create(
            model="alpha", messages=ask("x"), extra_headers={"traceparent": traceparent}
        )
        seen = h.mock_stats(world["primary"])["last_headers"]["traceparent"]
        assert seen.startswith(f"00-{unsampled_trace}-") and seen.endswith("-00")
        for _ in range(5):
            c.chat.completions.create(model="alpha", messages=ask("not sampled"))
        sampled_trace, _, traceparent = new_parent(sampled=True)
        c.chat.completions.create(
            model="alpha", messages=ask("y"), extra_headers={"traceparent": traceparent}
        )
    finally:
        proc.stop()  # a clean stop exports whatever is still queued
    collector.wait_spans(lambda s: s.trace_id == sampled_trace, 2)  # the last batch has arrived
    exported = [s for s in collector.spans() if s.service == "gw-ratio-zero"]
    assert {s.trace_id for s in exported} == {sampled_trace}
    assert len(exported) == 2


def test_bad_otel_variables_are_one_clear_error() -> None:
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    cases = {
        "OTEL_TRACES_SAMPLER_ARG": ("1.5", "OTEL_TRACES_SAMPLER_ARG='1.5': a ratio from 0 to 1"),
        "OTEL_EXPORTER_OTLP_PROTOCOL": ("grpc", "only 'http/protobuf'"),
    }
    for var, (value, message) in cases.items():
        run_env = {**env, var: value, "OTEL_TRACES_SAMPLER": "traceidratio"}
        done = subprocess.run(
            cli("gateway", "--manifests", "examples/", "--port", "1"),
            env=run_env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert done.returncode == 2, done.stderr
        assert message in done.stderr


def test_no_prompt_or_answer_reaches_the_collector(world: h.World, collector: Collector) -> None:
    """Last in the module: every request above carried the prompt marker and was answered with
    the answer marker; neither is anywhere in what the collector received or logged."""
    assert len(collector.spans()) >= 10
    written = collector.raw() + collector.proc.log_tail(10**7)
    assert PROMPT_MARKER not in written and ANSWER_MARKER not in written and EMAIL not in written
    assert h.UPSTREAM_KEY not in written and KEY not in written


def test_the_operator_traces_its_reconcile_passes(
    cluster: Cluster, operator_env: Any, collector: Collector
) -> None:
    api, p = Api(cluster), operator_env.platform
    service = f"operator-{p}"

    def passes() -> list[Span]:
        return [s for s in collector.spans() if s.service == service and s.name == "reconcile"]

    op = operator_env(start=False)
    op.start(env=otel_env(collector, service))
    api.create(model("m1", p, tier="standard"))
    api.create(policy("default", p, tiers={"standard": ["m1"]}))

    def saw_both() -> list[Span]:
        return [
            s
            for s in passes()
            if s.attributes["llmplatform.policies"] == 1 == s.attributes["llmplatform.models"]
        ]

    wait_for(saw_both, 60, "a reconcile span that saw the model and the policy", interval=0.5)
    op.close()  # a clean stop exports the last passes
    spans = passes()
    assert any(s.attributes["llmplatform.writes"] > 0 for s in spans)  # the ConfigMap, the statuses
    assert all(s.attributes["llmplatform.config_hash"] for s in spans)
    assert all(s.parent_id == "" for s in spans)  # a pass is a trace of its own
    numbers = sorted(s.attributes["llmplatform.pass"] for s in spans)
    assert numbers == list(range(1, len(numbers) + 1))  # one span per pass, none missing
