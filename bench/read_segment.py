"""How fast read_segment() reads an Excel-style cp1251 ';' CSV, next to polars reading UTF-8.

The file: N rows (default 1,000,000) of a CRM segment as Excel on a Russian Windows exports it:
cp1251, ``;`` between fields, decimal commas, ``dd.mm.yyyy`` dates, ids with leading zeros,
phones with spaces, Cyrillic names and cities. Side by side, in one run, best of K:

(a) ``pl.read_csv`` of the same data already in UTF-8, told the separator: the floor (it
    cannot read cp1251 at all, nor find the separator, nor keep ids as text).
(b) ``toolkit.read_segment(path, kind="polars")`` of the cp1251 file: encoding and separator
    detected, every column typed, identifiers kept as text.
(c) the same, of the UTF-8 file.

Target: (b) at most 2x (a). Both files are written to a temporary folder first (not timed).
Each reader runs in the same process after one warm-up call, so imports are not counted, and
the three take turns, so that a busy moment of a shared machine falls on all of them alike.

Usage::

    python bench/read_segment.py                 # 1,000,000 rows, best of 3
    python bench/read_segment.py --rows 100000 --repeat 1

Exit status: 0 when the target is met, 1 when it is missed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

# Benchmark this checkout's toolkit, not whichever copy happens to be installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolkit.io.segments import load_segment

TARGET = 2.0
FIRST = ["Анна", "Иван", "Пётр", "Мария", "Ольга", "Сергей", "Дмитрий", "Елена", "Юлия", "Артём"]
LAST = ["Иванова", "Петров", "Смирнова", "Кузнецов", "Попова", "Соколов", "Лебедева", "Козлов"]
CITIES = ["Москва", "Санкт-Петербург", "Казань", "Новосибирск", "Екатеринбург", "Нижний Новгород"]


def segment_text(rows: int, seed: int = 0) -> str:
    """The segment as Excel writes it: ';' separated, decimal commas, dd.mm.yyyy dates."""
    rng = np.random.default_rng(seed)
    day = (np.datetime64("2015-01-01") + rng.integers(0, 3000, rows)).astype("datetime64[D]")
    frame = pl.DataFrame(
        {
            "crm_id": pl.Series(np.arange(rows)).cast(pl.String).str.zfill(8),
            "Имя": rng.choice(FIRST, rows),
            "Фамилия": rng.choice(LAST, rows),
            "email": pl.Series(np.arange(rows)).cast(pl.String).str.replace(r"^", "client") + "@example.ru",
            "Телефон": pl.Series(rng.integers(0, 10**7, rows))
            .cast(pl.String)
            .str.zfill(7)
            .str.replace(r"^(\d{3})(\d{2})(\d{2})$", "+7 900 $1-$2-$3"),
            "Город": rng.choice(CITIES, rows),
            "orders": rng.integers(0, 40, rows),
            "revenue": (rng.random(rows) * 100_000).round(2),
            "signup": pl.Series(day).dt.strftime("%d.%m.%Y"),
        }
    )
    revenue = pl.col("revenue").cast(pl.String).str.replace(".", ",", literal=True)  # decimal commas
    return frame.with_columns(revenue).write_csv(separator=";")


def best_of(readers: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Each reader's best time, the readers taking turns (a busy moment of the machine then
    falls on all of them alike, not on whichever ran during it)."""
    for reader in readers.values():
        reader()  # warm-up: imports, page cache
    times: dict[str, list[float]] = {name: [] for name in readers}
    for _ in range(repeat):
        for name, reader in readers.items():
            started = time.perf_counter()
            reader()
            times[name].append(time.perf_counter() - started)
    return {name: min(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    text = segment_text(args.rows)
    with tempfile.TemporaryDirectory() as folder:
        cp1251, utf8 = Path(folder) / "segment-cp1251.csv", Path(folder) / "segment-utf8.csv"
        cp1251.write_bytes(text.encode("cp1251"))
        utf8.write_bytes(text.encode("utf-8"))
        size = cp1251.stat().st_size

        seg = load_segment(cp1251)
        assert (seg.encoding, seg.separator, seg.frame.height) == ("cp1251", ";", args.rows), seg.describe()
        assert seg.frame.equals(load_segment(utf8).frame)

        best = best_of(
            {
                "floor": lambda: pl.read_csv(utf8, separator=";"),
                "ours": lambda: load_segment(cp1251),
                "ours_utf8": lambda: load_segment(utf8),
            },
            args.repeat,
        )
        floor, ours, ours_utf8 = best["floor"], best["ours"], best["ours_utf8"]

    rows = f"{args.rows:,} rows, {size / 1e6:.0f} MB"
    print(f"read_segment vs pl.read_csv, {rows}, best of {args.repeat}:")
    print(
        f"  (a) pl.read_csv, UTF-8, separator given    {floor:7.3f} s  {args.rows / floor / 1e6:6.2f} M rows/s"
    )
    print(f"  (b) read_segment, cp1251, all detected      {ours:7.3f} s  {args.rows / ours / 1e6:6.2f} M rows/s"
          f"  {ours / floor:4.2f}x (a)")  # fmt: skip
    print(f"  (c) read_segment, UTF-8, all detected       {ours_utf8:7.3f} s  {args.rows / ours_utf8 / 1e6:6.2f} M rows/s"
          f"  {ours_utf8 / floor:4.2f}x (a)")  # fmt: skip
    print(f"  typed: {dict(seg.frame.schema)}")
    print(f"  kept as text: {seg.kept_as_text}")
    met = ours <= TARGET * floor
    print(f"  target (b) <= {TARGET:g}x (a): {'PASS' if met else 'FAIL'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
