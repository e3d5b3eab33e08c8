"""Property tests: rendering depends on its input as a *set*.

Why this matters: the operator rebuilds everything from an index whose iteration order is
arbitrary; if order leaked into the output, every reconcile could rewrite the ConfigMap and
roll the gateway for nothing.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from llmplatform.render import RenderResult, dump_objects, render
from render_factories import PLATFORM, endpoint_model, policy, quota, secret, serving_model

MODEL_NAMES = ["m1", "m2", "m3", "m4"]
TIER_NAMES = ["premium", "standard", "efficient", "specialized"]
TEAMS = ["team-a", "team-b", "team-c"]
KEY_NAMES = ["k1", "k2"]
TIMESTAMPS = [None, "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"]
SECRET_VALUES = tuple(f"secret-value-{i}-XYZZY" for i in range(5))
LIMIT_VALUES = st.none() | st.integers(min_value=0, max_value=200)


@st.composite
def models(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for name in draw(st.lists(st.sampled_from(MODEL_NAMES), unique=True)):
        namespace = draw(st.sampled_from([PLATFORM, "other"]))
        if draw(st.booleans()):
            lo = draw(st.integers(1, 3))
            hi = draw(st.integers(lo, 4))
            out.append(
                serving_model(
                    name, namespace=namespace, uid=draw(st.none() | st.just(f"uid-{name}")), replicas=(lo, hi)
                )
            )
        else:
            ref = draw(
                st.none() | st.sampled_from([("creds", "api-key"), ("creds", "other"), ("gone", "api-key")])
            )
            out.append(
                endpoint_model(name, namespace=namespace, tier=draw(st.sampled_from(TIER_NAMES)), secret=ref)
            )
    return out


@st.composite
def policies(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for name in draw(st.lists(st.sampled_from(["p1", "p2", "p3"]), unique=True)):
        tiers = draw(st.lists(st.sampled_from(TIER_NAMES), min_size=1, unique=True))
        out.append(
            policy(
                name,
                default=draw(st.booleans()),
                created=draw(st.sampled_from(TIMESTAMPS)),
                tiers={
                    t: draw(st.lists(st.sampled_from([*MODEL_NAMES, "ghost"]), min_size=1, unique=True))
                    for t in tiers
                },
                ceilings=draw(st.none() | st.fixed_dictionaries({"requestsPerMinute": st.integers(0, 150)})),
            )
        )
    return out


@st.composite
def quotas(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for team in draw(st.lists(st.sampled_from(TEAMS), unique=True)):
        rpm = draw(LIMIT_VALUES)
        keys = [
            {"name": k, "user": f"user-{k}", "role": "admin"}
            for k in draw(st.lists(st.sampled_from(KEY_NAMES), unique=True))
        ]
        granted = draw(st.none() | st.fixed_dictionaries({"requestsPerMinute": st.integers(0, 100)}))
        ref = draw(st.none() | st.fixed_dictionaries({"name": st.sampled_from(["p1", "p2", "p3"])}))
        spec: dict[str, Any] = {"routingPolicy": ref} if ref else {}
        out.append(
            quota(
                team,
                namespace=team,
                limits={"requestsPerMinute": rpm} if rpm is not None else None,
                keys=keys,
                granted=granted,
                **spec,
            )
        )
    return out


@st.composite
def secrets(draw: st.DrawFn) -> list[dict[str, Any]]:
    candidates = [("creds", PLATFORM), ("creds", "other")] + [
        (f"{t}-{k}", t) for t in TEAMS for k in KEY_NAMES
    ]
    chosen = draw(st.lists(st.sampled_from(candidates), unique=True))
    values = st.sampled_from(SECRET_VALUES)
    return [secret(name, ns, **{"api-key": draw(values)}) for name, ns in chosen]


@st.composite
def universes(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return draw(models()) + draw(policies()) + draw(quotas()), draw(secrets())


def fingerprint(result: RenderResult) -> tuple[str, str, str]:
    verdicts = repr((result.models, result.policies, result.quotas))
    return dump_objects(result.objects), result.config_json, verdicts


@settings(max_examples=80, deadline=None)
@given(data=st.data(), universe=universes())
def test_output_is_independent_of_input_order(
    data: st.DataObject, universe: tuple[list[dict[str, Any]], list[dict[str, Any]]]
) -> None:
    resources, secret_list = universe
    expected = fingerprint(render(resources, secret_list))
    shuffled_resources = data.draw(st.permutations(resources))
    shuffled_secrets = data.draw(st.permutations(secret_list))
    assert fingerprint(render(shuffled_resources, shuffled_secrets)) == expected


@settings(max_examples=50, deadline=None)
@given(universe=universes())
def test_rendering_twice_gives_identical_bytes_and_no_secret_values(
    universe: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    resources, secret_list = universe
    first, second = render(resources, secret_list), render(resources, secret_list)
    assert fingerprint(first) == fingerprint(second)
    rendered = json.dumps(first.objects) + first.config_json
    for value in SECRET_VALUES:
        assert value not in rendered


@settings(max_examples=50, deadline=None)
@given(universe=universes())
def test_config_only_references_what_it_contains(
    universe: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    resources, secret_list = universe
    config = render(resources, secret_list).gateway_config
    model_ids = {m.id for m in config.models}
    policy_ids = {p.id for p in config.policies}
    assert all(m in model_ids for p in config.policies for t in p.tiers for m in t.models)
    assert all(t.policy in policy_ids for t in config.tenants)
    assert config.default_policy is None or config.default_policy in policy_ids
    assert sum(p.default for p in config.policies) <= 1
    hashes = [k.sha256 for t in config.tenants for k in t.keys]
    assert len(hashes) == len(set(hashes))


def with_recorded_grants(resources: list[dict[str, Any]], result: RenderResult) -> list[dict[str, Any]]:
    """The resources after the operator wrote each quota's status.granted from `result`."""
    out = []
    for r in resources:
        verdict = result.quota(r["metadata"]["namespace"], r["metadata"]["name"])
        if r["kind"] == "TenantQuota" and verdict is not None and verdict.granted is not None:
            r = {**r, "status": {"granted": verdict.granted}}
        out.append(r)
    return out


@settings(max_examples=40, deadline=None)
@given(universe=universes())
def test_the_config_in_force_changes_nothing_while_every_policy_is_there(
    universe: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    resources, secret_list = universe
    first = render(resources, secret_list)
    again = render(resources, secret_list, previous=first.gateway_config)
    assert fingerprint(again) == fingerprint(first) and again.generated_keys == first.generated_keys


@settings(max_examples=40, deadline=None)
@given(universe=universes())
def test_losing_every_policy_keeps_every_tenant_and_settles(
    universe: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    resources, secret_list = universe
    resources = with_recorded_grants(resources, render(resources, secret_list))
    before = render(resources, secret_list)
    remaining = [r for r in resources if r["kind"] != "RoutingPolicy"]
    lost = render(remaining, secret_list, previous=before.gateway_config)
    assert lost.gateway_config.tenants == before.gateway_config.tenants
    assert lost.generated_keys == before.generated_keys
    policy_ids = {p.id for p in lost.gateway_config.policies}
    assert all(t.policy in policy_ids for t in lost.gateway_config.tenants)
    assert lost.gateway_config.default_policy is None
    assert render(remaining, secret_list, previous=lost.gateway_config).config_json == lost.config_json
