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

from collections.abc import Iterator
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


def _pack(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """On an executor: each record batch of a partition becomes one row holding its Arrow IPC bytes."""
    for batch in batches:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        yield pa.RecordBatch.from_pydict({_PACKED: [sink.getvalue().to_pybytes()]})


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
        packed = frame.mapInArrow(_pack, f"{_PACKED} binary")
        iterator = packed.toLocalIterator(prefetchPartitions=True)
    finally:
        if before is None:
            session.conf.unset(key)
        else:
            session.conf.set(key, before)
    for row in iterator:
        yield from pa.ipc.open_stream(row[_PACKED]).read_all().to_batches()


def arrow_schema(frame: Any) -> pa.Table:
    """An empty Arrow table with the frame's columns and types (Spark reads no row)."""
    return frame.limit(0).toArrow()
