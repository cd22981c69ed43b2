"""The retry table, row by row, through the real transport with scripted answers (no network,
no sleeping): what is retried, what is unknown, what is raised, and how long each wait is.

A scripted session stands in for ``requests.Session`` (``Client(session=...)``); the policy is
``RetryPolicy.no_wait()``, so every case runs in milliseconds and the waits the policy *would*
make are checked as numbers, never on a clock.
"""

from __future__ import annotations

import http.client
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import polars as pl
import pytest
import requests
import urllib3.exceptions
from requests.structures import CaseInsensitiveDict

import toolkit
from toolkit.core import contract
from toolkit.errors import ApiError, OutcomeUnknown, RateLimited, TransportError
from toolkit.send.client import Client
from toolkit.send.retry import RETRY_TABLE, Failure, RetryNotice, RetryPolicy, Rule, Verdict

TOKEN = "SCRIPTED-SECRET-TOKEN-1234"
OK_BATCH = (200, orjson.dumps({"error": 0, "error_text": "Successful operation", "task_id": "t-1"}), {})
OK_STATUS = (200, orjson.dumps({"error": 0, "data": {"status": "processing", "progress": 10}}), {})


def _connect_refused() -> requests.ConnectionError:
    cause = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 111]")  # type: ignore[arg-type]
    return requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", cause), request=None)  # type: ignore[arg-type]


def _answer_lost() -> requests.ConnectionError:
    disconnected = http.client.RemoteDisconnected("Remote end closed connection without response")
    return requests.ConnectionError(urllib3.exceptions.ProtocolError("Connection aborted.", disconnected))


#: One scripted failure per row of the retry table: an exception the session raises, or an answer.
FAILURES: dict[Failure, Any] = {
    Failure.CONNECT: _connect_refused,
    Failure.RATE_LIMITED: (
        429,
        orjson.dumps({"error": 429, "error_text": "Too many requests"}),
        {"Retry-After": "7"},
    ),
    Failure.UNAVAILABLE: (503, b"Service Unavailable", {"Retry-After": "3"}),
    Failure.GATEWAY: (502, b"<html>Bad Gateway</html>", {"Content-Type": "text/html"}),
    Failure.ANSWER_LOST: _answer_lost,
    Failure.SERVER_ERROR: (500, orjson.dumps({"error": 500, "error_text": "Internal error"}), {}),
    Failure.OTHER_5XX: (501, b"Not Implemented", {}),
    Failure.REFUSED: (400, orjson.dumps({"error": 400, "error_text": "Invalid request"}), {}),
    Failure.UNREADABLE: (200, b"<html>proxy login</html", {"Content-Type": "text/html"}),
}


class ScriptedSession:
    """Plays answers in order; records each POST (URL, body, headers after the auth hook)."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.posts: list[dict[str, Any]] = []
        self.closed = False

    def post(self, url: str, data: Any = None, **kwargs: Any) -> requests.Response:
        prepared = requests.Request("POST", url, data=data, headers=kwargs.get("headers")).prepare()
        if kwargs.get("auth") is not None:
            prepared = kwargs["auth"](prepared)
        self.posts.append({"url": url, "body": data, "headers": dict(prepared.headers)})
        answer = self.answers.pop(0)
        if callable(answer):
            raise answer()
        status, body, headers = answer
        response = requests.Response()
        response.status_code = status
        response._content = body
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json", **headers})
        response.url = url
        return response

    def close(self) -> None:
        self.closed = True


def _client(session: ScriptedSession, **kwargs: Any) -> Client:
    kwargs.setdefault("retry", RetryPolicy.no_wait())
    return Client("https://platform.test", TOKEN, journal=":memory:", session=session, **kwargs)


def _batch() -> toolkit.Batch:
    frame = pl.DataFrame({"email": ["a@retry.test", "b@retry.test"]})
    return toolkit.plan(frame, toolkit.Mapping({"email": "email"}), toolkit.Trigger(96)).batches[0]


@dataclass(frozen=True)
class Case:
    failure: Failure
    idempotent: bool
    verdict: Verdict


def _cases() -> Iterator[Case]:
    for failure, rule in RETRY_TABLE.items():
        yield Case(failure, False, rule.not_idempotent)
        yield Case(failure, True, rule.idempotent)


def test_the_table_has_a_row_for_every_failure_and_the_script_covers_it() -> None:
    """Every way a call can fail has a decision, and this module scripts each one."""
    assert set(RETRY_TABLE) == set(Failure) == set(FAILURES)


@pytest.mark.parametrize(
    "case", list(_cases()), ids=lambda c: f"{c.failure}-{'poll' if c.idempotent else 'batch'}"
)
def test_each_row_of_the_retry_table(case: Case) -> None:
    """One failure then a good answer: retried once, or unknown / raised at once, as the table says."""
    ok = OK_STATUS if case.idempotent else OK_BATCH
    session = ScriptedSession(FAILURES[case.failure], ok)
    client = _client(session)
    notices: list[RetryNotice] = []

    def call() -> Any:
        if case.idempotent:
            return client.task_status("t-1", on_retry=notices.append)
        return client.send_batch(_batch(), on_retry=notices.append)

    if case.verdict is Verdict.RETRY:
        answer = call()
        assert answer == "t-1" or answer.progress == 10
        assert len(session.posts) == 2 and session.posts[0]["body"] == session.posts[1]["body"]
        assert [(n.retry, n.of, n.delay) for n in notices] == [(1, 5, 0.0)]
    elif case.verdict is Verdict.UNKNOWN:
        with pytest.raises(OutcomeUnknown, match="not re-sent automatically"):
            call()
        assert len(session.posts) == 1 and notices == []
    else:
        with pytest.raises(ApiError) as info:
            call()
        assert not isinstance(info.value, TransportError)
        assert len(session.posts) == 1 and notices == []
        status = FAILURES[case.failure][0]
        assert info.value.response is not None and info.value.response.status_code == status


@pytest.mark.parametrize(
    "failure", [f for f, rule in RETRY_TABLE.items() if rule.idempotent is Verdict.RETRY]
)
def test_retries_stop_after_max_retries_and_raise_the_last_failure(failure: Failure) -> None:
    """A failure that keeps coming is tried max_retries + 1 times, then raised as what it is."""
    session = ScriptedSession(*[FAILURES[failure]] * 3)
    client = _client(session, retry=RetryPolicy.no_wait(max_retries=2))
    notices: list[RetryNotice] = []
    with pytest.raises((TransportError, ApiError)) as info:
        client.task_status("t-1", on_retry=notices.append)
    assert len(session.posts) == 3 and [n.retry for n in notices] == [1, 2]
    if failure in (Failure.CONNECT, Failure.ANSWER_LOST):
        assert type(info.value) is TransportError and "after 3 attempt(s)" in str(info.value)
    elif failure is Failure.RATE_LIMITED:
        assert isinstance(info.value, RateLimited) and info.value.retry_after == 7.0
    else:
        assert isinstance(info.value, ApiError) and info.value.response.status_code == FAILURES[failure][0]


def test_waits_are_the_backoff_or_the_servers_retry_after_capped() -> None:
    """The waits a policy computes: doubling to the cap, Retry-After (capped) where the table honours it."""
    policy = RetryPolicy(base=0.5, cap=4.0, jitter=False, max_retry_after=5.0)
    assert [policy.delay(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert policy.delay(0, retry_after=3.0, failure=Failure.UNAVAILABLE) == 3.0
    assert policy.delay(0, retry_after=30.0, failure=Failure.RATE_LIMITED) == 5.0  # capped
    assert policy.delay(0, retry_after=3.0, failure=Failure.GATEWAY) == 0.5  # not honoured for 502/504
    jittered = RetryPolicy(base=0.5, cap=4.0)
    draws = [jittered.delay(3) for _ in range(200)]
    assert all(0.25 <= d <= 4.0 for d in draws) and len(set(draws)) > 1  # spread, never instant


def test_a_scheduled_retry_tells_the_servers_retry_after() -> None:
    """The notice a watcher gets names the wait the server asked for (here through a real policy)."""
    session = ScriptedSession(FAILURES[Failure.UNAVAILABLE], OK_STATUS)
    client = _client(session, retry=RetryPolicy(max_retry_after=0.0))  # 3 s asked, 0 s allowed: no sleep
    notices: list[RetryNotice] = []
    client.task_status("t-1", on_retry=notices.append)
    assert [str(n) for n in notices] == ["the platform is busy (HTTP 503): retry 1 of 5 in 0 s"]


def test_a_policy_with_its_own_table_changes_one_rule() -> None:
    """A table is data: retrying 502/504 to a batch is one row, and the client follows it."""
    lenient = RetryPolicy.no_wait()
    rules = {**lenient.rules, Failure.GATEWAY: Rule(not_idempotent=Verdict.RETRY, idempotent=Verdict.RETRY)}
    session = ScriptedSession(FAILURES[Failure.GATEWAY], OK_BATCH)
    client = _client(session, retry=RetryPolicy(rules=rules, base=0, cap=0, jitter=False))
    assert client.send_batch(_batch()) == "t-1"
    assert len(session.posts) == 2


@pytest.mark.parametrize(
    ("answer", "retried"),
    [
        ((503, b"busy", {"Retry-After": "2"}), True),  # the platform says when to come back
        ((503, b"busy", {}), False),  # maybe a gateway, after forwarding
        ((502, b"bad gateway", {"Retry-After": "2"}), False),  # a 502 is a gateway's, whatever it adds
    ],
    ids=["503-retry-after", "503-bare", "502-retry-after"],
)
def test_only_a_503_with_retry_after_proves_a_batch_was_not_taken(answer: Any, retried: bool) -> None:
    """A batch is POSTed again after a 503 only when it carries Retry-After; otherwise it is unknown, POSTed once."""
    session = ScriptedSession(answer, OK_BATCH)
    client = _client(session)
    if retried:
        assert client.send_batch(_batch()) == "t-1" and len(session.posts) == 2
    else:
        with pytest.raises(OutcomeUnknown, match=r"HTTP 50\d, which a gateway"):
            client.send_batch(_batch())
        assert len(session.posts) == 1


def test_a_policy_without_a_row_is_refused() -> None:
    """A table missing a failure is caught when the policy is made, not mid-launch."""
    with pytest.raises(toolkit.InvalidArgumentError, match="no row for gateway"):
        RetryPolicy(rules={f: r for f, r in RETRY_TABLE.items() if f is not Failure.GATEWAY})


def test_max_retries_overrides_the_policy_and_is_checked() -> None:
    """Client(max_retries=) wins over the policy's count; a bad value or retry= is refused."""
    assert _client(ScriptedSession(), max_retries=1, retry=RetryPolicy(max_retries=4)).max_retries == 1
    with pytest.raises(toolkit.InvalidArgumentError, match="RetryPolicy"):
        Client("https://platform.test", TOKEN, retry=3)  # type: ignore[arg-type]
    with pytest.raises(toolkit.InvalidArgumentError, match="post"):
        Client("https://platform.test", TOKEN, session=object())  # type: ignore[arg-type]


# --- the transport seam ----------------------------------------------------------------------------
def test_the_token_goes_in_the_header_or_the_body_and_nowhere_else() -> None:
    """The scripted session sees the token where it belongs; the body the plan built is unchanged."""
    batch = _batch()
    in_header = ScriptedSession(OK_BATCH)
    _client(in_header).send_batch(batch)
    (post,) = in_header.posts
    assert post["headers"]["Authorization"] == f"Bearer {TOKEN}" and post["body"] == batch.body
    assert post["url"] == "https://platform.test" + contract.BATCH_PATH
    assert post["headers"]["User-Agent"].startswith("toolkit/")
    in_body = ScriptedSession(OK_BATCH)
    _client(in_body, token_in_body=True).send_batch(batch)
    (post,) = in_body.posts
    assert "Authorization" not in post["headers"] and orjson.loads(post["body"])["token"] == TOKEN


@pytest.mark.parametrize("token_in_body", [False, True])
def test_no_toolkit_frame_holds_the_token_in_a_local(token_in_body: bool) -> None:
    """A traceback printed with its locals (IPython verbose, Sentry) shows no token from the toolkit's frames."""

    class Exploding(ScriptedSession):
        def post(self, url: str, data: Any = None, **kwargs: Any) -> requests.Response:
            raise KeyboardInterrupt  # stopped mid-request: every frame of the call is on the traceback

    client = _client(Exploding(), token_in_body=token_in_body)
    with pytest.raises(KeyboardInterrupt) as info:
        client.send_batch(_batch())
    frames = [
        f
        for f, _ in traceback.walk_tb(info.value.__traceback__)
        if f.f_globals["__name__"].startswith("toolkit")
    ]
    assert {f.f_globals["__name__"] for f in frames} >= {"toolkit.send.client", "toolkit.send.transport"}
    for frame in frames:
        shown = repr({name: value for name, value in frame.f_locals.items()})
        assert TOKEN not in shown, frame.f_code.co_name


def test_a_given_session_is_the_callers_to_close() -> None:
    """Client.close() closes the connections it made, never a session it was given."""
    session = ScriptedSession()
    _client(session).close()
    assert not session.closed


def test_a_real_requests_session_can_be_given(sb: object) -> None:
    """Client(session=requests.Session()) talks to the sandbox over HTTP like the default one."""
    with requests.Session() as session:
        client = Client(sb.url, sb.token, journal=":memory:", session=session)  # type: ignore[attr-defined]
        task_id = client.send_batch(_batch())
        assert client.task_status(task_id).task_id == task_id
        client.close()
        assert session.get(f"{sb.url}/_sandbox/tasks", headers={"Authorization": f"Bearer {sb.token}"},  # type: ignore[attr-defined]
                           timeout=10).status_code == 200  # fmt: skip
