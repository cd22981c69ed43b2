"""The sandbox's state in SQLite: profiles (with a match-key index), tasks, results, sends.

One code path serves both lives of the sandbox: ``:memory:`` (the default, gone at exit)
and a file (``--db PATH``, kept across restarts). One connection, guarded by one
re-entrant lock: the worker thread and the request threads take turns, and a
:meth:`Store.transaction` makes a chunk of profiles atomic with its task's progress.

New profiles and sends are written in bulk: inside a transaction they wait in a pending list
and go to SQLite in one ``executemany`` each, when the transaction commits or as soon as a
read could see them (a lookup of a key a pending profile holds, that profile's fields, any
other query). One statement per profile instead of a dozen is what lets a chunk of 2,000
profiles import in milliseconds; no reader ever sees the store without them.

Example:
    >>> store = Store()
    >>> with store.transaction():
    ...     store.put_profile("a" * 24, {"email": "a@b.co"}, [], {("email", "a@b.co")}, created=True)
    >>> store.find(("email",), "a@b.co")
    ['aaaaaaaaaaaaaaaaaaaaaaaa']
    >>> store.close()
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson

from toolkit.core.contract import TaskState

__all__ = ["Result", "Store", "iso"]

#: One profile's result in a task: its profile id, or ``(error, error_text)``.
Result = str | tuple[int, str]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    id TEXT PRIMARY KEY,
    fields BLOB NOT NULL,
    subscriptions BLOB NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS profile_keys (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    PRIMARY KEY (kind, value, profile_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS profile_keys_by_profile ON profile_keys (profile_id);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    total INTEGER NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    request BLOB NOT NULL,
    trigger_id INTEGER NOT NULL,
    matching TEXT NOT NULL,
    error_text TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS task_results (
    task_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    profile_id TEXT,
    error INTEGER,
    error_text TEXT,
    PRIMARY KEY (task_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sends (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    trigger_id INTEGER NOT NULL,
    profile_id TEXT NOT NULL,
    task_id TEXT,
    content BLOB,
    custom_data BLOB,
    attachments BLOB NOT NULL,
    time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sends_by_trigger ON sends (trigger_id);
CREATE TABLE IF NOT EXISTS indexed_fields (kind TEXT PRIMARY KEY) WITHOUT ROWID;
"""


def iso(ts: float | None) -> str | None:
    """An epoch time as ISO 8601 UTC with milliseconds.

    Example:
        >>> iso(0.5)
        '1970-01-01T00:00:00.500+00:00'
    """
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def _json(value: Any) -> bytes | None:
    return None if value is None else orjson.dumps(value)


def _load(blob: bytes | None) -> Any:
    return None if blob is None else orjson.loads(blob)


class Store:
    """Thread-safe SQLite state of one sandbox. ``path`` is a file or ``":memory:"``."""

    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        self.lock = threading.RLock()
        self._depth = 0
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction spans
        # exactly what transaction() wraps and nothing else.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        had_field_table = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'indexed_fields'"
        ).fetchone()
        self._db.executescript(_SCHEMA)
        if not had_field_table:  # a --db file of an older sandbox indexed every field it saw
            self._db.execute(
                "INSERT OR IGNORE INTO indexed_fields SELECT DISTINCT kind FROM profile_keys "
                "WHERE kind GLOB 'field:*' OR kind GLOB 'subfield:*'"
            )
        #: The custom-field index kinds kept in ``profile_keys`` (the others are built on demand).
        self.field_kinds: set[str] = self._load_field_kinds()
        # Written at the next flush (see the module's docstring); only ever non-empty inside a
        # transaction, so only its owner (holding the lock) can observe them.
        self._new_profiles: list[tuple[str, bytes, bytes, float, float]] = []
        self._new_keys: list[tuple[str, str, str]] = []
        self._new_sends: list[tuple[Any, ...]] = []
        self._pending_keys: set[tuple[str, str]] = set()
        self._pending_ids: set[str] = set()

    def close(self) -> None:
        """Close the database (a file database keeps everything for the next start)."""
        with self.lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """Hold the lock and make everything inside one atomic transaction (re-entrant)."""
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self
                self._flush()
            except BaseException:
                self._discard()
                self._db.execute("ROLLBACK")
                self.field_kinds = self._load_field_kinds()  # an index built inside is undone
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._depth = 0

    def _load_field_kinds(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT kind FROM indexed_fields")}

    def profiles_to_index(self) -> Iterator[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
        """Every stored profile's id, fields and subscriptions (call inside a transaction)."""
        self._flush()
        for profile_id, fields, subs in self._db.execute("SELECT id, fields, subscriptions FROM profiles"):
            yield profile_id, orjson.loads(fields), orjson.loads(subs)

    def add_field_index(self, kind: str, entries: Iterable[tuple[str, str]]) -> None:
        """Index every stored profile under custom-field ``kind``: ``entries`` are (value, id)."""
        with self.transaction():
            self._flush()
            self._db.executemany(
                "INSERT OR IGNORE INTO profile_keys (kind, value, profile_id) VALUES (?,?,?)",
                [(kind, value, profile_id) for value, profile_id in entries],
            )
            self._db.execute("INSERT OR IGNORE INTO indexed_fields (kind) VALUES (?)", (kind,))
            self.field_kinds.add(kind)

    def _flush(self) -> None:
        """Write the pending profiles, keys and sends, in the order they were made."""
        if self._new_profiles:
            self._db.executemany(
                "INSERT INTO profiles (id, fields, subscriptions, created_at, updated_at) VALUES (?,?,?,?,?)",
                self._new_profiles,
            )
            self._db.executemany(
                "INSERT OR IGNORE INTO profile_keys (kind, value, profile_id) VALUES (?,?,?)", self._new_keys
            )
        if self._new_sends:
            self._db.executemany(
                "INSERT INTO sends (trigger_id, profile_id, task_id, content, custom_data, attachments, time) "
                "VALUES (?,?,?,?,?,?,?)",
                self._new_sends,
            )
        self._discard()

    def _discard(self) -> None:
        self._new_profiles, self._new_keys, self._new_sends = [], [], []
        self._pending_keys.clear()
        self._pending_ids.clear()

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self.lock:
            self._flush()  # any query sees every profile and send made before it
            cur = self._db.execute(sql, tuple(params))
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    # --- profiles --------------------------------------------------------------------------
    def find(self, kinds: tuple[str, ...], value: str) -> list[str]:
        """Ids of the profiles indexed under ``value`` for any of ``kinds``, oldest first."""
        marks = ",".join("?" * len(kinds))
        sql = (
            f"SELECT DISTINCT k.profile_id FROM profile_keys k JOIN profiles p ON p.id = k.profile_id "
            f"WHERE k.kind IN ({marks}) AND k.value = ? ORDER BY p.rowid"
        )
        with self.lock:
            if any((kind, value) in self._pending_keys for kind in kinds):
                self._flush()  # a profile made earlier in this transaction holds the key
            return [row[0] for row in self._db.execute(sql, (*kinds, value))]

    def get_profile(self, profile_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """A stored profile's fields and subscriptions, or None."""
        rows = self._rows("SELECT fields, subscriptions FROM profiles WHERE id = ?", (profile_id,))
        return (_load(rows[0]["fields"]), _load(rows[0]["subscriptions"])) if rows else None

    def has_profile(self, profile_id: str) -> bool:
        """True when a profile with this id exists."""
        with self.lock:
            if profile_id in self._pending_ids:
                return True
            return (
                self._db.execute("SELECT 1 FROM profiles WHERE id = ?", (profile_id,)).fetchone() is not None
            )

    def put_profile(
        self,
        profile_id: str,
        fields: dict[str, Any],
        subscriptions: list[dict[str, Any]],
        keys: set[tuple[str, str]],
        *,
        created: bool,
        now: float | None = None,
    ) -> None:
        """Insert (at the next flush) or replace (now) a profile and its match keys."""
        now = time.time() if now is None else now
        with self.transaction():
            if created:
                self._new_profiles.append(
                    (profile_id, orjson.dumps(fields), orjson.dumps(subscriptions), now, now)
                )
                self._new_keys.extend((kind, value, profile_id) for kind, value in keys)
                self._pending_keys.update(keys)
                self._pending_ids.add(profile_id)
                return
            self._flush()  # an update is rare: write everything in order, then it
            self._db.execute(
                "UPDATE profiles SET fields = ?, subscriptions = ?, updated_at = ? WHERE id = ?",
                (orjson.dumps(fields), orjson.dumps(subscriptions), now, profile_id),
            )
            self._db.execute("DELETE FROM profile_keys WHERE profile_id = ?", (profile_id,))
            self._db.executemany(
                "INSERT OR IGNORE INTO profile_keys (kind, value, profile_id) VALUES (?,?,?)",
                [(kind, value, profile_id) for kind, value in keys],
            )

    # --- sends -----------------------------------------------------------------------------
    def add_send(
        self,
        trigger_id: int,
        profile_id: str,
        task_id: str | None,
        content: dict[str, Any] | None,
        custom_data: dict[str, Any] | None,
        attachments: list[dict[str, Any]],
    ) -> None:
        """Log one trigger send (written at the next flush, in order)."""
        with self.transaction():
            self._new_sends.append(
                (
                    trigger_id,
                    profile_id,
                    task_id,
                    _json(content),
                    _json(custom_data),
                    orjson.dumps([{"name": a["name"], "size": a["size"]} for a in attachments]),
                    time.time(),
                ),
            )

    def add_sends(
        self,
        trigger_id: int,
        profile_ids: list[str],
        task_id: str | None,
        content: dict[str, Any] | None,
        custom_data: dict[str, Any] | None,
        attachments: list[dict[str, Any]],
    ) -> None:
        """Log one trigger send per profile, in order (the envelope serialized once)."""
        shared = (
            _json(content),
            _json(custom_data),
            orjson.dumps([{"name": a["name"], "size": a["size"]} for a in attachments]),
            time.time(),
        )
        with self.transaction():
            self._new_sends.extend((trigger_id, p, task_id, *shared) for p in profile_ids)

    # --- tasks -----------------------------------------------------------------------------
    def has_task(self, task_id: str) -> bool:
        """True when a task with this id exists."""
        return bool(self._rows("SELECT 1 AS x FROM tasks WHERE id = ?", (task_id,)))

    def create_task(self, task_id: str, request: dict[str, Any]) -> None:
        """Record a queued task with everything needed to run (or resume) it."""
        with self.lock:
            self._db.execute(
                "INSERT INTO tasks (id, status, total, request, trigger_id, matching, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    task_id,
                    TaskState.QUEUED.value,
                    len(request["profiles"]),
                    orjson.dumps(request),
                    request["trigger_id"],
                    request["matching"],
                    time.time(),
                ),
            )

    def start_task(
        self, task_id: str, *, load_request: bool = True
    ) -> tuple[dict[str, Any] | None, int] | None:
        """Mark a task processing; its request (None unless ``load_request``: the caller still
        holds it) and how many profiles are already done."""
        column = "request" if load_request else "NULL AS request"
        with self.transaction():
            rows = self._rows(f"SELECT {column}, done, started_at FROM tasks WHERE id = ?", (task_id,))
            if not rows:
                return None
            self._db.execute(
                "UPDATE tasks SET status = ?, started_at = COALESCE(started_at, ?) WHERE id = ?",
                (TaskState.PROCESSING.value, time.time(), task_id),
            )
            return _load(rows[0]["request"]), rows[0]["done"]

    def record_results(self, task_id: str, start: int, results: list[Result], *, last: bool) -> bool:
        """Store results ``start..`` (a profile id, or ``(error, error_text)``) and advance the
        task; False when the task is gone (reset)."""
        with self.transaction():
            cur = self._db.execute(
                "UPDATE tasks SET done = ?, status = ?, finished_at = ? WHERE id = ? AND done = ?",
                (
                    start + len(results),
                    (TaskState.COMPLETED if last else TaskState.PROCESSING).value,
                    time.time() if last else None,
                    task_id,
                    start,
                ),
            )
            if cur.rowcount != 1:
                return False
            self._db.executemany(
                "INSERT INTO task_results (task_id, idx, profile_id, error, error_text) VALUES (?,?,?,?,?)",
                [
                    (task_id, start + i, r, None, None) if type(r) is str else (task_id, start + i, None, *r)
                    for i, r in enumerate(results)
                ],
            )
            return True

    def fail_task(self, task_id: str, text: str) -> None:
        """Mark a task failed (an internal error, not a profile's)."""
        with self.lock:
            self._db.execute(
                "UPDATE tasks SET status = ?, error_text = ?, finished_at = ? WHERE id = ?",
                (TaskState.FAILED.value, text, time.time(), task_id),
            )

    def task(self, task_id: str) -> dict[str, Any] | None:
        """A task's status, progress and, when it is over, its per-profile results in input order."""
        rows = self._rows(
            "SELECT id, status, total, done, error_text FROM tasks WHERE id = ?",
            (task_id,),
        )
        if not rows:
            return None
        task = rows[0]
        if task["status"] == TaskState.COMPLETED:
            results = self._rows(
                "SELECT profile_id, error, error_text FROM task_results WHERE task_id = ? ORDER BY idx",
                (task_id,),
            )
            task["results"] = [
                {"profile_id": r["profile_id"]}
                if r["profile_id"] is not None
                else {"error": r["error"], "error_text": r["error_text"]}
                for r in results
            ]
        return task

    def unfinished_tasks(self) -> list[str]:
        """Tasks queued or processing (after a restart), oldest first."""
        rows = self._rows(
            "SELECT id FROM tasks WHERE status IN (?, ?) ORDER BY rowid",
            (TaskState.QUEUED.value, TaskState.PROCESSING.value),
        )
        return [r["id"] for r in rows]

    # --- inspection ------------------------------------------------------------------------
    def list_sends(self, trigger_id: int | None = None, task_id: str | None = None) -> list[dict[str, Any]]:
        """The trigger sends, oldest first, optionally for one trigger or task."""
        where: list[str] = []
        params: list[Any] = []
        if trigger_id is not None:
            where.append("trigger_id = ?")
            params.append(trigger_id)
        if task_id is not None:
            where.append("task_id = ?")
            params.append(task_id)
        sql = "SELECT * FROM sends" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        return [
            {
                "id": r["id"],
                "trigger_id": r["trigger_id"],
                "profile_id": r["profile_id"],
                "task_id": r["task_id"],
                "content": _load(r["content"]),
                "custom_data": _load(r["custom_data"]),
                "attachments": _load(r["attachments"]),
                "time": iso(r["time"]),
            }
            for r in self._rows(sql, params)
        ]

    def list_profiles(self) -> list[dict[str, Any]]:
        """Every stored profile, oldest first."""
        return [
            {
                "profile_id": r["id"],
                "fields": _load(r["fields"]),
                "subscriptions": _load(r["subscriptions"]),
                "created_at": iso(r["created_at"]),
                "updated_at": iso(r["updated_at"]),
            }
            for r in self._rows("SELECT * FROM profiles ORDER BY rowid")
        ]

    def list_tasks(self) -> list[dict[str, Any]]:
        """Every task with its counts, oldest first."""
        sql = """
            SELECT t.*,
                   (SELECT COUNT(*) FROM task_results r WHERE r.task_id = t.id AND r.profile_id IS NOT NULL)
                       AS imported,
                   (SELECT COUNT(*) FROM task_results r WHERE r.task_id = t.id AND r.profile_id IS NULL)
                       AS failed
            FROM tasks t ORDER BY t.rowid
        """
        return [
            {
                "task_id": r["id"],
                "status": r["status"],
                "trigger_id": r["trigger_id"],
                "matching": r["matching"],
                "total": r["total"],
                "done": r["done"],
                "imported": r["imported"],
                "failed": r["failed"],
                "error_text": r["error_text"],
                "created_at": iso(r["created_at"]),
                "started_at": iso(r["started_at"]),
                "finished_at": iso(r["finished_at"]),
            }
            for r in self._rows(sql)
        ]

    def reset(self) -> None:
        """Forget everything: profiles, tasks, results and sends."""
        with self.transaction():
            for table in ("profile_keys", "profiles", "task_results", "tasks", "sends", "indexed_fields"):
                self._db.execute(f"DELETE FROM {table}")
            self.field_kinds = set()
