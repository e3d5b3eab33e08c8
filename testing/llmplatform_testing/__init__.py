"""Test support for llm-platform: what tests, benchmarks and the demo share.

Why a package: the same process wrappers, waits, metric readers, test upstreams and manifest
builders used to exist in several copies reached with `sys.path.insert`. This source root
(`testing/`) is on the path of an editable install (`pip install -e .`, hatch's
`dev-mode-dirs`) and is not part of the product wheel, so `tests/`, `bench/` and `demo/`
import it by name and nothing shipped depends on it.

Modules:
- `procs`: free ports, child processes stopped by their own process group, `wait_for`.
- `metrics`: one Prometheus text reader (prometheus_client's parser) for every caller.
- `gateway`: the gateway's test world on loopback: mock upstreams, the Anthropic test server,
  Redis, gateway processes, and the manifests they serve (`World`).
- `anthropic_server`: a strict Anthropic Messages-API test server (run with `-m`).
- `controlplane`: the e2e control plane (`tests/e2e/controlplane/bed.py`, `build.py`) by name,
  and `Cluster`, what an e2e test gets.
- `kube`: e2e helpers on a real API server: `Api`, resource builders, a 404-tolerant wait.
- `chart`: the Helm chart in e2e tests: helm, rendering, an installed release, its checks.
- `operator_process`: `llmplatform operator` as a real subprocess with its metrics.
- `machine`: the machine description and result files every benchmark writes.
- `scripts`: repository scripts (not in any package) imported by path, once.
- `readme`: the README quickstart's commands, read from README.md.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository checkout this package runs from (it is never installed elsewhere)."""
