"""The ``microbandit serve`` subcommand."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

__all__ = ["register", "run_serve"]

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``serve`` subcommand to the ``microbandit`` parser."""
    parser = subparsers.add_parser(
        "serve",
        help="run the gRPC decision server on a local Ray",
        description=(
            "Start a local single-node Ray and the microbandit Serve application, print the gRPC addresses, "
            "and run until SIGINT or SIGTERM, then flush the event logs and write a final checkpoint."
        ),
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="YAML configuration file (default: the embedded micro-adjustments example)",
    )
    parser.add_argument("--port", type=int, default=None, help="gRPC port on 127.0.0.1 (overrides server.grpc_port)")
    parser.add_argument("--data-dir", type=Path, default=None, help="data directory (overrides server.data_dir)")
    parser.add_argument(
        "--http-port", type=int, default=None, help="port of Ray Serve's HTTP health routes (default: gRPC port - 1)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate the configuration and the files and directory it names, print it and exit",
    )
    parser.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Validate the configuration and run the server; return the exit status."""
    from bandit.errors import ConfigurationError, DataDirectoryInUseError
    from serving.config import check_environment, load_config, parse_config

    try:
        config = load_config(args.config)
        overrides = {}
        if args.port is not None:
            overrides["grpc_port"] = args.port
        if args.data_dir is not None:
            overrides["data_dir"] = str(args.data_dir.resolve())
        if overrides:
            data = config.model_dump(mode="json")
            data["server"].update(overrides)
            config = parse_config(data)
        check_environment(config)
    except ConfigurationError as error:
        logger.error("%s", error)
        return 2
    if args.check:
        print(config.model_dump_json(indent=2))
        return 0

    from serving.server import serve_forever

    try:
        return serve_forever(config, http_port=args.http_port)
    except (ConfigurationError, DataDirectoryInUseError) as error:
        logger.error("%s", error)
        return 2
