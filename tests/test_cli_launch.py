"""``toolkit launch | status | resume | history`` against the real sandbox: one count, CLI advice."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from toolkit.cli import main
from toolkit.errors import TransportError
from toolkit.send.client import Client


@pytest.fixture
def env(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The shared sandbox (emptied) in the environment the CLI reads, and a journal of the test's own."""
    monkeypatch.setenv("TOOLKIT_API_URL", sandbox.url)
    monkeypatch.setenv("TOOLKIT_API_TOKEN", sandbox.token)
    monkeypatch.setenv("TOOLKIT_JOURNAL", str(tmp_path / "journal.sqlite"))
    return sandbox


@pytest.fixture
def segment(tmp_path: Path) -> Path:
    """26 rows in cp1251 with ';': 24 good, one invalid email, one duplicate."""
    rows = [f"{i:04d};Анна {i};cli{i}@cli.test;+7 900 000-00-{i:02d}" for i in range(24)]
    rows += ["0900;Ева;nope;", "0901;Дубль;cli1@cli.test;"]
    path = tmp_path / "segment.csv"
    path.write_bytes(("crm;Имя;mail;phone\n" + "\n".join(rows) + "\n").encode("cp1251"))
    return path


def launch_args(segment: Path, *extra: str) -> list[str]:
    return ["launch", str(segment), "--trigger-id", "96", "--map", "mail=email", "--map", "Имя=_fname",
            "--quiet", *extra]  # fmt: skip


def counts_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, int]]:
    """Run a command with --json; its exit code and the launch's seven counts."""
    code = main([*argv, "--json"])
    facts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    keys = ("rows", "rejected", "sent", "imported", "failed", "unknown", "pending")
    return code, {k: facts["launch"][k] for k in keys}


def test_launch_status_resume_and_history_report_the_same_counts(
    env: Any, segment: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same launch reads the same in all four commands, the rejected rows included."""
    code, launched = counts_of(launch_args(segment, "--label", "spring"), capsys)
    assert code == 0
    assert launched == {"rows": 26, "rejected": 2, "sent": 24, "imported": 24, "failed": 0, "unknown": 0,
                        "pending": 0}  # fmt: skip
    assert counts_of(["status", "spring"], capsys) == (0, launched)
    assert counts_of(["resume", "spring", "--quiet"], capsys) == (0, launched)
    assert main(["history", "--json"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {k: row[k] for k in launched} == launched and row["label"] == "spring"


def test_the_text_report_fits_100_columns_and_holds_no_token(
    env: Any, segment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every line the commands print is at most 100 characters, and the token is never among them."""
    assert (
        main(launch_args(segment, "--label", "a-rather-long-label-for-the-spring-promo-2024-final-v2")) == 0
    )
    assert main(["status", "a-rather-long-label-for-the-spring-promo-2024-final-v2"]) == 0
    assert main(["history"]) == 0
    out, err = capsys.readouterr()
    lines = (out + err).splitlines()
    assert "  rows           26    rejected        2    sent           24" in lines
    assert max(map(len, lines)) <= 100
    assert env.token not in out + err


def test_a_relaunch_is_refused_in_cli_terms(
    env: Any, segment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second launch of the same file is refused (exit 3), naming the first and the CLI's options."""
    assert main(launch_args(segment, "--label", "spring")) == 0
    capsys.readouterr()
    assert main(launch_args(segment, "--label", "spring")) == 3
    err = capsys.readouterr().err
    assert "launch 'spring'" in err and "`toolkit status spring`" in err and "--force" in err
    assert "client." not in err and "force=True" not in err


def test_a_label_is_never_replaced_silently(
    env: Any, segment: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --label naming another plan's launch is refused before anything is sent; so is a new label on a
    plan that an earlier, unfinished launch is continuing."""
    assert main(launch_args(segment, "--label", "spring")) == 0
    other = tmp_path / "other.csv"
    other.write_text("mail;Имя\nnew@cli.test;Zoe\n")
    capsys.readouterr()
    assert main(launch_args(other, "--label", "spring")) == 3
    assert "--label 'spring' already names launch" in capsys.readouterr().err
    assert main(["history", "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1  # no second launch was journalled

    _crash_after_first_batch(segment, "autumn", capsys)
    assert main(launch_args(segment, "--max-rows", "10", "--label", "winter")) == 3
    err = capsys.readouterr().err
    assert "launched before as 'autumn'" in err and "`toolkit resume autumn` sends the rest" in err


def _crash_after_first_batch(segment: Path, label: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A launch of three batches whose process is stopped (Ctrl-C) while sending the second: the
    first was sent, the second is caught in flight, the third never reaches the platform (whether
    the stop cancels it or it starts and finds no connection)."""
    real = Client.send_batch
    calls: list[int] = []

    def crash(self: Client, batch: Any, **kwargs: Any) -> str:
        calls.append(batch.index)
        if len(calls) == 1:
            return real(self, batch, **kwargs)
        if len(calls) == 2:
            raise KeyboardInterrupt
        raise TransportError("could not reach the sandbox (the process was stopping)")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Client, "send_batch", crash)
        assert main(launch_args(segment, "--max-rows", "10", "--concurrency", "1", "--label", label)) == 130
    capsys.readouterr()


def test_resume_sends_what_a_crashed_launch_never_sent(
    env: Any, segment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a crash, `toolkit resume LABEL` plans the launch's file again and sends only the batches
    never sent; the one caught in flight stays unknown until --resend-unknown."""
    _crash_after_first_batch(segment, "crashed", capsys)
    code, counts = counts_of(["status", "crashed"], capsys)
    assert counts["sent"] == 20 and counts["unknown"] == 10  # the first batch, and the one in flight
    assert counts["pending"] + counts["failed"] == 4 and code in (0, 1)  # never reached the platform

    code, counts = counts_of(["resume", "crashed", "--quiet"], capsys)
    assert code == 1  # the batch caught in flight is still unknown
    assert counts == {"rows": 26, "rejected": 2, "sent": 24, "imported": 14, "failed": 0, "unknown": 10,
                      "pending": 0}  # fmt: skip
    sends = [s["task_id"] for s in _sends(env)]
    assert len(sends) == 2  # batch 0 before the crash, batch 2 now; batch 1 never reached the platform

    assert main(["resume", "crashed", "--resend-unknown", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"imported\s+24\s+failed\s+0\s+unknown\s+0", out)
    assert "resend unknown: sent again: batch(es) 1" in out  # what --resend-unknown did, in its words


def test_resume_says_which_command_sends_the_rest_when_the_file_moved(
    env: Any, segment: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without its file, resume follows the launch from the journal and names the command that sends
    the rest; given the file's new place, it sends it."""
    _crash_after_first_batch(segment, "moved", capsys)
    moved = tmp_path / "elsewhere.csv"
    segment.rename(moved)
    assert main(["resume", "moved", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "4 rows were never sent: `toolkit resume moved PATH-TO-segment.csv` sends them" in err
    assert main(["resume", "moved", str(moved), "--quiet"]) == 1  # sent now; the in-flight one unknown
    assert re.search(r"pending\s+0\n", capsys.readouterr().out)


def test_results_and_rejected_files(env: Any, segment: Path, tmp_path: Path) -> None:
    """--rejected writes the rejected rows with reasons; --results one row per segment row, with its
    columns, from launch and from resume alike."""
    rejected, results, again = tmp_path / "rejected.csv", tmp_path / "results.parquet", tmp_path / "again.csv"
    assert (
        main(launch_args(segment, "--label", "files", "--rejected", str(rejected), "--results", str(results)))
        == 0
    )
    assert pl.read_csv(rejected).select("position", "mail", "rule").rows() == [
        (24, "nope", "invalid_email"),
        (25, "cli1@cli.test", "duplicate"),
    ]
    frame = pl.read_parquet(results)
    assert frame.height == 26 and {"status", "Имя", "mail"} <= set(frame.columns)
    assert frame["status"].value_counts().sort("status").rows() == [("imported", 24), ("rejected", 2)]
    assert main(["resume", "files", "--quiet", "--results", str(again)]) == 0
    assert pl.read_csv(again).select("status", "Имя").sort("status").rows()[-1] == ("rejected", "Дубль")


def test_subscriptions_from_the_command_line(
    env: Any, segment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--subscribe CHANNEL=COLUMN[:RESOURCE_ID] adds a subscription per row; --resource-id fills it in."""
    assert main(launch_args(segment, "--subscribe", "sms=phone", "--resource-id", "20", "--dry-run")) == 0
    records = json.loads(capsys.readouterr().out.split("\n[", 1)[1].rsplit("]", 1)[0].join("[]"))
    assert records[0]["subscriptions"] == [{"channel": "sms", "phone": "+79000000000", "resource_id": 20}]
    assert main(launch_args(segment, "--subscribe", "sms=phone")) == 2
    assert "--subscribe sms=phone: which resource?" in capsys.readouterr().err
    assert main(launch_args(segment, "--subscribe", "emial=mail:21")) == 2
    assert "unknown channel 'emial'; did you mean 'email'?" in capsys.readouterr().err


def test_no_wait_then_resume(env: Any, segment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A launch that does not wait exits 0 once sent (its rows pending); resume follows it to the end."""
    code, counts = counts_of(launch_args(segment, "--format", "xml", "--label", "x", "--no-wait"), capsys)
    assert code == 0 and counts["sent"] == 24 and counts["failed"] == counts["unknown"] == 0
    assert main(["resume", "x", "--quiet"]) == 0


def test_history_is_a_narrow_table(env: Any, segment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """history shows each launch's counts (sent included) in a table within 100 columns."""
    assert main(launch_args(segment, "--label", "one")) == 0
    capsys.readouterr()
    assert main(["history"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["created", "(UTC)", "launch", "trigger", "rows", "rejected", "sent", "imported",
                              "failed", "unknown", "pending"]  # fmt: skip
    assert row.split()[2:] == ["one", "96", "26", "2", "24", "24", "0", "0", "0"]
    assert len(header) <= 100


def _sends(sandbox: Any) -> list[dict[str, Any]]:
    """The tasks the sandbox created: one per batch that reached it."""
    import requests

    answer = requests.get(f"{sandbox.url}/_sandbox/tasks", headers={"Authorization": f"Bearer {sandbox.token}"},
                          timeout=10)  # fmt: skip
    answer.raise_for_status()
    return list(answer.json())
