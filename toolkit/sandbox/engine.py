"""Running imports: the background worker for batch tasks and the synchronous single import.

One worker thread takes tasks in the order they arrived (so seeded ids repeat exactly).
Each chunk of profiles is one SQLite transaction together with the task's progress, so
whatever the worker was doing when the process stopped, a restart on the same ``--db``
resumes the task at the first profile not yet committed: no profile is imported twice
and no trigger is sent twice.

The worker can be paused and stepped (:meth:`Engine.pause`, :meth:`Engine.step`,
:meth:`Engine.resume`): a test then sees a task ``queued``, ``processing`` at a progress it
chose, and ``completed``, without racing the clock.

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
import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

import orjson

from toolkit.core.contract import MATCHING_MODES

from .envelope import ImportEnvelope, RawProfiles
from .gc_pause import freeze_parsed, paused_gc, thaw_when_idle
from .knobs import IdSource
from .prepare import PREPARE_FROM, PreparedChunk, Preparer, RequestSource
from .profiles import (
    EXACT,
    FIELD_KIND_PREFIXES,
    Checked,
    Checks,
    ProfileError,
    check_profile,
    checked_profiles,
    chunk_checks,
    index_keys,
    merge,
)
from .store import Result, Store

if TYPE_CHECKING:
    from .memstore import MemoryStore

__all__ = ["Engine"]

#: A prepared profile's stored fields and subscriptions (``orjson``) and its match keys.
Blobs = tuple[bytes, bytes, set[tuple[str, str]]]

log = logging.getLogger("toolkit.sandbox")

#: Profiles per transaction when no processing rate is set: big enough that a chunk's writes
#: go to SQLite in a few bulk statements, small enough that a status poll never waits long
#: for the lock (a chunk takes tens of milliseconds).
CHUNK: Final = 1000
#: Seconds without a task before the worker collects what bulk tasks left (gc_pause.py).
_COLLECT_AFTER_IDLE: Final = 0.5
#: Fewest profiles in a chunk for its emails and phones to be checked column-wise (below it, the
#: frames' fixed cost exceeds the saving).
_COLUMNWISE_FROM: Final = 64


class Engine:
    """Imports profiles into a :class:`Store`; batch tasks run on one background thread."""

    #: With a second process (``two_processes``): False (the default) waits for a chunk only
    #: once the preparer has begun it, checking here any chunk it has not reached; True
    #: waits for each of its chunks (which process checked what then no longer depends on
    #: timing: a test that counts the preparer's chunks sets it).
    wait_for_preparer: bool = False

    def __init__(
        self,
        store: Store | MemoryStore,
        ids: IdSource,
        processing_rate: float | None = None,
        *,
        paused: bool = False,
        two_processes: bool = False,
    ) -> None:
        self.store = store
        self.ids = ids
        self.processing_rate = processing_rate
        self._queue: collections.deque[str] = collections.deque()
        # The envelopes of tasks submitted by this process, so a task starts without reading its
        # 10 MB request back from SQLite (a task resumed after a restart reads it).
        self._envelopes: dict[str, ImportEnvelope] = {}
        self._wake = threading.Condition()  # guards the queue and the gate below
        self._stop = threading.Event()
        self._generation = 0  # bumped by reset(): a task from before a reset is abandoned
        self._thread: threading.Thread | None = None
        # The gate: profiles the worker may still import (None: no limit; 0: paused). A paused
        # worker starts no task and imports nothing until step() or resume().
        self._allowance: int | None = 0 if paused else None
        self._busy = False  # the worker holds a task (between taking it and leaving it)
        self._in_chunk = False  # the worker is importing a chunk it was allowed
        # Large tasks of the in-memory store are checked in a second process (prepare.py),
        # started with the first of them; the tasks handed to it.
        self._two_processes = two_processes
        self._preparer: Preparer | None = None
        self._prepared: dict[str, int] = {}  # task id -> its number for the preparer
        self._prepared_seq = 0

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker, first re-queuing tasks a previous run left unfinished."""
        resumed = self.store.unfinished_tasks()
        if resumed:
            log.info("resuming %d unfinished task(s)", len(resumed))
        with self._wake:
            self._queue.extend(resumed)
        if self._two_processes and self.processing_rate is None and self._in_memory():
            self._preparer = Preparer()  # started now: it takes a second to import its modules
        self._thread = threading.Thread(target=self._work, name="sandbox-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker between two chunks; an unfinished task stays resumable."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._preparer is not None:
            self._preparer.close()

    def reset(self) -> None:
        """Forget all state and drop queued work."""
        with self.store.transaction(), self._wake:
            self.store.reset()
            self._queue.clear()
            self._envelopes.clear()
            self._generation += 1
            if self._preparer is not None:
                for task_id in self._prepared:
                    self._preparer.forget(task_id)
            self._prepared.clear()

    # --- the gate --------------------------------------------------------------------------
    def pause(self, timeout: float = 30.0) -> None:
        """Stop importing once the chunk under way is committed (returns when it is)."""
        with self._wake:
            self._allowance = 0
            self._wake.wait_for(lambda: not self._in_chunk or self._stop.is_set(), timeout)

    def resume(self) -> None:
        """Import freely again."""
        with self._wake:
            self._allowance = None
            self._wake.notify_all()

    def step(self, profiles: int, timeout: float = 30.0) -> int:
        """Let exactly ``profiles`` more profiles be imported, then pause again.

        Returns once they are committed, or sooner when no task is left to work on; the
        number imported (or failed alone) is returned. Tasks are taken in order, so a task is
        only started (``processing``) by a step that reaches it.
        """
        if profiles < 0:
            raise ValueError(f"profiles must not be negative, not {profiles}")
        with self._wake:
            self._allowance = profiles
            self._wake.notify_all()

            def settled() -> bool:
                assert self._allowance is not None
                idle = not self._busy and not self._queue
                return self._stop.is_set() or (not self._in_chunk and (self._allowance == 0 or idle))

            self._wake.wait_for(settled, timeout)
            left = self._allowance or 0
            self._allowance = 0
            return profiles - left

    def _allowed(self, wanted: int) -> tuple[int, bool]:
        """Wait at the gate: how many profiles (up to ``wanted``) may go now (0: stopping), and
        whether the gate was closed on arrival."""
        with self._wake:
            closed = self._allowance == 0
            self._wake.wait_for(lambda: self._allowance != 0 or self._stop.is_set())
            if self._stop.is_set():
                return 0, closed
            allowed = wanted if self._allowance is None else min(wanted, self._allowance)
            self._in_chunk = True
            return allowed, closed

    def _done(self, count: int) -> None:
        """A chunk is committed: spend its profiles from the allowance."""
        with self._wake:
            if self._allowance is not None:
                self._allowance -= count
            self._in_chunk = False
            self._wake.notify_all()

    # --- work ------------------------------------------------------------------------------
    def submit(self, env: ImportEnvelope, source: RequestSource | None = None) -> str:
        """Record a task for ``env`` and queue it; returns its id at once. ``source`` (the
        request as received) lets a large task be checked in the second process."""
        with self.store.transaction():
            task_id = self.ids.task_id()
            while self.store.has_task(task_id):  # a seeded run restarted on the same --db
                task_id = self.ids.task_id()
            self.store.create_task(task_id, env.to_dict())
        with self._wake:
            self._envelopes[task_id] = env
            if source is not None and self._preparable(env):
                if self._preparer is None:
                    self._preparer = Preparer()
                self._prepared_seq += 1
                if isinstance(env.profiles, RawProfiles):
                    self._preparer.submit_profiles(task_id, self._prepared_seq, env)
                else:
                    self._preparer.submit(task_id, self._prepared_seq, source)
                self._prepared[task_id] = self._prepared_seq
            if self._bulk(env):
                freeze_parsed()  # the body waits for its task out of the collector's reach
            self._queue.append(task_id)
            self._wake.notify()
        return task_id

    @property
    def skim_from(self) -> int | None:
        """The fewest profiles for a JSON batch's profiles to be kept as text once its body is
        checked (envelope.with_raw_profiles), or None: with a second process, each process then
        parses only the chunks it imports, and the parsed body goes at once."""
        if self._two_processes and self.processing_rate is None and self._in_memory():
            return PREPARE_FROM
        return None

    def _bulk(self, env: ImportEnvelope) -> bool:
        """A large task imported at full speed (a paced task imports one profile at a time)."""
        return self.processing_rate is None and len(env.profiles) >= PREPARE_FROM

    def _preparable(self, env: ImportEnvelope) -> bool:
        """Whether a task goes to the second process: a bulk one, into the in-memory store."""
        return self._two_processes and self._bulk(env) and self._in_memory()

    def _in_memory(self) -> bool:
        from .memstore import MemoryStore

        return isinstance(self.store, MemoryStore)

    def import_one(
        self, env: ImportEnvelope, fields: dict[str, Any], task_id: str | None = None
    ) -> dict[str, Any]:
        """Import one profile (and log its trigger send); the per-profile result."""
        with self.store.transaction():
            try:
                profile_id = self._place(env, check_profile(fields, env), time.time(), EXACT)
            except ProfileError as exc:
                return {"error": exc.code, "error_text": exc.text}
            if not env.skip_triggers:
                self.store.add_sends(
                    env.trigger_id, [profile_id], task_id, env.content, env.custom_data, env.attachments
                )
            return {"profile_id": profile_id}

    def import_chunk(
        self, env: ImportEnvelope, profiles: Sequence[dict[str, Any]], task_id: str
    ) -> list[Result]:
        """Import a chunk of a task's profiles in order (call inside a transaction): each one's
        result, a profile id or ``(error, error_text)``; the chunk's trigger sends logged at once.

        The emails and phones of the whole chunk are checked column-wise first
        (:func:`~toolkit.sandbox.profiles.chunk_checks`); each profile is then checked
        (:func:`~toolkit.sandbox.profiles.checked_profiles`) and matched, merged or created
        exactly as :meth:`import_one` does, so the answers are the same; each is placed before
        the next is checked, while its dicts are still in the processor's cache.
        """
        # A chunk of a few profiles (a paced task imports one at a time) is cheaper checked exactly.
        if len(profiles) >= _COLUMNWISE_FROM:
            checks = chunk_checks(profiles)
            answers = checked_profiles(profiles, env, checks)
        else:
            checks = EXACT
            answers = (_checked_or_error(fields, env) for fields in profiles)
        return self._place_each(env, answers, checks, task_id)

    def import_prepared(self, env: ImportEnvelope, chunk: PreparedChunk, task_id: str) -> list[Result]:
        """:meth:`import_chunk` of a chunk whose profiles the second process checked
        (:func:`~toolkit.sandbox.prepare.prepare_chunk`): the same results, the same store.

        A new profile looked up by one contact that finds nothing (the usual case) is stored
        here at once, its blobs and keys as prepared; any other goes through :meth:`_place`."""
        store = self.store
        now = time.time()
        results: list[Result] = []
        imported: list[str] = []
        kinds = chunk.lookup_kinds
        usual = (
            kinds is not None
            and chunk.profile_ids is None
            and MATCHING_MODES[env.matching].creates
            and not kinds[0].startswith(FIELD_KIND_PREFIXES)
            and self._in_memory()
        )
        values = chunk.lookup_values
        for i in range(len(chunk)):
            error = chunk.error(i)
            if error is not None:  # the profile's own error
                results.append(error)
                continue
            if usual and not store.field_kinds and not store.find(kinds, values[i]):
                profile_id = self.ids.profile_id()
                while store.has_profile(profile_id):
                    profile_id = self.ids.profile_id()
                fields_blob, subs_blob = chunk.blobs(i)
                store.put_blobs(profile_id, fields_blob, subs_blob, chunk.keys(i), now=now)  # type: ignore[union-attr]
            else:
                # Its fields stay blobs until a merge needs them.
                checked = Checked({}, [], chunk.lookups(i), chunk.profile_id(i))
                try:
                    profile_id = self._place(env, checked, now, EXACT, (*chunk.blobs(i), set(chunk.keys(i))))
                except ProfileError as exc:
                    results.append((exc.code, exc.text))
                    continue
            results.append(profile_id)
            imported.append(profile_id)
        self._trigger(env, imported, task_id)
        return results

    def _place_each(
        self, env: ImportEnvelope, checked: Iterable[Checked | ProfileError], checks: Checks, task_id: str
    ) -> list[Result]:
        """Store a chunk's profiles in order as they are checked (each placed before the next is
        checked: one pass over the chunk); each one's result, its trigger sends logged at once."""
        now = time.time()
        results: list[Result] = []
        imported: list[str] = []
        for item in checked:
            if isinstance(item, ProfileError):  # the profile's own error
                results.append((item.code, item.text))
                continue
            try:
                profile_id = self._place(env, item, now, checks)
            except ProfileError as exc:
                results.append((exc.code, exc.text))
                continue
            results.append(profile_id)
            imported.append(profile_id)
        self._trigger(env, imported, task_id)
        return results

    def _trigger(self, env: ImportEnvelope, imported: list[str], task_id: str) -> None:
        """The chunk's imported profiles enter the trigger (one group in the send log)."""
        if imported and not env.skip_triggers:
            self.store.add_sends(
                env.trigger_id, imported, task_id, env.content, env.custom_data, env.attachments
            )

    def _place(
        self,
        env: ImportEnvelope,
        checked: Checked,
        now: float,
        checks: Checks,
        blobs: Blobs | None = None,
    ) -> str:
        """Store a checked profile (matched and merged, or created); its id. Raises
        :class:`ProfileError` for 404 (profile_id unknown) and 409 (ambiguous match).

        ``blobs``: a prepared profile's stored fields, subscriptions and match keys (``checked``
        then holds only its lookups), read back into dicts only when it is merged or a custom
        field is indexed."""
        if checked.profile_id is not None:
            candidates = [checked.profile_id] if self.store.has_profile(checked.profile_id) else []
        else:
            candidates = []
            for kinds, value in checked.keys:
                if kinds[0].startswith(FIELD_KIND_PREFIXES):  # contact kinds are always indexed
                    self._index_fields(kinds)
                found = self.store.find(kinds, value)
                if candidates:
                    candidates.extend(p for p in found if p not in candidates)
                else:
                    candidates = found
        if len(candidates) > 1:
            raise ProfileError(409, f"more than one profile matches ({len(candidates)} found)")
        if blobs is not None and (candidates or self.store.field_kinds):
            checked = Checked(
                orjson.loads(blobs[0]), orjson.loads(blobs[1]), checked.keys, checked.profile_id
            )
            blobs = None
        if blobs is not None and MATCHING_MODES[env.matching].creates:  # a new profile, as prepared
            profile_id = self.ids.profile_id()
            while self.store.has_profile(profile_id):
                profile_id = self.ids.profile_id()
            self.store.put_blobs(profile_id, blobs[0], blobs[1], blobs[2], now=now)  # type: ignore[union-attr]
            return profile_id
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
        if candidates or checked.index is None or self.store.field_kinds:
            keys = index_keys(new_fields, new_subs, self.store.field_kinds, checks)
        else:  # a new profile as checked: check_profile found its keys on its walk
            keys = checked.index
        self.store.put_profile(profile_id, new_fields, new_subs, keys, created=not candidates, now=now)
        return profile_id

    def _index_fields(self, kinds: tuple[str, ...]) -> None:
        """Build the index of a custom field the first time a matching looks a profile up by it
        (one pass over the stored profiles); from then on every import keeps it up to date."""
        for kind in kinds:
            if kind.startswith(FIELD_KIND_PREFIXES) and kind not in self.store.field_kinds:
                with self.store.transaction():
                    entries = [
                        (value, profile_id)
                        for profile_id, fields, subs in self.store.profiles_to_index()
                        for found, value in index_keys(fields, subs, {kind})
                        if found == kind
                    ]
                    self.store.add_field_index(kind, entries)

    def _has_work(self) -> bool:
        return bool(self._queue) or self._stop.is_set()

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._wake:
                # Idle: the bodies frozen for their tasks are gone, collect once. Not at every gap
                # between the bodies of one launch (the worker often waits for the next): a full
                # collection walks the whole store, ~4% of a launch's CPU when made at each gap.
                if not self._queue and not self._wake.wait_for(self._has_work, _COLLECT_AFTER_IDLE):
                    thaw_when_idle()
                # a paused worker leaves the next task queued
                self._wake.wait_for(lambda: (self._queue and self._allowance != 0) or self._stop.is_set())
                if self._stop.is_set():
                    return
                task_id = self._queue.popleft()
                generation = self._generation
                self._busy = True
            try:
                self._run(task_id, generation)
            except Exception as exc:  # a sandbox bug: fail the task, keep the server up
                log.exception("task %s failed", task_id)
                self.store.fail_task(task_id, f"internal error: {type(exc).__name__}")
            finally:
                with self._wake:
                    self._busy = self._in_chunk = False
                    self._wake.notify_all()

    def _run(self, task_id: str, generation: int) -> None:
        with self._wake:
            held = self._envelopes.pop(task_id, None)
        started = self.store.start_task(task_id, load_request=held is None)
        if started is None:
            return
        request, done = started
        env = held if held is not None else ImportEnvelope.from_dict(request or {})
        t0, first = time.monotonic(), done
        # A bulk task runs with the collector paused throughout, not chunk by chunk: re-enabled
        # between chunks, its first young collection walked the bodies parsed since (tens of
        # thousands of acyclic containers each), ~10-15% of the CPU under a million-profile
        # launch (gc_pause.py says why pausing is safe; the collector runs once the worker idles).
        bulk = self._bulk(env)
        pause = paused_gc() if bulk else contextlib.nullcontext()
        try:
            with pause:
                self._chunks(task_id, generation, env, done, t0, first)
                if bulk:
                    # What the task made joins its frozen body: re-enabled, the collector would
                    # first walk all of it (its count is over the threshold after a task), ~3%
                    # of the CPU; the idle worker collects instead (gc_pause.py).
                    freeze_parsed()
        finally:
            if task_id in self._prepared:
                del self._prepared[task_id]
                if self._preparer is not None:
                    self._preparer.forget(task_id)

    def _chunks(
        self, task_id: str, generation: int, env: ImportEnvelope, done: int, t0: float, first: int
    ) -> None:
        """Import a started task's profiles from ``done`` on, a chunk at a time, at the gate."""
        total = len(env.profiles)
        rate = self.processing_rate
        step = 1 if rate else CHUNK
        preparer = self._preparer if task_id in self._prepared else None
        seq = self._prepared.get(task_id, 0)
        while done < total:
            allowed, paused = self._allowed(min(step, total - done))
            if not allowed:
                return  # stopping: left 'processing', the next start resumes it
            if paused:
                t0, first = time.monotonic(), done  # after a pause the pace starts afresh
            if rate:  # profile i is done at t0 + (i + 1) / rate: a steady pace, no drift
                delay = t0 + (done - first + 1) / rate - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
            if self._stop.is_set():
                return  # left 'processing': the next start resumes it
            end = done + allowed
            items = None
            if preparer is not None:
                if allowed == min(CHUNK, total - done) and done % CHUNK == 0:
                    # The chunk as prepared if it is here or on its way (the preparer has begun
                    # it); else it is checked here at once, the preparer told to skip it.
                    items = preparer.chunk(task_id, done, timeout=0)
                    if items is None and (self.wait_for_preparer or preparer.reached(seq, done)):
                        items = preparer.chunk(task_id, done, timeout=60.0)
                    if items is None:
                        preparer.take(seq, end)
                if items is None or len(items) != allowed:
                    items = None
                    if allowed != min(CHUNK, total - done) or done % CHUNK:
                        # A step split a chunk: the rest of the task is checked here.
                        preparer.forget(task_id)
                        preparer = None
            with self.store.transaction(), paused_gc():
                if self._generation != generation:
                    return
                if items is not None:
                    results = self.import_prepared(env, items, task_id)
                else:
                    results = self.import_chunk(env, env.profiles[done:end], task_id)
                if not self.store.record_results(task_id, done, results, last=end == total):
                    return
            self._done(end - done)
            done = end


def _checked_or_error(fields: dict[str, Any], env: ImportEnvelope) -> Checked | ProfileError:
    try:
        return check_profile(fields, env)
    except ProfileError as exc:
        return exc
