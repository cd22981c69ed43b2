"""The plan options of each ``toolkit launch``, kept in the journal file, so that ``toolkit resume``
can plan the same file again (and send the batches a crashed launch never sent), or say
exactly which command will.

Kept: the file's absolute path and the options that shape the plan (encoding, separator,
sheet, text columns, trigger, ``--map``, ``--subscribe``, matching, format, limits, phone
region), keyed by the plan's fingerprint and the platform's host. Never a token, never a row.

Example:
    >>> import argparse, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "journal.sqlite")
    >>> args = argparse.Namespace(segment="s.csv", encoding=None, separator=";", sheet=None, text_columns=None,
    ...     trigger_id=96, maps=["mail=email"], subscribe=None, resource_id=None, matching="email",
    ...     match_field=None, format="json", max_bytes=10_000_000, max_rows=10_000, phone_region="RU")
    >>> remember(path, "f" * 64, "http://h", args)
    >>> stored = recall(path, "f" * 64, "http://h")
    >>> stored["maps"], stored["segment"].endswith("s.csv")
    (['mail=email'], True)
    >>> command(stored, label="spring")  # doctest: +ELLIPSIS
    "toolkit launch .../s.csv --trigger-id 96 --map mail=email --separator ';' --label spring"
"""

from __future__ import annotations

import argparse
import json
import shlex
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["PLAN_OPTIONS", "command", "recall", "remember"]

#: The launch options that decide the plan's bytes (and so its fingerprint).
PLAN_OPTIONS = (
    "segment", "encoding", "separator", "sheet", "text_columns", "trigger_id", "maps", "subscribe",
    "resource_id", "matching", "match_field", "format", "max_bytes", "max_rows", "phone_region",
)  # fmt: skip
_DEFAULTS = {
    "matching": "email",
    "format": "json",
    "max_bytes": 10_000_000,
    "max_rows": 10_000,
    "phone_region": "RU",
}
_TABLE = """CREATE TABLE IF NOT EXISTS cli_launch_commands (
    fingerprint TEXT NOT NULL, host TEXT NOT NULL, options TEXT NOT NULL, created TEXT NOT NULL,
    PRIMARY KEY (fingerprint, host))"""


def _connect(journal_path: str) -> sqlite3.Connection | None:
    if journal_path == ":memory:":
        return None
    connection = sqlite3.connect(journal_path, timeout=30, isolation_level=None)
    connection.execute(_TABLE)
    return connection


def remember(journal_path: str, fingerprint: str, host: str, args: argparse.Namespace) -> None:
    """Keep the launch's plan options (before it sends anything: a crash mid-launch is the point)."""
    options: dict[str, Any] = {name: getattr(args, name, None) for name in PLAN_OPTIONS}
    options["segment"] = str(Path(options["segment"]).expanduser().resolve())
    connection = _connect(journal_path)
    if connection is None:
        return
    with connection:
        connection.execute(
            "INSERT OR REPLACE INTO cli_launch_commands VALUES (?, ?, ?, ?)",
            (fingerprint, host, json.dumps(options), datetime.now(UTC).isoformat(timespec="seconds")),
        )
    connection.close()


def recall(journal_path: str, fingerprint: str, host: str) -> dict[str, Any] | None:
    """The options a launch of this plan was made with, or None (launched from Python, say)."""
    connection = _connect(journal_path)
    if connection is None:
        return None
    with connection:
        row = connection.execute(
            "SELECT options FROM cli_launch_commands WHERE fingerprint = ? AND host = ?", (fingerprint, host)
        ).fetchone()
    connection.close()
    return json.loads(row[0]) if row else None


def command(options: dict[str, Any], *, label: str | None = None, segment: str | None = None) -> str:
    """The ``toolkit launch`` command line that plans the same batches again."""
    parts = ["toolkit", "launch", segment or options["segment"], "--trigger-id", str(options["trigger_id"])]
    parts += [p for item in options.get("maps") or () for p in ("--map", item)]
    parts += [p for item in options.get("subscribe") or () for p in ("--subscribe", item)]
    parts += [p for item in options.get("text_columns") or () for p in ("--text-column", item)]
    for name in ("encoding", "separator", "sheet", "resource_id", "matching", "match_field", "format",
                 "max_bytes", "max_rows", "phone_region"):  # fmt: skip
        value = options.get(name)
        if value is not None and value != _DEFAULTS.get(name):
            parts += [f"--{name.replace('_', '-')}", str(value)]
    if label:
        parts += ["--label", label]
    return shlex.join(parts)


def as_args(options: dict[str, Any], segment: str | None = None) -> argparse.Namespace:
    """The stored options as the namespace ``toolkit.cli.segment`` reads."""
    values = {**_DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    values.setdefault("text_columns", None)
    for name in ("encoding", "separator", "sheet", "subscribe", "resource_id", "match_field", "maps"):
        values.setdefault(name, None)
    if segment is not None:
        values["segment"] = segment
    return argparse.Namespace(**values)
