"""``toolkit sandbox``: run the local platform API server in the foreground.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="toolkit")
    >>> register(parser.add_subparsers())
    >>> args = parser.parse_args(["sandbox", "--port", "0", "--fail-rate", "0.1", "--variant", "short_result"])
    >>> args.port, args.fail_rate, args.variant, args.strict_catalog, args.func is run
    (0, 0.1, 'short_result', False, True)
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
from typing import Any

from . import require_server
from .knobs import VARIANTS

__all__ = ["register", "run"]


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {text}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def _cores_to_share() -> bool:
    """Whether ``toolkit sandbox`` shares large tasks with a second process by default (prepare.py).

    The second process needs a core of its own: on two cores it measured ~1.7x the profiles a
    second of one process for bare posts, but a launch from the toolkit on the same machine, whose
    client then competes for the cores, only ~1.05x (bench/README.md). So three cores or more;
    ``--two-processes`` for a fast rehearsal with bare posts on two.
    """
    return (os.cpu_count() or 1) >= 3


def register(subparsers: Any) -> None:
    """Add the ``sandbox`` sub-command to the ``toolkit`` parser."""
    p = subparsers.add_parser(
        "sandbox",
        help="run the local sandbox of the platform API",
        description=(
            "Serve a local, faithful stand-in for the platform API (import_and_start_batch_task, "
            "import_and_start, tasks/status, the trigger/database/resource catalog) plus /_sandbox/* "
            "inspection routes and /docs. Prints its URL and token; stops on Ctrl-C or SIGTERM."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s, local only)")
    p.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one (default: %(default)s)")
    p.add_argument("--token", help="API token to accept (default: a generated one)")
    p.add_argument(
        "--db", metavar="PATH", help="SQLite file keeping profiles, tasks and sends across restarts"
    )
    p.add_argument("--seed", type=int, help="make task ids, profile ids and faults reproducible")
    p.add_argument(
        "--catalog",
        metavar="FILE.json",
        help="the triggers, databases (with fields) and resources to serve instead of the default ones",
    )
    p.add_argument(
        "--strict-catalog",
        action="store_true",
        help="refuse a trigger id the catalog does not know (404), as the platform does; "
        "by default it is registered as an active API-call trigger on first use",
    )
    p.add_argument(
        "--allow-undocumented-matching",
        action="store_true",
        help="also accept the six matching modes the batch method's page does not list",
    )
    processes = p.add_mutually_exclusive_group()
    processes.add_argument(
        "--two-processes",
        action="store_true",
        help="share the checks of large in-memory tasks with a second process, so the sandbox works "
        "on two cores (the default on a machine with three cores or more; the same answers)",
    )
    processes.add_argument(
        "--one-process",
        action="store_true",
        help="check every profile in the sandbox's own process (the default on one or two cores)",
    )
    p.add_argument(
        "--body-timeout",
        type=_positive,
        default=30.0,
        metavar="S",
        help="seconds a request body may stall before the answer is 408 (default: %(default)s)",
    )
    p.add_argument(
        "--variant",
        choices=VARIANTS,
        default="standard",
        help="answer as one documented form of the platform (default: %(default)s)",
    )
    p.add_argument(
        "--captured",
        type=int,
        metavar="N",
        help="with --variant short_result: the captured count a finished task reports",
    )
    knobs = p.add_argument_group("realism knobs (platform routes only; all off by default)")
    knobs.add_argument(
        "--processing-rate", type=_positive, metavar="N", help="profiles per second a task advances"
    )
    knobs.add_argument(
        "--latency-ms", type=float, default=0.0, metavar="MS", help="delay before each request"
    )
    knobs.add_argument("--rate-limit", type=_positive, metavar="N", help="requests per second, then 429")
    knobs.add_argument(
        "--fail-rate", type=_fraction, default=0.0, metavar="F", help="fraction answered 500/502/503"
    )
    knobs.add_argument(
        "--drop-rate", type=_fraction, default=0.0, metavar="F", help="fraction of connections dropped"
    )
    knobs.add_argument(
        "--lose-response-rate",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="fraction handled in full whose answer is lost (connection closed)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the sandbox until Ctrl-C or SIGTERM; 0 on a clean stop, 2 on bad settings."""
    try:
        require_server("toolkit sandbox")
    except ImportError as exc:
        print(f"toolkit sandbox: {exc}", file=sys.stderr)
        return 2
    from .catalog import CatalogError
    from .knobs import Knobs
    from .server import SandboxServer, Setup, read_catalog, run_forever

    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        knobs = Knobs(
            processing_rate=args.processing_rate,
            latency_ms=args.latency_ms,
            rate_limit=args.rate_limit,
            fail_rate=args.fail_rate,
            drop_rate=args.drop_rate,
            lose_response_rate=args.lose_response_rate,
            seed=args.seed,
            variant=args.variant,
            captured=args.captured,
        )
        setup = Setup(
            catalog=read_catalog(args.catalog),
            strict_catalog=args.strict_catalog,
            allow_undocumented_matching=args.allow_undocumented_matching,
            body_timeout=args.body_timeout,
            two_processes=args.two_processes or (not args.one_process and _cores_to_share()),
        )
    except (ValueError, CatalogError) as exc:
        print(f"toolkit sandbox: {exc}", file=sys.stderr)
        return 2

    def announce(server: SandboxServer) -> None:
        print(f"Sandbox listening on {server.url}  (API docs: {server.url}/docs)")
        print(f"Token: {server.token}")
        print(f"export TOOLKIT_API_URL={server.url} TOOLKIT_API_TOKEN={server.token}")
        print("Press Ctrl-C to stop.", flush=True)
        try:
            loopback = ipaddress.ip_address(server.host).is_loopback
        except ValueError:
            loopback = server.host == "localhost"
        if not loopback:
            logging.getLogger("toolkit.sandbox").warning(
                "listening on %s: reachable from other machines", server.host
            )

    try:
        run_forever(
            host=args.host,
            port=args.port,
            token=args.token,
            db=args.db,
            knobs=knobs,
            setup=setup,
            log_level=args.log_level,
            announce=announce,
        )
    except OSError as exc:
        print(f"toolkit sandbox: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0
