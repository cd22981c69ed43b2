"""What a type checker infers for the frame-returning API, as a user's code would see it.

Never run: ``tests/test_types.py`` has mypy check this file, so each ``assert_type`` fails the
suite when an overload on ``kind=`` stops giving the concrete frame type.
"""

from __future__ import annotations

from typing import Literal, assert_type

import pandas as pd
import polars as pl

from toolkit import Client, read_segment, sample_customers


def frames_by_kind(client: Client, chosen: Literal["pandas", "polars"]) -> None:
    """The frame kind a call's ``kind=`` names is the type it returns; a kind known only at
    run time gives the union."""
    assert_type(sample_customers(3), pd.DataFrame)
    assert_type(sample_customers(3, kind="pandas"), pd.DataFrame)
    assert_type(sample_customers(3, kind="polars"), pl.DataFrame)
    assert_type(sample_customers(3, 0, "polars"), pl.DataFrame)
    assert_type(sample_customers(3, kind=chosen), pd.DataFrame | pl.DataFrame)

    assert_type(read_segment("segment.csv"), pd.DataFrame)
    assert_type(read_segment(b"email\na@x.io\n", kind="polars"), pl.DataFrame)
    assert_type(read_segment("segment.csv", kind=chosen), pd.DataFrame | pl.DataFrame)

    assert_type(client.history(), pd.DataFrame)
    assert_type(client.history(kind="polars"), pl.DataFrame)
    assert_type(client.history(kind=chosen), pd.DataFrame | pl.DataFrame)
