"""What a journal that survives a copy costs: a 1,000-batch launch's journal writes, three ways.

The journal records every batch before it goes out and after (``claim``, ``mark_sent`` with
its rows' key hashes, a status read, ``mark_finished`` with its per-row results). This script
replays those writes for a launch of N batches of R rows on one file, without any network,
in three journal modes:

(a) ``WAL + synchronous=NORMAL``: the toolkit before schema 3. Fast, but a launch's writes sit
    in ``journal.sqlite-wal`` until the last connection closes: a copy of ``journal.sqlite``
    alone forgets them (the copy check below shows how many batches it forgets).
(b) ``DELETE + synchronous=FULL``: the toolkit now. Every transaction is in the main file,
    synced to disk, when it ends.
(c) ``WAL + synchronous=FULL + a checkpoint after every write``: the other way to get (b)'s
    guarantee, for comparison.

For each it prints the total seconds, the cost per batch (all four writes) and per write,
and how many sent batches a copy of the main file alone (taken mid-launch, while the
connection is still open) knows of. The figures depend on the disk (``fsync``): run it on
the disk the journal lives on (``--dir``).

Usage::

    python bench/journal_durability.py                    # 1,000 batches of 100 rows
    python bench/journal_durability.py --batches 200 --rows 10 --dir /tmp

Exit status: 0 when (b)'s copy knows every sent batch, 1 otherwise.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# Benchmark this checkout's toolkit, not whichever copy happens to be installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolkit.core.contract import RowStatus
from toolkit.send.journal import Journal, RowResult


class _WalJournal(Journal):
    """The journal as it was before schema 3: WAL, synchronous=NORMAL."""

    def _prepare(self, memory: bool) -> None:
        super()._prepare(memory)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")


class _CheckpointedJournal(_WalJournal):
    """WAL with a full sync and a checkpoint into the main file after every transaction."""

    def _prepare(self, memory: bool) -> None:
        super()._prepare(memory)
        self._conn.execute("PRAGMA synchronous=FULL")

    @contextmanager
    def _tx(self, action: str = "recording a change") -> Iterator[sqlite3.Connection]:
        with super()._tx(action) as db:
            yield db
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(FULL)")


MODES: dict[str, type[Journal]] = {
    "(a) WAL + synchronous=NORMAL (before)": _WalJournal,
    "(b) DELETE + synchronous=FULL (now)": Journal,
    "(c) WAL + FULL + checkpoint per write": _CheckpointedJournal,
}


@dataclass(frozen=True)
class Figures:
    mode: str
    seconds: float
    writes: int
    copy_knows: int
    sent: int


def _copy_knows(path: Path, scratch: Path) -> int:
    """Sent batches a copy of the main file alone knows, the writer's connection still open."""
    copy = scratch / f"copy-{uuid.uuid4().hex[:6]}.sqlite"
    shutil.copyfile(path, copy)
    db = sqlite3.connect(copy)
    try:
        return db.execute("SELECT COUNT(*) FROM batches WHERE state != 'planned'").fetchone()[0]
    except sqlite3.DatabaseError:
        return 0
    finally:
        db.close()


def run(mode: str, kind: type[Journal], batches: int, rows: int, scratch: Path) -> Figures:
    path = scratch / f"{uuid.uuid4().hex[:6]}.sqlite"
    journal = kind(path)
    plan = [(i, f"{i:064x}", tuple(range(i * rows, (i + 1) * rows))) for i in range(batches)]
    launch_id = journal.create_launch(
        label="bench", trigger_id=96, host="http://localhost:8080", fingerprint="f" * 64, format="json",
        n_rows=batches * rows, summary={}, batches=plan,
    )  # fmt: skip
    writes = 1
    started = time.perf_counter()
    for index, _, positions in plan:
        journal.claim(launch_id, index)
        journal.mark_sent(launch_id, index, f"task-{index}", keys=[f"p{p}@bench.test" for p in positions])
        journal.update_status(launch_id, index, "processing", 50.0)
        results = [
            RowResult(p, index, RowStatus.FAILED, None, 400, f"invalid phone for p{p}@bench.test")
            if p % 10 == 0
            else RowResult(p, index, RowStatus.IMPORTED, f"{p:024x}")
            for p in positions
        ]
        journal.mark_finished(launch_id, index, ok=True, status="success", results=results)
        writes += 4
    seconds = time.perf_counter() - started
    knows = _copy_knows(path, scratch)
    journal.close()
    return Figures(mode, seconds, writes, knows, batches)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=1000, help="batches in the launch (default 1000)")
    parser.add_argument("--rows", type=int, default=100, help="rows per batch (default 100)")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the journal files go (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        figures = [run(mode, kind, args.batches, args.rows, Path(scratch)) for mode, kind in MODES.items()]
    base = figures[0].seconds
    print(f"journal writes of a launch of {args.batches:,} batches x {args.rows:,} rows (4 writes per batch)")
    print(
        f"{'mode':<42} {'total s':>8} {'ms/batch':>9} {'ms/write':>9} {'vs (a)':>7}  copy of the main file knows"
    )
    for f in figures:
        print(
            f"{f.mode:<42} {f.seconds:8.2f} {1000 * f.seconds / f.sent:9.2f} {1000 * f.seconds / f.writes:9.2f} "
            f"{f.seconds / base:6.1f}x  {f.copy_knows:,} of {f.sent:,} sent batches"
        )
    now = figures[1]
    ok = now.copy_knows == now.sent
    print(
        ("PASS" if ok else "FAIL") + f": the journal now keeps every sent batch in its main file ({now.mode})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
