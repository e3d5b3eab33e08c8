"""The machine a benchmark ran on, and the result files every benchmark writes.

Why: a number without its machine is meaningless on a shared 2-core box, so every benchmark
records the same description (cores, CPU, memory, Python, load average) and writes
`bench/results/<name>.json` and `.md` the same way.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any


def machine(**extra: Any) -> dict[str, Any]:
    """Cores, CPU model, memory, kernel, Python, the load average now and the time (UTC), plus
    `extra` (versions of what the benchmark exercises)."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }


def describe(m: dict[str, Any]) -> str:
    """One line for a results page: "2 CPUs (model), 7.8 GiB RAM, Python 3.11.2"."""
    return f"{m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB RAM, Python {m['python']}"


def load_average_line(m: dict[str, Any]) -> str:
    """The load averages at start and end, and why they matter."""
    m.setdefault("load_average_at_end", [round(x, 2) for x in os.getloadavg()])
    return (
        f"Load average (1/5/15 min) at start {m['load_average_at_start']}, at end "
        f"{m['load_average_at_end']}: the machine is shared, and other work on it slows every timing."
    )


def page_header(title: str, run: str, m: dict[str, Any], note: str = "") -> list[str]:
    """The first lines of a results page: the title, then "Run <run> on <machine>. <load>"."""
    return [f"# {title}", "", f"Run {run} on {describe(m)}. {note}{load_average_line(m)}", ""]


def write_results(out: Path, name: str, result: dict[str, Any], markdown: str) -> None:
    """`out/<name>.json` and `out/<name>.md`; the page is also printed."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    (out / f"{name}.md").write_text(markdown)
    print(markdown, flush=True)
