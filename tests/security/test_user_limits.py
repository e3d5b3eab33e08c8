"""Per-user limits a caller cannot choose away (#12 item 4), through the HTTP surface.

By default `userLimits` key on the authenticated identity (the API key's `user`), so a caller
that puts a fresh `user` in every request still gets only its own user's share. A key with
`trustClientUser: true` (a service fronting many end users) keys them on the request's `user`,
and the tenant's own limits still cap the total.
"""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest

from llmplatform_testing import attacks as bh
from llmplatform_testing import gateway as h

PLAIN = "llmp-sec-users-plain"
SERVICE = "llmp-sec-users-service"
MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]


def avoid_minute_edge(margin: float = 15.0) -> None:
    """Windows are calendar minutes: start a counting test where it cannot straddle two."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.05)


@pytest.fixture(scope="module")
def world(gateway_world: h.World) -> h.World:
    url = gateway_world.mock("up")
    users = {"userLimits": {"requestsPerMinute": 5}}
    docs = [
        h.model("alpha", url),
        h.policy({"standard": ["alpha"]}),
        *h.tenant("plain", {"k": PLAIN}, ["standard"], limits={"requestsPerMinute": 100}, **users),
        *h.tenant(
            "service",
            {"svc": SERVICE},
            ["standard"],
            trust_client_user=True,
            limits={"requestsPerMinute": 12},
            **users,
        ),
    ]
    gateway_world.gateway(docs)
    return gateway_world


def send(base: str, key: str, users: list[str]) -> list[int]:
    c = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
    statuses = []
    for user in users:
        try:
            c.chat.completions.create(model="auto", messages=MESSAGES, user=user, max_tokens=2)
            statuses.append(200)
        except openai.RateLimitError as exc:
            statuses.append(exc.status_code)
    return statuses


def test_varying_user_does_not_escape_the_per_user_limit(world: dict[str, Any]) -> None:
    avoid_minute_edge()
    statuses = send(world["base"], PLAIN, [f"end-user-{i}" for i in range(30)])
    assert statuses.count(200) == 5 and statuses.count(429) == 25, statuses
    assert statuses[:5] == [200] * 5
    time.sleep(0.5)
    users = {r["user"] for r in bh.audit_records(world["log"]) if r.get("tenant") == "plain/plain"}
    assert users == {"k@plain"}  # the audit names the key's user, not what the caller claimed


def test_a_trusted_service_key_limits_each_end_user_and_the_tenant_caps_the_total(
    world: dict[str, Any],
) -> None:
    avoid_minute_edge()
    # one end user: its own 5 per minute
    one = send(world["base"], SERVICE, ["carol"] * 8)
    assert one == [200] * 5 + [429] * 3, one
    # others each have their own 5, until the tenant's 12 per minute is reached (5 used above)
    many = send(world["base"], SERVICE, [f"end-user-{i}" for i in range(20)])
    assert many.count(200) == 7 and many[:7] == [200] * 7, many
    time.sleep(0.5)
    users = [r["user"] for r in bh.audit_records(world["log"]) if r.get("tenant") == "service/service"]
    assert "carol" in users and "end-user-0" in users
