"""Streamed plans at any size: memory independent of rows, throughput near the eager plan's.

Parquet datasets of 10M and 30M rows (``sample_customers`` chunks with distinct keys, written
once into ``bench/.cache``, gitignored) are planned and every body encoded from
``pl.scan_parquet`` (the first full pass of a streamed plan encodes every body and keeps only
its digest). Each run is a fresh process: its peak RSS (``ru_maxrss``) minus the RSS once the
interpreter and the toolkit are imported. Also 1M rows eager (the reference rows/s), and 1M
rows from DuckDB and from Spark ``local[2]`` (driver process's peak RSS; Spark's JVM is apart).

Targets: streamed peak RSS at most 1 GB over the baseline at both sizes; streamed rows/s at
least 0.7x the eager plan's at 1M.

Usage::

    python bench/plan_scale.py                       # 1M eager, 10M + 30M parquet, DuckDB, Spark
    python bench/plan_scale.py --sizes 10000000 --no-spark
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from plan_throughput import TRIGGER_ID, sample_mapping  # noqa: E402  (the benches' one mapping)

CACHE = ROOT / "bench" / ".cache"
CHUNK = 1_000_000
MAX_PEAK_OVER_BASE = 1e9
MIN_STREAM_VS_EAGER = 0.7


def dataset(rows: int) -> Path:
    """``rows`` rows as parquet files of 1M rows each, distinct emails and crm ids; made once."""
    import polars as pl

    from toolkit.core.sample import sample_customers

    folder = CACHE / f"customers-{rows}"
    done = folder / "_complete"
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for part in range(-(-rows // CHUNK)):
        n = min(CHUNK, rows - part * CHUNK)
        frame = sample_customers(n, seed=part, kind="polars").with_columns(
            # a prefix unique to the row keeps every key distinct across chunks, dirt and all
            email=pl.format("{}.{}", pl.int_range(part * CHUNK, part * CHUNK + n), pl.col("email")),
            crm_id=pl.format("CRM-{}", pl.int_range(part * CHUNK, part * CHUNK + n)),
        )
        frame.write_parquet(folder / f"part-{part:04d}.parquet")
    done.touch()
    return folder


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(kind: str, rows: int) -> dict[str, Any]:
    import polars as pl

    import toolkit

    mapping, trigger = sample_mapping(), toolkit.Trigger(TRIGGER_ID)
    source: Any
    spark = None
    if kind == "eager":
        source = pl.read_parquet(dataset(rows))
    elif kind == "parquet":
        source = pl.scan_parquet(dataset(rows) / "*.parquet")
    elif kind == "duckdb":
        import duckdb

        glob = dataset(rows) / "*.parquet"
        source = duckdb.connect().sql(
            f"SELECT * EXCLUDE (filename, file_row_number) FROM read_parquet('{glob}', filename=true, file_row_number=true) ORDER BY filename, file_row_number"
        )
    else:
        from pyspark.sql import SparkSession

        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        spark = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")
        source = spark.read.parquet(str(dataset(rows)))
    base = _rss()
    start = time.perf_counter()
    p = toolkit.plan(source, mapping, trigger)
    if kind == "eager":
        nbytes = sum(len(b.body) for b in p.batches)  # the eager plan encodes bodies when asked
    else:
        nbytes = sum(b.nbytes for b in p.batches)  # already encoded (and digested) by plan()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if spark is not None:
        spark.stop()
    return {"kind": kind, "rows": rows, "seconds": seconds, "peak_over_base": peak - base,
            "valid": p.n_valid, "batches": len(p.batches), "bytes": nbytes}  # fmt: skip


def run(kind: str, rows: int) -> dict[str, Any]:
    dataset(rows)  # made in the parent, outside any measure
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(rows)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"{kind} {rows} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000_000, 30_000_000])
    parser.add_argument("--no-spark", action="store_true")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return 0
    runs = [("eager", 1_000_000), ("parquet", 1_000_000)] + [("parquet", n) for n in args.sizes]
    runs += [("duckdb", 1_000_000)] + ([] if args.no_spark else [("spark", 1_000_000)])
    print(
        f"plan_scale: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; plan + every body, fresh process each"
    )
    head = f"{'source':<10}{'rows':>12}{'seconds':>9}{'rows/s':>11}{'peak MB over base':>19}{'batches':>9}"
    print(head + "\n" + "-" * len(head))
    results = []
    for kind, rows in runs:
        print(f"running {kind} {rows:,} ...", file=sys.stderr, flush=True)
        r = run(kind, rows)
        results.append(r)
        print(f"{kind:<10}{rows:>12,}{r['seconds']:>9.1f}{rows / r['seconds']:>11,.0f}"
              f"{r['peak_over_base'] / 1e6:>19,.0f}{r['batches']:>9,}", flush=True)  # fmt: skip
    eager = rows_per_s = results[0]["rows"] / results[0]["seconds"]
    ok = True
    print("targets")
    for r in results:
        if r["kind"] != "parquet" or r["rows"] < 10_000_000:
            continue
        ratio = (r["rows"] / r["seconds"]) / eager
        mem_ok, speed_ok = r["peak_over_base"] <= MAX_PEAK_OVER_BASE, ratio >= MIN_STREAM_VS_EAGER
        ok &= mem_ok and speed_ok
        print(f"  {r['rows']:>11,} rows: peak {r['peak_over_base'] / 1e6:,.0f} MB over base (<= 1,000) "
              f"{'PASS' if mem_ok else 'FAIL'}; {ratio:.2f}x eager rows/s {rows_per_s:,.0f} (>= 0.7) "
              f"{'PASS' if speed_ok else 'FAIL'}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
