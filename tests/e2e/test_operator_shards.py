"""The sharded gateway config end to end (#18): the operator on the bed writes the shards, a
gateway reads them as the kubelet would deliver them.

The fleet is small (a few dozen quotas) and the operator's shard budget tiny
(`--config-shard-bytes 1024`), so the config needs several shards at a size a loaded 2-core
machine handles; the code path is the one a 20,000-quota fleet takes at the default budget.
There is no kubelet on the bed: the test copies the ConfigMaps into a folder laid out like a
projected volume (`llmplatform_testing.configvolume`), choosing which version of each one the
gateway sees, as the kubelet may deliver the index and the shards at different times.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import openai

from llmplatform.contract import shards as gs
from llmplatform.render import config_from_config_maps
from llmplatform_testing import gateway as h
from llmplatform_testing.configvolume import files_of, write_volume
from llmplatform_testing.controlplane import Cluster
from llmplatform_testing.kube import CM_NAME, Api, model, policy, quota, wait_for

QUOTAS = 24
FLAGS = ("--config-shard-bytes", "1024", "--config-shards", "8")


def key(i: int) -> str:
    return f"llmp-e2e-shard-{i:03d}-value"


def secret(ns: str, name: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "type": "Opaque",
        "data": {"api-key": base64.b64encode(value.encode()).decode()},
    }


def key_ref(name: str, secret_name: str) -> dict[str, Any]:
    return {
        "name": name,
        "user": f"{name}-user",
        "role": "admin",
        "secretRef": {"name": secret_name, "key": "api-key"},
    }


def config_maps(api: Api, ns: str) -> dict[str, Any]:
    """The gateway config's ConfigMaps by name (the index and the shards)."""
    items = api.core.list_namespaced_config_map(
        ns, label_selector="app.kubernetes.io/component=gateway-config"
    )
    return {cm.metadata.name: cm for cm in items.items}


def as_dict(cm: Any) -> dict[str, Any]:
    return {"metadata": {"name": cm.metadata.name}, "data": cm.data, "binaryData": cm.binary_data}


def index_of(cms: dict[str, Any]) -> gs.ShardIndex | None:
    index = cms.get(CM_NAME)
    if index is None or not (index.data or {}).get(gs.INDEX_KEY):
        return None
    return gs.load_index(index.data[gs.INDEX_KEY])


def chat(base: str, api_key: str) -> int:
    client = openai.OpenAI(base_url=base + "/v1", api_key=api_key, max_retries=0)
    try:
        client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


def test_operator_writes_shards_and_a_gateway_serves_them_generation_by_generation(
    cluster: Cluster, operator_env: Any, tmp_path: Path
) -> None:
    api, p, t = Api(cluster), operator_env.platform, operator_env.tenant
    mock_proc, upstream = h.start_mock(tmp_path, "upstream")
    procs = [mock_proc]
    try:
        op = operator_env(start=False).start(*FLAGS)
        api.create(model("m1", p))  # served by the mock upstream (--upstream-override)
        api.create(policy("default", p, {"standard": ["m1"]}))
        for i in range(QUOTAS):
            api.core.create_namespaced_secret(t, secret(t, f"q{i:03d}-key", key(i)))
            api.create(
                quota(f"q{i:03d}", t, allowedTiers=["standard"], apiKeys=[key_ref("k", f"q{i:03d}-key")])
            )

        def complete() -> tuple[gs.ShardIndex, dict[str, Any]] | None:
            cms = config_maps(api, p)
            index = index_of(cms)
            if index is None or sum(s.tenants for s in index.shards) != QUOTAS:
                return None
            config = config_from_config_maps(
                as_dict(cms[CM_NAME]), {n: as_dict(c) for n, c in cms.items() if n != CM_NAME}
            )
            return (index, cms) if config is not None and len(config.tenants) == QUOTAS else None

        index, cms = wait_for(complete, 120, f"the sharded config of {QUOTAS} tenants")
        tenant_shards = index.shards[1:]
        assert len(api.config(p)["tenants"]) == QUOTAS  # the e2e helper reads shards too
        assert len(tenant_shards) >= 2, index
        for ref in index.shards:
            cm = cms[f"{CM_NAME}-{ref.name}"]
            assert (
                ref.file in cm.binary_data and cm.metadata.labels["llmplatform.io/config-shard"] == ref.name
            )
            assert len(base64.b64decode(cm.binary_data[ref.file])) <= 1024

        # no-op resync: a pass with nothing changed writes nothing
        time.sleep(2)
        writes, passes = (
            op.metric("llmplatform_operator_writes_total"),
            op.metric("llmplatform_operator_passes_total"),
        )
        api.patch("LLMModel", p, "m1", {"metadata": {"labels": {"cost-center": "42"}}})
        op.wait_passes(passes + 1)
        assert op.metric("llmplatform_operator_writes_total") == writes

        # a gateway on the volume: a tenant from the last shard is served
        volume = tmp_path / "config"
        write_volume(volume, files_of(cms.values()))
        gw, base = h.start_gateway(tmp_path, ["--config", str(volume)], *h.override("m1", upstream))
        procs.append(gw)
        last = tenant_shards[-1].name
        in_last = next(
            i
            for i in range(QUOTAS)
            if gs.shard_name(gs.tenant_shard(f"{t}/q{i:03d}", len(tenant_shards))) == last
        )
        assert chat(base, key(in_last)) == 200

        # a one-quota edit (a second key) rewrites its shard and the index, nothing else
        edited = in_last
        api.core.create_namespaced_secret(t, secret(t, "new-key", "llmp-e2e-shard-new-key-value"))
        time.sleep(2)
        before = {n: c.metadata.resource_version for n, c in config_maps(api, p).items()}
        cm_writes = op.metric("llmplatform_operator_writes_total", kind="ConfigMap")
        api.patch(
            "TenantQuota",
            t,
            f"q{edited:03d}",
            {"spec": {"apiKeys": [key_ref("k", f"q{edited:03d}-key"), key_ref("n", "new-key")]}},
        )
        new_index = wait_for(
            lambda: (
                (i := index_of(config_maps(api, p))) is not None and i.generation != index.generation and i
            ),
            60,
            "the new generation",
        )
        assert isinstance(new_index, gs.ShardIndex)
        time.sleep(2)
        after = config_maps(api, p)
        changed = sorted(n for n, c in after.items() if c.metadata.resource_version != before.get(n))
        assert changed == sorted([CM_NAME, f"{CM_NAME}-{last}"]), changed
        assert op.metric("llmplatform_operator_writes_total", kind="ConfigMap") - cm_writes == 2
        # the shard keeps the file the old index names beside the new one
        old_file = next(s.file for s in index.shards if s.name == last)
        new_file = next(s.file for s in new_index.shards if s.name == last)
        assert old_file != new_file and set(after[f"{CM_NAME}-{last}"].binary_data) == {old_file, new_file}

        # the kubelet delivers the index before the shard: never served, the old one keeps serving
        incomplete = h.metric(base, "llmplatform_config_rejected_total", reason="incomplete_generation")
        half = {**files_of(cms.values()), **files_of([after[CM_NAME]])}
        write_volume(volume, half)
        wait_for(
            lambda: (
                h.metric(base, "llmplatform_config_rejected_total", reason="incomplete_generation")
                > incomplete
            ),
            30,
            "the half-written generation refused",
        )
        assert chat(base, "llmp-e2e-shard-new-key-value") == 401
        assert chat(base, key(in_last)) == 200 and chat(base, key(0)) == 200
        # the shard arrives: the new generation serves
        write_volume(volume, files_of(after.values()))
        wait_for(lambda: chat(base, "llmp-e2e-shard-new-key-value") == 200, 30, "the new key served")

        # the fleet shrinks: shard ConfigMaps no index references go, once the index moved
        for i in range(2, QUOTAS):
            api.delete("TenantQuota", t, f"q{i:03d}")

        def shrunk() -> bool:
            cms = config_maps(api, p)
            index = index_of(cms)
            wanted = {CM_NAME} | {f"{CM_NAME}-{s.name}" for s in (index.shards if index else [])}
            tenants = sum(s.tenants for s in index.shards) if index else None
            return set(cms) == wanted and tenants in (2, None)

        wait_for(shrunk, 90, "the unreferenced shard ConfigMaps deleted")
        assert len(config_maps(api, p)) < len(after)
    finally:
        for proc in reversed(procs):
            proc.stop()
