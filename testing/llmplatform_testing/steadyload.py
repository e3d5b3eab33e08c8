"""Steady load from the official `openai` client until told to stop; a JSON summary at the end.

Why a separate process: the real-node tests run it inside the bed's network namespace (where
Service addresses route through kube-proxy), while the test itself stays on the host and
upgrades the release meanwhile. Every failure is kept with its time and message, so a test can
say exactly which requests a rollout broke.

    python -m llmplatform_testing.steadyload BASE_URL KEY MODEL STOP_FILE [--workers N]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import openai


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("base_url")
    ap.add_argument("key")
    ap.add_argument("model")
    ap.add_argument("stop_file", type=Path)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    ok = [0] * args.workers
    failures: list[dict[str, object]] = []
    lock = threading.Lock()
    started = time.monotonic()

    def work(i: int) -> None:
        client = openai.OpenAI(base_url=args.base_url, api_key=args.key, max_retries=0, timeout=30)
        n = 0
        while not args.stop_file.exists():
            n += 1
            try:
                client.chat.completions.create(
                    model=args.model, messages=[{"role": "user", "content": f"w{i} n{n}"}], max_tokens=8
                )
                ok[i] += 1
            except openai.OpenAIError as exc:
                with lock:
                    failures.append({"t": round(time.monotonic() - started, 2), "error": repr(exc)[:300]})
                time.sleep(0.05)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(args.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - started
    print(json.dumps({"ok": sum(ok), "failures": failures, "seconds": round(seconds, 1)}))


if __name__ == "__main__":
    main()
