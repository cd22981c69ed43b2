"""``toolkit launch | status | history | resume``: launches from the command line.

``launch`` reads a segment file (CSV/TSV in any common encoding, Excel, Parquet, JSON
lines: see :func:`toolkit.read_segment`), plans it and sends it with the client configured
by ``TOOLKIT_API_URL`` / ``TOOLKIT_API_TOKEN`` (journal: ``TOOLKIT_JOURNAL`` or
``--journal``), then follows the tasks. ``--dry-run`` plans only (no network, no journal).

All four commands report a launch with the same counts (rows, rejected, sent, imported,
failed, unknown, pending), counted by :func:`toolkit.cli.report.launch_counts`; ``--json``
prints the same facts as JSON. Exit codes: see :mod:`toolkit.cli`.

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
from pathlib import Path
from typing import Any

from toolkit.cli import recall
from toolkit.cli.output import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    EXIT_PLATFORM,
    Refused,
    guarded,
    say,
    short_reason,
    warn,
)
from toolkit.cli.report import LaunchCounts, history_lines, launch_counts, print_lines, report_lines
from toolkit.cli.segment import (
    add_plan_arguments,
    add_segment_arguments,
    make_plan,
    plan_lines,
    read_file,
    segment_facts,
    write_rejected,
)
from toolkit.errors import AlreadyLaunched, InvalidArgumentError, ToolkitError
from toolkit.send.target import target_label

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``launch``, ``status``, ``history`` and ``resume`` sub-commands."""
    p = subparsers.add_parser(
        "launch",
        help="plan a segment file and send it to a trigger campaign",
        description="Plan SEGMENT (CSV/TSV in any encoding, Excel, Parquet, JSON lines) and send it, "
        "each batch exactly once; then follow its tasks.",
    )
    p.add_argument("segment", help="the segment file: .csv .tsv .txt .xlsx .xls .parquet .jsonl")
    add_segment_arguments(p)
    add_plan_arguments(p)
    p.add_argument("--label", help="a name for this launch (for status, resume, history); must be new")
    p.add_argument("--dry-run", action="store_true", help="plan and show the first profiles; send nothing")
    p.add_argument("--force", action="store_true", help="send again a plan that was already sent")
    p.add_argument(
        "--no-preflight",
        action="store_true",
        help="skip the check of the trigger, fields and resources in the platform's catalog",
    )
    p.add_argument(
        "--allow-sample",
        action="store_true",
        help="let made-up addresses (example.com, ...) go to a platform that is not the sandbox",
    )
    p.add_argument("--concurrency", type=int, default=4, help="batches sent at once (default 4)")
    p.add_argument("--no-wait", action="store_true", help="return once sent; do not follow the tasks")
    p.add_argument("--results", type=Path, help="write the per-row results to this .csv or .parquet")
    _common(p)
    p.set_defaults(func=cmd_launch)

    s = subparsers.add_parser("status", help="poll a launch once and show where it stands")
    s.add_argument("label", help="the launch's label or id")
    _common(s)
    s.set_defaults(func=cmd_status)

    h = subparsers.add_parser("history", help="list past launches from the journal (no network)")
    h.add_argument("--journal", help="the journal file (default: $TOOLKIT_JOURNAL or the user data folder)")
    h.add_argument("--json", action="store_true", help="print one JSON object per launch")
    h.set_defaults(func=cmd_history)

    r = subparsers.add_parser(
        "resume",
        help="follow a launch to its end; with its file, send what a crashed launch never sent",
        description="Follow launch LABEL until its tasks end. Batches a crashed launch never sent are "
        "sent when its file is at hand: SEGMENT, or the file `toolkit launch` was given.",
    )
    r.add_argument("label", help="the launch's label or id")
    r.add_argument("segment", nargs="?", help="the launch's segment file, if it moved (default: as launched)")
    r.add_argument("--resend-unknown", action="store_true",
                   help="send again the batches whose answer was lost (check the platform first)")  # fmt: skip
    r.add_argument("--concurrency", type=int, default=4, help="batches sent at once (default 4)")
    r.add_argument("--results", type=Path, help="write the per-row results to this .csv or .parquet")
    _common(r)
    r.set_defaults(func=cmd_resume)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--journal", help="the journal file (default: $TOOLKIT_JOURNAL or the user data folder)")
    p.add_argument("--timeout", type=float, help="stop waiting after this many seconds (state is kept)")
    p.add_argument("--rate-limit", type=float, help="at most this many requests per second")
    p.add_argument(
        "--retries", type=int, default=5, help="retries of a request that is safe to retry (default 5)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--verbose", action="store_true", help="log every request and retry")
    p.add_argument("--json", action="store_true", help="print the facts as one JSON object")


def _client(args: argparse.Namespace) -> Any:
    from toolkit.send.client import Client

    kwargs: dict[str, Any] = {"max_retries": args.retries}
    if args.journal:
        kwargs["journal"] = args.journal
    if args.rate_limit:
        kwargs["rate_limit"] = args.rate_limit
    return Client.from_env(**kwargs)


# --- launch -------------------------------------------------------------------------------------
@guarded
def cmd_launch(args: argparse.Namespace) -> int:
    """``toolkit launch FILE``: read, plan, send each batch once, follow, report."""
    segment = read_file(args)
    planned = make_plan(args, segment)
    facts: dict[str, Any] = {"segment": segment_facts(segment), "plan": planned.summary()}
    if not args.json:
        print_lines(plan_lines(planned, segment))
    if args.rejected and planned.n_rejected:
        _tell(args, write_rejected(planned, args.rejected))
        facts["rejected_file"] = str(args.rejected)
    if planned.n_valid == 0:
        raise Refused(
            f"none of the {planned.n_rows:,} rows can be sent (rejected by rule: "
            f"{', '.join(f'{r} {n:,}' for r, n in planned.rejected_by_rule().items())}); nothing was sent"
            + ("" if args.rejected else "; --rejected rejected.csv writes them with their reasons")
        )
    if args.dry_run:
        if args.json:
            say(
                json.dumps(
                    {**facts, "records": planned.records(3), "sent": False}, ensure_ascii=False, default=str
                )
            )
        else:
            say(json.dumps(planned.records(3), indent=2, ensure_ascii=False, default=str))
            say("dry run: nothing sent")
        return EXIT_OK
    with _client(args) as client:
        _check_label(client, planned, args.label, args.force)
        recall.remember(client.journal.path, planned.fingerprint, client.host, args)
        if not args.json:  # where it goes, before anything goes (JSON output carries it as "target")
            say(
                f"sending {planned.n_valid:,} profiles to trigger {planned.trigger.trigger_id} on {target_label(client)}"
            )
        try:
            launch = client.launch(
                planned,
                label=args.label,
                force=args.force,
                concurrency=args.concurrency,
                progress=not args.quiet,
                preflight=not args.no_preflight,
                allow_sample=args.allow_sample,
            )
        except AlreadyLaunched as exc:
            if exc.sender is not None:  # being sent right now by another process: say so as it is
                raise Refused(str(exc)) from None
            raise Refused(_already_sent(exc, planned)) from None
        if not args.no_wait and _reachable(client, launch, args):
            launch.wait(timeout=args.timeout, progress=not args.quiet)
        return _finish(client, launch, args, facts, waited=not args.no_wait)


def _tell(args: argparse.Namespace, line: str) -> None:
    if not args.json:
        say(line)


def _tell_sender(args: argparse.Namespace, launch: Any) -> None:
    """A launch another live process is sending is shown as it stands and changed in nothing."""
    sender = launch.sender
    if sender is not None:
        _tell(args, f"being sent right now by {sender.describe()}: shown as it stands, nothing changed")


def _check_label(client: Any, planned: Any, label: str | None, force: bool) -> None:
    """A given label names this launch only: a clash with another plan's launch is refused (exit 3)."""
    journal = client.journal
    if label:
        try:
            named = journal.find(label)
        except InvalidArgumentError:
            named = None
        if named is not None and (named.fingerprint, named.host) != (planned.fingerprint, client.host):
            raise Refused(
                f"--label {label!r} already names launch {named.launch_id} (trigger {named.trigger_id} on "
                f"{named.host}, {named.created[:16].replace('T', ' ')} UTC), a different plan: choose another "
                f"--label; `toolkit status {label}` shows that launch"
            )
    previous = journal.find_by_fingerprint(planned.fingerprint, planned.trigger.trigger_id, client.host)
    if previous is None or force or not label or previous.label == label:
        return
    batches = journal.batches(previous.launch_id)
    if planned.batches and all(b.was_sent for b in batches):
        return  # sent in full: the client refuses it, naming the earlier launch
    done = sum(b.was_sent for b in batches)
    raise Refused(
        f"this plan was launched before as {previous.label or previous.launch_id!r} (id {previous.launch_id}; "
        f"{done} of {len(batches)} batches sent) and continuing it keeps that name, not --label {label!r}: "
        f"`toolkit resume {previous.label or previous.launch_id}` sends the rest; --force sends it all again "
        "as a new launch"
    )


def _already_sent(exc: AlreadyLaunched, planned: Any) -> str:
    previous = exc.previous
    name = getattr(previous, "label", None) or getattr(previous, "launch_id", "?")
    when = str(getattr(previous, "created", ""))[:16].replace("T", " ")
    return (
        f"this plan was already sent to trigger {planned.trigger.trigger_id} on "
        f"{getattr(previous, 'host', '?')}: launch {name!r} (id {getattr(previous, 'launch_id', '?')}, "
        f"{when} UTC). Nothing was sent now. `toolkit status {name}` shows where it stands; "
        "--force sends it again on purpose"
    )


def _reachable(client: Any, launch: Any, args: argparse.Namespace) -> bool:
    """Read one sent task's status before following the rest: an unreachable platform or a
    refused token is said once, with its exit code, instead of once per task and retry."""
    record = client.journal.launch(launch.launch_id)
    fmt = "xml" if record is not None and record.format == "xml" else "json"
    for batch in launch.batches:
        if batch.state == "sent" and batch.task_id:
            client.task_status(batch.task_id, format=fmt)  # TransportError / AuthError: exit 4
            return True
    return True


def _finish(
    client: Any, launch: Any, args: argparse.Namespace, facts: dict[str, Any], *, waited: bool
) -> int:
    """Report the launch (the one count), write its results if asked, and return the exit code."""
    journal = client.journal
    record = journal.launch(launch.launch_id)
    counts = launch_counts(journal, record)
    code = _outcome(counts, waited=waited, timed_out=launch.timed_out)
    unreachable = _never_reached(journal, launch.launch_id)
    if unreachable:
        code = EXIT_PLATFORM
    if args.results:
        facts["results_file"] = str(args.results)
    facts = {**facts, "launch": counts.as_json(), "exit_code": code}
    if args.json:
        if args.results:
            _write_results(launch, args.results, quiet=True)
        say(json.dumps(facts, ensure_ascii=False, default=str))
    else:
        print_lines(report_lines(counts))
        if args.results:
            _write_results(launch, args.results, quiet=False)
    _tell_sender(args, launch)
    if unreachable:
        warn(
            f"could not reach {counts.host} ({unreachable}); nothing was sent. The journal knows it: the same "
            f"command, or `toolkit resume {counts.name}`, sends it once the platform answers"
        )
    elif counts.pending and (launch.timed_out or not waited):
        warn(f"still running: `toolkit resume {counts.name}` follows it to the end")
    if counts.unknown:
        warn(
            f"{counts.unknown:,} rows are unknown (an answer was lost): check the platform, then "
            f"`toolkit resume {counts.name} --resend-unknown` sends them again if needed"
        )
    return code


def _outcome(counts: LaunchCounts, *, waited: bool, timed_out: bool) -> int:
    if counts.failed or counts.unknown:
        return EXIT_INCOMPLETE
    if counts.pending and waited and (timed_out or counts.never_sent):
        return EXIT_INCOMPLETE
    return EXIT_OK


def _never_reached(journal: Any, launch_id: str) -> str | None:
    """The cause, when no batch of the launch reached the platform for lack of a connection."""
    batches = journal.batches(launch_id)
    if not batches or any(b.task_id or b.state != "failed" or b.error_code is not None for b in batches):
        return None
    return short_reason(batches[0].error or "")


def _write_results(launch: Any, path: Path, *, quiet: bool) -> None:
    import polars as pl

    frame = launch.results(join=launch.plan is not None)
    frame = frame if isinstance(frame, pl.DataFrame) else pl.from_pandas(frame)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame.write_parquet(path)
        else:
            nested = [c for c, t in frame.schema.items() if t.is_nested()]
            frame.with_columns(pl.col(c).map_elements(str, return_dtype=pl.String) for c in nested).write_csv(
                path
            )
    except OSError as exc:
        raise InvalidArgumentError(f"--results {path}: cannot write it ({exc.strerror})") from None
    if not quiet:
        joined = (
            "" if launch.plan is not None else " (without your columns: pass the launch's file to add them)"
        )
        say(f"{frame.height:,} rows of results written to {path}{joined}")


# --- status, resume, history ---------------------------------------------------------------------
def _find(client: Any, label: str) -> Any:
    record = client.journal.find(label)  # unknown: a usage error naming the known labels
    if record.host != client.host:
        raise InvalidArgumentError(
            f"launch {record.label or record.launch_id!r} was sent to {record.host}, but TOOLKIT_API_URL points "
            f"at {client.host}: set it to {record.host} to follow that launch"
        )
    return record


@guarded
def cmd_status(args: argparse.Namespace) -> int:
    """``toolkit status LABEL``: one round of polls, then the launch's counts."""
    with _client(args) as client:
        record = _find(client, args.label)
        launch = client.resume(record.launch_id)
        _reachable(client, launch, args)
        launch.wait(timeout=0, progress=False)
        counts = launch_counts(client.journal, client.journal.launch(record.launch_id))
        _tell_sender(args, launch)
        code = EXIT_INCOMPLETE if counts.failed or counts.unknown else EXIT_OK
        if args.json:
            say(json.dumps({"launch": counts.as_json(), "exit_code": code}, ensure_ascii=False))
        else:
            print_lines(report_lines(counts))
        return code


@guarded
def cmd_resume(args: argparse.Namespace) -> int:
    """``toolkit resume LABEL [FILE]``: send what was never sent (given the file), follow to the end."""
    with _client(args) as client:
        journal = client.journal
        record = _find(client, args.label)
        counts = launch_counts(journal, record)
        stored = recall.recall(journal.path, record.fingerprint, record.host)
        wants_plan = bool(args.segment or counts.never_sent or args.resend_unknown or args.results)
        planned = _replan(args, record, stored) if wants_plan else None
        facts: dict[str, Any] = {}
        if planned is not None and counts.never_sent:
            # the same plan: the client finds its launch and sends only what was never sent
            launch = client.launch(
                planned,
                label=record.label,
                concurrency=args.concurrency,
                progress=not args.quiet,
                preflight=False,  # the first launch of this plan passed it; resume sends the rest
            )
            facts["sent_now"] = counts.never_sent
        else:
            launch = client.resume(record.launch_id, plan=planned)
            if counts.never_sent:
                warn(_how_to_send_the_rest(record, counts, stored))
        if args.resend_unknown:
            if planned is None:
                raise InvalidArgumentError(
                    f"--resend-unknown needs the launch's file: `toolkit resume {counts.name} FILE --resend-unknown`"
                )
            report = launch.resend_unknown(concurrency=args.concurrency, progress=not args.quiet)
            facts["resent"] = list(report.resent)
            facts["left_out"] = [{"batch": b.index, "reason": b.reason} for b in report.left_out]
            _tell(args, f"resend unknown: {report}")
        if _reachable(client, launch, args):
            launch.wait(timeout=args.timeout, progress=not args.quiet)
        return _finish(client, launch, args, facts, waited=True)


def _replan(args: argparse.Namespace, record: Any, stored: dict[str, Any] | None) -> Any:
    """The launch's plan again, from its file (given, or as launched) and its stored options."""
    if stored is None:
        if args.segment:
            raise InvalidArgumentError(
                f"launch {record.label or record.launch_id!r} was not started by `toolkit launch`, so its options "
                "are not known here: run the `toolkit launch FILE ...` that plans it (it sends only what was "
                "never sent)"
            )
        return None
    options = recall.as_args(stored, args.segment)
    try:
        segment = read_file(options)
    except ToolkitError as exc:
        if args.segment:
            raise
        warn(f"the launch's file cannot be planned again ({exc}); following it from the journal alone")
        return None
    planned = make_plan(options, segment)
    if planned.fingerprint != record.fingerprint:
        message = (
            f"{segment.name} does not plan to the batches of launch {record.label or record.launch_id!r} (the file "
            "or the options changed since); nothing of it is sent"
        )
        if args.segment:
            raise Refused(message)
        warn(message + "; following the launch from the journal alone")
        return None
    return planned


def _how_to_send_the_rest(record: Any, counts: LaunchCounts, stored: dict[str, Any] | None) -> str:
    what = f"{counts.never_sent:,} rows were never sent"
    if stored is None:
        return f"{what}: run again the launch that planned them (it sends only what was never sent)"
    if not Path(stored["segment"]).exists():
        return f"{what}: `toolkit resume {counts.name} PATH-TO-{Path(stored['segment']).name}` sends them"
    return f"{what}: `{recall.command(stored, label=record.label)}` sends them"


@guarded
def cmd_history(args: argparse.Namespace) -> int:
    """``toolkit history``: the journal's launches, newest first, counted like ``status`` (no network)."""
    from toolkit.send.journal import Journal

    with Journal.open(args.journal) as journal:
        records = [journal.launch(h["launch_id"]) for h in journal.history()]
        all_counts = [launch_counts(journal, r) for r in records if r is not None]
        if args.json:
            for counts in all_counts:
                say(json.dumps(counts.as_json(), ensure_ascii=False))
            return EXIT_OK
        if not all_counts:
            say(f"no launches in {journal.path}")
            return EXIT_OK
        print_lines(history_lines(all_counts))
    return EXIT_OK
