"""What a launch tells its watchers while it runs: one immutable :class:`LaunchProgress` event.

``client.launch(plan, on_progress=callback)``, ``launch.wait(on_progress=callback)`` and
``launch.resend_unknown(on_progress=callback)`` call
``callback(event)`` from the sending / polling thread each time something changes (a batch
claimed, sent, refused; a task's progress read; a retry scheduled). The widgets draw their
bars from these events; nobody polls the journal to find out.

A callback must be quick and must not raise: an exception in it is logged and dropped, so a
broken progress bar never stops a launch.

Example:
    >>> from toolkit.core.contract import BatchState
    >>> e = LaunchProgress("l1", "sending", rows_total=10, batches={0: BatchState.SENT, 1: BatchState.PLANNED},
    ...                    batch_rows={0: 6, 1: 4})
    >>> e.rows_sent, e.batches_done, e.fraction_sent
    (6, 0, 0.6)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from toolkit.core.contract import BATCH_SENT_STATES, BATCH_SETTLED_STATES, BatchState

__all__ = ["LaunchProgress", "Phase", "ProgressCallback", "ProgressEmitter"]

log = logging.getLogger("toolkit.send.events")

#: ``sending``: batches go out; ``retrying``: the platform is not answering and a retry is
#: scheduled (``message`` says which of how many); ``processing``: every batch is out and the
#: tasks are being followed; ``done``: nothing more will happen without the user.
Phase = Literal["sending", "retrying", "processing", "done"]


@dataclass(frozen=True)
class LaunchProgress:
    """A snapshot of one launch: each batch's state and task progress, plus a phase."""

    launch_id: str
    phase: Phase
    #: rows of the launch (every batch), known from the plan or the journal
    rows_total: int
    #: batch index -> its state now
    batches: Mapping[int, BatchState] = field(default_factory=dict)
    #: batch index -> its rows
    batch_rows: Mapping[int, int] = field(default_factory=dict)
    #: batch index -> the platform's progress of its task, 0-100 (absent before the first read)
    task_progress: Mapping[int, float] = field(default_factory=dict)
    #: a sentence for people, e.g. "the platform is not answering: retry 2 of 5 in 4 s"
    message: str | None = None

    @property
    def rows_sent(self) -> int:
        """Rows in batches the platform has or may have (sending, sent, unknown, completed)."""
        return sum(self.batch_rows.get(i, 0) for i, s in self.batches.items() if s in BATCH_SENT_STATES)

    @property
    def rows_processed(self) -> float:
        """Rows whose fate is settled or being worked on by the platform: settled batches count
        whole, a sent batch by its task's progress."""
        total = 0.0
        for i, state in self.batches.items():
            rows = self.batch_rows.get(i, 0)
            if state in BATCH_SETTLED_STATES:
                total += rows
            elif state == BatchState.SENT:
                total += rows * self.task_progress.get(i, 0.0) / 100
        return total

    @property
    def batches_done(self) -> int:
        """Batches that are settled: completed, failed or unknown."""
        return sum(s in BATCH_SETTLED_STATES for s in self.batches.values())

    @property
    def fraction_sent(self) -> float:
        return self.rows_sent / self.rows_total if self.rows_total else 1.0


ProgressCallback = Callable[[LaunchProgress], None]


class ProgressEmitter:
    """The running state of one ``launch()`` / ``wait()`` / ``resend_unknown()`` call, told to a
    callback as a fresh :class:`LaunchProgress` at each change.

    The sending and polling threads call :meth:`batch`, :meth:`task` and :meth:`retrying`; each
    builds a snapshot under one lock and calls the callback there too, so the callback sees the
    events one at a time and in the order they happened. An exception in the callback is
    logged and dropped: a broken progress bar never stops a launch. Without a callback every
    method returns at once.

    Example:
        >>> seen = []
        >>> e = ProgressEmitter("l1", [(0, 6, BatchState.PLANNED, None), (1, 4, BatchState.PLANNED, None)],
        ...                     seen.append, phase="sending")
        >>> e.batch(0, BatchState.SENT); e.retrying("the platform is busy (HTTP 503): retry 1 of 5 in 1 s")
        >>> e.done("batch 1 was refused")
        >>> [(x.phase, x.rows_sent, x.message) for x in seen]  # doctest: +NORMALIZE_WHITESPACE
        [('sending', 6, None), ('retrying', 6, 'the platform is busy (HTTP 503): retry 1 of 5 in 1 s'),
         ('done', 6, 'batch 1 was refused')]
        >>> def broken(event): raise RuntimeError("a bar that fails")
        >>> ProgressEmitter("l1", [(0, 1, BatchState.PLANNED, None)], broken, phase="sending").done()
    """

    def __init__(
        self,
        launch_id: str,
        batches: Iterable[tuple[int, int, BatchState, float | None]],
        callback: ProgressCallback | None,
        *,
        phase: Phase,
    ) -> None:
        self.launch_id = launch_id
        self._callback = callback
        self._phase: Phase = phase
        self._states: dict[int, BatchState] = {}
        self._rows: dict[int, int] = {}
        self._progress: dict[int, float] = {}
        for index, rows, state, progress in batches:
            self._states[index] = BatchState(state)
            self._rows[index] = rows
            if progress is not None:
                self._progress[index] = float(progress)
        self._lock = threading.RLock()
        self._failures = 0

    @property
    def active(self) -> bool:
        """True when someone listens (callers may skip building what they would report)."""
        return self._callback is not None

    def start(self) -> None:
        """Tell the state before anything happens (totals for a bar to draw)."""
        self._emit(self._phase, None)

    def batch(self, index: int, state: BatchState) -> None:
        """A batch changed state (claimed, sent, refused, unknown, finished)."""
        if self._callback is None:
            return
        with self._lock:
            self._states[index] = BatchState(state)
            if state == BatchState.COMPLETED:
                self._progress[index] = 100.0
            self._emit(self._phase, None)

    def task(self, index: int, state: BatchState, progress: float) -> None:
        """A task's status was read: its batch's state (``sent`` until it finishes) and progress."""
        if self._callback is None:
            return
        with self._lock:
            self._states[index] = BatchState(state)
            self._progress[index] = float(progress)
            self._emit(self._phase, None)

    def retrying(self, message: str) -> None:
        """A call failed and will be tried again: phase ``retrying`` with a sentence for people."""
        self._emit("retrying", message)

    def done(self, message: str | None = None) -> None:
        """The call is over: nothing more happens without the user."""
        self._emit("done", message)

    def _emit(self, phase: Phase, message: str | None) -> None:
        if self._callback is None:
            return
        with self._lock:
            event = LaunchProgress(
                self.launch_id,
                phase,
                rows_total=sum(self._rows.values()),
                batches=MappingProxyType(dict(self._states)),
                batch_rows=MappingProxyType(dict(self._rows)),
                task_progress=MappingProxyType(dict(self._progress)),
                message=message,
            )
            try:
                self._callback(event)
            except Exception:
                # the first failure with its traceback, the rest in one line each
                self._failures += 1
                log.warning(
                    "the on_progress callback raised (ignored, the launch goes on)",
                    exc_info=self._failures == 1,
                )
