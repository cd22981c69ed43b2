"""The widgets' callbacks, driven from Python against the sandbox: set values, click, check
what the sandbox received (``GET /_sandbox/sends``) and what the form says."""

from __future__ import annotations

import html
import json
import re
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import requests
from matplotlib.figure import Figure
from matplotlib.text import Text

import toolkit
from toolkit.core.contract import BatchState
from toolkit.errors import AuthError
from toolkit.send.client import Client
from toolkit.send.events import LaunchProgress
from toolkit.send.retry import RetryPolicy
from toolkit.view import charts
from toolkit.view.widgets import CSS_CLASSES, History, LaunchForm, LaunchMonitor, guess_fields
from toolkit.view.widgets._bars import MAX_BATCH_BARS, BatchBars


def _sends(sandbox: Any, trigger_id: int | None = None) -> list[dict[str, Any]]:
    params = {"trigger_id": trigger_id} if trigger_id is not None else None
    answer = requests.get(
        f"{sandbox.url}/_sandbox/sends",
        headers={"Authorization": f"Bearer {sandbox.token}"},
        params=params,
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()


def _text(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def _status_text(form: Any) -> str:
    return _text(form.status.value)


def _bars(widget: Any) -> tuple[list[str], list[int]]:
    """The progress block's lines ("100 rows · completed: ...", "300 of 300 rows processed") and
    bar values, in order."""
    return widget.progress.lines(), widget.progress.values()


def _record_statuses(widget: Any) -> list[str]:
    """Every status line the widget shows from now on, as text, in order (each change of the
    trait is seen: nothing is sampled)."""
    seen: list[str] = []
    widget.status.observe(lambda change: seen.append(_text(change["new"])), names="value")
    return seen


@pytest.fixture
def client(sandbox: Any, make_client: Callable[..., Client]) -> Client:
    return make_client(sandbox)


@pytest.fixture
def segment() -> pl.DataFrame:
    return toolkit.sample_customers(300, seed=3, kind="polars")


def test_guess_fields_maps_known_columns_and_keeps_the_rest() -> None:
    """Known column names get their system profile field; the others keep their own name."""
    columns = ["email", "phone", "first_name", "last_name", "city", "signup_date", "orders"]
    assert guess_fields(columns) == {
        "email": "email",
        "phone": "phones",
        "first_name": "_fname",
        "last_name": "_lname",
        "city": "_city",
        "signup_date": "_regdate",
        "orders": "orders",
    }


def test_form_prefills_mapping_and_previews_the_plan(
    sandbox: Any, segment: pl.DataFrame, client: Client
) -> None:
    """A new form maps the columns, previews the plan (rejections, first records) and carries its CSS classes."""
    form = LaunchForm(segment, client=client, trigger=96)
    check, text = form.field_widgets["phone"]
    assert check.value and text.value == "phones"
    assert form.plan is not None and form.errors == []
    host = sandbox.url.removeprefix("http://")
    assert (
        form.confirm.description
        == f"Send trigger 96 'Registration welcome' to {form.plan.n_valid:,} profiles on SANDBOX at {host}"  # the catalog's name
    )
    assert "left out because" in form.preview.value
    for rule in form.plan.summary()["rejected_by_rule"]:
        assert rule in form.preview.value
    records = form.plan.records(3)
    assert json.dumps(records, indent=2, sort_keys=True, ensure_ascii=False).replace('"', "&quot;") in (
        form.records.value
    )
    assert CSS_CLASSES["button"] in form.button._dom_classes
    assert CSS_CLASSES["confirm"] in form.confirm._dom_classes
    assert CSS_CLASSES["trigger_id"] in form.trigger_id._dom_classes
    assert CSS_CLASSES["matching"] in form.matching._dom_classes
    assert CSS_CLASSES["status"] in form.status._dom_classes
    assert CSS_CLASSES["results"] in form.results._dom_classes


def test_matching_offers_the_modes_documented_for_the_batch_method(segment: pl.DataFrame) -> None:
    """The dropdown lists the five documented modes; the plan's opt-in lists all eleven."""
    assert [value for _words, value in LaunchForm(segment, trigger=96).matching.options] == [
        "email", "email_profile", "phone", "profile_id", "custom"
    ]  # fmt: skip
    form = LaunchForm(segment, trigger=96, plan_options={"allow_undocumented_matching": True})
    assert len(form.matching.options) == 11
    form.matching.value = "email_phone"
    assert form.plan is not None and b'"matching":"email_phone"' in form.plan.batches[0].body


def test_validation_disables_the_button(sandbox: Any, segment: pl.DataFrame, client: Client) -> None:
    """Each invalid input disables Launch and says why; an unconfirmed click sends nothing and says so."""
    form = LaunchForm(segment, client=client, trigger=96)
    form.confirm.value = True
    assert not form.button.disabled

    form.content.value = '{"page": '  # invalid JSON as you type
    assert form.button.disabled and form.plan is None
    assert "Message content is not valid JSON" in form.content_error.value
    form.content.value = "[1, 2]"
    assert "must be a JSON object" in form.content_error.value
    form.content.value = '{"page": "spring"}'
    assert form.content_error.value == "" and form.plan is not None
    assert form.plan.trigger.content == {"page": "spring"}
    assert form.button.disabled  # the plan changed: the confirmation is gone
    form.confirm.value = True
    assert not form.button.disabled

    for typed in ("0", "96.7", "12x", "-3"):  # refused and said, never fixed into another id
        form.trigger_id.value = typed
        assert form.button.disabled and form.plan is None, typed
        assert form.errors[0] == f"The trigger id must be a whole number such as 96; {typed!r} is not."
        assert form.errors[0].replace("'", "&#x27;") in form.trigger_error.value
    form.trigger_id.value = "96"
    assert form.trigger_error.value == "" and form.plan is not None

    form.field_widgets["first_name"][1].value = "email"  # two columns to one field
    assert form.plan is None and any("both map to field 'email'" in e for e in form.errors)
    form.field_widgets["first_name"][1].value = "_fname"

    form.matching.value = "custom"  # needs a match field: the first mapped field is proposed
    assert form.match_field.layout.display != "none" and form.match_field.value in form.match_field.options
    form.match_field.value = "crm_id"
    assert form.plan is not None and form.plan.mapping.match_field == "crm_id"
    form.matching.value = "email"
    assert form.match_field.layout.display == "none"

    # a click that reaches an unconfirmed form (ipywidgets' click() ignores `disabled`, as a stale
    # page might) sends nothing and says why
    form.confirm.value = False
    assert form.button.disabled
    form.button.click()
    assert form.join(timeout=10)
    assert form.launch is None and not form.running
    assert _status_text(form) == "⚠ Tick the confirmation box first."
    assert _sends(sandbox, 96) == []


def test_double_click_launches_once_and_rerun_shows_already_launched(
    sandbox: Any, segment: pl.DataFrame, client: Client
) -> None:
    """A double click sends each profile once; the same plan again is refused with a message, and
    the bars then show the launch that happened."""
    form = LaunchForm(segment, client=client, trigger=96, label="widget-double-click")
    valid = form.plan.n_valid
    form.confirm.value = True
    form.button.click()
    form.button.click()  # while the first launch runs: ignored
    assert form.join(timeout=60)
    assert form.launch is not None
    sends = _sends(sandbox, 96)
    assert len(sends) == valid
    assert len({s["profile_id"] for s in sends}) == valid  # exactly one send per profile
    text = _status_text(form)
    assert f"{valid:,} imported" in text, text
    assert form.results.children, "results table and charts appear when the launch ends"
    assert any(getattr(c, "format", None) == "png" for c in form.results.children)
    assert form.button.disabled and not form.confirm.value  # a new launch needs a new confirmation

    # the same plan again: AlreadyLaunched as a message, nothing sent
    form.confirm.value = True
    form.button.click()
    assert form.join(timeout=60)
    assert len(_sends(sandbox, 96)) == valid
    text = _status_text(form)
    assert text.startswith(
        f"⚠ Already launched: exactly this was sent to trigger 96 as the launch {form.launch.label!r}"
    ), text
    assert form.launch.label.startswith("widget-double-click 20"), form.launch.label
    assert "Nothing was sent now" in text and "client." not in text
    assert "Traceback" not in form.status.value
    # the bars show the launch that happened, not the one refused ("planned")
    texts, values = _bars(form)
    assert len(values) == len(texts) == len(form.plan.batches) + 1, (texts, values)  # each batch, then all
    assert set(values) == {100}, (texts, values)
    assert texts[-1] == f"{valid:,} of {valid:,} rows processed", texts
    assert all("completed" in t for t in texts[:-1]) and not any("planned" in t for t in texts), texts
    assert sandbox.token not in form.status.value + form.preview.value + form.records.value


def test_concurrent_clicks_in_foreground_mode_send_once(
    sandbox: Any, segment: pl.DataFrame, client: Client
) -> None:
    """In foreground mode a click while a launch holds the form does nothing; the next one sends once."""
    form = LaunchForm(segment.head(40), client=client, trigger=97, background=False)
    form.confirm.value = True
    form._lock.acquire()  # as if a launch were running in another thread
    try:
        form.button.click()
    finally:
        form._lock.release()
    assert form.launch is None and _sends(sandbox, 97) == []
    form.button.click()
    assert form.launch is not None
    sends = _sends(sandbox, 97)
    assert len(sends) == len({s["profile_id"] for s in sends}) == form.plan.n_valid
    assert form.launch.summary()["imported"] == form.plan.n_valid


def test_dry_run_sends_nothing(sandbox: Any, segment: pl.DataFrame, client: Client) -> None:
    """A dry run needs no confirmation, says what would go where, and sends nothing."""
    form = LaunchForm(segment, client=client, trigger=98)
    assert not form.dry_run.disabled and form.button.disabled  # a dry run needs no confirmation
    form.dry_run.click()
    assert form.button.description == "Launch"  # two controls, two names: the dry run never renames Launch
    assert _sends(sandbox, 98) == []
    assert form.dry_run_plan is form.plan
    host = sandbox.url.removeprefix("http://")
    assert (
        f"Dry run: trigger 98 would go to {form.plan.n_valid:,} profiles on SANDBOX at {host}"
        in _status_text(form)
    )
    assert "Nothing was sent" in _status_text(form)


def test_errors_are_messages_not_tracebacks(
    monkeypatch: pytest.MonkeyPatch, sandbox: Any, segment: pl.DataFrame, tmp_path: Path
) -> None:
    """No platform configured, or a refused token: a sentence in the status, never a traceback or the token."""
    # no client and no environment: a readable message about the settings
    monkeypatch.delenv("TOOLKIT_API_URL", raising=False)
    monkeypatch.delenv("TOOLKIT_API_TOKEN", raising=False)
    form = LaunchForm(segment, trigger=96)
    form.confirm.value = True
    form.button.click()
    assert form.join(timeout=10)
    text = _status_text(form)
    assert "this page has no platform to send to" in text and "TOOLKIT_API_URL" not in text, text
    assert "Traceback" not in form.status.value
    assert not form.running and form.button.disabled  # ready for another try once confirmed

    # a wrong token: the platform's refusal, as a sentence, without the token
    bad = Client(sandbox.url, "wrong-token-123", journal=tmp_path / "j.sqlite")
    form = LaunchForm(segment, client=bad, trigger=96)
    form.confirm.value = True
    form.button.click()
    assert form.join(timeout=30)
    text = _status_text(form)
    assert text.startswith("✖ The launch stopped: platform error 403"), text
    assert "wrong-token-123" not in form.status.value


def test_subscriptions_flags_attachments_and_named_segments(segment: pl.DataFrame, client: Client) -> None:
    """Subscriptions, flags, custom data and attachments reach the plan; another segment remaps its columns."""
    other = segment.head(10).rename({"email": "mail"})
    form = LaunchForm({"main": segment, "small": other}, client=client, trigger=96)
    form.add_subscription.click()
    row = form.subscriptions_box.children[0]
    channel, column, resource = row._toolkit_parts
    assert (channel.value, column.value) == ("email", "email")
    resource.value = 21
    form.skip_invalid_subscriptions.value = True
    form.custom_data.value = '{"campaign": "spring"}'
    form.attachments.value = (
        {"name": "terms.txt", "type": "text/plain", "size": 5, "content": memoryview(b"terms"),
         "last_modified": datetime(2026, 1, 1, tzinfo=UTC)},
    )  # fmt: skip
    p = form.plan
    assert p is not None, form.errors
    assert [(s.channel, s.column, s.resource_id) for s in p.mapping.subscriptions] == [("email", "email", 21)]
    assert p.trigger.skip_invalid_subscriptions and p.trigger.custom_data == {"campaign": "spring"}
    assert [a.name for a in p.trigger.attach] == ["terms.txt"]
    assert "subscriptions" in form.records.value

    form.segment.value = "small"  # other columns: the mapping is guessed again
    assert "mail" in form.field_widgets and form.field_widgets["mail"][1].value == "email"
    assert form.plan is not None and form.plan.n_rows == 10


def test_monitor_and_history_show_results(sandbox: Any, segment: pl.DataFrame, client: Client) -> None:
    """The monitor follows a running launch through its progress events to the results; the history
    lists it and shows the same results."""
    p = toolkit.plan(segment, toolkit.Mapping({"email": "email"}), toolkit.Trigger(99), max_rows=100)
    launch = client.launch(p, label="monitored", progress=False)
    # nobody polled yet: the journal has every batch "sent", so the monitor must follow the tasks
    assert {b.state for b in launch.batches} == {BatchState.SENT}
    monitor = LaunchMonitor(launch, follow=False, interval=0.2)  # the journal's state, read once
    assert _text(monitor.status.value) == f"ℹ {len(p.batches)} batch(es): {len(p.batches)} sent"
    statuses = _record_statuses(monitor)
    monitor.follow()
    monitor.join(timeout=60)
    assert launch.done
    # the status line was written by wait()'s events while following, then by the results
    assert any(s.startswith("ℹ Sent. The platform is processing") for s in statuses), statuses
    valid = p.n_valid
    assert _text(monitor.status.value).startswith(
        f"✔ Launch monitored finished: {valid:,} imported, 0 failed, 0 unknown, 0 pending"
    ), monitor.status.value
    texts, values = _bars(monitor)
    assert len(values) == len(p.batches) + 1 and set(values) == {100}, (texts, values)
    assert texts[-1] == f"{valid:,} of {valid:,} rows processed"
    assert "Results of monitored" in monitor.results.children[0].value
    assert repr(monitor) == "LaunchMonitor('monitored')"

    history = History(client)
    assert "monitored" in history.table.value
    assert history.picker.value == launch.launch_id
    history.show_button.click()
    assert history.launch is not None and history.launch.launch_id == launch.launch_id
    assert "Results of monitored" in history.results.children[0].value
    assert sandbox.token not in history.table.value


def _chart_texts(fig: Figure) -> str:
    return " ".join(t.get_text() for t in fig.findobj(Text))


def test_refused_launch_keeps_bars_and_restores_progress_history(
    sandbox: Any, segment: pl.DataFrame, client: Client
) -> None:
    """A refused repeat keeps the bars of the launch that happened; its progress history comes back
    from the journal for the chart."""
    form = LaunchForm(segment, client=client, trigger=95, label="widget-resumed",
                      plan_options={"max_rows": 100})  # fmt: skip
    n_batches, valid = len(form.plan.batches), form.plan.n_valid
    assert n_batches == 3
    form.confirm.value = True
    form.button.click()
    assert form.join(timeout=60)
    first = form.launch
    assert first is not None and first.done and first.progress_history()  # read by wait()
    done_texts, done_values = _bars(form)
    assert set(done_values) == {100}

    # the same plan again: refused, the earlier launch is resumed
    form.confirm.value = True
    form.button.click()
    assert form.join(timeout=60)
    assert _status_text(form).startswith("⚠ Already launched"), _status_text(form)
    assert len(_sends(sandbox, 95)) == valid
    assert _bars(form) == (done_texts, done_values), "the bars of the launch that happened"
    resumed = form.launch
    assert resumed is not first and resumed.launch_id == first.launch_id

    # its progress history, rebuilt from the journal: each task at 0 % when sent, 100 % when done
    history = resumed.progress_history()
    assert [h["time"] for h in history] == sorted(h["time"] for h in history)
    assert {h["source"] for h in history} == {"journal"}
    batches = {b.index: b for b in resumed.batches}
    assert len(batches) == n_batches
    for index, b in batches.items():
        points = [(h["status"], h["progress"], h["task_id"]) for h in history if h["batch"] == index]
        assert points == [("sent", 0.0, b.task_id), (b.status, 100.0, b.task_id)], points
        sent, finished = (h["time"] for h in history if h["batch"] == index)
        assert sent <= finished and sent.tzinfo is not None
    fig = charts.plot_progress(resumed)
    assert "no progress recorded" not in _chart_texts(fig)
    assert len(fig.axes[0].get_lines()) == n_batches + 1  # a line per task and one for all rows

    # the History widget resumes it the same way; a launch with status reads of its own keeps them
    history_widget = History(client)
    shown = history_widget.show(first.launch_id)
    assert shown is not None and len(shown.progress_history()) == 2 * n_batches
    own = first.progress_history()
    LaunchMonitor(first, follow=False)
    assert first.progress_history() == own


def test_resumed_launch_without_tasks_keeps_the_empty_note(
    sandbox: Any, segment: pl.DataFrame, tmp_path: Path
) -> None:
    """A launch refused before any task existed shows "no progress recorded", not an empty chart."""
    bad = Client(sandbox.url, "wrong-token-456", journal=tmp_path / "refused.sqlite")
    p = toolkit.plan(segment, toolkit.Mapping({"email": "email"}), toolkit.Trigger(94))
    with pytest.raises(AuthError):
        bad.launch(p, label="refused", progress=False)
    history = History(bad)
    launch = history.show()
    assert launch is not None and launch.progress_history() == []  # no task: nothing to rebuild
    assert "no progress recorded" in _chart_texts(charts.plot_progress(launch))


def test_form_rows_wrap_instead_of_cutting_widgets_off(segment: pl.DataFrame, client: Client) -> None:
    """Rows of widgets wrap in a narrow notebook instead of cutting their last widgets off."""
    form = LaunchForm(segment, client=client, trigger=96)
    form.add_subscription.click()
    subscription = form.subscriptions_box.children[0]
    assert CSS_CLASSES["subscription"] in subscription._dom_classes  # one box per subscription
    rows = [subscription.children[0]]
    rows += [r for r in form.children if form.trigger_id in getattr(r, "children", ())]
    assert len(rows) == 2
    for row in rows:
        assert row.layout.flex_flow == "row wrap"
        for child in row.children:  # no fixed pixel width; never wider than the row
            assert not str(child.layout.width or "").endswith("px")
            assert child.layout.width in (None, "auto") or child.layout.max_width == "100%"
    assert not form.detect_geo.indent and form.detect_geo.layout.width == "auto"


def test_progress_events_draw_the_bars_and_the_status_line(segment: pl.DataFrame, client: Client) -> None:
    """The launch's progress events alone draw each batch's bar, the bar for all rows, and the
    status line, including the retry being waited for."""
    form = LaunchForm(segment, client=client, trigger=96)
    statuses = _record_statuses(form)
    rows = {0: 100, 1: 100, 2: 93}

    def event(phase: Any, states: dict[int, BatchState], **more: Any) -> LaunchProgress:
        return LaunchProgress("l-1", phase, rows_total=293, batches=states, batch_rows=rows, **more)

    form._on_progress(event("sending", {0: BatchState.SENT, 1: BatchState.SENDING, 2: BatchState.PLANNED}))
    assert _bars(form) == (
        ["100 rows · sent · task 0%", "100 rows · sending", "93 rows · planned", "0 of 293 rows processed"],
        [0, 0, 0, 0],
    )
    assert statuses[-1] == "ℹ Sending 293 profiles in 3 batch(es)... 200 on their way so far."

    busy = "the platform is busy (HTTP 503): retry 2 of 5 in 1 s"
    form._on_progress(event("retrying", {0: BatchState.SENT, 1: BatchState.SENDING, 2: BatchState.PLANNED},
                            message=busy))  # fmt: skip
    assert statuses[-1] == "⚠ The platform is busy (HTTP 503): retry 2 of 5 in 1 s"
    assert "toolkit-msg-warning" in form.status.value

    states = {0: BatchState.COMPLETED, 1: BatchState.SENT, 2: BatchState.UNKNOWN}
    form._on_progress(event("processing", states, task_progress={0: 100.0, 1: 40.0}))
    assert _bars(form) == (
        [
            "100 rows · completed",
            "100 rows · sent · task 40%",
            "93 rows · unknown",
            "140 of 293 rows processed",
        ],
        [100, 40, 0, 47],
    )
    styles = [row.children[0].bar_style for row in form.progress.children[:3]]
    assert styles == ["success", "info", "warning"]
    assert statuses[-1] == "ℹ Sent. The platform is processing: 1 of 3 task(s) still running."

    form._on_progress(event("done", states, task_progress={0: 100.0, 1: 40.0}, message="batches: 1 unknown"))
    assert (
        statuses[-1] == "ℹ Sent. The platform is processing: 1 of 3 task(s) still running."
    )  # results say the end


def test_a_long_launch_shows_the_first_bars_and_the_rest_in_all_rows() -> None:
    """Past the first batches, each batch's progress still counts in the bar for all rows."""
    n = MAX_BATCH_BARS + 5
    bars = BatchBars()
    bars.show(LaunchProgress("l-2", "processing", rows_total=10 * n, batch_rows=dict.fromkeys(range(n), 10),
                             batches={i: BatchState.COMPLETED if i >= MAX_BATCH_BARS else BatchState.SENT
                                      for i in range(n)}))  # fmt: skip
    texts, values = bars.lines(), bars.values()
    assert len(values) == MAX_BATCH_BARS + 1
    assert texts[-1] == f"50 of {10 * n} rows processed", texts  # the 5 batches without a bar of their own
    assert any("... and 5 more batches" in getattr(c, "value", "") for c in bars.children)


def test_form_says_which_retry_it_waits_for_and_sends_once(
    make_sandbox: Callable[..., Any], make_client: Callable[..., Client], segment: pl.DataFrame
) -> None:
    """While the platform answers 502, the status says which retry it waits for; the launch then
    goes out once and finishes."""
    # seed 51 lets the batch's send through, then answers the first two status reads with 502 (a
    # 502 to the send itself would leave the batch unknown: see toolkit.send.retry)
    server = make_sandbox(fail_rate=0.5, seed=51)
    form = LaunchForm(segment.head(60), client=make_client(server), trigger=93, label="widget-retries",
                      launch_options={"preflight": False})  # the seeded faults are for the launch  # fmt: skip
    statuses = _record_statuses(form)
    form.confirm.value = True
    form.button.click()
    assert form.join(timeout=120)
    retries = [s for s in statuses if s.startswith("⚠ The platform is busy (HTTP 502)")]
    assert [re.search(r"retry \d of 5", s).group() for s in retries[:2]] == [
        "retry 1 of 5",
        "retry 2 of 5",
    ], statuses
    valid = form.plan.n_valid
    assert form.launch.label.startswith("widget-retries 20")  # the name given, and the date
    assert _status_text(form).startswith(
        f"✔ Launch {form.launch.label} finished: {valid:,} imported, 0 failed"
    )
    sends = _sends(server, 93)
    assert len(sends) == len({s["profile_id"] for s in sends}) == valid
    assert server.token not in "".join(statuses)


def _cp1251_segment(n: int = 30) -> bytes:
    """A segment as Excel on Russian Windows saves it: cp1251, ';' between fields."""
    lines = ["Email;Имя;Город;Телефон"]
    lines += [f"client{i}@mail.example;Анна {i};Москва;+7 900 000-{i:02d}-00" for i in range(n)]
    return ("\r\n".join(lines) + "\r\n").encode("cp1251")


def test_own_file_is_read_previewed_mapped_and_sent_once(sandbox: Any, client: Client) -> None:
    """A cp1251 ';' file chosen in the form is read right (letters, columns, row count, first rows),
    mapped by its column names, and each of its profiles is sent once."""
    form = LaunchForm(toolkit.sample_customers(50), client=client, trigger=91)
    assert "practice data (sandbox only)" in form.segment.value
    form.source.load_file("clients.csv", _cp1251_segment(30))
    assert form.segment.value == "clients.csv"
    info = _text(form.source.info.value)
    assert "30 rows, 4 columns" in info and "cp1251" in info and "Анна 0" in info, info
    assert (
        form.source.read_options.layout.display == "flex"
    )  # the encoding was a guess: say it can be changed
    assert form.field_widgets["Email"][1].value == "email"
    form.field_widgets["Имя"][1].value = "_fname"
    form.field_widgets["Город"][0].value = False
    form.field_widgets["Телефон"][0].value = False
    assert form.plan is not None and form.plan.n_valid == 30, form.errors
    assert form.plan.records(1)[0]["_fname"] == "Анна 0"
    form.confirm.value = True
    form.button.click()
    assert form.join(timeout=60)
    sends = _sends(sandbox, 91)
    assert len(sends) == len({s["profile_id"] for s in sends}) == 30
    downloads = form.results.children[0].value
    assert "Download results (CSV)" in downloads and "Download rejected rows (CSV" in downloads


def test_unreadable_file_shows_the_reading_choices_and_blocks_launch(client: Client) -> None:
    """A file that cannot be read says so, offers the encoding/separator choices, and keeps Launch off."""
    form = LaunchForm(toolkit.sample_customers(20), client=client, trigger=91)
    form.source.load_file("empty.csv", b"")
    assert form.source.read_options.layout.display == "flex"
    assert "empty.csv" in _text(form.source.info.value)
    assert form.plan is None and form.button.disabled
    assert form.errors == ["The chosen file could not be read: see the message under 1. Your data."]


def test_switching_segments_keeps_edits_where_the_columns_exist(client: Client) -> None:
    """A ticked column, a renamed field and an added subscription survive a switch to a segment
    without them and back; a subscription whose column is missing is not sent meanwhile."""
    base = toolkit.sample_customers(40, seed=5, kind="polars")
    other = base.select("email", "first_name").head(10)
    form = LaunchForm({"all": base, "few": other}, client=client, trigger=96)
    all_name, few_name = form.segment.options
    form.field_widgets["first_name"][1].value = "_fname"
    form.field_widgets["city"][0].value = False
    form.add_subscription.click()
    channel, column, resource = form.subscriptions_box.children[0]._toolkit_parts
    channel.value, column.value, resource.value = "sms", "phone", 7

    form.segment.value = few_name  # no phone column here: the sms subscription waits
    assert form.plan is not None and form.plan.n_rows == 10
    assert form.plan.mapping.subscriptions == ()
    assert form.field_widgets["first_name"][1].value == "_fname"

    form.segment.value = all_name  # back: every edit is still there
    assert not form.field_widgets["city"][0].value
    subs = form.plan.mapping.subscriptions
    assert [(s.channel, s.column, s.resource_id) for s in subs] == [("sms", "phone", 7)]


class _CatalogClient(Client):
    """The sandbox client with a platform catalog of two triggers and one database (the sandbox on
    this branch has no catalog calls yet); sending still goes to the sandbox over HTTP."""

    def triggers(self) -> list[Any]:
        from toolkit.send.catalog import TriggerInfo

        return [TriggerInfo(96, "Welcome", True, "api_call", 20, 21, "email"),
                TriggerInfo(90, "Old promo", False, "api_call", 20, 21, "sms")]  # fmt: skip

    def trigger(self, trigger_id: int) -> Any:
        return next(t for t in self.triggers() if t.id == trigger_id)

    def database_fields(self, database_id: int) -> list[Any]:
        from toolkit.send.catalog import FieldInfo

        return [FieldInfo(n) for n in ("email", "phones", "_fname", "_lname", "loyalty_tier")]

    def preflight(self, plan: Any, trigger: Any = None) -> list[Any]:
        from toolkit.send.preflight import Problem

        info = self.trigger(plan.trigger.trigger_id)
        fields = {f.name for f in self.database_fields(20)}
        problems = (
            [Problem("trigger_inactive", f"trigger {info.id} {info.name!r} is not active")]
            if not info.is_active
            else []
        )
        return problems + [Problem("unknown_field", f"profile field {f!r} is not in the database")
                           for f in plan.mapping.fields.values() if f not in fields]  # fmt: skip


def test_trigger_picker_lists_the_catalog_and_preflight_blocks_launch(sandbox: Any, tmp_path: Path) -> None:
    """The picker shows name, id, channel and state; fields are proposed from the platform's list
    (others unticked); a preflight problem is shown in words and keeps Launch off."""
    client = _CatalogClient(sandbox.url, sandbox.token, journal=tmp_path / "j.sqlite")
    frame = pl.DataFrame({"email": ["a@mail.example"], "Loyalty Tier": ["gold"], "orders": [3]})
    form = LaunchForm(frame, client=client)
    labels = [words for words, _id in form.trigger_picker.options]
    assert "Welcome · id 96 · email · active" in labels and "Old promo · id 90 · sms · NOT active" in labels
    form.trigger_picker.value = 96
    assert form.trigger_id.value == "96"
    assert form.confirm.description.startswith("Send trigger 96 'Welcome' to 1 profiles on SANDBOX at")
    form.field_widgets["Loyalty Tier"][1].value = "loyalty_tier"
    form.field_widgets["Loyalty Tier"][0].value = True
    assert form.field_widgets["orders"][0].value is False  # not a field of the platform: not proposed
    form.confirm.value = True
    assert not form.button.disabled and form.problems == []
    form.trigger_id.value = "90"  # typing an id picks it in the list too
    assert form.trigger_picker.value == 90
    assert "The platform says: trigger 90 'Old promo' is not active" in _text(form.checks.value)
    form.confirm.value = True
    assert form.button.disabled


def test_outage_says_nothing_was_sent_and_a_new_click_is_safe(sandbox: Any, tmp_path: Path) -> None:
    """A platform that does not answer: the status says nothing was sent and launching again is
    safe; once it answers, the same click sends each profile once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    journal = tmp_path / "j.sqlite"
    down = Client(f"http://127.0.0.1:{closed_port}", sandbox.token, journal=journal,
                  retry=RetryPolicy(max_retries=1, base=0.01, cap=0.02))  # fmt: skip
    segment = toolkit.sample_customers(30, seed=2)
    form = LaunchForm(segment, client=down, trigger=88, label="outage",
                      launch_options={"preflight": False, "allow_sample": True})  # fmt: skip
    assert "REAL PLATFORM" in form.banner.value  # nothing answered: the safe side
    form.confirm.value = True
    form.button.click()
    assert form.join(timeout=60)
    text = _status_text(form)
    assert "did not answer. Nothing was sent. Launching again is safe" in text, text
    assert "TOOLKIT_API_URL" not in text and "HTTPConnectionPool" not in text
    assert _sends(sandbox, 88) == []


def test_a_name_the_form_chose_is_renumbered_when_another_launch_took_it(
    sandbox: Any, client: Client
) -> None:
    """Two forms opened in the same minute on one journal (two tabs of the app) propose the same
    launch name; the second to launch is not refused for a name its user never typed: it takes
    the next number, and both segments go out."""
    first = LaunchForm(toolkit.sample_customers(30, seed=11), client=client, trigger=86, label="twin tabs")
    second = LaunchForm(toolkit.sample_customers(30, seed=12), client=client, trigger=86, label="twin tabs")
    proposed = second.label.value
    if first.label.value != proposed:  # the minute turned between the two: give them the same start
        first.label.value = first._auto_label = proposed
    for form in (first, second):
        form.confirm.value = True
        form.button.click()
        assert form.join(timeout=60)
    assert first.launch.label == proposed
    assert second.launch.label == f"{proposed} (2)", _status_text(second)
    assert len(_sends(sandbox, 86)) == first.plan.n_valid + second.plan.n_valid


def test_repeat_is_refused_naming_that_launch(sandbox: Any, client: Client) -> None:
    """A second launch of the same plan is refused by the name of the launch that went, and a
    taken name is refused before anything is sent."""
    form = LaunchForm(toolkit.sample_customers(40, seed=8), client=client, trigger=87, label="repeat")
    first_label = form.label.value
    form.confirm.value = True
    form.button.click()
    assert form.join(timeout=60)
    assert form.label.value != first_label  # the next launch gets a name of its own
    form.label.value = first_label
    form.confirm.value = True
    form.button.click()
    assert form.join(timeout=10)
    assert f"The launch name {first_label!r} is taken" in _status_text(form)
    form.label.value = "repeat again"
    form.confirm.value = True
    form.button.click()
    assert form.join(timeout=60)
    assert f"as the launch {first_label!r}" in _status_text(form)
    assert len(_sends(sandbox, 87)) == form.plan.n_valid
