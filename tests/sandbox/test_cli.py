"""`toolkit sandbox` as a user runs it: a subprocess that prints its URL and token."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from toolkit.core.contract import BATCH_PATH, STATUS_PATH, TRIGGER_GET_PATH

TOOLKIT = [sys.executable, "-m", "toolkit"]


def start(*args: str) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(
        [*TOOLKIT, "sandbox", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Token:"):
            break
    text = "".join(lines)
    url = re.search(r"http://127\.0\.0\.1:\d+", text)
    token = re.search(r"^Token: (\S+)$", text, re.M)
    assert url and token, text
    return proc, url.group(0), token.group(1)


def test_cli_prints_url_and_token_serves_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    proc, url, token = start("--token", "cli-secret", "--db", str(tmp_path / "s.sqlite"), "--seed", "1")
    try:
        assert token == "cli-secret"
        assert requests.get(url + "/_sandbox/health", timeout=5).json() == {"status": "ok"}
        answer = requests.post(
            url + STATUS_PATH, json={"task_id": "x"}, headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        assert answer.status_code == 404
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read() if proc.stderr else ""
    assert "tasks/status" in stderr  # the access log
    assert token not in stderr  # printed once for the user, never logged
    assert (tmp_path / "s.sqlite").exists()


def test_cli_generates_a_token_and_stops_on_ctrl_c() -> None:
    proc, url, token = start()
    try:
        assert len(token) >= 20
        assert requests.get(
            url + "/_sandbox/tasks", headers={"Authorization": f"Bearer {token}"}, timeout=5
        ).ok
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def _preparers(pid: int) -> list[int]:
    """The second processes (prepare.py: multiprocessing's spawn) that process ``pid`` started."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = stat.read_text().rsplit(")", 1)[1].split()[1]
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if parent == str(pid) and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


def _state(pid: int) -> str:
    """A process's state letter (/proc/PID/stat): R, S, Z..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_cli_shares_large_tasks_with_a_second_process() -> None:
    """A large task's answers are the same with a second process (--two-processes; the default on
    three cores or more) and without (--one-process); the second process ends with the sandbox."""
    profiles = [{"data": {"email": f"p{i % 1900}@example.com", "_fname": f"N{i}"}} for i in range(2500)]
    profiles[7]["data"]["email"] = "broken@"
    answers = []
    runs: list[tuple[tuple[str, ...], int]] = [(("--two-processes",), 1), (("--one-process",), 0)]
    runs.append(((), 1 if (os.cpu_count() or 1) >= 3 else 0))
    for flags, expected in runs:
        proc, url, token = start("--seed", "1", "--log-level", "warning", *flags)
        try:
            auth = {"Authorization": f"Bearer {token}"}
            body = {"trigger_id": 7, "matching": "email", "data": profiles}
            task = requests.post(url + BATCH_PATH, json=body, headers=auth, timeout=30).json()["task_id"]
            deadline = time.monotonic() + 60
            while (
                data := requests.post(
                    url + STATUS_PATH, json={"task_id": task}, headers=auth, timeout=30
                ).json()["data"]
            )["status"] != "completed":
                assert time.monotonic() < deadline, data
                time.sleep(0.05)
            answers.append(data["result"])
            preparers = _preparers(proc.pid)
            assert len(preparers) == expected, (flags, preparers)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
            for pid in preparers:  # gone with the sandbox (or a zombie reaped by nobody: not alive)
                assert not Path(f"/proc/{pid}").exists() or _state(pid) == "Z"
        finally:
            if proc.poll() is None:
                proc.kill()
    assert answers[0] == answers[1] == answers[2]
    assert answers[0]["result"][7] == {"error": 400, "error_text": "invalid email 'broken@'"}


def test_cli_rejects_bad_knobs() -> None:
    done = subprocess.run(
        [*TOOLKIT, "sandbox", "--fail-rate", "2"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2 and "between 0 and 1" in done.stderr
    helped = subprocess.run([*TOOLKIT, "sandbox", "--help"], capture_output=True, text=True, timeout=30)
    assert helped.returncode == 0
    flags = ("--processing-rate", "--latency-ms", "--rate-limit", "--drop-rate", "--lose-response-rate")
    flags += ("--catalog", "--strict-catalog", "--allow-undocumented-matching", "--variant", "--body-timeout")
    flags += ("--two-processes", "--one-process")
    for flag in flags:
        assert flag in helped.stdout


def test_cli_serves_a_catalog_file_strictly_with_a_variant(tmp_path: Path) -> None:
    """--catalog FILE, --strict-catalog, --allow-undocumented-matching and --variant reach the server."""
    catalog = tmp_path / "catalog.json"
    catalog.write_text(
        '{"triggers": [{"id": 5, "name": "Welcome", "list_id": 1, "resource_id": 2}],'
        ' "databases": [{"id": 1, "name": "Shop"}], "resources": [{"id": 2, "name": "Mail"}]}'
    )
    flags = ("--catalog", str(catalog), "--strict-catalog", "--allow-undocumented-matching")
    proc, url, token = start(*flags, "--variant", "nested_task_id")
    try:
        auth = {"Authorization": f"Bearer {token}"}
        known = requests.post(url + TRIGGER_GET_PATH, json={"id": 5}, headers=auth, timeout=5)
        assert known.json()["data"]["name"] == "Welcome"
        assert (
            requests.post(url + TRIGGER_GET_PATH, json={"id": 96}, headers=auth, timeout=5).status_code == 404
        )
        body = {"trigger_id": 5, "matching": "email_sub", "data": [{"data": {"email": "a@example.com"}}]}
        accepted = requests.post(url + BATCH_PATH, json=body, headers=auth, timeout=5)
        assert accepted.status_code == 200 and accepted.json()["data"]["task_id"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def test_cli_refuses_a_catalog_it_cannot_use(tmp_path: Path) -> None:
    """A catalog file that is not JSON, or holds a wrong value, stops the start (exit 2) naming it."""
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"triggers": [{"id": "five", "name": "x", "list_id": 1, "resource_id": 1}]}')
    for path, words in ((broken, "cannot read the catalog"), (wrong, "triggers.0.id")):
        done = subprocess.run(
            [*TOOLKIT, "sandbox", "--catalog", str(path)], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 2, done.stderr
        assert str(path) in done.stderr and words in done.stderr
