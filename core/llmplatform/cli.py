"""The single `llmplatform` entry point.

Why one entry point: the operator, the gateway and the offline tools (render, audit)
share one rendering core, and shipping them as subcommands of one program means one
version, one install and one place for users to look. Each subcommand registers itself
here when it lands.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version


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
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0  # pragma: no cover - every subcommand returns from its own handler


if __name__ == "__main__":
    sys.exit(main())
