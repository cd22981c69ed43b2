"""What the ``toolkit`` command prints, and the exit code it ends with.

Everything goes through :func:`say` (stdout) and :func:`warn` (stderr): both survive a
closed pipe (``toolkit history | head``: the command finishes its work and exits with its
own code, silently), and lines are kept within :data:`WIDTH` columns. :func:`exit_code`
turns any error the toolkit raises into one message and one documented exit code.

Example:
    >>> shorten("x" * 120)[-3:], len(shorten("x" * 120))
    ('...', 100)
    >>> cli_terms("map one, e.g. fields={'email': 'email'}; to follow it: client.resume('spring')")
    'map one, e.g. --map COLUMN=email; to follow it: `toolkit status spring`'
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from toolkit.errors import (
    AlreadyLaunched,
    ApiError,
    AuthError,
    InvalidArgumentError,
    SegmentFileError,
    ToolkitError,
    TransportError,
)

__all__ = [
    "EXIT_INCOMPLETE",
    "EXIT_INPUT",
    "EXIT_OK",
    "EXIT_PLATFORM",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "WIDTH",
    "Refused",
    "cli_terms",
    "exit_code",
    "guarded",
    "say",
    "short_reason",
    "shorten",
    "warn",
]

#: The documented exit codes (see ``toolkit.cli``).
EXIT_OK, EXIT_INCOMPLETE, EXIT_USAGE, EXIT_REFUSED, EXIT_PLATFORM, EXIT_INPUT = 0, 1, 2, 3, 4, 5
#: Output lines are kept within this many columns.
WIDTH = 100


class Refused(ToolkitError):
    """The CLI refuses to go on (exit 3): the plan was launched before, a label names another
    launch, nothing in the segment can be sent."""


def _write(stream: TextIO, text: str) -> None:
    try:
        stream.write(text + "\n")
        stream.flush()
    except BrokenPipeError:
        # the reader went away (`| head`): the command finishes its work; later output (and
        # Python's own flush at exit) goes nowhere instead of raising again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


def say(text: str = "") -> None:
    """Print to stdout; a closed pipe is not an error.

    Example:
        >>> say("imported 24")
        imported 24
    """
    _write(sys.stdout, text)


def warn(text: str) -> None:
    """Print ``toolkit: text`` to stderr, wrapped within the width."""
    lines = _wrap(f"toolkit: {text}", WIDTH, indent="  ")
    _write(sys.stderr, "\n".join(lines))


def _wrap(text: str, width: int, indent: str = "") -> list[str]:
    import textwrap

    out: list[str] = []
    for paragraph in text.splitlines() or [""]:
        out += textwrap.wrap(paragraph, width, subsequent_indent=indent, break_on_hyphens=False) or [""]
    return out


def shorten(text: str, width: int = WIDTH) -> str:
    """One line of at most ``width`` characters."""
    text = str(text)
    indent = text[: len(text) - len(text.lstrip(" "))]
    text = indent + " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


# requests' errors repeat the whole connection pool's state; the cause is what a user needs
_CAUSES = (
    (r"Connection refused|ConnectionRefusedError|Errno 111", "connection refused"),
    (r"Name or service not known|nodename nor servname|getaddrinfo failed|Temporary failure in name "
     r"resolution|NameResolutionError|Failed to resolve", "host name not found"),
    (r"timed out|Timeout", "timed out"),
    (r"CERTIFICATE_VERIFY_FAILED|certificate verify failed|SSLError", "TLS certificate refused"),
    (r"Connection reset|RemoteDisconnected|Connection aborted", "connection dropped"),
    (r"Network is unreachable|No route to host", "network unreachable"),
)  # fmt: skip


def short_reason(text: str) -> str:
    """A transport failure's cause in a few words, without requests' connection-pool dump.

    Example:
        >>> short_reason("ConnectionError: HTTPConnectionPool(host='127.0.0.1', port=9): Max retries "
        ...              "exceeded with url: /api/v1.1/x (Caused by NewConnectionError(...: [Errno 111] "
        ...              "Connection refused'))")
        'connection refused'
    """
    for pattern, cause in _CAUSES:
        if re.search(pattern, text):
            return cause
    if re.search(r"ConnectionPool|ConnectionError|Max retries", text):
        return "no connection"
    return shorten(text, 60)


_CLI_TERMS = (
    (r"fields=\{'[^']*': '(\w+)'\}", r"--map COLUMN=\1"),
    (r"\bmatch_field='(\w+)'", r"--match-field \1"),
    (r"\bmatch_field\b", "--match-field"),
    (r"\bmatching='(\w+)'", r"--matching \1"),
    (r"Subscription\('(\w+)', '\w+', \d+(?:, [^)]*)?\)", r"--subscribe \1=COLUMN:RESOURCE_ID"),
    (r"client\.resume\('([^']+)'(?:, plan=plan)?\)", r"`toolkit status \1`"),
    (r"client\.launch\(plan, force=True\)", "`--force`"),
    (r"Launch\.resend_unknown\(\)", "`toolkit resume LABEL --resend-unknown`"),
    (r"plan with a smaller max_bytes= or max_rows=", "use a smaller --max-bytes or --max-rows"),
    (r"lower rate_limit= or concurrency=", "lower --rate-limit or --concurrency"),
    (r"\(?\b\w+=\.\.\. / (--[\w-]+)\)?", r"\1"),  # read_segment's "(encoding=... / --encoding)"
)


def cli_terms(message: str) -> str:
    """A message's Python advice (``fields={...}``, ``client.resume(...)``) in the CLI's terms."""
    for pattern, replacement in _CLI_TERMS:
        message = re.sub(pattern, replacement, message)
    return message


def exit_code(exc: BaseException) -> int:
    """Say what went wrong (one message, CLI terms, no traceback) and return the exit code."""
    if isinstance(exc, SegmentFileError):
        warn(cli_terms(str(exc)))
        return EXIT_INPUT
    if isinstance(exc, (AlreadyLaunched, Refused)):
        warn(cli_terms(str(exc)))
        return EXIT_REFUSED
    if isinstance(exc, AuthError):
        warn(f"the platform refused the token ({exc.code}): check TOOLKIT_API_TOKEN for this platform")
        return EXIT_PLATFORM
    if isinstance(exc, TransportError):
        where = exc.request.url if exc.request is not None else "the platform"
        host = re.sub(r"^(\w+://[^/]+).*$", r"\1", where)
        warn(f"could not reach {host} ({short_reason(str(exc))}); check TOOLKIT_API_URL, the network, "
             "and that the platform is up")  # fmt: skip
        return EXIT_PLATFORM
    if isinstance(exc, ApiError):
        warn(cli_terms(shorten(str(exc), 300)))
        return EXIT_PLATFORM
    if isinstance(exc, (InvalidArgumentError, ToolkitError)):
        warn(cli_terms(str(exc)))
        return EXIT_USAGE
    raise exc


def guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """The toolkit's errors become one message and a documented exit code (never a traceback)."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        with quiet_logging(verbose=getattr(args, "verbose", False)):
            try:
                return int(func(args))
            except ToolkitError as exc:
                code = exit_code(exc)
                if getattr(args, "json", False):
                    say(json.dumps({"error": cli_terms(str(exc)), "exit_code": code}, ensure_ascii=False))
                return code

    return run


class _OncePerKind(logging.Handler):
    """The toolkit's warnings on stderr, once per kind (retries of one failure are one line)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if re.search(r"ConnectionPool|Max retries", message):
            # requests' connection-pool dump (repeated by every retry): its cause in a few words
            cause = short_reason(message)
            message = re.sub(
                r"\(?\w+Error: \w*ConnectionPool\(.*?(?=; retrying|$)", cause, message, flags=re.S
            )
        message = cli_terms(message)
        kind = re.sub(r"[0-9.]+", "#", message)[:60]
        if kind in self.seen:
            return
        self.seen.add(kind)
        warn(shorten(message, 200))


@contextlib.contextmanager
def quiet_logging(verbose: bool = False) -> Iterator[None]:
    """While a command runs, the toolkit's log records go to stderr once per kind (all of them,
    at INFO, with ``verbose``); the logger is put back as it was afterwards."""
    logger = logging.getLogger("toolkit")
    saved = (logger.level, logger.propagate)
    handler: logging.Handler
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("toolkit: %(name)s: %(message)s"))
        logger.setLevel(logging.INFO)
    else:
        handler = _OncePerKind()
        logger.setLevel(logging.WARNING)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]], *, flexible: str) -> list[str]:
    """Rows as aligned text lines within :data:`WIDTH`; the ``flexible`` column is cut to fit.

    ``columns`` are ``(key, header)``; numbers are right-aligned with thousands separators.

    Example:
        >>> for line in table([{"a": "x", "n": 1200}], [("a", "name"), ("n", "count")], flexible="a"):
        ...     print(line)
        name  count
        x     1,200
    """
    shown = [
        {key: (f"{row[key]:,}" if isinstance(row[key], int) else str(row[key] or "")) for key, _ in columns}
        for row in rows
    ]
    widths = {key: max([len(header)] + [len(r[key]) for r in shown]) for key, header in columns}
    total = sum(widths.values()) + 2 * (len(columns) - 1)
    if total > WIDTH:
        widths[flexible] = max(8, widths[flexible] - (total - WIDTH))
    numeric = {key for key, _ in columns if rows and all(isinstance(r[key], int) for r in rows)}

    def line(cells: dict[str, str]) -> str:
        parts = []
        for key, _ in columns:
            text = shorten(cells[key], widths[key]) if len(cells[key]) > widths[key] else cells[key]
            parts.append(text.rjust(widths[key]) if key in numeric else text.ljust(widths[key]))
        return "  ".join(parts).rstrip()

    return [line({key: header for key, header in columns}), *(line(r) for r in shown)]
