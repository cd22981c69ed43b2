"""The ``toolkit`` command line: one sub-command per job.

Each sub-command lives in its own module exposing ``register(subparsers)``, which adds
its parser and sets ``func`` (called with the parsed namespace, returns an exit code).

Example:
    >>> build_parser().parse_args(["plan", "--rows", "10"]).rows
    10
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

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
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
