"""The documented exit codes of ``toolkit``, one by one, with the message each comes with.

0 success, 1 some rows failed or unknown, 2 usage, 3 refused, 4 platform unreachable or token
refused, 5 bad input file. Some run as real processes (``python -m toolkit``), as a shell would.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from toolkit.cli import main
from toolkit.send.journal import Journal

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The shared sandbox (emptied) in the CLI's environment, and a journal of the test's own."""
    monkeypatch.setenv("TOOLKIT_API_URL", sandbox.url)
    monkeypatch.setenv("TOOLKIT_API_TOKEN", sandbox.token)
    monkeypatch.setenv("TOOLKIT_JOURNAL", str(tmp_path / "journal.sqlite"))
    return sandbox


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.csv"
    path.write_text("email,name\n" + "".join(f"exit{i}@codes.test,N{i}\n" for i in range(5)))
    return path


def toolkit_process(
    *argv: str, env: dict[str, str] | None = None, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """``python -m toolkit ARGV`` in a real process, this checkout first on its path."""
    full_env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}
    kwargs.setdefault("stdout", subprocess.PIPE)
    return subprocess.run(
        [sys.executable, "-m", "toolkit", *argv], env=full_env, stderr=subprocess.PIPE, text=True, timeout=120,
        **kwargs,
    )  # fmt: skip


def said(text: str) -> str:
    """What was printed, its lines (wrapped at 100 columns) joined again."""
    return " ".join(text.split())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_0_success_in_a_real_process(env: Any, good: Path, tmp_path: Path) -> None:
    """A launch whose rows are all imported exits 0, as a shell sees it."""
    done = toolkit_process("launch", str(good), "--trigger-id", "96", "--map", "email=email", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "imported" in done.stdout and done.stderr == ""


def test_1_some_rows_failed(env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rows the platform refuses (no such profile to update) exit 1, saying why they failed."""
    path = tmp_path / "ids.csv"
    path.write_text("pid\nnope-1\nnope-2\n")
    code = main(["launch", str(path), "--trigger-id", "96", "--map", "pid=profile_id", "--matching", "profile_id",
                 "--quiet"])  # fmt: skip
    assert code == 1
    # the journal keeps the platform's words with each key as its hash: one line for the kind
    assert "failed: no profile with profile_id '<key>' (2)" in capsys.readouterr().out


def test_1_some_rows_unknown(make_sandbox: Any, good: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """A batch whose answer was lost leaves its rows unknown: exit 1, and the CLI says how to resend."""
    lossy = make_sandbox(lose_response_rate=1.0)
    monkeypatch.setenv("TOOLKIT_API_URL", lossy.url)
    monkeypatch.setenv("TOOLKIT_API_TOKEN", lossy.token)
    monkeypatch.setenv("TOOLKIT_JOURNAL", str(tmp_path / "journal.sqlite"))
    assert (
        main(
            ["launch", str(good), "--trigger-id", "96", "--map", "email=email", "--quiet", "--label", "lost"]
        )
        == 1
    )
    err = said(capsys.readouterr().err)
    assert "`toolkit resume lost --resend-unknown` sends them again" in err and "Launch." not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["launch", "{good}", "--map", "email=email"], "the following arguments are required: --trigger-id"),
        (
            ["launch", "{good}", "--trigger-id", "96", "--map", "emial=email"],
            "has no column 'emial'; did you mean",
        ),
        (["launch", "{good}", "--trigger-id", "96"], "--map COLUMN=FIELD (repeat), e.g. --map email=email"),
        (
            ["launch", "{good}", "--trigger-id", "96", "--map", "email=email", "--matching", "custom"],
            "--matching custom needs --match-field",
        ),
        (["status", "no-such-label"], "no launch labelled or numbered 'no-such-label'"),
    ],
    ids=["argparse", "unknown column", "no map", "matching needs a field", "unknown label"],
)
def test_2_usage(
    env: Any, good: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad options exit 2 with a message in the CLI's own terms (no Python advice)."""
    assert main([a.replace("{good}", str(good)) for a in argv]) == 2
    err = said(capsys.readouterr().err)
    assert message in err and "fields={" not in err and "match_field=" not in err


def test_2_usage_without_a_platform_configured(good: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """No TOOLKIT_API_URL: a usage error before any journal entry (a dry run needs none)."""
    monkeypatch.delenv("TOOLKIT_API_URL", raising=False)
    monkeypatch.setenv("TOOLKIT_JOURNAL", str(tmp_path / "journal.sqlite"))
    assert main(["launch", str(good), "--trigger-id", "96", "--map", "email=email"]) == 2
    assert "TOOLKIT_API_URL" in capsys.readouterr().err
    assert main(["launch", str(good), "--trigger-id", "96", "--map", "email=email", "--dry-run"]) == 0
    assert not (tmp_path / "journal.sqlite").exists()


def test_3_refused(env: Any, good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Already launched, a label in use, or nothing sendable: exit 3, nothing sent or journalled."""
    argv = ["launch", str(good), "--trigger-id", "96", "--map", "email=email", "--quiet", "--label", "once"]
    assert main(argv) == 0
    assert main(argv) == 3
    assert "already sent" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("email\nnot-an-email\nalso-not\n")
    assert main(["launch", str(bad), "--trigger-id", "96", "--map", "email=email", "--quiet"]) == 3
    assert "none of the 2 rows can be sent (rejected by rule: invalid_email 2)" in capsys.readouterr().err
    assert len(Journal(tmp_path / "journal.sqlite").history()) == 1


def test_4_platform_unreachable_said_once_and_short(good: Path, tmp_path: Path) -> None:
    """An unreachable platform exits 4 in a real process, with one short message, no pool dump."""
    done = toolkit_process(
        "launch", str(good), "--trigger-id", "96", "--map", "email=email", "--quiet", "--retries", "1",
        "--allow-sample",  # the file's example.com addresses would be refused first (exit 3, below)
        env={"TOOLKIT_API_URL": f"http://127.0.0.1:{free_port()}", "TOOLKIT_API_TOKEN": "t" * 24,
             "TOOLKIT_JOURNAL": str(tmp_path / "journal.sqlite")},
    )  # fmt: skip
    assert done.returncode == 4, done.stderr
    assert "ConnectionPool" not in done.stderr and "Traceback" not in done.stderr
    # the retry once, the outcome once; 127.0.0.1 is named as the journal knows it (one name per platform)
    assert done.stderr.count("could not reach http://localhost:") == 2
    assert "nothing was sent" in done.stderr
    assert max(len(line) for line in (done.stdout + done.stderr).splitlines()) <= 100


def test_3_made_up_addresses_refused_off_the_sandbox(good: Path, tmp_path: Path) -> None:
    """Example addresses bound for a host that is not the sandbox exit 3 before any send, with
    the CLI's own way out (--allow-sample), not Python advice."""
    done = toolkit_process(
        "launch", str(good), "--trigger-id", "96", "--map", "email=email", "--quiet", "--retries", "0",
        env={"TOOLKIT_API_URL": f"http://127.0.0.1:{free_port()}", "TOOLKIT_API_TOKEN": "t" * 24,
             "TOOLKIT_JOURNAL": str(tmp_path / "journal.sqlite")},
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "--allow-sample" in done.stderr and "allow_sample=True" not in done.stderr
    assert "PLATFORM at 127.0.0.1:" in " ".join(done.stderr.split())  # the message is wrapped


def test_4_token_refused(env: Any, good: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """A wrong token exits 4 and says which setting to check, never showing a token."""
    monkeypatch.setenv("TOOLKIT_API_TOKEN", "wrong-token-0123456789")
    assert main(["launch", str(good), "--trigger-id", "96", "--map", "email=email", "--quiet"]) == 4
    err = capsys.readouterr().err
    assert "refused the token" in err and "TOOLKIT_API_TOKEN" in err and "wrong-token" not in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        (b"", "the file is empty"),
        (b"email,name\n", "has a header (2 columns) but no rows"),
        (b"email,name\na@x.io,Ann\nb@x.io,Bob,extra\n", "the header has 2 columns, line 3 has 3"),
    ],
    ids=["missing", "empty", "header only", "ragged"],
)
def test_5_bad_input_file(env: Any, tmp_path: Path, content: bytes | None, message: str,
                          capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """A file that cannot be a segment exits 5 before any journal entry, saying what is wrong."""
    path = tmp_path / "segment.csv"
    if content is not None:
        path.write_bytes(content)
    assert main(["launch", str(path), "--trigger-id", "96", "--map", "email=email"]) == 5
    err = said(capsys.readouterr().err)
    assert message in err and "separator=" not in err
    assert not (tmp_path / "journal.sqlite").exists()


def test_json_gives_the_same_facts(
    env: Any, good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints the counts and the exit code, for a launch and for an error alike."""
    assert main(["launch", str(good), "--trigger-id", "96", "--map", "email=email", "--quiet", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["exit_code"] == 0 and facts["launch"]["imported"] == 5 and facts["segment"]["rows"] == 5
    assert (
        main(["launch", str(tmp_path / "none.csv"), "--trigger-id", "96", "--map", "a=email", "--json"]) == 5
    )
    error = json.loads(capsys.readouterr().out)
    assert error["exit_code"] == 5 and "not found" in error["error"]


def test_a_closed_pipe_is_not_an_error(tmp_path: Path) -> None:
    """`toolkit history | head` where head has gone: the command exits 0, without a traceback."""
    journal = tmp_path / "journal.sqlite"
    with Journal(journal) as j:
        for n in range(3):
            j.create_launch(label=f"l{n}", trigger_id=96, host="http://127.0.0.1:1", fingerprint=f"{n}" * 64,
                            format="json", n_rows=1, summary={"rows": 1}, batches=[(0, f"{n}" * 64, (0,))])  # fmt: skip
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line is written
    try:
        done = toolkit_process("history", env={"TOOLKIT_JOURNAL": str(journal)}, stdout=write)
    finally:
        os.close(write)
    assert done.returncode == 0
    assert done.stderr == ""
