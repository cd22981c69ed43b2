"""Running imports: the background worker for batch tasks and the synchronous single import.

One worker thread takes tasks in the order they arrived (so seeded ids repeat exactly).
Each chunk of profiles is one SQLite transaction together with the task's progress, so
whatever the worker was doing when the process stopped, a restart on the same ``--db``
resumes the task at the first profile not yet committed: no profile is imported twice
and no trigger is sent twice.

Example:
    >>> from toolkit.sandbox.store import Store
    >>> engine = Engine(Store(), IdSource(1))
    >>> env = ImportEnvelope(trigger_id=5, matching="email", profiles=[])
    >>> engine.import_one(env, {"email": "x@example.com"})
    {'profile_id': '480df3004d38894d667e892d'}
    >>> engine.import_one(env, {"email": "bad@"})
    {'error': 400, 'error_text': "invalid email 'bad@'"}
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Final

from toolkit.core.contract import MATCHING_MODES

from .envelope import ImportEnvelope
from .knobs import IdSource
from .profiles import ProfileError, check_profile, index_keys, merge
from .store import Store

__all__ = ["Engine"]

log = logging.getLogger("toolkit.sandbox")

#: Profiles per transaction when no processing rate is set: big enough to be fast, small
#: enough that a status poll never waits long for the lock.
CHUNK: Final = 200


class Engine:
    """Imports profiles into a :class:`Store`; batch tasks run on one background thread."""

    def __init__(self, store: Store, ids: IdSource, processing_rate: float | None = None) -> None:
        self.store = store
        self.ids = ids
        self.processing_rate = processing_rate
        self._queue: collections.deque[str] = collections.deque()
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._generation = 0  # bumped by reset(): a task from before a reset is abandoned
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker, first re-queuing tasks a previous run left unfinished."""
        resumed = self.store.unfinished_tasks()
        if resumed:
            log.info("resuming %d unfinished task(s)", len(resumed))
        with self._wake:
            self._queue.extend(resumed)
        self._thread = threading.Thread(target=self._work, name="sandbox-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker between two chunks; an unfinished task stays resumable."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def reset(self) -> None:
        """Forget all state and drop queued work."""
        with self.store.transaction(), self._wake:
            self.store.reset()
            self._queue.clear()
            self._generation += 1

    # --- work ------------------------------------------------------------------------------
    def submit(self, env: ImportEnvelope) -> str:
        """Record a task for ``env`` and queue it; returns its id at once."""
        with self.store.transaction():
            task_id = self.ids.task_id()
            while self.store.has_task(task_id):  # a seeded run restarted on the same --db
                task_id = self.ids.task_id()
            self.store.create_task(task_id, env.to_dict())
        with self._wake:
            self._queue.append(task_id)
            self._wake.notify()
        return task_id

    def import_one(
        self, env: ImportEnvelope, fields: dict[str, Any], task_id: str | None = None
    ) -> dict[str, Any]:
        """Import one profile (and log its trigger send); the per-profile result."""
        with self.store.transaction():
            return self._import(env, fields, task_id)

    def _import(self, env: ImportEnvelope, fields: dict[str, Any], task_id: str | None) -> dict[str, Any]:
        try:
            checked = check_profile(fields, env)
            if checked.profile_id is not None:
                candidates = [checked.profile_id] if self.store.has_profile(checked.profile_id) else []
            else:
                candidates = []
                for kinds, value in checked.keys:
                    candidates.extend(p for p in self.store.find(kinds, value) if p not in candidates)
            if len(candidates) > 1:
                raise ProfileError(409, f"more than one profile matches ({len(candidates)} found)")
            if candidates:
                profile_id = candidates[0]
                stored = self.store.get_profile(profile_id)
                assert stored is not None
                new_fields, new_subs = merge(*stored, checked)
            elif not MATCHING_MODES[env.matching].creates:
                raise ProfileError(404, f"no profile with profile_id {checked.profile_id!r}")
            else:
                profile_id = self.ids.profile_id()
                while self.store.has_profile(profile_id):
                    profile_id = self.ids.profile_id()
                new_fields, new_subs = checked.fields, checked.subscriptions
        except ProfileError as exc:
            return {"error": exc.code, "error_text": exc.text}
        self.store.put_profile(
            profile_id, new_fields, new_subs, index_keys(new_fields, new_subs), created=not candidates
        )
        if not env.skip_triggers:
            self.store.add_send(
                env.trigger_id, profile_id, task_id, env.content, env.custom_data, env.attachments
            )
        return {"profile_id": profile_id}

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._wake:
                while not self._queue and not self._stop.is_set():
                    self._wake.wait()
                if self._stop.is_set():
                    return
                task_id = self._queue.popleft()
                generation = self._generation
            try:
                self._run(task_id, generation)
            except Exception as exc:  # a sandbox bug: fail the task, keep the server up
                log.exception("task %s failed", task_id)
                self.store.fail_task(task_id, f"internal error: {type(exc).__name__}")

    def _run(self, task_id: str, generation: int) -> None:
        started = self.store.start_task(task_id)
        if started is None:
            return
        request, done = started
        env = ImportEnvelope.from_dict(request)
        total = len(env.profiles)
        rate = self.processing_rate
        step = 1 if rate else CHUNK
        t0, first = time.monotonic(), done
        while done < total:
            if rate:  # profile i is done at t0 + (i + 1) / rate: a steady pace, no drift
                delay = t0 + (done - first + 1) / rate - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
            if self._stop.is_set():
                return  # left 'processing': the next start resumes it
            end = min(total, done + step)
            with self.store.transaction():
                if self._generation != generation:
                    return
                results = [self._import(env, fields, task_id) for fields in env.profiles[done:end]]
                if not self.store.record_results(task_id, done, results, last=end == total):
                    return
            done = end
