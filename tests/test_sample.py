"""sample_customers(): deterministic, realistic, dirty, and the same in both frame kinds."""

from __future__ import annotations

import hashlib

import pandas as pd
import phonenumbers
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.core.sample import COLUMNS, sample_customers
from toolkit.errors import InvalidArgumentError

POLARS_SCHEMA = {
    "crm_id": pl.String,
    "first_name": pl.String,
    "last_name": pl.String,
    "email": pl.String,
    "phone": pl.String,
    "city": pl.String,
    "signup_date": pl.Date,
    "last_order_at": pl.Datetime("us"),
    "orders": pl.Int64,
    "revenue": pl.Float64,
    "tags": pl.List(pl.String),
    "email_opt_in": pl.Boolean,
}
TEXT = ("crm_id", "first_name", "last_name", "email", "phone", "city")
# Lower-cased and trimmed, an address is valid when it matches this (the sample's dirt is obvious:
# a missing domain or local part, a space, "..", a dot-less domain).
VALID_EMAIL = r"^[a-z0-9_]+(\.[a-z0-9_]+)*@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$"

N = 20_000  # large enough for the dirt fractions to settle, small enough to build in ~50 ms


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return sample_customers(N, seed=0, kind="polars")


def _phone_is_valid(text: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(text, "RU"))
    except phonenumbers.NumberParseException:
        return False


def _valid_email(frame: pl.DataFrame) -> pl.Series:
    return frame["email"].str.strip_chars().str.to_lowercase().str.contains(VALID_EMAIL).fill_null(False)


# --- shape and dtypes ------------------------------------------------------------------------
def test_columns_and_polars_dtypes(frame: pl.DataFrame) -> None:
    assert tuple(frame.columns) == COLUMNS
    assert dict(frame.schema) == POLARS_SCHEMA
    assert frame.height == N


def test_pandas_dtypes() -> None:
    df = sample_customers(500, seed=3)
    assert isinstance(df, pd.DataFrame)
    assert tuple(df.columns) == COLUMNS
    assert isinstance(df.index, pd.RangeIndex)
    for col in TEXT:  # pandas 3: "str"; pandas 2: object
        assert pd.api.types.is_string_dtype(df[col].dtype), col
    assert str(df["signup_date"].dtype).startswith("datetime64[")
    assert str(df["last_order_at"].dtype).startswith("datetime64[")
    assert df["orders"].dtype == pd.Int64Dtype()  # nullable, not float64 with NaN
    assert df["orders"].isna().any()
    assert df["revenue"].dtype == "float64"
    assert df["email_opt_in"].dtype == bool
    assert df["tags"].dtype == object
    assert all(type(t) is list and all(isinstance(s, str) for s in t) for t in df["tags"])


@pytest.mark.parametrize("n", [0, 1, 2])
@pytest.mark.parametrize("kind", ["pandas", "polars"])
def test_tiny_frames(n: int, kind: str) -> None:
    df = sample_customers(n, kind=kind)  # type: ignore[call-overload]
    assert df.shape == (n, len(COLUMNS))
    assert tuple(df.columns) == COLUMNS
    if kind == "polars":
        assert dict(df.schema) == POLARS_SCHEMA
    else:
        assert df["orders"].dtype == pd.Int64Dtype()
        assert df["email_opt_in"].dtype == bool


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": -1}, "n must be"),
        ({"n": 1.5}, "n must be"),
        ({"n": True}, "n must be"),
        ({"seed": -3}, "seed must be"),
        ({"kind": "spark"}, "kind must be"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        sample_customers(**kwargs)
    with pytest.raises(ValueError):  # InvalidArgumentError is a ValueError too
        sample_customers(**kwargs)


# --- determinism ---------------------------------------------------------------------------
def test_same_seed_same_frame(frame: pl.DataFrame) -> None:
    assert sample_customers(N, seed=0, kind="polars").equals(frame)
    pd.testing.assert_frame_equal(sample_customers(800, seed=5), sample_customers(800, seed=5))


def test_different_seed_different_frame(frame: pl.DataFrame) -> None:
    other = sample_customers(N, seed=1, kind="polars")
    assert not other.equals(frame)
    for col in ("first_name", "email", "phone", "signup_date", "revenue"):
        assert (other[col] != frame[col]).sum() > N // 2, col
    assert other["crm_id"].equals(frame["crm_id"])  # ids are positional on purpose


def test_prefix_stable(frame: pl.DataFrame) -> None:
    # Row i never depends on n: a small sample is the head of a big one.
    for n in (1, 17, 2_500):
        assert sample_customers(n, seed=0, kind="polars").equals(frame.head(n)), n


@settings(max_examples=15, deadline=None)
@given(n=st.integers(0, 400), seed=st.integers(0, 2**63))
def test_prefix_and_schema_any_seed(n: int, seed: int) -> None:
    small = sample_customers(n, seed=seed, kind="polars")
    assert dict(small.schema) == POLARS_SCHEMA
    assert small.equals(sample_customers(n + 50, seed=seed, kind="polars").head(n))


def test_pandas_is_the_polars_frame_converted() -> None:
    polars_df = sample_customers(3_000, seed=2, kind="polars")
    pandas_df = sample_customers(3_000, seed=2, kind="pandas")
    back = pl.from_pandas(pandas_df)
    # pandas has no date dtype: signup_date comes back as midnight datetimes.
    assert back.equals(polars_df.with_columns(pl.col("signup_date").cast(pl.Datetime("ms"))))
    assert pandas_df["orders"].isna().sum() == polars_df["orders"].null_count() > 0
    assert pandas_df["email"].isna().sum() == polars_df["email"].null_count() > 0


def test_content_is_pinned() -> None:
    # Notebooks print counts from the sample: a change here is a change to them too. If it is
    # deliberate, update the digest and the notebooks' outputs in the same commit.
    df = sample_customers(2_000, seed=0, kind="polars")
    digest = hashlib.sha256(repr(df.rows()).encode()).hexdigest()
    assert df.row(1) == (
        "CRM-000002",
        "Ирина",
        "Павлова",
        "i.pavlova2@gmail.com",
        "8 (993) 477-15-35",
        "Sochi",
        df["signup_date"][1],
        None,
        0,
        0.0,
        ["mobile_app"],
        True,
    )
    assert str(df["signup_date"][1]) == "2020-10-07"
    assert digest == "5c2f522dc80fc5e05d118342f74bbd92d3f8c0ab6ad85c889a2c688ba47322f3"


# --- realism and dirt --------------------------------------------------------------------------
def test_crm_ids_unique(frame: pl.DataFrame) -> None:
    assert frame["crm_id"].is_unique().all()
    assert frame["crm_id"][0] == "CRM-000001"
    assert frame["crm_id"].str.contains(r"^CRM-\d{6,}$").all()


def test_names(frame: pl.DataFrame) -> None:
    cyrillic = frame["last_name"].str.contains("[А-Яа-яЁё]").mean()
    assert 0.27 < cyrillic < 0.33
    for col in ("first_name", "last_name"):
        padded = (frame[col] != frame[col].str.strip_chars()).mean()
        assert 0.01 < padded < 0.03, col
    # Russian surnames agree with gender; transliterations are ASCII.
    assert frame["last_name"].str.contains("ова$").any()
    emoji = frame.filter(frame["first_name"].str.contains(r"[^\p{L}\s]"))
    assert 2 <= emoji.height <= N // 1000
    assert sample_customers(5000, kind="polars")["first_name"].str.contains(r"[^\p{L}\s]").sum() >= 2


def test_email_dirt(frame: pl.DataFrame) -> None:
    email = frame["email"]
    valid = _valid_email(frame)
    missing = email.is_null().mean()
    malformed = (email.is_not_null() & ~valid).mean()
    changed = (valid & (email != email.str.strip_chars().str.to_lowercase())).mean()
    assert 0.015 < missing < 0.025
    assert 0.011 < malformed < 0.019
    # 3% padded/upper-cased, plus the half of the 1% duplicates whose case was changed.
    assert 0.029 < changed < 0.042
    assert (email.str.strip_chars() != email).any()  # padded with spaces
    assert (email.str.to_uppercase() == email).any()  # all upper case
    domains = email.filter(valid).str.to_lowercase().str.extract(r"@(.+?)\s*$").unique().sort().to_list()
    assert domains == ["example.com", "gmail.com", "mail.ru", "yandex.ru"]
    clean = email.filter(valid & (email == email.str.strip_chars().str.to_lowercase()))
    assert clean.str.contains(r"^[a-z0-9._]+@").all()  # ASCII local parts, Cyrillic names included


def test_duplicates_repeat_an_earlier_person(frame: pl.DataFrame) -> None:
    rows = frame.with_row_index("pos").filter(_valid_email(frame))
    rows = rows.with_columns(key=pl.col("email").str.strip_chars().str.to_lowercase())
    repeats = rows.filter(pl.col("key").is_duplicated() & ~pl.col("key").is_first_distinct())
    assert 0.008 < repeats.height / N < 0.012
    firsts = rows.filter(pl.col("key").is_first_distinct())
    pairs = repeats.join(firsts, on="key", suffix="_first")
    assert pairs.height == repeats.height
    assert (pairs["pos_first"] < pairs["pos"]).all()
    # The same person: same names and phone, a different CRM record, sometimes a different case.
    assert (pairs["first_name"] == pairs["first_name_first"]).all()
    assert (pairs["last_name"] == pairs["last_name_first"]).all()
    assert pairs["phone"].eq_missing(pairs["phone_first"]).all()
    assert (pairs["email"] != pairs["email_first"]).any()
    assert (pairs["email"] == pairs["email_first"]).any()


def test_phone_dirt_and_formats(frame: pl.DataFrame) -> None:
    phone = frame["phone"]
    assert 0.045 < phone.null_count() / N < 0.055
    present = phone.drop_nulls().to_list()
    invalid = sum(not _phone_is_valid(p) for p in present) / N
    assert 0.011 < invalid < 0.019  # every phone meant to be clean really is valid
    formats = {
        r"^\+79\d{9}$": 0.2,  # +79001234567
        r"^8 \(9\d\d\) \d{3}-\d\d-\d\d$": 0.1,  # 8 (900) 123-45-67
        r"^\+7 9\d\d \d{3}-\d\d-\d\d$": 0.1,  # +7 900 123-45-67
        r"^89\d{9}$": 0.08,  # 89001234567
        r"^\+44 7\d{3} \d{6}$": 0.02,  # +44 7911 123456
        r"^\+1 ": 0.005,
        r"^\+49 1\d\d \d{8}$": 0.005,
    }
    for pattern, at_least in formats.items():
        assert phone.str.contains(pattern).mean() > at_least, pattern
    for bad in ("12345", "+000000000000", "call me"):
        assert (phone == bad).any(), bad
    assert phone.str.replace_all(r"\D", "").str.len_chars().max() > 15  # an over-long one


def test_city(frame: pl.DataFrame) -> None:
    cities = set(frame["city"].drop_nulls().to_list())
    assert {"Moscow", "Москва", "Saint Petersburg", "Kazan", "Novosibirsk", "London", "Berlin"} <= cities
    assert 0.005 < frame["city"].null_count() / N < 0.015


def test_dates_orders_revenue(frame: pl.DataFrame) -> None:
    import datetime as dt

    assert frame["signup_date"].null_count() == 0
    assert frame["signup_date"].min() >= dt.date(2018, 1, 1)
    assert frame["signup_date"].max() <= dt.date(2025, 6, 30)
    orders, revenue, last = frame["orders"], frame["revenue"], frame["last_order_at"]
    assert 0.03 < orders.null_count() / N < 0.05
    assert orders.min() == 0 and orders.max() > 10
    assert revenue.null_count() > orders.null_count()
    # Cents, at full precision: rounding to 2 places changes nothing.
    assert (revenue.drop_nulls().round(2) == revenue.drop_nulls()).all()
    assert (revenue.filter(revenue > 0) % 1 != 0).mean() > 0.95
    assert ((orders == 0) == (revenue == 0)).drop_nulls().all()
    # A last order only for people who ordered, after their signup, in whole seconds.
    assert last.is_null().equals(orders.is_null() | (orders == 0))
    with_last = frame.filter(last.is_not_null())
    assert (with_last["last_order_at"] >= with_last["signup_date"].cast(pl.Datetime("us"))).all()
    assert (with_last["last_order_at"].dt.microsecond() == 0).all()
    assert with_last["last_order_at"].max() < dt.datetime(2026, 1, 1)


def test_tags_and_opt_in(frame: pl.DataFrame) -> None:
    tags = frame["tags"]
    assert tags.null_count() == 0
    assert 0.25 < (tags.list.len() == 0).mean() < 0.33
    vocabulary = set(tags.explode().drop_nulls().unique().to_list())
    assert {"vip", "newsletter"} <= vocabulary
    assert (tags.list.len() >= 2).any()
    assert frame["email_opt_in"].null_count() == 0
    assert 0.77 < frame["email_opt_in"].mean() < 0.83


# --- scale -------------------------------------------------------------------------------------
def test_a_million_rows_are_built_whole() -> None:
    """A million-row sample is complete and numbered to the end (its speed is bench's business:
    bench/plan_throughput.py builds the same frame and prints the time next to its baseline)."""
    df = sample_customers(1_000_000, kind="polars")
    assert df.shape == (1_000_000, len(COLUMNS))
    assert df["crm_id"][-1] == "CRM-1000000"
    assert df["crm_id"].n_unique() == 1_000_000
