"""Exactly once against every hand (issue 11), over HTTP against the sandbox, with real processes
where the case has them: twin launches, a live sender opened elsewhere, a gateway that forwards
then answers 504, one platform under many spellings, a journal copied mid-launch, journals that
cannot record (damaged, locked, newer, read-only, full disk), the token in echoes and tracebacks,
and ``wait()``'s deadline.

Each case reads the sandbox's send log (``/_sandbox/sends``, one record per imported profile
whose trigger started): "sent twice" is a profile with more than one record; "unaccounted" is a
row neither imported once nor flagged (``unknown`` / ``failed``) in the launch's results.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import os
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import requests

import toolkit
from toolkit.core import contract
from toolkit.core.contract import BatchState
from toolkit.errors import AlreadyLaunched, ApiError, JournalError, OutcomeUnknown, TransportError
from toolkit.sandbox import serve
from toolkit.send.client import Client
from toolkit.send.events import LaunchProgress
from toolkit.send.journal import Journal, key_hash
from toolkit.send.protocol import send_batch_once
from toolkit.send.retry import RetryPolicy

MAPPING = toolkit.Mapping({"email": "email", "name": "_fname"})
TRIGGER = toolkit.Trigger(96)
ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("isolated_journal")


def _segment(n: int, tag: str) -> pl.DataFrame:
    return pl.DataFrame(
        {"email": [f"{tag}{i}@rel.test" for i in range(n)], "name": [f"N{i}" for i in range(n)]}
    )


def _plan(n: int, tag: str, max_rows: int = 20) -> toolkit.Plan:
    return toolkit.plan(_segment(n, tag), MAPPING, TRIGGER, max_rows=max_rows)


def _inspect(server: Any, route: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{server.url}/_sandbox/{route}", headers={"Authorization": f"Bearer {server.token}"},
                          timeout=10)  # fmt: skip
    answer.raise_for_status()
    return answer.json()


def _sends_by_email(server: Any) -> Counter[str]:
    emails = {p["profile_id"]: p["fields"].get("email") for p in _inspect(server, "profiles")}
    return Counter(emails[s["profile_id"]] for s in _inspect(server, "sends"))


def _twice(server: Any) -> int:
    """Profiles the platform started the trigger for more than once."""
    return sum(n > 1 for n in _sends_by_email(server).values())


def _unaccounted(results: pl.DataFrame | Any, server: Any) -> int:
    """Rows neither imported exactly once nor flagged unknown / failed in the results."""
    frame = results if isinstance(results, pl.DataFrame) else pl.from_pandas(results)
    sends = _sends_by_email(server)
    imported = frame.filter(pl.col("status") == "imported")["match_key"].to_list()
    flagged = frame.filter(pl.col("status").is_in(["unknown", "failed"])).height
    return frame.height - sum(sends[key] == 1 for key in imported) - flagged


def _env(server: Any, journal: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "TOOLKIT_API_URL": server.url,
        "TOOLKIT_API_TOKEN": server.token,
        "TOOLKIT_JOURNAL": str(journal),
        "PYTHONPATH": str(ROOT),  # this checkout's toolkit in the child too
        **extra,
    }


def _states(journal: Path) -> dict[str, int]:
    """Batches by state, read from the file as another program would."""
    if not journal.exists():
        return {}
    db = sqlite3.connect(journal, timeout=10)
    try:
        return dict(db.execute("SELECT state, COUNT(*) FROM batches GROUP BY state").fetchall())
    except sqlite3.OperationalError:  # the schema is not there yet
        return {}
    finally:
        db.close()


#: Sends a 10-batch plan one batch at a time (tests hold one of its POSTs at a gateway).
SLOW_CHILD = textwrap.dedent(
    """
    import polars as pl, toolkit
    from toolkit.send.client import Client
    frame = pl.DataFrame({"email": [f"live{i}@rel.test" for i in range(200)], "name": ["L"] * 200})
    plan = toolkit.plan(frame, toolkit.Mapping({"email": "email", "name": "_fname"}), toolkit.Trigger(96),
                        max_rows=20)
    Client.from_env().launch(plan, label="live", concurrency=1, progress=False)
    print("finished", flush=True)
    """
)


def _live_plan() -> toolkit.Plan:
    return toolkit.plan(
        pl.DataFrame({"email": [f"live{i}@rel.test" for i in range(200)], "name": ["L"] * 200}),
        MAPPING, TRIGGER, max_rows=20,
    )  # fmt: skip


# --- 1. twin launches, then resend_unknown() in each ----------------------------------------------------
TWIN_CHILD = textwrap.dedent(
    """
    import json, sys, time, polars as pl, toolkit
    from pathlib import Path
    from toolkit.send.client import Client
    from toolkit.send.retry import RetryPolicy
    frame = pl.DataFrame({"email": [f"twin{i}@rel.test" for i in range(200)], "name": ["T"] * 200})
    plan = toolkit.plan(frame, toolkit.Mapping({"email": "email", "name": "_fname"}), toolkit.Trigger(96),
                        max_rows=20)
    client = Client.from_env(retry=RetryPolicy.no_wait())
    go = Path(sys.argv[1])
    while not go.exists():
        time.sleep(0.002)
    out = {}
    try:
        client.launch(plan, label="twin", progress=False)
        out["launch"] = "sent"
    except toolkit.AlreadyLaunched as exc:
        out["launch"] = "refused: " + str(exc)
    while True:
        try:
            report = client.resume("twin", plan=plan).resend_unknown(progress=False)
            break
        except toolkit.AlreadyLaunched:
            time.sleep(0.02)  # the other process is sending it: read-only until it is done
    out["resent"] = list(report.resent)
    print(json.dumps(out), flush=True)
    """
)


@pytest.mark.slow
def test_two_processes_launching_one_plan_then_resending_send_each_profile_once(tmp_path: Path) -> None:
    """Two processes launch one plan at once, then each resends unknowns: one launch, 0 sent twice, 0 unaccounted."""
    journal = tmp_path / "journal.sqlite"
    go = tmp_path / "go"
    # dropped connections (the platform did nothing) leave batches unknown for resend_unknown()
    with serve(drop_rate=0.15, seed=11, latency_ms=10) as server:
        children = [
            subprocess.Popen([sys.executable, "-c", TWIN_CHILD, str(go)], env=_env(server, journal),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)
        ]  # fmt: skip
        time.sleep(0.5)  # both are importing toolkit; then both go at once
        go.touch()
        outs = []
        for child in children:
            out, err = child.communicate(timeout=180)
            assert child.returncode == 0, err.decode()[-3000:]
            outs.append(json.loads(out.decode().strip().splitlines()[-1]))
        assert sorted(o["launch"][:7] for o in outs) == ["refused", "sent"], outs  # one launched, one refused
        client = Client(server.url, server.token, journal=journal, retry=RetryPolicy.no_wait())
        assert len(client.history()) == 1  # no twin launch
        twin_plan = toolkit.plan(
            _segment(200, "twin").with_columns(name=pl.lit("T")), MAPPING, TRIGGER, max_rows=20
        )
        launch = client.resume("twin", plan=twin_plan).wait(timeout=60, progress=False)
        results = launch.results()
        assert _twice(server) == 0
        assert _unaccounted(results, server) == 0
        client.close()


# --- 2. a second process opens a launch a live process is sending ----------------------------------------
@pytest.mark.slow
def test_a_launch_a_live_process_is_sending_is_read_only_elsewhere(
    sb: Any, make_gateway: Callable[..., Any], tmp_path: Path
) -> None:
    """Resume, status, re-launch and resend while another process is mid-send: read-only, 0 relabelled, 0 twice."""
    journal = tmp_path / "journal.sqlite"
    gateway = make_gateway(sb, "forward", "forward", "hold")
    env = _env(sb, journal, TOOLKIT_API_URL=gateway.url)
    child = subprocess.Popen([sys.executable, "-c", SLOW_CHILD], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert gateway.holding.wait(120), child.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
        other = Client(gateway.url, sb.token, journal=journal)
        seen = other.resume("live")  # what `toolkit resume` / the form do first
        assert seen.sender is not None and seen.sender.pid == child.pid
        with pytest.raises(AlreadyLaunched, match=rf"being sent right now .* process {child.pid} on"):
            other.launch(_live_plan(), progress=False)  # a re-launch
        with pytest.raises(AlreadyLaunched, match="being sent right now"):
            other.resume("live", plan=_live_plan()).resend_unknown(progress=False)
        seen.wait(timeout=0, progress=False)  # follows what is sent so far
        status = subprocess.run([sys.executable, "-m", "toolkit", "status", "live"], env=env,
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert f"being sent right now by process {child.pid}" in status.stdout, status.stdout + status.stderr
        states = [b.state for b in seen.batches]
        assert states[2] == "sending" and set(states[:2]) <= {
            "sent",
            "completed",
        }  # in flight: not relabelled
        gateway.release.set()
        out, err = child.communicate(timeout=120)
        assert b"finished" in out, err.decode()[-2000:]
    finally:
        gateway.release.set()
        if child.poll() is None:
            child.kill()
    launch = other.resume("live", plan=_live_plan()).wait(timeout=60, progress=False)
    assert launch.sender is None  # done: the lease is released
    relabelled = [
        b.index for b in launch.batches if b.state == "unknown" or "caught in flight" in (b.error or "")
    ]
    assert relabelled == []
    assert _twice(sb) == 0 and _unaccounted(launch.results(), sb) == 0
    assert launch.summary()["imported"] == 200
    other.close()


# --- 3. a gateway that forwards, then answers 504 --------------------------------------------------------
def test_a_batch_a_gateway_forwarded_then_answered_504_is_posted_once_and_unknown(
    sb: Any, make_gateway: Callable[..., Any], tmp_path: Path
) -> None:
    """A batch a gateway forwarded then answered 504 is POSTed once, ends unknown, and is never re-sent by itself."""
    gateway = make_gateway(sb, "forward-then-504")
    client = Client(gateway.url, sb.token, journal=tmp_path / "journal.sqlite", retry=RetryPolicy.no_wait())
    plan = _plan(60, "gw")
    launch = client.launch(plan, label="gateway", concurrency=1, progress=False)
    assert [b.state for b in launch.batches] == ["unknown", "sent", "sent"]
    assert "HTTP 504, which a gateway" in launch.batches[0].error
    with pytest.raises(AlreadyLaunched):
        client.launch(plan, progress=False)  # the re-run sends nothing
    launch.wait(timeout=60, progress=False)
    assert [a for p, a in gateway.posts if p == contract.BATCH_PATH] == [
        "forward-then-504",
        "forward",
        "forward",
    ]
    assert len(_inspect(sb, "tasks")) == 3  # the platform did get the first batch
    assert _twice(sb) == 0 and _unaccounted(launch.results(), sb) == 0
    client.close()


# --- 4. one platform, many spellings -----------------------------------------------------------------------
def test_the_same_platform_under_another_spelling_is_already_launched(sb: Any, tmp_path: Path) -> None:
    """127.0.0.1, localhost, LOCALHOST. and [::1] with the same port are one platform: AlreadyLaunched."""
    journal = tmp_path / "journal.sqlite"
    port = sb.url.rsplit(":", 1)[1]
    first = Client(f"http://127.0.0.1:{port}", sb.token, journal=journal)
    plan = _plan(40, "host")
    first.launch(plan, progress=False)
    first.import_and_start({"email": "one@rel.test", "name": "O"}, MAPPING, TRIGGER)
    for url in (f"http://localhost:{port}", f"HTTP://LOCALHOST.:{port}/api/v1.1/", f"http://[::1]:{port}"):
        again = Client(url, sb.token, journal=journal)
        with pytest.raises(AlreadyLaunched, match=rf"on http://localhost:{port}"):
            # [::1] is not where the sandbox listens: only the journal can tell, and it must
            again.launch(plan, progress=False, preflight=False, allow_sample=True)
        with pytest.raises(AlreadyLaunched):
            again.import_and_start({"email": "one@rel.test", "name": "O"}, MAPPING, TRIGGER)
        again.close()
    assert _twice(sb) == 0 and sum(_sends_by_email(sb).values()) == 41
    first.close()


def test_a_relative_journal_path_is_fixed_when_the_client_is_made(
    sb: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TOOLKIT_JOURNAL=journal.sqlite names the file where the client was made, whatever the cwd later."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.setenv("TOOLKIT_JOURNAL", "journal.sqlite")
    monkeypatch.setenv("TOOLKIT_API_URL", sb.url)
    monkeypatch.setenv("TOOLKIT_API_TOKEN", sb.token)
    monkeypatch.chdir(tmp_path / "a")
    client = Client.from_env()
    monkeypatch.chdir(tmp_path / "b")
    client.launch(_plan(10, "rel"), progress=False)
    assert client.journal_path == str(tmp_path / "a" / "journal.sqlite")
    assert (tmp_path / "a" / "journal.sqlite").exists() and not (tmp_path / "b" / "journal.sqlite").exists()
    client.close()


# --- 5. a journal copied mid-launch (the main file alone) -------------------------------------------------
@pytest.mark.slow
def test_a_journal_copied_mid_launch_knows_every_sent_batch(
    sb: Any, make_gateway: Callable[..., Any], tmp_path: Path
) -> None:
    """A copy of journal.sqlite alone, taken mid-launch, knows its sent batches: resuming from it sends none twice."""
    journal, copy = tmp_path / "journal.sqlite", tmp_path / "moved" / "journal.sqlite"
    copy.parent.mkdir()
    gateway = make_gateway(sb, "forward", "forward", "forward", "hold")
    child = subprocess.Popen([sys.executable, "-c", SLOW_CHILD], env=_env(sb, journal, TOOLKIT_API_URL=gateway.url),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert gateway.holding.wait(120), child.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
        reader = sqlite3.connect(journal, timeout=10, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM batches").fetchone()  # a read lock: no write half done
        shutil.copyfile(journal, copy)  # the main file only (no -wal, no -journal), the sender still open
        reader.execute("ROLLBACK")
        reader.close()
    finally:
        child.kill()  # the sender dies mid-send; then its held request reaches the platform
        child.wait(10)
        gateway.release.set()
    assert _states(copy) == {"sent": 3, "sending": 1, "planned": 6}
    client = Client(gateway.url, sb.token, journal=copy)
    launch = client.launch(_live_plan(), label="live", progress=False)  # the same plan: resumes it
    assert [b.state for b in launch.batches][:4] == ["sent", "sent", "sent", "unknown"]  # nothing re-sent
    assert len(client.history()) == 1
    with pytest.raises(AlreadyLaunched):
        client.launch(_live_plan(), progress=False)
    launch.wait(timeout=60, progress=False)
    assert _twice(sb) == 0 and _unaccounted(launch.results(), sb) == 0
    client.close()


# --- 6. journals that cannot record: JournalError, nothing sent ---------------------------------------------
def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00\x13garbage" * 300)


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _future(path: Path) -> None:
    Journal(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()


@pytest.mark.parametrize(
    ("spoil", "message"),
    [(_garbage, "is damaged"), (_empty, r"is empty \(0 bytes\)"), (_future, "written by a newer toolkit")],
    ids=["damaged", "empty", "future-version"],
)
def test_a_journal_that_cannot_be_read_sends_nothing(
    sb: Any, tmp_path: Path, spoil: Callable[[Path], None], message: str
) -> None:
    """Damaged, empty and future-version journals: a JournalError naming the file, nothing sent."""
    path = tmp_path / "journal.sqlite"
    spoil(path)
    client = Client(sb.url, sb.token, journal=path)
    with pytest.raises(JournalError, match=message) as info:
        client.launch(_plan(20, "spoilt"), progress=False)
    assert str(path) in str(info.value) and isinstance(info.value, toolkit.ToolkitError)
    with pytest.raises(JournalError):
        client.import_and_start({"email": "spoilt@rel.test", "name": "S"}, MAPPING, TRIGGER)
    assert _inspect(sb, "sends") == [] and _inspect(sb, "tasks") == []
    client.close()


def test_a_locked_journal_sends_nothing(sb: Any, tmp_path: Path) -> None:
    """Another program holding the journal's write lock: JournalError after the timeout, nothing sent."""
    path = tmp_path / "journal.sqlite"
    journal = Journal(path, timeout=0.3)
    client = Client(sb.url, sb.token, journal=journal)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(JournalError, match=r"is locked: another program held it for more than 0.3 s"):
            client.launch(_plan(20, "locked"), progress=False)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _inspect(sb, "sends") == [] and _inspect(sb, "tasks") == []
    client.close()
    journal.close()


UNPRIVILEGED_CHILD = textwrap.dedent(
    """
    import polars as pl, toolkit
    from toolkit.send.client import Client
    frame = pl.DataFrame({"email": [f"ro{i}@rel.test" for i in range(20)], "name": ["R"] * 20})
    plan = toolkit.plan(frame, toolkit.Mapping({"email": "email", "name": "_fname"}), toolkit.Trigger(96))
    try:
        Client.from_env().launch(plan, progress=False)
    except toolkit.JournalError as exc:
        print("JournalError:", exc)
    else:
        print("sent")
    """
)


def _as_a_user(argv: list[str]) -> list[str]:
    """``argv`` run without root's power to write read-only files (``setpriv``), when we are root."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a read-only file is writable for root")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", *argv]


def test_a_read_only_journal_sends_nothing(sb: Any, tmp_path: Path) -> None:
    """A process whose journal file is read-only: JournalError saying so, nothing sent."""
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    path.chmod(0o444)
    done = subprocess.run(_as_a_user([sys.executable, "-c", UNPRIVILEGED_CHILD]), env=_env(sb, path),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.stdout.startswith("JournalError: the journal ") and "is read-only" in done.stdout, (
        done.stdout + done.stderr
    )
    assert str(path) in done.stdout and "Traceback" not in done.stderr
    assert _inspect(sb, "sends") == [] and _inspect(sb, "tasks") == []


def test_a_journal_on_a_full_disk_sends_nothing(sb: Any, tmp_path: Path) -> None:
    """A process that cannot write the journal's files (the disk is full): JournalError, nothing sent."""
    path = tmp_path / "journal.sqlite"
    Journal(path).close()

    def full_disk() -> None:  # in the child: no file may be written past its first kilobyte
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    done = subprocess.run([sys.executable, "-c", UNPRIVILEGED_CHILD], env=_env(sb, path), capture_output=True,
                          text=True, timeout=120, preexec_fn=full_disk)  # fmt: skip
    assert done.stdout.startswith("JournalError: the journal ") and "the disk is full" in done.stdout, (
        done.stdout + done.stderr
    )
    assert str(path) in done.stdout and "Traceback" not in done.stderr
    assert _inspect(sb, "sends") == [] and _inspect(sb, "tasks") == []


# --- 7. the token: echoed, shortened, in traceback locals ---------------------------------------------------
TOKEN = "ECHOED-SECRET-TOKEN-0123456789abcdef"


@contextmanager
def _echo_server(status: int, content_type: str = "application/json") -> Iterator[str]:
    """A server answering every POST with ``status`` and the request's token quoted back (from its
    header or its body) 296 characters into its answer: a cut at 300 characters falls inside it."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            sent = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            token = self.headers.get("Authorization") or json.loads(sent).get("token", "")
            if content_type == "application/json":  # '{"error": 400, "error_text": "' comes first
                body = json.dumps({"error": status, "error_text": "x" * 254 + " you sent: " + token}).encode()
            else:
                body = ("x" * 285 + " you sent: " + token).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _shown(exc: BaseException) -> str:
    """Everything a user or a tool may print of an error: message, repr, excerpt, and the whole
    chain's traceback with every frame's locals (from the call down: the test's own frame holds
    the sandbox, whose repr names its token)."""
    response = getattr(exc, "response", None)
    below_the_test = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
    trace = traceback.TracebackException(type(exc), exc, below_the_test, capture_locals=True)
    return "\n".join([str(exc), repr(exc), getattr(response, "excerpt", ""), "".join(trace.format())])


def _no_token(text: str) -> None:
    assert TOKEN not in text
    for start in range(0, len(TOKEN) - 10):  # nor any 11 characters of it (a cut token)
        assert TOKEN[start : start + 11] not in text, TOKEN[start : start + 11]


@pytest.mark.parametrize("token_in_body", [False, True])
@pytest.mark.parametrize(("status", "kind"), [(400, ApiError), (500, OutcomeUnknown), (200, OutcomeUnknown)])
def test_a_server_echoing_the_token_never_shows_it(status: int, kind: type, token_in_body: bool) -> None:
    """An answer echoing the token at character 296 leaves no piece of it in the error, excerpt or traceback locals."""
    content_type = "text/html" if status == 200 else "application/json"  # 200: unreadable
    with _echo_server(status, content_type) as url:
        client = Client(
            url, TOKEN, journal=":memory:", token_in_body=token_in_body, retry=RetryPolicy.no_wait()
        )
        with pytest.raises(kind) as info:
            client.send_batch(_plan(2, "echo").batches[0])
        assert "you sent: " in info.value.response.excerpt  # the echo is there, its token scrubbed
        _no_token(_shown(info.value))
        client.close()


@pytest.mark.parametrize("token_in_body", [False, True])
def test_no_frame_of_a_failed_call_holds_the_token(tmp_path: Path, token_in_body: bool) -> None:
    """A call failing in the network (refused, answer lost) shows no token in any frame's locals of its error chain."""
    client = Client(f"http://127.0.0.1:{_free_port()}", TOKEN, journal=":memory:", token_in_body=token_in_body,
                    retry=RetryPolicy.no_wait(1))  # fmt: skip
    with pytest.raises(TransportError) as refused:
        client.send_batch(_plan(2, "refused").batches[0])
    client.close()
    assert not isinstance(refused.value, OutcomeUnknown)
    _no_token(_shown(refused.value))
    with serve(latency_ms=500, token=TOKEN) as server:
        client = Client(server.url, TOKEN, journal=":memory:", timeout=0.1, token_in_body=token_in_body)
        with pytest.raises(OutcomeUnknown) as lost:
            client.send_batch(_plan(2, "lost").batches[0])
        client.close()
    assert lost.value.__cause__ is not None  # the library's error is still chained, without its frames
    _no_token(_shown(lost.value))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_journal_keeps_the_platforms_words_without_the_key(sb: Any, tmp_path: Path) -> None:
    """A row refused with "no profile with profile_id 'nope-1'" is journalled with the key's hash only."""
    client = Client(sb.url, sb.token, journal=tmp_path / "journal.sqlite")
    frame = pl.DataFrame({"pid": ["nope-1", "nope-2"]})
    plan = toolkit.plan(frame, toolkit.Mapping({"pid": "profile_id"}, matching="profile_id"), TRIGGER)
    launch = client.launch(plan, label="nope", progress=False).wait(timeout=60, progress=False)
    marks = [f"no profile with profile_id '<key sha256:{key_hash(k)[:16]}>'" for k in ("nope-1", "nope-2")]
    assert client.journal.row_result_columns(launch.launch_id)["row_text"] == marks
    assert client.resume("nope").results()["error_text"].to_list() == marks  # from the journal alone
    texts = launch.results()["error_text"].to_list()  # with the plan: this session knows the keys
    assert texts == ["no profile with profile_id 'nope-1'", "no profile with profile_id 'nope-2'"]
    client.close()
    assert b"nope-1" not in (tmp_path / "journal.sqlite").read_bytes()


# --- 8. wait()'s deadline -------------------------------------------------------------------------------------
def test_wait_returns_by_its_deadline_while_tasks_stay_processing(make_sandbox: Callable[..., Any],
                                                                  tmp_path: Path) -> None:  # fmt: skip
    """Tasks that stay processing: wait(timeout=0) reads once and returns timed out, state kept."""
    server = make_sandbox(paused=True)  # the sandbox's worker imports nothing until resumed
    client = Client(server.url, server.token, journal=tmp_path / "journal.sqlite")
    launch = client.launch(_plan(60, "slow"), progress=False)
    assert launch.wait(timeout=0, progress=False).timed_out
    assert launch.summary()["pending"] == 60 and all(b.state == "sent" for b in launch.batches)
    client.close()


def test_wait_returns_by_its_deadline_while_another_process_keeps_sending(sb: Any, tmp_path: Path) -> None:
    """wait(timeout=0) returns timed out even when each round's tasks finish while another sender keeps adding more."""
    journal = Journal(tmp_path / "journal.sqlite")
    client = Client(sb.url, sb.token, journal=journal)
    plan = _plan(120, "stream", max_rows=20)
    opened = journal.open_launch(owner="the-other-process", label="stream", trigger_id=96, host=client.host,
                                 fingerprint=plan.fingerprint, format="json", n_rows=plan.n_rows, summary={},
                                 batches=[(b.index, b.digest, b.rows) for b in plan.batches])  # fmt: skip
    lid = opened.record.launch_id

    def send_finished(index: int) -> None:  # what the other process does: send, and the task is done
        delivery = send_batch_once(client, lid, plan.batches[index], owner="the-other-process")
        while not client.task_status(delivery.task_id).finished:
            time.sleep(0.01)

    send_finished(0)
    completed: list[int] = []

    def keep_sending(event: LaunchProgress) -> None:
        done = sum(s == BatchState.COMPLETED for s in event.batches.values())
        if done > len(completed) and done < len(plan.batches):
            completed.append(done)
            send_finished(done)  # the other process sends the next batch as this one finishes

    follower = client.resume("stream")
    assert follower.sender is not None  # read-only: the other process holds the launch
    follower.wait(timeout=0, progress=False, on_progress=keep_sending)
    assert follower.timed_out
    assert sum(b.state == "planned" for b in follower.batches) > 0  # it did not follow the sender to the end
    client.close()


# --- 9. resend_unknown() tells what it left out -------------------------------------------------------------
def test_resend_unknown_leaves_out_what_another_launch_delivered(sb: Any, tmp_path: Path) -> None:
    """resend_unknown() does not re-send what another launch delivered, and its report names that launch and task."""
    client = Client(sb.url, sb.token, journal=tmp_path / "journal.sqlite")
    small, grown = _plan(40, "grown"), _plan(60, "grown")  # the same first two batches
    first = client.launch(small, label="first", progress=False)
    holder = first.batches[0]
    # the grown plan was launched while the first launch was still sending its batch 0
    lid = client.journal.create_launch(
        label="grown", trigger_id=96, host=client.host, fingerprint=grown.fingerprint, format="json",
        n_rows=grown.n_rows, summary={}, batches=[(b.index, b.digest, b.rows) for b in grown.batches],
        linked={0: dataclasses.replace(holder, state=BatchState.SENDING), 1: first.batches[1]},
    )  # fmt: skip
    assert [b.state for b in client.journal.batches(lid)] == ["unknown", "sent", "planned"]
    events: list[LaunchProgress] = []
    report = client.resume(lid, plan=grown).resend_unknown(progress=False, on_progress=events.append)
    assert report.resent == () and [(b.index, b.by, b.task_id) for b in report.left_out] == [
        (0, first.launch_id, holder.task_id)
    ]
    assert f"launch {first.launch_id} sent the same batch (task {holder.task_id}" in str(report)
    assert "left out: batch 0" in events[-1].message
    assert [b.state for b in client.journal.batches(lid)][:2] == ["sent", "sent"]
    assert _twice(sb) == 0
    client.close()


def test_a_journal_that_fails_after_a_send_stops_the_launch_and_never_resends(
    sb: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal failing between a send and its record stops the launch; a re-run reads that batch unknown: 0 twice."""
    path = tmp_path / "journal.sqlite"
    client = Client(sb.url, sb.token, journal=path)
    plan = _plan(60, "midway")

    def disk_full(self: Journal, *args: object, **kwargs: object) -> None:
        raise JournalError(f"the journal {self.path} could not be written: the disk is full", path=self.path)

    with monkeypatch.context() as patch:
        patch.setattr(Journal, "mark_sent", disk_full)
        with pytest.raises(
            JournalError, match=r"batch 0 of launch \w+ was sent \(task [\w-]+\), but the journal"
        ):
            client.launch(plan, label="midway", concurrency=1, progress=False)
    assert [b.state for b in client.journal.batches(client.journal.find("midway").launch_id)] == [
        "sending", "planned", "planned",
    ]  # fmt: skip
    launch = client.launch(plan, label="midway", progress=False)  # the re-run, once there is room again
    assert [b.state for b in launch.batches] == ["unknown", "sent", "sent"]
    launch.wait(timeout=60, progress=False)
    assert _twice(sb) == 0 and _unaccounted(launch.results(), sb) == 0
    client.close()
