"""The launch journal on its own: schema, state transitions, idempotency look-ups, privacy."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from toolkit.errors import ConfigurationError, InvalidArgumentError
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


def test_file_is_wal_and_schema_is_created(tmp_path: Path) -> None:
    """A new journal file is created in WAL mode with its tables."""
    path = tmp_path / "sub" / "journal.sqlite"
    j = Journal(path)
    assert path.exists()
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    tables = {
        r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='table'")
    }
    assert {"launches", "batches", "sent_rows", "row_results"} <= tables
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
    """A platform is named by scheme, host and port only."""
    assert api_host("https://u:p@Example.com/api/v1.1/?token=zzz") == "https://example.com"
    assert api_host("http://[::1]:8080/x") == "http://[::1]:8080"
    with pytest.raises(ConfigurationError):
        api_host("example.com")


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


def test_journal_of_an_older_version_is_migrated(tmp_path: Path) -> None:
    """A journal file of schema v1 opens and is migrated to v2 with its launches kept."""
    from toolkit.send import journal as journal_module

    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript(journal_module._SCHEMA)  # what version 1 wrote: no single_sends table
    old.execute("PRAGMA user_version=1")
    old.execute(
        "INSERT INTO launches (launch_id, label, trigger_id, host, created, fingerprint) VALUES (?,?,?,?,?,?)",
        ("abc123", "old launch", 96, HOST, "2024-01-01T00:00:00.000+00:00", "f" * 64),
    )
    old.commit()
    old.close()
    j = Journal(path)
    assert j.find("old launch").launch_id == "abc123"  # the old records still read
    assert _claim(j)[1] and len(j.singles()) == 1
    j.close()
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == 2
    check.execute("PRAGMA user_version=9")  # a file from a newer toolkit keeps its version
    check.commit()
    check.close()
    Journal(path).close()
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == 9
    check.close()


def test_a_state_from_a_newer_toolkit_is_a_clear_error(journal: Journal) -> None:
    """A batch state this version does not know is named with what to do, not a raw ValueError."""
    lid = _launch(journal)
    newer = sqlite3.connect(journal.path)  # what a newer toolkit might write
    newer.execute("UPDATE batches SET state = 'leased' WHERE batch_index = 1")
    newer.commit()
    newer.close()
    with pytest.raises(ConfigurationError, match=r"'leased' .* newer toolkit; upgrade"):
        journal.batches(lid)
