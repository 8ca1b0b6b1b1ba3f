"""The ``microbandit logs`` command: inspect, retain, erase, export and import DSJSON.

Registered by the ``microbandit`` dispatcher. Every subcommand works on a
policy directory (the one holding ``events/``) or on a server data directory
holding one such directory per policy.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from bandit.errors import DataDirectoryInUseError
from bandit.maintenance import (
    LOCK_FILE_NAME,
    apply_retention,
    check_not_in_use,
    erase_user,
    export_dsjson,
    import_dsjson,
    policy_directories,
    summarize,
)
from bandit.privacy import KEY_ENVIRONMENT_VARIABLE, KEY_FILE_NAME, Pseudonymizer, load_pseudonym_key

__all__ = ["register"]

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``logs`` command and its subcommands."""
    logs = subparsers.add_parser("logs", help="inspect and maintain event logs")
    commands = logs.add_subparsers(dest="logs_command", required=True, metavar="SUBCOMMAND")

    inspect = commands.add_parser("inspect", help="print row counts, statuses and time range per policy")
    inspect.add_argument("directory", help="policy directory or server data directory")
    inspect.set_defaults(handler=_inspect)

    retain = commands.add_parser("retain", help="delete segments older than a retention period")
    retain.add_argument("directory", help="policy directory or server data directory")
    retain.add_argument("--days", type=float, required=True, help="retention period in days")
    retain.set_defaults(handler=_retain)

    erase = commands.add_parser(
        "erase",
        help="remove every record of one user (rejected while a server runs on the data directory)",
    )
    erase.add_argument("directory", help="policy directory or server data directory")
    who = erase.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="the user id as the service sent it; pseudonymized with the key")
    who.add_argument("--pseudonym", help="the pseudonym as stored in the log")
    erase.add_argument(
        "--key-file",
        help=(
            f"file holding the pseudonymization key (default: the environment variable {KEY_ENVIRONMENT_VARIABLE}, "
            f"else the data directory's {KEY_FILE_NAME})"
        ),
    )
    erase.set_defaults(handler=_erase)

    export = commands.add_parser("export-dsjson", help="write joined events as Personalizer DSJSON lines")
    export.add_argument("directory", help="policy directory")
    export.add_argument("output", help="output file (.json lines)")
    export.set_defaults(handler=_export)

    imported = commands.add_parser("import-dsjson", help="append a Personalizer DSJSON file to a policy log")
    imported.add_argument("source", help="DSJSON file, one event per line")
    imported.add_argument("directory", help="policy directory to append to")
    imported.add_argument("--policy", required=True, help="policy name recorded on the imported rows")
    imported.set_defaults(handler=_import)


def _inspect(args: argparse.Namespace) -> int:
    for directory in policy_directories(args.directory):
        summary = summarize(directory)
        print(f"{directory}: {summary.segments} segments, {summary.first_timestamp} .. {summary.last_timestamp}")
        for kind, count in sorted(summary.rows_by_kind.items()):
            print(f"  {kind:<12} {count:>10}")
        for status, count in sorted(summary.rows_by_status.items()):
            print(f"    {status:<28} {count:>10}")
    return 0


def _retain(args: argparse.Namespace) -> int:
    if args.days <= 0:
        raise SystemExit("--days must be > 0")
    now = time.time()
    for directory in policy_directories(args.directory):
        removed = apply_retention(directory, args.days * 86_400.0, now)
        print(f"{directory}: deleted {removed} rows older than {args.days:g} days")
    return 0


def _data_dir_of(directory: Path) -> Path:
    """Return the server data directory containing ``directory`` (the one holding the generated key)."""
    path = directory.resolve()
    for candidate in (path, path.parent, path.parent.parent):
        if (candidate / KEY_FILE_NAME).exists() or (candidate / LOCK_FILE_NAME).exists():
            return candidate
    return path


def _erase(args: argparse.Namespace) -> int:
    try:
        check_not_in_use(args.directory)
    except DataDirectoryInUseError as error:
        print(f"microbandit logs erase: {error}", file=sys.stderr)
        return 3
    if args.user is not None:
        try:
            key = load_pseudonym_key(args.key_file, data_dir=_data_dir_of(Path(args.directory)))
        except ValueError as error:
            print(f"microbandit logs erase: {error}", file=sys.stderr)
            return 2
        pseudonym = Pseudonymizer(key).pseudonymize(args.user)
    else:
        pseudonym = args.pseudonym
    total = 0
    for directory in policy_directories(args.directory):
        removed = erase_user(directory, pseudonym)
        total += removed
        print(f"{directory}: removed {removed} rows")
    print(f"removed {total} rows in total")
    return 0


def _export(args: argparse.Namespace) -> int:
    count = export_dsjson(args.directory, args.output)
    print(f"wrote {count} events to {args.output}")
    return 0


def _import(args: argparse.Namespace) -> int:
    count = import_dsjson(args.source, args.directory, args.policy)
    print(f"imported {count} events into {args.directory}")
    return 0
