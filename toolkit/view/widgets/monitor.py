"""The launch monitor: live progress of a running or resumed launch, then its results.

It follows the launch in one thread with ``launch.wait(on_progress=...)``: the platform's task
progress arrives as :class:`~toolkit.send.events.LaunchProgress` events that draw the bars;
the journal is read once when the monitor opens and once when the launch ends.

Example (needs a server)::

    LaunchMonitor(client.resume("spring"))
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING

import ipywidgets as widgets

from toolkit.send.events import LaunchProgress
from toolkit.view.widgets._bars import BatchBars, progress_message
from toolkit.view.widgets._html import CSS_CLASSES, esc, message, readable
from toolkit.view.widgets.results import ResultsView, outcome_message

if TYPE_CHECKING:
    from toolkit.send.launch import Launch

__all__ = ["LaunchMonitor"]


class LaunchMonitor(widgets.VBox):
    """Live progress of a launch (running or resumed), then its results and charts.

    Args:
        launch: the :class:`~toolkit.send.launch.Launch` to follow.
        follow: follow it in a background thread until every task is done (``False``: show the
            journal's state now; ``monitor.refresh()`` reads it again, ``monitor.follow()``
            starts following).
        interval: seconds of each ``launch.wait()`` in that thread; :meth:`stop` takes effect at
            the end of one (the events draw the bars as they come, whatever the interval).

    Example (needs a server)::

        LaunchMonitor(client.launch(plan))
    """

    def __init__(self, launch: Launch, *, follow: bool = True, interval: float = 2.0) -> None:
        super().__init__()
        self.add_class(CSS_CLASSES["monitor"])
        self.launch = launch
        self.interval = interval
        self.status = widgets.HTML()
        self.status.add_class(CSS_CLASSES["status"])
        self.progress = BatchBars()
        self.results = ResultsView()
        self.children = (widgets.HTML(f"<b>Launch {esc(launch.label or launch.launch_id)}</b>"), self.progress,
                         self.status, self.results)  # fmt: skip
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        done = self.refresh()
        if follow and not done:
            self.follow()

    def follow(self) -> None:
        """Follow the launch in a background thread until every task is done (or :meth:`stop`);
        nothing happens if it is followed already."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._follow, name="toolkit-monitor", daemon=True)
        self._thread.start()

    def refresh(self) -> bool:
        """Show the journal's state now; results and charts once the launch is done. Returns
        True when it is done."""
        batches = self.launch.batches
        self.progress.show_batches(self.launch.launch_id, batches)
        done = self.launch.done
        if done:
            self._show_results()
        else:
            states = Counter(b.state for b in batches)
            shown = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
            self.status.value = message("info", f"{len(batches)} batch(es): {shown}")
        return done

    def _on_progress(self, event: LaunchProgress) -> None:
        """A progress event of the launch: the bars, and the status line while it runs."""
        self.progress.show(event)
        line = progress_message(event)
        if line is not None:
            self.status.value = message(*line)

    def _follow(self) -> None:
        try:
            while not self._stop.is_set():
                self.launch.wait(timeout=self.interval, progress=False, on_progress=self._on_progress)
                if not self.launch.timed_out:
                    break
            self.refresh()
        except BaseException as exc:
            self.status.value = message("error", f"Following the launch stopped: {readable(exc)}")

    def _show_results(self) -> None:
        try:
            summary = self.results.show(self.launch)
        except BaseException as exc:
            self.status.value = message("error", readable(exc))
            return
        self.status.value = message(*outcome_message(self.launch, summary))

    def stop(self) -> None:
        """Stop following (the launch itself goes on)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the monitor stops following."""
        if self._thread is not None:
            self._thread.join(timeout)

    def __repr__(self) -> str:
        return f"LaunchMonitor({self.launch.label or self.launch.launch_id!r})"
