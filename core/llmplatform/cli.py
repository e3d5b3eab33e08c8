"""The single `llmplatform` entry point.

Why one entry point: the operator, the gateway and the offline tools (render, audit)
share one rendering core, and shipping them as subcommands of one program means one
version, one install and one place for users to look. Each subcommand registers itself
here when it lands.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

Handler = Callable[[argparse.Namespace], int]


def package_version() -> str:
    """The installed distribution's version, so `--version` matches what pip installed."""
    try:
        return version("llmplatform")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmplatform",
        description=(
            "Kubernetes-native LLM platform: an operator that renders LLMModel, RoutingPolicy "
            "and TenantQuota resources into workloads and gateway config, and the gateway that "
            "enforces it."
        ),
    )
    parser.add_argument("--version", action="version", version=f"llmplatform {package_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_render_parser(subparsers)
    return parser


def add_render_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    render = subparsers.add_parser(
        "render",
        help="print every object the operator would create for a folder of manifests",
        description=(
            "Render LLMModel, RoutingPolicy, TenantQuota and Secret manifests from DIR (all .yaml/.yml "
            "files, recursively) into the Deployments, Services, HPAs, NetworkPolicies and gateway "
            "ConfigMap the operator would apply, as multi-document YAML on standard output. Resources "
            "that are not ready (missing models or Secrets, quotas over their ceiling, pending keys) are "
            "reported on standard error; the exit status is 1 when a resource fails validation."
        ),
    )
    render.add_argument("directory", metavar="DIR", help="folder of manifests")
    render.add_argument(
        "--platform-namespace",
        default="llm-platform",
        metavar="NS",
        help="namespace of the gateway and its ConfigMap (default: llm-platform)",
    )
    render.set_defaults(handler=run_render)


def run_render(args: argparse.Namespace) -> int:
    from llmplatform.render import dump_objects, load_manifests, render

    try:
        manifests = load_manifests(args.directory)
        result = render(manifests.resources, manifests.secrets, platform_namespace=args.platform_namespace)
    except ValueError as exc:
        print(f"llmplatform render: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(dump_objects(result.objects))
    invalid = False
    verdicts = [("LLMModel", v.namespace, v.name, v.conditions) for v in result.models]
    verdicts += [("RoutingPolicy", v.namespace, v.name, v.conditions) for v in result.policies]
    verdicts += [("TenantQuota", v.namespace, v.name, v.conditions) for v in result.quotas]
    for kind, namespace, name, conditions in verdicts:
        for condition in conditions:
            if condition.status != "True":
                print(
                    f"{kind} {namespace}/{name}: {condition.type}={condition.status} "
                    f"({condition.reason}) {condition.message}",
                    file=sys.stderr,
                )
            invalid = invalid or condition.reason == "InvalidSpec"
    return 1 if invalid else 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
