"""Benchmark the operator at fleet scale on the real control plane (`make bench-operator`).

(Not named operator.py: a script of that name would shadow the standard library module.)

Why: issue #3 sets targets for a fleet of 300 LLMModels (a third self-hosted), 10
RoutingPolicies and 2,000 TenantQuotas across 50 namespaces, on the 2-core machine:
full convergence <= 120 s after the last apply, edit-to-ConfigMap p95 <= 2 s, zero writes on
a no-op resync, operator RSS <= 400 MB. Measured, in one run:

- `kubectl apply` of the whole fleet (client-side apply, one file), side by side;
- convergence: from the end of that apply until every object is Ready / Approved at its
  current generation and the gateway ConfigMap holds every model and tenant;
- edit latency: 20 edits of a TenantQuota, each timed until the ConfigMap shows it;
- writes during an idle resync pass and on a restart of the operator (should be 0);
- the operator's peak RSS (VmHWM).

Results go to bench/results/operator.json and .md, with the machine noted.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

# bench/fleet.py: the script's own folder is first on sys.path
import fleet
from llmplatform_testing import ROOT
from llmplatform_testing.controlplane import bed, build
from llmplatform_testing.machine import describe, machine, write_results
from llmplatform_testing.operator_process import OperatorProcess

PLATFORM = fleet.PLATFORM


def start_operator(kubeconfig: Path, log: Path, resync: float) -> OperatorProcess:
    """The operator watching every namespace, as deployed: no short Lease, no debug logging."""
    op = OperatorProcess(kubeconfig, PLATFORM, [], log, lease_seconds=None, verbose=False)
    return op.start("--resync-seconds", f"{resync:g}")


def kubectl(cp: bed.ControlPlane, *args: str) -> str:
    # generous timeout: `kubectl apply` of the whole fleet is one call
    return bed.run_kubectl(str(cp.bin_dir / "kubectl"), cp.kubeconfig, *args, timeout=1800)


def get_json(cp: bed.ControlPlane, path: str) -> Any:
    return cp.get_json(path, timeout=60)


def read_config(cp: bed.ControlPlane) -> dict[str, Any] | None:
    try:
        cm = get_json(cp, f"/api/v1/namespaces/{PLATFORM}/configmaps/llmplatform-gateway-config")
    except urllib.error.HTTPError:
        return None
    if "config.json" in (cm.get("data") or {}):
        return json.loads(cm["data"]["config.json"])  # type: ignore[no-any-return]
    return json.loads(gzip.decompress(base64.b64decode(cm["binaryData"]["config.json.gz"])))  # type: ignore[no-any-return]


def converged(cp: bed.ControlPlane, counts: dict[str, int]) -> tuple[bool, str]:
    """Every object at its current generation and Ready (Approved for quotas), and the
    ConfigMap carrying every model and tenant."""
    wanted = {"llmmodels": ("Ready",), "routingpolicies": ("Ready",), "tenantquotas": ("Approved", "Ready")}
    for plural, types in wanted.items():
        items = get_json(cp, f"/apis/llmplatform.io/v1alpha1/{plural}")["items"]
        if len(items) < counts[plural]:
            return False, f"{plural}: {len(items)} exist"
        pending = 0
        for item in items:
            status = item.get("status") or {}
            conds = {c["type"]: c for c in status.get("conditions") or []}
            gen = item["metadata"]["generation"]
            ok = status.get("observedGeneration") == gen and all(
                conds.get(t, {}).get("status") == "True" and conds[t].get("observedGeneration") == gen
                for t in types
            )
            pending += not ok
        if pending:
            return False, f"{plural}: {pending} pending"
    config = read_config(cp)
    if config is None:
        return False, "no ConfigMap"
    if len(config["models"]) < counts["llmmodels"] or len(config["tenants"]) < counts["tenantquotas"]:
        return False, f"ConfigMap has {len(config['models'])} models, {len(config['tenants'])} tenants"
    return True, "converged"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=300)
    ap.add_argument("--policies", type=int, default=10)
    ap.add_argument("--quotas", type=int, default=2000)
    ap.add_argument("--edits", type=int, default=20)
    ap.add_argument("--max-wait", type=float, default=600, help="give up on convergence after this long")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results")
    ap.add_argument("--logs", type=Path, help="copy the operator logs here")
    args = ap.parse_args()
    counts = {"llmmodels": args.models, "routingpolicies": args.policies, "tenantquotas": args.quotas}
    result: dict[str, Any] = {"machine": machine(), "fleet": counts}

    with tempfile.TemporaryDirectory(prefix="llmplatform-bench-op-") as tmp:
        work = Path(tmp)
        cp = bed.ControlPlane(state=work / "cluster", bin_dir=build.ensure_built())
        with cp:
            kubectl(cp, "apply", "--server-side", "-f", str(ROOT / "crds"))
            kubectl(cp, "wait", "--for=condition=Established", "--timeout=60s", "-f", str(ROOT / "crds"))
            ns_file = work / "namespaces.yaml"
            ns_file.write_text(yaml.safe_dump_all(fleet.namespaces()))
            kubectl(cp, "apply", "-f", str(ns_file))
            op = start_operator(cp.kubeconfig, work / "operator.log", resync=20)
            op.wait_passes(1, timeout=120)

            manifests = work / "fleet.yaml"
            manifests.write_text(yaml.safe_dump_all(fleet.fleet(args.models, args.policies, args.quotas)))
            print(f"applying {sum(counts.values())} objects with kubectl apply ...", flush=True)
            t0 = time.monotonic()
            kubectl(cp, "apply", "-f", str(manifests))
            t_applied = time.monotonic()
            result["kubectl_apply_seconds"] = round(t_applied - t0, 1)
            print(
                f"kubectl apply took {result['kubectl_apply_seconds']} s; waiting for convergence", flush=True
            )

            why = ""
            while time.monotonic() - t_applied < args.max_wait:
                done, why = converged(cp, counts)
                if done:
                    break
                time.sleep(1.0)
            result["convergence_seconds"] = round(time.monotonic() - t_applied, 1) if done else None
            result["convergence_note"] = why
            print(f"convergence: {result['convergence_seconds']} s ({why})", flush=True)
            if not done:
                print((work / "operator.log").read_text()[-3000:], file=sys.stderr)

            latencies = []
            for i in range(args.edits):
                name, ns = f"quota-{i:04d}", fleet.namespace_of(i)
                value = 700 + i  # under the policies' 1,000 rpm ceiling
                patch = json.dumps({"spec": {"limits": {"requestsPerMinute": value}}})
                t = time.monotonic()
                kubectl(cp, "patch", "tenantquota", name, "-n", ns, "--type=merge", "-p", patch)
                t_edit = time.monotonic()
                while True:
                    config = read_config(cp) or {"tenants": []}
                    tenant = next(
                        (x for x in config["tenants"] if x["name"] == name and x["namespace"] == ns), None
                    )
                    if tenant and tenant["limits"]["requestsPerMinute"] == value:
                        break
                    if time.monotonic() - t > 60:
                        raise TimeoutError(f"edit {i} never reached the ConfigMap")
                    time.sleep(0.02)
                latencies.append(time.monotonic() - t_edit)
            result["edit_to_configmap_seconds"] = {
                "p50": round(statistics.median(latencies), 3),
                "p95": round(pct(latencies, 0.95), 3),
                "max": round(max(latencies), 3),
                "runs": [round(x, 3) for x in latencies],
            }
            print(f"edit to ConfigMap: {result['edit_to_configmap_seconds']}", flush=True)

            time.sleep(5)  # let the last status writes land
            writes_before = op.metric("llmplatform_operator_writes_total")
            passes_before = op.metric("llmplatform_operator_passes_total")
            time.sleep(25)  # at least one periodic resync pass (every 20 s)
            result["idle_resync"] = {
                "passes": op.metric("llmplatform_operator_passes_total") - passes_before,
                "writes": op.metric("llmplatform_operator_writes_total") - writes_before,
            }
            result["operator_peak_rss_mib"] = round(op.peak_rss_mib(), 1)
            result["operator_first_process_writes"] = op.metric("llmplatform_operator_writes_total")
            op.stop()

            again = start_operator(cp.kubeconfig, work / "operator-restart.log", resync=300)
            t = time.monotonic()
            again.wait_passes(1, timeout=120)
            result["restart_first_pass_seconds"] = round(time.monotonic() - t, 1)
            time.sleep(5)
            result["restart_writes"] = again.metric("llmplatform_operator_writes_total")
            result["restart_peak_rss_mib"] = again.peak_rss_mib()
            again.stop()
            result["apiserver_peak_rss_mib"] = round(cp.peak_rss_kib().get("kube-apiserver", 0) / 1024, 1)
            if args.logs:
                args.logs.mkdir(parents=True, exist_ok=True)
                for log in work.glob("operator*.log"):
                    (args.logs / log.name).write_bytes(log.read_bytes())

    result["targets"] = {
        "convergence_seconds": 120,
        "edit_p95_seconds": 2,
        "noop_writes": 0,
        "operator_rss_mib": 400,
    }
    conv = result["convergence_seconds"]
    result["meets_targets"] = {
        "convergence": conv is not None and conv <= 120,
        "edit_p95": result["edit_to_configmap_seconds"]["p95"] <= 2,
        "noop_writes": result["idle_resync"]["writes"] == 0 and result["restart_writes"] == 0,
        "rss": result["operator_peak_rss_mib"] <= 400,
    }
    m, e = result["machine"], result["edit_to_configmap_seconds"]
    md = [
        "# Operator bench",
        "",
        f"Machine: {describe(m)}; {m['date']}.",
        f"Fleet: {args.models} LLMModels (a third self-hosted), {args.policies} RoutingPolicies, "
        f"{args.quotas} TenantQuotas in 50 namespaces; control plane and operator on the same machine.",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| `kubectl apply -f` of the fleet (side by side) | {result['kubectl_apply_seconds']} s | |",
        f"| convergence after the last apply | {conv} s | <= 120 s |",
        f"| edit to ConfigMap, p50 / p95 / max (n={len(e['runs'])}) | {e['p50']} / {e['p95']} / {e['max']} s "
        "| p95 <= 2 s |",
        f"| writes during an idle resync ({result['idle_resync']['passes']:.0f} passes) "
        f"| {result['idle_resync']['writes']:.0f} | 0 |",
        f"| writes on an operator restart | {result['restart_writes']:.0f} | 0 |",
        f"| operator peak RSS | {result['operator_peak_rss_mib']} MiB | <= 400 MiB |",
        f"| restarted operator: first pass after | {result['restart_first_pass_seconds']} s | |",
        f"| kube-apiserver peak RSS | {result['apiserver_peak_rss_mib']} MiB | |",
        "",
    ]
    write_results(args.out, "operator", result, "\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
