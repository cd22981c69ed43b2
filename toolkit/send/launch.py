"""Launch: send a plan's batches exactly once, follow their tasks, read the results.

A launch is journalled (see :mod:`toolkit.send.journal`) around every request, which gives
its three guarantees:

* **nothing is sent twice**: a batch whose body (sha256 digest) was sent before to the
  same trigger and host is never sent again by itself. Re-running a cell that launched
  a plan raises :class:`~toolkit.errors.AlreadyLaunched` (``force=True`` sends again).
* **nothing is lost**: a plan sent in part (a crash, a killed kernel, a refused batch)
  is resumed by launching it again: only the batches never sent go out, the sent ones
  are polled. A batch caught in flight, or whose answer was lost, is ``unknown``: it is
  not re-sent until you call :meth:`Launch.resend_unknown`.
* **results without the plan**: :meth:`Client.resume` (by label) polls and reads a
  launch from the journal alone.

Example:
    >>> from toolkit.send.journal import Journal
    >>> j = Journal(":memory:")
    >>> history_frame(j, kind="polars").columns[:4]
    ['launch_id', 'label', 'created', 'trigger_id']
"""

from __future__ import annotations

import contextlib
import html
import logging
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

import orjson
import polars as pl

from toolkit.core import contract
from toolkit.core.contract import BATCH_SETTLED_STATES, BatchState, RowStatus
from toolkit.errors import (
    AlreadyLaunched,
    ApiError,
    AuthError,
    ConfigurationError,
    InvalidArgumentError,
    JournalError,
    OutcomeUnknown,
    TransportError,
)
from toolkit.send.answers import row_outcomes, task_figures
from toolkit.send.events import ProgressCallback, ProgressEmitter
from toolkit.send.journal import KEY_MARK, BatchRecord, Journal, LaunchRecord, restore_key
from toolkit.send.lease import LEASE_HEARTBEAT, Heartbeat, Lease
from toolkit.send.protocol import Delivery, Sender, send_batch_once
from toolkit.send.target import target_label
from toolkit.send.transport import TaskStatus

if TYPE_CHECKING:
    import pandas as pd

    from toolkit.core.plan import Plan

__all__ = [
    "RESULT_COLUMNS",
    "Launch",
    "LeftOut",
    "ResendReport",
    "history_frame",
    "single_body",
    "start_launch",
]

log = logging.getLogger("toolkit.send.launch")

#: The results frame's columns, in order (docs/ARCHITECTURE.md).
RESULT_COLUMNS = ("position", "match_key", "batch", "task_id", "status", "profile_id", "error", "error_text")
RESULT_SCHEMA = pl.Schema(
    {
        "position": pl.Int64,
        "match_key": pl.String,
        "batch": pl.Int64,
        "task_id": pl.String,
        "status": pl.String,
        "profile_id": pl.String,
        "error": pl.String,
        "error_text": pl.String,
    }
)
#: Batches whose task exists (it may still be running): ``wait()`` reads them.
_POLLED_STATES = frozenset({BatchState.SENT, BatchState.COMPLETED, BatchState.FAILED})
UNKNOWN_TEXT = (
    "the platform may or may not have this batch (its answer was lost); check, then "
    "Launch.resend_unknown() sends it again"
)


def _tqdm(**kwargs: Any) -> Any:
    from tqdm.auto import tqdm  # a widget in notebooks, text elsewhere

    return tqdm(**kwargs)


#: Tasks not seen started that each round of ``wait()`` reads, in the order they were sent:
#: the next ones in the platform's queue (the others are read every ``poll_max`` seconds).
NEXT_IN_LINE: Final = 2


def _worth_reading(pending: Sequence[BatchRecord], done_rows: Mapping[int, float]) -> list[BatchRecord]:
    """The tasks a round of ``wait()`` reads between full sweeps: every task seen moving (some
    rows done), and the first :data:`NEXT_IN_LINE` not seen started. A platform works through
    its queue: reading each queued task every 0.1 s (19 tasks: 190 reads a second) told nothing
    new and cost both sides CPU; the rest are read every ``poll_max`` seconds all the same.

    Example:
        >>> from types import SimpleNamespace as R
        >>> tasks = [R(index=i) for i in range(5)]
        >>> [b.index for b in _worth_reading(tasks, {0: 500.0, 1: 0.0, 3: 10.0})]
        [0, 1, 2, 3]
    """
    waiting = 0
    chosen = []
    for b in pending:
        if done_rows.get(b.index, 0) > 0:
            chosen.append(b)
        elif waiting < NEXT_IN_LINE:
            waiting += 1
            chosen.append(b)
    return chosen


def _trigger_id(plan: Plan) -> int | None:
    trigger = getattr(plan, "trigger", None)
    value = getattr(trigger, "trigger_id", None)
    return int(value) if value is not None else None


def _already_message(prev: LaunchRecord, batches: Sequence[BatchRecord]) -> str:
    tasks = [b.task_id for b in batches if b.task_id]
    shown = ", ".join(tasks[:5]) + (f" and {len(tasks) - 5} more" if len(tasks) > 5 else "")
    name = f"{prev.label!r}" if prev.label else "without a label"
    return (
        f"this plan was already sent to trigger {prev.trigger_id} on {prev.host}: launch {name} "
        f"(id {prev.launch_id}) at {prev.created[:19].replace('T', ' ')} UTC, task(s) {shown or 'none'}. "
        f"Nothing was sent now. To follow it: client.resume({(prev.label or prev.launch_id)!r}); "
        "to send it again on purpose: client.launch(plan, force=True)"
    )


def _busy_message(prev: LaunchRecord, lease: Lease) -> str:
    name = f"{prev.label!r}" if prev.label else "without a label"
    return (
        f"this plan is being sent right now to trigger {prev.trigger_id} on {prev.host} by launch {name} "
        f"(id {prev.launch_id}), in {lease.describe()}. Nothing was sent from here, and nothing of that "
        f"launch was changed. To follow it: client.resume({(prev.label or prev.launch_id)!r}).wait(); once it "
        "has finished, launch.resend_unknown() decides about batches whose answer was lost"
    )


def start_launch(
    client: Sender,
    plan: Plan,
    *,
    label: str | None = None,
    force: bool = False,
    concurrency: int = 4,
    progress: bool = True,
    on_progress: ProgressCallback | None = None,
) -> Launch:
    """What :meth:`Client.launch` does: find or record the launch in the journal (taking its
    lease, in one transaction), then send what was never sent."""
    if concurrency < 1:
        raise InvalidArgumentError(f"concurrency must be at least 1, got {concurrency}")
    journal = client.journal
    owner = uuid.uuid4().hex
    opened = journal.open_launch(
        owner=owner,
        label=label,
        trigger_id=_trigger_id(plan),
        host=client.host,
        fingerprint=plan.fingerprint,
        format=plan.format,
        n_rows=plan.n_rows,
        summary=_plan_summary(plan),
        batches=[(b.index, b.digest, b.rows) for b in plan.batches],
        force=force,
    )
    if opened.kind == "busy":
        assert opened.lease is not None
        raise AlreadyLaunched(
            _busy_message(opened.record, opened.lease), previous=opened.record, sender=opened.lease
        )
    if opened.kind == "sent":
        raise AlreadyLaunched(_already_message(opened.record, opened.batches), previous=opened.record)
    launch = Launch(client, opened.record, plan=plan, owner=owner)
    try:
        to_send = [b.index for b in opened.batches if not b.was_sent]
        if opened.kind == "resume":
            if plan.batches and not to_send:
                raise AlreadyLaunched(_already_message(opened.record, opened.batches), previous=opened.record)
            log.info("resuming launch %s: %d batch(es) never sent", opened.record.launch_id, len(to_send))
        elif len(to_send) < len(opened.batches):
            log.info(
                "%d batch(es) of this plan were sent before: polling them, not re-sending",
                len(opened.batches) - len(to_send),
            )
        launch._send(to_send, concurrency=concurrency, progress=progress, on_progress=on_progress)
    finally:
        launch._release()  # _send released it when done; a refusal before it had not
    return launch


def _plan_summary(plan: Plan) -> dict[str, Any]:
    """The plan's summary, counts only (it is journalled: no profile data)."""
    try:
        summary = plan.summary()
    except Exception:  # a summary is a nicety: never block a launch on it
        summary = {}
    return {
        k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool, dict, list, type(None)))
    }


def _journal_time(text: str | None) -> datetime | None:
    """A journal timestamp (ISO 8601, UTC) as an aware datetime."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _journal_progress(batches: Sequence[BatchRecord]) -> list[dict[str, Any]]:
    """A launch's progress over time as far as its journal knows it, in the shape of
    :meth:`Launch.progress_history() <toolkit.send.launch.Launch.progress_history>`: each task at 0 %
    when its batch was sent and, once it finished, at 100 % when it finished. The status reads
    in between are not journalled (only the last one, without its time), so the curve steps
    from 0 to 100 per task; ``"source": "journal"`` marks these entries."""
    history: list[dict[str, Any]] = []
    for b in batches:
        if not b.task_id:
            continue  # never reached the platform (or its answer was lost): no task to draw
        entry = {"task_id": b.task_id, "batch": b.index, "source": "journal"}
        sent = _journal_time(b.sent_at)
        if sent is not None:
            history.append({"time": sent, **entry, "status": "sent", "progress": 0.0})
        finished = _journal_time(b.finished_at) if b.finished else None
        if finished is not None:
            history.append({"time": finished, **entry, "status": b.status or str(b.state), "progress": 100.0})
    return sorted(history, key=lambda h: h["time"])


@dataclass(frozen=True)
class LeftOut:
    """A batch ``resend_unknown()`` did not send, and why."""

    index: int
    #: a sentence for people, e.g. "launch 3f2a... sent the same batch (task ...): followed there"
    reason: str
    #: the launch that sent (or is sending) the same body
    by: str | None = None
    task_id: str | None = None


@dataclass(frozen=True)
class ResendReport:
    """What :meth:`Launch.resend_unknown` did: batches sent again, batches left out (and why).

    ``str()`` says it in a sentence (the CLI and the launch form show it).

    Example:
        >>> str(ResendReport(launch=None, resent=(1, 3), left_out=(LeftOut(2, "launch ab sent it (task t-1)"),)))
        'sent again: batch(es) 1, 3; left out: batch 2 (launch ab sent it (task t-1))'
    """

    launch: Any  # the Launch, for report.launch.wait()
    resent: tuple[int, ...]
    left_out: tuple[LeftOut, ...]

    def __str__(self) -> str:
        parts = [f"sent again: batch(es) {', '.join(map(str, self.resent))}"] if self.resent else []
        if self.left_out:
            parts.append("left out: " + "; ".join(f"batch {b.index} ({b.reason})" for b in self.left_out))
        return "; ".join(parts) or "no unknown batch to send again"


def _left_out(batch: BatchRecord, holder: BatchRecord | None = None) -> LeftOut:
    """Why a batch was not sent again: the launch it follows now (``holder``, or its origin)."""
    source = holder or batch
    by = holder.launch_id if holder is not None else batch.origin
    if source.state == BatchState.SENDING:
        reason = f"launch {by} is sending the same batch right now: followed there, not sent twice"
    else:
        reason = (
            f"launch {by} sent the same batch (task {source.task_id}, {source.state}): followed there, "
            "not sent twice"
        )
    return LeftOut(batch.index, reason, by, source.task_id)


def _report(launch: Launch, deliveries: Mapping[int, Delivery], left_out: Sequence[LeftOut]) -> ResendReport:
    resent = tuple(sorted(i for i, d in deliveries.items() if d.holder is None))
    mine = [
        _left_out(launch._journal.batch(launch.launch_id, i), d.holder)
        for i, d in sorted(deliveries.items())
        if d.holder is not None and d.holder.launch_id != launch.launch_id
    ]
    return ResendReport(launch=launch, resent=resent, left_out=(*left_out, *mine))


class Launch:
    """One launch of a plan: its batches' states, task progress, and per-row results.

    Built by :meth:`Client.launch` (with the plan) or :meth:`Client.resume` (from the
    journal; ``plan`` is then None unless given). Batch states live in the journal, so
    every property reads them fresh (another process may be following the same launch).

    While it sends, a launch holds its lease in the journal (:mod:`toolkit.send.lease`). A
    launch opened while another live process holds the lease (:attr:`sender` says which) is
    read-only: ``wait()``, ``results()`` and ``summary()`` show its progress, nothing of it is
    relabelled, and ``resend_unknown()`` raises :class:`~toolkit.errors.AlreadyLaunched`
    until that process is done.

    Example (needs a server)::

        launch = client.launch(plan, label="spring")
        launch.wait(timeout=600)
        launch.summary()                  # {'rows': ..., 'imported': ..., 'failures': {...}}
        launch.results(join=True)         # one row per input row, with the segment's columns
        fixed_plan = launch.retry_failed(fixed_segment)
    """

    def __init__(
        self, client: Sender, record: LaunchRecord, *, plan: Plan | None = None, owner: str | None = None
    ) -> None:
        self._client = client
        self._journal: Journal = client.journal
        self._record = record
        self.plan = plan
        #: this object's name in the launch's lease while it sends
        self._owner = owner or uuid.uuid4().hex
        self.timed_out = False
        self._history: list[dict[str, Any]] = []
        self._history_lock = threading.Lock()
        #: the platform's own figures of each task, from its last status read (batch -> figures)
        self._figures: dict[int, dict[str, Any]] = {}
        self._poll_errors: Counter[int] = Counter()

    @classmethod
    def from_journal(cls, client: Sender, label: str, *, plan: Plan | None = None) -> Launch:
        """The latest launch with this label (or id) in the client's journal."""
        record = client.journal.find(label)
        if record.host != client.host:
            raise ConfigurationError(
                f"launch {record.label or record.launch_id!r} was sent to {record.host}, but this client "
                f"points at {client.host}: build a Client for {record.host} to follow it"
            )
        if plan is not None and plan.fingerprint != record.fingerprint:
            raise InvalidArgumentError(
                f"this plan is not the one launched as {label!r} (different batches); pass the same plan, "
                "or none to read the launch from the journal alone"
            )
        # batches left in flight are unknown only when their process is provably gone: a live
        # sender holds the lease, and this launch is then read-only
        caught = client.journal.reset_in_flight(record.launch_id)
        if caught:
            log.warning("launch %s: batch(es) %s caught in flight by a process that stopped: now unknown",
                        record.launch_id, caught)  # fmt: skip
        launch = cls(client, record, plan=plan)
        sender = launch.sender
        if sender is not None:
            log.info("launch %s is being sent by %s: read-only here", record.launch_id, sender.describe())
        # the status reads of the earlier session are gone; its journal still knows when each
        # batch was sent and finished, so progress_history() (and its chart) is not empty
        launch._history.extend(_journal_progress(launch.batches))
        return launch

    # --- identity -------------------------------------------------------------------------
    @property
    def launch_id(self) -> str:
        return self._record.launch_id

    @property
    def label(self) -> str | None:
        return self._record.label

    @property
    def trigger_id(self) -> int | None:
        return self._record.trigger_id

    @property
    def created(self) -> str:
        return self._record.created

    @property
    def target(self) -> str:
        """``"SANDBOX at host:port"`` or ``"PLATFORM at host"``: where this launch goes (no request
        is made: a client that has had no answer yet names the platform, the safe side)."""
        return target_label(self._client, ask=False)

    @property
    def batches(self) -> list[BatchRecord]:
        """Each batch's journal record (state, task id, attempts, progress), fresh from the journal."""
        return self._journal.batches(self.launch_id)

    def states(self) -> dict[str, int]:
        """Number of batches in each state, e.g. ``{'completed': 3, 'unknown': 1}``."""
        return dict(Counter(str(b.state) for b in self.batches))  # plain strings: shown to people

    @property
    def done(self) -> bool:
        """True when no batch waits for sending or processing (``unknown`` ones excepted)."""
        return all(b.state in BATCH_SETTLED_STATES for b in self.batches)

    @property
    def sender(self) -> Lease | None:
        """The lease of another live process sending this launch right now, or ``None``.

        While it is set this launch is read-only here (see the class docs);
        ``sender.describe()`` says e.g. ``process 4242 on host-a (last heartbeat 3 s ago)``.
        """
        return self._journal.sender(self.launch_id, owner=self._owner)

    @contextlib.contextmanager
    def _leased(self) -> Iterator[None]:
        """Hold the launch's lease while sending (heartbeat included); another live holder
        makes this raise :class:`~toolkit.errors.AlreadyLaunched`, changing nothing."""
        holder = self._journal.take_lease(self.launch_id, self._owner)
        if holder is not None:
            raise AlreadyLaunched(_busy_message(self._record, holder), previous=self._record, sender=holder)
        try:
            with Heartbeat(
                lambda: self._journal.renew_lease(self.launch_id, self._owner), interval=LEASE_HEARTBEAT
            ):
                yield
        finally:
            self._release()

    def _release(self) -> None:
        """Give the lease back (a lease this launch does not hold is left alone)."""
        try:
            self._journal.release_lease(self.launch_id, self._owner)
        except JournalError as exc:  # it lapses by itself once this process is gone or silent
            log.warning("launch %s: its lease could not be released: %s", self.launch_id, exc)

    # --- sending ------------------------------------------------------------------------------
    def _require_plan(self, what: str) -> Plan:
        if self.plan is None:
            raise InvalidArgumentError(
                f"{what} needs the plan (the journal keeps no request bodies): "
                f"client.resume({(self.label or self.launch_id)!r}, plan=plan)"
            )
        return self.plan

    def _emitter(
        self, callback: ProgressCallback | None, phase: Literal["sending", "processing"]
    ) -> ProgressEmitter:
        """A progress emitter starting from the journal's state of every batch."""
        batches = self.batches if callback is not None else []
        return ProgressEmitter(
            self.launch_id,
            [(b.index, b.n_rows, b.state, b.progress) for b in batches],
            callback,
            phase=phase,
        )

    def _send(
        self,
        indices: Sequence[int],
        *,
        concurrency: int,
        progress: bool,
        resend: bool = False,
        on_progress: ProgressCallback | None = None,
        note: Callable[[Mapping[int, Delivery]], str | None] | None = None,
    ) -> dict[int, Delivery]:
        """Send these batches under the launch's lease, journalling each before and after; at
        most ``concurrency`` at once. Returns what became of each batch tried; ``note`` adds a
        sentence about them to the final progress event's message."""
        deliveries: dict[int, Delivery] = {}
        events = self._emitter(on_progress, "sending")
        events.start()
        try:
            if indices:
                with self._leased():
                    self._send_batches(
                        indices, concurrency=concurrency, progress=progress, resend=resend, events=events,
                        deliveries=deliveries,
                    )  # fmt: skip
        finally:
            if events.active:
                extra = note(deliveries) if note is not None else None
                events.done(self._sent_message() + (f"; {extra}" if extra else ""))
        return deliveries

    def _sent_message(self) -> str:
        """What a send call left, in a sentence: counts by state and what to do next."""
        states = Counter(b.state for b in self.batches)
        shown = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
        hint = ""
        if states.get(BatchState.UNKNOWN):
            hint = "; check the unknown ones on the platform, then launch.resend_unknown() if needed"
        elif states.get(BatchState.SENT):
            hint = "; launch.wait() follows the tasks"
        return f"batches: {shown or 'none'}{hint}"

    def _send_batches(
        self,
        indices: Sequence[int],
        *,
        concurrency: int,
        progress: bool,
        resend: bool,
        events: ProgressEmitter,
        deliveries: dict[int, Delivery],
    ) -> None:
        plan = self._require_plan("sending")
        by_index = {b.index: b for b in plan.batches}
        stop = threading.Event()
        auth_errors: list[AuthError] = []
        bar = _tqdm(
            total=sum(len(by_index[i]) for i in indices),
            unit="rows",
            desc=f"sending {self.label or self.launch_id}",
            disable=not progress,
            leave=True,
        )
        lock = threading.Lock()

        def send_one(index: int) -> None:
            if stop.is_set():
                return  # a refused token, or a failure below: nothing more is claimed
            batch = by_index[index]
            # the journal's atomic claim (in send_batch_once) is what makes "exactly once" hold
            # even when two processes launch the same plan at the same moment
            try:
                delivery = send_batch_once(
                    self._client,
                    self.launch_id,
                    batch,
                    exclusive=not (self._record.forced or resend),
                    resend=resend,
                    owner=self._owner,
                    on_claim=lambda: events.batch(index, BatchState.SENDING),
                    on_retry=lambda notice: events.retrying(str(notice)),
                )
            except BaseException:
                stop.set()  # a journal that cannot record, Ctrl-C, a bug: claim nothing more
                if events.active:  # tell what the journal says now (unknown, if it may have gone out)
                    with contextlib.suppress(Exception):
                        events.batch(index, self._journal.batch(self.launch_id, index).state)
                raise
            with lock:
                deliveries[index] = delivery
            error = delivery.error
            if isinstance(error, AuthError):
                auth_errors.append(error)
                stop.set()  # the token was refused: every other batch would be too
            elif isinstance(error, OutcomeUnknown):
                log.warning("batch %d: outcome unknown: %s", index, error)
            elif isinstance(error, ApiError):
                log.warning("batch %d refused: %s", index, error)
            elif error is not None:
                log.warning("batch %d not sent: %s", index, error)
            elif delivery.holder is None:
                log.info("batch %d sent: task %s", index, delivery.task_id)
            if delivery.holder is None or delivery.holder.launch_id != self.launch_id:
                events.batch(index, delivery.state)
            with lock:
                bar.update(len(batch))

        pool = ThreadPoolExecutor(
            max_workers=min(concurrency, len(indices)), thread_name_prefix="toolkit-send"
        )
        try:
            futures = [pool.submit(send_one, i) for i in indices]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for f in done:
                f.result()  # re-raise an unexpected error at once
            for f in futures:
                f.result()
        except BaseException:
            # Ctrl-C or a bug: start nothing new; batches in flight finish and are journalled
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)
            bar.close()
        if auth_errors:
            raise auth_errors[0]

    def resend_unknown(
        self, *, concurrency: int = 4, progress: bool = True, on_progress: ProgressCallback | None = None
    ) -> ResendReport:
        """Send again the batches whose outcome is ``unknown``, once you decided to; returns a
        :class:`ResendReport` of what was sent and what was left out, and why.

        Check on the platform first (were these profiles imported?): a re-send of a batch
        the platform did get starts the trigger for its profiles a second time. A batch is
        left out, whatever you decided, when another launch in the journal delivered the
        same body to the same trigger and host (it is followed there: its task, its
        results), or when a live process is sending it right now. Raises
        :class:`~toolkit.errors.AlreadyLaunched` while another live process sends this
        launch (see :attr:`sender`). ``on_progress`` is called as in :meth:`Client.launch`;
        its last event's message names the batches left out.

        Example (needs a server)::

            report = launch.resend_unknown()
            report.resent, [(b.index, b.reason) for b in report.left_out]
            report.launch.wait()
        """
        self._require_plan("resend_unknown()")
        sender = self.sender
        if sender is not None:
            raise AlreadyLaunched(_busy_message(self._record, sender), previous=self._record, sender=sender)
        followed = self._journal.follow_origins(self.launch_id)
        left_out = [_left_out(self._journal.batch(self.launch_id, i)) for i in followed]
        unknown = [b.index for b in self.batches if b.state == BatchState.UNKNOWN]

        def note(deliveries: Mapping[int, Delivery]) -> str | None:
            return str(_report(self, deliveries, left_out)) if left_out or deliveries else None

        deliveries = self._send(
            unknown,
            concurrency=concurrency,
            progress=progress,
            resend=True,
            on_progress=on_progress,
            note=note,
        )
        report = _report(self, deliveries, left_out)
        for item in report.left_out:
            log.warning("resend_unknown: batch %d left out: %s", item.index, item.reason)
        return report

    # --- polling --------------------------------------------------------------------------------
    def wait(
        self,
        timeout: float | None = None,
        progress: bool = True,
        *,
        on_progress: ProgressCallback | None = None,
    ) -> Launch:
        """Poll ``tasks/status`` of unfinished tasks until all are done or ``timeout`` seconds pass.

        Returns by the deadline, give or take one round of status reads (also while another
        process keeps sending batches that finish at once), and never raises on timeout: it
        returns with the state so far (``timed_out`` is True), and a later ``wait()`` goes on.
        ``timeout=0`` reads every task once. The poll interval shrinks while tasks progress and
        grows while they stand still; a round reads the tasks seen moving and the next
        :data:`NEXT_IN_LINE` in the queue, and every task at least every ``poll_max`` seconds. A task whose status cannot be read five times in a row
        (each read already retried) is left for a later ``wait()``, with a warning.
        Returns the launch, for ``launch.wait().results()``.

        ``on_progress(event)`` is called with a :class:`~toolkit.send.events.LaunchProgress` after
        each status read and each retry scheduled, from the polling threads, and once at the
        end (phase ``done``); an exception in it is logged and ignored.

        Example (needs a server)::

            launch = client.launch(plan)
            launch.wait(timeout=60)      # returns after a minute at most, state kept
            launch.timed_out, launch.summary()["pending"]
        """
        events = self._emitter(on_progress, "processing")
        events.start()
        try:
            self._wait(timeout, progress, events)
        finally:
            events.done(self._waited_message() if events.active else None)
        return self

    def _waited_message(self) -> str:
        """What a wait left, in a sentence."""
        pending = sum(b.state == BatchState.SENT for b in self.batches)
        if not pending:
            return self._sent_message()
        why = "timed out" if self.timed_out else "some task statuses could not be read"
        return f"{why} with {pending} task(s) still processing; a later launch.wait() goes on"

    def _wait(self, timeout: float | None, progress: bool, events: ProgressEmitter) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        self.timed_out = False
        self._poll_errors.clear()  # a new wait() tries every task again
        self._journal.follow_origins(self.launch_id)  # batches another launch was sending have a task now
        records = [b for b in self.batches if b.task_id and b.state in _POLLED_STATES]
        total = sum(b.n_rows for b in records)
        done_rows: dict[int, float] = {
            b.index: (b.n_rows if b.finished else b.n_rows * (b.progress or 0) / 100) for b in records
        }
        bar = _tqdm(
            total=total,
            unit="rows",
            desc=f"processing {self.label or self.launch_id}",
            disable=not progress,
            leave=True,
        )
        shown = sum(done_rows.values())
        bar.update(int(shown))
        policy = self._client.retry
        interval = policy.poll_start
        fmt: contract.Format = "xml" if self._record.format == "xml" else "json"
        workers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="toolkit-poll")
        polled = False
        swept = -math.inf  # when every pending task was last read
        known = {b.index: b for b in self.batches}  # full records (rows), re-read when a batch changes
        try:
            while True:
                for index, (state, task_id) in self._journal.batch_states(self.launch_id).items():
                    if index not in known or (known[index].state, known[index].task_id) != (state, task_id):
                        known[index] = self._journal.batch(self.launch_id, index)
                pending = [
                    b
                    for b in known.values()
                    if b.state == BatchState.SENT
                    and b.task_id
                    and self._poll_errors[b.index] < policy.poll_give_up
                ]
                if not pending:
                    break
                # every round ends here, also one whose tasks all finished (another process may
                # keep sending new ones): the deadline holds to within one round of polls
                if polled and deadline is not None and time.monotonic() >= deadline:
                    self.timed_out = True
                    log.info("wait() timed out with %s", self.states())
                    break
                polled = True
                before = sum(done_rows.values())
                if time.monotonic() - swept >= policy.poll_max:
                    swept, polled_now = time.monotonic(), pending
                else:
                    polled_now = _worth_reading(pending, done_rows)
                statuses = list(workers.map(lambda b: (b, self._poll(b, fmt, events)), polled_now))
                for b, status in statuses:
                    if status is not None:
                        done_rows[b.index] = b.n_rows if status.finished else b.n_rows * status.progress / 100
                now_done = sum(done_rows.values())
                if int(now_done) > int(shown):
                    bar.update(int(now_done) - int(shown))
                    shown = now_done
                if all(s is not None and s.finished for _, s in statuses):
                    continue  # everything polled just finished: read what is left at once
                interval = policy.next_poll_interval(interval, moved=now_done > before)
                left = interval if deadline is None else min(interval, deadline - time.monotonic())
                if left > 0:
                    time.sleep(left)
        finally:
            workers.shutdown(wait=True)
            bar.close()

    def _poll(self, batch: BatchRecord, fmt: contract.Format, events: ProgressEmitter) -> TaskStatus | None:
        """One status poll; journals the state. Returns None when the poll itself failed."""
        assert batch.task_id is not None
        try:
            status = self._client.task_status(
                batch.task_id, format=fmt, on_retry=lambda n: events.retrying(str(n))
            )
        except AuthError:
            raise
        except (ApiError, TransportError) as exc:
            self._poll_errors[batch.index] += 1
            log.warning("status of task %s (batch %d) not read: %s", batch.task_id, batch.index, exc)
            if self._poll_errors[batch.index] >= self._client.retry.poll_give_up:
                log.warning(
                    "gave up reading task %s (batch %d) for now; a later launch.wait() tries again",
                    batch.task_id,
                    batch.index,
                )
            return None
        self._poll_errors[batch.index] = 0
        with self._history_lock:
            self._history.append(
                {
                    "time": datetime.now(UTC),
                    "task_id": batch.task_id,
                    "batch": batch.index,
                    "status": status.status,
                    "progress": status.progress,
                }
            )
            self._figures[batch.index] = task_figures(status)
        if status.finished:
            results, error = row_outcomes(batch.index, batch.rows, status)
            self._journal.mark_finished(
                self.launch_id,
                batch.index,
                ok=status.done,
                status=status.status,
                results=results,
                error=error,
            )
            events.task(batch.index, BatchState.COMPLETED if status.done else BatchState.FAILED, 100.0)
        else:
            self._journal.update_status(self.launch_id, batch.index, status.status, status.progress)
            events.task(batch.index, BatchState.SENT, status.progress)
        return status

    def progress_history(self) -> list[dict[str, Any]]:
        """Every status read by ``wait()``: time, task_id, batch, status (raw), progress (0-100).

        A launch read back from the journal (``client.resume``) starts with each task at 0 %
        when it was sent and at 100 % when it finished, marked ``"source": "journal"``.
        """
        with self._history_lock:
            return [dict(h) for h in self._history]

    # --- results --------------------------------------------------------------------------------
    def _frame(self) -> pl.DataFrame:
        """The results as a polars frame (vectorized: a million rows take well under a second)."""
        batches = self.batches
        keys: dict[int, list[str | None]] = (
            {b.index: list(b.keys) for b in self.plan.batches} if self.plan is not None else {}
        )
        sent = pl.DataFrame(
            {
                "batch": [b.index for b in batches],
                "task_id": [b.task_id for b in batches],
                "state": [b.state.value for b in batches],
                "batch_code": [b.error_code for b in batches],
                "batch_error": [b.error for b in batches],
                "position": [list(b.rows) for b in batches],
                "match_key": [keys.get(b.index) or [None] * b.n_rows for b in batches],
            },
            schema={
                "batch": pl.Int64, "task_id": pl.String, "state": pl.String, "batch_code": pl.Int64,
                "batch_error": pl.String, "position": pl.List(pl.Int64), "match_key": pl.List(pl.String),
            },
        ).explode("position", "match_key")  # fmt: skip
        rows = pl.DataFrame(
            self._journal.row_result_rows(self.launch_id),
            schema={
                "position": pl.Int64, "row_status": pl.String, "profile_id": pl.String,
                "row_code": pl.Int64, "row_text": pl.String,
            },
            orient="row",
        )  # fmt: skip
        state = pl.col("state")
        completed, failed, unknown = (
            BatchState.COMPLETED.value,
            BatchState.FAILED.value,
            BatchState.UNKNOWN.value,
        )
        has_row = state.is_in([completed, failed]) & pl.col("row_status").is_not_null()
        frame = sent.join(rows, on="position", how="left").select(
            "position",
            "match_key",
            "batch",
            "task_id",
            status=pl.when(has_row)
            .then(pl.col("row_status"))
            .when(state == failed)
            .then(pl.lit(RowStatus.FAILED.value))
            .when(state.is_in([completed, unknown]))
            .then(pl.lit(RowStatus.UNKNOWN.value))
            .otherwise(pl.lit(RowStatus.PENDING.value)),
            profile_id=pl.when(has_row).then(pl.col("profile_id")),
            error=pl.when(has_row)
            .then(pl.col("row_code").cast(pl.String))
            .when(state == failed)
            .then(pl.coalesce(pl.col("batch_code").cast(pl.String), pl.lit("not_sent"))),
            error_text=pl.when(has_row)
            .then(pl.col("row_text"))
            .when(state == failed)
            .then(pl.col("batch_error"))
            .when(state == completed)  # completed, yet no per-profile answer was kept
            .then(pl.lit("no per-profile result"))
            .when(state == unknown)
            .then(pl.lit(UNKNOWN_TEXT)),
        )
        if self.plan is not None:
            frame = _with_keys_restored(frame)
            rejected = _polars(self.plan.rejected)
            if rejected is not None and rejected.height:
                names = set(rejected.columns)
                rejected = rejected.select(
                    pl.col("position").cast(pl.Int64),
                    match_key=pl.lit(None, pl.String),
                    batch=pl.lit(None, pl.Int64),
                    task_id=pl.lit(None, pl.String),
                    status=pl.lit(RowStatus.REJECTED.value),
                    profile_id=pl.lit(None, pl.String),
                    error=pl.col("rule").cast(pl.String) if "rule" in names else pl.lit(None, pl.String),
                    error_text=pl.col("reason").cast(pl.String)
                    if "reason" in names
                    else pl.lit(None, pl.String),
                )
                frame = pl.concat([frame, rejected])
        return frame.cast(RESULT_SCHEMA).sort("position")

    def results(self, join: bool = False) -> Any:
        """One row per input row: ``position, match_key, batch, task_id, status, profile_id,
        error, error_text`` (``status``: imported, failed, rejected, unknown, pending).

        ``error`` is a short code to group by: the platform's error code (``"404"``), the
        plan's rejection rule (``"invalid_email"``), or ``"not_sent"`` for a batch that never
        reached the platform. The frame is of the plan's kind (pandas or polars; pandas
        after a resume without the plan). ``join=True`` appends the segment's own columns
        (needs the plan).
        """
        frame = self._frame()
        if self.plan is None:
            if join:
                self._require_plan("results(join=True)")
            return frame.to_pandas()
        # the plan's own view of its segment: a streamed plan reads its source only for join=True
        source = self.plan.segment(rows=join)
        if join:
            # a plan made by subset()/retry_failed() holds only some rows of the original
            # segment; its source row i is input position _positions[i], not i
            positions = getattr(self.plan, "_positions", None)
            segment = source.polars.with_columns(
                pl.Series("position", list(range(source.polars.height)) if positions is None else list(positions),
                          dtype=pl.Int64)
            )  # fmt: skip
            frame = frame.join(segment, on="position", how="left", suffix="_segment")
        return source.back(frame)

    def summary(self) -> dict[str, Any]:
        """Counts by status, failures by error text, rejections by rule, batches by state.

        ``{'rows': 5, 'imported': 3, 'failed': 1, 'rejected': 1, 'unknown': 0, 'pending': 0,
        'failures': {'invalid phone': 1}, 'rejections': {'invalid_email': 1}, 'batches': {...}}``
        """
        frame = self._frame()
        statuses = dict(frame.group_by("status").len().iter_rows())

        def counts(status: str, column: str, default: str) -> dict[str, int]:
            grouped = (
                frame.filter(pl.col("status") == status)
                .group_by(pl.col(column).fill_null(default))
                .len()
                .sort(["len", column], descending=[True, False])
            )
            return dict(grouped.iter_rows())

        out: dict[str, Any] = {"rows": frame.height}
        for name in RowStatus:
            out[name.value] = int(statuses.get(name.value, 0))
        out["failures"] = counts(RowStatus.FAILED, "error_text", "unknown error")
        out["rejections"] = counts(RowStatus.REJECTED, "error", "rejected")
        out["batches"] = self.states()
        out["tasks"] = self.tasks()
        return out

    def tasks(self) -> list[dict[str, Any]]:
        """Each sent batch's task as the platform reported it, beside the per-row view.

        ``batch``, ``task_id``, ``rows`` (the batch's), ``state`` (the journal's), then the
        platform's own figures from its last status read: ``status``, ``progress``,
        ``captured`` and ``errors`` (the short result form), ``results`` (how many per-profile
        results it listed), and ``note`` (why its rows are not settled one by one, if so).
        Figures the platform did not give, or that this session did not read (a launch
        resumed from the journal keeps only status and progress), are ``None``.

        Example (needs a server)::

            launch.wait().tasks()[0]
            # {'batch': 0, 'task_id': '...', 'rows': 3, 'state': 'completed', 'status': 'completed',
            #  'progress': 100.0, 'captured': 0, 'errors': 0, 'results': None, 'note': 'the platform ...'}
        """
        with self._history_lock:
            figures = dict(self._figures)
        out = []
        for b in self.batches:
            if not b.task_id:
                continue
            seen = figures.get(b.index, {})
            out.append(
                {
                    "batch": b.index,
                    "task_id": b.task_id,
                    "rows": b.n_rows,
                    "state": str(b.state),
                    "status": seen.get("status", b.status),
                    "progress": seen.get("progress", b.progress),
                    "captured": seen.get("captured"),
                    "errors": seen.get("errors"),
                    "results": seen.get("results"),
                    "note": b.error if b.finished else None,
                }
            )
        return out

    def failed_positions(self) -> list[int]:
        """Input positions of the rows that failed (sent and refused, or never delivered)."""
        return self._frame().filter(pl.col("status") == RowStatus.FAILED.value)["position"].to_list()

    def retry_failed(self, frame: Any = None) -> Plan:
        """A plan of the failed rows only, to launch after the data is fixed.

        Without ``frame`` the rows are re-planned from the plan's own source; with
        ``frame`` (the corrected segment, same row order) they are taken from it.
        """
        plan = self._require_plan("retry_failed()")
        positions = self.failed_positions()
        if not positions:
            raise InvalidArgumentError(
                "no row failed in this launch: nothing to retry (see launch.summary())"
            )
        if frame is None:
            return plan.subset(positions)
        from toolkit.core.plan import plan as make_plan

        return make_plan(frame, plan.mapping, plan.trigger, **dict(plan.options)).subset(positions)

    # --- display ------------------------------------------------------------------------------
    def __repr__(self) -> str:
        batches = self.batches
        states = Counter(b.state for b in batches)
        shown = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
        rows = sum(b.n_rows for b in batches)
        name = repr(self.label) if self.label else "(no label)"
        return (
            f"<Launch {name} id={self.launch_id} trigger={self.trigger_id} to {self.target}: "
            f"{len(batches)} batches ({shown or 'none'}), {rows:,} rows"
            + (", timed out" if self.timed_out else "")
            + ">"
        )

    def _repr_html_(self) -> str:
        batches = self.batches
        esc = html.escape
        target = self.target
        # the two words look different on purpose: a rehearsal must never pass for the real thing
        colour = "#1a7f37" if target.startswith("SANDBOX") else "#cf222e"
        badge = (
            f"<span style='background:{colour};color:white;font-weight:bold;padding:1px 6px;"
            f"border-radius:3px'>{esc(target)}</span>"
        )
        head = (
            f"{badge} <b>Launch {esc(self.label or '(no label)')}</b> <code>{esc(self.launch_id)}</code> "
            f"to trigger {self.trigger_id}, {esc(self.created[:19])} UTC"
        )
        rows = "".join(
            f"<tr><td>{b.index}</td><td>{b.n_rows:,}</td><td>{esc(b.state)}</td>"
            f"<td><code>{esc(b.task_id or '')}</code></td><td>{esc(b.status or '')}</td>"
            f"<td>{'' if b.progress is None else f'{b.progress:.0f}%'}</td><td>{b.attempts}</td>"
            f"<td>{esc((b.error or '')[:120])}</td></tr>"
            for b in batches[:50]
        )
        more = f"<p>... and {len(batches) - 50} more batches</p>" if len(batches) > 50 else ""
        return (
            f"<div>{head}<table><thead><tr><th>batch</th><th>rows</th><th>state</th><th>task</th>"
            f"<th>status</th><th>progress</th><th>attempts</th><th>error</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>{more}</div>"
        )


def _with_keys_restored(frame: pl.DataFrame) -> pl.DataFrame:
    """The platform's texts with each row's own match key back where the journal keeps only its
    hash (``<key sha256:...>``): this session has the keys (the plan). Only the few rows with a
    mark are touched."""
    marked = frame["error_text"].str.contains(KEY_MARK.pattern).fill_null(False)
    if not marked.any():
        return frame
    rows = marked.arg_true()
    texts = frame["error_text"].gather(rows).to_list()
    keys = frame["match_key"].gather(rows).to_list()
    restored = pl.Series([restore_key(t, k) for t, k in zip(texts, keys, strict=True)], dtype=pl.String)
    return frame.with_columns(frame["error_text"].scatter(rows, restored))


def _polars(frame: Any) -> pl.DataFrame | None:
    if frame is None:
        return None
    if isinstance(frame, pl.DataFrame):
        return frame
    from toolkit.core.frames import SourceFrame

    return SourceFrame.wrap(frame).polars


def history_frame(
    journal: Journal, *, kind: Literal["pandas", "polars"] = "pandas"
) -> pd.DataFrame | pl.DataFrame:
    """The journal's launches, newest first, as a pandas (default) or polars frame."""
    if kind not in ("pandas", "polars"):
        raise InvalidArgumentError(f"kind must be 'pandas' or 'polars', got {kind!r}")
    schema: dict[str, pl.DataType | type[pl.DataType]] = {
        "launch_id": pl.String, "label": pl.String, "created": pl.String, "trigger_id": pl.Int64,
        "host": pl.String, "format": pl.String, "rows": pl.Int64, "batches": pl.Int64,
        "planned": pl.Int64, "sent": pl.Int64, "completed": pl.Int64, "failed": pl.Int64,
        "unknown": pl.Int64, "imported_rows": pl.Int64, "failed_rows": pl.Int64, "forced": pl.Boolean,
        "task_ids": pl.List(pl.String), "fingerprint": pl.String,
    }  # fmt: skip
    rows = [{k: r.get(k) for k in schema} for r in journal.history()]
    frame = pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
    frame = frame.with_columns(pl.col("created").str.to_datetime(time_zone="UTC", strict=False))
    return frame if kind == "polars" else frame.to_pandas()


def single_body(record_or_row: Any, mapping: Any, trigger: Any, *, format: contract.Format = "json") -> bytes:
    """The body of ``campaigns/triggers/import_and_start`` for one row, built by the plan
    machinery (same validation and encoding as a launch), without the token.

    The single call takes the profile as ``data`` (an object, not a list) and names the
    match key at the top level (``email``, ``phone``, ``profile_id`` or ``field_value``).

    Example:
        >>> from toolkit.core.mapping import Mapping, Trigger
        >>> single_body({"email": " Ann@X.io", "name": "Ann"}, Mapping({"email": "email", "name": "_fname"}),
        ...             Trigger(96))  # doctest: +ELLIPSIS
        b'{"format":"json","matching":"email","trigger_id":96,...,"data":{"email":"ann@x.io","_fname":"Ann"},"email":"ann@x.io"}'
    """
    import polars as pl

    from toolkit.core.plan import plan as make_plan

    frame = pl.DataFrame([dict(record_or_row)]) if isinstance(record_or_row, Mapping) else record_or_row
    planned = make_plan(frame, mapping, trigger, format="json")
    if planned.n_rows != 1:
        raise InvalidArgumentError(
            f"import_and_start sends one profile, got {planned.n_rows} rows: launch a plan for many"
        )
    if not planned.batches:
        rejected = _polars(planned.rejected)
        reason = rejected["reason"][0] if rejected is not None and rejected.height else "rejected"
        raise InvalidArgumentError(f"the profile was not sent: {reason}")
    batch = planned.batches[0]
    envelope = orjson.loads(batch.body)
    items = envelope.pop("data")
    item = items[0]
    profile = item.get("data", item) if isinstance(item, dict) else item
    body: dict[str, Any] = {**envelope, "data": profile}
    key = batch.keys[0] if batch.keys else None
    rule = contract.MATCHING_MODES.get(str(body.get("matching", "email")))
    if key is not None and rule is not None:
        needs = rule.needs
        if needs == "email_or_phone":
            needs = "email" if "@" in key else "phone"
        top = {"email": "email", "phone": "phone", "profile_id": "profile_id", "field": "field_value"}.get(
            needs
        )
        if top:
            body.setdefault(top, key)
    if format == "xml":
        body["format"] = "xml"
        return contract.dumps_xml(body)
    return orjson.dumps(body)
