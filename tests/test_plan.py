"""toolkit.core.plan: batches under both limits, the Plan's views, bad calls, one code path for every frame kind."""

from __future__ import annotations

import dataclasses
import gc
import json
import sys
import threading
from typing import Any

import pandas as pd
import polars as pl
import pytest

import toolkit
from toolkit import Mapping, Subscription, Trigger, plan, sample_customers
from toolkit.core.contract import loads_xml
from toolkit.core.plan import TOKEN_ROOM, PlanOptions
from toolkit.errors import ColumnNotFoundError, InvalidArgumentError, SerializationError, ToolkitError

SEGMENT_MAPPING = Mapping(
    {
        "crm_id": "CRM_ID",
        "first_name": "_fname",
        "last_name": "_lname",
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


@pytest.fixture(scope="module")
def segment() -> pd.DataFrame:
    return sample_customers(1500, seed=3)


def profiles(batch: toolkit.Batch) -> list[dict[str, Any]]:
    if batch.format == "json":
        return [item["data"] for item in json.loads(batch.body)["data"]]
    return loads_xml(batch.body)["data"]


def rejected_positions(p: toolkit.Plan) -> list[int]:
    return [int(x) for x in p.rejected["position"]]


# --- batches -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize(("max_bytes", "max_rows"), [(6_000, 10_000), (60_000, 37), (2_000, 3)])
def test_batches_respect_both_limits_and_partition_the_valid_rows(
    segment: pd.DataFrame, fmt: str, max_bytes: int, max_rows: int
) -> None:
    p = plan(segment, SEGMENT_MAPPING, Trigger(96), format=fmt, max_bytes=max_bytes, max_rows=max_rows)
    assert len(p.batches) > 1
    rows: list[int] = []
    for i, batch in enumerate(p.batches):
        body = batch.body
        assert batch.index == i and batch.format == fmt
        assert batch.nbytes == len(body) <= max_bytes - TOKEN_ROOM
        assert 1 <= len(batch) <= max_rows
        parsed = profiles(batch)
        assert len(parsed) == len(batch) == len(batch.rows) == len(batch.keys)
        assert [p_["email"] for p_ in parsed] == list(batch.keys)  # email matching: key == email
        assert batch.content_type == f"application/{fmt}"
        rows.extend(batch.rows)
    assert rows == sorted(rows)  # input order
    rejected = rejected_positions(p)
    assert not set(rows) & set(rejected)
    assert sorted(rows + rejected) == list(range(len(segment)))
    assert p.n_valid == len(rows) and p.n_rejected == len(rejected)


def test_batches_are_filled_greedily(segment: pd.DataFrame) -> None:
    # every batch but the last could not have taken the next row
    p = plan(segment, SEGMENT_MAPPING, Trigger(96), max_bytes=5_000)
    for batch, following in zip(p.batches, p.batches[1:], strict=False):
        first_next = json.dumps(
            json.loads(following.body)["data"][0], ensure_ascii=False, separators=(",", ":")
        )
        assert batch.nbytes + 1 + len(first_next.encode()) > 5_000 - TOKEN_ROOM


def test_batch_rows_align_with_the_source(segment: pd.DataFrame) -> None:
    p = plan(segment, SEGMENT_MAPPING, Trigger(96), max_rows=100)
    for batch in p.batches[:3]:
        for position, profile in zip(batch.rows, profiles(batch), strict=True):
            assert profile["CRM_ID"] == segment["crm_id"].iloc[position]


def test_digest_and_nbytes() -> None:
    import hashlib

    p = plan(pl.DataFrame({"email": ["a@x.io"]}), Mapping({"email": "email"}), Trigger(1))
    (batch,) = p.batches
    assert batch.digest == hashlib.sha256(batch.body).hexdigest()
    assert batch.nbytes == len(batch.body)
    assert "rows=1" in repr(batch)


def test_no_valid_rows_no_batches() -> None:
    p = plan(pd.DataFrame({"email": ["bad", None]}), Mapping({"email": "email"}), Trigger(1))
    assert p.batches == () and p.n_valid == 0 and p.n_rejected == 2
    assert p.summary()["largest_batch_bytes"] == 0


def test_too_large_profile_is_rejected_alone() -> None:
    df = pl.DataFrame({"email": ["a@x.io", "b@x.io", "c@x.io"], "note": ["x", "y" * 3000, "z"]})
    for fmt in ("json", "xml"):
        p = plan(df, Mapping({"email": "email", "note": "note"}), Trigger(1), format=fmt, max_bytes=2_000)
        assert [b.rows for b in p.batches] == [(0, 2)]
        (reason,) = list(p.rejected["reason"])
        assert list(p.rejected["rule"]) == ["too_large"] and "max_bytes=2000" in reason


def test_attachments_count_in_every_body() -> None:
    df = pl.DataFrame({"email": [f"u{i}@x.io" for i in range(50)]})
    trigger = Trigger(1, attach=[("a.bin", b"\0" * 3000)])
    p = plan(df, Mapping({"email": "email"}), trigger, max_bytes=5_000)
    assert all(b.nbytes <= 5_000 - TOKEN_ROOM for b in p.batches)
    assert all(json.loads(b.body)["attach"][0]["name"] == "a.bin" for b in p.batches)


# --- bad calls ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"format": "csv"}, "format must be 'json' or 'xml'"),
        ({"duplicates": "newest"}, "duplicates must be"),
        ({"phone_region": "RUS"}, "phone_region 'RUS' is not a region code"),
        ({"phone_region": "ru"}, "did you mean 'RU'"),
        ({"max_bytes": 0}, "max_bytes must be a positive integer"),
        ({"max_bytes": 11 * 1024 * 1024}, "over the platform's body limit"),
        ({"max_bytes": 300}, "leaves no room for profiles"),
        ({"max_rows": -1}, "max_rows must be a positive integer"),
        ({"max_rows": 1.5}, "max_rows must be a positive integer"),
    ],
)
def test_bad_options_fail_at_once(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message) as info:
        plan(pl.DataFrame({"email": ["a@x.io"]}), Mapping({"email": "email"}), Trigger(1), **kwargs)
    assert isinstance(info.value, ValueError) and isinstance(info.value, ToolkitError)


def test_max_bytes_too_small_for_the_attachment_envelope() -> None:
    trigger = Trigger(1, attach=[("a.bin", b"\0" * 5000)])
    with pytest.raises(InvalidArgumentError, match="attachments count here"):
        plan(pl.DataFrame({"email": ["a@x.io"]}), Mapping({"email": "email"}), trigger, max_bytes=6000)


def test_bad_calls_fail_before_reading_the_frame() -> None:
    with pytest.raises(InvalidArgumentError, match=r"mapping must be a toolkit\.Mapping"):
        plan(pl.DataFrame({"email": ["a@x.io"]}), {"email": "email"}, Trigger(1))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match=r"trigger must be a toolkit\.Trigger"):
        plan(pl.DataFrame({"email": ["a@x.io"]}), Mapping({"email": "email"}), 96)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="expected a dataframe"):
        plan([{"email": "a@x.io"}], Mapping({"email": "email"}), Trigger(1))


def test_missing_column_names_the_closest_one() -> None:
    df = pd.DataFrame({"email": ["a@x.io"], "phone": ["+79001234567"]})
    with pytest.raises(
        ColumnNotFoundError, match="'phnoe' is not in the frame; did you mean 'phone'"
    ) as info:
        plan(df, Mapping({"email": "email", "phnoe": "phones"}), Trigger(1))
    assert isinstance(info.value, KeyError) and "'email', 'phone'" in str(info.value)


def test_error_tree_is_exported() -> None:
    assert issubclass(toolkit.ColumnNotFoundError, toolkit.InvalidArgumentError)
    assert issubclass(toolkit.SerializationError, TypeError)
    for name in (
        "InvalidArgumentError",
        "SerializationError",
        "ApiError",
        "TransportError",
        "AlreadyLaunched",
    ):
        assert issubclass(getattr(toolkit, name), toolkit.ToolkitError)
    with pytest.raises(SerializationError):
        Trigger(1, custom_data={"x": object()})


# --- the Plan ----------------------------------------------------------------------------------
def test_rejected_is_of_the_callers_kind_with_original_columns() -> None:
    data = {"email": ["a@x.io", "bad@", "b@x.io"], "name": ["Ann", "Eve", "Bob"]}
    mapping = Mapping({"email": "email", "name": "_fname"})
    pdf = pd.DataFrame(data, index=[100, 200, 300])
    by_pandas = plan(pdf, mapping, Trigger(1)).rejected
    assert isinstance(by_pandas, pd.DataFrame)
    assert list(by_pandas.columns) == ["email", "name", "position", "rule", "reason"]
    assert by_pandas[["email", "name", "position", "rule"]].values.tolist() == [
        ["bad@", "Eve", 1, "invalid_email"]
    ]
    for frame in (pl.DataFrame(data), pl.DataFrame(data).lazy()):
        rejected = plan(frame, mapping, Trigger(1)).rejected
        assert isinstance(rejected, pl.DataFrame)
        assert rejected.columns == ["email", "name", "position", "rule", "reason"]
        assert rejected.row(0)[:4] == ("bad@", "Eve", 1, "invalid_email")
        assert "'bad@'" in rejected.row(0)[4]


def test_empty_rejected_keeps_its_columns() -> None:
    rejected = plan(pd.DataFrame({"email": ["a@x.io"]}), Mapping({"email": "email"}), Trigger(1)).rejected
    assert isinstance(rejected, pd.DataFrame) and len(rejected) == 0
    assert list(rejected.columns) == ["email", "position", "rule", "reason"]


def test_summary_repr_html_records(segment: pd.DataFrame) -> None:
    p = plan(segment, SEGMENT_MAPPING, Trigger(96), max_rows=500)
    s = p.summary()
    assert s["rows"] == 1500 and s["valid"] + s["rejected"] == 1500
    assert s["batches"] == len(p.batches) == 3
    assert s["bytes"] == sum(len(b.body) for b in p.batches)
    assert s["largest_batch_rows"] == 500 and s["max_rows"] == 500 and s["trigger_id"] == 96
    assert sum(s["rejected_by_rule"].values()) == s["rejected"]
    assert set(s["rejected_by_rule"]) <= set(toolkit.core.validate.RULES)
    assert list(s["rejected_by_rule"].values()) == sorted(s["rejected_by_rule"].values(), reverse=True)
    json.dumps(s)  # JSON-ready
    assert repr(p) == (
        f"Plan(rows=1500, valid={s['valid']}, rejected={s['rejected']}, batches=3, format='json', trigger_id=96)"
    )
    page = p._repr_html_()
    assert f"{s['valid']:,} valid" in page and "1,500 rows" in page
    for rule, count in s["rejected_by_rule"].items():
        assert f"<td>{rule}</td>" in page and f">{count:,}</td>" in page
    assert f"500 rows / {p.batches[0].nbytes:,} B" in page
    first = profiles(p.batches[0])
    assert p.records(3) == first[:3]
    assert p.records() == first[:5]
    assert json.dumps(first[0]["email"]) in page.replace("&quot;", '"')


def test_records_are_the_same_for_xml_plans() -> None:
    df = pl.DataFrame({"email": ["a@x.io"], "n": [3]})
    p = plan(df, Mapping({"email": "email", "n": "orders"}), Trigger(1), format="xml")
    assert p.records() == [{"email": "a@x.io", "orders": 3}]


def test_html_escapes_values() -> None:
    df = pl.DataFrame({"email": ["a@x.io"], "name": ["<script>alert(1)</script>"]})
    page = plan(df, Mapping({"email": "email", "name": "_fname"}), Trigger(1))._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_subset_writes_rows_as_the_whole_plan_did() -> None:
    """Whether a float column is sent as integers is decided once, by the first plan."""
    df = pd.DataFrame({"email": ["a@x.io", "b@x.io", "c@x.io"], "score": [1.5, 2.0, float("nan")]})
    mapping = Mapping({"email": "email", "score": "score"})
    whole = plan(df, mapping, Trigger(1))
    part = whole.subset([1])
    assert b'"score":2.0' in whole.batches[0].body and part.batches[0].body.count(b'"score":2.0') == 1
    # a column of whole numbers (pandas' integers that went through NaN) stays integers
    counts = pd.DataFrame({"email": ["a@x.io", "b@x.io"], "orders": [3.0, float("nan")]})
    assert (
        b'"orders":3}'
        in plan(counts, Mapping({"email": "email", "orders": "orders"}), Trigger(1))
        .subset([0])
        .batches[0]
        .body
    )


def test_subset_keeps_original_positions(segment: pd.DataFrame) -> None:
    p = plan(segment, SEGMENT_MAPPING, Trigger(96), max_rows=200)
    bad = rejected_positions(p)[:3]
    good = list(p.batches[1].rows[:4])
    sub = p.subset([*good, *bad])
    assert [r for b in sub.batches for r in b.rows] == good
    assert rejected_positions(sub) == bad
    assert list(sub.rejected["rule"]) == list(p.rejected["rule"][:3])
    assert sub.options == p.options and sub.trigger == p.trigger
    # the same profiles, byte for byte
    original = {r: prof for b in p.batches for r, prof in zip(b.rows, profiles(b), strict=True)}
    assert profiles(sub.batches[0]) == [original[r] for r in good]
    # a subset of a subset still speaks in original positions
    again = sub.subset([good[2], bad[0]])
    assert again.batches[0].rows == (good[2],) and rejected_positions(again) == [bad[0]]
    with pytest.raises(InvalidArgumentError, match="positions must be between"):
        p.subset([1500])


def test_fingerprint(segment: pd.DataFrame) -> None:
    a = plan(segment, SEGMENT_MAPPING, Trigger(96))
    b = plan(segment.copy(), SEGMENT_MAPPING, Trigger(96))
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 64
    assert plan(segment, SEGMENT_MAPPING, Trigger(97)).fingerprint != a.fingerprint
    assert plan(segment, SEGMENT_MAPPING, Trigger(96), format="xml").fingerprint != a.fingerprint
    assert plan(segment.head(1499), SEGMENT_MAPPING, Trigger(96)).fingerprint != a.fingerprint


def test_plan_keeps_its_inputs() -> None:
    df = pd.DataFrame({"email": ["a@x.io"]})
    mapping, trigger = Mapping({"email": "email"}), Trigger(1)
    p = plan(df, mapping, trigger, max_rows=5, phone_region=None)
    assert p.mapping is mapping and p.trigger is trigger and p.source is df and p.n_rows == 1
    assert p.options == PlanOptions(max_rows=5, phone_region=None)
    assert dict(p.options) == {
        "format": "json", "max_bytes": 10_000_000, "max_rows": 5, "phone_region": None, "duplicates": "first",
    }  # fmt: skip


def test_plan_options_are_frozen_and_plan_again_the_same_way() -> None:
    """Plan.options cannot be changed under a plan, and **options replans with the same bytes."""
    segment = pl.DataFrame({"email": [f"u{i}@x.io" for i in range(30)]})
    p = plan(segment, Mapping({"email": "email"}), Trigger(1), format="xml", max_rows=7, duplicates="keep")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.options.max_rows = 8  # type: ignore[misc]
    again = plan(segment, p.mapping, p.trigger, **p.options)
    assert [b.body for b in again.batches] == [b.body for b in p.batches] and len(p.batches) == 5
    with pytest.raises(KeyError):
        p.options["max_row"]


# --- one code path -----------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_pandas_polars_eager_and_lazy_give_identical_bodies(segment: pd.DataFrame, fmt: str) -> None:
    mapping = Mapping(
        {**SEGMENT_MAPPING.fields, "signup_date": "_regdate"}, subscriptions=SEGMENT_MAPPING.subscriptions
    )
    polars_frame = pl.from_pandas(segment)
    plans = [
        plan(frame, mapping, Trigger(96), format=fmt, max_bytes=50_000)
        for frame in (segment, polars_frame, polars_frame.lazy())
    ]
    bodies = [[b.body for b in p.batches] for p in plans]
    assert bodies[0] == bodies[1] == bodies[2]
    assert len(bodies[0]) > 1
    assert plans[0].fingerprint == plans[1].fingerprint == plans[2].fingerprint
    kinds = [type(p.rejected) for p in plans]
    assert kinds == [pd.DataFrame, pl.DataFrame, pl.DataFrame]
    assert plans[0].rejected["reason"].tolist() == plans[1].rejected["reason"].to_list()


def test_sample_in_both_kinds_gives_identical_bodies() -> None:
    a = plan(sample_customers(800, seed=5), SEGMENT_MAPPING, Trigger(9))
    b = plan(sample_customers(800, seed=5, kind="polars"), SEGMENT_MAPPING, Trigger(9))
    assert [x.body for x in a.batches] == [y.body for y in b.batches]


@pytest.mark.parametrize("format", ["json", "xml"])
def test_sizes_are_added_up_exactly(format: str) -> None:
    """Sizes are computed from the columns, never from built rows: they must match the bodies."""
    segment = toolkit.sample_customers(300, kind="polars").with_columns(
        # text that needs escaping in both formats, and nulls in the first column
        pl.when(pl.int_range(pl.len()) % 7 == 0)
        .then(pl.lit('Ann "A" <&>\\ \n'))
        .otherwise("first_name")
        .alias("first_name"),
        pl.when(pl.int_range(pl.len()) % 5 == 0).then(None).otherwise("city").alias("city"),
    )
    mapping = toolkit.Mapping(
        {"city": "_city", "email": "email", "first_name": "_fname", "tags": "tags", "revenue": "revenue",
         "email_opt_in": "opt_in", "signup_date": "_regdate"},
        subscriptions=[toolkit.Subscription("sms", "phone", 20, status="active")],
    )  # fmt: skip
    batches = toolkit.plan(
        segment, mapping, toolkit.Trigger(5), format=format, max_rows=40, max_bytes=9_000
    ).batches
    assert len(batches) > 1
    assert [b.nbytes for b in batches] == [len(b.body) for b in batches]
    assert max(b.nbytes for b in batches) <= 9_000


@pytest.mark.parametrize("order", ["forward", "backward", "shuffled", "threads"])
def test_bodies_are_the_same_however_they_are_asked_for(monkeypatch: pytest.MonkeyPatch, order: str) -> None:
    """Bodies are encoded a window at a time, the next window ahead: the order of asking must not show."""
    import random
    from concurrent.futures import ThreadPoolExecutor

    segment = sample_customers(400, seed=3, kind="polars")
    mapping = Mapping(
        {"email": "email", "first_name": "_fname", "tags": "tags", "orders": "orders"},
        subscriptions=[Subscription("sms", "phone", 20)],
    )
    expected = [b.body for b in plan(segment, mapping, Trigger(5), max_rows=10).batches]
    monkeypatch.setattr(sys.modules["toolkit.core.plan"], "WINDOW_ROWS", 25)  # 2 batches a window
    batches = plan(segment, mapping, Trigger(5), max_rows=10).batches
    indices = list(range(len(batches)))
    if order == "backward":
        indices.reverse()
    elif order == "shuffled":
        random.Random(7).shuffle(indices)
    if order == "threads":
        with ThreadPoolExecutor(8) as pool:
            got = dict(zip(indices, pool.map(lambda i: batches[i].body, indices), strict=True))
    else:
        got = {i: batches[i].body for i in indices}
    assert len(expected) > 20
    assert [got[i] for i in range(len(batches))] == expected
    assert [b.nbytes for b in batches] == [len(body) for body in expected]
    assert batches[3].body == expected[3]  # asked again: encoded again, the same


def test_no_encoder_thread_outlives_the_bodies(monkeypatch: pytest.MonkeyPatch) -> None:
    """The windows ahead are encoded on the plan's own thread, never a process-wide pool: it
    ends once the last window is encoded, or with the plan when one is dropped half-way."""
    monkeypatch.setattr(sys.modules["toolkit.core.plan"], "WINDOW_ROWS", 25)  # 2 batches a window
    segment = sample_customers(200, seed=3, kind="polars")

    def encoders_left() -> list[threading.Thread]:
        encoders = [t for t in threading.enumerate() if t.name.startswith("toolkit-encode")]
        for thread in encoders:
            thread.join(timeout=60)  # only a bound against a hang: a window takes milliseconds
        return [t for t in encoders if t.is_alive()]

    batches = plan(segment, Mapping({"email": "email"}), Trigger(5), max_rows=10).batches
    assert len(batches) > 6
    assert all(batch.body for batch in batches)
    assert encoders_left() == []  # every body read: the thread is gone, the plan still held
    half_read = plan(segment, Mapping({"email": "email"}), Trigger(5), max_rows=10)
    assert half_read.batches[0].body and half_read.batches[2].body
    del half_read
    gc.collect()
    assert encoders_left() == []  # a plan dropped half-way lets its thread go


@pytest.mark.parametrize(
    ("format", "fingerprint"),
    [
        ("json", "aba2bfd914e4601b844b843f9430822ea4c5a399d8d612e99911bcc5a1cea22e"),
        ("xml", "9ca1dc1ca6284749df14fe299e8c6cef4e2c9d114ef63f0370dc194447188c03"),
    ],
)
def test_bodies_stay_byte_for_byte_the_same(format: str, fingerprint: str) -> None:
    """The journal knows a batch by its body's digest: a plan made again after an upgrade of the
    toolkit must give the same bytes, or a re-run would send again what was already sent.

    A change of these bytes must be deliberate (and said in the release notes).
    """
    mapping = Mapping(
        {"email": "email", "first_name": "_fname", "last_name": "_lname", "phone": "phones", "city": "_city",
         "signup_date": "_regdate", "orders": "orders", "revenue": "revenue", "tags": "tags", "crm_id": "CRM_ID",
         "last_order_at": "last_order", "email_opt_in": "opt_in"},
        subscriptions=[Subscription("email", "email", 21), Subscription("sms", "phone", 20, status="active")],
    )  # fmt: skip
    segment = sample_customers(3000, seed=1, kind="polars")
    p = plan(segment, mapping, Trigger(9), format=format, max_rows=500, max_bytes=200_000)
    assert p.fingerprint == fingerprint
