"""Multi-document YAML output for `llmplatform render`.

Why sorted keys and literal blocks: the output is meant for GitOps diffs and reviews, so the
same input must give the same bytes, and the gateway's config.json should read as JSON lines
in the diff rather than one escaped string.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line strings as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_objects(objects: Iterable[dict[str, Any]]) -> str:
    """Each object as a `---`-separated YAML document with sorted keys."""
    return "".join(
        "---\n" + yaml.dump(obj, Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=4096)
        for obj in objects
    )
