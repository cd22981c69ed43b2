"""Segments too large to hold: read again and again, a window of rows at a time.

A :class:`Windows` wraps a lazy source (a polars ``LazyFrame``, a path or glob of parquet
files, a DuckDB relation, a PySpark ``DataFrame``) and yields it as polars frames of about
``rows`` rows, in the source's order, every time it is read. Nothing here keeps the rows:
a streamed plan reads its source once to plan it, and again when the bodies are sent.

Example:
    >>> import polars as pl
    >>> lazy = pl.LazyFrame({"email": [f"u{i}@x.io" for i in range(5)]})
    >>> windows = Windows.of(lazy, rows=2)
    >>> [w.height for w in windows.read()], windows.columns
    ([2, 2, 1], ['email'])
    >>> is_lazy_source(lazy), is_lazy_source(pl.DataFrame())
    (True, False)
"""

from __future__ import annotations

import glob as globbing
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import polars as pl
import pyarrow as pa

from toolkit.errors import InvalidArgumentError

__all__ = ["WINDOW_ROWS", "Windows", "ahead", "is_lazy_source"]

#: Rows validated and encoded together in a streamed plan: large enough that polars' parallel
#: queries pay off, small enough that a window of a wide segment stays a few hundred MB.
WINDOW_ROWS = 100_000


def _module(source: object) -> str:
    return type(source).__module__.split(".")[0]


def is_lazy_source(source: object) -> bool:
    """True for the sources a plan streams: LazyFrame, parquet path/glob, DuckDB relation, Spark.

    Example:
        >>> is_lazy_source("exports/*.parquet"), is_lazy_source([1, 2])
        (True, False)
    """
    if isinstance(source, pl.LazyFrame | Path):
        return True
    if isinstance(source, str):
        return True  # a path or glob; Windows.of says what is wrong with it
    module = _module(source)
    return (module == "duckdb" and hasattr(source, "fetch_arrow_table")) or (
        module == "pyspark" and hasattr(source, "mapInArrow")
    )


@dataclass(frozen=True)
class Windows:
    """A re-readable segment: ``read()`` yields it window by window, ``columns`` names its columns."""

    columns: list[str]
    kind: str
    """``"polars"``, ``"parquet"``, ``"duckdb"`` or ``"spark"``: where the rows come from."""
    rows: int
    source: Any
    """The source as given."""
    _batches: Callable[[list[str] | None], Iterable[pl.DataFrame]]
    _schema: Callable[[], pl.Schema]

    @classmethod
    def of(cls, source: Any, *, rows: int | None = None) -> Windows:
        """Wrap a lazy source (see :func:`is_lazy_source`); ``rows``: a window's rows (``WINDOW_ROWS``)."""
        rows = WINDOW_ROWS if rows is None else rows
        if isinstance(source, str | Path):
            return cls._lazy(pl.scan_parquet(_parquet_files(source)), "parquet", rows, source)
        if isinstance(source, pl.LazyFrame):
            return cls._lazy(source, "polars", rows, source)
        module = _module(source)
        if module == "duckdb":
            return cls(
                list(source.columns),
                "duckdb",
                rows,
                source,
                lambda cols: _duckdb_batches(source, cols, rows),
                lambda: _polars(_duckdb_call(source.limit(0), "to_arrow_table", "fetch_arrow_table")).schema,
            )
        if module == "pyspark":
            from toolkit.core.spark import arrow_batches, arrow_schema  # pyspark is an extra

            def spark(cols: list[str] | None) -> Iterator[pl.DataFrame]:
                for batch in arrow_batches(source, cols, rows):
                    yield _polars(batch)

            return cls(
                list(source.columns),
                "spark",
                rows,
                source,
                spark,
                lambda: _polars(arrow_schema(source)).schema,
            )
        raise InvalidArgumentError(f"expected a lazy source, got {type(source).__name__}")

    @classmethod
    def _lazy(cls, frame: pl.LazyFrame, kind: str, rows: int, source: Any) -> Windows:
        try:
            columns = frame.collect_schema().names()
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise InvalidArgumentError(f"cannot read the segment's columns: {exc}") from exc

        def batches(cols: list[str] | None) -> Iterator[pl.DataFrame]:
            query = frame if cols is None else frame.select(cols)
            if _slices_read_only_them(query):
                yield from _slices(query, rows)
            else:
                yield from query.collect_batches(chunk_size=rows, maintain_order=True, lazy=True)

        return cls(columns, kind, rows, source, batches, frame.collect_schema)

    def schema(self) -> pl.Schema:
        """The columns' polars types (no row is read)."""
        return self._schema()

    def read(self, columns: list[str] | None = None) -> Iterator[pl.DataFrame]:
        """The segment (or only ``columns``) as polars frames of ``rows`` rows (the last one fewer)."""
        pending: list[pl.DataFrame] = []
        held = 0
        try:
            for batch in self._batches(columns):
                while batch.height:
                    take = batch.head(self.rows - held)
                    batch = batch.slice(take.height)
                    pending.append(take)
                    held += take.height
                    if held == self.rows:
                        yield pl.concat(pending, rechunk=False) if len(pending) > 1 else pending[0]
                        pending, held = [], 0
        except pl.exceptions.PolarsError as exc:
            raise InvalidArgumentError(f"reading the segment ({self.kind}) failed: {exc}") from exc
        if held:
            yield pl.concat(pending, rechunk=False) if len(pending) > 1 else pending[0]


#: Plan nodes that mean a slice of the query is not a slice of the files read (see below).
_WHOLE_QUERY_NODES = ("SLICE[", "SORT", "JOIN", "UNION", "UNIQUE", "AGGREGATE", "CACHE", "GROUP", "DF [")


def _slices_read_only_them(query: pl.LazyFrame) -> bool:
    """True when ``query.slice(offset, n)`` reads only those rows of its parquet files.

    Why: ``collect_batches`` runs the query ahead of a slow reader, and what it buffers grows
    with the segment (1.6 GB at 10M rows, 1.9 GB at 30M); a slice holds only its own rows.
    It is cheap only when polars pushes the slice into the parquet scan (a plain scan, column
    selections, row-wise columns): a filter, a sort or a join would run over the whole segment
    for every slice, so those queries keep ``collect_batches``.
    """
    try:
        shown = query.slice(1, 1).explain()
    except pl.exceptions.PolarsError:
        return False
    return (
        shown.count("SCAN") == 1
        and "Parquet SCAN" in shown
        and "SLICE: Positive { offset: 1, len: 1 }" in shown
        and not any(node in shown for node in _WHOLE_QUERY_NODES)
    )


def _slices(query: pl.LazyFrame, rows: int) -> Iterator[pl.DataFrame]:
    """The query's rows, ``rows`` at a time, each slice read from the files on its own."""
    offset = 0
    while True:
        window = query.slice(offset, rows).collect()
        if window.height:
            yield window
        if window.height < rows:
            return
        offset += rows


T = TypeVar("T")


def ahead(items: Callable[[], Iterator[T]], *, name: str = "toolkit-ahead") -> Iterator[T]:
    """``items()``'s items, made on a thread of their own one item ahead of the caller.

    Why: a streamed plan reads and validates a window (polars queries, which let go of the
    GIL) while the caller encodes, cuts and digests the one before; done one after the other,
    each waits for the other and a core idles. The thread makes the next item as soon as the
    caller takes one, never more: two items at most are alive (the caller's and the next),
    so memory stays that of two windows. Its exception is raised here, in the caller, and
    the thread stops as soon as the caller does (a generator closed or dropped half-way):
    no process-wide pool, nothing left running.

    Example:
        >>> list(ahead(lambda: iter(range(4))))
        [0, 1, 2, 3]
        >>> def broken():
        ...     yield 1
        ...     raise ValueError("row 2 is wrong")
        >>> made = ahead(broken)
        >>> next(made), next(made, None)
        Traceback (most recent call last):
        ...
        ValueError: row 2 is wrong
    """
    handed: queue.Queue[tuple[str, Any]] = queue.Queue()
    permits = threading.Semaphore(1)  # items the thread may make before the caller takes one
    stop = threading.Event()

    def work() -> None:
        try:
            made = items()
            try:
                while True:
                    permits.acquire()
                    if stop.is_set():
                        return
                    item = next(made, _DONE)
                    if item is _DONE:
                        break
                    handed.put(("item", item))
                    del item  # the caller holds it now; the thread holds nothing while it waits
            finally:
                # before the caller hears of the end: a source may allow one reader at a time
                # (a DuckDB connection holds one open result), and the caller may read it again
                close = getattr(made, "close", None)
                if close is not None:
                    close()
            handed.put(("done", None))
        except BaseException as exc:  # raised again in the caller's thread
            handed.put(("error", exc))

    worker = threading.Thread(target=work, name=name, daemon=True)
    worker.start()
    try:
        while True:
            kind, item = handed.get()
            if kind == "done":
                return
            if kind == "error":
                raise item
            permits.release()  # the caller has it: make the next one meanwhile
            yield item
            del item
    finally:
        stop.set()
        permits.release()  # wake the thread if it waits, so it sees the stop and ends
        if not sys.is_finalizing():  # at exit a daemon thread is frozen: joining it would hang
            worker.join()  # the source is let go (closed) before the caller reads it again


_DONE = object()


def _polars(batch: pa.RecordBatch | pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _parquet_files(source: str | Path) -> list[str]:
    """The parquet files a path (a file, a folder of files) or a glob names, sorted: their order is the rows'."""
    text = str(source)
    path = Path(text)
    if path.is_dir():
        files = sorted(str(p) for p in path.rglob("*.parquet"))
    elif any(ch in text for ch in "*?["):
        files = sorted(globbing.glob(text, recursive=True))
    else:
        files = [text] if path.exists() else []
    if not files:
        raise InvalidArgumentError(
            f"no parquet file at {text!r}: give a parquet file, a folder of them or a glob such as "
            "'exports/*.parquet' (other formats: toolkit.read_segment(path), or pl.scan_csv(...))"
        )
    odd = [f for f in files if not f.endswith(".parquet")]
    if odd:
        raise InvalidArgumentError(
            f"{odd[0]!r} is not a .parquet file: plan() streams parquet files; read other formats with "
            "toolkit.read_segment(path), or pass pl.scan_csv(...)"
        )
    return files


def _duckdb_batches(relation: Any, columns: list[str] | None, rows: int) -> Iterator[pl.DataFrame]:
    """The relation's rows as Arrow record batches: DuckDB runs the query again on each read."""
    if columns is not None:
        relation = relation.select(*columns)
    reader = _duckdb_call(relation, "to_arrow_reader", "fetch_arrow_reader", rows)
    for batch in reader:
        yield _polars(batch)


def _duckdb_call(relation: Any, name: str, older: str, *args: Any) -> Any:
    """A relation's method by its DuckDB 1.4+ name, or the older one (deprecated since)."""
    return getattr(relation, name if hasattr(relation, name) else older)(*args)
