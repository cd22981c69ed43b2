"""What a launch tells its watchers while it runs: one immutable :class:`LaunchProgress` event.

``client.launch(plan, on_progress=callback)`` and ``launch.wait(on_progress=callback)`` call
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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from toolkit.core.contract import BATCH_SENT_STATES, BATCH_SETTLED_STATES, BatchState

__all__ = ["LaunchProgress", "Phase", "ProgressCallback"]

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
