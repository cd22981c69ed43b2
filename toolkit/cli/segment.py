"""The segment file and the plan options, as ``toolkit plan`` and ``toolkit launch`` take them.

A file is read only through :func:`toolkit.read_segment` (any encoding, separator, Excel
sheet); ``--map``, ``--subscribe`` and the matching options become a :class:`toolkit.Mapping`,
checked against the file's columns first so that every mistake is said in the CLI's terms.

Example:
    >>> import argparse
    >>> p = argparse.ArgumentParser(); add_plan_arguments(p, trigger_default=96); add_segment_arguments(p)
    >>> args = p.parse_args(["--map", "mail=email", "--subscribe", "sms=phone:20", "--sheet", "2"])
    >>> args.maps, args.subscribe, args.sheet
    (['mail=email'], ['sms=phone:20'], 2)
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import polars as pl

from toolkit.cli.output import WIDTH, cli_terms, shorten, warn
from toolkit.core.contract import CHANNELS, SYSTEM_FIELDS
from toolkit.core.mapping import Mapping, Subscription, Trigger
from toolkit.core.plan import Plan, plan
from toolkit.errors import InvalidArgumentError, SegmentFileError, did_you_mean
from toolkit.io.segments import SegmentFile, load_segment

__all__ = [
    "add_plan_arguments",
    "add_segment_arguments",
    "build_mapping",
    "make_plan",
    "plan_lines",
    "read_file",
    "write_rejected",
]


def _sheet(value: str) -> str | int:
    return int(value) if value.isdigit() else value


def add_segment_arguments(p: argparse.ArgumentParser) -> None:
    """How to read the segment file (all detected when not given)."""
    p.add_argument(
        "--encoding", help="the file's text encoding (default: detected: utf-8, utf-16, cp1251, ...)"
    )
    p.add_argument("--separator", help="the field separator: , ; | or tab (default: detected)")
    p.add_argument(
        "--sheet", type=_sheet, help="the Excel sheet, by name or 1-based number (default: the first)"
    )
    p.add_argument(
        "--text-column",
        dest="text_columns",
        action="append",
        metavar="COLUMN",
        help="keep this column as text whatever it holds (repeat); ids and phones already are",
    )


def add_plan_arguments(p: argparse.ArgumentParser, *, trigger_default: int | None = None) -> None:
    """The mapping, the trigger and the plan's limits."""
    p.add_argument(
        "--trigger-id",
        type=int,
        required=trigger_default is None,
        default=trigger_default,
        help="the trigger campaign's id"
        + ("" if trigger_default is None else f" (default {trigger_default})"),
    )
    p.add_argument(
        "--map",
        dest="maps",
        action="append",
        metavar="COLUMN=FIELD",
        help="a column and the profile field it fills (repeat), e.g. --map mail=email --map name=_fname",
    )
    p.add_argument(
        "--subscribe",
        action="append",
        metavar="CHANNEL=COLUMN[:RESOURCE_ID]",
        help="a subscription per row from COLUMN (repeat), e.g. --subscribe email=mail:21 --subscribe sms=phone:20",
    )
    p.add_argument(
        "--resource-id", type=int, help="the resource for matching, and for --subscribe without one"
    )
    p.add_argument("--matching", default="email", help="profile matching mode (default: email)")
    p.add_argument("--match-field", help="the profile field to match on, for --matching custom")
    p.add_argument("--format", choices=("json", "xml"), default="json", help="request format (default json)")
    p.add_argument(
        "--max-bytes", type=int, default=10_000_000, help="largest request body (default 10,000,000)"
    )
    p.add_argument("--max-rows", type=int, default=10_000, help="most profiles per request (default 10,000)")
    p.add_argument("--phone-region", default="RU", help="region for national phone numbers (default RU)")
    p.add_argument(
        "--rejected",
        type=Path,
        metavar="PATH",
        help="write the rejected rows and why to PATH (.csv or .parquet)",
    )


def read_file(args: argparse.Namespace, path: str | None = None, *, need_rows: bool = True) -> SegmentFile:
    """The segment file, read through :func:`toolkit.read_segment`; an empty one is an input error."""
    source = path or args.segment
    segment = load_segment(
        source,
        encoding=args.encoding,
        separator=args.separator,
        sheet=args.sheet,
        text_columns=args.text_columns,
    )
    if need_rows and segment.frame.height == 0:
        raise SegmentFileError(
            f"{segment.name} has a header ({segment.frame.width} columns) but no rows: nothing to plan or send",
            source=segment.name,
        )
    return segment


def build_mapping(args: argparse.Namespace, columns: list[str], name: str) -> Mapping:
    """``--map``, ``--subscribe`` and the matching options, checked against the file's columns.

    Example:
        >>> args = argparse.Namespace(maps=["mail=email"], subscribe=["sms=tel:20"], resource_id=None,
        ...                           matching="email", match_field=None)
        >>> m = build_mapping(args, ["mail", "tel"], "s.csv")
        >>> m.fields, [(s.channel, s.column, s.resource_id) for s in m.subscriptions]
        ({'mail': 'email'}, [('sms', 'tel', 20)])
        >>> build_mapping(argparse.Namespace(**{**vars(args), "maps": ["mial=email"]}), ["mail", "tel"], "s.csv")
        Traceback (most recent call last):
        ...
        toolkit.errors.InvalidArgumentError: --map mial=email: s.csv has no column 'mial'; did you mean 'mail'? (its columns: mail, tel)
    """
    if not args.maps:
        shown = ", ".join(columns[:8]) + (", ..." if len(columns) > 8 else "")
        raise InvalidArgumentError(
            f"say which columns fill which profile fields: --map COLUMN=FIELD (repeat), e.g. --map "
            f"{_example_column(columns)}=email; {name} has: {shown}"
        )
    fields: dict[str, str] = {}
    hints: list[str] = []
    for item in args.maps:
        column, sep, target = item.rpartition("=")
        if not sep or not column or not target:
            raise InvalidArgumentError(f"--map {item!r}: expected COLUMN=FIELD, e.g. --map mail=email")
        _known_column(f"--map {item}", column, columns, name)
        if target not in SYSTEM_FIELDS and (close := did_you_mean(target, SYSTEM_FIELDS)):
            hint = f"--map {item}: {target!r} is no platform field{close} (a custom field is sent as named)"
            hints.append(hint)
            warn(hint)
        if column in fields:
            raise InvalidArgumentError(
                f"--map {item}: column {column!r} is already mapped to {fields[column]!r}"
            )
        fields[column] = target
    subscriptions = [_subscription(item, args.resource_id, columns, name) for item in args.subscribe or ()]
    try:
        return Mapping(
            fields,
            subscriptions=subscriptions,
            matching=args.matching,
            match_field=args.match_field,
            resource_id=args.resource_id,
        )
    except InvalidArgumentError as exc:
        raise InvalidArgumentError("; ".join([cli_terms(str(exc)), *hints])) from None


def _example_column(columns: list[str]) -> str:
    return next((c for c in columns if "mail" in c.lower()), columns[0] if columns else "COLUMN")


def _known_column(option: str, column: str, columns: list[str], name: str) -> None:
    if column not in columns:
        shown = ", ".join(columns[:10]) + (", ..." if len(columns) > 10 else "")
        raise InvalidArgumentError(
            f"{option}: {name} has no column {column!r}{did_you_mean(column, columns)} (its columns: {shown})"
        )


def _subscription(item: str, resource_id: int | None, columns: list[str], name: str) -> Subscription:
    channel, sep, rest = item.partition("=")
    column, colon, resource = rest.rpartition(":") if ":" in rest else (rest, "", "")
    if not sep or not channel or not column:
        raise InvalidArgumentError(
            f"--subscribe {item!r}: expected CHANNEL=COLUMN[:RESOURCE_ID], e.g. --subscribe sms=phone:20"
        )
    if channel not in CHANNELS:
        raise InvalidArgumentError(
            f"--subscribe {item}: unknown channel {channel!r}{did_you_mean(channel, CHANNELS)} "
            f"(channels: {', '.join(sorted(str(c) for c in CHANNELS))})"
        )
    _known_column(f"--subscribe {item}", column, columns, name)
    if colon:
        if not resource.isdigit() or int(resource) <= 0:
            raise InvalidArgumentError(
                f"--subscribe {item}: the resource id {resource!r} must be a positive number"
            )
        resource_id = int(resource)
    if resource_id is None:
        raise InvalidArgumentError(
            f"--subscribe {item}: which resource? e.g. --subscribe {channel}={column}:20, or --resource-id 20"
        )
    return Subscription(channel, column, resource_id)


def make_plan(args: argparse.Namespace, segment: SegmentFile) -> Plan:
    """Plan the segment with the command's options."""
    mapping = build_mapping(args, segment.frame.columns, segment.name)
    try:
        return plan(
            segment.frame,
            mapping,
            Trigger(args.trigger_id),
            format=args.format,
            max_bytes=args.max_bytes,
            max_rows=args.max_rows,
            phone_region=None if str(args.phone_region).lower() == "none" else args.phone_region,
        )
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(cli_terms(str(exc))) from None


def write_rejected(planned: Plan, path: Path) -> str:
    """The rejected rows (position, your columns, rule, reason) as CSV or Parquet, by extension."""
    frame = (
        planned.rejected if isinstance(planned.rejected, pl.DataFrame) else pl.from_pandas(planned.rejected)
    )
    frame = frame.select("position", *[c for c in frame.columns if c not in ("position", "rule", "reason")],
                         "rule", "reason")  # fmt: skip
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame.write_parquet(path)
        else:
            # lists and other nested values as text: CSV cannot hold them
            nested = [c for c, t in frame.schema.items() if t.is_nested() or t == pl.Object]
            frame.with_columns(
                pl.col(nested).map_elements(str, return_dtype=pl.String) if nested else []
            ).write_csv(path)
    except OSError as exc:
        raise InvalidArgumentError(f"--rejected {path}: cannot write it ({exc.strerror})") from None
    return f"{frame.height:,} rejected rows and their reasons written to {path}"


def plan_lines(planned: Plan, segment: SegmentFile | None = None) -> list[str]:
    """What the plan will send, within the output width."""
    s = planned.summary()
    lines = []
    if segment is not None:
        lines.append(shorten("read " + segment.describe()))
        if segment.kept_as_text:
            kept = ", ".join(f"{c} ({why})" for c, why in segment.kept_as_text.items())
            lines.append(shorten(f"  kept as text: {kept}"))
    lines.append(
        shorten(
            f"plan for trigger {s['trigger_id']} ({s['format']}, matching {s['matching']}): {s['rows']:,} rows, "
            f"{s['valid']:,} valid, {s['rejected']:,} rejected, {s['batches']:,} "
            f"batch{'es' * (s['batches'] != 1)}, {s['bytes']:,} bytes"
        )
    )
    if s["batches"]:
        lines.append(
            shorten(
                f"  largest batch {s['largest_batch_rows']:,} rows, {s['largest_batch_bytes']:,} bytes "
                f"(limits {s['max_rows']:,} rows, {s['max_bytes']:,} bytes)"
            )
        )
    if s["rejected_by_rule"]:
        lines.append(
            shorten(
                "  rejected by rule: " + ", ".join(f"{r} {n:,}" for r, n in s["rejected_by_rule"].items())
            )
        )
    lines += [shorten(f"  note: {note}", WIDTH) for note in s.get("notes", [])]
    return lines


def segment_facts(segment: SegmentFile) -> dict[str, Any]:
    """How the file was read, for ``--json``."""
    return {
        "file": segment.name, "format": segment.format, "encoding": segment.encoding,
        "separator": segment.separator, "sheet": segment.sheet, "rows": segment.frame.height,
        "columns": segment.frame.columns, "kept_as_text": segment.kept_as_text,
    }  # fmt: skip
