"""Where a restarted operator's first pass spends its time (`.venv/bin/python bench/operator_restart.py`).

Why: issue #18 asks for the first pass after a restart at the 10x fleet within 15 s, and for
the cost to be measured before anything changes: Kopf start-up per object, listing, indexing,
the render or status writes. This brings up the bench fleet (bench/fleet.py, default size),
lets an operator converge it, stops it, and starts a new one under py-spy (sampling every
thread, idle included) until its first pass completes. The samples are sorted into what the
operator's threads were doing, from the innermost frame that names it.

Needs py-spy in the venv (`.venv/bin/pip install py-spy`; a measuring tool, not a dependency).
Results: bench/results/operator-restart.json and .md.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

import fleet
import operator_bench as ob
from llmplatform_testing import ROOT
from llmplatform_testing.controlplane import bed, build
from llmplatform_testing.machine import machine, page_header, write_results

# (label, substrings of a frame "function (file:line)"): the first rule that matches any frame of
# a sample names it. py-spy shows our files relative to the package ("render/core.py") and
# third-party ones relative to site-packages ("kopf/...").
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("our reconcile pass: render", ("(render/",)),
    ("our reconcile pass: compare, writes", ("(operator/engine.py", "(operator/kube.py")),
    ("our index handlers", ("(operator/handlers.py",)),
    ("Kopf index-readiness toggles (aiotoggles.py)", ("kopf/_cogs/aiokits/aiotoggles.py",)),
    (
        "Kopf per-object event processing (causes, handlers, diff bases)",
        (
            "kopf/_core/reactor/processing.py",
            "kopf/_core/actions/",
            "kopf/_core/intents/",
            "kopf/_cogs/configs/",
        ),
    ),
    ("Kopf per-object workers and queues", ("kopf/_core/reactor/queueing.py",)),
    ("listing and watching: HTTP, TLS, JSON", ("aiohttp", "ssl.py", "json/", "kopf/_cogs/clients/")),
    ("leader election (Lease)", ("leaderelection",)),
    ("imports at start-up", ("<frozen importlib",)),
]
IDLE_LEAVES = ("EpollSelector.select", "select (", "Condition.wait (threading", "_worker (concurrent")


def categorize(stack: str) -> str:
    frames = stack.split(";")[1:]  # the first is the thread
    if not frames:
        return "other"
    if frames[-1].startswith(IDLE_LEAVES):
        return "idle: waiting for I/O or work"
    for label, needles in CATEGORIES:
        if any(n in frame for frame in reversed(frames) for n in needles):
            return label
    return "asyncio scheduling and other"


def profile_start(
    cp: bed.ControlPlane, work: Path, name: str, seconds: float, keep: Path | None = None
) -> tuple[ob.OperatorProcess, dict[str, Any]]:
    """Start an operator under py-spy and sample it until its first pass completes (or
    `seconds` pass); the operator is left running."""
    op = ob.start_operator(cp.kubeconfig, work / f"{name}.log", resync=300)
    assert op.proc is not None
    raw = work / f"{name}-stacks.txt"
    spy = subprocess.Popen(
        [str(ROOT / ".venv/bin/py-spy"), "record", "--idle", "--threads", "--nonblocking", "--format", "raw",
         "--rate", "50", "--pid", str(op.proc.pid), "--duration", f"{seconds:.0f}", "--output", str(raw)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    t = time.monotonic()
    first_pass: float | None = None
    while time.monotonic() - t < seconds:
        with contextlib.suppress(httpx.HTTPError):  # the metrics port opens once it has started
            if op.metric("llmplatform_operator_passes_total") >= 1:
                first_pass = time.monotonic() - t
                break
        time.sleep(0.5)
    spy.send_signal(signal.SIGINT)
    _, err = spy.communicate(timeout=120)
    if keep is not None and raw.exists():
        keep.mkdir(parents=True, exist_ok=True)
        (keep / raw.name).write_bytes(raw.read_bytes())
    samples: collections.Counter[str] = collections.Counter()
    busy: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for line in raw.read_text().splitlines() if raw.exists() else []:
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        label = categorize(stack)
        samples[label] += int(count)
        thread = next((f for f in stack.split(";") if f.startswith("thread")), "thread ?")
        busy[thread][label] += int(count)
    # Kopf's event loop
    main_thread = next((t for t in busy if "MainThread" in t), "")
    lease_wait = next(
        (line for line in (work / f"{name}.log").read_text().splitlines() if "became the leader" in line), ""
    )
    return op, {
        "first_pass_seconds": round(first_pass, 1) if first_pass is not None else None,
        "pass_seconds": round(op.metric("llmplatform_operator_last_pass_seconds"), 2),
        "writes": op.metric("llmplatform_operator_writes_total"),
        "leader_line": lease_wait[:120],
        "samples": dict(samples.most_common()),
        "event_loop_thread": main_thread,
        "event_loop_thread_samples": dict(busy.get(main_thread, collections.Counter()).most_common()),
        "py_spy_stderr": err.decode(errors="replace")[-300:] if not raw.exists() else "",
    }


def page(title: str, summary: dict[str, Any]) -> list[str]:
    total = sum(summary["samples"].values()) or 1
    loop_total = sum(summary["event_loop_thread_samples"].values()) or 1
    return [
        f"## {title}",
        "",
        f"First pass completed {summary['first_pass_seconds']} s after the start (None: not within the "
        f"wait); the pass itself took {summary['pass_seconds']} s; {summary['writes']:.0f} writes.",
        "",
        "| where the samples are (all threads) | share |",
        "|---|---|",
        *[f"| {k} | {100 * v / total:.1f}% |" for k, v in summary["samples"].items()],
        "",
        f"The event-loop thread ({summary['event_loop_thread']}, {loop_total / 50:.1f} s of samples):",
        "",
        "| what it was doing | share | seconds |",
        "|---|---|---|",
        *[
            f"| {k} | {100 * v / loop_total:.1f}% | {v / 50:.1f} |"
            for k, v in summary["event_loop_thread_samples"].items()
        ],
        "",
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quotas", type=int, default=2000)
    ap.add_argument("--models", type=int, default=300)
    ap.add_argument("--policies", type=int, default=10)
    ap.add_argument("--max-wait", type=float, default=600)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results")
    ap.add_argument("--keep-stacks", type=Path, help="copy py-spy's raw stacks here")
    args = ap.parse_args()
    counts = {"llmmodels": args.models, "routingpolicies": args.policies, "tenantquotas": args.quotas}
    m = machine()
    with tempfile.TemporaryDirectory(prefix="llmplatform-bench-restart-") as tmp:
        work = Path(tmp)
        cp = bed.ControlPlane(state=work / "cluster", bin_dir=build.ensure_built())
        with cp:
            ob.kubectl(cp, "apply", "--server-side", "-f", str(ROOT / "crds"))
            ob.kubectl(cp, "wait", "--for=condition=Established", "--timeout=60s", "-f", str(ROOT / "crds"))
            (work / "ns.yaml").write_text(yaml.safe_dump_all(fleet.namespaces()))
            ob.kubectl(cp, "apply", "-f", str(work / "ns.yaml"))
            (work / "fleet.yaml").write_text(
                yaml.safe_dump_all(fleet.fleet(args.models, args.policies, args.quotas))
            )
            ob.kubectl(cp, "apply", "--server-side", "-f", str(work / "fleet.yaml"))
            print("fleet applied; first operator under py-spy", flush=True)
            op, cold = profile_start(cp, work, "operator-first", args.max_wait, args.keep_stacks)
            result: dict[str, Any] = {"machine": m, "fleet": counts, "first_start": cold}
            md = page_header(
                "Operator start and restart: where the time goes", "of bench/operator_restart.py", m
            )
            md += [
                f"Fleet: {args.models} LLMModels, {args.policies} RoutingPolicies, {args.quotas} "
                "TenantQuotas, "
                "applied before the operator starts; py-spy samples it at 50 Hz (every thread, idle "
                "included, not pausing it) until its first pass completes.",
                "",
                *page("First start on the applied fleet (it mints every key and writes every status)", cold),
            ]
            if cold["first_pass_seconds"] is not None:
                t = time.monotonic()
                while time.monotonic() - t < args.max_wait and not ob.converged(cp, counts)[0]:
                    time.sleep(5)
                result["converged_seconds_after_first_pass"] = round(time.monotonic() - t, 1)
                op.stop()
                op, warm = profile_start(cp, work, "operator-restart", args.max_wait, args.keep_stacks)
                result["restart"] = warm
                md += page("Restart with nothing changed", warm)
            op.stop()
    write_results(args.out, "operator-restart", result, "\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
