"""The launch journal: a local SQLite record of what was sent, so nothing is sent twice.

Every launch, every batch of it and every row it sent is written here *before* and
*after* the request goes out. A re-run notebook cell, a crashed kernel or a killed
process can then tell which batches were never sent (safe to send), which were sent
(never send again: poll them), and which were caught in flight (``unknown``: the
platform may or may not have them; only the user decides to re-send).

What is stored, and what never is:

* launches: id, label, trigger id, API host (scheme, host and port; no credentials,
  no path), creation time, the plan's fingerprint and its summary (counts only);
* batches: index, sha256 of the body, the input row positions, row count, state, task
  id, attempts, times, remote status/progress and result counts;
* sent rows: the sha256 of each row's match key (to answer "was this key sent?");
* row results once a task completes: position, status, profile id, error code, text;
* single sends (``Client.import_and_start``): the sha256 of the body, trigger id, host,
  format, state, times, attempts' outcome (profile id / task id the platform gave, error
  code and a short reason written by the toolkit, never the platform's text).

Never the token, never a request body, never profile data (emails, names, phones).

Batch states::

    planned --> sending --> sent --> completed
                   |          \\--> failed    (the task ran and failed: it was sent)
                   |--> unknown              (the answer was lost after sending)
                   \\--> failed               (refused / never delivered: task_id is NULL)

Single sends have one row per attempt; the latest attempt that is (or may be) sent
decides::

    sending --> sent                     (the platform answered: never send it again)
       |------> unknown                  (the answer was lost: check, then force=True)
       \\------> failed                   (refused / never delivered: safe to send again)

The file is opened in WAL mode so a notebook and a CLI can read it while a launch
writes; each write is one short transaction.

Example:
    >>> j = Journal(":memory:")
    >>> lid = j.create_launch(label="demo", trigger_id=96, host="http://127.0.0.1:8080",
    ...                       fingerprint="f" * 64, format="json", n_rows=2, summary={"rows": 2},
    ...                       batches=[(0, "d" * 64, (0, 1))])
    >>> j.claim(lid, 0); j.mark_sent(lid, 0, "task-1", keys=["a@x.io", "b@x.io"])
    >>> [(b.index, str(b.state), b.task_id, b.attempts) for b in j.batches(lid)]
    [(0, 'sent', 'task-1', 1)]
    >>> j.was_sent("a@x.io", trigger_id=96)
    True
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from toolkit.core.contract import BATCH_SENT_STATES, BatchState, RowStatus
from toolkit.errors import ConfigurationError, InvalidArgumentError, did_you_mean

__all__ = [
    "ENV_JOURNAL",
    "SINGLE_SENT_STATES",
    "BatchRecord",
    "Journal",
    "LaunchRecord",
    "RowResult",
    "SingleRecord",
    "api_host",
    "key_hash",
]

ENV_JOURNAL: Final = "TOOLKIT_JOURNAL"

#: A single send (``Client.import_and_start``) the platform has or may have: never sent again by
#: itself. Single sends use the batch states' words (``sending``, ``sent``, ``unknown``, ``failed``).
SINGLE_SENT_STATES: Final = frozenset({BatchState.SENDING, BatchState.SENT, BatchState.UNKNOWN})


def _sql_in(states: frozenset[BatchState]) -> str:
    """An SQL list of states, e.g. ``('sending', 'sent')``: the vocabulary's own words, never input.

    Example:
        >>> _sql_in(frozenset({BatchState.SENT, BatchState.SENDING}))
        "('sending', 'sent')"
    """
    return "(" + ", ".join(f"'{s.value}'" for s in sorted(states)) + ")"


_SQL_BATCH_SENT = _sql_in(BATCH_SENT_STATES)
_SQL_SINGLE_SENT = _sql_in(SINGLE_SENT_STATES)
_SQL_SENDING_OR_SENT = _sql_in(frozenset({BatchState.SENDING, BatchState.SENT}))

#: ``PRAGMA user_version`` of a journal written by this code (see ``_MIGRATIONS``).
_SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS launches (
    launch_id   TEXT PRIMARY KEY,
    label       TEXT,
    trigger_id  INTEGER,
    host        TEXT NOT NULL,
    created     TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    format      TEXT NOT NULL DEFAULT 'json',
    n_rows      INTEGER NOT NULL DEFAULT 0,
    summary     TEXT NOT NULL DEFAULT '{}',
    forced      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS launches_identity ON launches (fingerprint, trigger_id, host);
CREATE INDEX IF NOT EXISTS launches_label ON launches (label);
CREATE TABLE IF NOT EXISTS batches (
    launch_id   TEXT NOT NULL REFERENCES launches (launch_id),
    batch_index INTEGER NOT NULL,
    digest      TEXT NOT NULL,
    rows        TEXT NOT NULL,
    n_rows      INTEGER NOT NULL,
    state       TEXT NOT NULL DEFAULT 'planned',
    task_id     TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created     TEXT NOT NULL,
    sent_at     TEXT,
    finished_at TEXT,
    status      TEXT,
    progress    REAL,
    n_imported  INTEGER,
    n_failed    INTEGER,
    error_code  INTEGER,
    error       TEXT,
    origin      TEXT,
    PRIMARY KEY (launch_id, batch_index)
);
CREATE INDEX IF NOT EXISTS batches_digest ON batches (digest);
CREATE TABLE IF NOT EXISTS sent_rows (
    launch_id   TEXT NOT NULL,
    batch_index INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    key_sha256  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sent_rows_key ON sent_rows (key_sha256);
CREATE TABLE IF NOT EXISTS row_results (
    launch_id   TEXT NOT NULL,
    batch_index INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    status      TEXT NOT NULL,
    profile_id  TEXT,
    error_code  INTEGER,
    error_text  TEXT,
    PRIMARY KEY (launch_id, position)
);
"""
#: Schema changes by version, applied in order to files of a lower ``user_version``. Each is
#: idempotent (``IF NOT EXISTS``): two processes opening an old file at once both may run it.
_MIGRATIONS: Final[tuple[tuple[int, str], ...]] = (
    (
        2,
        """
CREATE TABLE IF NOT EXISTS single_sends (
    send_id     TEXT PRIMARY KEY,
    host        TEXT NOT NULL,
    trigger_id  INTEGER,
    digest      TEXT NOT NULL,
    format      TEXT NOT NULL DEFAULT 'json',
    state       TEXT NOT NULL DEFAULT 'sending',
    forced      INTEGER NOT NULL DEFAULT 0,
    sent_at     TEXT NOT NULL,
    finished_at TEXT,
    profile_id  TEXT,
    task_id     TEXT,
    error_code  INTEGER,
    error       TEXT
);
CREATE INDEX IF NOT EXISTS single_sends_identity ON single_sends (digest, trigger_id, host);
""",
    ),
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def key_hash(key: str) -> str:
    """The sha256 hex of a match key: how the journal remembers a row without its data.

    Example:
        >>> key_hash("a@x.io")[:16]
        'aa8a6b1226018606'
    """
    return hashlib.sha256(str(key).encode("utf-8")).hexdigest()


def api_host(url: str) -> str:
    """``scheme://host[:port]`` of a URL: credentials, path and query dropped.

    The journal keys idempotency on the host, so the same plan sent to the sandbox and
    to production are two different launches.

    Example:
        >>> api_host("https://user:secret@API.example.com:8443/api/v1.1/?token=x")
        'https://api.example.com:8443'
        >>> api_host("http://127.0.0.1:5000")
        'http://127.0.0.1:5000'
    """
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        raise ConfigurationError(f"API URL {url!r} has no scheme or host; expected e.g. https://host:port")
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme.lower()}://{host}{port}"


@dataclass(frozen=True)
class LaunchRecord:
    """One launch as the journal knows it."""

    launch_id: str
    label: str | None
    trigger_id: int | None
    host: str
    created: str
    fingerprint: str
    format: str
    n_rows: int
    summary: dict[str, Any] = field(repr=False)
    forced: bool = False


@dataclass(frozen=True)
class BatchRecord:
    """One batch of a launch: its identity (digest, rows) and where it stands."""

    launch_id: str
    index: int
    digest: str
    rows: tuple[int, ...] = field(repr=False)
    n_rows: int
    state: BatchState
    task_id: str | None
    attempts: int
    created: str
    sent_at: str | None
    finished_at: str | None
    status: str | None
    progress: float | None
    n_imported: int | None
    n_failed: int | None
    error_code: int | None
    error: str | None
    #: launch id this batch's task was first sent in, when it was sent by another launch
    origin: str | None

    @property
    def was_sent(self) -> bool:
        """True when the platform has or may have this batch (never re-send it by itself)."""
        return self.state in BATCH_SENT_STATES or (
            self.state == BatchState.FAILED and self.task_id is not None
        )

    @property
    def finished(self) -> bool:
        """True when its task reached an end (or it was refused): nothing more to poll."""
        return self.state in (BatchState.COMPLETED, BatchState.FAILED)


@dataclass(frozen=True)
class RowResult:
    """One input row's outcome after its task completed (no profile data)."""

    position: int
    batch: int
    status: RowStatus
    profile_id: str | None = None
    error_code: int | None = None
    error_text: str | None = None


@dataclass(frozen=True)
class SingleRecord:
    """One attempt of a single send (``Client.import_and_start``): identity and outcome only.

    ``state`` is ``sending`` (in flight, or its process stopped), ``sent``, ``unknown`` (the
    answer was lost) or ``failed`` (refused or never delivered: it may be sent again).
    """

    send_id: str
    host: str
    trigger_id: int | None
    digest: str
    format: str
    state: BatchState
    forced: bool
    sent_at: str
    finished_at: str | None
    profile_id: str | None
    task_id: str | None
    error_code: int | None
    error: str | None

    @property
    def was_sent(self) -> bool:
        """True when the platform has or may have this body (never send it again by itself)."""
        return self.state in SINGLE_SENT_STATES


def _state(text: str) -> BatchState:
    """A state word read from the file, as the vocabulary's member.

    Example:
        >>> _state("sent")
        <BatchState.SENT: 'sent'>
        >>> _state("leased")
        Traceback (most recent call last):
        ...
        toolkit.errors.ConfigurationError: the journal holds a batch state 'leased' this toolkit does not know: ...
    """
    try:
        return BatchState(text)
    except ValueError:
        raise ConfigurationError(
            f"the journal holds a batch state {text!r} this toolkit does not know: it was written by a newer "
            "toolkit; upgrade toolkit (pip install -U toolkit) to read it, or point TOOLKIT_JOURNAL at another file"
        ) from None


def _single(row: sqlite3.Row) -> SingleRecord:
    return SingleRecord(
        send_id=row["send_id"],
        host=row["host"],
        trigger_id=row["trigger_id"],
        digest=row["digest"],
        format=row["format"],
        state=_state(row["state"]),
        forced=bool(row["forced"]),
        sent_at=row["sent_at"],
        finished_at=row["finished_at"],
        profile_id=row["profile_id"],
        task_id=row["task_id"],
        error_code=row["error_code"],
        error=row["error"],
    )


def _batch(row: sqlite3.Row) -> BatchRecord:
    return BatchRecord(
        launch_id=row["launch_id"],
        index=row["batch_index"],
        digest=row["digest"],
        rows=tuple(json.loads(row["rows"])),
        n_rows=row["n_rows"],
        state=_state(row["state"]),
        task_id=row["task_id"],
        attempts=row["attempts"],
        created=row["created"],
        sent_at=row["sent_at"],
        finished_at=row["finished_at"],
        status=row["status"],
        progress=row["progress"],
        n_imported=row["n_imported"],
        n_failed=row["n_failed"],
        error_code=row["error_code"],
        error=row["error"],
        origin=row["origin"],
    )


def _launch(row: sqlite3.Row) -> LaunchRecord:
    return LaunchRecord(
        launch_id=row["launch_id"],
        label=row["label"],
        trigger_id=row["trigger_id"],
        host=row["host"],
        created=row["created"],
        fingerprint=row["fingerprint"],
        format=row["format"],
        n_rows=row["n_rows"],
        summary=json.loads(row["summary"] or "{}"),
        forced=bool(row["forced"]),
    )


class Journal:
    """The SQLite journal of launches, batches and sent rows (see the module docs).

    ``path`` is a file path or ``":memory:"``. One connection is shared by the threads
    of a launch, serialized by a lock; other processes coordinate through SQLite's own
    locking (WAL, ``busy_timeout``).

    Example:
        >>> Journal(":memory:").history()
        []
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.path = str(Path(self.path).expanduser())
        self._lock = threading.RLock()
        # check_same_thread=False: the launch's worker threads share the connection;
        # the lock above serializes them. isolation_level=None: explicit transactions.
        self._conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        with self._lock:
            self._conn.execute("PRAGMA busy_timeout=30000")
            # Switching a new file to WAL (and creating the schema) can meet another process
            # or thread doing the same at that instant; SQLite does not wait on its busy
            # handler there, so wait here, briefly, a few times.
            for attempt in range(50):
                try:
                    if self.path != ":memory:":
                        self._conn.execute("PRAGMA journal_mode=WAL")
                    self._conn.execute("PRAGMA synchronous=NORMAL")
                    self._conn.executescript(_SCHEMA)
                    self._migrate()
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or attempt == 49:
                        raise
                    time.sleep(0.02 + 0.01 * attempt)

    def _migrate(self) -> None:
        """Bring a file written by an older toolkit up to ``_SCHEMA_VERSION`` (never down:
        a file from a newer toolkit keeps its version)."""
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        for target, ddl in _MIGRATIONS:
            if version < target:
                self._conn.executescript(ddl)
        if version < _SCHEMA_VERSION:
            self._conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    # --- opening -----------------------------------------------------------------------
    @staticmethod
    def default_path() -> Path:
        """``$TOOLKIT_JOURNAL`` if set, else ``journal.sqlite`` in the user's data folder.

        Example:
            >>> Journal.default_path().name
            'journal.sqlite'
        """
        env = os.environ.get(ENV_JOURNAL)
        if env:
            return Path(env).expanduser()
        import platformdirs  # imported late: only needed when no path is given

        return Path(platformdirs.user_data_dir("toolkit")) / "journal.sqlite"

    @classmethod
    def open(cls, journal: Journal | str | os.PathLike[str] | None = None) -> Journal:
        """A Journal from a Journal (returned as is), a path, or ``None`` (the default path).

        Example:
            >>> j = Journal(":memory:"); Journal.open(j) is j
            True
        """
        if isinstance(journal, Journal):
            return journal
        if journal is None:
            return cls(cls.default_path())
        if not isinstance(journal, (str, os.PathLike)):
            raise InvalidArgumentError(
                f"journal= must be a path or a Journal, got {type(journal).__name__}; "
                "pass e.g. journal='launches.sqlite'"
            )
        return cls(journal)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({self.path!r})"

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # --- launches ------------------------------------------------------------------------
    def create_launch(
        self,
        *,
        label: str | None,
        trigger_id: int | None,
        host: str,
        fingerprint: str,
        format: str,
        n_rows: int,
        summary: dict[str, Any],
        batches: Iterable[tuple[int, str, Sequence[int]]],
        forced: bool = False,
        linked: dict[int, BatchRecord] | None = None,
    ) -> str:
        """Record a new launch and its batches (``(index, digest, rows)``), all ``planned``.

        ``linked`` maps a batch index to the earlier batch (same digest, same trigger and
        host) that already carries it: that batch is recorded with the earlier task id and
        state instead of being planned, so it is polled, not sent again.
        """
        launch_id = uuid.uuid4().hex[:12]
        now = _now()
        linked = linked or {}
        with self._tx() as db:
            db.execute(
                "INSERT INTO launches VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    launch_id, label, trigger_id, host, now, fingerprint, format, int(n_rows),
                    json.dumps(summary, default=str), int(forced),
                ),
            )  # fmt: skip
            for index, digest, rows in batches:
                rows_json = json.dumps([int(r) for r in rows])
                prev = linked.get(index)
                if prev is None:
                    db.execute(
                        "INSERT INTO batches (launch_id, batch_index, digest, rows, n_rows, created)"
                        " VALUES (?,?,?,?,?,?)",
                        (launch_id, index, digest, rows_json, len(rows), now),
                    )
                else:
                    state = BatchState.UNKNOWN if prev.state == BatchState.SENDING else prev.state
                    db.execute(
                        "INSERT INTO batches (launch_id, batch_index, digest, rows, n_rows, created, state,"
                        " task_id, sent_at, finished_at, status, progress, n_imported, n_failed,"
                        " error_code, error, origin) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (
                            launch_id, index, digest, rows_json, len(rows), now, state, prev.task_id,
                            prev.sent_at, prev.finished_at, prev.status, prev.progress, prev.n_imported,
                            prev.n_failed, prev.error_code, prev.error, prev.origin or prev.launch_id,
                        ),
                    )  # fmt: skip
        return launch_id

    def launch(self, launch_id: str) -> LaunchRecord | None:
        rows = self._query("SELECT * FROM launches WHERE launch_id = ?", (launch_id,))
        return _launch(rows[0]) if rows else None

    def find(self, label_or_id: str) -> LaunchRecord:
        """The launch with this id, else the latest one with this label.

        Raises ``InvalidArgumentError`` naming the known labels when there is none.
        """
        rec = self.launch(label_or_id)
        if rec is not None:
            return rec
        rows = self._query(
            "SELECT * FROM launches WHERE label = ? ORDER BY created DESC, rowid DESC LIMIT 1", (label_or_id,)
        )
        if rows:
            return _launch(rows[0])
        labels = [r["label"] for r in self._query("SELECT DISTINCT label FROM launches") if r["label"]]
        raise InvalidArgumentError(
            f"no launch labelled or numbered {label_or_id!r} in the journal {self.path}"
            f"{did_you_mean(label_or_id, labels)}; `toolkit history` lists them"
        )

    def find_by_fingerprint(self, fingerprint: str, trigger_id: int | None, host: str) -> LaunchRecord | None:
        """The latest launch of the same plan to the same trigger and host, if any."""
        rows = self._query(
            "SELECT * FROM launches WHERE fingerprint = ? AND trigger_id IS ? AND host = ?"
            " ORDER BY created DESC, rowid DESC LIMIT 1",
            (fingerprint, trigger_id, host),
        )
        return _launch(rows[0]) if rows else None

    def sent_batches(
        self, digests: Iterable[str], trigger_id: int | None, host: str
    ) -> dict[str, BatchRecord]:
        """For each digest, the latest batch with that body already sent (or maybe sent)
        to the same trigger and host, in any launch. Missing digests were never sent."""
        digests = list(dict.fromkeys(digests))
        found: dict[str, BatchRecord] = {}
        for start in range(0, len(digests), 500):  # stay under SQLite's parameter limit
            chunk = digests[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._query(
                f"SELECT b.* FROM batches b JOIN launches l USING (launch_id)"
                f" WHERE b.digest IN ({marks}) AND l.trigger_id IS ? AND l.host = ?"
                f" ORDER BY b.created, b.rowid",
                (*chunk, trigger_id, host),
            )
            for row in rows:
                rec = _batch(row)
                if rec.was_sent:
                    found[rec.digest] = rec  # later rows win: the latest send
        return found

    def batches(self, launch_id: str) -> list[BatchRecord]:
        rows = self._query("SELECT * FROM batches WHERE launch_id = ? ORDER BY batch_index", (launch_id,))
        return [_batch(r) for r in rows]

    def batch(self, launch_id: str, index: int) -> BatchRecord:
        rows = self._query(
            "SELECT * FROM batches WHERE launch_id = ? AND batch_index = ?", (launch_id, int(index))
        )
        if not rows:
            raise InvalidArgumentError(f"launch {launch_id} has no batch {index}")
        return _batch(rows[0])

    # --- batch state transitions ----------------------------------------------------------
    def _set(self, launch_id: str, index: int, **values: Any) -> None:
        cols = ", ".join(f"{k} = ?" for k in values)
        with self._tx() as db:
            db.execute(
                f"UPDATE batches SET {cols} WHERE launch_id = ? AND batch_index = ?",
                (*values.values(), launch_id, int(index)),
            )

    @staticmethod
    def _mark_sending(db: sqlite3.Connection, launch_id: str, index: int) -> None:
        """Written *before* the request goes out: a crash from here on leaves ``sending``,
        which a later launch reads as ``unknown`` (never re-sent by itself)."""
        db.execute(
            "UPDATE batches SET state = ?, attempts = attempts + 1, sent_at = ?, error = NULL,"
            " error_code = NULL WHERE launch_id = ? AND batch_index = ?",
            (BatchState.SENDING, _now(), launch_id, int(index)),
        )

    def claim(
        self, launch_id: str, index: int, *, exclusive: bool = True, resend: bool = False
    ) -> BatchRecord | None:
        """Atomically mark a batch ``sending`` if it may be sent; ``None`` when claimed.

        Otherwise returns the batch record in the way: this batch itself (already sent,
        or ``unknown`` without ``resend=True``), or, when ``exclusive``, another launch's
        batch with the same body to the same trigger and host that is (or may be) sent,
        e.g. by a second notebook launching the same plan at the same moment. The check
        and the claim are one ``BEGIN IMMEDIATE`` transaction, so two processes cannot
        both claim the same body.

        Example:
            >>> j = Journal(":memory:")
            >>> a = j.create_launch(label="a", trigger_id=1, host="http://h", fingerprint="f" * 64,
            ...                     format="json", n_rows=1, summary={}, batches=[(0, "d" * 64, (0,))])
            >>> b = j.create_launch(label="b", trigger_id=1, host="http://h", fingerprint="f" * 64,
            ...                     format="json", n_rows=1, summary={}, batches=[(0, "d" * 64, (0,))])
            >>> j.claim(a, 0) is None, j.claim(b, 0).launch_id == a, str(j.claim(a, 0).state)
            (True, True, 'sending')
        """
        with self._tx() as db:
            row = db.execute(
                "SELECT * FROM batches WHERE launch_id = ? AND batch_index = ?", (launch_id, int(index))
            ).fetchone()
            if row is None:
                raise InvalidArgumentError(f"launch {launch_id} has no batch {index}")
            rec = _batch(row)
            if rec.was_sent and not (resend and rec.state == BatchState.UNKNOWN):
                return rec
            if exclusive:
                other = db.execute(
                    "SELECT b.* FROM batches b JOIN launches l USING (launch_id)"
                    " WHERE b.digest = ? AND l.trigger_id IS (SELECT trigger_id FROM launches WHERE launch_id = ?)"
                    " AND l.host = (SELECT host FROM launches WHERE launch_id = ?)"
                    " AND NOT (b.launch_id = ? AND b.batch_index = ?)"
                    f" AND (b.state IN {_SQL_BATCH_SENT} OR (b.state = ? AND b.task_id IS NOT NULL))"
                    " ORDER BY b.rowid DESC LIMIT 1",
                    (rec.digest, launch_id, launch_id, launch_id, int(index), BatchState.FAILED),
                ).fetchone()
                if other is not None:
                    return _batch(other)
            self._mark_sending(db, launch_id, index)
        return None

    def link(self, launch_id: str, index: int, holder: BatchRecord) -> None:
        """Let a batch follow another launch's batch with the same body instead of sending it.

        A holder still ``sending`` has no task id yet: the batch becomes ``unknown`` and
        names the launch to follow.
        """
        if holder.state == BatchState.SENDING:
            self._set(
                launch_id,
                index,
                state=BatchState.UNKNOWN,
                origin=holder.launch_id,
                error=f"the same batch was being sent at the same moment by launch {holder.launch_id}: "
                f"follow it there (client.resume({holder.launch_id!r}))",
            )
            return
        self._set(
            launch_id, index, state=holder.state, task_id=holder.task_id, sent_at=holder.sent_at,
            finished_at=holder.finished_at, status=holder.status, progress=holder.progress,
            n_imported=holder.n_imported, n_failed=holder.n_failed, error_code=holder.error_code,
            error=holder.error, origin=holder.origin or holder.launch_id,
        )  # fmt: skip

    def mark_sent(self, launch_id: str, index: int, task_id: str, keys: Iterable[str] = ()) -> None:
        """The platform accepted the batch: keep its task id and the hashes of its keys."""
        rec = self.batch(launch_id, index)
        with self._tx() as db:
            db.execute(
                "UPDATE batches SET state = ?, task_id = ?, status = NULL, progress = 0"
                " WHERE launch_id = ? AND batch_index = ?",
                (BatchState.SENT, task_id, launch_id, int(index)),
            )
            db.executemany(
                "INSERT INTO sent_rows VALUES (?,?,?,?)",
                [(launch_id, int(index), pos, key_hash(k)) for pos, k in zip(rec.rows, keys, strict=False)],
            )

    def mark_unknown(self, launch_id: str, index: int, error: str) -> None:
        """The request went out but its answer was lost: the platform may have it."""
        self._set(launch_id, index, state=BatchState.UNKNOWN, error=error)

    def mark_failed(self, launch_id: str, index: int, error: str, *, code: int | None = None) -> None:
        """Refused or never delivered (its ``task_id`` stays None: safe to send again later)."""
        self._set(launch_id, index, state=BatchState.FAILED, error=error, error_code=code, finished_at=_now())

    def reset_in_flight(self, launch_id: str) -> list[int]:
        """Batches left ``sending`` by a process that died become ``unknown``; returns them."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT batch_index FROM batches WHERE launch_id = ? AND state = ?",
                (launch_id, BatchState.SENDING),
            ).fetchall()
            db.execute(
                "UPDATE batches SET state = ?, error = 'caught in flight: the process stopped while sending'"
                " WHERE launch_id = ? AND state = ?",
                (BatchState.UNKNOWN, launch_id, BatchState.SENDING),
            )
        return [r[0] for r in rows]

    def update_status(self, launch_id: str, index: int, status: str, progress: float | None) -> None:
        self._set(launch_id, index, status=status, progress=progress)

    def mark_finished(
        self,
        launch_id: str,
        index: int,
        *,
        ok: bool,
        status: str,
        results: Sequence[RowResult] = (),
        error: str | None = None,
    ) -> None:
        """The task reached a terminal state: keep counts and per-row results."""
        n_imported = sum(r.status == RowStatus.IMPORTED for r in results)
        n_failed = sum(r.status == RowStatus.FAILED for r in results)
        with self._tx() as db:
            db.execute(
                "UPDATE batches SET state = ?, status = ?, progress = 100, finished_at = ?, n_imported = ?,"
                " n_failed = ?, error = ? WHERE launch_id = ? AND batch_index = ?",
                (
                    BatchState.COMPLETED if ok else BatchState.FAILED, status, _now(), n_imported, n_failed, error,
                    launch_id, int(index),
                ),
            )  # fmt: skip
            db.executemany(
                "INSERT OR REPLACE INTO row_results VALUES (?,?,?,?,?,?,?)",
                [
                    (launch_id, int(index), r.position, r.status, r.profile_id, r.error_code, r.error_text)
                    for r in results
                ],
            )

    def row_result_columns(self, launch_id: str) -> dict[str, list[Any]]:
        """The row results as columns (``position, row_status, profile_id, row_code,
        row_text``): the fast path for building a results frame (plain tuples, no Row objects)."""
        names = ("position", "row_status", "profile_id", "row_code", "row_text")
        with self._lock:
            cursor = self._conn.cursor()
            cursor.row_factory = None
            rows = cursor.execute(
                "SELECT position, status, profile_id, error_code, error_text FROM row_results"
                " WHERE launch_id = ?",
                (launch_id,),
            ).fetchall()
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        return {name: list(col) for name, col in zip(names, columns, strict=True)}

    def was_sent(self, key: str, *, trigger_id: int | None = None) -> bool:
        """True when a row with this match key was sent (to ``trigger_id``, if given).

        Example:
            >>> Journal(":memory:").was_sent("nobody@x.io")
            False
        """
        sql = "SELECT 1 FROM sent_rows s JOIN launches l USING (launch_id) WHERE s.key_sha256 = ?"
        params: list[Any] = [key_hash(key)]
        if trigger_id is not None:
            sql += " AND l.trigger_id = ?"
            params.append(trigger_id)
        return bool(self._query(sql + " LIMIT 1", params))

    # --- single sends (Client.import_and_start) ---------------------------------------------
    def claim_single(
        self, *, host: str, trigger_id: int | None, digest: str, format: str, force: bool = False
    ) -> tuple[SingleRecord, bool]:
        """Atomically record a single send as ``sending`` unless the same body was (or may
        have been) sent to the same trigger and host; returns ``(record, claimed)``.

        ``claimed`` True: ``record`` is the new attempt, send it now. False: ``record`` is the
        latest earlier attempt in the way (``sent``, ``unknown``, or ``sending``: in flight in
        another process, or caught in flight by a process that stopped). ``force=True``
        always claims. The check and the claim are one ``BEGIN IMMEDIATE`` transaction, so
        two processes cannot both claim the same body.

        Example:
            >>> j = Journal(":memory:")
            >>> first, ok = j.claim_single(host="http://h", trigger_id=96, digest="d" * 64, format="json")
            >>> ok, str(first.state)
            (True, 'sending')
            >>> j.mark_single_sent(first.send_id, profile_id="p1")
            >>> again, ok = j.claim_single(host="http://h", trigger_id=96, digest="d" * 64, format="json")
            >>> ok, again.send_id == first.send_id, str(again.state), again.profile_id
            (False, True, 'sent', 'p1')
            >>> j.claim_single(host="http://h", trigger_id=96, digest="d" * 64, format="json", force=True)[1]
            True
        """
        with self._tx() as db:
            if not force:
                row = db.execute(
                    "SELECT * FROM single_sends WHERE digest = ? AND trigger_id IS ? AND host = ?"
                    f" AND state IN {_SQL_SINGLE_SENT} ORDER BY rowid DESC LIMIT 1",
                    (digest, trigger_id, host),
                ).fetchone()
                if row is not None:
                    return _single(row), False
            send_id = uuid.uuid4().hex[:12]
            db.execute(
                "INSERT INTO single_sends (send_id, host, trigger_id, digest, format, state, forced, sent_at)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (send_id, host, trigger_id, digest, format, BatchState.SENDING, int(force), _now()),
            )
            row = db.execute("SELECT * FROM single_sends WHERE send_id = ?", (send_id,)).fetchone()
        return _single(row), True

    def _set_single(self, send_id: str, **values: Any) -> None:
        cols = ", ".join(f"{k} = ?" for k in values)
        with self._tx() as db:
            db.execute(
                f"UPDATE single_sends SET {cols}, finished_at = ? WHERE send_id = ?",
                (*values.values(), _now(), send_id),
            )

    def mark_single_sent(
        self, send_id: str, *, profile_id: str | None = None, task_id: str | None = None
    ) -> None:
        """The platform accepted the single send: keep the ids it answered with."""
        self._set_single(send_id, state=BatchState.SENT, profile_id=profile_id, task_id=task_id)

    def mark_single_unknown(self, send_id: str, error: str) -> None:
        """The request went out but its answer was lost (or was HTTP 500): the platform may have it."""
        self._set_single(send_id, state=BatchState.UNKNOWN, error=error)

    def mark_single_failed(self, send_id: str, error: str, *, code: int | None = None) -> None:
        """Refused or never delivered: not counted as sent, safe to send again."""
        self._set_single(send_id, state=BatchState.FAILED, error=error, error_code=code)

    def singles(
        self, *, digest: str | None = None, trigger_id: int | None = None, host: str | None = None
    ) -> list[SingleRecord]:
        """Single-send attempts, oldest first, optionally only one body / trigger / host.

        Example:
            >>> Journal(":memory:").singles()
            []
        """
        where, params = [], []
        for column, value in (("digest", digest), ("trigger_id", trigger_id), ("host", host)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT * FROM single_sends" + (" WHERE " + " AND ".join(where) if where else "")
        return [_single(r) for r in self._query(sql + " ORDER BY rowid", params)]

    # --- history -----------------------------------------------------------------------------
    def history(self) -> list[dict[str, Any]]:
        """Past launches, newest first, with batch and row counts by state.

        Example:
            >>> j = Journal(":memory:")
            >>> _ = j.create_launch(label="x", trigger_id=1, host="http://h", fingerprint="0" * 64,
            ...                     format="json", n_rows=3, summary={}, batches=[(0, "a" * 64, (0, 1, 2))])
            >>> h = j.history()[0]; h["label"], h["batches"], h["planned"], h["rows"]
            ('x', 1, 1, 3)
        """
        planned, completed, failed, unknown = (
            f"'{s.value}'"
            for s in (BatchState.PLANNED, BatchState.COMPLETED, BatchState.FAILED, BatchState.UNKNOWN)
        )
        rows = self._query(
            f"""
            SELECT l.launch_id, l.label, l.created, l.trigger_id, l.host, l.format, l.n_rows AS rows,
                   l.fingerprint, l.forced,
                   COUNT(b.batch_index) AS batches,
                   COALESCE(SUM(b.n_rows), 0) AS batched_rows,
                   COALESCE(SUM(b.state = {planned}), 0) AS planned,
                   COALESCE(SUM(b.state IN {_SQL_SENDING_OR_SENT}), 0) AS sent,
                   COALESCE(SUM(b.state = {completed}), 0) AS completed,
                   COALESCE(SUM(b.state = {failed}), 0) AS failed,
                   COALESCE(SUM(b.state = {unknown}), 0) AS unknown,
                   COALESCE(SUM(b.n_imported), 0) AS imported_rows,
                   COALESCE(SUM(b.n_failed), 0) AS failed_rows,
                   GROUP_CONCAT(b.task_id, ' ') AS task_ids
            FROM launches l LEFT JOIN batches b USING (launch_id)
            GROUP BY l.launch_id
            ORDER BY l.created DESC, l.rowid DESC
            """
        )
        out = []
        for r in rows:
            d = dict(r)
            d["forced"] = bool(d["forced"])
            d["task_ids"] = d["task_ids"].split() if d["task_ids"] else []
            out.append(d)
        return out
