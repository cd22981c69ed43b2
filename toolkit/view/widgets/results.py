"""The one results view of a launch: counts by status, failures by reason, the first rows, and
the launch and failure charts. The form, the monitor and the history all show results
through it, so they read the same everywhere.

Example (needs a server)::

    view = ResultsView()
    summary = view.show(client.resume("spring"))
    outcome_message(launch, summary)   # ('success', 'Launch spring finished: 1,519 imported, ...')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import ipywidgets as widgets
import narwhals.stable.v2 as nw

from toolkit.core.contract import RowStatus
from toolkit.view import charts
from toolkit.view.widgets._html import CSS_CLASSES, MessageKind, cell, count_table, esc, png

if TYPE_CHECKING:
    from toolkit.send.launch import Launch

__all__ = ["ResultsView", "outcome_message", "rows_table"]

#: The row statuses counted in the summary table, in the order shown.
_STATUSES: Final = (
    RowStatus.IMPORTED,
    RowStatus.FAILED,
    RowStatus.REJECTED,
    RowStatus.UNKNOWN,
    RowStatus.PENDING,
)


def rows_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, empty: str) -> str:
    """An HTML table of ``rows`` (dicts), cells written by :func:`~._html.cell` (a batch number
    reads ``0``, not ``0.0``; a missing value is blank).

    Example:
        >>> rows_table([{"batch": 0, "status": "imported", "error": None}], ["batch", "status", "error"],
        ...            empty="none")  # doctest: +ELLIPSIS
        "<table class='toolkit-table'>...<tr><td>0</td><td>imported</td><td></td></tr></tbody></table>"
    """
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(cell(r.get(c)))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return (
        f"<table class='toolkit-table'><thead><tr>{head}</tr></thead><tbody>"
        f"{body or f'<tr><td colspan={len(columns)}>{esc(empty)}</td></tr>'}</tbody></table>"
    )


def outcome_message(launch: Launch, summary: Mapping[str, Any]) -> tuple[MessageKind, str]:
    """How a launch ended, in one status line: counts by status and each failure's reason;
    a success only when every sent row was imported.

    Example:
        >>> from types import SimpleNamespace
        >>> launch = SimpleNamespace(label="spring", launch_id="l1")
        >>> outcome_message(launch, {"imported": 90, "failed": 2, "unknown": 0, "pending": 0, "rejected": 8,
        ...                          "failures": {"invalid phone": 2}})
        ('warning', 'Launch spring finished: 90 imported, 2 failed, 0 unknown, 0 pending, 8 rejected before sending.\\n  2 failed: invalid phone')
    """
    failed = "".join(f"\n  {n:,} failed: {why}" for why, n in summary["failures"].items())
    unsettled = summary[RowStatus.FAILED] or summary[RowStatus.UNKNOWN] or summary[RowStatus.PENDING]
    return ("warning" if unsettled else "success"), (
        f"Launch {launch.label or launch.launch_id} finished: {summary[RowStatus.IMPORTED]:,} imported, "
        f"{summary[RowStatus.FAILED]:,} failed, {summary[RowStatus.UNKNOWN]:,} unknown, "
        f"{summary[RowStatus.PENDING]:,} pending, {summary[RowStatus.REJECTED]:,} rejected before sending.{failed}"
    )


class ResultsView(widgets.VBox):
    """A launch's results: a table of counts by status, one of failures by reason, the first
    ``rows`` rows of ``launch.results()``, and the launch and failure charts.

    Args:
        rows: how many rows of the results to show.
    """

    def __init__(self, *, rows: int = 10) -> None:
        super().__init__()
        self.add_class(CSS_CLASSES["results"])
        self.rows = rows

    def clear(self) -> None:
        """Show nothing (a new launch is starting)."""
        self.children = ()

    def show(self, launch: Launch, *, note: str | None = None) -> dict[str, Any]:
        """Show ``launch``'s results (``note``: a line above them); returns ``launch.summary()``."""
        summary = launch.summary()
        counts = {status: summary[status] for status in _STATUSES if summary[status]}
        results = nw.from_native(launch.results(), eager_only=True)
        first = rows_table(results.head(self.rows).rows(named=True), results.columns, empty="no rows")
        text = (
            (f"<i>{esc(note)}</i>" if note else "")
            + f"<b>Results of {esc(launch.label or launch.launch_id)}</b>"
            f"<div style='display:flex;flex-wrap:wrap;gap:2em'>{count_table('status', counts)}"
            f"{count_table('failed: why', summary['failures'])}</div>"
            f"<details><summary>the first {self.rows} rows of the results</summary>{first}</details>"
        )
        figures = (charts.plot_launch(launch), charts.plot_errors(results.to_native()))
        self.children = (
            widgets.HTML(text),
            *(
                widgets.Image(value=png(fig), format="png", layout=widgets.Layout(max_width="100%"))
                for fig in figures
            ),
        )
        return summary
