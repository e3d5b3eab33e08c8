"""README's "Quickstart on a real cluster", run as written on the real-node bed.

Why: a platform team's first `helm install` is the one path the kwok bed can never take (no
pod ever runs there). The commands are read from README.md itself, so the text and this test
cannot drift apart: if a step is missing or wrong in the README, this test fails.

How the commands run: each line of the README's `sh` block, unchanged, in bash, with the bed's
kubectl and helm first on PATH and KUBECONFIG set, inside the bed's network namespace, so the
README's `port-forward ... 8080:80` binds 8080 there and never collides with a port of the
shared host. A loopback forwarder (netns_forward.py) gives the test a host port leading to that
8080, and the official `openai` client talks through it: chat, streaming, tier routing with the
fallback into the self-hosted tier, and a 429 for a user over its limit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from llmplatform.render import load_manifests, mounts_from_deployment, render
from llmplatform_testing.chart import helm, one
from llmplatform_testing.controlplane import Cluster, bed
from llmplatform_testing.readme import quickstart_command, quickstart_commands
from llmplatform_testing.realnodes import bed_nodes as realnodes

ROOT = Path(__file__).resolve().parents[2]


def test_readme_block_is_parsed_as_expected() -> None:
    """The parser sees the steps the quickstart promises (so a reformatted README fails here)."""
    cmds = quickstart_commands()
    assert cmds[0].startswith("helm install llm-platform charts/llm-platform")
    assert any(c.startswith("kubectl apply --server-side -f examples/") for c in cmds)
    assert cmds[-1].startswith("kubectl -n llm-platform port-forward svc/llm-platform-gateway 8080:80")


def readme_chart_gateway(*, drop_sets: str = "") -> dict[str, Any]:
    """The gateway Deployment the README's `helm install` creates: its own arguments, given to
    `helm template` (a `--set` containing `drop_sets` left out)."""
    args = quickstart_command("helm install")[2:]
    if drop_sets:
        i = next(i for i, a in enumerate(args) if a == "--set" and drop_sets in args[i + 1])
        del args[i : i + 2]
    return one([d for d in yaml.safe_load_all(helm("template", *args).stdout) if d], "Deployment", "-gateway")


def examples_rendered(gateway: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    """examples/ rendered as the operator does when the chart runs it: with the Secrets of
    examples/ and the credentials `gateway` mounts. Endpoint models only, name -> Ready."""
    manifests = load_manifests(ROOT / "examples")
    result = render(manifests.resources, manifests.secrets, gateway_mounts=mounts_from_deployment(gateway))
    return {v.name: (v.ready.status, v.ready.reason, v.ready.message) for v in result.models if not v.serving}


def test_readme_quickstart_mounts_every_provider_secret_the_examples_name() -> None:
    """#16.1: the README's helm command must set `gateway.providerSecrets` to the Secrets the
    example models' `apiKeySecretRef`s name (examples/ creates them), or the models are not
    Ready and the gateway cannot call them. Checked the way the operator checks it: the chart's
    gateway Deployment from the README's own arguments, read by `mounts_from_deployment`."""
    verdicts = examples_rendered(readme_chart_gateway())
    assert {"gpt-4o-mini", "claude-sonnet"} <= set(verdicts)
    assert all(status == "True" for status, _, _ in verdicts.values()), verdicts
    # the same command without the value (the original quickstart): not Ready, and the
    # message says what to set; so this test fails when the README loses the line
    without = examples_rendered(readme_chart_gateway(drop_sets="gateway.providerSecrets"))
    assert {n: r for n, (_, r, _) in without.items()} == {
        "gpt-4o-mini": "CredentialsNotMounted",
        "claude-sonnet": "CredentialsNotMounted",
    }
    assert "gateway.providerSecrets" in without["gpt-4o-mini"][2]


@pytest.fixture()
def removed_afterwards(real_cluster: Cluster, tmp_path: Path) -> Iterator[None]:
    """Uninstall the quickstart's release and delete examples/ when the test ends.

    Why: the README's release watches every namespace. Left installed, its operator also
    reconciles the resources of the later real-node tests, whose own release's operator writes
    the same statuses with its own view (its gateway, its one default policy): the two take
    turns rewriting them without end, which the restart test saw as 28 to 76 writes."""
    yield
    rb = real_cluster.local
    assert rb is not None
    uninstall = [rb._bin("helm"), f"--kubeconfig={rb.kubeconfig}", "uninstall", "llm-platform"]
    subprocess.run(
        [*uninstall, "-n", "llm-platform", "--wait", "--timeout=180s", "--ignore-not-found"],
        env={**os.environ, "HOME": str(tmp_path)},
        check=True,
        capture_output=True,
    )
    # helm's --wait covers the Deployments, not their pods: wait until the operator has exited.
    real_cluster.kubectl(
        "-n", "llm-platform", "wait", "--for=delete", "pod",
        "-l", "app.kubernetes.io/name=llmplatform-operator", "--timeout=120s",
    )  # fmt: skip
    real_cluster.kubectl("delete", "-f", str(ROOT / "examples"), "--ignore-not-found", "--wait=false")


def test_quickstart_as_written(real_cluster: Cluster, removed_afterwards: None, tmp_path: Path) -> None:
    rb = real_cluster.local
    assert isinstance(rb, realnodes.RealNodeBed)
    env = {
        **os.environ,
        "PATH": f"{rb.bin_dir}:{os.environ['PATH']}",
        "KUBECONFIG": str(rb.kubeconfig),
        "HOME": str(tmp_path),  # helm's cache and config stay in the test's folder
    }
    *steps, forward = quickstart_commands()
    outputs = []
    started = time.monotonic()
    for cmd in steps:
        proc = subprocess.run(
            ["bash", "-o", "pipefail", "-c", cmd],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            preexec_fn=lambda: realnodes.enter_netns(rb.netns),
        )
        assert proc.returncode == 0, (
            f"README step failed: {cmd}\n{proc.stdout}\n{proc.stderr}\n{rb.pods_report()}"
        )
        outputs.append(proc.stdout)
    key = outputs[-1].strip()
    assert key.startswith("llmp-"), f"the README's key step printed {key!r}"
    setup_seconds = time.monotonic() - started

    host_port = bed.free_port()
    pf = subprocess.Popen(
        ["bash", "-c", f"exec {forward}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: realnodes.enter_netns(rb.netns),
    )
    fwd = subprocess.Popen(
        [sys.executable, str(ROOT / "tests/e2e/controlplane/netns_forward.py"), rb.netns, f"{host_port}:8080"]
    )
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{host_port}/v1", api_key=key, max_retries=0)
        _wait_answering(client, pf)
        _check_the_platform(client)
    finally:
        for p in (fwd, pf):
            p.terminate()
            p.wait(10)
    print(f"quickstart: README steps {setup_seconds:.0f}s, total {time.monotonic() - started:.0f}s")


def _wait_answering(client: openai.OpenAI, pf: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert pf.poll() is None, f"port-forward exited: {pf.stdout.read() if pf.stdout else ''!r}"
        try:
            client.models.list()
            return
        except openai.APIConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _check_the_platform(client: openai.OpenAI) -> None:
    # Chat on the self-hosted tier: served by the model's own pod (the test server says so).
    raw = client.chat.completions.with_raw_response.create(
        model="efficient", messages=[{"role": "user", "content": "hello from the quickstart"}]
    )
    chat = raw.parse()
    assert raw.headers["x-llmplatform-tier"] == "efficient"
    assert raw.headers["x-llmplatform-model"].endswith("llama-3-8b")
    assert "TEST SERVER" in (chat.system_fingerprint or "")
    assert chat.choices[0].message.content

    # Streaming, chunk by chunk, through the port-forward.
    chunks = list(
        client.chat.completions.create(
            model="efficient", messages=[{"role": "user", "content": "stream please"}], stream=True
        )
    )
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1

    # Tier routing: team-a's compliance region is EU, so the standard tier's US model is no
    # candidate; the policy's acrossTiers list serves the request from the efficient tier's
    # EU model, without a failed attempt.
    raw = client.chat.completions.with_raw_response.create(
        model="standard", messages=[{"role": "user", "content": "standard tier please"}]
    )
    assert raw.headers["x-llmplatform-tier"] == "efficient"
    assert raw.headers["x-llmplatform-model"].endswith("llama-3-8b")

    # alice's userLimits: 60 requests per minute; the next ones get 429 with the OpenAI error body.
    with pytest.raises(openai.RateLimitError) as err:
        for i in range(80):
            client.chat.completions.create(model="efficient", messages=[{"role": "user", "content": f"n{i}"}])
    assert err.value.status_code == 429
