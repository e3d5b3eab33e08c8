"""A hot reload that would drop every model, every key, or more than the operator accepts is
refused like a broken config (#12 item 18): the old config keeps serving, one log line says
why, `llmplatform_config_rejected_total{reason}` counts it and /readyz shows it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmplatform_testing import gateway as h

KEY = "llmp-security-reload-KEY-4e8b1f0c"
OTHER = "llmp-security-reload-OTHER-9a0d"
NAMES = ("m1", "m2", "m3", "m4")


def docs(
    url: str, names: tuple[str, ...] = NAMES, secret: str = "upstream", tenants: bool = True
) -> list[Any]:
    endpoint = {"url": url + "/v1", "apiKeySecretRef": {"name": secret, "key": "api-key"}}
    out: list[Any] = [h.model(n, url, endpoint=endpoint) for n in names]
    out.append(h.policy({"standard": list(names)}))
    if tenants:
        out += h.tenant("team-r", {"ci": KEY}, ["standard"])
        out += h.tenant("team-s", {"ci": OTHER}, ["standard"])
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("reload-guard")
    procs = []
    try:
        mock, url = h.start_mock(tmp, "up")
        procs.append(mock)
        manifests = h.write_manifests(tmp / "manifests", docs(url))
        gw, base = h.start_gateway(tmp, ["--manifests", str(manifests)])
        procs.append(gw)
        yield {"base": base, "url": url, "manifests": manifests, "log": tmp / "gw.log"}
    finally:
        for p in procs:
            p.stop()


def readyz(w: dict[str, Any]) -> dict[str, Any]:
    r = httpx.get(w["base"] + "/readyz")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def rejected(w: dict[str, Any], reason: str) -> float:
    return h.metric(w["base"], "llmplatform_config_rejected_total", reason=reason)


def write_and_wait_rejected(w: dict[str, Any], new_docs: list[Any], reason: str) -> None:
    before = rejected(w, reason)
    h.write_manifests(w["manifests"], new_docs)
    deadline = time.monotonic() + 60
    while rejected(w, reason) == before:
        assert time.monotonic() < deadline, f"no {reason} rejection; readyz: {readyz(w)}"
        time.sleep(0.2)
    detail = readyz(w)["config_rejected"]
    assert detail is not None and detail["reason"] == reason, detail


def still_serving(w: dict[str, Any], config_hash: str) -> None:
    body = readyz(w)
    assert body["ready"] and body["config"] == config_hash and body["models"] == len(NAMES)
    c = openai.OpenAI(base_url=w["base"] + "/v1", api_key=KEY, max_retries=0)
    assert c.chat.completions.create(model="m1", messages=[{"role": "user", "content": "hi"}]).choices


def test_broken_renders_are_refused_and_the_old_config_serves(world: dict[str, Any]) -> None:
    w = world
    good = readyz(w)["config"]
    assert readyz(w)["config_rejected"] is None

    # every model fails to render (their Secret reference is wrong): nothing would route
    write_and_wait_rejected(w, docs(w["url"], secret="no-such-secret"), "no_models")
    still_serving(w, good)
    assert b"config rejected, previous config keeps serving" in w["log"].read_bytes()

    # every model deleted from the folder
    write_and_wait_rejected(w, docs(w["url"], names=()), "no_models")
    still_serving(w, good)

    # three of four models gone at once: more than --reload-max-removed (0.5)
    write_and_wait_rejected(w, docs(w["url"], names=("m1",)), "models_removed")
    still_serving(w, good)

    # every tenant gone: every key would be refused
    write_and_wait_rejected(w, docs(w["url"], tenants=False), "no_keys")
    still_serving(w, good)

    # an ordinary change (one model of four removed) loads, and clears the rejection
    h.write_manifests(w["manifests"], docs(w["url"], names=("m1", "m2", "m3")))
    deadline = time.monotonic() + 60
    while readyz(w)["config"] == good:
        assert time.monotonic() < deadline, readyz(w)
        time.sleep(0.2)
    body = readyz(w)
    assert body["models"] == 3 and body["config_rejected"] is None


def test_first_load_is_never_refused(tmp_path: Path) -> None:
    """Nothing serves yet, so there is nothing to keep: a gateway may start with no models."""
    manifests = h.write_manifests(tmp_path / "m", docs("http://127.0.0.1:9", names=()))
    gw, base = h.start_gateway(tmp_path, ["--manifests", str(manifests)])
    try:
        body = httpx.get(base + "/readyz").json()
        assert body["ready"] and body["models"] == 0 and body["config_rejected"] is None
    finally:
        gw.stop()


def test_config_file_reload_is_guarded_too(tmp_path: Path) -> None:
    """The ConfigMap path (`--config`): the operator's render with every model dropped is
    refused the same way."""
    from llmplatform.render import load_manifests, render

    def rendered(folder: Path, new_docs: list[Any]) -> str:
        h.write_manifests(folder, new_docs)
        manifests = load_manifests(folder)
        return render(manifests.resources, manifests.secrets).config_json

    mock, url = h.start_mock(tmp_path, "up")
    secret = tmp_path / "secrets" / h.PLATFORM / "upstream" / "api-key"
    secret.parent.mkdir(parents=True)
    secret.write_text(h.UPSTREAM_KEY)
    config = tmp_path / "config.json"
    config.write_text(rendered(tmp_path / "m1", docs(url)))
    source = ["--config", str(config)]
    gw, base = h.start_gateway(tmp_path, source, "--secrets-dir", str(tmp_path / "secrets"))
    try:
        w = {"base": base, "manifests": tmp_path / "unused"}
        good = readyz(w)["config"]
        before = rejected(w, "no_models")
        staged = tmp_path / "config.json.tmp"
        staged.write_text(rendered(tmp_path / "m2", docs(url, secret="no-such-secret")))
        staged.replace(config)  # atomically, as the kubelet does
        deadline = time.monotonic() + 60
        while rejected(w, "no_models") == before:
            assert time.monotonic() < deadline, readyz(w)
            time.sleep(0.2)
        assert readyz(w)["config_rejected"]["reason"] == "no_models"
        still_serving(w, good)
    finally:
        gw.stop()
        mock.stop()
