"""The narwhals bridge: any supported frame in, polars inside, the caller's kind out.

The toolkit validates and encodes with polars expressions (one vectorized code path);
narwhals accepts whatever the analyst holds (pandas, polars eager or lazy, pyarrow, ...)
and gives results back in that same kind.

Example:
    >>> import pandas as pd
    >>> source = SourceFrame.wrap(pd.DataFrame({"email": ["a@x.io", "b@x.io"]}))
    >>> source.kind, source.polars.height
    ('pandas', 2)
    >>> type(source.back(source.polars)).__name__
    'DataFrame'
    >>> type(source.take([1])).__module__.split(".")[0]
    'pandas'
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import narwhals.stable.v2 as nw
import polars as pl

from toolkit.errors import InvalidArgumentError

__all__ = ["SourceFrame"]


@dataclass(frozen=True, eq=False)
class SourceFrame:
    """A segment as given (collected if it was lazy) and its polars view."""

    native: Any
    """The caller's frame, eager, of the caller's kind."""
    polars: pl.DataFrame
    """The same rows as a polars frame: what validation and encoding work on."""
    kind: str
    mixed: dict[str, list[Any]] = field(default_factory=dict)
    """Columns whose values mix types (pandas ``object``: ``[1, "x"]``): their values as given.
    ``polars`` holds them as text; a plan coerces them per value, for the field they fill."""

    @classmethod
    def wrap(cls, frame: Any) -> SourceFrame:
        """Accept a pandas / polars / pyarrow / ... frame, eager or lazy."""
        if isinstance(frame, SourceFrame):
            return frame
        _check_names(frame)
        try:
            wrapped = nw.from_native(frame)
        except TypeError as exc:
            raise InvalidArgumentError(
                f"expected a dataframe (pandas, polars, pyarrow, ...), got {type(frame).__name__}; "
                "build one first, e.g. pandas.DataFrame(records)"
            ) from exc
        if isinstance(wrapped, nw.LazyFrame):
            wrapped = wrapped.collect()
        kind = str(wrapped.implementation).lower()
        mixed: dict[str, list[Any]] = {}
        try:
            as_polars = wrapped.to_polars()
        except Exception:  # pyarrow raises many kinds on mixed object columns: go column by column
            columns = []
            for name in wrapped.columns:
                try:
                    columns.append(wrapped.select(name).to_polars().to_series())
                except Exception:
                    mixed[name] = wrapped.get_column(name).to_list()
                    columns.append(pl.Series(name, [_shown(v) for v in mixed[name]], dtype=pl.String))
            as_polars = pl.DataFrame(columns)
        return cls(native=wrapped.to_native(), polars=as_polars, kind=kind, mixed=mixed)

    @property
    def columns(self) -> list[str]:
        return list(self.polars.columns)

    def take(self, positions: Sequence[int]) -> Any:
        """The rows at ``positions`` (0-based), of the caller's kind, with their original columns."""
        wrapped = nw.from_native(self.native, eager_only=True)
        return wrapped[list(positions)].to_native()

    def back(self, frame: pl.DataFrame) -> Any:
        """A polars frame made by the toolkit, converted to the caller's kind."""
        if self.kind == "polars":
            return frame
        backend = nw.from_native(self.native, eager_only=True).implementation
        return nw.from_arrow(frame.to_arrow(), backend=backend).to_native()

    def with_columns(self, frame: Any, extra: pl.DataFrame) -> Any:
        """``frame`` (caller's kind) with the columns of ``extra`` appended, row for row."""
        wrapped = nw.from_native(frame, eager_only=True)
        extra_native = nw.from_native(self.back(extra), eager_only=True)
        if self.kind == "pandas":
            # pandas aligns on the index: give both the same fresh one
            left = wrapped.to_native().reset_index(drop=True)
            right = extra_native.to_native().reset_index(drop=True)
            return nw.concat(
                [nw.from_native(left, eager_only=True), nw.from_native(right, eager_only=True)],
                how="horizontal",
            ).to_native()
        return nw.concat([wrapped, extra_native], how="horizontal").to_native()


def _check_names(frame: Any) -> None:
    """Column names must be unique text: say which are not, before anything reads the frame."""
    module = type(frame).__module__.split(".")[0]
    if module == "pyarrow":
        names = list(getattr(frame, "column_names", []))
    elif module in ("pandas", "modin", "cudf"):
        names = list(frame.columns)
    else:  # polars and the others refuse such frames themselves
        return
    repeated = [n for n, count in Counter(names).items() if count > 1]
    if repeated:
        where = "; ".join(
            f"{n!r} at positions {[i for i, m in enumerate(names) if m == n]}" for n in repeated
        )
        raise InvalidArgumentError(
            f"the frame has more than one column named {where}; give each column its own name, "
            "e.g. df.columns = [...] (pandas) or df.rename(...)"
        )
    odd = [n for n in names if not isinstance(n, str)]
    if odd:
        raise InvalidArgumentError(
            f"column names must be text; the frame has {odd[0]!r} ({type(odd[0]).__name__}): name the columns, "
            "e.g. df.columns = ['email', 'name', ...], or read the file with a header row"
        )


def _shown(value: Any) -> str | None:
    """A mixed column's value as text, for display only (a plan coerces the real values)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    return (
        value
        if isinstance(value, str)
        else repr(value)
        if isinstance(value, (dict, list, tuple, set, bytes))
        else str(value)
    )
