"""Batch progress bars, drawn from :class:`~toolkit.send.events.LaunchProgress` events.

A launch calls its ``on_progress`` callback from the sending and polling threads; the bars
draw each event as it comes (ipywidgets traits may be set from any thread). Nobody polls
the journal: a launch read back from it is drawn once, from :func:`snapshot`.

Example:
    >>> from toolkit.core.contract import BatchState
    >>> bars = BatchBars()
    >>> bars.show(LaunchProgress("l1", "processing", rows_total=300,
    ...                          batches={0: BatchState.COMPLETED, 1: BatchState.SENT},
    ...                          batch_rows={0: 100, 1: 200}, task_progress={1: 50.0}))
    >>> bars.lines()
    ['100 rows · completed', '200 rows · sent · task 50%', '200 of 300 rows processed']
    >>> progress_message(LaunchProgress("l1", "retrying", rows_total=300,
    ...                                 message="the platform is not answering: retry 2 of 5 in 4 s"))
    ('warning', 'The platform is not answering: retry 2 of 5 in 4 s')
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, Final

import ipywidgets as widgets

from toolkit.core.contract import BATCH_SENT_STATES, BATCH_SETTLED_STATES, BatchState
from toolkit.send.events import LaunchProgress, Phase
from toolkit.send.journal import BatchRecord
from toolkit.view.widgets._html import CSS_CLASSES, STYLE, MessageKind

__all__ = ["MAX_BATCH_BARS", "BatchBars", "progress_message", "snapshot"]

#: Batches with a bar of their own; the others are in the bar for all rows.
MAX_BATCH_BARS: Final = 20
_BAR_STYLES: Final = {
    BatchState.COMPLETED: "success",
    BatchState.FAILED: "danger",
    BatchState.UNKNOWN: "warning",
}
_FINISHED: Final = frozenset({BatchState.COMPLETED, BatchState.FAILED})


def snapshot(launch_id: str, batches: Sequence[BatchRecord]) -> LaunchProgress:
    """A launch's state as its journal records it now, in the shape of a progress event: for a
    launch nobody is sending (read back from the journal), or its last state once it ended.

    Example:
        >>> snapshot("l1", []).phase
        'done'
    """
    states = {b.index: BatchState(b.state) for b in batches}
    phase: Phase
    if all(s in BATCH_SETTLED_STATES for s in states.values()):
        phase = "done"
    elif all(s in BATCH_SENT_STATES or s in BATCH_SETTLED_STATES for s in states.values()):
        phase = "processing"
    else:
        phase = "sending"
    return LaunchProgress(
        launch_id,
        phase,
        rows_total=sum(b.n_rows for b in batches),
        batches=states,
        batch_rows={b.index: b.n_rows for b in batches},
        task_progress={b.index: b.progress for b in batches if b.progress is not None},
    )


def _percent(state: BatchState, task_progress: float | None) -> float:
    """How far one batch is: whole once its task finished, its task's progress while sent."""
    if state in _FINISHED:
        return 100.0
    if state == BatchState.SENT:
        return float(task_progress or 0.0)
    return 0.0


def progress_message(event: LaunchProgress) -> tuple[MessageKind, str] | None:
    """The status line for a progress event (``None`` once the launch is done: its results say
    how it ended).

    Example:
        >>> from toolkit.core.contract import BatchState
        >>> progress_message(LaunchProgress("l1", "sending", rows_total=10,
        ...                                 batches={0: BatchState.SENT, 1: BatchState.PLANNED},
        ...                                 batch_rows={0: 6, 1: 4}))
        ('info', 'Sending 10 profiles in 2 batch(es)... 6 on their way so far.')
        >>> progress_message(LaunchProgress("l1", "processing", rows_total=10,  # never "Sent."
        ...                                 batches={0: BatchState.FAILED}, batch_rows={0: 10})) is None
        True
    """
    n_batches = len(event.batches)
    if event.phase == "retrying":
        text = event.message or "The platform is not answering: retrying..."
        return "warning", text[:1].upper() + text[1:]
    if event.phase == "sending":
        return "info", (
            f"Sending {event.rows_total:,} profiles in {n_batches:,} batch(es)... "
            f"{event.rows_sent:,} on their way so far."
        )
    if event.phase == "processing":
        if not any(state in BATCH_SENT_STATES for state in event.batches.values()):
            return None  # nothing went out (e.g. the platform never answered): the end says so
        waiting = sum(s == BatchState.SENT for s in event.batches.values())
        return (
            "info",
            f"Sent. The platform is processing: {waiting:,} of {n_batches:,} task(s) still running.",
        )
    return None


class BatchBars(widgets.VBox):
    """One progress bar per batch (the first :data:`MAX_BATCH_BARS`) and one for all rows."""

    def __init__(self) -> None:
        super().__init__()
        self.add_class(CSS_CLASSES["progress"])
        self._lock = threading.Lock()  # events come from several sending threads at once
        self._sizes: dict[int, int] = {}
        self._bars: dict[int, tuple[widgets.IntProgress, widgets.Label]] = {}
        self._overall = widgets.IntProgress(min=0, max=100, description="all rows", style=STYLE)
        self._overall_text = widgets.Label()

    def reset(self, sizes: Mapping[int, int]) -> None:
        """New bars for these batches (index -> rows), every one at 0 and "planned"."""
        with self._lock:
            self._reset(sizes)

    def _reset(self, sizes: Mapping[int, int]) -> None:
        self._sizes = dict(sizes)
        self._bars = {}
        rows = []
        for index, n in list(self._sizes.items())[:MAX_BATCH_BARS]:
            bar = widgets.IntProgress(min=0, max=100, description=f"batch {index}", style=STYLE)
            text = widgets.Label(f"{n:,} rows · {BatchState.PLANNED}")
            self._bars[index] = (bar, text)
            rows.append(widgets.HBox([bar, text]))
        more = len(self._sizes) - MAX_BATCH_BARS
        if more > 0:
            rows.append(widgets.HTML(f"<i>... and {more} more batches (in the bar below)</i>"))
        self._overall.value = 0
        self._overall_text.value = ""
        self.children = (*rows, widgets.HBox([self._overall, self._overall_text]))

    def show(self, event: LaunchProgress, *, counts: Mapping[int, str] | None = None) -> None:
        """Draw an event: each batch's state (and its task's progress while sent), and the rows
        processed of all. ``counts`` adds a batch's outcome to its line (index -> text)."""
        with self._lock:
            if set(event.batch_rows) != set(self._sizes):
                self._reset(event.batch_rows)  # another launch's batches (or none drawn yet)
            done = 0.0
            for index, rows in event.batch_rows.items():
                state = BatchState(event.batches.get(index, BatchState.PLANNED))
                task_progress = event.task_progress.get(index)
                percent = _percent(state, task_progress)
                done += rows * percent / 100
                if index not in self._bars:
                    continue
                bar, text = self._bars[index]
                bar.value = int(percent)
                bar.bar_style = _BAR_STYLES.get(state, "info")
                task = f" · task {percent:.0f}%" if state == BatchState.SENT else ""
                outcome = f": {counts[index]}" if counts and index in counts else ""
                text.value = f"{rows:,} rows · {state}{task}{outcome}"
            total = sum(event.batch_rows.values()) or event.rows_total
            self._overall.value = int(100 * done / total) if total else 0
            self._overall_text.value = f"{int(done):,} of {total:,} rows processed"

    def show_batches(self, launch_id: str, batches: Sequence[BatchRecord]) -> None:
        """Draw a launch as its journal records it now (read once, by the caller), with each
        finished batch's imported and failed rows."""
        counts = {
            b.index: f"{b.n_imported:,} imported, {b.n_failed or 0:,} failed"
            for b in batches
            if b.state == BatchState.COMPLETED and b.n_imported is not None
        }
        self.show(snapshot(launch_id, batches), counts=counts)

    def lines(self) -> list[str]:
        """The text beside each bar, in order, then the line for all rows."""
        return [label.value for label in self._parts(widgets.Label)]

    def values(self) -> list[int]:
        """Each bar's value (0-100), in order, the bar for all rows last."""
        return [bar.value for bar in self._parts(widgets.IntProgress)]

    def _parts(self, kind: type[widgets.Widget]) -> list[Any]:
        return [
            child
            for box in self.children
            for child in getattr(box, "children", ())
            if isinstance(child, kind)
        ]
