"""The four charts, on a real launch against the sandbox: right bars, labels and colours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from matplotlib.figure import Figure

import toolkit
from toolkit.core.contract import DONE_STATES, FAILED_STATES
from toolkit.send.client import Client
from toolkit.send.launch import Launch
from toolkit.view import charts

TRIGGER = 96


@pytest.fixture
def launch(sandbox: Any, tmp_path: Path) -> Launch:
    """A launch with imports, 409 failures (two platform profiles share an e-mail) and rejections."""
    client = Client(sandbox.url, sandbox.token, journal=tmp_path / "journal.sqlite")
    segment = toolkit.sample_customers(600, seed=5)
    sync = toolkit.Mapping({"crm_id": "CRM_ID", "email": "email"}, matching="custom", match_field="CRM_ID")
    client.launch(
        toolkit.plan(segment, sync, toolkit.Trigger(1, skip_triggers=True)), label="sync", progress=False
    ).wait(progress=False)
    mapping = toolkit.Mapping({"email": "email", "first_name": "_fname"})
    p = toolkit.plan(segment, mapping, toolkit.Trigger(TRIGGER), max_rows=250)
    return client.launch(p, label="charts", progress=False).wait(progress=False)


def _bar_heights(fig: Figure, label: str) -> list[float]:
    ax = fig.axes[0]
    for container in ax.containers:
        if container.get_label() == label:
            return [patch.get_height() for patch in container.patches]
    return []


def test_plot_launch_stacks_each_task(launch: Launch) -> None:
    results = launch.results()
    fig = charts.plot_launch(launch)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_title() == "Launch charts: rows per task"
    assert ax.get_ylabel() == "rows" and "batch" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2"]
    sent = results[results["batch"].notna()]
    imported = sent[sent["status"] == "imported"].groupby("batch").size().reindex([0, 1, 2], fill_value=0)
    assert _bar_heights(fig, "imported") == imported.tolist()
    failed = sent[sent["status"] == "failed"]
    assert len(failed) > 0
    reason = failed["error_text"].iloc[0]
    heights = _bar_heights(fig, f"failed: {reason}")
    assert sum(heights) == len(failed)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["imported", f"failed: {reason}"]
    # totals on top, with thousands separators
    totals = [f"{n:,}" for n in sent.groupby("batch").size().tolist()]
    assert [t.get_text() for t in ax.texts][-3:] == totals
    assert [t.get_text() for t in ax.texts if t.get_text()][:3] == [f"{n:,}" for n in imported.tolist()]
    texts = [t.get_text() for t in ax.texts]
    for n in failed.groupby("batch").size().tolist():  # small segments are labelled beside the bar
        assert f"{n:,}" in texts
    colours = {c.get_label(): c.patches[0].get_facecolor() for c in ax.containers}
    from matplotlib.colors import to_rgba

    assert colours["imported"] == to_rgba(charts.STATUS_COLORS["imported"])


def test_plot_errors_counts_failures_and_rejections(launch: Launch) -> None:
    results = launch.results(join=True)
    fig = charts.plot_errors(results)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    widths = [p.get_width() for p in ax.patches]
    counts = dict(zip(labels, widths, strict=True))
    summary = launch.summary()
    for text, n in summary["failures"].items():
        assert counts[text] == n
    for rule, n in summary["rejections"].items():
        assert counts[rule] == n
    assert widths == sorted(widths)  # largest on top (barh draws bottom-up)
    assert ax.get_xlabel() == "rows"
    # polars in, same figure
    import polars as pl

    fig2 = charts.plot_errors(pl.from_pandas(results[["status", "error", "error_text"]]))
    assert [t.get_text() for t in fig2.axes[0].get_yticklabels()] == labels
    # nothing failed: a readable empty chart
    empty = charts.plot_errors(results[results["status"] == "imported"])
    assert empty.axes[0].texts[0].get_text() == "every row was imported"


def test_plot_funnel_plan_and_launch(launch: Launch) -> None:
    counts = charts.funnel_counts(launch)
    summary = launch.summary()
    assert counts == {
        "segment rows": 600,
        "valid": 600 - summary["rejected"],
        "sent": 600 - summary["rejected"],
        "imported": summary["imported"],
    }
    fig = charts.plot_funnel(launch)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(counts)  # top to bottom
    assert ax.texts[0].get_text() == "600 (100%)"
    assert ax.texts[-1].get_text().startswith(f"{summary['imported']:,} (")
    plan_fig = charts.plot_funnel(launch.plan)
    assert [t.get_text() for t in plan_fig.axes[0].texts][-2:] == ["not sent yet", "not sent yet"]


def test_plot_progress_draws_each_task(launch: Launch) -> None:
    fig = charts.plot_progress(launch)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["batch 0", "batch 1", "batch 2", "all rows"]
    overall = ax.get_lines()[-1]
    assert overall.get_ydata()[-1] == pytest.approx(100.0)
    assert ax.get_ylabel() == "progress (%)"


@pytest.mark.parametrize("terminal", sorted(DONE_STATES | FAILED_STATES))
def test_a_task_in_any_terminal_state_is_drawn_finished(terminal: str) -> None:
    """A task that ended (completed, success, failed or error) counts as 100% in the progress
    lines, whatever progress it last reported; one still processing does not."""
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    history = [
        {"time": t0 + timedelta(seconds=1), "batch": 0, "status": "processing", "progress": 40},
        {"time": t0 + timedelta(seconds=2), "batch": 0, "status": terminal, "progress": 40},
        {"time": t0 + timedelta(seconds=2), "batch": 1, "status": "processing", "progress": 50},
    ]
    fig = charts._progress_figure(history, {0: 10, 1: 30}, "progress")
    first, second, overall = fig.axes[0].get_lines()
    assert list(first.get_ydata()) == [0.0, 40.0, 100.0]
    assert list(second.get_ydata()) == [0.0, 50.0]
    assert overall.get_ydata()[-1] == pytest.approx((100 * 10 + 50 * 30) / 40)


def test_save_all_writes_pngs(launch: Launch, tmp_path: Path) -> None:
    paths = charts.save_all(launch, tmp_path / "out")
    assert [p.name for p in paths] == ["launch.png", "errors.png", "funnel.png", "progress.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_charts_never_touch_pyplot() -> None:
    import sys

    before = "matplotlib.pyplot" in sys.modules
    p = toolkit.plan(toolkit.sample_customers(20), toolkit.Mapping({"email": "email"}), toolkit.Trigger(1))
    charts.plot_funnel(p)
    assert ("matplotlib.pyplot" in sys.modules) == before


def test_a_long_error_text_does_not_squeeze_the_launch_chart_away(sandbox: Any, tmp_path: Path) -> None:
    """The platform's error text names the failures in the legend: a long one is shortened."""
    import io
    import warnings

    refused = Client(sandbox.url, "wrong-token-" + "x" * 200, journal=tmp_path / "j.sqlite")
    plan = toolkit.plan(toolkit.sample_customers(30, kind="polars"), toolkit.Mapping({"email": "email"}),
                        toolkit.Trigger(94))  # fmt: skip
    with pytest.raises(toolkit.AuthError):
        refused.launch(plan, label="refused", progress=False)
    fig = charts.plot_launch(refused.resume("refused"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "constrained_layout not applied because axes sizes collapsed"
        fig.savefig(io.BytesIO(), format="png", dpi=80)
    (legend,) = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend.startswith("failed: ") and len(legend) <= 60
