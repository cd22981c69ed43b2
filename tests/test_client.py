"""The HTTP client against the real sandbox over HTTP: auth, errors, retries, rate limits, faults.

Requests are counted with the sandbox's own access log (logger ``toolkit.sandbox``), fault
sequences are chosen with the sandbox's seeded fault stream (``toolkit.sandbox.knobs.Faults``).
A few shapes the sandbox never produces (an error with HTTP 200, a malformed answer) are
served by a tiny stdlib HTTP server.
"""

from __future__ import annotations

import http.server
import json
import logging
import pickle
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
import requests

import toolkit
from toolkit.core import contract
from toolkit.errors import (
    AlreadyLaunched,
    ApiError,
    AuthError,
    ConfigurationError,
    InvalidArgumentError,
    OutcomeUnknown,
    RateLimited,
    RequestTooLarge,
    ToolkitError,
    TransportError,
)
from toolkit.sandbox import serve
from toolkit.sandbox.knobs import Faults, Knobs
from toolkit.send.client import Client, TaskStatus, splice_token
from toolkit.send.journal import Journal
from toolkit.send.retry import RetryNotice, RetryPolicy

EXAMPLES = Path(__file__).parent / "fixtures" / "examples"
MAPPING = toolkit.Mapping({"email": "email", "name": "_fname"})
TRIGGER = toolkit.Trigger(96)


pytestmark = pytest.mark.usefixtures("isolated_journal")


def _batch(n: int = 3, *, fmt: str = "json", start: int = 0) -> toolkit.Batch:
    frame = pl.DataFrame({"email": [f"c{start + i}@client.test" for i in range(n)], "name": ["Ann"] * n})
    return toolkit.plan(frame, MAPPING, TRIGGER, format=fmt).batches[0]  # type: ignore[call-overload]


def _inspect(server: object, route: str) -> list[dict]:
    r = requests.get(
        f"{server.url}/_sandbox/{route}",  # type: ignore[attr-defined]
        headers={"Authorization": f"Bearer {server.token}"},  # type: ignore[attr-defined]
        timeout=10,
    )
    r.raise_for_status()
    return r.json()


def _calls(caplog: pytest.LogCaptureFixture, path: str, at_least: int = 1) -> list[str]:
    """The sandbox's access-log outcomes for requests to ``path`` (e.g. '503 (failed)').

    The sandbox logs a request once its answer is out, so the last line may trail the
    client by a moment: wait (briefly) for ``at_least`` lines.
    """
    deadline = time.monotonic() + 2
    while True:
        found = [
            r.getMessage().split("->", 1)[1].rsplit(" in ", 1)[0].strip()
            for r in list(caplog.records)
            if r.name == "toolkit.sandbox" and f"POST {path} ->" in r.getMessage()
        ]
        if len(found) >= at_least or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


def _seed_for(pattern: list[str], **knobs: float) -> int:
    """A seed whose first fault draws are ``pattern`` ('ok', 'drop', 'lose', '500', '502', ...)."""
    for seed in range(20_000):
        faults = Faults(Knobs(seed=seed, **knobs))
        drawn = []
        for _ in pattern:
            f = faults.draw()
            drawn.append(str(f.status) if f.kind == "fail" else f.kind)
        if drawn == pattern:
            return seed
    raise AssertionError(f"no seed gives {pattern}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _fixed_server(status: int, body: bytes, content_type: str = "application/json") -> Iterator[str]:
    """A stdlib server answering every POST with the same status and body."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
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


# --- configuration -----------------------------------------------------------------------------
def test_from_env_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing TOOLKIT_API_URL / TOOLKIT_API_TOKEN is named in a ConfigurationError."""
    monkeypatch.delenv("TOOLKIT_API_URL", raising=False)
    monkeypatch.delenv("TOOLKIT_API_TOKEN", raising=False)
    with pytest.raises(ConfigurationError, match="TOOLKIT_API_URL and TOOLKIT_API_TOKEN are not set"):
        Client.from_env()
    monkeypatch.setenv("TOOLKIT_API_URL", "http://127.0.0.1:1")
    with pytest.raises(ConfigurationError, match=r"^TOOLKIT_API_TOKEN is not set") as info:
        Client.from_env()
    assert isinstance(info.value, (ToolkitError, ValueError))


def test_from_env_reads_url_token_and_journal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """from_env() takes the URL (API prefix dropped), the token and TOOLKIT_JOURNAL."""
    monkeypatch.setenv("TOOLKIT_API_URL", "https://api.example.com/api/v1.1/")
    monkeypatch.setenv("TOOLKIT_API_TOKEN", "tok-from-env")
    monkeypatch.setenv("TOOLKIT_JOURNAL", str(tmp_path / "env-journal.sqlite"))
    client = Client.from_env(rate_limit=3)
    assert client.base_url == "https://api.example.com" and client.host == "https://api.example.com"
    assert Path(client.journal.path) == tmp_path / "env-journal.sqlite"
    assert "tok-from-env" not in repr(client)
    client.close()


def test_bad_configuration_is_refused() -> None:
    """A URL without http(s), an empty token, credentials in the URL or a zero timeout are refused."""
    with pytest.raises(ConfigurationError, match="http"):
        Client("api.example.com", "t")
    with pytest.raises(ConfigurationError, match="token is empty"):
        Client("https://api.example.com", " ")
    with pytest.raises(ConfigurationError, match="not in the URL"):
        Client("https://user:secret@api.example.com", "t")
    with pytest.raises(InvalidArgumentError):
        Client("https://api.example.com", "t", timeout=0)


def test_token_hidden_from_repr_vars_and_pickle() -> None:
    """The token shows in no repr, vars() or pickle of a client."""
    client = Client("https://api.example.com", "SUPERSECRET-1", journal=":memory:", rate_limit=2)
    shown = repr(client) + str(client) + repr(vars(client)) + str(vars(client))
    assert "SUPERSECRET" not in shown
    assert "token='***'" in repr(client)
    with pytest.raises(TypeError, match="pickle"):
        pickle.dumps(client)


# --- the calls -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_send_batch_and_poll_status(sb: object, make_client: Callable[..., Client], fmt: str) -> None:
    """A batch sent over HTTP gets a task id whose status ends done with one result per row."""
    client = make_client(sb)
    batch = _batch(3, fmt=fmt, start=100 if fmt == "json" else 200)
    task_id = client.send_batch(batch)
    for _ in range(2000):  # a bound, not a clock: the sandbox finishes 3 rows in a moment
        if (status := client.task_status(task_id, format=fmt)).finished:  # type: ignore[arg-type]
            break
        time.sleep(0.05)
    assert status.done and status.progress == 100
    assert status.results is not None and len(status.results) == 3
    assert all(r.get("profile_id") for r in status.results)
    client.close()


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_token_in_body(sb: object, make_client: Callable[..., Client], fmt: str) -> None:
    """token_in_body=True authenticates with the token spliced into JSON and XML bodies."""
    client = make_client(sb, token_in_body=True)
    task_id = client.send_batch(_batch(2, fmt=fmt, start=300 if fmt == "json" else 400))
    assert client.task_status(task_id, format=fmt).task_id == task_id  # type: ignore[arg-type]
    client.close()


def test_splice_token_keeps_the_rows_bytes() -> None:
    """Splicing the token in leaves the planned bytes after it untouched."""
    body = _batch(2).body
    spliced = splice_token(body, "json", 'to"k')
    assert next(iter(orjson.loads(spliced))) == "token" and orjson.loads(spliced)["token"] == 'to"k'
    assert spliced.endswith(body[1:])  # the rest is byte-identical
    xml = _batch(2, fmt="xml").body
    spliced_xml = splice_token(xml, "xml", "a&b")
    parsed = contract.loads_xml(spliced_xml)
    assert next(iter(parsed)) == "token" and parsed["token"] == "a&b"
    assert (
        splice_token(b'<?xml version="1.0"?><xml/>', "xml", "t")
        == b'<?xml version="1.0"?><xml><token>t</token></xml>'
    )


def test_status_parsing_of_the_seed_examples() -> None:
    """The documented status answers (JSON, XML) and unknown states are read tolerantly."""
    as_json = TaskStatus.from_payload(
        "t", orjson.loads((EXAMPLES / "status_response_completed.json").read_bytes())
    )
    assert as_json.done and as_json.progress == 100
    assert as_json.results == [
        {"profile_id": "61e947333f62fc26d384452c"},
        {"profile_id": "61e947333f62fc26d384452e"},
    ]
    xml = contract.loads_xml(
        (EXAMPLES / "status_response_completed.xml").read_bytes(), contract.STATUS_LIST_PATHS
    )
    as_xml = TaskStatus.from_payload("t", xml)
    assert as_xml.done and as_xml.progress == 100 and as_xml.results is None and as_xml.errors == []
    odd = TaskStatus.from_payload("t", {"data": {"status": "Verifying", "progress": "n/a"}})
    assert (odd.status, odd.progress, odd.finished) == ("Verifying", 0.0, False)  # kept raw, still running


def test_import_and_start_one_profile(sb: object, make_client: Callable[..., Client]) -> None:
    """One profile is validated and normalized like a plan, sent, and imported."""
    client = make_client(sb)
    answer = client.import_and_start({"email": " Solo@Client.TEST ", "name": "Solo"}, MAPPING, TRIGGER)
    assert answer["error"] == 0 and answer["profile_id"]
    stored = {p["profile_id"]: p["fields"] for p in _inspect(sb, "profiles")}
    assert stored[answer["profile_id"]]["email"] == "solo@client.test"  # normalized like a plan
    xml_answer = client.import_and_start(pl.DataFrame({"email": ["x1@client.test"], "name": ["X"]}), MAPPING,
                                         TRIGGER, format="xml")  # fmt: skip
    assert int(xml_answer["error"]) == 0 and xml_answer["profile_id"]
    with pytest.raises(InvalidArgumentError, match="not sent"):
        client.import_and_start({"email": "not-an-email", "name": "N"}, MAPPING, TRIGGER)
    client.close()


# --- errors ----------------------------------------------------------------------------------------
def test_wrong_token_is_auth_error_without_the_token(sb: object, tmp_path: Path) -> None:
    """A refused token is an AuthError whose text names the fix and not the token."""
    secret = "WRONG-SECRET-TOKEN-123"
    client = Client(sb.url, secret, journal=tmp_path / "j.sqlite")  # type: ignore[attr-defined]
    with pytest.raises(AuthError) as info:
        client.send_batch(_batch(1, start=500))
    err = info.value
    assert err.code == 403 and isinstance(err, ApiError) and err.response.status_code == 403
    assert "TOOLKIT_API_TOKEN" in str(err)  # says what to do
    everything = " ".join([str(err), repr(err), repr(err.args), repr(err.request), repr(err.response)])
    assert secret not in everything
    client.close()


def test_request_too_large(make_client: Callable[..., Client]) -> None:
    """An over-limit body is a RequestTooLarge that says to plan smaller batches."""
    with serve(max_body_bytes=300) as server:
        client = make_client(server)
        with pytest.raises(RequestTooLarge) as info:
            client.send_batch(_batch(20, start=600))
        assert info.value.code == 400 and "too large" in (info.value.debug or "")
        assert "max_bytes" in str(info.value)
        client.close()


def test_error_with_http_200_is_an_api_error(tmp_path: Path) -> None:
    """error != 0 under HTTP 200 (JSON or XML) is raised as the platform's error."""
    body = orjson.dumps({"error": 409, "error_text": "more than one profile matches"})
    with _fixed_server(200, body) as url:
        client = Client(url, "t", journal=tmp_path / "j.sqlite", max_retries=0)
        with pytest.raises(ApiError) as info:
            client.task_status("x")
        assert (info.value.code, info.value.text) == (409, "more than one profile matches")
        client.close()
    xml = b"<xml>\n<error>403</error>\n<error_text>Forbidden</error_text>\n</xml>\n"
    with _fixed_server(200, xml, "application/xml") as url:
        client = Client(url, "t", journal=tmp_path / "j.sqlite", max_retries=0)
        with pytest.raises(AuthError):
            client.send_batch(_batch(1, fmt="xml"))
        client.close()


def test_unreadable_answer_is_an_api_error(tmp_path: Path) -> None:
    """An answer that is neither JSON nor XML is an ApiError saying so."""
    with _fixed_server(200, b"<html>proxy login</html", "text/html") as url:
        client = Client(url, "t", journal=tmp_path / "j.sqlite")
        with pytest.raises(ApiError, match="unreadable"):
            client.task_status("x")
        client.close()


# --- retries -----------------------------------------------------------------------------------------
def test_503_with_retry_after_is_retried_and_the_batch_accepted_once(
    sb: object, make_client: Callable[..., Client], make_gateway: Callable[..., Any]
) -> None:
    """A 503 with Retry-After (refused before anything was done) is POSTed again, and the batch accepted once."""
    gateway = make_gateway(sb, "503-retry-after", "503-retry-after")
    client = Client(gateway.url, sb.token, journal=":memory:", retry=RetryPolicy.no_wait())  # type: ignore[attr-defined]
    assert client.send_batch(_batch(2, start=700))
    batch_posts = [action for path, action in gateway.posts if path == contract.BATCH_PATH]
    assert batch_posts == ["503-retry-after", "503-retry-after", "forward"]
    assert len(_inspect(sb, "tasks")) == 1  # POSTed three times, accepted once
    client.close()


@pytest.mark.parametrize("action", ["502", "503", "forward-then-504"])
def test_an_ambiguous_5xx_to_a_batch_is_unknown_after_one_post(
    sb: object, make_gateway: Callable[..., Any], action: str
) -> None:
    """A 502/504 or a bare 503 may follow a forwarded request: one POST, then OutcomeUnknown saying why."""
    gateway = make_gateway(sb, action)
    client = Client(gateway.url, sb.token, journal=":memory:", retry=RetryPolicy.no_wait())  # type: ignore[attr-defined]
    with pytest.raises(OutcomeUnknown, match="gateway in front of the platform") as info:
        client.send_batch(_batch(2, start=750))
    assert info.value.response is not None and info.value.response.status_code == int(action[-3:])
    assert [path for path, _ in gateway.posts] == [contract.BATCH_PATH]
    client.close()


def test_500_to_a_batch_is_unknown_not_retried(
    make_client: Callable[..., Client], caplog: pytest.LogCaptureFixture
) -> None:
    """HTTP 500 to a batch is OutcomeUnknown after one POST: never re-sent."""
    caplog.set_level(logging.INFO, logger="toolkit.sandbox")
    seed = _seed_for(["500", "ok"], fail_rate=0.5)
    with serve(seed=seed, fail_rate=0.5) as server:
        client = make_client(server)
        with pytest.raises(OutcomeUnknown, match="500") as info:
            client.send_batch(_batch(2, start=800))
        assert isinstance(info.value, TransportError) and info.value.response.status_code == 500
        assert _calls(caplog, contract.BATCH_PATH, 1) == ["500 (failed)"]
        client.close()


def test_status_polls_retry_500_and_dropped_connections(
    make_client: Callable[..., Client], caplog: pytest.LogCaptureFixture
) -> None:
    """A status poll is retried through a dropped connection and a 500."""
    caplog.set_level(logging.INFO, logger="toolkit.sandbox")
    seed = _seed_for(["ok", "drop", "500", "ok"], fail_rate=0.3, drop_rate=0.3)
    with serve(seed=seed, fail_rate=0.3, drop_rate=0.3) as server:
        client = make_client(server, retry=RetryPolicy.no_wait())
        task_id = client.send_batch(_batch(1, start=900))
        assert client.task_status(task_id).task_id == task_id
        assert _calls(caplog, contract.STATUS_PATH, 3) == ["no answer (dropped)", "500 (failed)", "200"]
        client.close()


def test_dropped_or_lost_batch_is_unknown_and_not_resent(
    make_client: Callable[..., Client], caplog: pytest.LogCaptureFixture
) -> None:
    """A client cannot tell a connection closed before handling from an answer lost after it:
    both are OutcomeUnknown for a batch, sent once. The sandbox shows which it was."""
    caplog.set_level(logging.INFO, logger="toolkit.sandbox")
    seed = _seed_for(["drop", "lose"], drop_rate=0.4, lose_response_rate=0.4)
    with serve(seed=seed, drop_rate=0.4, lose_response_rate=0.4) as server:
        client = make_client(server)
        with pytest.raises(OutcomeUnknown, match="resend_unknown"):
            client.send_batch(_batch(2, start=1000))
        assert _inspect(server, "tasks") == []  # dropped: nothing was done
        with pytest.raises(OutcomeUnknown):
            client.send_batch(_batch(2, start=1010))
        assert len(_inspect(server, "tasks")) == 1  # lost: the platform has it
        assert _calls(caplog, contract.BATCH_PATH, 2) == ["no answer (dropped)", "no answer (answer lost)"]
        client.close()


def test_429_waits_for_retry_after(
    make_client: Callable[..., Client], caplog: pytest.LogCaptureFixture
) -> None:
    """A 429 is retried after the server's Retry-After, not after a backoff of our own."""
    caplog.set_level(logging.INFO, logger="toolkit.sandbox")
    with serve(rate_limit=1) as server:
        client = make_client(server)
        task_id = client.send_batch(_batch(1, start=1100))
        notices: list[RetryNotice] = []
        client.task_status(task_id, on_retry=notices.append)  # over the limit: 429, Retry-After: 1, then ok
        outcomes = _calls(caplog, contract.STATUS_PATH, 2)
        assert outcomes[0].startswith("429") and outcomes[-1] == "200"
        assert notices and all(n.delay == 1.0 for n in notices)  # the server's Retry-After, not a backoff
        assert str(notices[0]).startswith("the platform asks to slow down (too many requests): retry 1 of 5")
        assert any("retrying" in r.getMessage() for r in caplog.records if r.name == "toolkit.send.transport")
        client.close()


def test_429_gives_up_after_max_retries(make_client: Callable[..., Client]) -> None:
    """With no retries left a 429 is a RateLimited carrying the server's Retry-After."""
    with serve(rate_limit=0.2) as server:
        client = make_client(server, max_retries=0)
        with pytest.raises(ApiError):  # the first call spends the burst (404: unknown task)
            client.task_status("unknown-task")
        with pytest.raises(RateLimited) as info:
            client.task_status("unknown-task")
        assert info.value.retry_after is not None and info.value.retry_after > 0
        client.close()


def test_client_rate_limit_keeps_under_the_server_limit(
    make_client: Callable[..., Client], caplog: pytest.LogCaptureFixture
) -> None:
    """rate_limit= paces concurrent calls of one client under the server's limit (no 429)."""
    caplog.set_level(logging.INFO, logger="toolkit.sandbox")
    with serve(rate_limit=10) as server:
        client = make_client(server, rate_limit=8)

        def poll() -> None:
            with pytest.raises(ApiError):  # 404: unknown task, fine: only the pace matters
                client.task_status("x")

        threads = [threading.Thread(target=poll) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # 16 requests at 8/s (burst 8) stay under the server's 10/s (burst 10): never a 429
        assert not [o for o in _calls(caplog, contract.STATUS_PATH, 16) if o.startswith("429")]
        client.close()


def test_connection_refused_is_retried_until_the_server_is_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch refused at connect (so never sent) is retried, and goes out once the platform is up."""
    port = _free_port()
    notices: list[RetryNotice] = []
    servers: list[object] = []
    with ExitStack() as stack:

        def platform_comes_up(notice: RetryNotice) -> None:
            # told between two attempts: the platform starts (serve() returns once it listens)
            notices.append(notice)
            if not servers:
                servers.append(stack.enter_context(serve(port=port, token="late-token")))

        client = Client(
            f"http://127.0.0.1:{port}",
            "late-token",
            journal=tmp_path / "j.sqlite",
            retry=RetryPolicy.no_wait(3),
        )
        assert client.send_batch(_batch(1, start=1200), on_retry=platform_comes_up)
        assert [str(n) for n in notices] == ["the platform is not answering: retry 1 of 3 in 0 s"]
        retries = [
            r.getMessage()
            for r in caplog.records
            if r.name == "toolkit.send.transport" and "retrying" in r.getMessage()
        ]
        assert len(retries) == 1 and "Connection" in retries[0]  # refused while the server was down
        assert len(_inspect(servers[0], "tasks")) == 1  # and sent once it was up
        client.close()


def test_unreachable_host_is_a_transport_error(tmp_path: Path) -> None:
    """A platform that never answers is a TransportError (not unknown: nothing was sent)."""
    client = Client(
        f"http://127.0.0.1:{_free_port()}", "t", journal=tmp_path / "j.sqlite", retry=RetryPolicy.no_wait(1)
    )
    with pytest.raises(TransportError, match="TOOLKIT_API_URL") as info:
        client.send_batch(_batch(1))
    assert not isinstance(info.value, OutcomeUnknown)  # never sent: safe to send later
    client.close()


def test_read_timeout_on_a_batch_is_unknown(make_client: Callable[..., Client]) -> None:
    """A batch whose answer times out is OutcomeUnknown: it may have been received."""
    with serve(latency_ms=600) as server:
        client = make_client(server, timeout=0.2)
        with pytest.raises(OutcomeUnknown, match="answer was lost"):
            client.send_batch(_batch(1, start=1300))
        client.close()


def test_logs_never_show_the_token(
    sb: object, tmp_path: Path, make_client: Callable[..., Client], caplog: pytest.LogCaptureFixture
) -> None:
    """Debug logs of every logger (urllib3 too) never show a token, good or refused."""
    caplog.set_level(logging.DEBUG)  # every logger, urllib3 included
    client = make_client(sb)
    task_id = client.send_batch(_batch(2, start=1400))
    client.task_status(task_id)
    with pytest.raises(ApiError):
        client.task_status("unknown-task-id")
    bad = Client(sb.url, "LEAKY-TOKEN-XYZ", journal=tmp_path / "j.sqlite")  # type: ignore[attr-defined]
    with pytest.raises(AuthError):
        bad.task_status(task_id)
    text = caplog.text + json.dumps([r.getMessage() for r in caplog.records])
    assert "toolkit.send.transport" in {r.name for r in caplog.records}
    assert sb.token not in text and "LEAKY-TOKEN-XYZ" not in text  # type: ignore[attr-defined]
    client.close()
    bad.close()


# --- import_and_start: journalled, once -----------------------------------------------------------
def _single_sends(server: object) -> list[dict]:
    """The sandbox's trigger sends of single imports (no task id), oldest first."""
    return [s for s in _inspect(server, "sends") if s["task_id"] is None]


def test_import_and_start_twice_sends_once(
    sb: object, make_client: Callable[..., Client], caplog: pytest.LogCaptureFixture
) -> None:
    """The same profile to the same trigger is sent once; a repeat raises, force=True sends."""
    caplog.set_level(logging.INFO, logger="toolkit.sandbox")
    client = make_client(sb)
    row = {"email": "once@client.test", "name": "Once"}
    answer = client.import_and_start(row, MAPPING, TRIGGER)
    assert answer["error"] == 0 and answer["profile_id"]
    with pytest.raises(
        AlreadyLaunched, match=r"already sent to trigger 96 .* at \d{4}-\d\d-\d\d .*force=True"
    ) as info:
        client.import_and_start(dict(row), MAPPING, TRIGGER)  # the re-run cell
    assert answer["profile_id"] in str(info.value) and info.value.previous.profile_id == answer["profile_id"]
    assert _calls(caplog, contract.SINGLE_PATH, 1) == ["200"]  # the second call sent nothing
    sends = _single_sends(sb)
    assert [(s["trigger_id"], s["profile_id"]) for s in sends] == [(96, answer["profile_id"])]
    # the same row as a one-row frame is the same body: still refused
    with pytest.raises(AlreadyLaunched):
        client.import_and_start(pl.DataFrame([row]), MAPPING, TRIGGER)
    # force=True sends again on purpose, once; a later plain call is refused again
    again = client.import_and_start(row, MAPPING, TRIGGER, force=True)
    assert again["profile_id"] == answer["profile_id"] and len(_single_sends(sb)) == 2
    with pytest.raises(AlreadyLaunched):
        client.import_and_start(row, MAPPING, TRIGGER)
    assert len(_single_sends(sb)) == 2
    # another trigger, or another profile, is another send
    client.import_and_start(row, MAPPING, toolkit.Trigger(97))
    client.import_and_start({"email": "twice@client.test", "name": "T"}, MAPPING, TRIGGER)
    assert len(_single_sends(sb)) == 4
    states = [(r.trigger_id, r.state, r.forced) for r in client.journal.singles()]
    assert states == [(96, "sent", False), (96, "sent", True), (97, "sent", False), (96, "sent", False)]
    client.close()


def test_import_and_start_refused_is_not_counted_as_sent(sb: object, tmp_path: Path) -> None:
    """A single send refused by the platform is journalled failed and may be sent again."""
    journal = tmp_path / "journal.sqlite"
    row = {"email": "refused@client.test", "name": "R"}
    bad = Client(sb.url, "WRONG-TOKEN-FOR-SINGLE", journal=journal)  # type: ignore[attr-defined]
    with pytest.raises(AuthError):
        bad.import_and_start(row, MAPPING, TRIGGER)
    (attempt,) = bad.journal.singles()
    assert (attempt.state, attempt.error_code, attempt.profile_id) == ("failed", 403, None)
    bad.close()
    assert _single_sends(sb) == []
    good = Client(sb.url, sb.token, journal=journal)  # type: ignore[attr-defined]
    assert good.import_and_start(row, MAPPING, TRIGGER)["profile_id"]  # the retry goes out
    assert len(_single_sends(sb)) == 1
    with pytest.raises(AlreadyLaunched):
        good.import_and_start(row, MAPPING, TRIGGER)
    assert [r.state for r in good.journal.singles()] == ["failed", "sent"]
    good.close()


def test_import_and_start_503_refused_by_the_platform_can_be_retried(
    sb: object, tmp_path: Path, make_gateway: Callable[..., Any]
) -> None:
    """A single send refused with 503 + Retry-After is failed (sendable again); a bare 503 is unknown."""
    gateway = make_gateway(sb, "503-retry-after", "forward", "503")
    client = Client(gateway.url, sb.token, journal=tmp_path / "j.sqlite", max_retries=0)  # type: ignore[attr-defined]
    row = {"email": "busy@client.test", "name": "B"}
    with pytest.raises(ApiError) as info:
        client.import_and_start(row, MAPPING, TRIGGER)
    assert info.value.code == 503 and not isinstance(info.value, OutcomeUnknown)
    assert client.journal.singles()[0].state == "failed"
    assert client.import_and_start(row, MAPPING, TRIGGER)["profile_id"]
    assert len(_single_sends(sb)) == 1
    with pytest.raises(OutcomeUnknown, match="HTTP 503, which a gateway"):
        client.import_and_start({"email": "bare@client.test", "name": "B"}, MAPPING, TRIGGER)
    assert [r.state for r in client.journal.singles()] == ["failed", "sent", "unknown"]
    assert [a for p, a in gateway.posts if p == contract.SINGLE_PATH] == ["503-retry-after", "forward", "503"]
    client.close()


@pytest.mark.parametrize(
    ("fault", "knobs", "imported"),
    [
        ("drop", {"drop_rate": 0.5}, 0),  # closed before handling: nothing done, but who can tell
        ("lose", {"lose_response_rate": 0.5}, 1),  # handled, answer lost: the platform has it
        ("500", {"fail_rate": 0.5}, 0),  # HTTP 500: maybe done
    ],
)
def test_import_and_start_lost_answer_is_unknown_and_never_resent(
    make_client: Callable[..., Client],
    caplog: pytest.LogCaptureFixture,
    fault: str,
    knobs: dict[str, float],
    imported: int,
) -> None:
    """A single send whose answer is lost is unknown and never re-sent until force=True."""
    caplog.set_level(logging.INFO, logger="toolkit.sandbox")
    seed = _seed_for([fault, "ok"], **knobs)
    with serve(seed=seed, **knobs) as server:  # type: ignore[arg-type]
        client = make_client(server)
        row = {"email": f"{fault}@client.test", "name": "U"}
        with pytest.raises(OutcomeUnknown, match=r"force=True") as first:
            client.import_and_start(row, MAPPING, TRIGGER)
        assert "resend_unknown" not in str(first.value)  # a single send has no Launch
        (attempt,) = client.journal.singles()
        assert attempt.state == "unknown"
        assert len(_single_sends(server)) == imported
        client.close()
        # the next call (here: a new client on the same journal) sends nothing
        again = make_client(server)
        with pytest.raises(OutcomeUnknown, match=r"Check on the platform first.*force=True") as second:
            again.import_and_start(row, MAPPING, TRIGGER)
        assert not isinstance(second.value, AlreadyLaunched)
        assert len(_calls(caplog, contract.SINGLE_PATH, 1)) == 1
        # force=True: checked, send it again on purpose
        assert again.import_and_start(row, MAPPING, TRIGGER, force=True)["profile_id"]
        assert len(_single_sends(server)) == imported + 1
        with pytest.raises(AlreadyLaunched):
            again.import_and_start(row, MAPPING, TRIGGER)
        assert [r.state for r in again.journal.singles()] == ["unknown", "sent"]
        again.close()


def test_import_and_start_new_process_refuses_the_repeat(
    sb: object, make_client: Callable[..., Client], tmp_path: Path
) -> None:
    """Another process with the same journal refuses to send the same profile again."""
    client = make_client(sb)
    row = {"email": "process@client.test", "name": "P"}
    client.import_and_start(row, MAPPING, TRIGGER)
    client.close()
    script = (
        "import sys, toolkit\n"
        "from toolkit.send.client import Client\n"
        "client = Client(sys.argv[1], sys.argv[2], journal=sys.argv[3])\n"
        "mapping = toolkit.Mapping({'email': 'email', 'name': '_fname'})\n"
        "try:\n"
        "    client.import_and_start({'email': 'process@client.test', 'name': 'P'}, mapping,"
        " toolkit.Trigger(96))\n"
        "except toolkit.AlreadyLaunched as exc:\n"
        "    print('refused:', exc)\n"
        "else:\n"
        "    print('sent')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, sb.url, sb.token, str(tmp_path / "journal.sqlite")],  # type: ignore[attr-defined]
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.startswith("refused:") and "force=True" in done.stdout, done.stdout + done.stderr
    assert len(_single_sends(sb)) == 1


def test_import_and_start_concurrent_calls_send_once(make_client: Callable[..., Client]) -> None:
    """Two notebooks (two journal connections) sending the same profile at the same moment."""
    with serve(latency_ms=400) as server:
        clients = [make_client(server), make_client(server)]
        row = {"email": "race@client.test", "name": "R"}
        outcomes: list[object] = []
        barrier = threading.Barrier(2)

        def send(client: Client) -> None:
            barrier.wait()
            try:
                outcomes.append(client.import_and_start(row, MAPPING, TRIGGER)["profile_id"])
            except (OutcomeUnknown, AlreadyLaunched) as exc:
                outcomes.append(exc)

        threads = [threading.Thread(target=send, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        sent = [o for o in outcomes if isinstance(o, str)]
        refused = [o for o in outcomes if not isinstance(o, str)]
        assert len(sent) == 1 and len(refused) == 1
        assert isinstance(refused[0], OutcomeUnknown) and "another process" in str(refused[0])
        assert len(_single_sends(server)) == 1
        for c in clients:
            c.close()


@pytest.mark.parametrize("token_in_body", [False, True])
def test_import_and_start_journal_holds_no_token_and_no_profile(
    make_client: Callable[..., Client], tmp_path: Path, token_in_body: bool
) -> None:
    """The journal of single sends holds digests and ids, never the token or profile data."""
    token = "VERY-SECRET-SINGLE-TOKEN-42"
    with serve(token=token) as server:
        client = make_client(server, token_in_body=token_in_body)
        row = {"email": "private.person@secret-domain.test", "name": "Privatina"}
        answer = client.import_and_start(row, MAPPING, TRIGGER)
        with pytest.raises(AlreadyLaunched):
            client.import_and_start(row, MAPPING, TRIGGER)
        # the identity is the body without the token: the other way of passing it is the same send
        other = make_client(server, token_in_body=not token_in_body)
        with pytest.raises(AlreadyLaunched):
            other.import_and_start(row, MAPPING, TRIGGER)
        (record,) = client.journal.singles()
        client.close()
        other.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("journal.sqlite"))
    assert raw and token.encode() not in raw
    assert b"private.person" not in raw and b"secret-domain" not in raw and b"Privatina" not in raw
    assert record.digest.encode() in raw and answer["profile_id"].encode() in raw
    check = Journal(tmp_path / "journal.sqlite")
    columns = [r[1] for r in check._query("PRAGMA table_info(single_sends)")]
    assert columns == [
        "send_id", "host", "trigger_id", "digest", "format", "state", "forced", "sent_at", "finished_at",
        "profile_id", "task_id", "error_code", "error",
    ]  # fmt: skip
    check.close()
