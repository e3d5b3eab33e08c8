"""A model whose upstream credential the gateway cannot read (#16 item 1).

The gateway runs as the chart runs it: `--config` (the operator's rendered config) and
`--secrets-dir`, where each mounted provider Secret is a folder of key files. One model's
Secret is mounted, one is not (the quickstart's mistake: `gateway.providerSecrets` left
empty), one's key file is empty, one model is keyless (no `apiKeySecretRef`: called without a
key by declaration). What must hold, checked with the official client and the mocks' counters:
a model without its credential is never called (no request leaves unauthenticated), a request
falls back to a usable model or gets a 503 naming the Secret and the chart value, the log warns
once per model, `llmplatform_model_credentials_missing` and /readyz report it, and a reload
after the Secret is mounted (or its key file filled in place) makes the model usable again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmplatform.render import load_manifests, render
from llmplatform_testing import gateway as h
from llmplatform_testing.procs import wait_for

KEY = "llmp-test-credentials-key"
LATE_KEY = "llmp-test-credentials-late-key"
MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]
MOCKS = ("mounted", "unmounted", "empty", "keyless")


def docs(urls: dict[str, str], *, late_tenant: bool = False) -> list[dict[str, Any]]:
    def ref(name: str) -> dict[str, Any]:
        return {"apiKeySecretRef": {"name": name, "key": "api-key"}}

    out = [
        h.secret_doc("not-mounted", h.PLATFORM, {"api-key": "sk-never-mounted"}),
        h.secret_doc("emptied", h.PLATFORM, {"api-key": "sk-emptied-later"}),
        h.model("mounted", urls["mounted"]),  # Secret `upstream`, mounted below
        h.model(
            "unmounted", urls["unmounted"], endpoint={"url": urls["unmounted"] + "/v1", **ref("not-mounted")}
        ),
        h.model(
            "empty", urls["empty"], tier="premium", endpoint={"url": urls["empty"] + "/v1", **ref("emptied")}
        ),
        h.model("keyless", urls["keyless"], tier="efficient", endpoint={"url": urls["keyless"] + "/v1"}),
        h.policy({"standard": ["unmounted", "mounted"], "premium": ["empty"], "efficient": ["keyless"]}),
        *h.tenant("team-c", {"ci": KEY}, ["standard", "premium", "efficient"]),
    ]
    if late_tenant:  # any config change makes the gateway load (and read the credentials) again
        out += h.tenant("team-late", {"ci": LATE_KEY}, ["efficient"])
    return out


def write_config(world: h.World, **kwargs: Any) -> None:
    folder = h.write_manifests(world.tmp / "rendered", docs(world["urls"], **kwargs))
    manifests = load_manifests(folder)
    text = render(manifests.resources, manifests.secrets).config_json
    staged = world["config"].with_suffix(".tmp")
    staged.write_text(text)
    staged.replace(world["config"])


def mount(secrets_dir: Path, name: str, value: str) -> None:
    """A Secret as the kubelet mounts it: <dir>/<namespace>/<name>/<key>, replaced atomically."""
    folder = secrets_dir / h.PLATFORM / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".api-key.tmp").write_text(value)
    (folder / ".api-key.tmp").replace(folder / "api-key")


@pytest.fixture(scope="module")
def world(gateway_world: h.World) -> h.World:
    gateway_world["urls"] = {name: gateway_world.mock(name) for name in MOCKS}
    secrets_dir = gateway_world.tmp / "secrets"
    mount(secrets_dir, "upstream", h.UPSTREAM_KEY + "\n")
    mount(secrets_dir, "emptied", "\n")
    gateway_world["secrets"] = secrets_dir
    gateway_world["config"] = gateway_world.tmp / "config.json"
    write_config(gateway_world)
    gateway_world.serve(["--config", str(gateway_world["config"])], "--secrets-dir", str(secrets_dir))
    return gateway_world


@pytest.fixture
def client(world: h.World) -> openai.OpenAI:
    for url in world["urls"].values():
        h.mock_config(url)  # zeroed counters
    return openai.OpenAI(base_url=world["base"] + "/v1", api_key=KEY, max_retries=0)


def requests_to(world: h.World, name: str) -> int:
    return int(h.mock_stats(world["urls"][name])["requests"])


def test_readyz_reports_each_model_without_its_credential_and_stays_ready(world: h.World) -> None:
    r = httpx.get(world["base"] + "/readyz")
    body = r.json()
    assert r.status_code == 200 and body["ready"] is True, body
    assert body["degraded"] is True and body["models"] == 4 and body["models_usable"] == 2
    missing = body["credentials_missing"]
    assert sorted(missing) == ["empty", "unmounted"]
    assert f"Secret {h.PLATFORM}/not-mounted is not mounted" in missing["unmounted"]
    assert f"Secret {h.PLATFORM}/emptied is empty" in missing["empty"]
    assert all("gateway.providerSecrets" in m for m in missing.values())


def test_metric_and_one_warning_per_model(world: h.World, client: openai.OpenAI) -> None:
    assert h.metric(world["base"], "llmplatform_model_credentials_missing", model="unmounted") == 1
    assert h.metric(world["base"], "llmplatform_model_credentials_missing", model="empty") == 1
    assert "keyless" not in httpx.get(world["base"] + "/metrics").text.split("credentials_missing")[-1]
    for _ in range(3):
        client.chat.completions.create(model="standard", messages=MESSAGES)
    log = world["gw"].log.read_text()
    assert log.count("model unmounted is skipped") == 1, log[-3000:]
    assert log.count("model empty is skipped") == 1
    assert h.UPSTREAM_KEY not in log and "sk-emptied-later" not in log


def test_a_tier_falls_back_past_the_model_without_credentials(world: h.World, client: openai.OpenAI) -> None:
    """`unmounted` is first in the standard tier and named explicitly: never called."""
    for model in ("standard", "unmounted"):
        raw = client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
        assert raw.headers["x-llmplatform-model"] == "mounted"
        assert raw.headers["x-llmplatform-fallback-level"] == "0"  # skipped, not a failed attempt
    assert requests_to(world, "unmounted") == 0
    assert requests_to(world, "mounted") == 2
    seen = h.mock_stats(world["urls"]["mounted"])
    assert seen["last_headers"]["authorization"] == f"Bearer {h.UPSTREAM_KEY}"
    assert (
        h.metric(world["base"], "llmplatform_upstream_errors_total", model="unmounted", kind="credentials")
        >= 2
    )


def test_no_usable_model_is_a_503_naming_the_secret_not_an_upstream_401(
    world: h.World, client: openai.OpenAI
) -> None:
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as err:
            client.chat.completions.create(model="premium", messages=MESSAGES, stream=stream)
        assert err.value.status_code == 503
        error = err.value.body
        assert isinstance(error, dict) and error["code"] == "upstream_credentials_missing", error
        assert f"Secret {h.PLATFORM}/emptied is empty" in error["message"]
        assert "gateway.providerSecrets" in error["message"]
    assert requests_to(world, "empty") == 0


def test_a_keyless_model_is_called_without_a_key(world: h.World, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="efficient", messages=MESSAGES)
    assert raw.headers["x-llmplatform-model"] == "keyless"
    assert "authorization" not in h.mock_stats(world["urls"]["keyless"])["last_headers"]


def test_a_reload_after_the_secret_is_mounted_makes_the_model_usable(
    world: h.World, client: openai.OpenAI
) -> None:
    """Last in the module: it changes the world."""
    mount(world["secrets"], "not-mounted", "sk-now-mounted")
    write_config(world, late_tenant=True)
    wait_for(
        lambda: "unmounted" not in httpx.get(world["base"] + "/readyz").json()["credentials_missing"],
        30,
        "the reload",
    )
    body = httpx.get(world["base"] + "/readyz").json()
    assert body["models_usable"] == 3 and list(body["credentials_missing"]) == ["empty"]
    assert h.metric(world["base"], "llmplatform_model_credentials_missing", model="unmounted") == 0
    raw = client.chat.completions.with_raw_response.create(model="unmounted", messages=MESSAGES)
    assert raw.headers["x-llmplatform-model"] == "unmounted"
    assert (
        h.mock_stats(world["urls"]["unmounted"])["last_headers"]["authorization"] == "Bearer sk-now-mounted"
    )
    log = world["gw"].log.read_text()
    assert "model unmounted: its upstream credential is readable again" in log
    assert log.count("model empty is skipped") == 1  # still missing: not warned again


def test_a_key_filled_in_place_is_used_without_a_config_change(world: h.World, client: openai.OpenAI) -> None:
    """The kubelet updates a mounted Secret's files in place (a rotated or filled-in key): the
    gateway reloads on the credential file alone. After the test above."""
    mount(world["secrets"], "emptied", "sk-filled-in-place")
    wait_for(
        lambda: httpx.get(world["base"] + "/readyz").json()["credentials_missing"] == {},
        30,
        "the credential reload",
    )
    raw = client.chat.completions.with_raw_response.create(model="premium", messages=MESSAGES)
    assert raw.headers["x-llmplatform-model"] == "empty"
    seen = h.mock_stats(world["urls"]["empty"])
    assert seen["requests"] == 1 and seen["last_headers"]["authorization"] == "Bearer sk-filled-in-place"
    assert h.metric(world["base"], "llmplatform_model_credentials_missing", model="empty") == 0
    body = httpx.get(world["base"] + "/readyz").json()
    assert body["degraded"] is False and body["models_usable"] == 4


def test_a_gateway_with_no_usable_model_is_not_ready(world: h.World) -> None:
    only = world.tmp / "only-unmounted"
    h.write_manifests(
        only,
        [
            h.secret_doc("not-mounted-2", h.PLATFORM, {"api-key": "sk-x"}),
            h.model(
                "lonely",
                world["urls"]["unmounted"],
                endpoint={
                    "url": world["urls"]["unmounted"] + "/v1",
                    "apiKeySecretRef": {"name": "not-mounted-2", "key": "api-key"},
                },
            ),
            h.policy({"standard": ["lonely"]}),
            *h.tenant("team-l", {"ci": "llmp-test-credentials-lonely"}, ["standard"]),
        ],
    )
    manifests = load_manifests(only)
    config = world.tmp / "only-unmounted.json"
    config.write_text(render(manifests.resources, manifests.secrets).config_json)
    proc, base = h.start_gateway(
        world.tmp,
        ["--config", str(config)],
        "--secrets-dir",
        str(world["secrets"]),
        name="lonely",
        ready="/healthz",
    )
    try:
        r = httpx.get(base + "/readyz")
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["ready"] is False and body["config"] and body["models_usable"] == 0
        assert list(body["credentials_missing"]) == ["lonely"]
    finally:
        proc.stop()
