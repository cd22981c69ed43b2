"""What every widget of the package shares: CSS classes, layouts, escaping, status messages,
small HTML tables and chart images.

Example:
    >>> message("warning", "retry 2 of 5 <soon>")
    "<div class='toolkit-msg toolkit-msg-warning' style='color:#8A5A00;white-space:pre-wrap'>⚠ retry 2 of 5 &lt;soon&gt;</div>"
    >>> count_table("status", {"imported": 1200})  # doctest: +ELLIPSIS
    "<table class='toolkit-table'>...<td>imported</td><td style='text-align:right'>1,200</td>..."
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

import ipywidgets as widgets

from toolkit.errors import ToolkitError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "CSS_CLASSES",
    "FLAG",
    "STYLE",
    "STYLE_SHEET",
    "WIDE",
    "MessageKind",
    "cell",
    "count_table",
    "download_link",
    "esc",
    "fit",
    "heading",
    "help_line",
    "message",
    "png",
    "readable",
    "wrapping_row",
]

#: The CSS classes browser tests use to find the widgets.
CSS_CLASSES: Final = {
    "form": "toolkit-launch-form",
    "segment": "toolkit-segment",
    "trigger_id": "toolkit-trigger-id",
    "matching": "toolkit-matching",
    "match_field": "toolkit-match-field",
    "field": "toolkit-field",
    "subscriptions": "toolkit-subscriptions",
    "content": "toolkit-content",
    "custom_data": "toolkit-custom-data",
    "attachments": "toolkit-attachments",
    "label": "toolkit-label",
    "dry_run": "toolkit-dry-run",
    "confirm": "toolkit-confirm",
    "button": "toolkit-launch-button",
    "status": "toolkit-status",
    "preview": "toolkit-preview",
    "records": "toolkit-records",
    "progress": "toolkit-progress",
    "results": "toolkit-results",
    "monitor": "toolkit-monitor",
    "history": "toolkit-history",
    "upload": "toolkit-upload",
    "read_options": "toolkit-read-options",
    "data_info": "toolkit-data-info",
    "trigger_picker": "toolkit-trigger-picker",
    "trigger_error": "toolkit-trigger-error",
    "banner": "toolkit-banner",
    "advanced": "toolkit-advanced",
    "actions": "toolkit-actions",
    "checks": "toolkit-checks",
    "downloads": "toolkit-downloads",
    "subscription": "toolkit-subscription",
}

#: The page's own styles (one ``<style>`` in an HTML widget; nothing loaded from elsewhere): the
#: action bar stays in view while the mapping scrolls, a subscription is a box of its own,
#: help lines are small and grey, the payload preview is monospace.
STYLE_SHEET: Final = """<style>
.toolkit-actions {position: sticky; top: 0; z-index: 20; background: var(--jp-layout-color0, #fff);
  border-bottom: 1px solid #ccc; padding: 4px 0;}
.toolkit-subscription {border: 1px solid #bbb; border-radius: 4px; padding: 4px 6px; margin: 4px 0;}
.toolkit-help {color: #555; font-size: 0.9em; margin: 0 0 4px 0;}
.toolkit-records pre, .toolkit-mono {font-family: var(--jp-code-font-family, monospace); font-size: 12px;}
.toolkit-banner-sandbox {background: #E6F4EA; border: 2px dashed #007A55; color: #004D35;
  padding: 6px 10px; border-radius: 4px;}
.toolkit-banner-platform {background: #FDECEA; border: 3px solid #B3261E; color: #7A1712;
  padding: 6px 10px; border-radius: 4px; font-weight: bold;}
.toolkit-table td, .toolkit-table th {padding: 1px 8px;}
</style>"""

#: A widget as wide as its content needs.
WIDE: Final = widgets.Layout(width="auto")
#: A checkbox as wide as its text, with room before the next one.
FLAG: Final = widgets.Layout(width="auto", margin="2px 2em 2px 0")
#: Descriptions as wide as their text (ipywidgets cuts them at a fixed width otherwise).
STYLE: Final = {"description_width": "initial"}

MessageKind = Literal["info", "success", "warning", "error"]
_COLOURS: Final[Mapping[MessageKind, str]] = {
    "info": "#0072B2",
    "success": "#007A55",
    "warning": "#8A5A00",
    "error": "#B3261E",
}
_ICONS: Final[Mapping[MessageKind, str]] = {"info": "ℹ", "success": "✔", "warning": "⚠", "error": "✖"}


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML.

    Example:
        >>> esc("<b> & 'x'")
        '&lt;b&gt; &amp; &#x27;x&#x27;'
    """
    return html.escape(str(value))


def message(kind: MessageKind, text: str) -> str:
    """One status line of the given kind (colour and icon), ``text`` escaped."""
    return (
        f"<div class='toolkit-msg toolkit-msg-{kind}' style='color:{_COLOURS[kind]};white-space:pre-wrap'>"
        f"{_ICONS[kind]} {esc(text)}</div>"
    )


def readable(exc: BaseException) -> str:
    """An exception as a sentence for the user: the toolkit's messages as they are, others
    with their type (the token never appears: the client scrubs its errors).

    Example:
        >>> readable(ValueError("bad"))
        'unexpected error (ValueError): bad'
    """
    if isinstance(exc, ToolkitError):
        return str(exc) or type(exc).__name__
    return f"unexpected error ({type(exc).__name__}): {exc}"


def png(fig: Figure, dpi: int = 80) -> bytes:
    """A figure as PNG bytes, for a :class:`ipywidgets.Image`."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def count_table(title: str, counts: Mapping[str, int], empty: str = "none") -> str:
    """A two-column table: ``title`` and its rows' counts (``empty`` when there is none)."""
    rows = "".join(
        f"<tr><td>{esc(k)}</td><td style='text-align:right'>{v:,}</td></tr>" for k, v in counts.items()
    )
    return (
        f"<table class='toolkit-table'><thead><tr><th style='text-align:left'>{esc(title)}</th>"
        f"<th style='text-align:right'>rows</th></tr></thead>"
        f"<tbody>{rows or f'<tr><td colspan=2>{esc(empty)}</td></tr>'}</tbody></table>"
    )


def cell(value: Any) -> str:
    """A table cell's text: nothing for None, times to the second, integers with separators.

    Example:
        >>> from datetime import datetime
        >>> cell(None), cell(12345), cell(datetime(2026, 3, 1, 9, 30, 5, 123)), cell(True)
        ('', '12,345', '2026-03-01 09:30:05', 'True')
    """
    if value is None:
        return ""
    if hasattr(value, "strftime"):
        return str(value.strftime("%Y-%m-%d %H:%M:%S"))
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def heading(text: str) -> widgets.HTML:
    """A bold line above a group of inputs."""
    return widgets.HTML(f"<b>{esc(text)}</b>")


def wrapping_row(children: Sequence[widgets.Widget]) -> widgets.HBox:
    """A row of widgets that wraps onto the next line where the notebook is too narrow for it
    (an ``HBox`` alone cuts its last widgets off: a 1280 px screen hid ``detect_geo``)."""
    return widgets.HBox(list(children), layout=widgets.Layout(flex_flow="row wrap", align_items="center"))


def fit(width: str) -> widgets.Layout:
    """A widget's layout: ``width`` at most, never wider than the row it is in."""
    return widgets.Layout(width=width, max_width="100%")


def help_line(text: str) -> widgets.HTML:
    """One line of help under an option, in plain words (small and grey)."""
    html_line = widgets.HTML(f"<div class='toolkit-help'>{esc(text)}</div>")
    html_line.add_class("toolkit-help-line")
    return html_line


def download_link(file_name: str, data: bytes, text: str, *, mime: str = "text/csv") -> str:
    """An HTML link that downloads ``data`` as ``file_name`` (a ``data:`` URI: works in a
    notebook, in Voila and in exported HTML, with no server route).

    Example:
        >>> download_link("r.csv", b"a,b\\n1,2\\n", "Download results (CSV)")
        '<a download="r.csv" href="data:text/csv;charset=utf-8;base64,YSxiCjEsMgo=" class="toolkit-download">Download results (CSV)</a>'
    """
    encoded = base64.b64encode(data).decode("ascii")
    return (
        f'<a download="{esc(file_name)}" href="data:{mime};charset=utf-8;base64,{encoded}" '
        f'class="toolkit-download">{esc(text)}</a>'
    )
