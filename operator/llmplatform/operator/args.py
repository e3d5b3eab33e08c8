"""The `llmplatform operator` command line, kept free of heavy imports so `llmplatform --help`
stays fast; the operator itself (Kopf, the Kubernetes client) loads only when it runs."""

from __future__ import annotations

import argparse
import os
from typing import Any

from llmplatform.contract import redisurl, shardargs


def add_parser(subparsers: Any) -> None:
    op = subparsers.add_parser(
        "operator",
        help="run the operator against the current kubeconfig (or in-cluster credentials)",
        description=(
            "Watch LLMModel, RoutingPolicy and TenantQuota resources and reconcile them into "
            "Deployments, Services, HPAs, NetworkPolicies, API key Secrets and the gateway ConfigMap."
        ),
    )
    op.add_argument(
        "--namespace",
        action="append",
        dest="namespaces",
        metavar="NS",
        help="watch only this namespace (repeatable; the platform namespace is always watched). "
        "Default: all namespaces",
    )
    op.add_argument(
        "--platform-namespace",
        default=os.environ.get("LLMPLATFORM_PLATFORM_NAMESPACE", "llm-platform"),
        metavar="NS",
        help="namespace of the gateway ConfigMap and the leader Lease (default: llm-platform)",
    )
    op.add_argument(
        "--gateway-deployment",
        default=os.environ.get("LLMPLATFORM_GATEWAY_DEPLOYMENT") or None,
        metavar="NAME",
        help="the gateway's Deployment in the platform namespace: a model is Ready only if the "
        "Secret its apiKeySecretRef names is mounted into it (the chart sets this). Default: not "
        "checked (a gateway run outside the cluster)",
    )
    op.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    op.add_argument(
        "--no-leader-election", action="store_true", help="do not take the Lease (a single local process)"
    )
    op.add_argument("--lease-seconds", type=int, default=15, help="leader Lease duration (default: 15)")
    op.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus metrics here (0: off)")
    op.add_argument("--health-port", type=int, default=0, help="serve Kopf's /healthz here (0: off)")
    op.add_argument(
        "--resync-seconds", type=float, default=60.0, help="full pass at least this often (default: 60)"
    )
    op.add_argument(
        "--usage-redis-url",
        metavar="URL",
        type=redisurl.argument,
        help="the gateways' shared Redis (the gateway's --redis-url forms): copy each tenant's usage "
        "into TenantQuota status.usage and restore it into Redis after Redis lost it",
    )
    op.add_argument("--usage-seconds", type=float, default=30.0, help="usage refresh period (default: 30)")
    op.add_argument(
        "--serving-overrides",
        type=_serving_overrides,
        default=None,
        metavar="JSON",
        help="replace these fields of every self-hosted model's pod: a JSON object with image, args, "
        "resources, nodeSelector, tolerations (for clusters without GPUs; empty value: remove)",
    )
    shardargs.add_arguments(op, env=True)
    op.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    op.set_defaults(handler=run_operator)


def _serving_overrides(text: str) -> dict[str, Any]:
    from llmplatform.render.workloads import parse_serving_overrides

    try:
        return parse_serving_overrides(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run_operator(args: argparse.Namespace) -> int:
    from llmplatform.operator.main import run

    return run(args)
