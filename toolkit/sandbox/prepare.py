"""A task's profiles checked in a second process, so a busy sandbox works on two cores.

One process runs everything under one GIL: receiving and parsing a body (~10 us a profile),
checking each profile (email, phones, dates, subscriptions, its match keys) and serializing
what is stored (~10-15 us), then matching and storing it (~8 us). The checks depend on the
profile and the envelope only, never on the store, so they can run anywhere: here a second
process (:class:`Preparer`) gets a task's chunks as JSON text (:meth:`Preparer.submit_profiles`:
the sandbox's process keeps a checked body's profiles as text, envelope.with_raw_profiles) or,
for an XML body, the request's bytes (:meth:`Preparer.submit`); it checks the profiles chunk by
chunk with the very functions the sandbox uses (:func:`~toolkit.sandbox.profiles.checked_profiles`,
:func:`~toolkit.sandbox.profiles.chunk_checks`) and sends back, per chunk, each profile's error
or what the store needs: its lookups, its fields and subscriptions as the stored ``orjson``
blobs, and its match keys, packed (:class:`PreparedChunk`). The sandbox's own process then only
matches and stores those profiles.

The two share each task. The preparer takes its chunks in order and says which one it is
preparing in a shared word (:meth:`Preparer.reached`); the engine imports the chunks in order,
each one prepared if it is there, else waiting for it if the preparer has begun it already,
else checking it itself and saying so in a second shared word (:meth:`Preparer.take`), which the
preparer reads before each chunk (it skips the chunks the engine took). So a busy engine (it
also receives and parses every body, and stores every profile) checks nothing and the preparer
runs ahead; a preparer that falls behind leaves the engine the chunks it has not reached. (The
engine checking a chunk costs it ~3 times what storing a prepared one does: measured, sharing
each task from both ends, so that both started on each task at once, left the engine ~40% of the
checks and it was the slower of the two: bench/README.md.)

The answers are the same as checking in the sandbox's process: the same functions run on the
same parsed profiles; a profile that updates a stored one is merged from its blobs (what the
store keeps anyway), and when a custom-field index exists the keys are computed again.

Only large tasks of the in-memory store without a processing rate go to the preparer (a paced
or stepped task imports a few profiles at a time: the engine checks those itself). The process
starts with the engine (``Engine(two_processes=True)``: ``toolkit sandbox --two-processes``, the
default on three cores or more) and ends with it. The split costs CPU (each profile's text found
by a skim, each chunk's results serialized and read back): a free second core pays it 1.7 times
over (bench/README.md); a core the client of a launch needs too, much less.

Example (not run as a doctest: it starts a process)::

    preparer = Preparer()
    preparer.submit("t1", 1, RequestSource(raw_body, xml=False, max_file_bytes=..., undocumented_matching=False))
    chunk = preparer.chunk("t1", 0)     # the first chunk's profiles, checked (a PreparedChunk)
    preparer.reached(1, 1000)           # True once the preparer has begun the second one
    preparer.take(1, 2000)              # or: the engine checks the first two itself
    preparer.close()
"""

from __future__ import annotations

import contextlib
import functools

# marshal, not pickle: the messages are tuples, lists, str, bytes and ints between two processes
# of the same interpreter, and marshal reads them back ~2x faster (measured ~1.4 vs ~2.5 us a profile).
import itertools
import logging
import marshal
import multiprocessing
import queue
import threading
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Final

import orjson

from .envelope import BATCH_LISTS, ImportEnvelope, RawProfiles, decode, parse_import
from .profiles import EXACT, Checks, ProfileError, checked_profiles, chunk_checks

__all__ = ["CHUNK", "PREPARE_FROM", "PreparedChunk", "Preparer", "RequestSource", "prepare_chunk"]

log = logging.getLogger("toolkit.sandbox")

#: Profiles per chunk: the engine's transaction size (engine.CHUNK).
CHUNK: Final = 1000
#: Fewest profiles in a task for it to be checked in the second process: below it, a task is
#: over before the pipeline fills.
PREPARE_FROM: Final = 2 * CHUNK
#: Chunks the preparer may be ahead of the engine (bounds the memory of a slow engine): two
#: tasks of 10 MB bodies (10,000 profiles), ~0.5 MB a chunk.
_AHEAD: Final = 24
#: A pipe's buffer (Linux lets any process ask for up to 1 MiB: /proc/sys/fs/pipe-max-size).
_PIPE_BYTES: Final = 1 << 20
#: The shared counter :meth:`Preparer.take` writes: ``task_seq << _SEQ_SHIFT | end`` in one
#: 64-bit word, so the preparer never reads a task's number with another task's position.
_SEQ_SHIFT: Final = 32
#: ``at`` before the preparer's first chunk (Preparer.reached).
_NOT_YET: Final = -1
#: Fewest profiles in a chunk for its emails and phones to be checked column-wise (engine's).
_COLUMNWISE_FROM: Final = 64
# The two kinds of task message: a request body as received, or its chunks as JSON text.
_BODY: Final = "body"
_PROFILES: Final = "profiles"

#: The offsets of a packed chunk's blobs and keys (unsigned 32-bit: a chunk is ~0.5 MB).
_OFFSETS: Final = "I"


class PreparedChunk:
    """A chunk's profiles as the preparer checked them (:func:`prepare_chunk`), packed for the
    pipe in a few large objects rather than ~15 small ones a profile (marshal's cost, and the
    engine's, is per object): the fields and subscriptions blobs of all profiles each one bytes
    with their end offsets, every match key's value in one list, and one lookup a profile when
    all share the same kinds (the documented modes). ``len()`` is its number of profiles.

    Example:
        >>> from toolkit.sandbox.envelope import ImportEnvelope
        >>> env = ImportEnvelope(trigger_id=1, matching="email", profiles=[])
        >>> chunk = PreparedChunk(prepare_chunk([{"email": "A@b.co"}, {"email": "x@"}], env))
        >>> len(chunk), chunk.error(1), chunk.blobs(0), chunk.keys(0), chunk.lookups(0)
        (2, (400, "invalid email 'x@'"), (b'{"email":"A@b.co"}', b'[]'), [('email', 'a@b.co')], [(('email', 'sub_email'), 'a@b.co')])
    """

    __slots__ = (
        "count",
        "each_lookups",
        "errors",
        "fields",
        "fields_ends",
        "key_ends",
        "key_kinds",
        "key_values",
        "kind_names",
        "lookup_kinds",
        "lookup_values",
        "profile_ids",
        "subs",
        "subs_ends",
    )

    def __init__(self, packed: tuple[Any, ...]) -> None:
        (
            self.count,
            self.errors,
            self.profile_ids,
            self.lookup_kinds,
            self.lookup_values,
            self.each_lookups,
            self.fields,
            fields_ends,
            self.subs,
            subs_ends,
            self.kind_names,
            self.key_kinds,
            self.key_values,
            key_ends,
        ) = packed
        self.fields_ends = memoryview(fields_ends).cast(_OFFSETS)
        self.subs_ends = memoryview(subs_ends).cast(_OFFSETS)
        self.key_ends = memoryview(key_ends).cast(_OFFSETS)

    def __len__(self) -> int:
        return int(self.count)

    def error(self, i: int) -> tuple[int, str] | None:
        """Profile ``i``'s own error, or None."""
        return self.errors.get(i)

    def blobs(self, i: int) -> tuple[bytes, bytes]:
        """Profile ``i``'s stored fields and subscriptions (``orjson``)."""
        return (
            self.fields[self.fields_ends[i - 1] if i else 0 : self.fields_ends[i]],
            self.subs[self.subs_ends[i - 1] if i else 0 : self.subs_ends[i]],
        )

    def keys(self, i: int) -> list[tuple[str, str]]:
        """Profile ``i``'s match keys (``index_keys`` without custom-field kinds), each once."""
        start, end = self.key_ends[i - 1] if i else 0, self.key_ends[i]
        names = self.kind_names
        return [
            (names[k], v) for k, v in zip(self.key_kinds[start:end], self.key_values[start:end], strict=True)
        ]

    def lookups(self, i: int) -> list[tuple[tuple[str, ...], str]]:
        """What profile ``i`` is looked up by (``Checked.keys``)."""
        if self.each_lookups is not None:
            return [(tuple(kinds), value) for kinds, value in self.each_lookups[i]]
        return [(self.lookup_kinds, self.lookup_values[i])]

    def profile_id(self, i: int) -> str | None:
        """The ``profile_id`` profile ``i`` names (``profile_id`` matching), else None."""
        return None if self.profile_ids is None else self.profile_ids[i]


@dataclass(frozen=True, slots=True)
class RequestSource:
    """A batch request as received, for the preparer to read its profiles from."""

    raw: bytes
    xml: bool
    max_file_bytes: int
    undocumented_matching: bool


def prepare_chunk(
    profiles: Sequence[dict[str, Any]], matching_env: Any, checks: Checks | None = None
) -> tuple[Any, ...]:
    """Check each profile of a chunk as the engine does; the chunk packed for the pipe (read
    back as a :class:`PreparedChunk`). ``checks``: the task's emails and phones already checked
    column-wise (else the chunk's)."""
    from .memstore import _NO_SUBSCRIPTIONS

    if checks is None:
        checks = chunk_checks(profiles) if len(profiles) >= _COLUMNWISE_FROM else EXACT
    errors: dict[int, tuple[int, str]] = {}
    profile_ids: list[str | None] = []
    lookups: list[list[tuple[tuple[str, ...], str]]] = []
    fields: list[bytes] = []
    subs: list[bytes] = []
    kind_names: dict[str, int] = {}
    key_kinds = bytearray()
    key_values: list[str] = []
    key_ends: list[int] = []
    for i, checked in enumerate(checked_profiles(profiles, matching_env, checks)):
        if isinstance(checked, ProfileError):
            errors[i] = (checked.code, checked.text)
            profile_ids.append(None)
            lookups.append([])
            fields.append(b"")
            subs.append(b"")
        else:
            profile_ids.append(checked.profile_id)
            lookups.append(checked.keys)
            fields.append(orjson.dumps(checked.fields))
            subs.append(orjson.dumps(checked.subscriptions) if checked.subscriptions else _NO_SUBSCRIPTIONS)
            for kind, value in checked.index or ():  # index_keys(fields, subs, no custom kinds)
                key_kinds.append(kind_names.setdefault(kind, len(kind_names)))
                key_values.append(value)
        key_ends.append(len(key_values))
    # One lookup a profile, all of the same kinds (the usual case): the kinds once, the values.
    found = [lookup for i, lookup in enumerate(lookups) if i not in errors]
    kinds = {lookup[0][0] for lookup in found if len(lookup) == 1}
    one_each = len(kinds) == 1 and all(len(lookup) == 1 for lookup in found)
    return (
        len(fields),
        errors,
        None if all(pid is None for pid in profile_ids) else profile_ids,
        kinds.pop() if one_each else None,
        [lookup[0][1] if lookup else "" for lookup in lookups] if one_each else None,
        None if one_each else lookups,
        b"".join(fields),
        array(_OFFSETS, itertools.accumulate(map(len, fields))).tobytes(),
        b"".join(subs),
        array(_OFFSETS, itertools.accumulate(map(len, subs))).tobytes(),
        list(kind_names),
        bytes(key_kinds),
        key_values,
        array(_OFFSETS, key_ends).tobytes(),
    )


def _left_to_engine(taken: int, seq: int) -> float:
    """The first profile of task ``seq`` the engine has not taken yet (``taken``: the counter
    :meth:`Preparer.take` writes); infinite once the engine is past the task."""
    taken_seq, end = taken >> _SEQ_SHIFT, taken & ((1 << _SEQ_SHIFT) - 1)
    if taken_seq > seq:
        return float("inf")
    return end if taken_seq == seq else 0


def _serve(tasks: Connection, results: Connection, taken: Any, at: Any) -> None:
    """The preparer process: for each task received, the items of its chunks in order, but those
    the engine has taken (``taken``: the shared counter); ``at``: the last chunk it began."""
    import gc

    gc.disable()  # parsed bodies are acyclic (gc_pause.py); this process holds nothing else
    while True:
        try:
            message = tasks.recv_bytes()
        except (EOFError, OSError):
            return
        kind, task_id, seq, *rest = marshal.loads(message)
        try:
            if _left_to_engine(taken.value, seq) == float("inf"):
                continue  # the engine is done with it already
            texts: list[bytes] | None = None
            checks: Checks | None = None
            if kind == _BODY:
                raw, xml, max_file_bytes, undocumented = rest
                # The sandbox's process decoded this body already (its shape and depth are
                # checked): JSON is only parsed again here.
                body = decode(raw, "xml", BATCH_LISTS) if xml else orjson.loads(raw)
                env = parse_import(
                    body,
                    xml=xml,
                    single=False,
                    max_file_bytes=max_file_bytes,
                    undocumented_matching=undocumented,
                )
                del body, raw
                total = len(env.profiles)
                # Every email and phone of the task in one column-wise pass: the tables answer per
                # value, so they are the chunks' own answers, at a third of the cost of 10 passes.
                checks = chunk_checks(env.profiles)
            else:  # the chunks as JSON text: only those prepared here are parsed
                matching, field_name, skip_invalid, total, texts = rest
                env = ImportEnvelope(
                    trigger_id=1,
                    matching=matching,
                    profiles=[],
                    field_name=field_name,
                    skip_invalid_subscriptions=skip_invalid,
                )
            for start in range(0, total, CHUNK):
                if _left_to_engine(taken.value, seq) > start:
                    continue  # the engine checked this chunk itself
                at.value = seq << _SEQ_SHIFT | start
                if texts is None:
                    profiles = env.profiles[start : start + CHUNK]
                else:
                    profiles = orjson.loads(b"[" + texts[start // CHUNK] + b"]")
                items = prepare_chunk(profiles, env, checks)
                results.send_bytes(marshal.dumps((task_id, seq, start, items)))
        except (EOFError, OSError, BrokenPipeError):
            return
        except Exception as exc:  # the engine checks this task itself
            results.send_bytes(marshal.dumps((task_id, seq, -1, f"{type(exc).__name__}: {exc}")))


def _widen(connection: Connection) -> None:
    """Give a pipe a buffer of :data:`_PIPE_BYTES` where the system allows it (Linux).

    Each time a pipe fills, the writer's or reader's next step needs its process's GIL back, and
    the sandbox's process holds it most of the time (up to a 5 ms switch interval per wait):
    with the default 64 KB buffer a 10 MB body took ~160 such waits to reach the preparer, and
    a chunk's results ~10 to come back, so the preparer idled and the engine waited. With 1 MB,
    ~10 and one."""
    try:
        import fcntl
    except ImportError:  # Windows: its pipes are sized otherwise
        return
    setter = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setter is None:
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(connection.fileno(), setter, _PIPE_BYTES)


class Preparer:
    """The second process and the engine's side of it: tasks in, prepared chunks out."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a threaded server
        task_out, task_in = context.Pipe(duplex=False)
        result_out, result_in = context.Pipe(duplex=False)
        _widen(task_in)
        _widen(result_in)
        self._send = task_in
        self._results = result_out
        # Where the engine is (take()): one word both processes see, written by the engine only.
        self._taken = context.Value("q", 0, lock=False)
        # The last chunk the preparer began (``seq << _SEQ_SHIFT | start``): it only grows, and
        # only the preparer writes it.
        self._at = context.Value("q", _NOT_YET, lock=False)
        self._process = context.Process(
            target=_serve,
            args=(task_out, result_in, self._taken, self._at),
            name="sandbox-preparer",
            daemon=True,
        )
        self._process.start()
        task_out.close()
        result_in.close()
        self._ready: dict[tuple[str, int], PreparedChunk] = {}
        self._failed: set[str] = set()
        self._dropped: set[str] = set()  # the engine wants no more of these tasks' chunks
        self._wanted: tuple[str, int] | None = None  # the chunk the engine waits for
        self._cond = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="sandbox-preparer-reader", daemon=True)
        self._reader.start()
        # Sent from a thread of its own: the pipe takes a 10 MB body only as fast as the preparer
        # reads it, and the request that submitted it must be answered at once.
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._sender = threading.Thread(target=self._write, name="sandbox-preparer-sender", daemon=True)
        self._sender.start()

    def submit(self, task_id: str, seq: int, source: RequestSource) -> None:
        """Have the preparer check a task's profiles (from its request body, as received).
        ``seq``: the task's number, increasing in the order the engine takes tasks (see :meth:`take`)."""
        self._check_seq(seq)
        self._outbox.put(
            marshal.dumps(
                (
                    _BODY,
                    task_id,
                    seq,
                    source.raw,
                    source.xml,
                    source.max_file_bytes,
                    source.undocumented_matching,
                )
            )
        )

    def submit_profiles(self, task_id: str, seq: int, env: ImportEnvelope) -> None:
        """:meth:`submit` for profiles kept as text (envelope.with_raw_profiles): the chunks are
        sent as JSON text, and the preparer parses only those it prepares."""
        self._check_seq(seq)
        profiles = env.profiles
        if not isinstance(profiles, RawProfiles):
            raise TypeError("submit_profiles takes an envelope of RawProfiles (with_raw_profiles)")
        total = len(profiles)
        texts = [profiles.joined(start, start + CHUNK) for start in range(0, total, CHUNK)]
        self._outbox.put(
            marshal.dumps(
                (
                    _PROFILES,
                    task_id,
                    seq,
                    env.matching,
                    env.field_name,
                    env.skip_invalid_subscriptions,
                    total,
                    texts,
                )
            )
        )

    @staticmethod
    def _check_seq(seq: int) -> None:
        if not 0 <= seq < 1 << (63 - _SEQ_SHIFT):
            raise ValueError(f"task number out of range: {seq}")

    def take(self, seq: int, end: int) -> None:
        """The engine checks the profiles of task ``seq`` before ``end`` itself: the preparer
        prepares none of them from now on (a chunk it is preparing already still arrives)."""
        self._taken.value = seq << _SEQ_SHIFT | min(end, (1 << _SEQ_SHIFT) - 1)

    def reached(self, seq: int, start: int) -> bool:
        """Whether the preparer has begun the chunk of task ``seq`` at ``start`` (or one after
        it): a chunk the engine has not taken is then being prepared, or sent, or here, sooner
        than the engine would check it itself."""
        return bool(self._at.value >= seq << _SEQ_SHIFT | start)

    def _write(self) -> None:
        while (message := self._outbox.get()) is not None:
            try:
                self._send.send_bytes(message)
            except (OSError, ValueError):  # the process is gone: chunk() answers None
                break
        self._send.close()

    def chunk(self, task_id: str, start: int, timeout: float = 60.0) -> PreparedChunk | None:
        """The chunk of ``task_id`` starting at profile ``start``, checked (waits for it
        up to ``timeout`` seconds; 0: only if they are here); None when the preparer cannot give
        them (not yet, gone, or failed on this task)."""
        key = (task_id, start)
        with self._cond:
            self._wanted = key
            self._cond.notify_all()
            found = self._cond.wait_for(
                lambda: key in self._ready or task_id in self._failed or self._closed, timeout
            )
            self._wanted = None
            if not found or key not in self._ready:
                return None
            items = self._ready.pop(key)
            self._cond.notify_all()
            return items

    def forget(self, task_id: str) -> None:
        """Drop what was and will be prepared for a task the engine takes no more chunks of
        (it is over, it was reset, or a pause split its chunks)."""
        with self._cond:
            self._dropped.add(task_id)
            for key in [k for k in self._ready if k[0] == task_id]:
                del self._ready[key]
            self._cond.notify_all()

    def _read(self) -> None:
        while True:
            try:
                message = self._results.recv_bytes()
            except (EOFError, OSError):
                break
            task_id, seq, start, items = marshal.loads(message)
            with self._cond:
                if task_id in self._dropped or 0 <= start < _left_to_engine(self._taken.value, seq):
                    continue  # the engine is done with the task, or checked this chunk itself
                if start < 0:
                    log.warning("preparer failed on task %s (%s): checked in process", task_id, items)
                    self._failed.add(task_id)
                else:
                    # Bounded look-ahead: the preparer blocks on its pipe while the engine lags.
                    self._cond.wait_for(functools.partial(self._room_for, task_id, start))
                    if task_id not in self._dropped:
                        self._ready[(task_id, start)] = PreparedChunk(items)
                self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _room_for(self, task_id: str, start: int) -> bool:
        """Whether the reader may store a chunk of ``task_id`` now (call holding the lock): the
        one the engine waits for always."""
        return (
            len(self._ready) < _AHEAD
            or self._closed
            or task_id in self._dropped
            or self._wanted == (task_id, start)
        )

    def close(self) -> None:
        """End the process (the engine is stopping)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._outbox.put(None)
        self._sender.join(5)
        self._process.join(5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)
        self._results.close()
