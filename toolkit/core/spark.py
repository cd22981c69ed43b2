"""The Spark bridge: a PySpark ``DataFrame`` reaches the toolkit partition by partition, as Arrow.

The segment's query runs on Spark. Each partition's rows are turned into Arrow record
batches on the executors (``mapInArrow``) and packed as Arrow IPC bytes; the driver pulls
them one partition at a time (``toLocalIterator``), so it holds a partition, never the
whole segment (no ``collect()``). Needs the ``toolkit[spark]`` extra (pyspark and Java 17).

Example (needs pyspark and Java, so not run as a doctest):
    >>> from pyspark.sql import SparkSession                              # doctest: +SKIP
    >>> spark = SparkSession.builder.master("local[2]").getOrCreate()     # doctest: +SKIP
    >>> frame = spark.sql("SELECT 'a@x.io' AS email")                     # doctest: +SKIP
    >>> [b.num_rows for b in arrow_batches(frame, None, 10_000)]         # doctest: +SKIP
    [1]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

try:
    from pyspark.sql import DataFrame
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ModuleNotFoundError(
        "planning a Spark DataFrame needs pyspark: pip install 'toolkit[spark]' (and Java 17)",
        name="pyspark",
    ) from exc

__all__ = ["arrow_batches", "arrow_schema"]

_PACKED = "__tk_arrow_ipc"


def arrow_batches(frame: Any, columns: list[str] | None, rows: int) -> Iterator[pa.RecordBatch]:
    """The rows of a Spark ``DataFrame`` (only ``columns`` if given), in order, as Arrow batches.

    ``rows`` caps a batch's rows (Spark's ``arrowMaxRecordsPerBatch`` for this query): the
    driver holds at most the partitions being fetched.
    """
    if not isinstance(frame, DataFrame):
        raise TypeError(f"expected a pyspark DataFrame, got {type(frame).__name__}")
    if columns is not None:
        frame = frame.select(*columns)
    session = frame.sparkSession
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    before = session.conf.get(key, None)
    session.conf.set(key, str(rows))
    try:
        packed = frame.mapInArrow(_packer(), f"{_PACKED} binary")
        iterator = packed.toLocalIterator(prefetchPartitions=True)
    finally:
        if before is None:
            session.conf.unset(key)
        else:
            session.conf.set(key, before)
    for row in iterator:
        yield from pa.ipc.open_stream(row[_PACKED]).read_all().to_batches()


def _packer() -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """What the executors run: each record batch of a partition becomes one row holding its
    Arrow IPC bytes. Made by a function so that Spark ships it by value: the executors need
    pyarrow, never the toolkit."""

    def pack(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as arrow

        for batch in batches:
            sink = arrow.BufferOutputStream()
            with arrow.ipc.new_stream(sink, batch.schema) as writer:
                writer.write_batch(batch)
            yield arrow.RecordBatch.from_pydict({"__tk_arrow_ipc": [sink.getvalue().to_pybytes()]})

    return pack


def arrow_schema(frame: Any) -> pa.Table:
    """An empty Arrow table with the frame's columns and types (Spark reads no row)."""
    return frame.limit(0).toArrow()
