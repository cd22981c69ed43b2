"""The launch journal: a local SQLite record of what was sent, so nothing is sent twice.

Every launch, every batch of it and every row it sent is written here *before* and
*after* the request goes out. A re-run notebook cell, a crashed kernel or a killed
process can then tell which batches were never sent (safe to send), which were sent
(never send again: poll them), and which were caught in flight (``unknown``: the
platform may or may not have them; only the user decides to re-send).

What is stored, and what never is:

* launches: id, label, trigger id, API host (canonical: see :func:`api_host`; no
  credentials, no path), creation time, the plan's fingerprint and its summary (counts only);
* batches: index, sha256 of the body, the input row positions, row count, state, task
  id, attempts, times, remote status/progress and result counts;
* sent rows: the sha256 of each row's match key (to answer "was this key sent?");
* row results once a task completes: position, status, profile id, error code, and the
  platform's error text with the row's match key replaced by its hash
  (``<key sha256:0123456789abcdef>``, :func:`redact_keys`); a text whose key is not known
  is not kept;
* leases: which process (id, host name, heartbeat time) is sending a launch right now
  (:mod:`toolkit.send.lease`);
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

**Durable in one file.** The journal runs in SQLite's rollback-journal mode
(``journal_mode=DELETE``) with ``synchronous=FULL``: every claim and every outcome is in
the main file, on disk, when its transaction ends, so a copy of ``journal.sqlite`` alone
(a backup, a move to another machine) knows every batch sent until the copy. (WAL mode
kept recent writes in ``journal.sqlite-wal`` until the last connection closed.) What it
costs: ``bench/journal_durability.py``. Each write is one short transaction; readers and
writers of other processes wait for each other at most :data:`LOCK_TIMEOUT` seconds.

**Errors.** A file that is empty, damaged, truncated, locked for longer than
:data:`LOCK_TIMEOUT`, read-only, on a full disk, or written by a newer toolkit raises
:class:`~toolkit.errors.JournalError` naming the file and what to do, never a raw
``sqlite3`` error. Nothing is sent while the journal cannot record it: a batch is claimed
in the journal before it goes out.

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
    >>> j.launch(lid).host  # one platform, one name
    'http://localhost:8080'
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import re
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from toolkit.core.contract import BATCH_SENT_STATES, BatchState, RowStatus
from toolkit.errors import (
    AlreadyLaunched,
    ConfigurationError,
    InvalidArgumentError,
    JournalError,
    did_you_mean,
)
from toolkit.send.lease import HOSTNAME, LEASE_TIMEOUT, Lease

__all__ = [
    "ENV_JOURNAL",
    "KEY_MARK",
    "LOCK_TIMEOUT",
    "SINGLE_SENT_STATES",
    "BatchRecord",
    "Journal",
    "LaunchRecord",
    "Opened",
    "RowResult",
    "SingleRecord",
    "api_host",
    "key_hash",
    "redact_keys",
    "restore_key",
]

log = logging.getLogger("toolkit.send.journal")

ENV_JOURNAL: Final = "TOOLKIT_JOURNAL"

#: Seconds an operation waits for another process's lock on the journal before it gives up
#: with a :class:`~toolkit.errors.JournalError` (each write holds it for milliseconds).
LOCK_TIMEOUT: Final = 5.0

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
#: A batch the platform answered for (it has a task): never re-sent, even on the user's word.
_SQL_ANSWERED = (
    f"(b.state IN {_sql_in(frozenset({BatchState.SENT, BatchState.COMPLETED}))}"
    f" OR (b.state = '{BatchState.FAILED.value}' AND b.task_id IS NOT NULL))"
)

#: ``PRAGMA user_version`` of a journal written by this code (see ``_MIGRATIONS``).
_SCHEMA_VERSION = 4
#: The tables of version 1; ``_MIGRATIONS`` brings them to ``_SCHEMA_VERSION``.
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
#: Schema changes by version, applied in order to files of a lower ``user_version``, in the
#: same transaction that sets the new version (so only one process migrates a file). Each
#: statement is idempotent all the same.
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
CREATE INDEX IF NOT EXISTS single_sends_identity ON single_sends (digest, trigger_id, host)
""",
    ),
    (
        3,
        # leases; the key hashes of a batch read in its order; hosts in their canonical
        # spelling (one platform, one name); then (Journal._redact_old_texts) row texts with
        # their match key redacted
        """
CREATE TABLE IF NOT EXISTS leases (
    launch_id   TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    hostname    TEXT NOT NULL,
    heartbeat   REAL NOT NULL,
    taken       REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sent_rows_batch ON sent_rows (launch_id, batch_index);
UPDATE launches SET host = canonical_host(host);
UPDATE single_sends SET host = canonical_host(host)
""",
    ),
    (
        4,
        # the key hashes indexed within their batch, not across the whole file: a batch's
        # 10,000 hashes are random, so the global index (sent_rows_key) had each sent batch
        # touch (and write twice, in the rollback journal and the file) nearly every page of
        # it, a cost growing with everything ever sent (8.9 s and 890 MB written for the
        # 19 batches of 188,000 rows of bench/launch_e2e.py); inside their batch the new
        # pages are appended. was_sent() reaches a key through each batch (a probe per batch)
        """
CREATE INDEX IF NOT EXISTS sent_rows_batch_key ON sent_rows (launch_id, batch_index, key_sha256);
DROP INDEX IF EXISTS sent_rows_key;
DROP INDEX IF EXISTS sent_rows_batch
""",
    ),
)

#: The tables this toolkit's journals have: a database without ``launches`` is not one.
_TABLES: Final = frozenset({"launches", "batches", "sent_rows", "row_results", "single_sends", "leases"})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def key_hash(key: str) -> str:
    """The sha256 hex of a match key: how the journal remembers a row without its data.

    Example:
        >>> key_hash("a@x.io")[:16]
        'aa8a6b1226018606'
    """
    return hashlib.sha256(str(key).encode("utf-8")).hexdigest()


def _key_mark(digest: str) -> str:
    return f"<key sha256:{digest[:16]}>"


#: A redacted match key in a journalled text (:func:`redact_keys`).
KEY_MARK: Final = re.compile(r"<key sha256:[0-9a-f]{16}>")


def restore_key(text: str | None, key: str | None) -> str | None:
    """A journalled text with its row's key back in place of the key's mark, for a session
    that has the key (the plan) anyway.

    Example:
        >>> restore_key(redact_keys("no profile with profile_id 'nope-1'", ["nope-1"]), "nope-1")
        "no profile with profile_id 'nope-1'"
    """
    if not text or not key:
        return text
    return text.replace(_key_mark(key_hash(key)), key)


#: Candidate keys in a platform's text: quoted pieces, and words without their punctuation.
_QUOTED = re.compile(r"""'([^']+)'|"([^"]+)"|“([^”]+)”""")
_WORD_EDGES = "()[]{}<>,;:.!?'\"“”"


def redact_keys(text: str | None, keys: Iterable[str] = (), *, hashes: Collection[str] = ()) -> str | None:
    """``text`` with each match key replaced by ``<key sha256:`` and its hash's first 16 digits ``>``.

    ``keys`` are the keys themselves (a batch being sent); ``hashes`` their sha256
    (:func:`key_hash`), when only the journal's record of them is at hand: then every quoted
    piece and every word of the text is hashed and compared.

    Example:
        >>> redact_keys("no profile with profile_id 'nope-1'", ["nope-1"])
        "no profile with profile_id '<key sha256:4b42ee80f4eb62d9>'"
        >>> redact_keys("no profile with email ann@x.io.", hashes={key_hash("ann@x.io")})
        'no profile with email <key sha256:31122705444181b1>.'
        >>> redact_keys(None, ["x"]) is None
        True
    """
    if not text:
        return text
    for key in sorted({k for k in keys if k}, key=len, reverse=True):  # the longest first: no partial hit
        if key in text:
            text = text.replace(key, _key_mark(key_hash(key)))
    if hashes:
        candidates = {piece for match in _QUOTED.finditer(text) for piece in match.groups() if piece}
        candidates.update(word.strip(_WORD_EDGES) for word in text.split())
        for candidate in sorted(candidates, key=len, reverse=True):
            digest = key_hash(candidate) if candidate else ""
            if digest in hashes:
                text = text.replace(candidate, _key_mark(digest))
    return text


_LOOPBACK_ADDRESSES: Final = frozenset({ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")})
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def api_host(url: str) -> str:
    """The platform's canonical name: ``scheme://host[:port]``, the key the journal files sends under.

    Credentials, path and query are dropped; scheme and host are lower case, a trailing dot
    is dropped, a default port (80 for http, 443 for https) is left out, and every loopback
    spelling (``localhost``, ``127.0.0.1``, ``::1``, ``[::1]``) is ``localhost``: the same plan
    sent to one platform under two spellings is one launch, sent once.

    Example:
        >>> api_host("https://user:secret@API.example.com:8443/api/v1.1/?token=x")
        'https://api.example.com:8443'
        >>> api_host("http://127.0.0.1:5000"), api_host("HTTP://LOCALHOST.:5000/"), api_host("http://[::1]:5000")
        ('http://localhost:5000', 'http://localhost:5000', 'http://localhost:5000')
        >>> api_host("https://Example.com.:443"), api_host("http://example.com:80"), api_host("http://[2001:DB8::0:1]")
        ('https://example.com', 'http://example.com', 'http://[2001:db8::1]')
    """
    parts = urlsplit(str(url).strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        raise ConfigurationError(
            f"API URL {url!r} has an invalid port; expected e.g. https://host:8443"
        ) from None
    host = (parts.hostname or "").rstrip(".")
    if not scheme or not host:
        raise ConfigurationError(f"API URL {url!r} has no scheme or host; expected e.g. https://host:port")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if host == "localhost" or (address is not None and _unmapped(address) in _LOOPBACK_ADDRESSES):
        host = "localhost"
    elif isinstance(address, ipaddress.IPv6Address):
        host = f"[{address.compressed}]"
    if port == _DEFAULT_PORTS.get(scheme):
        port = None
    return f"{scheme}://{host}" + (f":{port}" if port else "")


def _unmapped(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) as the IPv4 address it is."""
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


def _canonical_or_same(host: str | None) -> str | None:
    """:func:`api_host` of a host read from an older journal; an unreadable one is kept as it is."""
    if host is None:
        return None
    try:
        return api_host(host)
    except ConfigurationError:
        return host


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
        toolkit.errors.JournalError: the journal holds a batch state 'leased' this toolkit does not know: ...
    """
    try:
        return BatchState(text)
    except ValueError:
        raise JournalError(
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


def _lease(row: sqlite3.Row) -> Lease:
    return Lease(
        launch_id=row["launch_id"],
        owner=row["owner"],
        pid=row["pid"],
        hostname=row["hostname"],
        heartbeat=row["heartbeat"],
        taken=row["taken"],
    )


@dataclass(frozen=True)
class Opened:
    """What :meth:`Journal.open_launch` found or made, in one transaction.

    ``kind``:

    * ``"new"``: a new launch was recorded, its lease is the caller's: send its batches;
    * ``"resume"``: an earlier launch of the same plan, its lease now the caller's (any batch
      its gone process left ``sending`` is now ``unknown``): send what it never sent, or, when
      every batch was sent, release the lease and refuse;
    * ``"busy"``: an earlier launch of the same plan that another live process is sending
      (``lease`` says which): nothing was taken;
    * ``"sent"``: no launch of this plan, but every batch was sent by other launches
      (``batches`` are theirs; ``record`` the launch of the first).
    """

    kind: Literal["new", "resume", "busy", "sent"]
    record: LaunchRecord
    batches: list[BatchRecord]
    lease: Lease | None = None


#: The first bytes of every SQLite database file.
_SQLITE_MAGIC: Final = b"SQLite format 3\x00"


def _check_file(file: Path) -> None:
    """Refuse, before SQLite opens it, a journal file that is empty, not SQLite, or cut short.

    SQLite would treat an empty file as a new journal (forgetting every launch a lost file
    recorded) and notices a truncated one only when it reads a missing page, mid-launch.
    The header tells the size the database had when it was last written whole.
    """
    size = file.stat().st_size
    if size == 0:
        raise JournalError(
            f"the journal {file} is empty (0 bytes): it is not a journal this toolkit wrote (a failed copy, "
            "or a file cut short). If it is a copy, copy the original again; to start a new, empty journal, "
            "delete this file (the launches it recorded, if any, are then forgotten and could be sent again)",
            path=str(file),
        )
    with file.open("rb") as handle:
        header = handle.read(100)
    if not header.startswith(_SQLITE_MAGIC):
        raise _damaged(file, "it is not an SQLite database")
    hot = Path(f"{file}-journal")
    if len(header) < 100 or (hot.exists() and hot.stat().st_size > 0):
        return  # a write was interrupted: SQLite rolls it back on open, the header may be ahead
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # the page count is valid when the change counter matches its "valid for" copy
    if header[24:28] == header[92:96] and pages * page_size > size:
        raise _damaged(
            file, f"it is cut short: {size:,} bytes of the {pages * page_size:,} it was written with"
        )


def _damaged(file: Path | str, what: str) -> JournalError:
    return JournalError(
        f"the journal {file} is damaged ({what}). Restore it from a backup, or move it aside to start a new "
        "journal (the launches it recorded are then forgotten: a plan sent before could be sent again)",
        path=str(file),
    )


def _statements(ddl: str) -> list[str]:
    """The statements of a DDL script, to run one by one inside a transaction (``executescript``
    would commit the transaction first)."""
    return [s.strip() for s in ddl.split(";") if s.strip()]


class Journal:
    """The SQLite journal of launches, batches, sent rows and leases (see the module docs).

    ``path`` is a file path (made absolute: a later change of working directory does not
    change the file) or ``":memory:"``. A new file is built aside and moved into place
    whole, so a journal file is never seen empty. One connection is shared by the threads
    of a launch, serialized by a lock; other processes coordinate through SQLite's own
    locking, each waiting at most ``timeout`` seconds (:data:`LOCK_TIMEOUT`) for another's
    write before raising :class:`~toolkit.errors.JournalError`. A lease whose heartbeat is
    older than ``lease_timeout`` seconds is taken over (:mod:`toolkit.send.lease`).

    Example:
        >>> Journal(":memory:").history()
        []
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = LOCK_TIMEOUT,
        lease_timeout: float = LEASE_TIMEOUT,
    ) -> None:
        self.path = str(path)
        self.timeout = float(timeout)
        self.lease_timeout = float(lease_timeout)
        self._lock = threading.RLock()
        memory = self.path == ":memory:"
        if not memory:
            file = Path(self.path).expanduser().absolute()
            self.path = str(file)
            with self._guard("creating it"):
                file.parent.mkdir(parents=True, exist_ok=True)
                if not file.exists():
                    self._create(file)
                _check_file(file)
        with self._guard("opening it"):
            self._conn = self._connect(self.path)
            try:
                self._prepare(memory)
            except BaseException:
                self._conn.close()
                raise

    def _connect(self, path: str) -> sqlite3.Connection:
        # check_same_thread=False: the launch's worker threads share the connection;
        # the lock above serializes them. isolation_level=None: explicit transactions.
        conn = sqlite3.connect(path, timeout=self.timeout, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
        conn.create_function("canonical_host", 1, _canonical_or_same, deterministic=True)
        return conn

    def _create(self, file: Path) -> None:
        """Build a new journal aside, then link it into place: a file that does not exist yet
        appears whole (never empty), and of two processes creating it at once one wins."""
        aside = file.with_name(f".{file.name}.{uuid.uuid4().hex[:8]}.new")
        try:
            conn = self._connect(str(aside))
            try:
                conn.execute("PRAGMA journal_mode=DELETE")
                # one transaction: one sync for the whole schema, not three a statement (the
                # file is not in place yet, so nothing can see it half built either way)
                conn.execute("BEGIN IMMEDIATE")
                self._build(conn, 0)
                conn.execute("COMMIT")
            finally:
                conn.close()
            try:
                os.link(aside, file)
            except FileExistsError:
                pass  # another process made it first: use theirs
            except OSError:  # a file system without hard links: a rename (which replaces) if still missing
                if not file.exists():
                    os.replace(aside, file)
        finally:
            for leftover in (aside, Path(f"{aside}-journal")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()

    def _prepare(self, memory: bool) -> None:
        """Check the version, make the file durable on its own (rollback journal, full sync),
        and bring an older schema up to date."""
        conn = self._conn
        self._refuse_newer(conn.execute("PRAGMA user_version").fetchone()[0])
        if not memory:
            self._leave_wal(conn)
            conn.execute("PRAGMA synchronous=FULL")
        if conn.execute("PRAGMA user_version").fetchone()[0] == _SCHEMA_VERSION:
            return  # up to date: no write on open (a read-only journal still shows its history)
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]  # again, under the lock
                self._refuse_newer(version)
                if version < _SCHEMA_VERSION:
                    self._build(conn, version)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _build(self, conn: sqlite3.Connection, version: int) -> None:
        """Create the tables (version 0) or migrate them from ``version`` (``_MIGRATIONS``)."""
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "launches" not in tables:
            raise JournalError(
                f"{self.path} is an SQLite database of another program (tables: {', '.join(sorted(tables)[:5])}), "
                "not a toolkit journal: point TOOLKIT_JOURNAL (or journal=) at a journal file",
                path=self.path,
            )
        for statement in _statements(_SCHEMA):
            conn.execute(statement)
        for target, ddl in _MIGRATIONS:
            if version < target:
                for statement in _statements(ddl):
                    conn.execute(statement)
        if version < 3:
            self._redact_old_texts(conn)
        conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def _refuse_newer(self, version: int) -> None:
        if version > _SCHEMA_VERSION:
            raise JournalError(
                f"the journal {self.path} was written by a newer toolkit (schema version {version}; this one "
                f"reads up to {_SCHEMA_VERSION}): upgrade toolkit (pip install -U toolkit) to use it, or point "
                "TOOLKIT_JOURNAL at another file",
                path=self.path,
            )

    def _leave_wal(self, conn: sqlite3.Connection) -> None:
        """Switch a journal written in WAL mode (toolkit before schema 3) to the rollback journal.

        SQLite refuses while another connection has the file open (it does not wait on its
        busy handler there), so this waits here, up to ``timeout``.
        """
        deadline = time.monotonic() + self.timeout
        while conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
            try:
                conn.execute("PRAGMA journal_mode=DELETE")
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorname", "") not in ("SQLITE_BUSY", "SQLITE_LOCKED"):
                    raise
                if time.monotonic() > deadline:
                    raise JournalError(
                        f"the journal {self.path} is open in another program in WAL mode (an older toolkit, "
                        "or a database tool): close it, then try again; this toolkit keeps every write in "
                        "the main file and cannot share it in that mode",
                        path=self.path,
                    ) from None
                time.sleep(0.05)

    @staticmethod
    def _redact_old_texts(conn: sqlite3.Connection) -> None:
        """Migration to schema 3: row texts written before keep the platform's words with the
        row's match key redacted (found by its hash); a text whose key is unknown is dropped."""
        rows = conn.execute(
            "SELECT r.rowid AS rid, r.error_text AS text, s.key_sha256 AS digest FROM row_results r"
            " LEFT JOIN sent_rows s ON s.launch_id = r.launch_id AND s.batch_index = r.batch_index"
            " AND s.position = r.position WHERE r.error_text IS NOT NULL"
        ).fetchall()
        conn.executemany(
            "UPDATE row_results SET error_text = ? WHERE rowid = ?",
            [(redact_keys(r["text"], hashes={r["digest"]}) if r["digest"] else None, r["rid"]) for r in rows],
        )

    # --- errors ----------------------------------------------------------------------------
    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn a raw ``sqlite3`` (or file) error into a :class:`JournalError` naming the file."""
        try:
            yield
        except JournalError as exc:
            if exc.path is None:
                raise JournalError(f"{exc} (journal file: {self.path})", path=self.path) from None
            raise
        except sqlite3.Error as exc:
            raise self._error(exc, action) from None
        except OSError as exc:
            raise JournalError(
                f"the journal {self.path} failed while {action}: {exc.strerror or exc}. Check that its "
                "folder exists and is writable, and that the disk has room (or point TOOLKIT_JOURNAL at "
                "another file)",
                path=self.path,
            ) from None

    def _error(self, exc: sqlite3.Error, action: str) -> JournalError:
        name = getattr(exc, "sqlite_errorname", "") or ""
        text = str(exc)
        where = f"the journal {self.path}"
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
            message = (
                f"{where} is locked: another program held it for more than {self.timeout:g} s while this one was "
                f"{action} (a toolkit process in a long write, or a database tool keeping it open). Close that "
                "program and try again, or point TOOLKIT_JOURNAL at another file"
            )
        elif name.startswith(("SQLITE_READONLY", "SQLITE_PERM")) or "readonly" in text:
            message = (
                f"{where} is read-only (the file or its folder): it could not be written while {action}. Make "
                "both writable (e.g. chmod u+w), or point TOOLKIT_JOURNAL at a writable file"
            )
        elif name == "SQLITE_FULL" or name.startswith("SQLITE_IOERR") or "disk is full" in text:
            message = (
                f"{where} could not be written while {action}: the disk is full (or failing: {text}). Free "
                "some space, or point TOOLKIT_JOURNAL at another disk, then try again"
            )
        elif name in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or "malformed" in text or "not a database" in text:
            return _damaged(self.path, text)
        elif name.startswith("SQLITE_CANTOPEN"):
            message = (
                f"{where} could not be opened ({text}): check that its folder exists and is readable and "
                "writable, or point TOOLKIT_JOURNAL at another file"
            )
        else:
            message = f"{where} failed while {action}: {name or type(exc).__name__}: {text}"
        return JournalError(message, path=self.path)

    # --- opening -----------------------------------------------------------------------
    @staticmethod
    def default_path() -> Path:
        """``$TOOLKIT_JOURNAL`` if set (made absolute), else ``journal.sqlite`` in the user's data folder.

        Example:
            >>> Journal.default_path().name
            'journal.sqlite'
        """
        env = os.environ.get(ENV_JOURNAL)
        if env:
            return Path(env).expanduser().absolute()
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
    def _tx(self, action: str = "recording a change") -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: the write lock first, so its reads are current)."""
        with self._lock, self._guard(action):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock, self._guard("reading it"):
            return self._conn.execute(sql, params).fetchall()

    def _read(self, convert: Any, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows converted to records, with a record's own errors (a state from a newer toolkit)
        naming the file too."""
        rows = self._query(sql, params)
        with self._guard("reading it"):
            return [convert(r) for r in rows]

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
        state instead of being planned, so it is polled, not sent again. ``host`` is stored
        in its canonical spelling (:func:`api_host`).
        """
        with self._tx("recording a launch") as db:
            return self._insert_launch(
                db, label=label, trigger_id=trigger_id, host=api_host(host), fingerprint=fingerprint,
                format=format, n_rows=n_rows, summary=summary, batches=batches, forced=forced, linked=linked or {},
            )  # fmt: skip

    @staticmethod
    def _insert_launch(
        db: sqlite3.Connection,
        *,
        label: str | None,
        trigger_id: int | None,
        host: str,
        fingerprint: str,
        format: str,
        n_rows: int,
        summary: dict[str, Any],
        batches: Iterable[tuple[int, str, Sequence[int]]],
        forced: bool,
        linked: dict[int, BatchRecord],
    ) -> str:
        launch_id = uuid.uuid4().hex[:12]
        now = _now()
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

    def open_launch(
        self,
        *,
        owner: str,
        label: str | None,
        trigger_id: int | None,
        host: str,
        fingerprint: str,
        format: str,
        n_rows: int,
        summary: dict[str, Any],
        batches: Sequence[tuple[int, str, Sequence[int]]],
        force: bool = False,
    ) -> Opened:
        """Find the launch of this plan (fingerprint, trigger, host) or record a new one, and
        take its lease for ``owner``: one ``BEGIN IMMEDIATE`` transaction, so two processes
        launching the same plan at the same moment never make twin launches (see
        :class:`Opened` for what comes back). ``force=True`` always records a new launch.

        Example:
            >>> j = Journal(":memory:")
            >>> plan = dict(label="x", trigger_id=1, host="http://h", fingerprint="f" * 64, format="json",
            ...             n_rows=1, summary={}, batches=[(0, "d" * 64, (0,))])
            >>> first = j.open_launch(owner="me", **plan)
            >>> first.kind, j.open_launch(owner="other", **plan).kind  # "me" (this process) sends it
            ('new', 'busy')
            >>> j.release_lease(first.record.launch_id, "me"); j.open_launch(owner="other", **plan).kind
            'resume'
        """
        host = api_host(host)
        with self._tx("recording a launch") as db:
            if not force:
                row = db.execute(
                    "SELECT * FROM launches WHERE fingerprint = ? AND trigger_id IS ? AND host = ?"
                    " ORDER BY created DESC, rowid DESC LIMIT 1",
                    (fingerprint, trigger_id, host),
                ).fetchone()
                if row is not None:
                    previous = _launch(row)
                    holder = self._take_lease(db, previous.launch_id, owner)
                    kind: Literal["busy", "resume"] = "busy" if holder is not None else "resume"
                    return Opened(kind, previous, self._batches(db, previous.launch_id), holder)
            linked: dict[int, BatchRecord] = {}
            if not force:
                sent = self._sent_batches(db, [digest for _, digest, _ in batches], trigger_id, host)
                linked = {index: sent[digest] for index, digest, _ in batches if digest in sent}
                if batches and len(linked) == len(batches):
                    first = next(iter(linked.values()))
                    origin = _launch(
                        db.execute(
                            "SELECT * FROM launches WHERE launch_id = ?", (first.launch_id,)
                        ).fetchone()
                    )
                    return Opened("sent", origin, list(linked.values()))
            launch_id = self._insert_launch(
                db, label=label, trigger_id=trigger_id, host=host, fingerprint=fingerprint, format=format,
                n_rows=n_rows, summary=summary, batches=batches, forced=force, linked=linked,
            )  # fmt: skip
            self._take_lease(db, launch_id, owner)
            record = _launch(
                db.execute("SELECT * FROM launches WHERE launch_id = ?", (launch_id,)).fetchone()
            )
            return Opened("new", record, self._batches(db, launch_id))

    def launch(self, launch_id: str) -> LaunchRecord | None:
        rows = self._read(_launch, "SELECT * FROM launches WHERE launch_id = ?", (launch_id,))
        return rows[0] if rows else None

    def find(self, label_or_id: str) -> LaunchRecord:
        """The launch with this id, else the latest one with this label.

        Raises ``InvalidArgumentError`` naming the known labels when there is none.
        """
        rec = self.launch(label_or_id)
        if rec is not None:
            return rec
        rows = self._read(
            _launch,
            "SELECT * FROM launches WHERE label = ? ORDER BY created DESC, rowid DESC LIMIT 1",
            (label_or_id,),
        )
        if rows:
            return rows[0]
        labels = [r["label"] for r in self._query("SELECT DISTINCT label FROM launches") if r["label"]]
        raise InvalidArgumentError(
            f"no launch labelled or numbered {label_or_id!r} in the journal {self.path}"
            f"{did_you_mean(label_or_id, labels)}; `toolkit history` lists them"
        )

    def find_by_fingerprint(self, fingerprint: str, trigger_id: int | None, host: str) -> LaunchRecord | None:
        """The latest launch of the same plan to the same trigger and host, if any."""
        rows = self._read(
            _launch,
            "SELECT * FROM launches WHERE fingerprint = ? AND trigger_id IS ? AND host = ?"
            " ORDER BY created DESC, rowid DESC LIMIT 1",
            (fingerprint, trigger_id, api_host(host)),
        )
        return rows[0] if rows else None

    def sent_batches(
        self, digests: Iterable[str], trigger_id: int | None, host: str
    ) -> dict[str, BatchRecord]:
        """For each digest, the latest batch with that body already sent (or maybe sent)
        to the same trigger and host, in any launch. Missing digests were never sent."""
        with self._lock, self._guard("reading it"):
            return self._sent_batches(self._conn, digests, trigger_id, api_host(host))

    @staticmethod
    def _sent_batches(
        db: sqlite3.Connection, digests: Iterable[str], trigger_id: int | None, host: str
    ) -> dict[str, BatchRecord]:
        digests = list(dict.fromkeys(digests))
        found: dict[str, BatchRecord] = {}
        for start in range(0, len(digests), 500):  # stay under SQLite's parameter limit
            chunk = digests[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = db.execute(
                f"SELECT b.* FROM batches b JOIN launches l USING (launch_id)"
                f" WHERE b.digest IN ({marks}) AND l.trigger_id IS ? AND l.host = ?"
                f" ORDER BY b.created, b.rowid",
                (*chunk, trigger_id, host),
            ).fetchall()
            for row in rows:
                rec = _batch(row)
                if rec.was_sent:
                    found[rec.digest] = rec  # later rows win: the latest send
        return found

    @staticmethod
    def _batches(db: sqlite3.Connection, launch_id: str) -> list[BatchRecord]:
        rows = db.execute("SELECT * FROM batches WHERE launch_id = ? ORDER BY batch_index", (launch_id,))
        return [_batch(r) for r in rows.fetchall()]

    def batches(self, launch_id: str) -> list[BatchRecord]:
        return self._read(
            _batch, "SELECT * FROM batches WHERE launch_id = ? ORDER BY batch_index", (launch_id,)
        )

    def batch_states(self, launch_id: str) -> dict[int, tuple[BatchState, str | None]]:
        """Each batch's state and task id, without its rows: what ``wait()`` reads every round
        (the full records parse every row position: 190,000 for a 19-batch launch).

        Example:
            >>> j = Journal(":memory:")
            >>> lid = j.create_launch(label=None, trigger_id=1, host="http://h", fingerprint="f" * 64,
            ...                       format="json", n_rows=1, summary={}, batches=[(0, "d" * 64, (0,))])
            >>> j.batch_states(lid)
            {0: (<BatchState.PLANNED: 'planned'>, None)}
        """
        rows = self._query(
            "SELECT batch_index, state, task_id FROM batches WHERE launch_id = ? ORDER BY batch_index",
            (launch_id,),
        )
        with self._guard("reading it"):
            return {r["batch_index"]: (_state(r["state"]), r["task_id"]) for r in rows}

    def batch(self, launch_id: str, index: int) -> BatchRecord:
        rows = self._read(
            _batch, "SELECT * FROM batches WHERE launch_id = ? AND batch_index = ?", (launch_id, int(index))
        )
        if not rows:
            raise InvalidArgumentError(f"launch {launch_id} has no batch {index}")
        return rows[0]

    # --- leases -----------------------------------------------------------------------------
    def lease(self, launch_id: str) -> Lease | None:
        """The launch's lease as recorded (its holder may be gone: see :meth:`Lease.gone`)."""
        rows = self._read(_lease, "SELECT * FROM leases WHERE launch_id = ?", (launch_id,))
        return rows[0] if rows else None

    def sender(self, launch_id: str, *, owner: str | None = None) -> Lease | None:
        """The lease of the live process sending this launch (other than ``owner``), or ``None``.

        Example:
            >>> j = Journal(":memory:")
            >>> lid = j.open_launch(owner="me", label=None, trigger_id=1, host="http://h", fingerprint="f" * 64,
            ...                     format="json", n_rows=0, summary={}, batches=[]).record.launch_id
            >>> j.sender(lid).pid == os.getpid(), j.sender(lid, owner="me")
            (True, None)
        """
        lease = self.lease(launch_id)
        if lease is None or lease.owner == owner or lease.gone(timeout=self.lease_timeout) is not None:
            return None
        return lease

    def take_lease(self, launch_id: str, owner: str) -> Lease | None:
        """Take the launch's lease for ``owner`` (``None``), unless another live process holds
        it (its :class:`Lease` is returned, nothing changes). Taking it over from a holder that
        is provably gone turns the batches it left ``sending`` into ``unknown``."""
        with self._tx("taking a launch's lease") as db:
            return self._take_lease(db, launch_id, owner)

    def _take_lease(self, db: sqlite3.Connection, launch_id: str, owner: str) -> Lease | None:
        row = db.execute("SELECT * FROM leases WHERE launch_id = ?", (launch_id,)).fetchone()
        why = "its process stopped while sending"
        if row is not None:
            held = _lease(row)
            if held.owner == owner:
                why = ""
            else:
                gone = held.gone(timeout=self.lease_timeout)
                if gone is None:
                    return held
                why = f"{held.describe()} stopped while sending: {gone}"
        if why:
            relabelled = self._relabel_in_flight(db, launch_id, why)
            if relabelled:
                log.warning(
                    "launch %s: batch(es) %s caught in flight (%s): now unknown", launch_id, relabelled, why
                )
        now = time.time()
        db.execute(
            "INSERT OR REPLACE INTO leases VALUES (?,?,?,?,?,?)",
            (launch_id, owner, os.getpid(), HOSTNAME, now, now),
        )
        return None

    def renew_lease(self, launch_id: str, owner: str) -> bool:
        """The holder's heartbeat; False when the lease is no longer ``owner``'s."""
        with self._tx("renewing a launch's lease") as db:
            cursor = db.execute(
                "UPDATE leases SET heartbeat = ? WHERE launch_id = ? AND owner = ?",
                (time.time(), launch_id, owner),
            )
            return cursor.rowcount == 1

    def release_lease(self, launch_id: str, owner: str) -> None:
        """The holder is done sending: the launch is free (nothing else changes)."""
        with self._tx("releasing a launch's lease") as db:
            db.execute("DELETE FROM leases WHERE launch_id = ? AND owner = ?", (launch_id, owner))

    def _check_owner(self, db: sqlite3.Connection, launch_id: str, owner: str) -> None:
        """Refuse a claim by a process that lost the launch's lease (taken over while it stood still)."""
        row = db.execute("SELECT * FROM leases WHERE launch_id = ?", (launch_id,)).fetchone()
        if row is not None and row["owner"] == owner:
            return
        holder = f"by {_lease(row).describe()}" if row is not None else "and released"
        record = db.execute("SELECT * FROM launches WHERE launch_id = ?", (launch_id,)).fetchone()
        raise AlreadyLaunched(
            f"launch {launch_id} was taken over {holder} while this process stood still for more than "
            f"{self.lease_timeout:g} s: nothing more is sent from here; follow it with "
            f"client.resume({launch_id!r})",
            previous=_launch(record) if record is not None else None,
        )

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
        self,
        launch_id: str,
        index: int,
        *,
        exclusive: bool = True,
        resend: bool = False,
        owner: str | None = None,
    ) -> BatchRecord | None:
        """Atomically mark a batch ``sending`` if it may be sent; ``None`` when claimed.

        Otherwise returns the batch record in the way: this batch itself (already sent,
        or ``unknown`` without ``resend=True``), or another launch's batch with the same body
        to the same trigger and host:

        * ``exclusive`` (a launch): one that is (or may be) sent, e.g. by a second notebook
          launching the same plan at the same moment;
        * ``resend`` (``resend_unknown()``): one the platform answered for (``sent``,
          ``completed``, or ``failed`` with a task), or one a live process is sending right
          now: the user's "send it again" never sends a batch another launch delivered.
          Launches made before a forced launch (``force=True``) do not count for its batches.

        With ``owner``, the claim is refused (:class:`~toolkit.errors.AlreadyLaunched`) unless
        ``owner`` holds the launch's lease. The check and the claim are one ``BEGIN IMMEDIATE``
        transaction, so two processes cannot both claim the same body.

        Example:
            >>> j = Journal(":memory:")
            >>> a = j.create_launch(label="a", trigger_id=1, host="http://h", fingerprint="f" * 64,
            ...                     format="json", n_rows=1, summary={}, batches=[(0, "d" * 64, (0,))])
            >>> b = j.create_launch(label="b", trigger_id=1, host="http://h", fingerprint="f" * 64,
            ...                     format="json", n_rows=1, summary={}, batches=[(0, "d" * 64, (0,))])
            >>> j.claim(a, 0) is None, j.claim(b, 0).launch_id == a, str(j.claim(a, 0).state)
            (True, True, 'sending')
        """
        with self._tx("claiming a batch") as db:
            if owner is not None:
                self._check_owner(db, launch_id, owner)
            row = db.execute(
                "SELECT * FROM batches WHERE launch_id = ? AND batch_index = ?", (launch_id, int(index))
            ).fetchone()
            if row is None:
                raise InvalidArgumentError(f"launch {launch_id} has no batch {index}")
            rec = _batch(row)
            if rec.was_sent and not (resend and rec.state == BatchState.UNKNOWN):
                return rec
            if exclusive or resend:
                other = self._in_the_way(db, rec, resend=resend)
                if other is not None:
                    return other
            self._mark_sending(db, launch_id, index)
        return None

    def _in_the_way(self, db: sqlite3.Connection, rec: BatchRecord, *, resend: bool) -> BatchRecord | None:
        """Another launch's batch with this body, trigger and host that forbids sending ``rec``."""
        same = (
            "SELECT b.* FROM batches b JOIN launches l USING (launch_id)"
            " WHERE b.digest = ? AND l.trigger_id IS (SELECT trigger_id FROM launches WHERE launch_id = ?)"
            " AND l.host = (SELECT host FROM launches WHERE launch_id = ?) AND b.launch_id != ?"
        )
        params: list[Any] = [rec.digest, rec.launch_id, rec.launch_id, rec.launch_id]
        if not resend:
            row = db.execute(
                same + f" AND (b.state IN {_SQL_BATCH_SENT} OR (b.state = ? AND b.task_id IS NOT NULL))"
                " ORDER BY b.rowid DESC LIMIT 1",
                (*params, BatchState.FAILED),
            ).fetchone()
            return _batch(row) if row is not None else None
        forced = db.execute(
            "SELECT forced, rowid FROM launches WHERE launch_id = ?", (rec.launch_id,)
        ).fetchone()
        if forced["forced"]:
            same += " AND l.rowid > ?"
            params.append(forced["rowid"])
        row = db.execute(same + f" AND {_SQL_ANSWERED} ORDER BY b.rowid DESC LIMIT 1", params).fetchone()
        if row is not None:
            return _batch(row)
        for row in db.execute(same + " AND b.state = ?", (*params, BatchState.SENDING)).fetchall():
            lease = db.execute("SELECT * FROM leases WHERE launch_id = ?", (row["launch_id"],)).fetchone()
            if lease is not None and _lease(lease).gone(timeout=self.lease_timeout) is None:
                return _batch(row)  # in flight in a live process right now
        return None

    def link(self, launch_id: str, index: int, holder: BatchRecord) -> None:
        """Let a batch follow another launch's batch with the same body instead of sending it.

        A holder still ``sending`` has no task id yet: the batch becomes ``unknown`` and
        names the launch to follow (:meth:`follow_origins` catches up once it is sent).
        """
        with self._tx() as db:
            self._copy_state(db, launch_id, index, holder)

    @staticmethod
    def _copy_state(db: sqlite3.Connection, launch_id: str, index: int, holder: BatchRecord) -> None:
        if holder.state == BatchState.SENDING:
            db.execute(
                "UPDATE batches SET state = ?, origin = ?, error = ? WHERE launch_id = ? AND batch_index = ?",
                (
                    BatchState.UNKNOWN, holder.launch_id,
                    f"the same batch was being sent by launch {holder.launch_id} (in flight there, or caught in "
                    f"flight when its process stopped): follow it there (client.resume({holder.launch_id!r}))",
                    launch_id, int(index),
                ),
            )  # fmt: skip
            return
        db.execute(
            "UPDATE batches SET state = ?, task_id = ?, sent_at = ?, finished_at = ?, status = ?, progress = ?,"
            " n_imported = ?, n_failed = ?, error_code = ?, error = ?, origin = ?"
            " WHERE launch_id = ? AND batch_index = ?",
            (
                holder.state, holder.task_id, holder.sent_at, holder.finished_at, holder.status, holder.progress,
                holder.n_imported, holder.n_failed, holder.error_code, holder.error,
                holder.origin or holder.launch_id, launch_id, int(index),
            ),
        )  # fmt: skip

    def follow_origins(self, launch_id: str) -> list[int]:
        """Batches left ``unknown`` because another launch was sending the same body at that
        moment take that launch's outcome once it has one (its task); returns them.

        Example:
            >>> Journal(":memory:").follow_origins("nope")
            []
        """
        with self._tx() as db:
            rows = db.execute(
                "SELECT mine.batch_index AS mine, b.* FROM batches mine"
                " JOIN batches b ON b.launch_id = mine.origin AND b.digest = mine.digest"
                f" WHERE mine.launch_id = ? AND mine.state = ? AND {_SQL_ANSWERED}",
                (launch_id, BatchState.UNKNOWN),
            ).fetchall()
            for row in rows:
                self._copy_state(db, launch_id, row["mine"], _batch(row))
        return [r["mine"] for r in rows]

    def mark_sent(self, launch_id: str, index: int, task_id: str, keys: Iterable[str] = ()) -> None:
        """The platform accepted the batch: keep its task id and the hashes of its keys."""
        rec = self.batch(launch_id, index)
        with self._tx("recording a sent batch") as db:
            db.execute(
                "UPDATE batches SET state = ?, task_id = ?, status = NULL, progress = 0, error = NULL"
                " WHERE launch_id = ? AND batch_index = ?",
                (BatchState.SENT, task_id, launch_id, int(index)),
            )
            db.execute(
                "DELETE FROM sent_rows WHERE launch_id = ? AND batch_index = ?", (launch_id, int(index))
            )
            db.executemany(
                "INSERT INTO sent_rows VALUES (?,?,?,?)",
                [(launch_id, int(index), pos, key_hash(k)) for pos, k in zip(rec.rows, keys, strict=False)],
            )

    def mark_unknown(self, launch_id: str, index: int, error: str, *, keys: Iterable[str] = ()) -> None:
        """The request went out but its answer was lost: the platform may have it. ``keys``
        (the batch's match keys) are redacted from ``error``."""
        self._set(launch_id, index, state=BatchState.UNKNOWN, error=redact_keys(error, keys))

    def mark_failed(
        self, launch_id: str, index: int, error: str, *, code: int | None = None, keys: Iterable[str] = ()
    ) -> None:
        """Refused or never delivered (its ``task_id`` stays None: safe to send again later).
        ``keys`` (the batch's match keys) are redacted from ``error``."""
        self._set(
            launch_id, index, state=BatchState.FAILED, error=redact_keys(error, keys), error_code=code,
            finished_at=_now(),
        )  # fmt: skip

    def reset_in_flight(self, launch_id: str) -> list[int]:
        """Batches left ``sending`` by a process that is provably gone become ``unknown``;
        returns them. While a live process holds the launch's lease, nothing changes (``[]``):
        its batches in flight are being sent right now."""
        with self._tx() as db:
            row = db.execute("SELECT * FROM leases WHERE launch_id = ?", (launch_id,)).fetchone()
            why = "the process stopped while sending"
            if row is not None:
                held = _lease(row)
                gone = held.gone(timeout=self.lease_timeout)
                if gone is None:
                    return []
                why = f"{held.describe()} stopped while sending: {gone}"
                db.execute("DELETE FROM leases WHERE launch_id = ?", (launch_id,))
            return self._relabel_in_flight(db, launch_id, why)

    @staticmethod
    def _relabel_in_flight(db: sqlite3.Connection, launch_id: str, why: str) -> list[int]:
        rows = db.execute(
            "SELECT batch_index FROM batches WHERE launch_id = ? AND state = ?",
            (launch_id, BatchState.SENDING),
        ).fetchall()
        db.execute(
            "UPDATE batches SET state = ?, error = ? WHERE launch_id = ? AND state = ?",
            (BatchState.UNKNOWN, f"caught in flight: {why}", launch_id, BatchState.SENDING),
        )
        return [r[0] for r in rows]

    def update_status(self, launch_id: str, index: int, status: str, progress: float | None) -> None:
        """A task's status read while it runs. A read that changed nothing writes nothing (an
        UPDATE of no row leaves the file as it was: no sync), so polling a queued task is cheap.

        Example:
            >>> j = Journal(":memory:")
            >>> lid = j.create_launch(label=None, trigger_id=1, host="http://h", fingerprint="f" * 64,
            ...                       format="json", n_rows=1, summary={}, batches=[(0, "d" * 64, (0,))])
            >>> j.update_status(lid, 0, "processing", 40.0); j.update_status(lid, 0, "processing", 40.0)
            >>> (j.batch(lid, 0).status, j.batch(lid, 0).progress)
            ('processing', 40.0)
        """
        with self._tx() as db:
            db.execute(
                "UPDATE batches SET status = ?, progress = ? WHERE launch_id = ? AND batch_index = ?"
                " AND (status IS NOT ? OR progress IS NOT ?)",
                (status, progress, launch_id, int(index), status, progress),
            )

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
        """The task reached a terminal state: keep counts and per-row results.

        The platform's texts are kept with the match keys redacted (:func:`redact_keys`),
        found by the key hashes recorded when the batch was sent (here or, for a batch this
        launch follows, by its origin); a text whose row's key is not known is dropped.
        """
        by_status = Counter(r.status for r in results)
        n_imported, n_failed = by_status[RowStatus.IMPORTED], by_status[RowStatus.FAILED]
        with self._tx("recording a task's results") as db:
            hashes = (
                self._key_hashes(db, launch_id, index) if error or any(r.error_text for r in results) else []
            )
            by_row = dict(zip(self._rows_of(db, launch_id, index), hashes, strict=False)) if hashes else {}
            everyone = set(hashes)
            db.execute(
                "UPDATE batches SET state = ?, status = ?, progress = 100, finished_at = ?, n_imported = ?,"
                " n_failed = ?, error = ? WHERE launch_id = ? AND batch_index = ?",
                (
                    BatchState.COMPLETED if ok else BatchState.FAILED, status, _now(), n_imported, n_failed,
                    redact_keys(error, hashes=everyone), launch_id, int(index),
                ),
            )  # fmt: skip
            index = int(index)
            if by_row:
                # fmt: off
                rows = [
                    (
                        launch_id, index, r.position, r.status, r.profile_id, r.error_code,
                        redact_keys(r.error_text, hashes={by_row[r.position]}) if r.position in by_row else None,
                    )
                    for r in results
                ]
                # fmt: on
            else:  # no text to keep (none came, or no key is known to redact it by)
                rows = [
                    (launch_id, index, r.position, r.status, r.profile_id, r.error_code, None)
                    for r in results
                ]
            db.executemany("INSERT OR REPLACE INTO row_results VALUES (?,?,?,?,?,?,?)", rows)

    @staticmethod
    def _rows_of(db: sqlite3.Connection, launch_id: str, index: int) -> list[int]:
        row = db.execute(
            "SELECT rows FROM batches WHERE launch_id = ? AND batch_index = ?", (launch_id, int(index))
        ).fetchone()
        return json.loads(row["rows"]) if row is not None else []

    @staticmethod
    def _key_hashes(db: sqlite3.Connection, launch_id: str, index: int) -> list[str]:
        """The batch's key hashes in its row order, as recorded by the launch that sent it."""
        batch = db.execute(
            "SELECT digest, origin FROM batches WHERE launch_id = ? AND batch_index = ?",
            (launch_id, int(index)),
        ).fetchone()
        if batch is None:
            return []
        sender = db.execute(
            "SELECT launch_id, batch_index FROM batches WHERE launch_id = ? AND digest = ? ORDER BY batch_index"
            " LIMIT 1",
            (batch["origin"], batch["digest"]),
        ).fetchone()
        where = (
            (sender["launch_id"], sender["batch_index"]) if sender is not None else (launch_id, int(index))
        )
        rows = db.execute(
            "SELECT key_sha256 FROM sent_rows WHERE launch_id = ? AND batch_index = ? ORDER BY rowid", where
        ).fetchall()
        return [r[0] for r in rows]

    #: The columns of :meth:`row_result_rows` and :meth:`row_result_columns`, in order.
    ROW_RESULT_NAMES: Final = ("position", "row_status", "profile_id", "row_code", "row_text")

    def row_result_rows(self, launch_id: str) -> list[tuple[Any, ...]]:
        """The row results as plain tuples (:attr:`ROW_RESULT_NAMES`, no Row objects): what a
        results frame is built from, row-wise (a transpose to columns in Python cost more than
        the read).

        Example:
            >>> Journal(":memory:").row_result_rows("nope")
            []
        """
        with self._lock, self._guard("reading it"):
            cursor = self._conn.cursor()
            cursor.row_factory = None
            return cursor.execute(
                "SELECT position, status, profile_id, error_code, error_text FROM row_results"
                " WHERE launch_id = ?",
                (launch_id,),
            ).fetchall()

    def row_result_columns(self, launch_id: str) -> dict[str, list[Any]]:
        """The row results as columns (:attr:`ROW_RESULT_NAMES`: ``position, row_status,
        profile_id, row_code, row_text``)."""
        rows = self.row_result_rows(launch_id)
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in self.ROW_RESULT_NAMES]
        return {name: list(col) for name, col in zip(self.ROW_RESULT_NAMES, columns, strict=True)}

    def was_sent(self, key: str, *, trigger_id: int | None = None) -> bool:
        """True when a row with this match key was sent (to ``trigger_id``, if given).

        Example:
            >>> Journal(":memory:").was_sent("nobody@x.io")
            False
        """
        # CROSS JOIN keeps this loop order: each batch (of the trigger's launches) probes the
        # (launch_id, batch_index, key_sha256) index once; the hashes are indexed per batch
        # only (schema 4), so a sent batch writes its own pages, not the whole file's
        sql = (
            "SELECT 1 FROM launches l CROSS JOIN batches b ON b.launch_id = l.launch_id"
            " CROSS JOIN sent_rows s ON s.launch_id = b.launch_id AND s.batch_index = b.batch_index"
            " AND s.key_sha256 = ?"
        )
        params: list[Any] = [key_hash(key)]
        if trigger_id is not None:
            sql += " WHERE l.trigger_id = ?"
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
        host = api_host(host)
        with self._tx("claiming a single send") as db:
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
        with self._tx("recording a single send") as db:
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
        host = api_host(host) if host is not None else None
        for column, value in (("digest", digest), ("trigger_id", trigger_id), ("host", host)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT * FROM single_sends" + (" WHERE " + " AND ".join(where) if where else "")
        return self._read(_single, sql + " ORDER BY rowid", params)

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
