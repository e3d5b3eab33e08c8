"""Many long streams through one gateway worker (issue #15, part 2): `make bench-streams`.

N concurrent streaming chat completions (default 5,000), each lasting about `--seconds` at the
upstream (the mock upstream sends one token per `--seconds / --chunks` seconds), opened over
`--ramp` seconds so that all are open at once. The same load runs twice, alternating nothing
else: straight at the upstream, then through the gateway (one worker, the project's default
enforcement: limits, governance, audit), so the client's own cost at this concurrency is in
both and the difference is what the gateway adds.

Reported: streams completed and failed; time to first chunk p50/p99 both ways and the
difference (the gateway's added time; target <= 10 ms at p99); the gateway's RSS idle and at
the peak, and per open stream (target <= 40 KB above idle); its CPU time per stream.
Results: bench/results/streams.md and streams.json, with the machine noted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gateway import KEY, RESULTS, manifests  # bench/gateway.py: the same tenant and model
from llmplatform_testing.gateway import mock_config
from llmplatform_testing.machine import machine, page_header, write_results
from llmplatform_testing.procs import Proc, cli, free_port


def raise_fd_limit() -> int:
    """Every stream holds two sockets in the gateway: lift the soft limit to the hard one (the
    children inherit it)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def load(
    url: str, key: str | None, n: int, ramp: float, chunks: int, watch: Proc | None
) -> dict[str, Any]:
    """Open `n` streams over `ramp` seconds; wait for all. With `watch`, sample its RSS."""
    import aiohttp

    headers = {"content-type": "application/json", **({"authorization": f"Bearer {key}"} if key else {})}
    body = json.dumps(
        {
            "model": "auto",
            "messages": [{"role": "user", "content": "stream a long answer"}],
            "max_tokens": chunks,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ).encode()
    ttfb: list[float] = []
    errors: dict[str, int] = {}
    done = 0
    peak_rss = 0.0
    open_now = 0
    peak_open = 0

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal done, open_now, peak_open
        start = time.perf_counter()
        try:
            async with session.post(url + "/v1/chat/completions", data=body, headers=headers) as resp:
                if resp.status != 200:
                    errors[f"http {resp.status}"] = errors.get(f"http {resp.status}", 0) + 1
                    await resp.read()
                    return
                first = True
                open_now += 1
                peak_open = max(peak_open, open_now)
                try:
                    async for line in resp.content:
                        if first and line.startswith(b"data:"):
                            ttfb.append((time.perf_counter() - start) * 1000)
                            first = False
                        if line.strip() == b"data: [DONE]":
                            done += 1
                            break
                    else:
                        errors["no [DONE]"] = errors.get("no [DONE]", 0) + 1
                finally:
                    open_now -= 1
        except Exception as exc:  # a failed stream is a result, not a crash of the benchmark
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

    async def sample() -> None:
        nonlocal peak_rss
        while watch is not None:
            peak_rss = max(peak_rss, watch.rss_mib())
            await asyncio.sleep(0.25)

    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        sampler = asyncio.create_task(sample())
        tasks = []
        for i in range(n):
            tasks.append(asyncio.create_task(one(session)))
            due = started + ramp * (i + 1) / n
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
        await asyncio.gather(*tasks)
        sampler.cancel()
    ttfb.sort()
    return {
        "streams": n,
        "completed": done,
        "errors": errors,
        "peak_open": peak_open,
        "seconds": round(time.monotonic() - started, 1),
        "ttfb_p50_ms": round(statistics.median(ttfb), 2) if ttfb else None,
        "ttfb_p99_ms": round(ttfb[int(len(ttfb) * 0.99) - 1], 2) if ttfb else None,
        "peak_rss_mib": round(peak_rss, 1) if watch else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=5000)
    ap.add_argument("--seconds", type=float, default=20.0, help="how long each stream lasts at the upstream")
    ap.add_argument("--chunks", type=int, default=20, help="tokens (chunks) per stream")
    ap.add_argument("--ramp", type=float, default=10.0, help="seconds over which the streams are opened")
    ap.add_argument("--results", default="streams", help="name of the results files in bench/results")
    args = ap.parse_args()
    fds = raise_fd_limit()
    if fds < 2 * args.streams + 1000:
        print(f"the open-files limit ({fds}) is too low for {args.streams} streams", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="llmplatform-streams-"))
    result: dict[str, Any] = {
        "machine": machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    result["settings"] = {**vars(args), "open_files_limit": fds}
    procs: list[Proc] = []
    try:
        port = free_port()
        upstream = f"http://127.0.0.1:{port}"
        procs.append(Proc(cli("mock-upstream", "--port", str(port)), tmp / "mock.log", upstream + "/healthz"))
        mock_config(upstream, chunk_delay_ms=1000 * args.seconds / args.chunks)
        print("== straight at the upstream", flush=True)
        result["direct"] = asyncio.run(load(upstream, None, args.streams, args.ramp, args.chunks, None))
        print(json.dumps(result["direct"]), flush=True)

        gport = free_port()
        gw_args = ["gateway", "--manifests", str(manifests(tmp / "m", upstream)), "--host", "127.0.0.1"]
        gw_args += ["--port", str(gport), "--audit-log", str(tmp / "audit.jsonl")]
        gw = Proc(cli(*gw_args), tmp / "gateway.log", f"http://127.0.0.1:{gport}/readyz")
        procs.append(gw)
        asyncio.run(load(f"http://127.0.0.1:{gport}", KEY, 50, 0.5, 2, None))  # warm-up
        idle = gw.rss_mib()
        cpu0 = gw.cpu_seconds()
        print("== through the gateway", flush=True)
        result["gateway"] = asyncio.run(
            load(f"http://127.0.0.1:{gport}", KEY, args.streams, args.ramp, args.chunks, gw)
        )
        g = result["gateway"]
        g["idle_rss_mib"] = round(idle, 1)
        g["cpu_ms_per_stream"] = round(1000 * (gw.cpu_seconds() - cpu0) / args.streams, 3)
        g["rss_kib_per_open_stream"] = round((g["peak_rss_mib"] - idle) * 1024 / max(1, g["peak_open"]), 1)
        print(json.dumps(g), flush=True)
    finally:
        for p in procs:
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    d, g = result["direct"], result["gateway"]
    result["summary"] = {
        "all_completed": g["completed"] == args.streams and not g["errors"],
        "added_ttfb_p50_ms": round(g["ttfb_p50_ms"] - d["ttfb_p50_ms"], 2),
        "added_ttfb_p99_ms": round(g["ttfb_p99_ms"] - d["ttfb_p99_ms"], 2),
        "rss_kib_per_open_stream": g["rss_kib_per_open_stream"],
        "targets": {
            "all streams complete": g["completed"] == args.streams and not g["errors"],
            "added first chunk p99 <= 10 ms": g["ttfb_p99_ms"] - d["ttfb_p99_ms"] <= 10,
            "memory per open stream <= 40 KB above idle": g["rss_kib_per_open_stream"] <= 40,
        },
    }
    write_results(RESULTS, args.results, result, markdown(result))
    return 0


def markdown(r: dict[str, Any]) -> str:
    s, st = r["summary"], r["settings"]
    lines = page_header(
        "Many long streams",
        f"{r['started']} by `make bench-streams` (bench/streams.py)",
        r["machine"],
        f"{st['streams']} streams of {st['chunks']} chunks over {st['seconds']} s each, opened over "
        f"{st['ramp']} s, one gateway worker; client, mock upstream and gateway share the cores. ",
    )
    lines += [
        "| path | completed | errors | peak open | first chunk p50 (ms) | p99 (ms) | peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("direct", "gateway"):
        x = r[name]
        lines.append(
            f"| {name} | {x['completed']} | {x['errors'] or 0} | {x['peak_open']} | {x['ttfb_p50_ms']} | "
            f"{x['ttfb_p99_ms']} | {x['peak_rss_mib'] or ''} |"
        )
    g = r["gateway"]
    lines += [
        "",
        f"Gateway: idle RSS {g['idle_rss_mib']} MiB, {s['rss_kib_per_open_stream']} KiB per open stream "
        f"above idle, {g['cpu_ms_per_stream']} ms CPU per stream; added first chunk p50 "
        f"{s['added_ttfb_p50_ms']} ms, p99 {s['added_ttfb_p99_ms']} ms.",
        "",
        "## Against the issue's targets",
        "",
    ]
    lines += [f"- {k}: {'met' if v else 'MISSED'}" for k, v in s["targets"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
