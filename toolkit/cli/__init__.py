"""The ``toolkit`` command line: one sub-command per job.

Each sub-command lives in its own module exposing ``register(subparsers)``, which adds
its parser and sets ``func`` (called with the parsed namespace, returns an exit code).

Exit codes, the same for every command (``--json`` prints the same facts as JSON)::

    0  success: every row sent was imported (or, with --no-wait, sent); plan, history: done
    1  some rows failed or are unknown, or are still pending when the command waited for them
    2  usage: a bad option, --map naming no column of the file, a missing setting
    3  refused: already launched (--force sends again), a --label naming another launch,
       no row of the segment can be sent
    4  the platform could not be reached, or refused the token
    5  bad input file: missing, empty, header only, ragged, not text in any encoding tried

Output fits 100 columns and survives a closed pipe (``toolkit history | head``).

Example:
    >>> build_parser().parse_args(["plan", "--rows", "10"]).rows
    10
    >>> main(["launch"])  # the segment file is missing: usage
    2
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from toolkit.cli.output import EXIT_USAGE

# module -> the sub-commands it registers; imported lazily so `toolkit --help` stays fast
_COMMAND_MODULES = (
    "toolkit.cli.plan",  # plan
    "toolkit.cli.demo",  # demo: the main job, end to end on the sandbox
    "toolkit.cli.launch",  # launch, status, history, resume
    "toolkit.cli.notebooks",  # notebooks, lab, app
    "toolkit.sandbox.cli",  # sandbox
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="toolkit",
        description="Segments to validated trigger-campaign launches, with a local sandbox.",
        epilog="exit codes: 0 success, 1 some rows failed or unknown, 2 usage, 3 refused (already "
        "launched, label in use, nothing to send), 4 platform unreachable or token refused, 5 bad input file",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a sub-command not built yet
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``toolkit`` command; returns its exit code (see the module)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, already explained)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
