"""Spark for real: a PySpark DataFrame in local mode is planned partition by partition (Arrow)
into the polars path's bodies, and launched at the sandbox, each profile once."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from typing import Any

import polars as pl
import pytest
import requests

from toolkit import Mapping, Trigger, plan
from toolkit.core.plan import StreamedPlan
from toolkit.send.client import Client

pytestmark = [
    pytest.mark.spark,
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("java") is None and os.environ.get("CI") != "true",
        reason="Spark needs Java 17 (make test installs openjdk-17-jre-headless; CI=true makes this a failure)",
    ),
]

ROWS = 200_000


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local[2] SparkSession for the whole test session (starting Spark takes seconds)."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the Python workers: this venv's (pyarrow)

    session = (
        SparkSession.builder.master("local[2]")
        .appName("toolkit-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", "1g")
        .config("spark.pyspark.python", sys.executable)  # the workers import toolkit: this venv's python
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def test_a_spark_segment_is_planned_like_polars_and_each_profile_sent_once(
    spark: Any, sb: Any, make_client: Callable[..., Client]
) -> None:
    """200k rows built in Spark SQL: bodies equal the polars plan's; launched, each profile once."""
    query = f"""
        SELECT concat('spark', id, '@big.test') AS email,
               CASE WHEN id % 1000 = 7 THEN 'not-an-email' ELSE concat('spark', id, '@big.test') END AS contact,
               concat('N', id % 97) AS name,
               CAST(id % 5 AS DOUBLE) AS orders
        FROM range({ROWS})
        ORDER BY id
    """
    frame = spark.sql(query)
    mapping = Mapping({"contact": "email", "name": "_fname", "orders": "orders"})
    streamed = plan(frame, mapping, Trigger(96))
    assert isinstance(streamed, StreamedPlan)
    ids = pl.int_range(ROWS, eager=True)
    polars_frame = pl.DataFrame(
        {
            "email": "spark" + ids.cast(pl.String) + "@big.test",
            "contact": pl.Series(
                [f"spark{i}@big.test" if i % 1000 != 7 else "not-an-email" for i in range(ROWS)]
            ),
            "name": "N" + (ids % 97).cast(pl.String),
            "orders": (ids % 5).cast(pl.Float64),
        }
    )
    eager = plan(polars_frame, mapping, Trigger(96))
    assert streamed.n_rows == ROWS and streamed.rejected_by_rule() == {"invalid_email": ROWS // 1000}
    assert streamed.fingerprint == eager.fingerprint
    assert streamed.batches[0].body == eager.batches[0].body  # orders sent as whole numbers, as polars did

    client = make_client(sb)
    launch = client.launch(streamed, progress=False).wait(progress=False)
    assert launch.summary()["imported"] == ROWS - ROWS // 1000
    headers = {"Authorization": f"Bearer {sb.token}"}
    sends = requests.get(f"{sb.url}/_sandbox/sends", headers=headers, timeout=60).json()
    profiles = {s["profile_id"] for s in sends}
    assert len(sends) == len(profiles) == ROWS - ROWS // 1000  # nobody twice, nobody lost
    client.close()
