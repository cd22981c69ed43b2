"""The real platform, client side (issue 12), over HTTP.

The sandbox answers one way; the platform's documentation allows others. Those are played by
:class:`StubPlatform`, a tiny stdlib HTTP server in the test answering exactly the documented
shapes (the seed's examples byte for byte where it has them): nested task ids, the short
result form, errors inside HTTP 200, body-only authentication, the read-only catalog.
"""

from __future__ import annotations

import http.server
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
import requests

import toolkit
from toolkit.core import contract
from toolkit.errors import ApiError, AuthError, PreflightError
from toolkit.send.client import Client
from toolkit.send.retry import RetryPolicy
from toolkit.send.target import target_label

pytestmark = pytest.mark.usefixtures("isolated_journal")

EXAMPLES = Path(__file__).parent / "fixtures" / "examples"
TOKEN = "stub-platform-token-0123"
MAPPING = toolkit.Mapping({"email": "email", "name": "_fname"})

Answer = tuple[int, bytes, str]  # HTTP status, body, content type
Route = Callable[[dict[str, Any]], Answer]


def _json(payload: Any, status: int = 200) -> Answer:
    return status, orjson.dumps(payload), "application/json"


def _error(code: int, text: str, status: int | None = None) -> Answer:
    return _json({"error": code, "error_text": text}, code if status is None else status)


@dataclass
class StubPlatform:
    """A platform stand-in: ``routes`` map an API path to a function of the request's body.

    Every request is recorded (path, body without the token, whether the token came in the
    header or the body). ``body_token_only`` plays an install of the older revision: the
    header is ignored and a request without a token in its body gets 401 "token required".
    """

    routes: dict[str, Route]
    body_token_only: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def calls(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == path]

    def answer(self, path: str, raw: bytes, headers: Any) -> Answer:
        if raw.lstrip()[:1] == b"<":
            body = contract.loads_xml(raw)
        else:
            body = orjson.loads(raw) if raw.strip() else {}
        in_header = headers.get("Authorization", "") == f"Bearer {TOKEN}"
        in_body = body.pop("token", None) == TOKEN
        self.requests.append({"path": path, "body": body, "header_token": in_header, "body_token": in_body})
        if not (in_body or (in_header and not self.body_token_only)):
            return _error(401, "API token required")
        route = self.routes.get(path)
        return route(body) if route else _error(404, "Not Found")


@pytest.fixture
def stub() -> Iterator[Callable[..., StubPlatform]]:
    """A factory: ``stub(routes, body_token_only=False)`` -> a running :class:`StubPlatform`."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(routes: dict[str, Route], **kwargs: Any) -> StubPlatform:
        platform = StubPlatform(dict(routes), **kwargs)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path.startswith(contract.API_PREFIX):
                    status, body, kind = platform.answer(self.path, raw, self.headers)
                else:  # the server's root: not the API (a sandbox probe lands here)
                    status, body, kind = 404, b"not found", "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(httpd)
        platform.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        return platform

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def _client(platform: StubPlatform, tmp_path: Path, **kwargs: Any) -> Client:
    kwargs.setdefault("retry", RetryPolicy.no_wait())
    return Client(platform.url, TOKEN, journal=tmp_path / "journal.sqlite", **kwargs)


def _plan(n: int = 3, *, fmt: str = "json", domain: str = "people.example") -> toolkit.Plan:
    frame = pl.DataFrame({"email": [f"p{i}@{domain}" for i in range(n)], "name": [f"P{i}" for i in range(n)]})
    return toolkit.plan(frame, MAPPING, toolkit.Trigger(96), format=fmt)  # type: ignore[call-overload]


def _accepts(task_answer: Answer) -> dict[str, Route]:
    """Routes of a platform that takes a batch (answering ``task_answer``) and a status read."""
    return {contract.BATCH_PATH: lambda body: task_answer}


def _launch_and_wait(platform: StubPlatform, tmp_path: Path, plan: toolkit.Plan) -> toolkit.Launch:
    client = _client(platform, tmp_path)
    launch = client.launch(plan, progress=False, preflight=False, allow_sample=True)
    launch.wait(timeout=30, progress=False)
    return launch


def _statuses(launch: toolkit.Launch) -> dict[str, int]:
    return dict(launch.results().group_by("status").len().iter_rows())


# --- answers read as documented, never optimistically -------------------------------------------------
def test_seed_xml_status_example_for_three_rows_imports_no_row(
    stub: Callable[..., StubPlatform], tmp_path: Path
) -> None:
    """The seed's XML status answer (captured 0, no errors, status ok) for a 3-row batch proves no
    import: every row is unknown, the reason quotes the platform's counts, nothing is re-sent."""
    ok = (EXAMPLES / "batch_response_ok.xml").read_bytes()
    done = (EXAMPLES / "status_response_completed.xml").read_bytes()
    platform = stub({contract.BATCH_PATH: lambda body: (200, ok, "application/xml"),
                     contract.STATUS_PATH: lambda body: (200, done, "application/xml")})  # fmt: skip
    launch = _launch_and_wait(platform, tmp_path, _plan(3, fmt="xml"))
    results = launch.results()
    assert results["status"].to_list() == ["unknown"] * 3
    assert "captured=0 of 3 rows" in results["error_text"][0]
    summary = launch.summary()
    assert summary["imported"] == 0 and summary["unknown"] == 3
    (task,) = summary["tasks"]
    assert (task["task_id"], task["captured"], task["errors"], task["status"]) == (
        "30421978-7f6d-4f39-913f-fb6cad8e2477", 0, 0, "completed",
    )  # fmt: skip
    report = launch.resend_unknown(progress=False)  # the batch itself is not unknown: nothing goes
    assert report.launch is launch and report.resent == () and report.left_out == ()
    assert len(platform.calls(contract.BATCH_PATH)) == 1


def test_seed_json_status_example_for_three_rows_cannot_be_matched(
    stub: Callable[..., StubPlatform], tmp_path: Path
) -> None:
    """The seed's JSON status answer lists 2 per-profile results: for 3 rows no row is imported by
    position; for 2 rows each row gets its profile id."""
    ok = (EXAMPLES / "batch_response_ok.json").read_bytes()
    done = (EXAMPLES / "status_response_completed.json").read_bytes()
    routes = {contract.BATCH_PATH: lambda body: (200, ok, "application/json"),
              contract.STATUS_PATH: lambda body: (200, done, "application/json")}  # fmt: skip
    three = _launch_and_wait(stub(routes), tmp_path / "a", _plan(3))
    assert _statuses(three) == {"unknown": 3}
    assert "2 per-profile results for 3 rows" in three.results()["error_text"][0]
    two = _launch_and_wait(stub(routes), tmp_path / "b", _plan(2))
    assert two.results()["profile_id"].to_list() == ["61e947333f62fc26d384452c", "61e947333f62fc26d384452e"]
    assert _statuses(two) == {"imported": 2}


def test_task_id_under_data_is_read_and_polled(stub: Callable[..., StubPlatform], tmp_path: Path) -> None:
    """A task id nested as {"data": {"task_id"}} (the platform's other task) is the batch's task:
    it is polled, and the batch is sent once, never 'unknown'."""
    polled: list[str] = []

    def status(body: dict[str, Any]) -> Answer:
        polled.append(body["task_id"])
        return _json({"error": 0, "data": {"status": "success", "progress": 100,
                                          "result": {"result": [{"profile_id": f"id{i}"} for i in range(3)]}}})  # fmt: skip

    platform = stub({contract.BATCH_PATH: lambda body: _json({"error": 0, "data": {"task_id": "task_ab12"}}),
                     contract.STATUS_PATH: status})  # fmt: skip
    launch = _launch_and_wait(platform, tmp_path, _plan(3))
    assert [b.task_id for b in launch.batches] == ["task_ab12"] and set(polled) == {"task_ab12"}
    assert _statuses(launch) == {"imported": 3}  # "success": the older revision's word for done
    assert len(platform.calls(contract.BATCH_PATH)) == 1


@pytest.mark.parametrize(
    ("result", "expected", "reason"),
    [
        ({"captured": 3, "errors": [], "status": "ok"}, {"imported": 3}, None),
        ({"captured": 3, "errors": [{"email": "p1@people.example"}], "status": "ok"}, {"unknown": 3},
         "1 error"),
        ({"captured": 2, "errors": [], "status": "ok"}, {"unknown": 3}, "captured=2 of 3"),
        ({"imported": 3}, {"unknown": 3}, '"imported":3'),
        (None, {"unknown": 3}, "no per-profile results"),
    ],
    ids=["short-form-all-captured", "short-form-with-errors", "short-form-fewer", "unknown-shape", "no-result"],
)  # fmt: skip
def test_short_and_unknown_result_forms(
    stub: Callable[..., StubPlatform],
    tmp_path: Path,
    result: Any,
    expected: dict[str, int],
    reason: str | None,
) -> None:
    """Rows are imported on evidence only: the short form with every row captured and no error;
    anything else leaves them unknown with the platform's own words or raw result quoted."""
    data: dict[str, Any] = {"status": "completed", "progress": 100}
    if result is not None:
        data["result"] = result
    platform = stub({**_accepts(_json({"error": 0, "task_id": "t-1"})),
                     contract.STATUS_PATH: lambda body: _json({"error": 0, "data": data})})  # fmt: skip
    launch = _launch_and_wait(platform, tmp_path, _plan(3))
    assert _statuses(launch) == expected
    texts = launch.results()["error_text"].to_list()
    if reason is None:
        assert texts == [None] * 3
    else:
        assert all(reason in t for t in texts), texts


def test_error_in_http_200_is_an_error_for_batches_and_status_reads(
    stub: Callable[..., StubPlatform], tmp_path: Path
) -> None:
    """error != 0 with HTTP 200 refuses a batch (failed, safe to send again, never unknown) and a
    status read (an ApiError, the task left to a later wait)."""
    refused = stub(_accepts(_error(400, "Invalid request", status=200)))
    launch = _client(refused, tmp_path / "a").launch(
        _plan(3), progress=False, preflight=False, allow_sample=True
    )
    assert [b.state for b in launch.batches] == ["failed"]
    assert launch.results()["error"].to_list() == ["400"] * 3
    unreadable = stub({**_accepts(_json({"error": 0, "task_id": "t-2"})),
                       contract.STATUS_PATH: lambda body: _error(403, "Forbidden", status=200)})  # fmt: skip
    client = _client(unreadable, tmp_path / "b")
    with pytest.raises(AuthError):
        client.task_status("t-2")
    with pytest.raises(ApiError):
        client.call(contract.STATUS_PATH, b'{"task_id": "t-2"}', idempotent=True)


# --- authentication that adapts ------------------------------------------------------------------------
def test_body_only_install_gets_the_token_in_the_body_after_one_401(
    stub: Callable[..., StubPlatform], tmp_path: Path
) -> None:
    """On an install that reads the token from the body only, the first request's 401 (nothing
    processed) makes the client send it again with the token in the body, and every later one."""
    accepted: list[dict[str, Any]] = []

    def batch(body: dict[str, Any]) -> Answer:
        accepted.append(body)
        return _json({"error": 0, "task_id": f"t{len(accepted)}"})

    platform = stub({contract.BATCH_PATH: batch,
                     contract.STATUS_PATH: lambda body: _json({"error": 0, "data": {"status": "processing"}})},
                    body_token_only=True)  # fmt: skip
    client = _client(platform, tmp_path)
    assert client.send_batch(_plan(2).batches[0]) == "t1"
    assert client.token_in_body and client.task_status("t1").status == "processing"
    assert client.send_batch(_plan(2, domain="other.example").batches[0]) == "t2"
    sent = [(r["path"], r["header_token"], r["body_token"]) for r in platform.requests]
    assert sent == [
        (contract.BATCH_PATH, True, False),  # 401: token required
        (contract.BATCH_PATH, False, True),  # the same request, once more
        (contract.STATUS_PATH, False, True),
        (contract.BATCH_PATH, False, True),
    ]
    assert len(accepted) == 2  # each batch processed once
    assert TOKEN not in repr(platform.requests)  # the stub keeps bodies without the token


def test_token_placement_can_be_forced(stub: Callable[..., StubPlatform], tmp_path: Path) -> None:
    """token_in_body=False never moves the token (the 401 is an AuthError); True puts it in the body at once."""
    platform = stub(_accepts(_json({"error": 0, "task_id": "t"})), body_token_only=True)
    with pytest.raises(AuthError) as info:
        _client(platform, tmp_path / "a", token_in_body=False).send_batch(_plan(1).batches[0])
    assert info.value.code == 401 and len(platform.requests) == 1
    assert _client(platform, tmp_path / "b", token_in_body=True).send_batch(_plan(1).batches[0]) == "t"
    assert [r["body_token"] for r in platform.requests] == [False, True]


# --- the catalog and preflight -----------------------------------------------------------------------------
TRIGGERS = [
    {"id": 96, "name": "Welcome", "type": "api_call", "is_active": True},
    {"id": 97, "name": "Paused", "type": "api_call", "is_active": False},
    {"id": 98, "name": "Birthday", "type": "event", "is_active": True},
]
DETAILS = {
    96: {"id": 96, "name": "Welcome", "is_active": True, "trigger_type": "api_call", "list_id": 20,
         "resource_id": 21, "send_channel": "email"},
    97: {"id": 97, "name": "Paused", "is_active": False, "trigger_type": "api_call", "list_id": 20},
    98: {"id": 98, "name": "Birthday", "is_active": True, "trigger_type": "event", "list_id": 20},
}  # fmt: skip
RESOURCES = {
    21: {"id": 21, "name": "Shop", "channels": ["email"]},
    20: {"id": 20, "name": "SMS", "channels": ["sms"]},
}
FIELDS = [{"name": "email", "type": "string"}, {"name": "_fname", "type": "string"},
          {"name": "CRM_ID", "type": "string"}]  # fmt: skip


def _catalog(forbid: frozenset[str] = frozenset()) -> dict[str, Route]:
    """A platform with a catalog: triggers 96 (good), 97 (inactive), 98 (event); database 20;
    resources 21 (email) and 20 (sms). Paths in ``forbid`` answer 403."""

    def by_id(table: dict[int, dict[str, Any]]) -> Route:
        return lambda body: _json({"error": 0, "data": table[int(body["id"])]}) if int(body["id"]) in table else \
            _error(404, "not found")  # fmt: skip

    routes: dict[str, Route] = {
        contract.TRIGGERS_LIST_PATH: lambda body: _json({"error": 0, "data": TRIGGERS, "total_count": 3}),
        contract.TRIGGER_GET_PATH: by_id(DETAILS),
        contract.DATABASE_FIELDS_PATH: lambda body: _json({"error": 0, "data": FIELDS}),
        contract.RESOURCES_LIST_PATH: lambda body: _json({"error": 0, "data": list(RESOURCES.values())}),
        contract.RESOURCE_GET_PATH: by_id(RESOURCES),
        **_accepts(_json({"error": 0, "task_id": "t-ok"})),
    }
    for path in forbid:
        routes[path] = lambda body: _error(403, "Forbidden: no access")
    return routes


def _mapped_plan(
    trigger: int = 96, fields: dict[str, str] | None = None, subs: tuple[Any, ...] = ()
) -> toolkit.Plan:
    frame = pl.DataFrame(
        {"email": ["a@shop.example"], "name": ["Ann"], "crm": ["C1"], "phone": ["+79001234567"]}
    )
    mapping = toolkit.Mapping(fields or {"email": "email", "name": "_fname"}, subscriptions=list(subs))
    return toolkit.plan(frame, mapping, toolkit.Trigger(trigger))


def test_catalog_calls_read_triggers_databases_fields_and_resources(
    stub: Callable[..., StubPlatform], tmp_path: Path
) -> None:
    """The client's catalog methods read the documented shapes into typed records."""
    client = _client(stub(_catalog()), tmp_path)
    assert [(t.id, t.is_active, t.is_api_call) for t in client.triggers()] == [
        (96, True, True), (97, False, True), (98, True, False)
    ]  # fmt: skip
    welcome = client.trigger(96)
    assert (welcome.name, welcome.list_id, welcome.resource_id, welcome.send_channel) == (
        "Welcome",
        20,
        21,
        "email",
    )
    assert [f.name for f in client.database_fields(20)] == ["email", "_fname", "CRM_ID"]
    assert {r.id: r.channels for r in client.resources()} == {21: ("email",), 20: ("sms",)}


@pytest.mark.parametrize(
    ("plan_args", "code", "words"),
    [
        ({"trigger": 97}, "trigger_inactive", "trigger 97 'Paused' is not active"),
        ({"trigger": 98}, "trigger_type", "'event' trigger, not an API-call trigger"),
        ({"trigger": 99}, "trigger_missing", "trigger 99 does not exist on PLATFORM at 127.0.0.1:"),
        ({"fields": {"email": "email", "name": "_fnmae"}}, "unknown_field",
         "profile field '_fnmae' (column 'name') is not a field of database 20 (did you mean '_fname'?)"),
        ({"subs": (toolkit.Subscription("sms", "phone", 21),)}, "resource_channel",
         "resource 21 'Shop' has the channel(s) email: the sms subscription (column 'phone') needs 'sms'"),
        ({"subs": (toolkit.Subscription("email", "email", 55),)}, "resource_unknown",
         "resource 55, used by the email subscription (column 'email'), does not exist"),
    ],
    ids=["inactive", "wrong-type", "missing", "typo-field", "wrong-channel", "unknown-resource"],
)  # fmt: skip
def test_preflight_names_the_problem_and_launch_sends_nothing(
    stub: Callable[..., StubPlatform], tmp_path: Path, plan_args: dict[str, Any], code: str, words: str
) -> None:
    """Each catalog problem is one plain sentence; launch() raises PreflightError with it and
    sends nothing; preflight=False sends anyway."""
    platform = stub(_catalog())
    client = _client(platform, tmp_path)
    plan = _mapped_plan(**plan_args)
    problems = client.preflight(plan)
    assert [p.code for p in problems] == [code]
    assert words in problems[0].message, problems[0].message
    with pytest.raises(PreflightError) as info:
        client.launch(plan, progress=False, allow_sample=True)
    assert words in str(info.value) and info.value.problems == problems
    assert platform.calls(contract.BATCH_PATH) == []
    client.launch(plan, progress=False, allow_sample=True, preflight=False)
    assert len(platform.calls(contract.BATCH_PATH)) == 1


def test_a_good_plan_passes_preflight_and_is_sent(stub: Callable[..., StubPlatform], tmp_path: Path) -> None:
    """An active API-call trigger, known fields and matching resources: no problem, the batch goes."""
    platform = stub(_catalog())
    client = _client(platform, tmp_path)
    plan = _mapped_plan(fields={"email": "email", "name": "_fname", "crm": "CRM_ID"},
                        subs=(toolkit.Subscription("email", "email", 21), toolkit.Subscription("phone", "phone", 20)))  # fmt: skip
    assert client.preflight(plan) == []
    client.launch(plan, progress=False, allow_sample=True)
    assert len(platform.calls(contract.BATCH_PATH)) == 1


def test_403_on_the_catalog_is_a_warning_not_a_failure(
    stub: Callable[..., StubPlatform], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A token that may not read the catalog gets warnings saying what was not checked; the launch goes on."""
    forbid = frozenset({contract.TRIGGER_GET_PATH, contract.RESOURCE_GET_PATH})
    platform = stub(_catalog(forbid))
    client = _client(platform, tmp_path)
    plan = _mapped_plan(subs=(toolkit.Subscription("email", "email", 21),))
    problems = client.preflight(plan)
    assert [(p.code, p.severity) for p in problems] == [("catalog_forbidden", "warning")] * 2
    assert "trigger 96 not checked" in problems[0].message
    with caplog.at_level(logging.WARNING, logger="toolkit.send.preflight"):
        client.launch(plan, progress=False, allow_sample=True)
    assert len(platform.calls(contract.BATCH_PATH)) == 1
    assert sum("may not read" in r.getMessage() for r in caplog.records) == 2


def test_a_platform_without_the_catalog_skips_preflight_with_one_warning(
    stub: Callable[..., StubPlatform], tmp_path: Path
) -> None:
    """A server that serves no catalog (an older sandbox) is said once, and the launch goes on."""
    platform = stub(_accepts(_json({"error": 0, "task_id": "t"})))
    client = _client(platform, tmp_path)
    plan = _mapped_plan(subs=(toolkit.Subscription("email", "email", 21),))
    (problem,) = client.preflight(plan)
    assert problem.severity == "warning" and "does not serve the catalog" in problem.message
    client.launch(plan, progress=False, allow_sample=True)
    assert len(platform.calls(contract.BATCH_PATH)) == 1


# --- never a real person by accident ---------------------------------------------------------------------
SAMPLE_MAPPING = toolkit.Mapping({"email": "email", "first_name": "_fname", "phone": "phones"})


def test_the_sample_is_refused_at_a_platform_that_is_not_a_sandbox(
    stub: Callable[..., StubPlatform], tmp_path: Path
) -> None:
    """A plan of the sample (or of reserved addresses only) at a non-sandbox raises before anything
    is sent, naming the target; allow_sample=True sends it on purpose."""
    platform = stub(_catalog())
    client = _client(platform, tmp_path)
    for plan in (
        toolkit.plan(toolkit.sample_customers(30), SAMPLE_MAPPING, toolkit.Trigger(96)),
        # phones only: no address to tell by, the sample's flag does
        toolkit.plan(
            toolkit.sample_customers(30, kind="polars"),
            toolkit.Mapping({"phone": "phones"}, matching="phone"),
            toolkit.Trigger(96),
        ),
        _plan(3, domain="shop.test"),
    ):
        with pytest.raises(PreflightError) as info:
            client.launch(plan, progress=False)
        assert [p.code for p in info.value.problems] == ["sample_data"]
        assert f"PLATFORM at {platform.url.removeprefix('http://')}" in str(info.value)
    assert platform.calls(contract.BATCH_PATH) == []
    client.launch(_plan(3, domain="shop.test"), progress=False, allow_sample=True)
    assert len(platform.calls(contract.BATCH_PATH)) == 1


def test_a_segment_of_real_looking_addresses_is_not_taken_for_the_sample(
    stub: Callable[..., StubPlatform], tmp_path: Path
) -> None:
    """Customers (one reserved test address among them is fine) launch at the platform as before."""
    platform = stub(_catalog())
    frame = pl.DataFrame({"email": ["ann@shop.io", "qa@example.com"], "name": ["Ann", "QA"]})
    plan = toolkit.plan(frame, MAPPING, toolkit.Trigger(96))
    assert plan.test_data is None
    _client(platform, tmp_path).launch(plan, progress=False)
    assert len(platform.calls(contract.BATCH_PATH)) == 1


def test_the_sample_launches_on_the_sandbox_which_is_named(
    sb: Any, make_client: Callable[..., Client]
) -> None:
    """On the toolkit's sandbox the sample goes out as a rehearsal, and every surface says SANDBOX."""
    client = make_client(sb)
    host = sb.url.removeprefix("http://")
    assert target_label(client) == f"SANDBOX at {host}"
    plan = toolkit.plan(toolkit.sample_customers(20), SAMPLE_MAPPING, toolkit.Trigger(96))
    launch = client.launch(plan, progress=False)
    assert f"to SANDBOX at {host}" in repr(launch) and f"SANDBOX at {host}" in launch._repr_html_()
    client.close()


def test_the_platform_is_named_platform_before_anything_is_sent(
    stub: Callable[..., StubPlatform], tmp_path: Path
) -> None:
    """A server whose answers carry no sandbox mark is the PLATFORM, in the label and the launch's repr."""
    platform = stub(_catalog())
    client = _client(platform, tmp_path)
    host = platform.url.removeprefix("http://")
    assert target_label(client, ask=False) == f"PLATFORM at {host}" and client.sandbox is None
    assert target_label(client) == f"PLATFORM at {host}" and client.sandbox is False  # asked once
    launch = client.launch(_mapped_plan(), progress=False, allow_sample=True)
    assert f"to PLATFORM at {host}" in repr(launch) and "#cf222e" in launch._repr_html_()


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh Python, with this worktree's toolkit and ``env`` over a clean environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TOOLKIT_")}
    root = str(Path(toolkit.__file__).parents[1])
    return subprocess.run([sys.executable, "-c", code], env={**base, "PYTHONPATH": root, **env},
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip


def test_notebooks_use_a_sandbox_when_the_environment_points_at_the_platform(
    stub: Callable[..., StubPlatform], tmp_path: Path
) -> None:
    """connect() (the guided notebooks) ignores a TOOLKIT_API_URL that is not a sandbox unless
    TOOLKIT_USE_REAL_PLATFORM=1: it starts a local sandbox and says so."""
    platform = stub(_catalog())
    env = {"TOOLKIT_API_URL": platform.url, "TOOLKIT_API_TOKEN": TOKEN,
           "TOOLKIT_JOURNAL": str(tmp_path / "journal.sqlite")}  # fmt: skip
    code = (
        "from toolkit.view.notebook import connect\n"
        "from toolkit.send.target import target_label\n"
        "c = connect()\n"
        "print('TARGET', target_label(c), c.base_url)\n"
    )
    guarded = _run(code, env).stdout
    assert "which is not a toolkit sandbox" in guarded and "TOOLKIT_USE_REAL_PLATFORM=1" in guarded
    assert "TARGET SANDBOX at 127.0.0.1:" in guarded and platform.url not in guarded.split("TARGET")[1]
    opted = _run(code, {**env, "TOOLKIT_USE_REAL_PLATFORM": "1"}).stdout
    assert f"TARGET PLATFORM at {platform.url.removeprefix('http://')} {platform.url}" in opted


def test_lab_and_app_use_a_sandbox_unless_the_real_platform_is_asked_for(
    stub: Callable[..., StubPlatform], sb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """make lab / make app (platform_env): a configured sandbox is used; the platform only with
    TOOLKIT_USE_REAL_PLATFORM=1, else a fresh sandbox is started."""
    from toolkit.cli.notebooks import platform_env

    platform = stub(_catalog())
    monkeypatch.setenv("TOOLKIT_API_URL", platform.url)
    monkeypatch.setenv("TOOLKIT_API_TOKEN", TOKEN)
    monkeypatch.delenv("TOOLKIT_USE_REAL_PLATFORM", raising=False)
    with platform_env() as where:
        assert where.startswith("a local sandbox at ") and os.environ["TOOLKIT_API_URL"] != platform.url
    assert os.environ["TOOLKIT_API_URL"] == platform.url  # put back
    monkeypatch.setenv("TOOLKIT_USE_REAL_PLATFORM", "1")
    with platform_env() as where:
        assert where == f"the platform at {platform.url}"
    monkeypatch.delenv("TOOLKIT_USE_REAL_PLATFORM")
    monkeypatch.setenv("TOOLKIT_API_URL", sb.url)
    monkeypatch.setenv("TOOLKIT_API_TOKEN", sb.token)
    with platform_env() as where:
        assert where == f"the platform at {sb.url}"  # the session's sandbox, as configured


# --- XML one-item arrays reach the sandbox as arrays ----------------------------------------------------------
def _inspect(server: Any, route: str) -> list[dict[str, Any]]:
    r = requests.get(f"{server.url}/_sandbox/{route}", headers={"Authorization": f"Bearer {server.token}"},
                     timeout=10)  # fmt: skip
    r.raise_for_status()
    return r.json()


def test_every_sandbox_answer_says_it_is_a_sandbox(sb: Any) -> None:
    """Answers of the sandbox, errors included, carry the header the client tells it by."""
    ok = requests.post(f"{sb.url}{contract.STATUS_PATH}", json={"task_id": "none"},
                       headers={"Authorization": f"Bearer {sb.token}"}, timeout=10)  # fmt: skip
    refused = requests.post(f"{sb.url}{contract.BATCH_PATH}", json={}, timeout=10)
    assert ok.headers[contract.SANDBOX_HEADER] == "1" and refused.headers[contract.SANDBOX_HEADER] == "1"
    assert refused.status_code == 401


def test_one_profile_xml_batch_with_one_subscription_arrives_as_arrays(
    sb: Any, make_client: Callable[..., Client]
) -> None:
    """A one-profile XML batch (a lone, marked <data>) with one subscription and a one-item
    list field is imported as a profile with one subscription and a one-item list."""
    frame = pl.DataFrame({"email": ["lone@platform.example"], "tags": [["vip"]]})
    mapping = toolkit.Mapping({"email": "email", "tags": "tags"},
                              subscriptions=[toolkit.Subscription("email", "email", 21)])  # fmt: skip
    p = toolkit.plan(frame, mapping, toolkit.Trigger(96), format="xml")
    assert p.batches[0].body.count(b"array='true'") == 3  # data, subscriptions, tags
    client = make_client(sb)
    client.launch(p, progress=False).wait(progress=False)
    (profile,) = [x for x in _inspect(sb, "profiles") if x["fields"].get("email") == "lone@platform.example"]
    assert profile["fields"]["tags"] == ["vip"]
    assert [s["resource_id"] for s in profile["subscriptions"]] == [21]
    client.close()
