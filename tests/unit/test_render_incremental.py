"""The incremental renderer against the reference `render`, on random fleets and random edits.

Why: the incremental renderer reuses per-object outcomes across calls; a dependency it failed
to notice would leave a stale entry in the gateway config or a stale status, silently. After
every step of a random edit sequence (models, policies, quotas and Secrets added, changed and
deleted, a quota's status written back, the gateway's mounts changed, the previous config
carried along as the operator does) its objects, config bytes, verdicts and generated keys
must equal a fresh full render's. The fleet is small on purpose: small name pools make
collisions (a policy naming a deleted model, two quotas sharing a key value, a key that is a
provider credential) frequent.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmplatform.contract import config as gc
from llmplatform.render import GatewayMounts, RenderResult, dump_objects, missing_deployment, render
from llmplatform.render.incremental import IncrementalRenderer, Reads, RecordedMapping, World
from render_factories import PLATFORM, endpoint_model, policy, quota, secret, serving_model

MODEL_NAMES = ["m1", "m2", "m3", "m4"]
MODEL_NAMESPACES = [PLATFORM, "other"]
POLICY_NAMES = ["p1", "p2", "p3"]
TIERS = ["premium", "standard", "efficient", "specialized"]
TEAMS = ["team-a", "team-b", "team-c"]
KEY_NAMES = ["k1", "k2"]
SECRET_REFS = [("creds", PLATFORM), ("creds", "other"), ("shared", "team-a"), ("shared", "team-b")] + [
    (f"{t}-{k}", t) for t in TEAMS for k in KEY_NAMES
]
SECRET_VALUES = [f"secret-value-{i}-XYZZY" for i in range(4)]
TIMESTAMPS = [None, "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"]
MOUNTS = [
    None,
    missing_deployment(PLATFORM, "gw"),
    GatewayMounts("llm-platform/gw", PLATFORM, True, frozenset({(PLATFORM, "creds", None)})),
    GatewayMounts("llm-platform/gw", PLATFORM, True, frozenset({(PLATFORM, "creds", "other")})),
]

Ref = tuple[str, str, str]
UIDS = itertools.count()


@st.composite
def a_model(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(MODEL_NAMES))
    namespace = draw(st.sampled_from(MODEL_NAMESPACES))
    shape = draw(st.sampled_from(["serving", "endpoint", "invalid"]))
    if shape == "serving":
        lo = draw(st.integers(1, 2))
        return serving_model(name, namespace=namespace, replicas=(lo, draw(st.integers(lo, 3))))
    ref = draw(st.none() | st.sampled_from([("creds", "api-key"), ("creds", "other"), ("gone", "api-key")]))
    doc = endpoint_model(name, namespace=namespace, tier=draw(st.sampled_from(TIERS)), secret=ref)
    if shape == "invalid":
        doc["spec"]["contextWindow"] = -1
    return doc


@st.composite
def a_policy(draw: st.DrawFn) -> dict[str, Any]:
    tiers = draw(st.lists(st.sampled_from(TIERS), min_size=1, max_size=3, unique=True))
    spec: dict[str, Any] = {}
    if draw(st.booleans()):
        spec["dataGovernance"] = {
            "allowInClusterPlaintext": draw(st.lists(st.sampled_from(MODEL_NAMES), min_size=1, unique=True))
        }
    return policy(
        draw(st.sampled_from(POLICY_NAMES)),
        default=draw(st.booleans()),
        created=draw(st.sampled_from(TIMESTAMPS)),
        tiers={
            t: draw(st.lists(st.sampled_from([*MODEL_NAMES, "ghost"]), min_size=1, unique=True))
            for t in tiers
        },
        ceilings=draw(st.none() | st.fixed_dictionaries({"requestsPerMinute": st.integers(0, 150)})),
        **spec,
    )


@st.composite
def a_quota(draw: st.DrawFn) -> dict[str, Any]:
    team = draw(st.sampled_from(TEAMS))
    keys = []
    for k in draw(st.lists(st.sampled_from(KEY_NAMES), unique=True)):
        key: dict[str, Any] = {"name": k, "user": f"user-{k}", "role": "admin"}
        ref = draw(st.none() | st.sampled_from([("shared", "api-key"), ("creds", "api-key")]))
        if ref is not None:
            key["secretRef"] = {"name": ref[0], "key": ref[1]}
        keys.append(key)
    rpm = draw(st.none() | st.integers(0, 200))
    spec: dict[str, Any] = {}
    ref_name = draw(st.none() | st.sampled_from([*POLICY_NAMES, "p-missing"]))
    if ref_name is not None:
        spec["routingPolicy"] = {"name": ref_name}
    tiers = draw(st.none() | st.lists(st.sampled_from(TIERS), min_size=1, unique=True))
    if tiers is not None:
        spec["allowedTiers"] = tiers
    if draw(st.integers(0, 9)) == 0:
        rpm = -5  # invalid
    return quota(
        team,
        namespace=team,
        limits={"requestsPerMinute": rpm} if rpm is not None else None,
        keys=keys,
        granted=draw(st.none() | st.fixed_dictionaries({"requestsPerMinute": st.integers(0, 100)})),
        **spec,
    )


@st.composite
def a_secret(draw: st.DrawFn) -> dict[str, Any]:
    name, namespace = draw(st.sampled_from(SECRET_REFS))
    values = {
        k: draw(st.sampled_from(SECRET_VALUES)) for k in draw(st.sets(st.sampled_from(["api-key", "other"])))
    }
    if name.startswith("team-"):
        values = {"api-key": draw(st.sampled_from(SECRET_VALUES))}
    return secret(name, namespace, **values)


def ref_of(doc: dict[str, Any]) -> Ref:
    return (doc["kind"], doc["metadata"]["namespace"], doc["metadata"]["name"])


class Cluster:
    """The resources and Secrets of one example, with API-server-like metadata when asked."""

    def __init__(self, with_versions: bool) -> None:
        self.resources: dict[Ref, dict[str, Any]] = {}
        self.secrets: dict[Ref, dict[str, Any]] = {}
        self.with_versions = with_versions
        self.version = 0

    def put(self, doc: dict[str, Any]) -> None:
        doc = copy.deepcopy(doc)
        ref = ref_of(doc)
        table = self.secrets if doc["kind"] == "Secret" else self.resources
        if self.with_versions:
            self.version += 1
            old = table.get(ref)
            uid = old["metadata"]["uid"] if old else f"uid-{next(UIDS)}"
            doc["metadata"].update(uid=uid, resourceVersion=str(self.version))
        table[ref] = doc

    def delete(self, ref: Ref) -> None:
        (self.secrets if ref[0] == "Secret" else self.resources).pop(ref, None)

    def write_granted(self, ref: Ref, result: RenderResult) -> None:
        """The operator's status write: status.granted from the last render."""
        doc = self.resources.get(ref)
        verdict = result.quota(ref[1], ref[2])
        if doc is None or verdict is None:
            return
        doc = copy.deepcopy(doc)
        doc["status"] = {"granted": verdict.granted} if verdict.granted is not None else {}
        self.put(doc)


def fingerprint(result: RenderResult) -> tuple[str, str, str, str]:
    return (
        dump_objects(result.objects),
        result.config_json,
        repr((result.models, result.policies, result.quotas)),
        repr(result.generated_keys),
    )


EDITS = st.sampled_from(
    ["model", "policy", "quota", "secret", "delete", "delete", "granted", "mounts", "nothing"]
)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), with_versions=st.booleans(), compact=st.booleans(), steps=st.integers(1, 12))
def test_incremental_render_equals_the_full_render_after_every_edit(
    data: st.DataObject, with_versions: bool, compact: bool, steps: int
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        if compact:  # as a fleet of thousands: the config is written compact (and gzipped)
            patch.setattr(gc, "INLINE_LIMIT", 64)
        edit_and_compare(data, with_versions, steps)


def edit_and_compare(data: st.DataObject, with_versions: bool, steps: int) -> None:
    cluster = Cluster(with_versions)
    for doc in data.draw(st.lists(st.one_of(a_model(), a_policy(), a_quota(), a_secret()), max_size=14)):
        cluster.put(doc)
    mounts = data.draw(st.sampled_from(MOUNTS))
    incremental = IncrementalRenderer()
    previous = None
    for _ in range(steps + 1):
        resources, secrets = list(cluster.resources.values()), list(cluster.secrets.values())
        expected = render(resources, secrets, previous=previous, gateway_mounts=mounts)
        got = incremental.render(resources, secrets, previous=previous, gateway_mounts=mounts)
        assert fingerprint(got) == fingerprint(expected)
        previous = expected.gateway_config if data.draw(st.booleans()) else previous

        edit = data.draw(EDITS)
        if edit == "model":
            cluster.put(data.draw(a_model()))
        elif edit == "policy":
            cluster.put(data.draw(a_policy()))
        elif edit == "quota":
            cluster.put(data.draw(a_quota()))
        elif edit == "secret":
            cluster.put(data.draw(a_secret()))
        elif edit == "delete":
            existing = sorted([*cluster.resources, *cluster.secrets])
            if existing:
                cluster.delete(data.draw(st.sampled_from(existing)))
        elif edit == "granted":
            quotas = sorted(r for r in cluster.resources if r[0] == "TenantQuota")
            if quotas:
                cluster.write_granted(data.draw(st.sampled_from(quotas)), expected)
        elif edit == "mounts":
            mounts = data.draw(st.sampled_from(MOUNTS))


def fleet(quotas: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    resources = [
        endpoint_model("m1", secret=("creds", "api-key")),
        serving_model("m2"),
        policy("p1", tiers={"standard": ["m1"], "efficient": ["m2"]}, ceilings={"requestsPerMinute": 100}),
        policy("p2", default=False, tiers={"standard": ["m1"]}),
    ]
    secrets = [secret("creds", PLATFORM, **{"api-key": "provider-XYZZY"})]
    for i in range(quotas):
        team = f"team-{i}"
        spec = {"routingPolicy": {"name": "p2"}} if i % 2 else {}
        resources.append(
            quota(
                team,
                namespace=team,
                limits={"requestsPerMinute": 10},
                keys=[{"name": "k", "user": "u", "role": "admin"}],
                **spec,
            )
        )
        secrets.append(secret(f"{team}-k", team, **{"api-key": f"key-{i}-XYZZY"}))
    return resources, secrets


def test_a_quota_edit_recomputes_that_quota_only() -> None:
    resources, secrets = fleet(10)
    renderer = IncrementalRenderer()
    renderer.render(resources, secrets)
    assert renderer.stats["TenantQuota.miss"] == 10
    resources[-1] = {**resources[-1], "spec": {**resources[-1]["spec"], "limits": {"requestsPerMinute": 20}}}
    result = renderer.render(resources, secrets)
    assert renderer.stats["TenantQuota.miss"] == 1 and renderer.stats["TenantQuota.hit"] == 9
    assert renderer.stats["LLMModel.miss"] == 0 and renderer.stats["RoutingPolicy.miss"] == 0
    assert fingerprint(result) == fingerprint(render(resources, secrets))


def test_a_policy_edit_recomputes_the_quotas_that_use_it() -> None:
    resources, secrets = fleet(10)
    renderer = IncrementalRenderer()
    renderer.render(resources, secrets)
    resources[3] = policy("p2", default=False, tiers={"standard": ["m1"]}, ceilings={"requestsPerMinute": 5})
    result = renderer.render(resources, secrets)
    assert renderer.stats["RoutingPolicy.miss"] == 1 and renderer.stats["TenantQuota.miss"] == 5
    assert fingerprint(result) == fingerprint(render(resources, secrets))


def test_a_secret_edit_recomputes_its_readers() -> None:
    resources, secrets = fleet(10)
    renderer = IncrementalRenderer()
    renderer.render(resources, secrets)
    secrets[0] = secret("creds", PLATFORM, **{"api-key": "rotated-XYZZY"})
    result = renderer.render(resources, secrets)
    # the model reads it; every quota looked the provider credentials up by its key's hash
    # and Secret, which did not change, so no quota is recomputed
    assert renderer.stats["LLMModel.miss"] == 1 and renderer.stats["TenantQuota.miss"] == 0
    assert fingerprint(result) == fingerprint(render(resources, secrets))


def test_a_rule_that_iterates_an_input_fails_loudly() -> None:
    reads = Reads(World({"policy": lambda key: None}))
    recorded = RecordedMapping({"a": 1}, "policy", reads)
    assert recorded.get("a") == 1 and reads.log == [("policy", "a", None)]
    with pytest.raises(TypeError, match="only look up"):
        list(recorded)
