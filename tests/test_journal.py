"""The launch journal on its own: schema and its migrations, durability, damaged files, leases,
state transitions, idempotency look-ups, privacy."""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from toolkit.errors import AlreadyLaunched, ConfigurationError, InvalidArgumentError, JournalError
from toolkit.send.journal import Journal, RowResult, api_host, key_hash

HOST = "http://127.0.0.1:5000"


def _launch(j: Journal, *, label: str = "spring", fingerprint: str = "f" * 64, trigger_id: int = 96,
            host: str = HOST, batches=None) -> str:  # fmt: skip
    batches = batches or [(0, "a" * 64, (0, 1)), (1, "b" * 64, (2, 3))]
    return j.create_launch(
        label=label,
        trigger_id=trigger_id,
        host=host,
        fingerprint=fingerprint,
        format="json",
        n_rows=4,
        summary={"rows": 4, "batches": len(batches)},
        batches=batches,
    )


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    j = Journal(tmp_path / "j.sqlite")
    yield j
    j.close()


def test_a_new_file_keeps_every_write_in_the_main_file(tmp_path: Path) -> None:
    """A copy of a new journal's main file alone, taken while it is open, knows every batch claimed and sent."""
    path = tmp_path / "sub" / "journal.sqlite"
    j = Journal(path)
    lid = _launch(j)
    j.claim(lid, 0)
    j.mark_sent(lid, 0, "t0", keys=["a@x.io", "b@x.io"])
    j.claim(lid, 1)
    copy = tmp_path / "copy.sqlite"
    shutil.copyfile(path, copy)  # journal.sqlite alone, j still open
    check = sqlite3.connect(copy)
    assert check.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert check.execute("PRAGMA user_version").fetchone()[0] == 4
    assert check.execute("SELECT state FROM batches ORDER BY batch_index").fetchall() == [
        ("sent",),
        ("sending",),
    ]
    check.close()
    assert sorted(p.name for p in path.parent.iterdir()) == ["journal.sqlite"]  # no -wal, no leftovers
    j.close()


def test_state_transitions(journal: Journal) -> None:
    """A batch goes planned, sending, sent, completed (with row results) or unknown."""
    lid = _launch(journal)
    assert [b.state for b in journal.batches(lid)] == ["planned", "planned"]
    journal.claim(lid, 0)
    b0 = journal.batch(lid, 0)
    assert (b0.state, b0.attempts) == ("sending", 1) and b0.sent_at
    journal.mark_sent(lid, 0, "task-0", keys=["a@x.io", "b@x.io"])
    journal.update_status(lid, 0, "processing", 40.0)
    b0 = journal.batch(lid, 0)
    assert (b0.state, b0.task_id, b0.status, b0.progress) == ("sent", "task-0", "processing", 40.0)
    journal.mark_finished(
        lid, 0, ok=True, status="completed",
        results=[RowResult(0, 0, "imported", "p0"), RowResult(1, 0, "failed", None, 400, "bad phone")],
    )  # fmt: skip
    b0 = journal.batch(lid, 0)
    assert (b0.state, b0.n_imported, b0.n_failed, b0.progress) == ("completed", 1, 1, 100)
    assert journal.row_result_columns(lid)["row_status"] == ["imported", "failed"]
    journal.claim(lid, 1)
    journal.mark_unknown(lid, 1, "read timeout")
    assert journal.batch(lid, 1).state == "unknown"
    assert journal.batch(lid, 1).was_sent  # unknown: never re-sent by itself


def test_refused_batch_is_not_counted_as_sent(journal: Journal) -> None:
    """A refused batch is failed without a task id: not sent, so sendable again."""
    lid = _launch(journal)
    journal.claim(lid, 0)
    journal.mark_failed(lid, 0, "platform error 403", code=403)
    b0 = journal.batch(lid, 0)
    assert b0.state == "failed" and b0.task_id is None and not b0.was_sent
    assert journal.sent_batches(["a" * 64], 96, HOST) == {}


def test_in_flight_batches_become_unknown(journal: Journal) -> None:
    """Batches left sending by a dead process become unknown, once."""
    lid = _launch(journal)
    journal.claim(lid, 1)
    assert journal.reset_in_flight(lid) == [1]
    assert journal.batch(lid, 1).state == "unknown"
    assert journal.reset_in_flight(lid) == []


def test_sent_batches_keyed_on_trigger_and_host(journal: Journal) -> None:
    """A body counts as sent only for the same trigger and host."""
    lid = _launch(journal)
    journal.claim(lid, 0)
    journal.mark_sent(lid, 0, "t0")
    assert set(journal.sent_batches(["a" * 64, "b" * 64], 96, HOST)) == {"a" * 64}
    assert journal.sent_batches(["a" * 64], 97, HOST) == {}
    assert journal.sent_batches(["a" * 64], 96, "https://prod.example.com") == {}
    assert journal.find_by_fingerprint("f" * 64, 96, HOST).launch_id == lid
    assert journal.find_by_fingerprint("f" * 64, 96, "https://prod.example.com") is None


def test_linked_batches_copy_the_earlier_task(journal: Journal) -> None:
    """A batch carried by an earlier launch is recorded with that task, not planned."""
    lid = _launch(journal)
    journal.claim(lid, 0)
    journal.mark_sent(lid, 0, "t0")
    earlier = journal.sent_batches(["a" * 64], 96, HOST)["a" * 64]
    lid2 = _launch(journal, fingerprint="e" * 64, batches=[(0, "a" * 64, (0, 1)), (1, "c" * 64, (2,))],
                   label="again")  # fmt: skip
    # create_launch with linked
    lid3 = journal.create_launch(
        label="linked", trigger_id=96, host=HOST, fingerprint="d" * 64, format="json", n_rows=3, summary={},
        batches=[(0, "a" * 64, (0, 1)), (1, "c" * 64, (2,))], linked={0: earlier},
    )  # fmt: skip
    b = journal.batches(lid3)
    assert (b[0].state, b[0].task_id, b[0].origin) == ("sent", "t0", lid)
    assert b[1].state == "planned"
    assert lid2 != lid3


def test_find_by_label_or_id_and_helpful_error(journal: Journal) -> None:
    """Launches are found by label or id; a typo gets a did-you-mean."""
    lid = _launch(journal, label="spring-promo")
    assert journal.find("spring-promo").launch_id == lid
    assert journal.find(lid).label == "spring-promo"
    with pytest.raises(InvalidArgumentError, match="did you mean 'spring-promo'"):
        journal.find("spring-prom")


def test_latest_label_wins(journal: Journal) -> None:
    """A label used twice finds the latest launch."""
    _launch(journal, label="x", fingerprint="1" * 64)
    second = _launch(journal, label="x", fingerprint="2" * 64)
    assert journal.find("x").launch_id == second


def test_history_counts(journal: Journal) -> None:
    """history() counts batches and rows by state."""
    lid = _launch(journal)
    journal.claim(lid, 0)
    journal.mark_sent(lid, 0, "t0")
    journal.claim(lid, 1)
    journal.mark_unknown(lid, 1, "lost")
    (h,) = journal.history()
    assert (h["label"], h["batches"], h["sent"], h["unknown"], h["task_ids"]) == ("spring", 2, 1, 1, ["t0"])


def test_was_sent_by_key_hash(journal: Journal) -> None:
    """was_sent() answers by the key's hash, per trigger."""
    lid = _launch(journal)
    journal.claim(lid, 0)
    journal.mark_sent(lid, 0, "t0", keys=["ann@x.io", "bob@x.io"])
    assert journal.was_sent("ann@x.io") and journal.was_sent("bob@x.io", trigger_id=96)
    assert not journal.was_sent("ann@x.io", trigger_id=1) and not journal.was_sent("eve@x.io")
    journal.claim(lid, 1)
    journal.mark_sent(lid, 1, "t1", keys=["eve@x.io"])  # the key index is per batch: every batch is searched
    assert journal.was_sent("eve@x.io", trigger_id=96) and not journal.was_sent("eve@x.io", trigger_id=1)


def test_no_profile_data_in_the_file(tmp_path: Path) -> None:
    """The journal file holds no match key or profile data in clear."""
    path = tmp_path / "j.sqlite"
    j = Journal(path)
    lid = _launch(j)
    j.claim(lid, 0)
    j.mark_sent(lid, 0, "t0", keys=["secret.person@example.com", "other.person@example.com"])
    j.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"secret.person" not in raw and b"example.com" not in raw
    assert key_hash("secret.person@example.com").encode() in raw


def test_concurrent_writers(journal: Journal) -> None:
    """Threads claiming and recording batches at once leave every batch consistent."""
    batches = [(i, f"{i:064x}", (i,)) for i in range(40)]
    lid = _launch(journal, batches=batches)

    def worker(i: int) -> None:
        journal.claim(lid, i)
        journal.mark_sent(lid, i, f"t{i}", keys=[f"k{i}"])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {b.state for b in journal.batches(lid)} == {"sent"}


def test_two_processes_share_the_file(tmp_path: Path) -> None:
    """Two connections (processes) see each other's writes."""
    path = tmp_path / "j.sqlite"
    a, b = Journal(path), Journal(path)
    lid = _launch(a)
    b.claim(lid, 0)
    assert a.batch(lid, 0).state == "sending"
    a.close()
    b.close()


def test_open_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Journal.open() takes a Journal, a path or the environment's default."""
    monkeypatch.setenv("TOOLKIT_JOURNAL", str(tmp_path / "env.sqlite"))
    assert Journal.default_path() == tmp_path / "env.sqlite"
    j = Journal.open(None)
    assert Path(j.path) == tmp_path / "env.sqlite"
    j.close()
    monkeypatch.delenv("TOOLKIT_JOURNAL")
    assert Journal.default_path().name == "journal.sqlite"
    assert "toolkit" in str(Journal.default_path())
    with pytest.raises(InvalidArgumentError, match="journal="):
        Journal.open(42)  # type: ignore[arg-type]


def test_api_host_drops_credentials_and_path() -> None:
    """A platform is named by scheme, host and port only, one spelling per platform."""
    assert api_host("https://u:p@Example.com/api/v1.1/?token=zzz") == "https://example.com"
    assert api_host("http://[::1]:8080/x") == "http://localhost:8080"
    with pytest.raises(ConfigurationError):
        api_host("example.com")


@pytest.mark.parametrize(
    ("spellings", "canonical"),
    [
        (["http://127.0.0.1:8080", "http://localhost:8080", "http://LOCALHOST.:8080/", "http://[::1]:8080",
          "HTTP://[0:0:0:0:0:0:0:1]:8080", "http://[::ffff:127.0.0.1]:8080"], "http://localhost:8080"),
        (["https://API.example.com", "https://api.example.com.:443", "https://api.example.com:443/api/v1.1"],
         "https://api.example.com"),
        (["http://example.com:80", "http://EXAMPLE.com"], "http://example.com"),
    ],
)  # fmt: skip
def test_one_platform_is_one_host_whatever_its_spelling(spellings: list[str], canonical: str) -> None:
    """Case, a trailing dot, a default port and the loopback names do not make another platform."""
    assert {api_host(s) for s in spellings} == {canonical}
    assert api_host("https://example.com:80") == "https://example.com:80"  # not https's default
    assert api_host("http://127.0.0.2:8080") == "http://127.0.0.2:8080"  # another address


def test_a_launch_is_found_under_any_spelling_of_its_host(journal: Journal) -> None:
    """The journal stores and looks up hosts in their canonical spelling."""
    lid = _launch(journal, host="http://127.0.0.1:5000")
    journal.claim(lid, 0)
    journal.mark_sent(lid, 0, "t0")
    assert journal.launch(lid).host == "http://localhost:5000"
    assert journal.find_by_fingerprint("f" * 64, 96, "http://LOCALHOST.:5000").launch_id == lid
    assert set(journal.sent_batches(["a" * 64], 96, "http://[::1]:5000")) == {"a" * 64}
    _, claimed = journal.claim_single(
        host="http://127.0.0.1:5000", trigger_id=96, digest="d" * 64, format="json"
    )
    _, again = journal.claim_single(
        host="http://localhost:5000/", trigger_id=96, digest="d" * 64, format="json"
    )
    assert claimed and not again


def test_claim_is_exclusive_per_body_trigger_and_host(journal: Journal) -> None:
    """Only one launch may claim a body for a trigger and host; force and resend are explicit."""
    a = _launch(journal, label="a")
    b = _launch(journal, label="b")  # the same bodies, launched concurrently
    other_host = _launch(journal, label="c", host="https://prod.example.com")
    assert journal.claim(a, 0) is None
    holder = journal.claim(b, 0)
    assert holder is not None and (holder.launch_id, holder.index, holder.state) == (a, 0, "sending")
    assert journal.claim(other_host, 0) is None  # another platform: its own send
    assert journal.claim(a, 0).launch_id == a  # never twice in the same launch
    assert journal.claim(b, 0, exclusive=False) is None  # force=True sends again on purpose
    journal.link(b, 1, journal.batch(a, 1))  # a planned holder: copied as is
    journal.mark_unknown(a, 0, "lost")
    assert journal.claim(a, 0) is not None  # unknown: never re-sent by itself
    assert journal.claim(a, 0, resend=True, exclusive=False) is None  # resend_unknown()
    assert journal.batch(a, 0).attempts == 2


def test_link_to_a_batch_in_flight_is_unknown_and_names_it(journal: Journal) -> None:
    """Following a batch still in flight elsewhere is unknown and names that launch."""
    a = _launch(journal, label="a")
    b = _launch(journal, label="b")
    journal.claim(a, 0)
    journal.link(b, 0, journal.batch(a, 0))
    rec = journal.batch(b, 0)
    assert rec.state == "unknown" and rec.origin == a and a in (rec.error or "")
    journal.mark_sent(a, 1, "t1")
    journal.link(b, 1, journal.batch(a, 1))
    assert (journal.batch(b, 1).state, journal.batch(b, 1).task_id) == ("sent", "t1")


# --- single sends (Client.import_and_start) -----------------------------------------------------
def _claim(
    j: Journal, *, digest: str = "d" * 64, trigger_id: int = 96, host: str = HOST, force: bool = False
):
    return j.claim_single(host=host, trigger_id=trigger_id, digest=digest, format="json", force=force)


def test_single_send_states(journal: Journal) -> None:
    """A single send is sending, then sent, unknown or failed; only failed may be claimed again."""
    first, claimed = _claim(journal)
    assert claimed and first.state == "sending" and first.sent_at and first.finished_at is None
    holder, claimed = _claim(journal)  # in flight (or its process stopped): may be sent
    assert not claimed and holder.send_id == first.send_id and holder.was_sent
    journal.mark_single_failed(first.send_id, "AuthError: refused by the platform", code=403)
    retry, claimed = _claim(journal)  # refused: not counted as sent
    assert claimed and retry.send_id != first.send_id
    journal.mark_single_unknown(retry.send_id, "its answer was lost (ReadTimeout)")
    holder, claimed = _claim(journal)
    assert not claimed and (holder.state, holder.error) == ("unknown", "its answer was lost (ReadTimeout)")
    forced, claimed = _claim(journal, force=True)  # checked on the platform: sent again on purpose
    assert claimed and forced.forced
    journal.mark_single_sent(forced.send_id, profile_id="p1", task_id=None)
    holder, claimed = _claim(journal)
    assert not claimed and (holder.send_id, holder.state, holder.profile_id) == (forced.send_id, "sent", "p1")
    assert holder.finished_at is not None
    assert [r.state for r in journal.singles(digest="d" * 64)] == ["failed", "unknown", "sent"]
    # another trigger, host or body is another send; batches are not affected
    assert _claim(journal, trigger_id=97)[1] and _claim(journal, host="https://prod.example.com")[1]
    assert _claim(journal, digest="e" * 64)[1]
    assert journal.history() == []


def test_single_claim_is_atomic_across_connections(tmp_path: Path) -> None:
    """Two connections claiming the same single send at once: exactly one wins."""
    path = tmp_path / "j.sqlite"
    journals = [Journal(path) for _ in range(8)]
    barrier = threading.Barrier(len(journals))
    claimed: list[bool] = []

    def worker(j: Journal) -> None:
        barrier.wait()
        claimed.append(_claim(j)[1])

    threads = [threading.Thread(target=worker, args=(j,)) for j in journals]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == [False] * 7 + [True]
    assert len(journals[0].singles()) == 1
    for j in journals:
        j.close()


def _v2_file(path: Path) -> None:
    """A journal as schema 2 wrote it: WAL mode, hosts as given, row texts as the platform wrote them."""
    from toolkit.send import journal as journal_module

    old = sqlite3.connect(path, isolation_level=None)
    old.execute("PRAGMA journal_mode=WAL")
    old.executescript(journal_module._SCHEMA)
    old.executescript(journal_module._MIGRATIONS[0][1])  # version 2: single_sends
    old.execute("PRAGMA user_version=2")
    old.execute(
        "INSERT INTO launches (launch_id, label, trigger_id, host, created, fingerprint) VALUES (?,?,?,?,?,?)",
        ("abc123", "old launch", 96, "http://127.0.0.1:5000", "2024-01-01T00:00:00.000+00:00", "f" * 64),
    )
    old.execute(
        "INSERT INTO batches (launch_id, batch_index, digest, rows, n_rows, created, state, task_id)"
        " VALUES ('abc123', 0, ?, '[0, 1]', 2, '2024-01-01', 'completed', 't0')",
        ("a" * 64,),
    )
    old.executemany(
        "INSERT INTO sent_rows VALUES ('abc123', 0, ?, ?)",
        [(0, key_hash("nope-1")), (1, key_hash("ok@x.io"))],
    )
    old.executemany(
        "INSERT INTO row_results VALUES ('abc123', 0, ?, ?, NULL, ?, ?)",
        [(0, "failed", 404, "no profile with profile_id 'nope-1'"), (1, "failed", 400, "bad phone"),
         (2, "failed", 400, "row without a recorded key: 'who@x.io'")],
    )  # fmt: skip
    old.execute(
        "INSERT INTO single_sends (send_id, host, trigger_id, digest, state, sent_at)"
        " VALUES ('s1', 'HTTP://LOCALHOST:5000', 96, ?, 'sent', '2024-01-01')",
        ("d" * 64,),
    )
    old.close()  # (a WAL file closed last is checkpointed: the main file holds it all)


def test_journal_of_an_older_version_is_migrated(tmp_path: Path) -> None:
    """v1 and v2 (WAL) journals become v4: leases, canonical hosts, redacted row texts, rollback mode, key hashes
    indexed per batch; launches match."""
    from toolkit.send import journal as journal_module

    v1 = tmp_path / "v1.sqlite"
    old = sqlite3.connect(v1)
    old.executescript(journal_module._SCHEMA)  # what version 1 wrote: no single_sends table
    old.execute("PRAGMA user_version=1")
    old.execute(
        "INSERT INTO launches (launch_id, label, trigger_id, host, created, fingerprint) VALUES (?,?,?,?,?,?)",
        ("abc123", "old launch", 96, HOST, "2024-01-01T00:00:00.000+00:00", "f" * 64),
    )
    old.commit()
    old.close()
    j = Journal(v1)
    assert j.find("old launch").launch_id == "abc123"  # the old records still read
    assert _claim(j)[1] and len(j.singles()) == 1
    j.close()

    v2 = tmp_path / "v2.sqlite"
    _v2_file(v2)
    j = Journal(v2)
    assert j.find("old launch").host == "http://localhost:5000"
    assert j.find_by_fingerprint("f" * 64, 96, "http://localhost:5000").launch_id == "abc123"
    assert j.row_result_columns("abc123")["row_text"] == [
        f"no profile with profile_id '<key sha256:{key_hash('nope-1')[:16]}>'", "bad phone", None,
    ]  # fmt: skip
    _, claimed = j.claim_single(host="http://127.0.0.1:5000", trigger_id=96, digest="d" * 64, format="json")
    assert not claimed  # the single send recorded under another spelling is the same send
    lid = j.open_launch(owner="o", label=None, trigger_id=96, host="http://localhost:5000", fingerprint="f" * 64,
                        format="json", n_rows=2, summary={}, batches=[(0, "a" * 64, (0, 1))])  # fmt: skip
    assert (lid.kind, lid.record.launch_id) == ("resume", "abc123")  # the v2 launch, not a twin
    assert j.was_sent("ok@x.io", trigger_id=96) and not j.was_sent("ok@x.io", trigger_id=1)
    j.close()
    check = sqlite3.connect(v2)
    assert check.execute("PRAGMA user_version").fetchone()[0] == 4
    indexes = check.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'sent_rows'")
    # the whole-file key index (each sent batch rewrote most of it) is gone
    assert {r[0] for r in indexes} == {"sent_rows_batch_key"}
    assert check.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert b"nope-1" not in v2.read_bytes()
    check.close()


def test_a_journal_from_a_newer_toolkit_is_refused_unchanged(tmp_path: Path) -> None:
    """A schema version from the future is a JournalError naming the file; the file keeps its version."""
    path = tmp_path / "future.sqlite"
    Journal(path).close()
    newer = sqlite3.connect(path)
    newer.execute("PRAGMA user_version=99")
    newer.commit()
    newer.close()
    with pytest.raises(
        JournalError, match=r"future.sqlite was written by a newer toolkit \(schema version 99"
    ):
        Journal(path)
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == 99
    check.close()


def test_a_state_from_a_newer_toolkit_is_a_clear_error(journal: Journal) -> None:
    """A batch state this version does not know is named with what to do, not a raw ValueError."""
    lid = _launch(journal)
    newer = sqlite3.connect(journal.path)  # what a newer toolkit might write
    newer.execute("UPDATE batches SET state = 'leased' WHERE batch_index = 1")
    newer.commit()
    newer.close()
    with pytest.raises(JournalError, match=r"'leased' .* newer toolkit; upgrade .*j.sqlite"):
        journal.batches(lid)


# --- files that are not (whole) journals --------------------------------------------------------
def _truncated(path: Path) -> None:
    j = Journal(path)
    lid = _launch(j, batches=[(i, f"{i:064x}", tuple(range(i * 50, i * 50 + 50))) for i in range(40)])
    for i in range(40):
        j.claim(lid, i)
        j.mark_sent(lid, i, f"t{i}", keys=[f"k{p}@x.io" for p in range(i * 50, i * 50 + 50)])
    j.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.write_bytes(b""), r"is empty \(0 bytes\).*delete this file"),
        (lambda p: p.write_bytes(b"this is not a database " * 50), r"is damaged \(it is not an SQLite database"),
        (_truncated, r"is damaged \(it is cut short: .* bytes of the .* it was written with"),
        (lambda p: sqlite3.connect(p).execute("CREATE TABLE invoices (id)").connection.commit(),
         r"SQLite database of another program \(tables: invoices\), not a toolkit journal"),
    ],
    ids=["empty", "garbage", "truncated", "another-program"],
)  # fmt: skip
def test_a_file_that_is_not_a_whole_journal_is_refused(tmp_path: Path, damage: object, message: str) -> None:
    """Empty, garbage, truncated or foreign files raise a JournalError naming the file and what to do."""
    path = tmp_path / "journal.sqlite"
    damage(path)  # type: ignore[operator]
    before = path.read_bytes()
    with pytest.raises(JournalError, match=message) as info:
        Journal(path)
    assert info.value.path == str(path) and str(path) in str(info.value)
    assert path.read_bytes() == before  # nothing written into it


def test_a_locked_journal_gives_up_after_its_timeout(tmp_path: Path) -> None:
    """Another program holding the write lock: a JournalError saying so after `timeout`, no raw sqlite3 error."""
    path = tmp_path / "journal.sqlite"
    j = Journal(path, timeout=0.2)
    lid = _launch(j)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(
            JournalError, match=r"journal.sqlite is locked: another program held it for more than 0.2 s"
        ):
            j.claim(lid, 0)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert j.claim(lid, 0) is None  # free again: it works
    j.close()


def test_many_processes_creating_one_new_journal_at_once(tmp_path: Path) -> None:
    """A new journal file appears whole: connections creating it at the same moment all open it."""
    path = tmp_path / "new.sqlite"
    barrier = threading.Barrier(8)
    opened: list[object] = []

    def create() -> None:
        barrier.wait()
        try:
            opened.append(Journal(path))
        except Exception as exc:  # collected: the assertion shows it
            opened.append(exc)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(j, Journal) for j in opened), opened
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.sqlite"]
    for j in opened:
        j.close()  # type: ignore[union-attr]


# --- leases ---------------------------------------------------------------------------------------
def _open(j: Journal, owner: str, **kwargs: object) -> object:
    plan = dict(label="leased", trigger_id=96, host=HOST, fingerprint="f" * 64, format="json", n_rows=4,
                summary={}, batches=[(0, "a" * 64, (0, 1)), (1, "b" * 64, (2, 3))])  # fmt: skip
    return j.open_launch(owner=owner, **{**plan, **kwargs})


def _age_lease(j: Journal, lid: str, **columns: object) -> None:
    """Rewrite the lease row as another process on another machine would have left it."""
    sets = ", ".join(f"{k} = ?" for k in columns)
    with j._tx() as db:
        db.execute(f"UPDATE leases SET {sets} WHERE launch_id = ?", (*columns.values(), lid))


def test_a_live_lease_keeps_the_launch_read_only(journal: Journal) -> None:
    """While its holder lives, the launch is busy for everyone else and nothing of it is relabelled."""
    first = _open(journal, "sender")
    lid = first.record.launch_id
    assert first.kind == "new" and journal.sender(lid) is not None
    journal.claim(lid, 0, owner="sender")  # in flight
    assert _open(journal, "another").kind == "busy"  # a re-launch of the same plan: no twin
    assert journal.reset_in_flight(lid) == []  # resume/status: nothing relabelled
    assert journal.take_lease(lid, "another").owner == "sender"
    assert journal.batch(lid, 0).state == "sending"
    assert len(journal.history()) == 1
    assert journal.renew_lease(lid, "sender") and not journal.renew_lease(lid, "another")
    journal.release_lease(lid, "sender")
    again = _open(journal, "another")
    assert (
        again.kind == "resume" and journal.batch(lid, 0).state == "unknown"
    )  # no live holder: caught in flight


def test_a_lease_is_taken_over_only_from_a_holder_provably_gone(journal: Journal, tmp_path: Path) -> None:
    """Same host and a process that no longer exists, or a heartbeat older than the timeout."""
    lid = _open(journal, "sender").record.launch_id
    journal.claim(lid, 0, owner="sender")
    _age_lease(
        journal, lid, hostname="elsewhere", heartbeat=time.time() - 30
    )  # another host, heard from lately
    assert _open(journal, "another").kind == "busy"
    _age_lease(journal, lid, heartbeat=time.time() - 61)  # silent for more than LEASE_TIMEOUT
    assert _open(journal, "another").kind == "resume"
    assert "last heartbeat was 61 s ago" in journal.batch(lid, 0).error
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    journal.claim(lid, 1, owner="another")
    _age_lease(journal, lid, owner="dead", pid=int(gone.stdout))  # this host, its process has exited
    assert journal.reset_in_flight(lid) == [1]
    assert f"process {int(gone.stdout)} no longer exists" in journal.batch(lid, 1).error
    assert journal.lease(lid) is None


def test_a_sender_that_lost_its_lease_claims_nothing(journal: Journal) -> None:
    """A process taken for dead (silent too long) cannot claim once another took the launch over."""
    lid = _open(journal, "slow").record.launch_id
    _age_lease(journal, lid, heartbeat=time.time() - 120)
    assert journal.take_lease(lid, "new") is None
    with pytest.raises(AlreadyLaunched, match=r"was taken over by process .* nothing more is sent from here"):
        journal.claim(lid, 0, owner="slow")
    assert journal.batch(lid, 0).state == "planned"


def test_resend_never_claims_a_batch_another_launch_delivered(journal: Journal) -> None:
    """resend_unknown's claim is left out when any launch has the same body sent or in flight live."""
    a = _launch(journal, label="a")
    b = _launch(journal, label="b")  # a twin, e.g. from a journal written before leases
    journal.claim(a, 0)
    journal.mark_sent(a, 0, "t0")
    journal.link(b, 0, dataclasses.replace(journal.batch(a, 0), state="sending"))  # b saw it in flight
    assert journal.claim(b, 0, resend=True, exclusive=False).task_id == "t0"  # a delivered it
    assert journal.follow_origins(b) == [0] and journal.batch(b, 0).task_id == "t0"
    journal.claim(a, 1)
    journal.mark_unknown(a, 1, "lost")
    journal.claim(b, 1, exclusive=False)
    journal.mark_unknown(b, 1, "lost")
    assert journal.claim(b, 1, resend=True) is None  # unknown in both: the user's call, once
    live = _open(journal, "live", fingerprint="9" * 64, batches=[(0, "c" * 64, (5,))]).record.launch_id
    journal.claim(live, 0, owner="live")
    c = _launch(journal, label="c", batches=[(0, "c" * 64, (5,))])
    journal.claim(c, 0, exclusive=False)
    journal.mark_unknown(c, 0, "lost")
    assert journal.claim(c, 0, resend=True).launch_id == live  # being sent right now
    forced = journal.create_launch(label="f", trigger_id=96, host=HOST, fingerprint="f" * 64, format="json",
                                   n_rows=2, summary={}, batches=[(0, "a" * 64, (0, 1))], forced=True)  # fmt: skip
    journal.claim(forced, 0, exclusive=False)
    journal.mark_unknown(forced, 0, "lost")
    assert journal.claim(forced, 0, resend=True) is None  # a forced launch sends again on purpose


def test_row_texts_keep_the_platforms_words_without_the_key(journal: Journal) -> None:
    """A row's error text has its match key replaced by the key's hash; a text whose key is unknown is not kept."""
    lid = _launch(journal)
    journal.claim(lid, 0)
    journal.mark_sent(lid, 0, "t0", keys=["nope-1", "ann@x.io"])
    journal.mark_finished(lid, 0, ok=True, status="success", results=[
        RowResult(0, 0, "failed", None, 404, "no profile with profile_id 'nope-1'"),
        RowResult(1, 0, "failed", None, 400, "invalid phone for ann@x.io."),
    ])  # fmt: skip
    assert journal.row_result_columns(lid)["row_text"] == [
        f"no profile with profile_id '<key sha256:{key_hash('nope-1')[:16]}>'",
        f"invalid phone for <key sha256:{key_hash('ann@x.io')[:16]}>.",
    ]
    journal.claim(lid, 1)
    journal.mark_failed(lid, 1, "platform error 400: bad row 'bob@x.io'", code=400, keys=["bob@x.io"])
    assert (
        "bob@x.io" not in journal.batch(lid, 1).error
        and key_hash("bob@x.io")[:16] in journal.batch(lid, 1).error
    )
    journal.mark_finished(lid, 1, ok=True, status="success",
                          results=[RowResult(2, 1, "failed", None, 404, "no profile 'bob@x.io'")])  # fmt: skip
    assert journal.row_result_columns(lid)["row_text"][2] is None  # never sent: its key is not known here
    raw = Path(journal.path).read_bytes()
    assert b"nope-1" not in raw and b"ann@x.io" not in raw and b"bob@x.io" not in raw
