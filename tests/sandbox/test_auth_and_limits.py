"""Auth (401/403 both ways) and the 10 MB body limit."""

from __future__ import annotations

import logging

import orjson
import pytest
import requests
from sandbox_helpers import Api, example

from toolkit.core.contract import BATCH_PATH, MAX_BODY_BYTES, SINGLE_PATH, STATUS_PATH, loads_xml

PLATFORM = [BATCH_PATH, SINGLE_PATH, STATUS_PATH]


@pytest.mark.parametrize("path", PLATFORM)
def test_missing_token_is_401_in_json_and_xml(api: Api, path: str) -> None:
    answer = api.post(path, {"trigger_id": 1, "task_id": "x", "data": []}, auth=False)
    assert answer.status_code == 401
    assert answer.json()["error"] == 401 and "token" in answer.json()["error_text"]
    xml = api.post(path, data="<xml><task_id>x</task_id></xml>", xml=True, auth=False)
    assert xml.status_code == 401 and loads_xml(xml.content)["error"] == "401"


@pytest.mark.parametrize("path", PLATFORM)
def test_wrong_token_is_403_by_header_and_by_body(api: Api, path: str) -> None:
    by_header = api.post(path, {"task_id": "x"}, auth=False, headers={"Authorization": "Bearer nope"})
    assert by_header.status_code == 403 and by_header.json()["error"] == 403
    by_body = api.post(path, {"task_id": "x", "token": "nope"}, auth=False)
    assert by_body.status_code == 403 and by_body.json()["error"] == 403
    xml = api.post(path, data="<xml><token>nope</token><task_id>x</task_id></xml>", xml=True, auth=False)
    assert xml.status_code == 403 and loads_xml(xml.content)["error"] == "403"


def test_body_token_alone_is_accepted(api: Api) -> None:
    body = orjson.loads(example("batch_request_email.json")) | {"token": api.token}
    answer = api.post(BATCH_PATH, body, auth=False)
    assert answer.status_code == 200 and answer.json()["error"] == 0
    xml = f"<xml><token>{api.token}</token><task_id>{answer.json()['task_id']}</task_id></xml>"
    assert api.post(STATUS_PATH, data=xml, xml=True, auth=False).status_code == 200


@pytest.mark.parametrize("route", ["sends", "profiles", "tasks"])
def test_inspection_routes_need_the_token(api: Api, route: str) -> None:
    url = f"{api.url}/_sandbox/{route}"
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=5).json()["error"] == 403
    assert requests.post(f"{api.url}/_sandbox/reset", timeout=5).status_code == 401
    assert requests.get(f"{api.url}/_sandbox/health", timeout=5).status_code == 200


def test_the_token_is_never_logged(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        api.run([{"email": "a@example.com"}])
        api.post(STATUS_PATH + f"?token={api.token}", {"task_id": "x", "token": api.token}, auth=False)
        api.post(STATUS_PATH, {"task_id": "x"}, auth=False, headers={"Authorization": f"Bearer {api.token}x"})
    server_records = [r for r in caplog.records if r.name.startswith(("toolkit.sandbox", "uvicorn"))]
    assert any("tasks/status" in r.getMessage() for r in server_records)  # the access log did run
    assert not any(api.token in r.getMessage() for r in server_records)


def big_json() -> bytes:
    filler = "x" * (11 * 1024 * 1024)
    return orjson.dumps({"trigger_id": 1, "data": [{"data": {"email": "a@example.com", "note": filler}}]})


def test_over_10_mb_gets_the_seed_body_exactly_and_the_server_stays_up(api: Api) -> None:
    body = big_json()
    assert len(body) > MAX_BODY_BYTES
    answer = api.post(BATCH_PATH, data=body)
    assert answer.status_code == 400
    assert answer.json() == orjson.loads(example("batch_response_body_too_large.json"))
    assert answer.json() == {
        "error": 400,
        "error_debug": "http: request body too large",
        "error_text": "Invalid request",
    }
    # Same connection, next request: still served.
    assert api.post(STATUS_PATH, {"task_id": "x"}).status_code == 404
    assert api.alive()
    assert api.inspect("tasks") == []


def test_over_limit_without_content_length_is_cut_while_streaming(api: Api) -> None:
    body = big_json()
    chunks = (body[i : i + (1 << 20)] for i in range(0, len(body), 1 << 20))  # chunked encoding
    answer = api.http.post(api.url + BATCH_PATH, data=chunks, headers=api.auth, timeout=30)
    assert answer.status_code == 400
    assert answer.json()["error_debug"] == "http: request body too large"
    assert api.alive()


def test_over_limit_in_xml_gets_the_xml_example(api: Api) -> None:
    body = b"<xml><trigger_id>1</trigger_id><data><note>" + b"x" * (11 << 20) + b"</note></data></xml>"
    answer = api.post(BATCH_PATH, data=body, xml=True)
    assert answer.status_code == 400
    assert loads_xml(answer.content) == loads_xml(example("batch_response_body_too_large.xml"))


def test_the_limit_is_exact(make_api) -> None:  # type: ignore[no-untyped-def]
    api = make_api(max_body_bytes=300)
    body = orjson.dumps({"trigger_id": 1, "data": [{"data": {"email": "a@example.com"}}]})
    padded = body[:-1] + b" " * (300 - len(body)) + b"}"
    assert len(padded) == 300
    assert api.post(BATCH_PATH, data=padded).status_code == 200
    over = padded[:-1] + b" }"
    assert api.post(BATCH_PATH, data=over).json()["error_debug"] == "http: request body too large"
