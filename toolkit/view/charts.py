"""Charts of plans, launches and results: matplotlib figures with readable defaults.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot, so the
library never opens a window, never needs a display and never leaks figures into
pyplot's global state: show it in a notebook (it is the cell's value), save it with
``fig.savefig("launch.png")``, or embed it in a widget.

Colours are the Okabe-Ito palette, safe for the common colour-vision deficiencies, with one
colour per row status everywhere (:data:`STATUS_COLORS`). Failure reasons inside one
status are told apart by hatching, so "failed" stays one colour.

Example:
    >>> import polars as pl
    >>> results = pl.DataFrame({"status": ["imported", "failed", "failed", "rejected"],
    ...                         "error": [None, "400", "400", "invalid_email"],
    ...                         "error_text": [None, "invalid phone", "invalid phone", "bad e-mail"]})
    >>> fig = plot_errors(results)
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ['invalid_email', 'invalid phone']
    >>> fig.axes[0].get_title()
    'Why rows were not imported'
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import narwhals.stable.v2 as nw
import polars as pl
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from toolkit.core.contract import DONE_STATES, FAILED_STATES, RowStatus
from toolkit.core.plan import Plan

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from toolkit.send.launch import Launch

__all__ = [
    "OKABE_ITO",
    "STATUS_COLORS",
    "funnel_counts",
    "plot_errors",
    "plot_funnel",
    "plot_launch",
    "plot_progress",
    "save_all",
    "status_counts",
]

#: The Okabe-Ito palette, by name.
OKABE_ITO: Final = {
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
    "black": "#000000",
}

#: One colour per row status, used by every chart (and the widgets).
STATUS_COLORS: Final[dict[str, str]] = {
    RowStatus.IMPORTED: OKABE_ITO["bluish_green"],
    RowStatus.FAILED: OKABE_ITO["vermillion"],
    RowStatus.REJECTED: OKABE_ITO["reddish_purple"],
    RowStatus.UNKNOWN: OKABE_ITO["orange"],
    RowStatus.PENDING: OKABE_ITO["sky_blue"],
}
#: A task state after which its progress no longer moves (drawn at 100%).
_TASK_OVER: Final = DONE_STATES | FAILED_STATES
_STAGE_COLORS: Final = {
    "segment rows": "#7F7F7F",
    "valid": OKABE_ITO["blue"],
    "sent": OKABE_ITO["sky_blue"],
    "imported": STATUS_COLORS[RowStatus.IMPORTED],
}
_HATCHES: Final = ("", "///", "\\\\\\", "xxx", "...", "++", "oo", "--")
_MAX_REASONS: Final = 7  # more failure reasons than this are grouped as "other"
_MAX_LEGEND_TASKS: Final = 10


def _thousands(value: float, _pos: int | None = None) -> str:
    return f"{value:,.0f}"


def _figure(width: float = 8.0, height: float = 4.0) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height), layout="constrained", dpi=100)
    ax = fig.add_subplot()
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def _empty(ax: Axes, title: str, text: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def _polars(frame: Any) -> pl.DataFrame:
    """A results frame (pandas, polars, anything narwhals reads) as polars."""
    if isinstance(frame, pl.DataFrame):
        return frame
    if isinstance(frame, pl.LazyFrame):
        return frame.collect()
    return nw.from_native(frame, eager_only=True).to_polars()


def _reason(status: str, error: Any, error_text: Any) -> str:
    """The label of a failure: the platform's text, else its code; the rule for rejections."""
    if status == RowStatus.REJECTED:
        return str(error or error_text or RowStatus.REJECTED.value)
    return str(error_text or (f"error {error}" if error not in (None, "") else "unknown error"))


def _top(counter: Counter[str], limit: int = _MAX_REASONS) -> list[tuple[str, int]]:
    common = counter.most_common()
    if len(common) <= limit:
        return common
    head, rest = common[: limit - 1], common[limit - 1 :]
    return [*head, ("other", sum(n for _, n in rest))]


def status_counts(results: Any) -> dict[str, int]:
    """Rows per status, in the canonical order, zeros included.

    Example:
        >>> status_counts({"status": ["imported", "imported", "failed"]})
        {'imported': 2, 'failed': 1, 'rejected': 0, 'unknown': 0, 'pending': 0}
    """
    statuses = results["status"] if isinstance(results, dict) else _polars(results)["status"].to_list()
    counts = Counter(statuses)
    return {str(name): counts.get(name, 0) for name in STATUS_COLORS}


def _label_bars(ax: Axes, bars: Any, values: Sequence[float], *, min_share: float, total: float) -> None:
    """Write each bar's count in it when the bar is big enough to hold it."""
    labels = [f"{v:,.0f}" if total and v / total >= min_share else "" for v in values]
    ax.bar_label(bars, labels=labels, label_type="center", fontsize=8, color="white", fontweight="bold")


def plot_launch(launch: Launch, *, title: str | None = None) -> Figure:
    """Per task (batch): stacked bars of rows imported, failed (one hatch per reason), unknown
    and pending, with the counts written in the bars and the total on top.

    Example (needs a server)::

        launch = client.launch(plan).wait()
        plot_launch(launch).savefig("launch.png")
    """
    frame = _polars(launch.results()).filter(pl.col("batch").is_not_null())
    title = title or f"Launch {launch.label or launch.launch_id}: rows per task"
    return _plot_tasks(frame, title=title)


def _plot_tasks(frame: pl.DataFrame, *, title: str) -> Figure:
    batches = sorted({int(b) for b in frame["batch"].to_list()})
    fig, ax = _figure(max(8.0, min(14.0, 2.5 + 0.6 * len(batches))), 5.0)
    if not batches:
        _empty(ax, title, "nothing was sent")
        return fig
    rows = list(zip(*(frame[c].to_list() for c in ("batch", "status", "error", "error_text")), strict=True))
    reasons = [r for r, _ in _top(Counter(_reason(s, e, t) for _, s, e, t in rows if s == RowStatus.FAILED))]
    grouped = {r: r for r in reasons}
    series: list[tuple[str, str, str, list[int]]] = []  # (legend, colour, hatch, per-batch counts)
    position = {b: i for i, b in enumerate(batches)}

    def per_batch(match: Any) -> list[int]:
        counts = [0] * len(batches)
        for b, s, e, t in rows:
            if match(s, e, t):
                counts[position[int(b)]] += 1
        return counts

    imported = RowStatus.IMPORTED
    series.append((imported.value, STATUS_COLORS[imported], "", per_batch(lambda s, e, t: s == imported)))
    for i, reason in enumerate(reasons):

        def is_reason(s: str, e: Any, t: Any, reason: str = reason) -> bool:
            return s == RowStatus.FAILED and grouped.get(_reason(s, e, t), "other") == reason

        # a platform's error text can be long: a legend wider than the figure squeezes the plot away
        label = textwrap.shorten(f"{RowStatus.FAILED}: {reason}", width=60, placeholder="...")
        series.append(
            (label, STATUS_COLORS[RowStatus.FAILED], _HATCHES[i % len(_HATCHES)], per_batch(is_reason))
        )
    for status in (RowStatus.UNKNOWN, RowStatus.PENDING):
        series.append(
            (status.value, STATUS_COLORS[status], "", per_batch(lambda s, e, t, st=status: s == st))
        )

    x = list(range(len(batches)))
    width = min(0.8, 0.3 + 0.25 * len(batches))  # one or two batches: not one wall of colour
    bottom = [0] * len(batches)
    totals = [sum(c[i] for *_, c in series) for i in x]
    biggest = max(totals, default=0)
    for name, colour, hatch, counts in series:
        if not any(counts):
            continue
        bars = ax.bar(x, counts, width, bottom=bottom, color=colour, hatch=hatch, edgecolor="white",
                      linewidth=0.5, label=name)  # fmt: skip
        _label_bars(ax, bars, counts, min_share=0.06, total=biggest)
        if name != imported:  # small segments: the count beside the bar, in the segment's colour
            for xi, (b, c) in enumerate(zip(bottom, counts, strict=True)):
                if c and c / (biggest or 1) < 0.06:
                    ax.annotate(
                        f"{c:,}", (xi + width / 2 + 0.01, b + c / 2), va="center", fontsize=7, color=colour
                    )
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    for xi, total in zip(x, totals, strict=True):
        ax.annotate(f"{total:,}", (xi, total), ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                    textcoords="offset points")  # fmt: skip
    step = max(1, len(batches) // 25)  # at most ~25 tick labels
    ax.set_xticks(x[::step], [str(b) for b in batches][::step])
    ax.set_xlabel("batch (one task each)")
    ax.set_ylabel("rows")
    ax.yaxis.set_major_formatter(FuncFormatter(_thousands))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, biggest * 1.12 or 1)
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False, fontsize=8, ncol=2)
    return fig


def plot_errors(results: Any, *, title: str = "Why rows were not imported", rejected: bool = True) -> Figure:
    """Rows not imported, by reason: failures by the platform's error text, and (with
    ``rejected=True``) rows the plan rejected, by rule. Largest first.

    ``results`` is a results frame (``launch.results()``, pandas or polars) or a plan's
    ``rejected`` frame.
    """
    frame = _polars(results)
    if "status" not in frame.columns and "rule" in frame.columns:  # a plan's rejected frame
        frame = frame.select(pl.lit(RowStatus.REJECTED.value).alias("status"), pl.col("rule").alias("error"),
                             pl.col("reason").alias("error_text"))  # fmt: skip
    for name in ("error", "error_text"):
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(name))
    statuses = (RowStatus.FAILED, RowStatus.REJECTED) if rejected else (RowStatus.FAILED,)
    counter: Counter[tuple[str, str]] = Counter()
    for s, e, t in zip(*(frame[c].to_list() for c in ("status", "error", "error_text")), strict=True):
        if s in statuses:
            counter[(s, _reason(s, e, t))] += 1
    items = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    fig, ax = _figure(8.0, max(2.5, 1.2 + 0.4 * len(items)))
    if not items:
        _empty(ax, title, "every row was imported" if rejected else "no row failed")
        return fig
    items = items[::-1]  # barh draws bottom-up: largest on top
    labels = [_shorten(reason) for (_, reason), _ in items]
    values = [n for _, n in items]
    colours = [STATUS_COLORS[s] for (s, _), _ in items]
    bars = ax.barh(range(len(items)), values, color=colours)
    ax.bar_label(bars, labels=[f"{v:,}" for v in values], padding=3, fontsize=9)
    ax.set_yticks(range(len(items)), labels)
    ax.set_xlabel("rows")
    ax.xaxis.set_major_formatter(FuncFormatter(_thousands))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0, max(values) * 1.15)
    ax.set_title(title)
    shown = sorted({s for (s, _), _ in items}, key=list(STATUS_COLORS).index)
    ax.legend(
        handles=[Patch(color=STATUS_COLORS[s], label=str(s)) for s in shown], loc="lower right", frameon=False
    )
    return fig


def _shorten(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def funnel_counts(plan_or_launch: Plan | Launch) -> dict[str, int | None]:
    """The funnel's stages: segment rows, valid, sent, imported (``None``: not known yet).

    Example:
        >>> import polars as pl, toolkit
        >>> p = toolkit.plan(pl.DataFrame({"email": ["a@x.io", "bad"]}), toolkit.Mapping({"email": "email"}),
        ...                  toolkit.Trigger(5))
        >>> funnel_counts(p)
        {'segment rows': 2, 'valid': 1, 'sent': None, 'imported': None}
    """
    if isinstance(plan_or_launch, Plan):
        return {"segment rows": plan_or_launch.n_rows, "valid": plan_or_launch.n_valid, "sent": None,
                "imported": None}  # fmt: skip
    launch = plan_or_launch
    counts = status_counts(launch.results())
    rows = sum(counts.values())
    sent = sum(b.n_rows for b in launch.batches if b.was_sent)
    return {
        "segment rows": rows,
        "valid": rows - counts[RowStatus.REJECTED],
        "sent": sent,
        "imported": counts[RowStatus.IMPORTED],
    }


def plot_funnel(plan_or_launch: Plan | Launch, *, title: str | None = None) -> Figure:
    """Segment rows -> valid -> sent -> imported, as horizontal bars with counts and the
    share of the segment. A plan (not launched yet) shows the first two stages.

    Example:
        >>> import polars as pl, toolkit
        >>> p = toolkit.plan(pl.DataFrame({"email": ["a@x.io", "bad"]}), toolkit.Mapping({"email": "email"}),
        ...                  toolkit.Trigger(5))
        >>> [t.get_text() for t in plot_funnel(p).axes[0].texts]
        ['2 (100%)', '1 (50%)', 'not sent yet', 'not sent yet']
    """
    stages = funnel_counts(plan_or_launch)
    fig, ax = _figure(8.0, 3.2)
    names = list(stages)
    total = stages["segment rows"] or 0
    y = list(range(len(names)))[::-1]
    for yi, name in zip(y, names, strict=True):
        value = stages[name]
        if value is None:
            ax.barh(yi, total, color="none", edgecolor="#BBBBBB", linestyle="--")
            ax.text(total * 0.02, yi, "not sent yet", va="center", fontsize=9, color="#777777")
            continue
        ax.barh(yi, value, color=_STAGE_COLORS[name])
        share = f"{value / total:.0%}" if total else "-"
        ax.text(value + total * 0.01, yi, f"{value:,} ({share})", va="center", fontsize=9)
    ax.set_yticks(y, names)
    ax.set_xlabel("rows")
    ax.xaxis.set_major_formatter(FuncFormatter(_thousands))
    ax.set_xlim(0, (total or 1) * 1.22)
    if title is None:
        kind = "plan" if isinstance(plan_or_launch, Plan) else f"launch {plan_or_launch.label or ''}".strip()
        title = f"From segment to imported profiles ({kind})"
    ax.set_title(title)
    return fig


def plot_progress(launch: Launch, *, title: str | None = None) -> Figure:
    """Task progress over time, one line per task, and the launch's overall progress
    (weighted by rows), from the status reads of ``launch.wait()``.

    Example (needs a server)::

        plot_progress(client.launch(plan).wait())
    """
    title = title or f"Launch {launch.label or launch.launch_id}: task progress"
    sizes = {b.index: b.n_rows for b in launch.batches}
    return _progress_figure(launch.progress_history(), sizes, title)


def _progress_figure(history: list[dict[str, Any]], sizes: dict[int, int], title: str) -> Figure:
    """:func:`plot_progress` from the status reads (``time``, ``batch``, ``status``, ``progress``):
    a task in a terminal state (done or failed, :data:`DONE_STATES` / :data:`FAILED_STATES`)
    is drawn at 100%, whatever progress it last reported."""
    fig, ax = _figure(8.0, 4.0)
    if not history:
        _empty(ax, title, "no progress recorded\n(progress is recorded by launch.wait())")
        return fig
    start: datetime = min(h["time"] for h in history)
    by_batch: dict[int, list[tuple[float, float]]] = {}
    for h in sorted(history, key=lambda h: h["time"]):
        seconds = (h["time"] - start).total_seconds()
        progress = 100.0 if str(h["status"]).lower() in _TASK_OVER else float(h["progress"])
        by_batch.setdefault(int(h["batch"]), []).append((seconds, progress))
    # black is kept for the overall line; yellow is too pale for a thin line on white
    colours = [c for name, c in OKABE_ITO.items() if name not in ("black", "yellow")]
    for i, (batch, points) in enumerate(sorted(by_batch.items())):
        xs, ys = zip(*([(0.0, 0.0), *points]), strict=True)
        label = f"batch {batch}" if i < _MAX_LEGEND_TASKS else None
        ax.step(xs, ys, where="post", color=colours[i % len(colours)], linewidth=1.2, alpha=0.8, label=label)
    times, overall = _overall(by_batch, sizes)
    ax.step(times, overall, where="post", color=OKABE_ITO["black"], linewidth=2.2, label="all rows")
    ax.set_ylim(0, 105)
    ax.set_xlim(left=0)
    ax.set_xlabel("seconds since the first record (send or status read)")
    ax.set_ylabel("progress (%)")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, fontsize=8)
    return fig


def _overall(
    by_batch: dict[int, list[tuple[float, float]]], sizes: dict[int, int]
) -> tuple[list[float], list[float]]:
    """The row-weighted progress of all tasks at every time a status was read."""
    events = sorted((t, b, p) for b, points in by_batch.items() for t, p in points)
    weights = {b: sizes.get(b, 1) or 1 for b in by_batch}
    total = sum(weights.values())
    current = dict.fromkeys(by_batch, 0.0)
    times, values = [0.0], [0.0]
    for t, b, p in events:
        current[b] = p
        times.append(t)
        values.append(sum(current[k] * weights[k] for k in current) / total)
    return times, values


def save_all(launch: Launch, folder: Any, *, prefix: str = "", dpi: int = 110) -> list[Any]:
    """Save the four charts of a launch as PNG files in ``folder``; returns their paths.

    Example (needs a server)::

        save_all(launch, "out")   # out/launch.png, out/errors.png, out/funnel.png, out/progress.png
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    figures = {
        "launch": plot_launch(launch),
        "errors": plot_errors(launch.results()),
        "funnel": plot_funnel(launch),
        "progress": plot_progress(launch),
    }
    paths = []
    for name, fig in figures.items():
        path = out / f"{prefix}{name}.png"
        fig.savefig(path, dpi=dpi)
        paths.append(path)
    return paths
