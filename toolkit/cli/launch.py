"""``toolkit launch | status | history | resume``: launches from the command line.

``launch`` reads a segment (CSV or Parquet), plans it and sends it with the client
configured by ``TOOLKIT_API_URL`` / ``TOOLKIT_API_TOKEN`` (journal: ``TOOLKIT_JOURNAL``
or ``--journal``), then waits for the tasks. ``--dry-run`` plans only (no network).

Exit codes: 0 all sent rows imported; 1 some rows failed, are unknown or still pending;
2 a usage or configuration error, or a journal that cannot be used (damaged, locked,
read-only, disk full); 3 the plan was already launched, or is being sent right now by
another process; 4 the platform refused (token, API error) or could not be reached.

``status`` and ``resume`` of a launch another live process is sending show it as it
stands and change nothing (see :mod:`toolkit.send.lease`).

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(); sub = parser.add_subparsers()
    >>> register(sub)
    >>> args = parser.parse_args(["launch", "s.csv", "--trigger-id", "96", "--map", "mail=email"])
    >>> args.maps, args.matching, args.format
    (['mail=email'], 'email', 'json')
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from toolkit.errors import (
    AlreadyLaunched,
    ApiError,
    ConfigurationError,
    InvalidArgumentError,
    ToolkitError,
    TransportError,
)

__all__ = ["register"]

EXIT_OK, EXIT_INCOMPLETE, EXIT_USAGE, EXIT_ALREADY, EXIT_API = 0, 1, 2, 3, 4


def register(subparsers: Any) -> None:
    """Add the ``launch``, ``status``, ``history`` and ``resume`` sub-commands."""
    p = subparsers.add_parser(
        "launch",
        help="plan a segment file and send it to a trigger campaign",
        description="Plan SEGMENT (.csv or .parquet) and send it, each batch exactly once.",
    )
    p.add_argument("segment", help="the segment file: .csv or .parquet")
    p.add_argument("--trigger-id", type=int, required=True, help="the trigger campaign's id")
    p.add_argument(
        "--map",
        dest="maps",
        action="append",
        required=True,
        metavar="COLUMN=FIELD",
        help="a column and the profile field it fills (repeat), e.g. --map mail=email --map name=_fname",
    )
    p.add_argument("--matching", default="email", help="profile matching mode (default: email)")
    p.add_argument("--match-field", help="the profile field to match on, for --matching custom")
    p.add_argument("--format", choices=("json", "xml"), default="json", help="request format")
    p.add_argument("--label", help="a name for this launch (for status, resume, history)")
    p.add_argument("--dry-run", action="store_true", help="plan and show the batches; send nothing")
    p.add_argument("--force", action="store_true", help="send again a plan that was already sent")
    p.add_argument(
        "--resend-unknown",
        action="store_true",
        help="after checking the platform: send again this plan's batches whose outcome is unknown "
        "(never one another launch delivered; the ones left out are named)",
    )
    _common(p)
    p.add_argument("--concurrency", type=int, default=4, help="batches sent at once (default 4)")
    p.add_argument("--no-wait", action="store_true", help="return once sent; do not follow the tasks")
    p.add_argument("--results", type=Path, help="write the per-row results to this .csv or .parquet")
    p.set_defaults(func=cmd_launch)

    s = subparsers.add_parser("status", help="poll a launch once and show where it stands")
    s.add_argument("label", help="the launch's label or id")
    _common(s)
    s.set_defaults(func=cmd_status)

    h = subparsers.add_parser("history", help="list past launches from the journal")
    h.add_argument("--journal", help="the journal file (default: $TOOLKIT_JOURNAL or the user data folder)")
    h.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    h.set_defaults(func=cmd_history)

    r = subparsers.add_parser("resume", help="follow a launch to its end, from the journal")
    r.add_argument("label", help="the launch's label or id")
    _common(r)
    r.add_argument("--results", type=Path, help="write the per-row results to this .csv or .parquet")
    r.set_defaults(func=cmd_resume)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--journal", help="the journal file (default: $TOOLKIT_JOURNAL or the user data folder)")
    p.add_argument("--timeout", type=float, help="stop waiting after this many seconds (state is kept)")
    p.add_argument("--rate-limit", type=float, help="at most this many requests per second")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _err(message: str) -> None:
    print(f"toolkit: {message}", file=sys.stderr)


def _client(args: argparse.Namespace) -> Any:
    from toolkit.send.client import Client

    kwargs: dict[str, Any] = {}
    if args.journal:
        kwargs["journal"] = args.journal
    if args.rate_limit:
        kwargs["rate_limit"] = args.rate_limit
    return Client.from_env(**kwargs)


def _read(path: str) -> Any:
    import polars as pl

    file = Path(path)
    if not file.exists():
        raise InvalidArgumentError(f"segment file {path!r} not found")
    if file.suffix.lower() == ".csv":
        # every column as text: an analyst's CSV is read as written (leading zeros, ids)
        return pl.read_csv(file, infer_schema=False)
    if file.suffix.lower() in (".parquet", ".pq"):
        return pl.read_parquet(file)
    raise InvalidArgumentError(f"segment file {path!r}: expected a .csv or .parquet file")


def _mapping(args: argparse.Namespace) -> Any:
    from toolkit.core.mapping import Mapping

    fields: dict[str, str] = {}
    for item in args.maps:
        column, sep, field = item.partition("=")
        if not sep or not column or not field:
            raise InvalidArgumentError(f"--map {item!r}: expected COLUMN=FIELD, e.g. --map mail=email")
        fields[column] = field
    return Mapping(fields, matching=args.matching, match_field=args.match_field)


def _write_results(launch: Any, path: Path) -> None:
    import polars as pl

    frame = launch.results()
    frame = frame if isinstance(frame, pl.DataFrame) else pl.from_pandas(frame)
    if path.suffix.lower() == ".parquet":
        frame.write_parquet(path)
    else:
        frame.write_csv(path)
    print(f"results written to {path}")


def _report(launch: Any) -> int:
    summary = launch.summary()
    print(repr(launch))
    sender = launch.sender
    if sender is not None:  # read-only here: its batches in flight are being sent right now
        print(f"being sent right now by {sender.describe()}: shown as it stands, nothing changed")
    print(json.dumps(summary, indent=2, default=str))
    if launch.timed_out:
        who = launch.label or launch.launch_id
        print(f"still running: `toolkit resume {who}` follows it later")
    return EXIT_OK if not (summary["failed"] or summary["unknown"] or summary["pending"]) else EXIT_INCOMPLETE


def _guard(func: Any) -> Any:
    """Turn the toolkit's errors into a message and an exit code (no traceback for users)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except AlreadyLaunched as exc:
            _err(str(exc))
            return EXIT_ALREADY
        except (ConfigurationError, InvalidArgumentError) as exc:
            _err(str(exc))
            return EXIT_USAGE
        except (ApiError, TransportError) as exc:
            _err(str(exc))
            return EXIT_API
        except ToolkitError as exc:
            _err(str(exc))
            return EXIT_USAGE

    run.__name__ = func.__name__
    run.__doc__ = func.__doc__
    return run


@_guard
def cmd_launch(args: argparse.Namespace) -> int:
    """``toolkit launch``: plan, send, wait, report."""
    from toolkit.core.mapping import Trigger
    from toolkit.core.plan import plan as make_plan

    segment = _read(args.segment)
    planned = make_plan(segment, _mapping(args), Trigger(args.trigger_id), format=args.format)
    print(repr(planned))
    if planned.n_rejected:
        print(f"rejected by rule: {planned.rejected_by_rule()}")
    if args.dry_run:
        print(json.dumps(planned.records(3), indent=2, ensure_ascii=False, default=str))
        print("dry run: nothing sent")
        return EXIT_OK
    with _client(args) as client:
        try:
            launch = client.launch(
                planned,
                label=args.label,
                force=args.force,
                concurrency=args.concurrency,
                progress=not args.quiet,
            )
        except AlreadyLaunched as exc:
            previous = exc.previous
            if not (args.resend_unknown and getattr(previous, "fingerprint", None) == planned.fingerprint):
                raise
            launch = client.resume(previous.launch_id, plan=planned)  # type: ignore[union-attr]
        if args.resend_unknown:
            report = launch.resend_unknown(concurrency=args.concurrency, progress=not args.quiet)
            print(f"resend unknown: {report}")
        if not args.no_wait:
            launch.wait(timeout=args.timeout, progress=not args.quiet)
        return _finish(launch, args)


def _finish(launch: Any, args: argparse.Namespace) -> int:
    """Print the launch's report, write its results if asked, and return the exit code."""
    code = _report(launch)
    if args.results:
        _write_results(launch, args.results)
    return code


@_guard
def cmd_status(args: argparse.Namespace) -> int:
    """``toolkit status LABEL``: one round of polls, then the launch's state."""
    with _client(args) as client:
        launch = client.resume(args.label)
        launch.wait(timeout=0, progress=False)
        launch.timed_out = False
        return _report(launch)


@_guard
def cmd_resume(args: argparse.Namespace) -> int:
    """``toolkit resume LABEL``: follow a launch from the journal until it is done."""
    with _client(args) as client:
        launch = client.resume(args.label)
        launch.wait(timeout=args.timeout, progress=not args.quiet)
        return _finish(launch, args)


@_guard
def cmd_history(args: argparse.Namespace) -> int:
    """``toolkit history``: the journal's launches, newest first (no network, no token)."""
    import polars as pl

    from toolkit.send.journal import Journal
    from toolkit.send.launch import history_frame

    with Journal.open(args.journal) as journal:
        frame = history_frame(journal, kind="polars")
        if args.json:
            for row in frame.iter_rows(named=True):
                print(json.dumps(row, default=str))
            return EXIT_OK
        if frame.is_empty():
            print(f"no launches in {journal.path}")
            return EXIT_OK
        shown = frame.select(
            "created", "label", "launch_id", "trigger_id", "host", "rows", "batches", "completed", "sent",
            "unknown", "failed", "imported_rows", "failed_rows",
        ).with_columns(pl.col("created").dt.strftime("%Y-%m-%d %H:%M:%S"))  # fmt: skip
        with pl.Config(tbl_rows=50, tbl_cols=20, tbl_width_chars=200, tbl_hide_dataframe_shape=True):
            print(shown)
    return EXIT_OK
