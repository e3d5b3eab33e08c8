# llm-platform developer entry points. Everything runs from a local virtualenv (.venv)
# and a control plane built from the upstream Go modules into a cache outside the
# checkout ($(CACHE), override with LLMPLATFORM_CACHE).

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
CACHE  ?= $(or $(LLMPLATFORM_CACHE),$(HOME)/.cache/llmplatform)
BED     = tests/e2e/controlplane

.DEFAULT_GOAL := help
.PHONY: help demo run install controlplane nodes collector test test-unit test-gateway test-e2e lint cluster-up cluster-down \
        clean-cache kind-up kind-down bench-controlplane bench-operator bench-render-edit bench-gateway bench-streams bench-governance images \
        chart-crds crds argocd docs clean

help: ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@echo "creating $(VENV) and installing the project with its test tools (first run: a minute or more; pip lists each package)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install -e '.[dev]'
	touch $@

demo: install ## the main job: control plane + operator + gateway + examples, shown with the openai client (ARGS=--once to exit)
	$(PY) demo/run.py $(ARGS)

HOST      ?= 127.0.0.1
PORT      ?= 8080
RUN_AUDIT ?= .state/run-audit.jsonl

run: install ## no cluster: the gateway alone on examples/ + the mock upstream, on 127.0.0.1:8080 (HOST=, PORT=, RUN_AUDIT=)
	@mkdir -p $(dir $(RUN_AUDIT))
	@echo "gateway on http://$(HOST):$(PORT)/v1 serving examples/, OpenAI-API models answered by the mock upstream (a test server); audit records in $(RUN_AUDIT)"
	$(VENV)/bin/llmplatform gateway --manifests examples/ --mock --host $(HOST) --port $(PORT) --audit-log $(RUN_AUDIT)

install: $(VENV)/.installed ## create .venv and install the project with test tools

controlplane: install ## build (or reuse) etcd, kube-*, kubectl, kwok and helm in the cache (NODES=real: also the node parts)
	$(PY) $(BED)/build.py
ifeq ($(NODES),real)
	$(PY) $(BED)/nodes_build.py
endif

nodes: install ## build (or reuse) what the real-node bed runs: kubelet, kube-proxy, containerd, runc, CoreDNS, kube-router
	$(PY) $(BED)/nodes_build.py

collector: install ## build (or reuse) the OpenTelemetry Collector of the tracing tests in the cache (a few minutes cold)
	$(PY) $(BED)/collector_build.py

test: install controlplane nodes collector images ## every test: unit, gateway and e2e (e2e against the built control plane, real-node tests on a real node)
	$(PY) -m pytest tests

test-unit: install ## unit tests only: pure functions, no processes (tests/unit, tests/gateway/unit)
	$(PY) -m pytest tests/unit tests/gateway/unit

test-gateway: install ## gateway tests only: its units and real gateways on loopback (no Go build)
	$(PY) -m pytest tests/gateway

test-e2e: install controlplane nodes collector images ## e2e tests only
	$(PY) -m pytest tests/e2e

lint: install ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy core operator gateway testing

cluster-up: install controlplane ## start the control plane in the background (NODES=real: one real node, see README); prints KUBECONFIG=<path> last
	@$(PY) $(BED)/bed.py up --nodes $(or $(NODES),kwok)

cluster-down: install ## stop the control plane started by cluster-up and remove its state
	@$(PY) $(BED)/bed.py down

clean-cache: ## remove the built control-plane binaries
	$(PYTHON) $(BED)/build.py --clean

kind-up: ## (needs Docker and kind; not possible on the CI machines) a kind cluster for e2e
	kind create cluster --name llmplatform --kubeconfig $(CURDIR)/.state/kind.kubeconfig
	@echo "export LLMPLATFORM_E2E_KUBECONFIG=$(CURDIR)/.state/kind.kubeconfig"

kind-down: ## delete the kind cluster
	kind delete cluster --name llmplatform

bench-controlplane: install controlplane ## cold build / warm start / memory numbers into bench/results
	$(PY) bench/controlplane.py

bench-operator: install controlplane ## operator at fleet scale on the real control plane into bench/results
	$(PY) bench/operator_bench.py

bench-render-edit: install ## one quota edit's render time, full vs incremental, at 2,000 and 20,000 quotas (in process) into bench/results
	$(PY) bench/render_edit.py $(ARGS)

bench-gateway: install ## gateway vs upstream, bare proxy and LiteLLM (needs wrk) into bench/results; ARGS="--baseline REV" adds a before/after row; ARGS=--tracing: the cost of tracing at sampling 1.0 and 0.1 (builds the collector)
	$(PY) bench/gateway.py $(ARGS)

bench-streams: install ## many long streams (default 5,000 x 20 s) through one gateway worker into bench/results
	$(PY) bench/streams.py $(ARGS)

bench-governance: install ## PII detection precision/recall (Faker corpus, 7 locales) and 4 KB scan speed into bench/results
	$(PY) bench/governance/run.py

IMAGE_REPO ?= ghcr.io/llmplatform
IMAGE_TAG  ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

images: install ## operator, gateway and mock-upstream images without Docker (buildah on a Debian base; reused while their sources are unchanged; loaded into a running real-node bed)
	IMAGE_REPO=$(IMAGE_REPO) IMAGE_TAG=$(IMAGE_TAG) $(PY) images/build.py --load

chart-crds: ## copy crds/ into charts/llm-platform/crds (a unit test fails when they differ)
	rm -f charts/llm-platform/crds/*.yaml
	cp crds/*.yaml charts/llm-platform/crds/

crds: install ## regenerate crds/ from the API types, then copy them into the chart
	$(PY) -m llmplatform.api.crdgen
	$(MAKE) --no-print-directory chart-crds

argocd: install ## assemble deploy/argocd/argocd-cm-health.yaml from deploy/argocd/health/*.lua
	$(PY) deploy/argocd/health.py

docs: install ## regenerate docs/reference.md from the CRDs' descriptions
	$(PY) -m llmplatform.api.docgen

clean: ## remove the virtualenv and tool caches (not the control-plane cache)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
