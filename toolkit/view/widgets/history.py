"""The launch history: the journal's launches, newest first; pick one to see its results.

Example (needs a journal)::

    History(toolkit.view.notebook.connect())
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import ipywidgets as widgets
import narwhals.stable.v2 as nw

from toolkit.core.contract import BatchState
from toolkit.view.widgets._html import CSS_CLASSES, STYLE, cell, message, readable
from toolkit.view.widgets.results import ResultsView, rows_table

if TYPE_CHECKING:
    from toolkit.send.client import Client
    from toolkit.send.launch import Launch

__all__ = ["History"]

#: The columns of the history table (``client.history()``: batches counted by state).
_COLUMNS: Final = ("label", "created", "trigger_id", "rows", "batches", BatchState.COMPLETED, BatchState.FAILED,
                   BatchState.UNKNOWN, "imported_rows", "failed_rows")  # fmt: skip


class History(widgets.VBox):
    """The journal's launches, newest first; pick one to see its results and charts.

    Args:
        client: the :class:`~toolkit.send.client.Client` whose journal to read.
        limit: how many launches to list.

    Example (needs a journal)::

        History(toolkit.view.notebook.connect())
    """

    def __init__(self, client: Client, *, limit: int = 50) -> None:
        super().__init__()
        self.add_class(CSS_CLASSES["history"])
        self._client = client
        self.limit = limit
        self.table = widgets.HTML()
        self.picker = widgets.Dropdown(description="Launch", style=STYLE, layout=widgets.Layout(width="40em"))
        self.show_button = widgets.Button(description="Show results", icon="chart-bar")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.status = widgets.HTML()
        self.status.add_class(CSS_CLASSES["status"])
        self.results = ResultsView()
        self.show_button.on_click(lambda _b: self.show())
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.children = (self.table, widgets.HBox([self.picker, self.show_button, self.refresh_button]),
                         self.status, self.results)  # fmt: skip
        self.launch: Launch | None = None
        self.refresh()

    def refresh(self) -> None:
        """Read the journal again."""
        try:
            frame = nw.from_native(self._client.history(kind="polars"), eager_only=True).head(self.limit)
        except BaseException as exc:
            self.status.value = message("error", f"The journal could not be read: {readable(exc)}")
            return
        rows = frame.rows(named=True)
        self.table.value = rows_table(rows, _COLUMNS, empty="no launch yet")
        current = self.picker.value
        self.picker.options = [
            (
                f"{r['label'] or '(no label)'} · {cell(r['created'])} · trigger {r['trigger_id']}",
                r["launch_id"],
            )
            for r in rows
        ]
        ids = [r["launch_id"] for r in rows]
        # ipywidgets 8 clears the value when the options change: keep the pick, else the newest
        self.picker.value = current if current in ids else (ids[0] if ids else None)

    def show(self, launch_id: str | None = None) -> Launch | None:
        """Show the results and charts of a launch (the picked one by default)."""
        launch_id = launch_id or self.picker.value
        if not launch_id:
            self.status.value = message("info", "No launch to show yet.")
            return None
        try:
            launch = self._client.resume(launch_id)
            self.results.show(launch)
        except BaseException as exc:
            self.status.value = message("error", readable(exc))
            return None
        self.launch = launch
        self.status.value = ""
        return launch

    def __repr__(self) -> str:
        return f"History({len(self.picker.options)} launch(es))"
