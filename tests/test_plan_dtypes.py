"""plan() accepts the frames pandas really makes: floats through NaN, object columns, odd names, far dates."""

from __future__ import annotations

import datetime as dt
import io
import string

import narwhals.stable.v2 as nw
import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolkit import InvalidArgumentError, Mapping, Plan, Subscription, ToolkitError, Trigger, plan


def rejected_rows(p: Plan) -> list[tuple[int, str, str]]:
    frame = nw.from_native(p.rejected, eager_only=True)
    return list(frame.select("position", "rule", "reason").iter_rows())


def test_a_phone_column_with_a_blank_cell_as_pandas_reads_it() -> None:
    """pd.read_csv makes such a column float64; the phones are still read, national ones too."""
    frame = pd.read_csv(io.StringIO("email,phone\nann@x.io,79001234567\nbob@x.io,\ncid@x.io,89001234568\n"))
    assert frame["phone"].dtype == "float64"
    p = plan(frame, Mapping({"email": "email", "phone": "phones"}), Trigger(1))
    assert [r.get("phones") for r in p.records(3)] == ["+79001234567", None, "+79001234568"]
    assert "column 'phone' (Float64) holds whole numbers: sent as their digits" in p.summary()["notes"]


def test_a_float_crm_id_is_sent_as_digits_to_a_text_field() -> None:
    """Whole floats mapped to an id-like field (CRM_ID) or a system text field go out as digit text."""
    frame = pd.DataFrame({"email": ["a@x.io", "b@x.io"], "crm": [1001.0, np.nan], "zip": [101000, 190000]})
    p = plan(frame, Mapping({"email": "email", "crm": "CRM_ID", "zip": "_postal_code"}), Trigger(1))
    assert p.records(2) == [
        {"email": "a@x.io", "CRM_ID": "1001", "_postal_code": "101000"},
        {"email": "b@x.io", "_postal_code": "190000"},
    ]
    assert p.summary()["notes"] == [
        "column 'crm' (Float64) holds whole numbers: sent as their digits",
        "column 'zip' (Int64) is sent as text (its field takes text)",
    ]


def test_numbers_stay_numbers_for_fields_of_unknown_type() -> None:
    """A whole-float column mapped to a custom field such as 'orders' is sent as integers, no note."""
    p = plan(pd.DataFrame({"email": ["a@x.io"], "orders": [3.0]}), Mapping({"email": "email", "orders": "orders"}),
             Trigger(1))  # fmt: skip
    assert p.records(1) == [{"email": "a@x.io", "orders": 3}] and p.summary()["notes"] == []


def test_a_mapped_mixed_object_column_is_coerced_value_by_value() -> None:
    """Numbers become text for a text field; a value no field can take rejects only its row."""
    frame = pd.DataFrame(
        {
            "email": ["a@x.io", "b@x.io", "c@x.io", "d@x.io"],
            "city": pd.Series(["Paris", 75, 2.0, {"x": 1}], dtype=object),
        }
    )
    p = plan(frame, Mapping({"email": "email", "city": "_city"}), Trigger(1))
    assert [r["_city"] for r in p.records(3)] == ["Paris", "75", "2"]
    assert rejected_rows(p) == [
        (3, "invalid_value", "column 'city': {'x': 1} is a dict, which a profile field cannot take")
    ]
    assert p.rejected["city"].tolist() == [{"x": 1}]  # the row as the analyst has it


def test_a_mixed_column_of_mostly_numbers_rejects_the_text_in_it() -> None:
    """For a field of unknown type, numbers (and numeric text) win; other text rejects its row."""
    frame = pd.DataFrame(
        {"email": ["a@x.io", "b@x.io", "c@x.io"], "n": pd.Series([1, "2", "many"], dtype=object)}
    )
    p = plan(frame, Mapping({"email": "email", "n": "orders"}), Trigger(1))
    assert [r["orders"] for r in p.records(2)] == [1, 2]
    assert rejected_rows(p) == [(2, "invalid_value", "column 'n': 'many' is text in a column of numbers")]


def test_an_unmapped_mixed_column_is_ignored() -> None:
    """A column the mapping does not read may mix anything: the plan does not look at it."""
    frame = pd.DataFrame({"email": ["a@x.io", "b@x.io"], "junk": pd.Series([1, [2, 3]], dtype=object)})
    p = plan(frame, Mapping({"email": "email"}), Trigger(1))
    assert p.n_valid == 2 and p.summary()["notes"] == []


def test_duplicate_column_names_are_named() -> None:
    """Two columns with one name: a ToolkitError naming it, before anything is built."""
    frame = pd.DataFrame([["a@x.io", "Ann", "Bo"]], columns=["email", "name", "name"])
    with pytest.raises(
        InvalidArgumentError, match=r"more than one column named 'name' at positions \[1, 2\]"
    ):
        plan(frame, Mapping({"email": "email"}), Trigger(1))


def test_field_name_collisions_are_named() -> None:
    """A 'subscriptions' field beside Subscription objects, or two columns to one field, is refused."""
    with pytest.raises(InvalidArgumentError, match=r"column 'subs' is mapped to the field 'subscriptions'"):
        Mapping(
            {"email": "email", "subs": "subscriptions"}, subscriptions=[Subscription("email", "email", 1)]
        )
    with pytest.raises(InvalidArgumentError, match=r"columns 'mail' and 'email' both map to field 'email'"):
        Mapping({"mail": "email", "email": "email"})


def test_datetimes_outside_years_1_to_9999_in_utc_reject_their_row() -> None:
    """A tz-aware time that UTC puts in year 0 or 10000 is rejected with a reason, not sent as '0000-...'."""
    when = pl.Series(
        [dt.datetime(1, 1, 1, 5, 0), dt.datetime(2024, 5, 1, 12, 0), dt.datetime(9999, 12, 31, 23, 0)]
    ).dt.replace_time_zone("Asia/Tokyo")
    late = pl.Series([dt.datetime(9999, 12, 31, 23, 0)]).dt.replace_time_zone("America/New_York")
    frame = pl.DataFrame(
        {
            "email": ["a@x.io", "b@x.io", "c@x.io", "d@x.io"],
            "seen": pl.concat([when, late.dt.convert_time_zone("Asia/Tokyo")]),
        }
    )
    p = plan(frame, Mapping({"email": "email", "seen": "last_seen"}), Trigger(1))
    assert [r["last_seen"] for r in p.records(3)] == ["2024-05-01T03:00:00Z", "9999-12-31T14:00:00Z"]
    assert [(pos, rule) for pos, rule, _ in rejected_rows(p)] == [(0, "invalid_date"), (3, "invalid_date")]
    assert all("outside the years 0001-9999 (in UTC)" in reason for *_, reason in rejected_rows(p))


# --- property: whatever pandas reads back from a CSV, plan() gives every row a fate --------------
_cell = st.one_of(
    st.just(""),
    st.from_regex(r"[a-z]{1,6}@[a-z]{1,5}\.(ru|com)", fullmatch=True),
    st.from_regex(r"(\+7|8)?9[0-9]{9}", fullmatch=True),
    st.from_regex(r"0[0-9]{1,5}", fullmatch=True),
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["True", "false", "NaN", "inf", "N/A", "2024-02-30", "2024-01-05", "1e400", "-"]),
    st.text(string.ascii_letters + " ,;\"'\nЁжик", max_size=8),
)
_COLUMNS = ("mail", "phone", "crm", "name", "n", "day")
_MAPPING = Mapping(
    {"mail": "email", "phone": "phones", "crm": "CRM_ID", "name": "_fname", "n": "orders", "day": "_regdate"},
    subscriptions=[Subscription("sms", "phone", 20)],
    matching="email",
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(*[_cell] * len(_COLUMNS)), min_size=1, max_size=12), st.sampled_from(["json", "xml"])
)
def test_any_csv_pandas_reads_back_plans_without_raw_errors(rows: list[tuple[str, ...]], format: str) -> None:
    """Frames written to CSV and read back by pandas with default options: plan() never raises a raw
    error, and every row is either in exactly one batch or rejected with a reason."""
    buffer = io.StringIO()
    pd.DataFrame(rows, columns=list(_COLUMNS)).to_csv(buffer, index=False)
    frame = pd.read_csv(io.StringIO(buffer.getvalue()))
    try:
        p = plan(frame, _MAPPING, Trigger(1), format=format)
    except ToolkitError as exc:  # allowed only as a clear refusal, never for the data's values
        pytest.fail(f"plan() refused a frame pandas made: {exc}")
    sent = [position for batch in p.batches for position in batch.rows]
    rejected = p.rejected["position"].tolist()
    assert sorted(sent + rejected) == list(range(len(frame)))
    assert all(isinstance(r, str) and r for r in p.rejected["reason"].tolist())
