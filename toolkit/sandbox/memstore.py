"""The sandbox's state in memory (the default, without ``--db``): the same answers as the SQLite
:class:`~toolkit.sandbox.store.Store`, at a fraction of the cost per profile.

SQLite in memory cost the import most of its time: a chunk of 1,000 profiles is ~6,000 rows in
four B-trees (profiles, match keys, results, sends) and one query per match key. Here:

- a profile is a row number in a dict and two ``orjson`` blobs, its fields and its
  subscriptions (~400 bytes for a typical profile, where its dicts and lists would be ~1.5 KB and
  hundreds of thousands of objects for Python's cyclic collector to walk again and again);
  ``/_sandbox/profiles`` embeds the blobs as they are (``orjson.Fragment``);
- the match-key index is one dict per index kind, value -> profile id (a list when several
  profiles share the value), so a lookup is two dict reads;
- a task's results are kept compact (a profile id, or ``(error, error_text)``) and answered as
  dicts only when asked for;
- a chunk's trigger sends are one group (the envelope's content, custom data and attachments
  serialized once, and the list of profile ids), expanded when ``/_sandbox/sends`` is read.

One re-entrant lock guards everything, as in the SQLite store; :meth:`MemoryStore.transaction`
holds it (there is no rollback: nothing survives the process, and a failed chunk fails its task).

Example:
    >>> store = MemoryStore()
    >>> with store.transaction():
    ...     store.put_profile("a" * 24, {"email": "a@b.co"}, [], {("email", "a@b.co")}, created=True)
    >>> store.find(("email",), "a@b.co")
    ['aaaaaaaaaaaaaaaaaaaaaaaa']
    >>> store.get_profile("a" * 24)
    ({'email': 'a@b.co'}, [])
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

from toolkit.core.contract import TaskState

from .profiles import index_keys
from .store import Result, iso

__all__ = ["MemoryStore"]

_NO_SUBSCRIPTIONS = b"[]"


def _dumps(value: Any) -> bytes:
    """``orjson.dumps``, copied to a bytes object of its own size: orjson writes into a large
    buffer and shrinks it, which leaves each small result holding ~3.7 KB of the process's
    memory (measured: 100,000 profiles' blobs 369 MB as they come, 38 MB copied)."""
    return bytes(memoryview(orjson.dumps(value)))


@dataclass(slots=True)
class _Task:
    id: str
    total: int
    trigger_id: int
    matching: str
    created_at: float
    # The request, only until the task is over (a restart cannot resume an in-memory task, but
    # a task taken back from the queue can still be started from it).
    request: dict[str, Any] | None
    status: str = TaskState.QUEUED.value
    done: int = 0
    error_text: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    results: list[Result] = field(default_factory=list)
    failed: int = 0


@dataclass(slots=True)
class _Sends:
    """The trigger sends of one chunk (or one single import): one envelope, many profiles."""

    first_id: int
    trigger_id: int
    task_id: str | None
    content: bytes | None
    custom_data: bytes | None
    attachments: bytes
    time: float
    profile_ids: list[str]


class MemoryStore:
    """Thread-safe in-memory state of one sandbox (the interface of the SQLite ``Store``)."""

    path = ":memory:"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        #: The custom-field index kinds kept (the others are built on demand, as in ``Store``).
        self.field_kinds: set[str] = set()
        self._clear()

    def _clear(self) -> None:
        self._row: dict[str, int] = {}  # profile id -> row (creation order)
        self._ids: list[str] = []
        self._fields: list[bytes] = []  # orjson, per row
        self._subs: list[bytes] = []
        self._created: list[float] = []
        self._updated: list[float] = []
        self._index: dict[str, dict[str, str | list[str]]] = {}
        self._tasks: dict[str, _Task] = {}
        self._sends: list[_Sends] = []
        self._send_count = 0
        self.field_kinds = set()

    def close(self) -> None:
        """Nothing to close: the state goes with the process."""

    @contextmanager
    def transaction(self) -> Iterator[MemoryStore]:
        """Hold the lock for everything inside (re-entrant)."""
        with self.lock:
            yield self

    # --- profiles --------------------------------------------------------------------------
    def find(self, kinds: tuple[str, ...], value: str) -> list[str]:
        """Ids of the profiles indexed under ``value`` for any of ``kinds``, oldest first."""
        found: list[str] = []
        index = self._index
        for kind in kinds:
            values = index.get(kind)
            hit = None if values is None else values.get(value)
            if hit is None:
                continue
            for profile_id in (hit,) if type(hit) is str else hit:
                if profile_id not in found:
                    found.append(profile_id)
        if len(found) > 1:
            found.sort(key=self._row.__getitem__)
        return found

    def get_profile(self, profile_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """A stored profile's fields and subscriptions, or None."""
        with self.lock:
            row = self._row.get(profile_id)
            return None if row is None else (orjson.loads(self._fields[row]), orjson.loads(self._subs[row]))

    def has_profile(self, profile_id: str) -> bool:
        """True when a profile with this id exists."""
        return profile_id in self._row

    def _add_key(self, kind: str, value: str, profile_id: str) -> None:
        values = self._index.get(kind)
        if values is None:
            values = self._index[kind] = {}
        hit = values.get(value)
        if hit is None:
            values[value] = profile_id
        elif isinstance(hit, str):
            if hit != profile_id:
                values[value] = [hit, profile_id]
        elif profile_id not in hit:
            hit.append(profile_id)

    def _drop_key(self, kind: str, value: str, profile_id: str) -> None:
        values = self._index.get(kind)
        hit = values.get(value) if values is not None else None
        if hit is None or values is None:
            return
        if isinstance(hit, str):
            if hit == profile_id:
                del values[value]
        elif profile_id in hit:
            hit.remove(profile_id)
            if len(hit) == 1:
                values[value] = hit[0]

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
        """Insert or replace a profile and its match keys."""
        now = time.time() if now is None else now
        fields_blob = _dumps(fields)
        subs_blob = _dumps(subscriptions) if subscriptions else _NO_SUBSCRIPTIONS
        with self.lock:
            if created:
                self._row[profile_id] = len(self._ids)
                self._ids.append(profile_id)
                self._fields.append(fields_blob)
                self._subs.append(subs_blob)
                self._created.append(now)
                self._updated.append(now)
            else:
                row = self._row[profile_id]
                old_fields, old_subs = orjson.loads(self._fields[row]), orjson.loads(self._subs[row])
                for kind, value in index_keys(old_fields, old_subs, None):
                    self._drop_key(kind, value, profile_id)
                self._fields[row], self._subs[row] = fields_blob, subs_blob
                self._updated[row] = now
            index = self._index
            for kind, value in keys:  # _add_key, its usual case inlined (a new value)
                values = index.get(kind)
                if values is not None and value not in values:
                    values[value] = profile_id
                else:
                    self._add_key(kind, value, profile_id)

    def put_blobs(
        self,
        profile_id: str,
        fields: bytes,
        subscriptions: bytes,
        keys: Iterable[tuple[str, str]],
        *,
        now: float,
    ) -> None:
        """Insert a new profile already serialized (``orjson``, as :meth:`put_profile` stores
        it) with its match keys: a profile the second process prepared (prepare.py)."""
        with self.lock:
            self._row[profile_id] = len(self._ids)
            self._ids.append(profile_id)
            self._fields.append(fields)
            self._subs.append(subscriptions)
            self._created.append(now)
            self._updated.append(now)
            index = self._index
            for kind, value in keys:  # as put_profile
                values = index.get(kind)
                if values is not None and value not in values:
                    values[value] = profile_id
                else:
                    self._add_key(kind, value, profile_id)

    def profiles_to_index(self) -> Iterator[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
        """Every stored profile's id, fields and subscriptions (call holding the lock)."""
        for profile_id, fields, subs in zip(self._ids, self._fields, self._subs, strict=True):
            yield profile_id, orjson.loads(fields), orjson.loads(subs)

    def add_field_index(self, kind: str, entries: Iterable[tuple[str, str]]) -> None:
        """Index every stored profile under custom-field ``kind``: ``entries`` are (value, id)."""
        with self.lock:
            for value, profile_id in entries:
                self._add_key(kind, value, profile_id)
            self.field_kinds.add(kind)

    # --- sends -----------------------------------------------------------------------------
    def add_sends(
        self,
        trigger_id: int,
        profile_ids: list[str],
        task_id: str | None,
        content: dict[str, Any] | None,
        custom_data: dict[str, Any] | None,
        attachments: list[dict[str, Any]],
    ) -> None:
        """Log one trigger send per profile, in order (one group: the envelope is shared)."""
        if not profile_ids:
            return
        with self.lock:
            self._sends.append(
                _Sends(
                    self._send_count + 1,
                    trigger_id,
                    task_id,
                    None if content is None else orjson.dumps(content),
                    None if custom_data is None else orjson.dumps(custom_data),
                    orjson.dumps([{"name": a["name"], "size": a["size"]} for a in attachments]),
                    time.time(),
                    list(profile_ids),
                )
            )
            self._send_count += len(profile_ids)

    def add_send(
        self,
        trigger_id: int,
        profile_id: str,
        task_id: str | None,
        content: dict[str, Any] | None,
        custom_data: dict[str, Any] | None,
        attachments: list[dict[str, Any]],
    ) -> None:
        """Log one trigger send."""
        self.add_sends(trigger_id, [profile_id], task_id, content, custom_data, attachments)

    # --- tasks -----------------------------------------------------------------------------
    def has_task(self, task_id: str) -> bool:
        """True when a task with this id exists."""
        return task_id in self._tasks

    def create_task(self, task_id: str, request: dict[str, Any]) -> None:
        """Record a queued task (its request is kept, not copied, until the task is over)."""
        with self.lock:
            self._tasks[task_id] = _Task(
                task_id,
                len(request["profiles"]),
                request["trigger_id"],
                request["matching"],
                time.time(),
                request,
            )

    def start_task(
        self, task_id: str, *, load_request: bool = True
    ) -> tuple[dict[str, Any] | None, int] | None:
        """Mark a task processing; its request (None unless ``load_request``) and how many
        profiles are already done."""
        with self.lock:
            task = self._tasks.get(task_id)
            if task is None:
                return None
            task.status = TaskState.PROCESSING.value
            if task.started_at is None:
                task.started_at = time.time()
            return (task.request if load_request else None), task.done

    def record_results(self, task_id: str, start: int, results: list[Result], *, last: bool) -> bool:
        """Store results ``start..`` (a profile id, or ``(error, error_text)``) and advance the
        task; False when the task is gone (reset)."""
        with self.lock:
            task = self._tasks.get(task_id)
            if task is None or task.done != start:
                return False
            task.results.extend(results)
            task.failed += sum(1 for r in results if type(r) is not str)
            task.done = start + len(results)
            if last:
                task.status = TaskState.COMPLETED.value
                task.finished_at = time.time()
                task.request = None
            return True

    def fail_task(self, task_id: str, text: str) -> None:
        """Mark a task failed (an internal error, not a profile's)."""
        with self.lock:
            task = self._tasks.get(task_id)
            if task is not None:
                task.status, task.error_text = TaskState.FAILED.value, text
                task.finished_at, task.request = time.time(), None

    def task(self, task_id: str) -> dict[str, Any] | None:
        """A task's status, progress and, when it is over, its per-profile results in input order."""
        with self.lock:
            task = self._tasks.get(task_id)
            if task is None:
                return None
            answer: dict[str, Any] = {
                "id": task.id,
                "status": task.status,
                "total": task.total,
                "done": task.done,
                "error_text": task.error_text,
            }
            if task.status == TaskState.COMPLETED:
                answer["results"] = [
                    {"profile_id": r} if type(r) is str else {"error": r[0], "error_text": r[1]}
                    for r in task.results
                ]
            return answer

    def unfinished_tasks(self) -> list[str]:
        """Tasks queued or processing, oldest first."""
        with self.lock:
            unfinished = (TaskState.QUEUED.value, TaskState.PROCESSING.value)
            return [t.id for t in self._tasks.values() if t.status in unfinished]

    # --- inspection ------------------------------------------------------------------------
    def list_sends(self, trigger_id: int | None = None, task_id: str | None = None) -> list[dict[str, Any]]:
        """The trigger sends, oldest first, optionally for one trigger or task: ready for
        ``orjson.dumps`` (content, custom data and attachments are ``orjson.Fragment`` s)."""
        with self.lock:
            groups = [
                g
                for g in self._sends
                if (trigger_id is None or g.trigger_id == trigger_id)
                and (task_id is None or g.task_id == task_id)
            ]
        out: list[dict[str, Any]] = []
        for g in groups:
            content = None if g.content is None else orjson.Fragment(g.content)
            custom = None if g.custom_data is None else orjson.Fragment(g.custom_data)
            attachments = orjson.Fragment(g.attachments)
            when = iso(g.time)
            out.extend(
                {
                    "id": g.first_id + i,
                    "trigger_id": g.trigger_id,
                    "profile_id": profile_id,
                    "task_id": g.task_id,
                    "content": content,
                    "custom_data": custom,
                    "attachments": attachments,
                    "time": when,
                }
                for i, profile_id in enumerate(g.profile_ids)
            )
        return out

    def list_profiles(self) -> list[dict[str, Any]]:
        """Every stored profile, oldest first: ready for ``orjson.dumps`` (fields and
        subscriptions are ``orjson.Fragment`` s of the stored JSON)."""
        with self.lock:
            rows = list(zip(self._ids, self._fields, self._subs, self._created, self._updated, strict=True))
        # A chunk's profiles share one time: each distinct time is formatted once.
        times: dict[float, str | None] = {}
        return [
            {
                "profile_id": profile_id,
                "fields": orjson.Fragment(fields),
                "subscriptions": orjson.Fragment(subs),
                "created_at": times[created] if created in times else times.setdefault(created, iso(created)),
                "updated_at": times[updated] if updated in times else times.setdefault(updated, iso(updated)),
            }
            for profile_id, fields, subs, created, updated in rows
        ]

    def list_tasks(self) -> list[dict[str, Any]]:
        """Every task with its counts, oldest first."""
        with self.lock:
            return [
                {
                    "task_id": t.id,
                    "status": t.status,
                    "trigger_id": t.trigger_id,
                    "matching": t.matching,
                    "total": t.total,
                    "done": t.done,
                    "imported": len(t.results) - t.failed,
                    "failed": t.failed,
                    "error_text": t.error_text,
                    "created_at": iso(t.created_at),
                    "started_at": iso(t.started_at),
                    "finished_at": iso(t.finished_at),
                }
                for t in self._tasks.values()
            ]

    def reset(self) -> None:
        """Forget everything: profiles, tasks, results and sends."""
        with self.lock:
            self._clear()
