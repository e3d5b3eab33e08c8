"""The gateway config as ConfigMaps: one when it fits the shard budget, else an index and shards.

Why here (in the pure core): the operator writes these objects and `llmplatform render` prints
them, so both produce the same shards; the format itself (index, shard files, hashes) is the
contract's (`llmplatform.contract.shards`), which the gateway reads.

A config whose compressed size is at most `shard_bytes` (256 KiB by default: about 4,500 quotas
with one key each) stays exactly as before: one ConfigMap `llmplatform-gateway-config` with
`config.json` (or its gzip as binaryData `config.json.gz` past 512 KiB of JSON). A larger one is
written as `llmplatform-gateway-config` holding `index.json`, plus one ConfigMap per shard,
`llmplatform-gateway-config-<shard>` (`shared`, `t000`, ...), each with one binaryData key, the
shard's file.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from llmplatform.contract import config as gc
from llmplatform.contract import shards as gs
from llmplatform.contract.names import CONFIG_SHARD_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE


def shard_config_map_name(shard: str) -> str:
    """`llmplatform-gateway-config-<shard>`: fixed per slot, so the chart can mount it."""
    return f"{gc.CONFIG_MAP_NAME}-{shard}"


def _object(
    name: str, namespace: str, digest: str, payload: dict[str, Any], shard: str | None
) -> dict[str, Any]:
    labels = {
        "app.kubernetes.io/name": "llmplatform-gateway",
        "app.kubernetes.io/component": "gateway-config",
        "app.kubernetes.io/part-of": "llmplatform",
        MANAGED_BY_LABEL: MANAGED_BY_VALUE,
    }
    if shard is not None:
        labels[CONFIG_SHARD_LABEL] = shard
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {gc.CONFIG_HASH_ANNOTATION: digest},
        },
        **payload,
    }


def config_map(
    config: gc.GatewayConfig, text: str, platform_namespace: str, packed: bytes | None = None
) -> dict[str, Any]:
    """The single gateway ConfigMap: one key, `config.json` (or, past `INLINE_LIMIT`, the gzip
    of it as binaryData `config.json.gz`); its hash as an annotation so a change is visible in
    `kubectl describe` and can roll pods if wanted. `packed`: the gzip, when already made."""
    if len(text.encode("utf-8")) <= gc.INLINE_LIMIT:
        payload: dict[str, Any] = {"data": {gc.CONFIG_KEY: text}}
    else:
        encoded = base64.b64encode(packed or gc.compress_config(text)).decode("ascii")
        payload = {"binaryData": {gc.CONFIG_GZ_KEY: encoded}}
    return _object(gc.CONFIG_MAP_NAME, platform_namespace, config.content_hash, payload, None)


def shard_config_map(shard: gs.Shard, platform_namespace: str) -> dict[str, Any]:
    payload = {"binaryData": {shard.ref.file: base64.b64encode(shard.packed).decode("ascii")}}
    return _object(
        shard_config_map_name(shard.ref.name), platform_namespace, shard.ref.sha256, payload, shard.ref.name
    )


def index_config_map(sharded: gs.ShardedConfig, platform_namespace: str) -> dict[str, Any]:
    payload = {"data": {gs.INDEX_KEY: sharded.index_text()}}
    return _object(gc.CONFIG_MAP_NAME, platform_namespace, sharded.index.generation, payload, None)


def gateway_config_maps(
    config: gc.GatewayConfig,
    text: str,
    platform_namespace: str,
    shard_bytes: int = gs.DEFAULT_SHARD_BYTES,
    max_shards: int = gs.DEFAULT_MAX_SHARDS,
) -> tuple[list[dict[str, Any]], gs.ShardedConfig | None]:
    """The ConfigMaps that carry `config` (whose canonical text is `text`), the index (or the
    single ConfigMap) last; and the sharded form, None when one ConfigMap holds it."""
    size = len(text.encode("utf-8"))
    packed = None
    if size > shard_bytes:
        packed = gc.compress_config(text)
    if packed is None or len(packed) <= shard_bytes:
        return [config_map(config, text, platform_namespace, packed)], None
    sharded = gs.split_config(config, shard_bytes, max_shards, estimate=len(packed))
    objects = [shard_config_map(s, platform_namespace) for s in sharded.shards]
    return [*objects, index_config_map(sharded, platform_namespace)], sharded


def _binary(body: Mapping[str, Any] | None, key: str) -> bytes | None:
    packed = ((body or {}).get("binaryData") or {}).get(key)
    if packed is None:
        return None
    try:
        return base64.b64decode(str(packed), validate=True)
    except (ValueError, binascii.Error):
        return None


def config_from_config_maps(
    body: Mapping[str, Any] | None,
    shard_bodies: Mapping[str, Mapping[str, Any]] | None = None,
    cache: gs.ShardCache | None = None,
) -> gc.GatewayConfig | None:
    """The gateway config the ConfigMaps written by `gateway_config_maps` hold (`body` the
    index or single one, `shard_bodies` the shard ConfigMaps by name), or None when there is
    none or it does not load (edited by hand, torn, incomplete, another schema): then nothing
    is carried over. `cache`: shards already read, by hash (the operator keeps one)."""
    if not body:
        return None
    data = body.get("data") or {}
    try:
        if gs.INDEX_KEY in data:
            index = gs.load_index(str(data[gs.INDEX_KEY]))
            shards = shard_bodies or {}

            def read(file: str) -> bytes | None:
                for ref in index.shards:
                    if ref.file == file:
                        return _binary(shards.get(shard_config_map_name(ref.name)), file)
                return None

            return gs.assemble(index, read, cache)
        text: bytes | None = None
        if (inline := data.get(gc.CONFIG_KEY)) is not None:
            text = str(inline).encode("utf-8")
        else:
            text = _binary(body, gc.CONFIG_GZ_KEY)
        return None if text is None else gc.load_config(text)
    except (ValueError, OSError, EOFError):
        return None


def config_from_config_map(body: Mapping[str, Any] | None) -> gc.GatewayConfig | None:
    """`config_from_config_maps` of a single ConfigMap (no shards)."""
    return config_from_config_maps(body)
