"""The one results view of a launch: counts by status, failures by reason, the first rows, and
the launch and failure charts. The form, the monitor and the history all show results
through it, so they read the same everywhere.

Example (needs a server)::

    view = ResultsView()
    summary = view.show(client.resume("spring"))
    outcome_message(launch, summary)   # ('success', 'Launch spring finished: 1,519 imported, ...')
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import ipywidgets as widgets
import narwhals.stable.v2 as nw
import polars as pl

from toolkit.core.contract import RowStatus
from toolkit.view import charts
from toolkit.view.widgets._html import CSS_CLASSES, MessageKind, cell, count_table, download_link, esc, png

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from toolkit.send.launch import Launch

__all__ = ["READABLE_COLUMNS", "ResultsView", "outcome_message", "rows_table", "tasks_table"]

#: The results' columns as the page names them.
READABLE_COLUMNS: Final = {
    "position": "row in the file",
    "match_key": "found by",
    "batch": "batch",
    "task_id": "task",
    "status": "result",
    "profile_id": "profile id",
    "error": "error code",
    "error_text": "why",
}

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

    def show(self, launch: Launch, *, note: str | None = None, segment: Any = None) -> dict[str, Any]:
        """Show ``launch``'s results (``note``: a line above them); returns ``launch.summary()``.

        The downloads join each result to the segment's own columns when the launch has its plan
        (a launch of this session), else to ``segment`` when it has one row per result row."""
        summary = launch.summary()
        counts: dict[str, int] = {status: summary[status] for status in _STATUSES if summary[status]}
        results = nw.from_native(launch.results(), eager_only=True)
        shown = results.rename({c: READABLE_COLUMNS.get(c, c) for c in results.columns})
        first = rows_table(shown.head(self.rows).rows(named=True), shown.columns, empty="no rows")
        text = (
            (f"<i>{esc(note)}</i>" if note else "")
            + f"<b>Results of {esc(launch.label or launch.launch_id)}</b>"
            f"<div style='display:flex;flex-wrap:wrap;gap:2em'>{count_table('result', counts)}"
            f"{count_table('failed: why', summary['failures'])}</div>"
            f"{tasks_table(launch.tasks())}"
            f"<div class='{CSS_CLASSES['downloads']}' style='display:flex;gap:2em;margin:6px 0'>"
            f"{self._downloads(launch, results, segment)}</div>"
            f"<details><summary>The first {self.rows} rows of the results</summary>{first}</details>"
        )
        figures = (charts.plot_launch(launch), charts.plot_errors(results.to_native()))
        self.children = (widgets.HTML(text), *(_chart(fig) for fig in figures))
        return summary

    @staticmethod
    def _downloads(launch: Launch, results: Any, segment: Any) -> str:
        """The two download links: every row's result, and the rows left out with why."""
        joined = results
        if getattr(launch, "plan", None) is not None:
            with contextlib.suppress(Exception):
                joined = nw.from_native(launch.results(join=True), eager_only=True)
        elif segment is not None:
            with contextlib.suppress(Exception):
                seg = nw.from_native(segment, eager_only=True)
                if len(seg) == len(results):
                    extra = seg.select([c for c in seg.columns if c not in results.columns])
                    joined = nw.concat([results, extra], how="horizontal")
        joined = joined.rename({c: READABLE_COLUMNS.get(c, c) for c in joined.columns})
        status = READABLE_COLUMNS["status"]
        rejected = joined.filter(nw.col(status) == RowStatus.REJECTED)
        name = re.sub(r"[^\w.-]+", "_", str(launch.label or launch.launch_id)).strip("_") or "launch"
        return download_link(f"{name}-results.csv", _csv(joined), "Download results (CSV)") + download_link(
            f"{name}-rejected.csv", _csv(rejected), f"Download rejected rows (CSV, {len(rejected):,} rows)"
        )


def _csv(frame: Any) -> bytes:
    """A frame as CSV bytes for Excel: UTF-8 with a byte-order mark (Excel reads Cyrillic right)."""
    data = nw.from_native(frame, eager_only=True).to_polars()
    flat = []  # a list (phones) or a record in a cell: its text, as CSV has no nesting
    for name, dtype in data.schema.items():
        if isinstance(dtype, (pl.List, pl.Array)):
            flat.append(pl.col(name).cast(pl.List(pl.String)).list.join("; "))
        elif isinstance(dtype, pl.Struct):
            flat.append(pl.col(name).struct.json_encode())
    buffer = io.BytesIO()
    data.with_columns(flat).write_csv(buffer)
    return b"\xef\xbb\xbf" + buffer.getvalue()


def tasks_table(tasks: Sequence[Mapping[str, Any]]) -> str:
    """The platform's own figures per task (one row per sent batch).

    Example:
        >>> tasks_table([{"batch": 0, "task_id": "t1", "rows": 3, "status": "completed", "progress": 100.0,
        ...               "captured": 3, "errors": 0}])  # doctest: +ELLIPSIS
        "<b>The platform's figures per task</b><table class='toolkit-table'>...<td>0</td><td>t1</td><td>3</td>..."
    """
    if not tasks:
        return ""
    columns = ("batch", "task_id", "rows", "status", "progress", "captured", "errors")
    head = ("batch", "task", "rows", "platform status", "progress %", "captured", "errors")
    table = rows_table(tasks, columns, empty="no task")
    for raw, words in zip(columns, head, strict=True):
        table = table.replace(f"<th>{raw}</th>", f"<th>{esc(words)}</th>", 1)
    return "<b>The platform's figures per task</b>" + table


#: Chart size on the page (CSS pixels) and the PNG's scale: drawn at twice the pixels, shown at
#: the size it was drawn for (sharp on a high-density screen, never upscaled).
CHART_WIDTH_PX: Final = 760
CHART_HEIGHT_PX: Final = 330
CHART_SCALE: Final = 2


def _chart(fig: Figure) -> widgets.Image:
    dpi = 100
    fig.set_size_inches(CHART_WIDTH_PX / dpi, CHART_HEIGHT_PX / dpi)
    if not fig.get_layout_engine():  # the charts choose their own layout engine; else fit the new size
        with contextlib.suppress(Exception):
            fig.tight_layout()
    image = widgets.Image(value=png(fig, dpi=dpi * CHART_SCALE), format="png",
                          layout=widgets.Layout(width=f"{CHART_WIDTH_PX}px", max_width="100%", height="auto"))  # fmt: skip
    return image
