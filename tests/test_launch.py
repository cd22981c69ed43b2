"""Launches end to end against the real sandbox over HTTP: exactly-once sending, resume,
faults, waiting, results frames, and the token kept out of everything a user sees."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import polars as pl
import pytest
import requests

import toolkit
from toolkit.core.contract import BatchState
from toolkit.errors import AlreadyLaunched, AuthError, ConfigurationError, InvalidArgumentError
from toolkit.sandbox import serve
from toolkit.sandbox.knobs import Faults, Knobs
from toolkit.send.client import Client
from toolkit.send.events import LaunchProgress
from toolkit.send.launch import RESULT_COLUMNS, Launch
from toolkit.send.retry import RetryPolicy

MAPPING = toolkit.Mapping({"email": "email", "name": "_fname"})
TRIGGER = toolkit.Trigger(96)


pytestmark = pytest.mark.usefixtures("isolated_journal")


def _segment(n: int, *, start: int = 0, kind: str = "polars", bad: tuple[int, ...] = ()) -> object:
    emails = [f"p{start + i}@launch.test" if i not in bad else f"broken-{i}" for i in range(n)]
    frame = pl.DataFrame({"email": emails, "name": [f"N{start + i}" for i in range(n)]})
    return frame.to_pandas() if kind == "pandas" else frame


def _inspect(server: object, route: str) -> list[dict]:
    r = requests.get(
        f"{server.url}/_sandbox/{route}",  # type: ignore[attr-defined]
        headers={"Authorization": f"Bearer {server.token}"},  # type: ignore[attr-defined]
        timeout=10,
    )
    r.raise_for_status()
    return r.json()


def _sends_by_email(server: object) -> Counter[str]:
    emails = {p["profile_id"]: p["fields"].get("email") for p in _inspect(server, "profiles")}
    return Counter(emails[s["profile_id"]] for s in _inspect(server, "sends"))


def _seed_for(pattern: list[str], **knobs: float) -> int:
    for seed in range(20_000):
        faults = Faults(Knobs(seed=seed, **knobs))
        drawn = [(lambda f: str(f.status) if f.kind == "fail" else f.kind)(faults.draw()) for _ in pattern]
        if drawn == pattern:
            return seed
    raise AssertionError(f"no seed gives {pattern}")


# --- the happy path, both frame kinds ------------------------------------------------------------
def test_launch_wait_results_pandas(sb: object, make_client: Callable[..., Client]) -> None:
    """A pandas segment is launched, waited for, and read back row by row with rejections."""
    segment = _segment(250, kind="pandas", bad=(3, 77))
    plan = toolkit.plan(segment, MAPPING, TRIGGER, max_rows=100)
    client = make_client(sb)
    launch = client.launch(plan, label="spring", progress=False)
    assert isinstance(launch, Launch) and launch.plan is plan and launch.label == "spring"
    assert {b.state for b in launch.batches} == {"sent"} and all(b.task_id for b in launch.batches)
    assert launch.wait(progress=False) is launch and not launch.timed_out
    results = launch.results()
    assert isinstance(results, pd.DataFrame)
    assert tuple(results.columns) == RESULT_COLUMNS and len(results) == 250
    assert results["position"].tolist() == list(range(250))
    by_status = results["status"].value_counts().to_dict()
    assert by_status == {"imported": 248, "rejected": 2}
    rejected = results[results["status"] == "rejected"]
    assert rejected["position"].tolist() == [3, 77] and set(rejected["error"]) == {"invalid_email"}
    assert results.loc[0, "match_key"] == "p0@launch.test" and results.loc[0, "profile_id"]
    joined = launch.results(join=True)
    assert list(joined.columns) == [*RESULT_COLUMNS, "email", "name"] and len(joined) == 250
    assert joined.loc[5, "name"] == "N5"
    summary = launch.summary()
    assert (summary["rows"], summary["imported"], summary["rejected"], summary["failed"]) == (250, 248, 2, 0)
    assert summary["rejections"] == {"invalid_email": 2} and summary["batches"] == {"completed": 3}
    assert sum(_sends_by_email(sb).values()) == 248
    client.close()


def test_failures_polars_and_retry_failed(sb: object, make_client: Callable[..., Client]) -> None:
    """Per-row failures come back in a polars frame and retry_failed() re-plans only those rows."""
    client = make_client(sb)
    first = client.launch(toolkit.plan(_segment(4), MAPPING, TRIGGER), progress=False).wait(progress=False)
    ids = first.results()["profile_id"].to_list()
    frame = pl.DataFrame({"pid": [ids[0], "0" * 24, ids[1], "f" * 24]})
    plan = toolkit.plan(frame, toolkit.Mapping({"pid": "profile_id"}, matching="profile_id"), TRIGGER)
    launch = client.launch(plan, label="by-id", progress=False).wait(progress=False)
    results = launch.results()
    assert isinstance(results, pl.DataFrame) and results.columns == list(RESULT_COLUMNS)
    assert results["status"].to_list() == ["imported", "failed", "imported", "failed"]
    assert results["error"].to_list() == [None, "404", None, "404"]
    summary = launch.summary()
    assert summary["failed"] == 2 and sum(summary["failures"].values()) == 2
    assert launch.failed_positions() == [1, 3]
    retry = launch.retry_failed()
    assert [list(b.rows) for b in retry.batches] == [[1, 3]]
    fixed = pl.DataFrame({"pid": [ids[0], ids[2], ids[1], ids[3]]})  # the corrected segment
    retry_fixed = launch.retry_failed(fixed)
    again = client.launch(retry_fixed, progress=False).wait(progress=False)
    joined = again.results(join=True)
    assert joined["position"].to_list() == [1, 3] and joined["status"].to_list() == ["imported", "imported"]
    assert joined["pid"].to_list() == [ids[2], ids[3]]  # the segment's rows at those positions
    client.close()


def test_xml_plan_gives_the_same_results_as_json(sb: object, make_client: Callable[..., Client]) -> None:
    """An XML plan imports the same profiles with the same results as the JSON one."""
    client = make_client(sb)
    segment = _segment(120, bad=(10,))
    as_json = client.launch(toolkit.plan(segment, MAPPING, TRIGGER, max_rows=50), progress=False)
    as_xml = client.launch(toolkit.plan(segment, MAPPING, TRIGGER, max_rows=50, format="xml"), progress=False)
    assert as_json.launch_id != as_xml.launch_id  # different bodies: not "already launched"
    a = as_json.wait(progress=False).results().drop("task_id")
    b = as_xml.wait(progress=False).results().drop("task_id")
    assert a.equals(b)  # profiles are upserted by email: same profile ids too
    assert a["status"].value_counts().sort("status").rows() == [("imported", 119), ("rejected", 1)]
    client.close()


# --- exactly once -----------------------------------------------------------------------------------
def test_rerun_raises_already_launched_and_force_sends_again(
    sb: object, make_client: Callable[..., Client]
) -> None:
    """Re-launching a plan raises AlreadyLaunched and sends nothing; force=True sends again."""
    client = make_client(sb)
    plan = toolkit.plan(_segment(60), MAPPING, TRIGGER, max_rows=25)
    launch = client.launch(plan, label="promo", progress=False).wait(progress=False)
    task_ids = [b.task_id for b in launch.batches]
    with pytest.raises(AlreadyLaunched) as info:
        client.launch(plan, label="promo again", progress=False)
    message = str(info.value)
    assert "'promo'" in message and task_ids[0] in message and "force=True" in message
    assert info.value.previous.launch_id == launch.launch_id
    # a new plan object from the same data is the same plan; a new client too
    other = make_client(sb)
    with pytest.raises(AlreadyLaunched):
        other.launch(toolkit.plan(_segment(60), MAPPING, TRIGGER, max_rows=25), progress=False)
    assert sum(_sends_by_email(sb).values()) == 60  # nobody mailed twice
    forced = client.launch(plan, label="promo", force=True, progress=False).wait(progress=False)
    assert forced.launch_id != launch.launch_id
    assert set(_sends_by_email(sb).values()) == {2}
    assert len(client.history()) == 2
    client.close()
    other.close()


def test_two_launches_of_the_same_plan_at_once_send_it_once(make_client: Callable[..., Client]) -> None:
    """Two notebooks (two clients, one journal file) launch the same plan at the same moment."""
    with serve(latency_ms=30) as server:
        clients = [make_client(server) for _ in range(2)]
        plan = toolkit.plan(_segment(80), MAPPING, TRIGGER, max_rows=10)
        outcomes: list[object] = []
        barrier = threading.Barrier(2)

        def go(client: Client) -> None:
            barrier.wait()
            try:
                outcomes.append(client.launch(plan, label="twice", concurrency=4, progress=False))
            except Exception as exc:  # AlreadyLaunched is fine; anything else fails below
                outcomes.append(exc)

        threads = [threading.Thread(target=go, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        launches = [o for o in outcomes if isinstance(o, Launch)]
        assert launches and all(isinstance(o, (Launch, AlreadyLaunched)) for o in outcomes), outcomes
        for launch in launches:
            launch.wait(progress=False)
        sends = _sends_by_email(server)
        assert len(sends) == 80 and set(sends.values()) == {1}  # everyone exactly once
        for c in clients:
            c.close()


def test_the_same_plan_on_another_host_is_another_launch(make_client: Callable[..., Client]) -> None:
    """The same plan to another platform is another launch, not AlreadyLaunched."""
    plan = toolkit.plan(_segment(5), MAPPING, TRIGGER)
    with serve() as one, serve() as two:
        a, b = make_client(one), make_client(two)
        a.launch(plan, progress=False)
        b.launch(plan, progress=False)  # not AlreadyLaunched: another platform
        with pytest.raises(AlreadyLaunched):
            a.launch(plan, progress=False)
        a.close()
        b.close()


def test_partly_sent_plan_sends_only_the_rest(sb: object, make_client: Callable[..., Client]) -> None:
    """Batches of a plan already sent by an earlier launch are followed, not re-sent."""
    client = make_client(sb)
    client.launch(toolkit.plan(_segment(200), MAPPING, TRIGGER, max_rows=100), progress=False)
    full = toolkit.plan(_segment(300), MAPPING, TRIGGER, max_rows=100)  # same first two batches
    launch = client.launch(full, label="grown", progress=False)
    batches = launch.batches
    assert [b.origin is not None for b in batches] == [True, True, False]
    assert sum(_sends_by_email(sb).values()) <= 300
    launch.wait(progress=False)
    assert launch.summary()["imported"] == 300
    assert set(_sends_by_email(sb).values()) == {1} and len(_sends_by_email(sb)) == 300
    client.close()


def test_refused_token_stops_the_launch_and_a_rerun_sends(
    sb: object, tmp_path: Path, make_client: Callable[..., Client]
) -> None:
    """A refused token stops the launch; its batches stay sendable and a good client sends them."""
    plan = toolkit.plan(_segment(40), MAPPING, TRIGGER, max_rows=10)
    bad = Client(sb.url, "WRONG-TOKEN-0000", journal=tmp_path / "journal.sqlite")  # type: ignore[attr-defined]
    with pytest.raises(AuthError, match="TOOLKIT_API_TOKEN"):
        bad.launch(plan, label="auth", concurrency=1, progress=False)
    states = Counter(b.state for b in Launch.from_journal(bad, "auth").batches)
    assert states["failed"] >= 1 and states["sent"] == 0  # refused: safe to send again
    good = make_client(sb)
    launch = good.launch(plan, label="auth", progress=False).wait(progress=False)
    assert launch.summary()["imported"] == 40
    bad.close()
    good.close()


def test_lost_answer_is_unknown_never_resent_until_asked(
    make_client: Callable[..., Client], caplog: pytest.LogCaptureFixture
) -> None:
    # batch 1's connection is dropped (the sandbox did nothing); batch 3's answer is lost
    # (the sandbox did import it). Both are unknown to the client.
    """Batches with lost answers are unknown, never re-sent by a re-run, only by resend_unknown()."""
    pattern = ["ok", "drop", "ok", "lose", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok"]
    seed = _seed_for(pattern, drop_rate=0.15, lose_response_rate=0.15)
    with serve(seed=seed, drop_rate=0.15, lose_response_rate=0.15) as server:
        client = make_client(server)
        plan = toolkit.plan(_segment(40), MAPPING, TRIGGER, max_rows=10)
        # no preflight: its catalog reads would take their own draws of the seeded fault stream
        launch = client.launch(plan, label="lossy", concurrency=1, progress=False, preflight=False)
        assert [b.state for b in launch.batches] == ["sent", "unknown", "sent", "unknown"]
        with pytest.raises(AlreadyLaunched):  # re-running the cell sends nothing
            client.launch(plan, label="lossy", progress=False, preflight=False)
        assert len(_inspect(server, "tasks")) == 3
        launch.wait(progress=False)
        results = launch.results()
        assert results.group_by("status").len().sort("status").rows() == [("imported", 20), ("unknown", 20)]
        assert "resend_unknown" in results.filter(pl.col("status") == "unknown")["error_text"][0]
        # the user checks the platform: batch 1 never arrived, batch 3 did. Re-send both
        # anyway to show what resend_unknown does (it is the user's call).
        events: list[LaunchProgress] = []
        launch.resend_unknown(progress=False, on_progress=events.append)
        assert events[0].batches == {0: "completed", 1: "unknown", 2: "completed", 3: "unknown"}
        assert events[-1].phase == "done" and events[-1].batches == {0: "completed", 1: "sent", 2: "completed",
                                                                     3: "sent"}  # fmt: skip
        assert [b.state for b in launch.batches] == ["completed", "sent", "completed", "sent"]
        assert [b.attempts for b in launch.batches] == [1, 2, 1, 2]
        launch.wait(progress=False)
        assert launch.summary()["imported"] == 40
        sends = _sends_by_email(server)
        assert len(sends) == 40 and sorted(Counter(sends.values()).items()) == [(1, 30), (2, 10)]
        client.close()


def test_wait_timeout_returns_the_state_so_far(make_client: Callable[..., Client]) -> None:
    """wait(timeout=) returns with the tasks still pending, and a later wait() finishes them."""
    with serve(processing_rate=150) as server:  # 2 s of work: a 0.3 s wait cannot see it all
        client = make_client(server)
        launch = client.launch(toolkit.plan(_segment(300), MAPPING, TRIGGER, max_rows=100), progress=False)
        assert launch.wait(timeout=0.3, progress=False) is launch
        assert launch.timed_out
        summary = launch.summary()
        assert summary["pending"] > 0 and summary["imported"] + summary["pending"] == 300
        history = launch.progress_history()
        assert history and set(history[0]) == {"time", "task_id", "batch", "status", "progress"}
        assert any(h["progress"] < 100 for h in history)
        launch.wait(progress=False)
        assert not launch.timed_out and launch.summary()["imported"] == 300
        progress = [h["progress"] for h in launch.progress_history() if h["batch"] == 2]
        assert progress == sorted(progress) and progress[-1] == 100
        client.close()


def test_wait_reads_the_tasks_in_line_and_sweeps_the_queue_rarely(make_client: Callable[..., Client]) -> None:
    """Between sweeps (every poll_max s), a round of wait() reads only the next tasks in the queue; the queue is
    still followed to its end, each queued task becoming next in line in turn."""
    pace = RetryPolicy(poll_start=0.02, poll_min=0.02, poll_max=600.0)  # no second sweep in this test
    with serve(paused=True) as server:  # the sandbox's worker starts nothing until resumed
        client = make_client(server, retry=pace)
        launch = client.launch(toolkit.plan(_segment(60), MAPPING, TRIGGER, max_rows=10), progress=False)
        assert launch.wait(timeout=1, progress=False).timed_out
        reads = Counter(h["batch"] for h in launch.progress_history())
        assert reads[0] == reads[1] > 1  # read every round: next in line
        assert [reads[b] for b in range(2, 6)] == [1, 1, 1, 1]  # the first round's sweep only
        requests.post(f"{server.url}/_sandbox/resume", headers={"Authorization": f"Bearer {server.token}"},
                      timeout=10).raise_for_status()  # fmt: skip
        assert not launch.wait(timeout=60, progress=False).timed_out  # no sweep before 600 s: the line moved
        assert launch.summary()["imported"] == 60
        client.close()


def test_wait_gives_up_on_unreadable_tasks_without_losing_them(sb: object,
                                                               make_client: Callable[..., Client],
                                                               caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """Tasks whose status cannot be read are left pending (not lost) after a few tries."""
    client = make_client(sb, retry=RetryPolicy(poll_max=0.05))  # poll faster than a person would
    launch = client.launch(toolkit.plan(_segment(5), MAPPING, TRIGGER), label="forgotten", progress=False)
    requests.post(f"{sb.url}/_sandbox/reset", headers={"Authorization": f"Bearer {sb.token}"}, timeout=10)  # type: ignore[attr-defined]
    launch.wait(timeout=30, progress=False)  # every status read is a 404 now
    assert not launch.timed_out and [b.state for b in launch.batches] == ["sent"]
    assert launch.summary()["pending"] == 5
    assert "gave up reading task" in caplog.text
    client.close()


def test_resume_by_label_without_the_plan(sb: object, make_client: Callable[..., Client]) -> None:
    """A launch is resumed by label from the journal alone, its results read without the plan."""
    client = make_client(sb)
    plan = toolkit.plan(_segment(30, bad=(0,)), MAPPING, TRIGGER, max_rows=10)
    client.launch(plan, label="nightly", progress=False)
    client.close()
    later = make_client(sb)  # a new session: only the journal is left
    launch = later.resume("nightly")
    assert launch.plan is None and launch.label == "nightly"
    # the status reads of the first session are gone; the journal's send times are not
    sent = launch.progress_history()
    assert sorted((h["batch"], h["progress"], h["source"]) for h in sent) == [
        (b, 0.0, "journal") for b in range(3)
    ]
    launch.wait(progress=False)
    finished = later.resume("nightly").progress_history()
    assert sorted((h["batch"], h["progress"]) for h in finished) == [
        (b, p) for b in range(3) for p in (0.0, 100.0)
    ]
    results = launch.results()
    assert isinstance(results, pd.DataFrame) and tuple(results.columns) == RESULT_COLUMNS
    assert results["status"].value_counts().to_dict() == {"imported": 29}  # rejections need the plan
    assert results["match_key"].isna().all()  # the journal keeps no keys, only their hashes
    with pytest.raises(InvalidArgumentError, match="plan=plan"):
        launch.retry_failed()
    with pytest.raises(InvalidArgumentError, match="did you mean 'nightly'"):
        later.resume("nightly2")
    with_plan = later.resume("nightly", plan=plan)
    assert with_plan.summary()["rejected"] == 1
    with pytest.raises(InvalidArgumentError, match="not the one"):
        later.resume("nightly", plan=toolkit.plan(_segment(5), MAPPING, TRIGGER))
    with serve() as elsewhere, pytest.raises(ConfigurationError, match="was sent to"):
        make_client(elsewhere).resume("nightly")
    later.close()


def test_history_frames(sb: object, make_client: Callable[..., Client]) -> None:
    """history() lists launches newest first with counts, as pandas or polars."""
    client = make_client(sb)
    empty = client.history()
    assert isinstance(empty, pd.DataFrame) and len(empty) == 0
    client.launch(toolkit.plan(_segment(10), MAPPING, TRIGGER), label="one", progress=False).wait(
        progress=False
    )
    client.launch(toolkit.plan(_segment(10, start=50), MAPPING, TRIGGER), label="two", progress=False)
    hist = client.history(kind="polars")
    assert isinstance(hist, pl.DataFrame) and hist["label"].to_list() == ["two", "one"]
    assert hist["completed"].to_list()[1] == 1 and hist["imported_rows"].to_list()[1] == 10
    assert hist.schema["created"] == pl.Datetime(time_zone="UTC")
    assert client.history()["label"].tolist() == ["two", "one"]
    with pytest.raises(InvalidArgumentError):
        client.history(kind="arrow")  # type: ignore[arg-type]
    client.close()


def test_rate_limit_is_shared_by_all_launches_of_a_client(
    make_client: Callable[..., Client], caplog: pytest.LogCaptureFixture
) -> None:
    """Two launches of one client share its rate limit: the platform never answers 429."""
    caplog.set_level(logging.INFO, logger="toolkit.sandbox")
    with serve(rate_limit=12) as server:
        client = make_client(server, rate_limit=10)
        plans = [toolkit.plan(_segment(40, start=s), MAPPING, TRIGGER, max_rows=4) for s in (0, 100)]
        launches: list[Launch] = []
        threads = [
            threading.Thread(
                target=lambda p=p: launches.append(client.launch(p, concurrency=4, progress=False))
            )
            for p in plans
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # 20 sends at 10/s (burst 10) from two launches stay under the server's 12/s: never a 429
        assert len(launches) == 2
        assert not [r for r in caplog.records if r.name == "toolkit.sandbox" and "-> 429" in r.getMessage()]
        client.close()


# --- on_progress: the events a progress bar is drawn from ---------------------------------------------
def test_on_progress_tells_each_batch_and_task_and_ends_done(
    sb: object, make_client: Callable[..., Client]
) -> None:
    """launch() and wait() report every batch and task over HTTP; rows add up; the last event is done."""
    client = make_client(sb)
    plan = toolkit.plan(_segment(90, bad=(4,)), MAPPING, TRIGGER, max_rows=20)
    sent_events: list[LaunchProgress] = []
    launch = client.launch(plan, label="watched", progress=False, on_progress=sent_events.append)
    assert sent_events and all(isinstance(e, LaunchProgress) for e in sent_events)
    assert {e.launch_id for e in sent_events} == {launch.launch_id}
    assert [e.phase for e in sent_events][-1] == "done" and "done" not in [e.phase for e in sent_events][:-1]
    assert all(e.rows_total == 89 and sum(e.batch_rows.values()) == 89 for e in sent_events)
    first, last = sent_events[0], sent_events[-1]
    assert first.rows_sent == 0 and set(first.batches.values()) == {BatchState.PLANNED}
    assert last.rows_sent == 89 and set(last.batches.values()) == {BatchState.SENT}
    assert "launch.wait()" in (last.message or "")
    # each batch was told claimed (sending), then sent: one event per change, in order
    for index in range(5):
        told = [e.batches[index] for e in sent_events]
        changes = [s for i, s in enumerate(told) if i == 0 or told[i - 1] != s]
        assert changes == [BatchState.PLANNED, BatchState.SENDING, BatchState.SENT], (index, changes)
    sent = [e.rows_sent for e in sent_events]
    assert sent == sorted(sent)  # the callback sees the events one at a time, in order

    wait_events: list[LaunchProgress] = []
    launch.wait(progress=False, on_progress=wait_events.append)
    assert wait_events[-1].phase == "done" and {e.phase for e in wait_events[:-1]} == {"processing"}
    done = wait_events[-1]
    assert set(done.batches.values()) == {BatchState.COMPLETED} and done.batches_done == 5
    assert done.rows_processed == 89 and done.task_progress == {i: 100.0 for i in range(5)}
    reads = [e for e in wait_events[1:-1]]  # one event per status read
    assert len(reads) >= 5 and all(0 <= p <= 100 for e in reads for p in e.task_progress.values())
    assert launch.summary()["imported"] == 89
    client.close()


def test_a_raising_on_progress_does_not_stop_the_launch(
    sb: object, make_client: Callable[..., Client], caplog: pytest.LogCaptureFixture
) -> None:
    """A broken progress callback is logged and ignored: every row is still sent once and read."""
    client = make_client(sb)
    calls: list[str] = []

    def broken(event: LaunchProgress) -> None:
        calls.append(event.phase)
        raise RuntimeError("the progress bar broke")

    plan = toolkit.plan(_segment(30, start=500), MAPPING, TRIGGER, max_rows=10)
    launch = client.launch(plan, progress=False, on_progress=broken).wait(progress=False, on_progress=broken)
    assert launch.summary()["imported"] == 30 and {b.state for b in launch.batches} == {"completed"}
    assert calls.count("done") == 2  # called to the end, despite raising every time
    assert set(_sends_by_email(sb).values()) == {1} and len(_sends_by_email(sb)) == 30
    assert "on_progress callback raised" in caplog.text and "the progress bar broke" in caplog.text
    client.close()


def test_on_progress_tells_a_scheduled_retry(sb: object, make_gateway: Callable[..., object]) -> None:
    """A 503 with Retry-After to a batch is retried, and the watcher hears why and which retry of how many."""
    gateway = make_gateway(sb, "503-retry-after")
    client = Client(gateway.url, sb.token, retry=RetryPolicy.no_wait(3))  # type: ignore[attr-defined]  # journal: isolated
    events: list[LaunchProgress] = []
    launch = client.launch(
        toolkit.plan(_segment(3), MAPPING, TRIGGER),
        progress=False,
        on_progress=events.append,
        preflight=False,  # the gateway's 503 is for the batch
    )
    retries = [e for e in events if e.phase == "retrying"]
    assert len(retries) == 1 and retries[0].message is not None
    assert retries[0].message.startswith("the platform is busy (HTTP 503): retry 1 of 3 in ")
    assert retries[0].batches[0] == BatchState.SENDING
    assert events[-1].phase == "done" and events[-1].batches[0] == BatchState.SENT
    assert [b.state for b in launch.batches] == ["sent"]
    client.close()


# --- the token, nowhere ---------------------------------------------------------------------------------
def test_token_never_shown(sb: object, tmp_path: Path, make_client: Callable[..., Client],
                           capsys: pytest.CaptureFixture[str],
                           caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """The token shows in no repr, result, summary, progress bar, log or journal byte."""
    caplog.set_level(logging.DEBUG)
    token = sb.token  # type: ignore[attr-defined]
    client = make_client(sb)
    plan = toolkit.plan(_segment(30), MAPPING, TRIGGER, max_rows=10)
    launch = client.launch(plan, label="secretive", progress=True).wait(progress=True)
    with pytest.raises(AlreadyLaunched) as info:
        client.launch(plan, progress=True)
    bars = capsys.readouterr()
    assert "sending secretive" in bars.err and "processing secretive" in bars.err  # the bars did render
    shown = [
        repr(client), str(client), repr(launch), str(launch), launch._repr_html_(), str(launch.summary()),
        str(launch.results()), str(launch.results(join=True)), str(client.history()), str(info.value),
        repr(info.value.previous), str(launch.progress_history()), str(launch.batches), bars.out, bars.err,
        caplog.text,
    ]  # fmt: skip
    for text in shown:
        assert token not in text
    client.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("journal"))
    assert raw and token.encode() not in raw
    assert b"p1@launch.test" not in raw  # no profile data in the journal either


def test_repr_is_readable(sb: object, make_client: Callable[..., Client]) -> None:
    """A launch's repr and HTML say its label, batches by state and rows, escaped."""
    client = make_client(sb)
    launch = client.launch(
        toolkit.plan(_segment(12), MAPPING, TRIGGER, max_rows=5), label="q<3", progress=False
    )
    launch.wait(progress=False)
    text = repr(launch)
    assert text.startswith("<Launch 'q<3'") and "3 batches (3 completed)" in text and "12 rows" in text
    html = launch._repr_html_()
    assert "q&lt;3" in html and html.count("<tr>") == 4
    client.close()


# --- a real crash ------------------------------------------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import polars as pl, toolkit
    from toolkit.send.client import Client
    frame = pl.DataFrame({"email": [f"crash{i}@launch.test" for i in range(120)], "name": ["C"] * 120})
    plan = toolkit.plan(frame, toolkit.Mapping({"email": "email", "name": "_fname"}), toolkit.Trigger(96),
                        max_rows=10)
    Client.from_env().launch(plan, label="crash", concurrency=1, progress=False)
    print("finished", flush=True)
    """
)


@pytest.mark.slow
def test_sigkill_mid_launch_then_relaunch_sends_each_profile_once(tmp_path: Path) -> None:
    """A launch killed mid-way and launched again sends every profile once, or flags it unknown."""
    journal = tmp_path / "journal.sqlite"
    with serve(latency_ms=150) as server:
        env = {
            **os.environ,
            "TOOLKIT_API_URL": server.url,
            "TOOLKIT_API_TOKEN": server.token,
            "TOOLKIT_JOURNAL": str(journal),
        }
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 60
        sent = 0
        while sent < 3:  # kill once a few batches are through and more are to come
            assert child.poll() is None, child.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            time.sleep(0.05)
            if journal.exists():
                with sqlite3.connect(journal) as db:
                    try:
                        sent = db.execute("SELECT COUNT(*) FROM batches WHERE state = 'sent'").fetchone()[0]
                    except sqlite3.OperationalError:  # schema not there yet
                        sent = 0
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        with sqlite3.connect(journal) as db:
            before = dict(db.execute("SELECT state, COUNT(*) FROM batches GROUP BY state").fetchall())
        assert before.get("planned", 0) > 0  # killed mid-launch

        frame = pl.DataFrame({"email": [f"crash{i}@launch.test" for i in range(120)], "name": ["C"] * 120})
        plan = toolkit.plan(frame, MAPPING, TRIGGER, max_rows=10)
        client = Client(server.url, server.token, journal=journal)
        launch = client.launch(plan, label="crash", progress=False)  # same plan: resume it
        assert launch.label == "crash" and len(client.history()) == 1
        states = Counter(b.state for b in launch.batches)
        assert states["planned"] == 0 and states["unknown"] <= 1 and states["sent"] + states["unknown"] == 12
        launch.wait(progress=False)
        results = launch.results()
        sends = _sends_by_email(server)
        assert max(sends.values()) == 1  # nobody twice
        imported = results.filter(pl.col("status") == "imported")["match_key"].to_list()
        assert all(sends[e] == 1 for e in imported)
        unknown = results.filter(pl.col("status") == "unknown")["match_key"].to_list()
        assert len(imported) + len(unknown) == 120  # everyone sent once, or flagged unknown
        assert set(sends) <= set(imported) | set(unknown)
        client.close()
