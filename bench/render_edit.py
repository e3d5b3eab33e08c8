"""One TenantQuota edit's render time, full vs incremental (`make bench-render-edit`).

Why: issue #18 asks that a one-field quota edit not cost a render of the whole fleet. This
times exactly what the operator's pass does with the render after an edit, in process, with
no cluster: the bench fleet (bench/fleet.py, one generated key per quota, its Secret
present) given as the API server gives it (uid and resourceVersion on every object, so the
parse cache is warm as in a running operator), rendered once, then `--edits` times: one quota's
requestsPerMinute changes (new resourceVersion) and the render is timed both ways, the full
`render` and the operator's `IncrementalRenderer` (warm from the previous pass), checking the
two agree byte for byte. Also timed apart: sealing and serializing the config, which both
ways still do in full (the sharded config of #18 is where that changes).

Results: bench/results/render-edit.json and .md.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# bench/fleet.py: the script's own folder is first on sys.path
import fleet
from llmplatform.contract import config as gc
from llmplatform.render import render
from llmplatform.render.incremental import IncrementalRenderer
from llmplatform_testing import ROOT
from llmplatform_testing.machine import machine, page_header, write_results


def cluster(quotas: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    resources = fleet.fleet(quotas=quotas)
    for i, doc in enumerate(resources):
        doc["metadata"].update(uid=f"uid-{i}", resourceVersion="1")
    secrets = []
    for i in range(quotas):
        meta = fleet.quota(i)["metadata"]
        value = base64.b64encode(f"llmp-bench-key-{i}".encode()).decode()
        secrets.append(
            {
                "metadata": {"namespace": meta["namespace"], "name": f"{meta['name']}-app"},
                "data": {"api-key": value},
            }
        )
    return resources, secrets


def edit(resources: list[dict[str, Any]], index: int, version: int) -> None:
    """quota-<index>'s requestsPerMinute changes, as `kubectl patch` would (new resourceVersion)."""
    position = next(i for i, d in enumerate(resources) if d["metadata"]["name"] == f"quota-{index:04d}")
    doc = resources[position]
    spec = {**doc["spec"], "limits": {**doc["spec"]["limits"], "requestsPerMinute": 700 + version % 300}}
    resources[position] = {
        **doc,
        "metadata": {**doc["metadata"], "resourceVersion": str(version)},
        "spec": spec,
    }


def timed(call: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    value = call(*args, **kwargs)
    return time.perf_counter() - t, value


def run(quotas: int, edits: int) -> dict[str, Any]:
    resources, secrets = cluster(quotas)
    print(f"{quotas} quotas: first render (parses every object) ...", flush=True)
    first, result = timed(render, resources, secrets)
    previous = result.gateway_config
    incremental = IncrementalRenderer()
    warm, _ = timed(incremental.render, resources, secrets, previous=previous)
    full_times, incremental_times, serialize_times, recomputed = [], [], [], []
    for n in range(edits):
        edit(resources, (n * 37) % quotas, 2 + n)
        t_full, expected = timed(render, resources, secrets, previous=previous)
        t_incr, got = timed(incremental.render, resources, secrets, previous=previous)
        if got.config_json != expected.config_json or got.quotas != expected.quotas:
            raise SystemExit("incremental and full render disagree")
        t_ser, _ = timed(lambda c: gc.dump_config(gc.seal(c)), expected.gateway_config)
        full_times.append(t_full)
        incremental_times.append(t_incr)
        serialize_times.append(t_ser)
        recomputed.append(sum(v for k, v in incremental.stats.items() if k.endswith(".miss")))
        previous = expected.gateway_config
        print(
            f"  edit {n}: full {t_full:.3f} s, incremental {t_incr:.3f} s (seal+dump {t_ser:.3f} s)",
            flush=True,
        )
    return {
        "quotas": quotas,
        "objects": len(resources),
        "first_render_seconds": round(first, 3),
        "incremental_warmup_seconds": round(warm, 3),
        "edits": edits,
        "full_seconds_median": round(statistics.median(full_times), 3),
        "incremental_seconds_median": round(statistics.median(incremental_times), 3),
        "seal_and_dump_seconds_median": round(statistics.median(serialize_times), 3),
        "objects_recomputed_per_edit": max(recomputed),
        "full_runs": [round(x, 3) for x in full_times],
        "incremental_runs": [round(x, 3) for x in incremental_times],
        "config_bytes": len(result.config_json.encode()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quotas", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--edits", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results")
    args = ap.parse_args()
    m = machine()
    rows = [run(q, args.edits) for q in args.quotas]
    md = page_header("One quota edit: full vs incremental render", "in process (no cluster)", m)
    md += [
        "Fleet: bench/fleet.py (300 LLMModels, 10 RoutingPolicies, N TenantQuotas with one key each), as "
        "API objects (uid, resourceVersion), parse cache warm. Median of "
        f"{args.edits} edits of one quota's requestsPerMinute; both renders give identical bytes.",
        "",
        "| quotas | full render | incremental render | the reference's seal + dump alone | objects "
        "re-resolved | first render (cold parse) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        md.append(
            f"| {r['quotas']:,} | {r['full_seconds_median']} s | {r['incremental_seconds_median']} s "
            f"| {r['seal_and_dump_seconds_median']} s | {r['objects_recomputed_per_edit']} "
            f"| {r['first_render_seconds']} s |"
        )
    md.append("")
    write_results(args.out, "render-edit", {"machine": m, "runs": rows}, "\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
