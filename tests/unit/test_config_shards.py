"""The sharded gateway config (#18): stable assignment, size budget, hash checks, versions.

A fleet of a few dozen tenants with a budget of a few KiB needs several shards, which is the
same code path as 20,000 quotas at the default 256 KiB, at a size unit tests can afford.
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from llmplatform.cli import main
from llmplatform.contract import shards as gs
from llmplatform.contract.config import UnsupportedSchemaVersion, content_hash
from llmplatform.render import config_from_config_maps, load_manifests, render
from llmplatform.render.yamlout import dump_objects
from render_factories import PLATFORM, endpoint_model, policy, quota, secret

BUDGET = 1536


def fleet(
    tenants: int, rpm: dict[int, int] | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    resources: list[dict[str, Any]] = [endpoint_model("m1"), policy()]
    secrets: list[dict[str, Any]] = []
    for i in range(tenants):
        ns = f"team-{i % 7}"
        name = f"quota-{i:03d}"
        limits = {"requestsPerMinute": (rpm or {}).get(i, 100 + i)}
        keys = [
            {
                "name": "app",
                "user": f"svc-{i}",
                "role": "business_user",
                "secretRef": {"name": f"{name}-key", "key": "api-key"},
            }
        ]
        resources.append(quota(name, namespace=ns, limits=limits, keys=keys))
        secrets.append(secret(f"{name}-key", ns, **{"api-key": f"llmp-shard-test-{i:04d}-value"}))
    return resources, secrets


@pytest.fixture(scope="module")
def sharded() -> Any:
    return render(*fleet(60), shard_bytes=BUDGET)


def by_name(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects}


def test_a_small_fleet_keeps_its_single_config_map() -> None:
    result = render(*fleet(5))
    assert result.sharded is None and len(result.gateway_config.tenants) == 5
    assert [o["metadata"]["name"] for o in result.config_maps] == ["llmplatform-gateway-config"]
    assert (
        json.loads(result.config_map["data"]["config.json"])["contentHash"]
        == result.gateway_config.content_hash
    )


def test_a_large_fleet_is_split_under_the_budget_and_reassembles_exactly(sharded: Any) -> None:
    sc = sharded.sharded
    assert sc is not None and sc.oversize == ()
    names = [s.ref.name for s in sc.shards]
    assert names[0] == "shared" and len(names) - 1 >= 4
    assert (len(names) - 1) & (len(names) - 2) == 0, "the tenant shard count is a power of two"
    assert all(len(s.packed) <= BUDGET for s in sc.shards)
    assert sum(s.ref.tenants for s in sc.shards) == 60 == len(sharded.gateway_config.tenants)
    # one smaller count would not have fit: the count is the smallest that does
    smaller = gs.split_config(sharded.gateway_config, BUDGET, max_shards=(len(names) - 1) // 2)
    assert smaller.oversize
    # the index ConfigMap comes last, each shard ConfigMap holds one file named by its hash
    cms = sharded.config_maps
    index_cm, shard_cms = cms[-1], by_name(cms[:-1])
    index = gs.load_index(index_cm["data"]["index.json"])
    assert index.generation == sharded.gateway_config.content_hash
    for ref in index.shards:
        body = shard_cms[f"llmplatform-gateway-config-{ref.name}"]
        assert list(body["binaryData"]) == [ref.file] and ref.sha256[:16] in ref.file
        assert body["metadata"]["labels"]["llmplatform.io/config-shard"] == ref.name
    assembled = config_from_config_maps(index_cm, shard_cms)
    assert assembled == sharded.gateway_config
    # built from validated shards without validating the whole again: it still hashes the same
    assert assembled is not None and content_hash(assembled) == index.generation


def test_assignment_is_stable_and_one_edit_changes_one_shard(sharded: Any) -> None:
    ids = [t.id for t in sharded.gateway_config.tenants]
    count = len(sharded.sharded.shards) - 1
    assert [gs.tenant_shard(i, count) for i in ids] == [gs.tenant_shard(i, count) for i in ids]
    edited = render(*fleet(60, rpm={17: 9999}), shard_bytes=BUDGET)
    assert edited.sharded is not None
    before = {s.ref.name: s.ref.sha256 for s in sharded.sharded.shards}
    after = {s.ref.name: s.ref.sha256 for s in edited.sharded.shards}
    changed = sorted(n for n in before if before[n] != after[n])
    tenant = next(t.id for t in edited.gateway_config.tenants if t.name == "quota-017")
    assert changed == [gs.shard_name(gs.tenant_shard(tenant, count))]
    # the same input renders the same bytes (no-op resync: nothing to write)
    again = render(*fleet(60), shard_bytes=BUDGET)
    assert dump_objects(again.objects) == dump_objects(sharded.objects)


def test_a_missing_or_altered_shard_is_an_incomplete_generation(sharded: Any, tmp_path: Path) -> None:
    sc = sharded.sharded
    (tmp_path / "index.json").write_text(sc.index_text())
    for s in sc.shards:
        (tmp_path / s.ref.file).write_bytes(s.packed)
    assert gs.read_mounted_config(tmp_path) == sharded.gateway_config
    last = sc.shards[-1]
    (tmp_path / last.ref.file).unlink()
    with pytest.raises(gs.IncompleteGeneration, match="not present yet"):
        gs.read_mounted_config(tmp_path)
    # the right name, other content (a tenant's limit raised by hand): the hash gives it away
    doc = json.loads(gzip.decompress(last.packed))
    doc["tenants"][0]["limits"]["requestsPerMinute"] = 1_000_000
    (tmp_path / last.ref.file).write_bytes(gzip.compress(json.dumps(doc).encode()))
    with pytest.raises(gs.IncompleteGeneration, match="does not hash"):
        gs.read_mounted_config(tmp_path)
    assert gs.IncompleteGeneration.reason == "incomplete_generation"
    # the operator reading its own ConfigMaps back: a torn shard carries nothing over
    cms = sharded.config_maps
    shard_cms = by_name(cms[:-1])
    torn = dict(shard_cms[f"llmplatform-gateway-config-{last.ref.name}"])
    torn["binaryData"] = {last.ref.file: base64.b64encode(gzip.compress(json.dumps(doc).encode())).decode()}
    shard_cms[torn["metadata"]["name"]] = torn
    assert config_from_config_maps(cms[-1], shard_cms) is None


@pytest.mark.parametrize("field", ["schemaVersion", "shardFormat"])
def test_an_unknown_version_is_refused(sharded: Any, field: str) -> None:
    raw = json.loads(sharded.sharded.index_text())
    raw[field] = 2
    with pytest.raises(UnsupportedSchemaVersion, match=field):
        gs.load_index(json.dumps(raw))
    assert UnsupportedSchemaVersion.reason == "unsupported_version"


def test_the_index_must_list_the_shared_shard_first_and_each_shard_once(sharded: Any) -> None:
    raw = json.loads(sharded.sharded.index_text())
    raw["shards"] = raw["shards"][1:] + raw["shards"][:1]
    with pytest.raises(ValueError, match="first"):
        gs.load_index(json.dumps(raw))


def test_a_shard_file_name_cannot_leave_the_folder(sharded: Any, tmp_path: Path) -> None:
    raw = json.loads(sharded.sharded.index_text())
    raw["shards"][0]["file"] = "../secret"
    (tmp_path / "index.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="plain file name"):
        gs.read_mounted_config(tmp_path)


def test_the_cap_on_shards_is_kept_and_reported(sharded: Any) -> None:
    capped = gs.split_config(sharded.gateway_config, BUDGET, max_shards=2)
    assert len(capped.shards) == 3 and capped.oversize


def test_render_cli_prints_the_same_shards(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    resources, secrets = fleet(30)
    (tmp_path / "fleet.yaml").write_text(dump_objects([*resources, *secrets]))
    manifests = load_manifests(tmp_path)
    expected = render(manifests.resources, manifests.secrets, shard_bytes=2048, max_shards=8)
    assert expected.sharded is not None
    assert main(["render", str(tmp_path), "--config-shard-bytes", "2048", "--config-shards", "8"]) == 0
    assert capsys.readouterr().out == dump_objects(expected.objects)
    assert expected.config_map["metadata"]["namespace"] == PLATFORM


def test_the_operator_keeps_the_file_the_index_in_force_names() -> None:
    """A rewritten shard ConfigMap carries the new file and the one the live index lists (so
    the old generation stays complete until the kubelet delivers the new index); the file
    before that is dropped."""
    from llmplatform.operator.engine import _keep_previous_file

    desired = {"metadata": {"name": "cm"}, "binaryData": {"t000-new.json.gz": "TkVX"}}
    live = {
        "metadata": {"name": "cm"},
        "binaryData": {"t000-old.json.gz": "T0xE", "t000-older.json.gz": "eA=="},
    }
    kept = _keep_previous_file(desired, live, "t000-old.json.gz")
    assert kept["binaryData"] == {"t000-new.json.gz": "TkVX", "t000-old.json.gz": "T0xE"}
    assert _keep_previous_file(desired, None, "t000-old.json.gz") is desired  # first write
    assert _keep_previous_file(desired, live, None) is desired  # not sharded before
    assert _keep_previous_file(desired, live, "t000-gone.json.gz") is desired  # nothing to keep
