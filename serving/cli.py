"""The ``microbandit`` command line.

Each subcommand lives in the package that owns its work and is loaded by
module name, so that this module does not import ``offline_eval`` or
``simulations`` (which themselves import ``serving``). A subcommand module
exposes ``register(subparsers)``, which adds its parser and sets the
``handler`` default to a function taking the parsed arguments and returning
an exit status.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser"]

SUBCOMMAND_MODULES = (
    "serving.commands",
    "offline_eval.cli",
    "simulations.cli",
    "bandit.logtools",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the parser with every subcommand registered."""
    parser = argparse.ArgumentParser(prog="microbandit", description="Contextual-bandit decision server and tools.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level instead of INFO")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
