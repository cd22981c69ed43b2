"""Streamed plans: a LazyFrame, a parquet glob or a DuckDB relation is planned window by window
into the same bodies as the eager plan of the same rows, and launched exactly once."""

from __future__ import annotations

import gc
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
import requests

from toolkit import Mapping, Subscription, Trigger, plan, sample_customers
from toolkit.core import windows
from toolkit.core.plan import StreamedPlan
from toolkit.errors import AlreadyLaunched, ColumnNotFoundError, InvalidArgumentError, SourceChangedError
from toolkit.send.client import Client
from toolkit.send.events import LaunchProgress

ROOT = Path(__file__).resolve().parents[1]
MAPPING = Mapping(
    {
        "crm_id": "CRM_ID",
        "first_name": "_fname",
        "email": "email",
        "phone": "phones",
        "city": "_city",
        "last_order_at": "last_order_at",
        "orders": "orders",
        "revenue": "revenue",
        "tags": "tags",
        "email_opt_in": "opt_in",
    },
    subscriptions=[Subscription("email", "email", 21), Subscription("sms", "phone", 20)],
)
TRIGGER = Trigger(96)


@pytest.fixture
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows of 700 rows, so a few thousand rows cross many window (and batch) boundaries."""
    monkeypatch.setattr(windows, "WINDOW_ROWS", 700)


def _parquet_parts(frame: pl.DataFrame, folder: Path, parts: int = 3) -> str:
    """The frame written as ``parts`` parquet files (in row order by name); their glob."""
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-frame.height // parts)
    for i in range(parts):
        frame.slice(i * size, size).write_parquet(folder / f"part-{i:02d}.parquet")
    return str(folder / "part-*.parquet")


def _sends_by_email(server: Any) -> Counter[str]:
    headers = {"Authorization": f"Bearer {server.token}"}
    profiles = requests.get(f"{server.url}/_sandbox/profiles", headers=headers, timeout=10).json()
    sends = requests.get(f"{server.url}/_sandbox/sends", headers=headers, timeout=10).json()
    emails = {p["profile_id"]: p["fields"].get("email") for p in profiles}
    return Counter(emails[s["profile_id"]] for s in sends)


@pytest.mark.parametrize(("fmt", "duplicates"), [("json", "first"), ("xml", "last"), ("json", "keep")])
def test_every_source_gives_the_eager_plans_bodies(
    tmp_path: Path, small_windows: None, fmt: str, duplicates: str
) -> None:
    """Eager frame, LazyFrame, parquet glob and DuckDB relation of the same rows: same fingerprint,
    same batches, rows and rejections, duplicates found across windows."""
    segment = sample_customers(4000, seed=5, kind="polars")
    options: dict[str, Any] = {"format": fmt, "duplicates": duplicates, "max_rows": 300}
    eager = plan(segment, MAPPING, TRIGGER, **options)
    glob = _parquet_parts(segment, tmp_path / "parts")
    keeps_all = pl.col("crm_id").hash() >= 0  # a filter polars cannot see through
    sources = {
        "lazy": segment.lazy(),
        "glob": glob,
        "scan": pl.scan_parquet(glob),  # read by slices
        "filtered scan": pl.scan_parquet(glob).filter(keeps_all),  # read by collect_batches
        "duckdb": duckdb.connect()
        .sql(f"SELECT * FROM read_parquet('{glob}', file_row_number=true) ORDER BY filename, file_row_number")
        .select(*segment.columns),
    }
    expected_rejected = eager.rejected.sort("position")
    assert eager.n_rejected > 0 and len(eager.batches) > 5
    if duplicates != "keep":
        assert eager.rejected_by_rule().get("duplicate", 0) > 10
    for name, source in sources.items():
        streamed = plan(source, MAPPING, TRIGGER, **options)
        assert isinstance(streamed, StreamedPlan), name
        assert streamed.fingerprint == eager.fingerprint, name
        assert [b.rows for b in streamed.batches] == [b.rows for b in eager.batches], name
        assert streamed.batches[-1].body == eager.batches[-1].body, name
        assert streamed.batches[2].keys == eager.batches[2].keys, name
        assert streamed.rejected_by_rule() == eager.rejected_by_rule(), name
        assert streamed.rejected.sort("position").equals(expected_rejected), name
        assert streamed.records() == eager.records(), name
        assert streamed.summary() == eager.summary(), name


def test_a_plain_parquet_scan_is_read_by_slices_a_filtered_one_whole(tmp_path: Path) -> None:
    """A plain parquet scan is read slice by slice (memory bounded, rows in order); a query whose
    slices would each run it over the whole segment (filter, sort, join) is read in one go."""
    segment = sample_customers(2500, seed=3, kind="polars")
    glob = _parquet_parts(segment, tmp_path / "parts")
    scan = pl.scan_parquet(glob)
    assert windows._slices_read_only_them(scan.select("email", "orders"))
    for query in (scan.filter(pl.col("orders") > 1), scan.sort("orders"), scan.join(scan, on="crm_id")):
        assert not windows._slices_read_only_them(query)
    read = windows.Windows.of(scan, rows=1000)
    assert [w.height for w in read.read()] == [1000, 1000, 500]
    assert pl.concat(read.read()).equals(segment)


class _Made:
    """An item of a test source (weakly referenced, so the test sees which are still held)."""


def _reader_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def test_the_next_window_is_made_one_ahead_on_a_thread_that_ends_with_its_caller() -> None:
    """windows.ahead: the next item is made while the caller holds one, never further ahead
    (memory of two windows); the source is closed and the thread gone when the caller stops
    early; an error on the thread is raised in the caller."""
    alive: weakref.WeakSet[_Made] = weakref.WeakSet()
    most_alive, closed = 0, threading.Event()

    def source() -> Iterator[_Made]:
        nonlocal most_alive
        try:
            for _ in range(200):
                most_alive = max(most_alive, len(alive))  # held when the next one is made
                item = _Made()
                alive.add(item)
                yield item
                del item
        finally:
            closed.set()

    made = windows.ahead(source, name="test-ahead")
    for taken, _item in enumerate(made, start=1):
        time.sleep(0.001)  # a slow caller: a thread not held back would run far ahead
        if taken == 40:
            break
    made.close()
    assert closed.is_set() and not _reader_threads("test-ahead")
    assert 1 <= most_alive <= 2  # the caller's item, and the one it just let go of

    def broken() -> Iterator[int]:
        yield 1
        raise InvalidArgumentError("reading the segment (parquet) failed: part-0003 is damaged")

    failing = windows.ahead(broken, name="test-ahead")
    assert next(failing) == 1
    with pytest.raises(InvalidArgumentError, match="part-0003 is damaged"):
        next(failing)
    assert not _reader_threads("test-ahead")


def test_a_streamed_plan_leaves_no_thread_behind(tmp_path: Path, small_windows: None) -> None:
    """The reading thread of each pass (plan, duplicates, a send's bodies, a resend from the
    start) ends with its pass, or when the pass is left half-way."""
    segment = sample_customers(3000, seed=6, kind="polars")
    streamed = plan(_parquet_parts(segment, tmp_path / "parts"), MAPPING, TRIGGER, max_rows=200)
    assert not _reader_threads("toolkit-read")
    first, later = streamed.batches[0].body, streamed.batches[5].body
    assert _reader_threads("toolkit-read")  # the send's pass is under way, one window ahead
    assert streamed.batches[0].body == first and streamed.batches[5].body == later  # a pass again
    del streamed, first, later
    gc.collect()
    assert not _reader_threads("toolkit-read")


@pytest.mark.parametrize("duplicates", ["first", "last"])
def test_a_too_large_row_that_repeats_a_key_is_a_duplicate_as_in_the_eager_plan(
    small_windows: None, duplicates: str
) -> None:
    """A row too large to send that also repeats a key is rejected once, for the same rule as
    in the eager plan (duplicates are found first), whichever window holds it."""
    segment = sample_customers(3000, seed=4, kind="polars").with_row_index("n")
    email_100 = segment.filter(pl.col("n") == 100)["email"].item()
    huge = "x" * 6000
    segment = segment.with_columns(
        email=pl.when(pl.col("n") == 2500).then(pl.lit(email_100)).otherwise(pl.col("email")),
        # the later copy of the key is too large with "first", the earlier one with "last"
        first_name=pl.when(pl.col("n") == (2500 if duplicates == "first" else 100))
        .then(pl.lit(huge))
        .otherwise(pl.col("first_name")),
    ).drop("n")
    options: dict[str, Any] = {"duplicates": duplicates, "max_bytes": 5000}
    eager = plan(segment, MAPPING, TRIGGER, **options)
    streamed = plan(segment.lazy(), MAPPING, TRIGGER, **options)
    huge_row = eager.rejected.filter(pl.col("first_name") == huge)
    assert huge_row["rule"].to_list() == ["duplicate"]
    assert streamed.rejected.sort("position").equals(eager.rejected.sort("position"))
    assert streamed.rejected_by_rule() == eager.rejected_by_rule()
    assert streamed.fingerprint == eager.fingerprint


def test_rejected_rows_go_to_the_parquet_file_asked_for(tmp_path: Path, small_windows: None) -> None:
    """rejected_to= writes the rejected rows (original columns, position, rule, reason) to parquet."""
    segment = sample_customers(3000, seed=2, kind="polars")
    target = tmp_path / "rejected.parquet"
    streamed = plan(segment.lazy(), MAPPING, TRIGGER, rejected_to=target)
    eager = plan(segment, MAPPING, TRIGGER)
    assert isinstance(streamed.rejected, pl.LazyFrame)
    written = pl.read_parquet(target).sort("position")
    assert written.equals(eager.rejected.sort("position"))
    assert written.columns == [*segment.columns, "position", "rule", "reason"]


def test_a_lazy_source_with_a_missing_column_or_a_wrong_path_says_so(tmp_path: Path) -> None:
    """A mapped column the source lacks, or a glob matching nothing, is a clear ToolkitError."""
    with pytest.raises(ColumnNotFoundError, match=r"'emial'.*did you mean 'email'"):
        plan(pl.LazyFrame({"email": ["a@x.io"]}), Mapping({"emial": "email"}), TRIGGER)
    with pytest.raises(InvalidArgumentError, match=r"no parquet file at .*nothing-here"):
        plan(str(tmp_path / "nothing-here" / "*.parquet"), Mapping({"email": "email"}), TRIGGER)
    (tmp_path / "a.csv").write_text("email\na@x.io\n")
    with pytest.raises(InvalidArgumentError, match=r"not a \.parquet file.*scan_csv"):
        plan(str(tmp_path / "*.csv"), Mapping({"email": "email"}), TRIGGER)


def test_a_source_changed_after_planning_is_refused_not_sent() -> None:
    """If the source's rows change between plan() and the send, the body is refused, not sent."""
    db = duckdb.connect()
    db.execute("CREATE TABLE segment AS SELECT 'u' || i || '@x.io' AS email FROM range(50) t(i)")
    streamed = plan(db.sql("SELECT email FROM segment"), Mapping({"email": "email"}), TRIGGER)
    db.execute("UPDATE segment SET email = 'v' || email")
    with pytest.raises(SourceChangedError, match="plan it again"):
        streamed.batches[0].body  # noqa: B018


def test_a_source_changed_before_the_send_is_journalled_failed_never_sent(
    sb: Any, make_client: Callable[..., Client]
) -> None:
    """A launch of a streamed plan whose source changed stops; the batch reads failed (never
    sent), not unknown, and the sandbox received nothing."""
    db = duckdb.connect()
    db.execute("CREATE TABLE segment AS SELECT 'c' || i || '@x.io' AS email FROM range(50) t(i)")
    streamed = plan(db.sql("SELECT email FROM segment"), Mapping({"email": "email"}), TRIGGER)
    db.execute("UPDATE segment SET email = 'v' || email")
    client = make_client(sb)
    with pytest.raises(SourceChangedError, match="never sent"):
        client.launch(streamed, label="changed", progress=False)
    record = client.journal.batch(client.journal.find("changed").launch_id, 0)
    assert record.state == "failed" and "never sent" in (record.error or "")
    assert not _sends_by_email(sb)
    client.close()


def test_a_streamed_launch_sends_each_profile_once_and_again_is_already_launched(
    sb: Any, make_client: Callable[..., Client], tmp_path: Path, small_windows: None
) -> None:
    """A parquet glob launched at the sandbox: every valid profile once; progress counts rows and
    batches out of the plan's totals; the same glob planned again is AlreadyLaunched."""
    frame = pl.DataFrame({"email": [f"s{i}@stream.test" for i in range(2500)], "name": ["S"] * 2500})
    glob = _parquet_parts(frame, tmp_path / "parts", parts=4)
    mapping = Mapping({"email": "email", "name": "_fname"})
    client = make_client(sb)
    streamed = plan(glob, mapping, TRIGGER, max_rows=400)
    events: list[LaunchProgress] = []
    launch = client.launch(streamed, progress=False, on_progress=events.append).wait(progress=False)
    assert launch.summary()["imported"] == 2500
    assert set(_sends_by_email(sb).values()) == {1} and len(_sends_by_email(sb)) == 2500
    last = events[-1]
    assert last.rows_sent == last.rows_total == 2500 and len(last.batches) == len(streamed.batches) == 7
    assert launch.results()["match_key"].to_list()[:2] == ["s0@stream.test", "s1@stream.test"]
    with pytest.raises(AlreadyLaunched):
        client.launch(plan(glob, mapping, TRIGGER, max_rows=400), progress=False)
    client.close()


CHILD = textwrap.dedent(
    """
    import sys, toolkit
    from toolkit.core import windows
    from toolkit.send.client import Client
    windows.WINDOW_ROWS = 90
    plan = toolkit.plan(sys.argv[1], toolkit.Mapping({"email": "email", "name": "_fname"}), toolkit.Trigger(96),
                        max_rows=10)
    Client.from_env().launch(plan, label="crash", concurrency=1, progress=False)
    print("finished", flush=True)
    """
)


@pytest.mark.slow
def test_a_killed_streamed_launch_resumes_without_resending(tmp_path: Path) -> None:
    """A streamed launch killed mid-way (SIGKILL) and planned + launched again from the same
    parquet files sends every profile once, or flags it unknown."""
    from toolkit.sandbox import serve

    frame = pl.DataFrame({"email": [f"crash{i}@stream.test" for i in range(300)], "name": ["C"] * 300})
    glob = _parquet_parts(frame, tmp_path / "parts", parts=3)
    journal = tmp_path / "journal.sqlite"
    with serve(latency_ms=150) as server:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TOOLKIT_API_URL": server.url,
            "TOOLKIT_API_TOKEN": server.token,
            "TOOLKIT_JOURNAL": str(journal),
        }
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, glob],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120
        sent = 0
        while sent < 12:  # kill once some windows' batches are through and more are to come
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

        windows.WINDOW_ROWS, kept = 90, windows.WINDOW_ROWS
        try:
            again = plan(glob, Mapping({"email": "email", "name": "_fname"}), TRIGGER, max_rows=10)
        finally:
            windows.WINDOW_ROWS = kept
        client = Client(server.url, server.token, journal=journal)
        launch = client.launch(again, label="crash", progress=False)  # same plan: resume it
        assert launch.label == "crash" and len(client.history()) == 1
        launch.wait(progress=False)
        results = launch.results()
        sends = _sends_by_email(server)
        assert max(sends.values()) == 1  # nobody twice
        imported = results.filter(pl.col("status") == "imported")["match_key"].to_list()
        unknown = results.filter(pl.col("status") == "unknown")["match_key"].to_list()
        assert len(imported) + len(unknown) == 300 and len(unknown) <= 10
        assert set(sends) <= set(imported) | set(unknown)
        client.close()
