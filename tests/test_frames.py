"""toolkit.core.frames: any frame in, polars inside, the caller's kind back out."""

from __future__ import annotations

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from toolkit.core.frames import SourceFrame
from toolkit.errors import InvalidArgumentError


def test_pandas_in_pandas_out() -> None:
    df = pd.DataFrame({"email": ["a@x.io", "b@x.io", "c@x.io"]}, index=[10, 20, 30])
    source = SourceFrame.wrap(df)
    assert source.kind == "pandas" and source.columns == ["email"]
    assert source.polars.get_column("email").to_list() == ["a@x.io", "b@x.io", "c@x.io"]
    taken = source.take([2, 0])
    assert isinstance(taken, pd.DataFrame)
    assert taken["email"].tolist() == ["c@x.io", "a@x.io"]  # positions, not index labels
    back = source.back(pl.DataFrame({"n": [1, 2]}))
    assert isinstance(back, pd.DataFrame) and back["n"].tolist() == [1, 2]


def test_pandas_with_columns_ignores_the_callers_index() -> None:
    df = pd.DataFrame({"email": ["a@x.io", "b@x.io"]}, index=[7, 3])
    source = SourceFrame.wrap(df)
    out = source.with_columns(source.take([1, 0]), pl.DataFrame({"rule": ["r1", "r0"]}))
    assert out[["email", "rule"]].values.tolist() == [["b@x.io", "r1"], ["a@x.io", "r0"]]


def test_polars_eager_and_lazy() -> None:
    df = pl.DataFrame({"email": ["a@x.io", "b@x.io"]})
    for frame in (df, df.lazy()):
        source = SourceFrame.wrap(frame)
        assert source.kind == "polars"
        assert isinstance(source.native, pl.DataFrame)  # lazy frames are collected once
        assert source.take([1]).to_dicts() == [{"email": "b@x.io"}]
        extra = pl.DataFrame({"rule": ["x"]})
        assert source.with_columns(source.take([1]), extra).columns == ["email", "rule"]
    assert SourceFrame.wrap(source) is source


def test_pyarrow_table() -> None:
    source = SourceFrame.wrap(pa.table({"email": ["a@x.io"]}))
    assert source.kind == "pyarrow"
    assert isinstance(source.back(pl.DataFrame({"n": [1]})), pa.Table)


def test_not_a_frame() -> None:
    with pytest.raises(InvalidArgumentError, match="expected a dataframe"):
        SourceFrame.wrap([{"email": "a@x.io"}])


def test_a_mixed_object_column_is_kept_as_given_for_the_plan_to_coerce() -> None:
    """A pandas object column of numbers and text no longer stops the frame: its values are kept."""
    df = pd.DataFrame({"id": pd.Series([1, "two", 3.5], dtype=object), "n": [1, 2, 3]})
    source = SourceFrame.wrap(df)
    assert source.mixed == {"id": [1, "two", 3.5]}
    assert source.polars.schema == {"id": pl.String, "n": pl.Int64}
    assert source.polars["id"].to_list() == ["1", "two", "3.5"]


def test_duplicate_column_names_are_named_before_anything_is_read() -> None:
    """Two pandas columns with one name raise a ToolkitError naming it, not narwhals' DuplicateError."""
    df = pd.DataFrame([[1, "a@x.io", 2]], columns=["n", "email", "n"])
    with pytest.raises(InvalidArgumentError, match=r"more than one column named 'n' at positions \[0, 2\]"):
        SourceFrame.wrap(df)
