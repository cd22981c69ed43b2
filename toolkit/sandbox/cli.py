"""``toolkit sandbox``: run the local platform API server in the foreground.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="toolkit")
    >>> register(parser.add_subparsers())
    >>> args = parser.parse_args(["sandbox", "--port", "0", "--fail-rate", "0.1"])
    >>> args.port, args.fail_rate, args.func is run
    (0, 0.1, True)
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from typing import Any

from . import require_server

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


def register(subparsers: Any) -> None:
    """Add the ``sandbox`` sub-command to the ``toolkit`` parser."""
    p = subparsers.add_parser(
        "sandbox",
        help="run the local sandbox of the platform API",
        description=(
            "Serve a local, faithful stand-in for the platform API (import_and_start_batch_task, "
            "import_and_start, tasks/status) plus /_sandbox/* inspection routes and /docs. "
            "Prints its URL and token; stops on Ctrl-C or SIGTERM."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s, local only)")
    p.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one (default: %(default)s)")
    p.add_argument("--token", help="API token to accept (default: a generated one)")
    p.add_argument(
        "--db", metavar="PATH", help="SQLite file keeping profiles, tasks and sends across restarts"
    )
    p.add_argument("--seed", type=int, help="make task ids, profile ids and faults reproducible")
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
    from .knobs import Knobs
    from .server import SandboxServer, run_forever

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
        )
    except ValueError as exc:
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
            log_level=args.log_level,
            announce=announce,
        )
    except OSError as exc:
        print(f"toolkit sandbox: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0
