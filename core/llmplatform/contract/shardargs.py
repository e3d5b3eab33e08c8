"""The two knobs of config sharding, named once for the operator and `llmplatform render`.

Why a module of its own: the command line imports it for `--help` without loading pydantic
(see llmplatform.contract.shards for what the knobs do).
"""

from __future__ import annotations

import argparse
import os

DEFAULT_SHARD_BYTES = 256 * 1024
"""Target compressed size of one tenant shard: a quarter of the object limit, leaving room for
the previous file the operator keeps beside the current one and for base64 overhead."""
DEFAULT_MAX_SHARDS = 16
"""Tenant shard slots the chart mounts by default (`gateway.configShards`)."""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser, env: bool = False) -> None:
    """`--config-shard-bytes` and `--config-shards`, the same for the operator and `llmplatform
    render` (which must produce the same shards); `env`: defaults from LLMPLATFORM_CONFIG_* too."""
    environ = os.environ if env else {}
    parser.add_argument(
        "--config-shard-bytes",
        type=_positive,
        default=_positive(environ.get("LLMPLATFORM_CONFIG_SHARD_BYTES", str(DEFAULT_SHARD_BYTES))),
        metavar="BYTES",
        help="split the gateway config into shards once its gzip exceeds this; each tenant shard "
        f"stays under it (default: {DEFAULT_SHARD_BYTES})",
    )
    parser.add_argument(
        "--config-shards",
        type=_positive,
        default=_positive(environ.get("LLMPLATFORM_CONFIG_SHARDS", str(DEFAULT_MAX_SHARDS))),
        metavar="N",
        help="at most this many tenant shards: the shard ConfigMaps the gateway mounts (the chart's "
        f"gateway.configShards; default: {DEFAULT_MAX_SHARDS})",
    )
