"""``toolkit launch | status | history | resume`` against the real sandbox."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from toolkit.cli.launch import register


@pytest.fixture
def env(sandbox: object, isolated_journal: None, monkeypatch: pytest.MonkeyPatch) -> object:
    """The shared sandbox (emptied) in the environment the CLI reads, and a fresh journal."""
    monkeypatch.setenv("TOOLKIT_API_URL", sandbox.url)  # type: ignore[attr-defined]
    monkeypatch.setenv("TOOLKIT_API_TOKEN", sandbox.token)  # type: ignore[attr-defined]
    return sandbox


@pytest.fixture
def segment(tmp_path: Path) -> Path:
    path = tmp_path / "segment.csv"
    pl.DataFrame(
        {
            "mail": [f"cli{i}@cli.test" for i in range(25)] + ["nope"],
            "first": ["Ann"] * 26,
            "crm": [f"{i:04d}" for i in range(26)],
        }
    ).write_csv(path)
    return path


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="toolkit")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.func(args))


def test_dry_run_needs_no_server(segment: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.delenv("TOOLKIT_API_URL", raising=False)
    monkeypatch.delenv("TOOLKIT_API_TOKEN", raising=False)
    code = run("launch", str(segment), "--trigger-id", "96", "--map", "mail=email", "--map", "first=_fname",
               "--dry-run")  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "dry run: nothing sent" in out and "rows=26, valid=25, rejected=1" in out
    assert "cli0@cli.test" in out  # the first records as they would be sent


def test_launch_history_status_resume(env: object, segment: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    argv = [
        "launch",
        str(segment),
        "--trigger-id",
        "96",
        "--map",
        "mail=email",
        "--label",
        "cli-run",
        "--quiet",
    ]
    results = tmp_path / "results.csv"
    assert run(*argv, "--results", str(results)) == 0
    out = capsys.readouterr().out
    assert '"imported": 25' in out and '"rejected": 1' in out and env.token not in out  # type: ignore[attr-defined]
    assert pl.read_csv(results)["status"].value_counts().sort("status").rows() == [
        ("imported", 25),
        ("rejected", 1),
    ]

    assert run(*argv) == 3  # a re-run sends nothing
    err = capsys.readouterr().err
    assert "already sent" in err and "force=True" in err

    assert run("history") == 0
    assert "cli-run" in capsys.readouterr().out
    assert run("history", "--json") == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["label"] == "cli-run" and row["completed"] == 1

    assert run("status", "cli-run") == 0
    assert '"imported": 25' in capsys.readouterr().out
    assert run("resume", "cli-run", "--quiet") == 0
    assert run("resume", "no-such-label") == 2
    assert "no launch labelled" in capsys.readouterr().err


def test_xml_launch_without_waiting_then_resume(env: object, segment: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    argv = ["launch", str(segment), "--trigger-id", "96", "--map", "mail=email", "--format", "xml",
            "--label", "x", "--no-wait", "--quiet"]  # fmt: skip
    assert run(*argv) == 1  # sent, not yet followed: pending rows
    assert '"pending"' in capsys.readouterr().out
    assert run("resume", "x", "--quiet") == 0


def test_custom_matching_from_a_parquet_file(env: object, tmp_path: Path) -> None:
    path = tmp_path / "seg.parquet"
    pl.DataFrame({"crm": ["0001", "0002"], "mail": ["a@cli.test", "b@cli.test"]}).write_parquet(path)
    code = run("launch", str(path), "--trigger-id", "96", "--map", "crm=CRM_ID", "--map", "mail=email",
               "--matching", "custom", "--match-field", "CRM_ID", "--quiet")  # fmt: skip
    assert code == 0


def test_usage_errors(segment: Path, tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("TOOLKIT_API_URL", raising=False)
    monkeypatch.setenv("TOOLKIT_API_TOKEN", "x" * 20)
    monkeypatch.setenv("TOOLKIT_JOURNAL", str(tmp_path / "j.sqlite"))
    assert run("launch", str(segment), "--trigger-id", "96", "--map", "mail=email") == 2
    assert "TOOLKIT_API_URL is not set" in capsys.readouterr().err
    assert run("launch", str(segment), "--trigger-id", "96", "--map", "mail") == 2
    assert "COLUMN=FIELD" in capsys.readouterr().err
    assert run("launch", str(tmp_path / "missing.csv"), "--trigger-id", "96", "--map", "a=email") == 2
    assert run("history") == 0
    assert "no launches" in capsys.readouterr().out


def test_registered_in_the_toolkit_command(
    tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from toolkit.cli import main

    monkeypatch.setenv("TOOLKIT_JOURNAL", str(tmp_path / "j.sqlite"))
    assert main(["history"]) == 0
    assert "no launches" in capsys.readouterr().out


def test_resend_unknown_from_the_command_line(
    make_sandbox: Any, segment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """`toolkit launch --resend-unknown` sends a dropped (unknown) batch again, says so, and all rows end imported once."""
    seed = next(s for s in range(5000) if _draws(s, 8) == ["drop"] + ["ok"] * 7)
    server = make_sandbox(drop_rate=0.3, seed=seed)
    monkeypatch.setenv("TOOLKIT_API_URL", server.url)
    monkeypatch.setenv("TOOLKIT_API_TOKEN", server.token)
    monkeypatch.setenv("TOOLKIT_JOURNAL", str(tmp_path / "journal.sqlite"))
    argv = [
        "launch",
        str(segment),
        "--trigger-id",
        "96",
        "--map",
        "mail=email",
        "--label",
        "dropped",
        "--quiet",
    ]
    assert run(*argv) == 1  # the batch's connection dropped: unknown
    assert '"unknown": 25' in capsys.readouterr().out
    assert run(*argv) == 3  # a plain re-run sends nothing
    capsys.readouterr()
    assert run(*argv, "--resend-unknown") == 0
    out = capsys.readouterr().out
    assert "resend unknown: sent again: batch(es) 0" in out and '"imported": 25' in out


def _draws(seed: int, n: int) -> list[str]:
    from toolkit.sandbox.knobs import Faults, Knobs

    faults = Faults(Knobs(drop_rate=0.3, seed=seed))
    return [faults.draw().kind for _ in range(n)]
