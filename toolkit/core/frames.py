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

from collections.abc import Sequence
from dataclasses import dataclass
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

    @classmethod
    def wrap(cls, frame: Any) -> SourceFrame:
        """Accept a pandas / polars / pyarrow / ... frame, eager or lazy."""
        if isinstance(frame, SourceFrame):
            return frame
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
        try:
            as_polars = wrapped.to_polars()
        except Exception as exc:  # pyarrow raises many kinds on mixed object columns
            raise InvalidArgumentError(
                f"the {kind} frame could not be read column by column ({exc}); a column probably "
                "mixes types (e.g. numbers and text): cast it, e.g. df['col'] = df['col'].astype(str)"
            ) from exc
        return cls(native=wrapped.to_native(), polars=as_polars, kind=kind)

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
