"""The documented answer variants, at the HTTP level: each answers as that form of the platform
does, and the standard variant stays as it was."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from sandbox_helpers import Api

from toolkit.core.contract import (
    BATCH_PATH,
    SINGLE_PATH,
    STATUS_LIST_PATHS,
    STATUS_PATH,
    TRIGGER_GET_PATH,
    loads_xml,
)

PROFILES = [{"email": "a@example.com"}, {"email": "not-an-email"}, {"email": "c@example.com"}]


def batch_body() -> dict[str, Any]:
    return {"trigger_id": 96, "data": [{"data": p} for p in PROFILES]}


def wait_done(api: Api, task_id: str, **request: Any) -> dict[str, Any]:
    """Poll tasks/status until the task is over; its status data (the timeout only stops a hang)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = api.post(STATUS_PATH, {"task_id": task_id, **request})
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        if data["status"] == "completed":
            return data  # type: ignore[no-any-return]
        time.sleep(0.02)
    raise AssertionError(f"task {task_id} did not complete")


def test_nested_task_id_puts_the_task_id_under_data(make_api: Callable[..., Api]) -> None:
    """variant nested_task_id: {"data": {"task_id": ...}} and no top-level task_id, in JSON and XML."""
    api = make_api(variant="nested_task_id")
    answer = api.post(BATCH_PATH, batch_body())
    assert answer.status_code == 200 and "task_id" not in answer.json()
    task_id = answer.json()["data"]["task_id"]
    assert [r.get("profile_id") is not None for r in api.wait(task_id)] == [True, False, True]
    xml = api.post(BATCH_PATH, batch_body() | {"format": "xml"})
    assert loads_xml(xml.content, ())["data"]["task_id"]


@pytest.mark.parametrize(("captured", "reported"), [(None, 2), (0, 0)])
def test_short_result_answers_captured_errors_status(
    make_api: Callable[..., Api], captured: int | None, reported: int
) -> None:
    """variant short_result: a finished task's result is {captured, errors, status} (captured the
    profiles imported, or the configured count), no per-profile list, in JSON and XML."""
    api = make_api(variant="short_result", captured=captured)
    task_id = api.post(BATCH_PATH, batch_body()).json()["task_id"]
    result = wait_done(api, task_id)["result"]
    assert result["captured"] == reported and result["status"] == "ok" and "result" not in result
    [error] = result["errors"]
    assert error["index"] == 1 and error["error"] == 400 and "invalid email" in error["error_text"]
    xml = api.post(STATUS_PATH, {"task_id": task_id, "format": "xml"})
    read = loads_xml(xml.content, STATUS_LIST_PATHS)["data"]["result"]
    assert read["captured"] == str(reported) and "result" not in read and len(read["errors"]) == 1
    assert len(api.inspect("profiles")) == 2  # what happened is unchanged: only the answer is short


def test_error_in_200_answers_errors_with_http_200(make_api: Callable[..., Api]) -> None:
    """variant error_in_200: a refused request is HTTP 200 with the error code in the body; success is unchanged."""
    api = make_api(variant="error_in_200")
    refused = api.post(BATCH_PATH, {"data": []})
    assert refused.status_code == 200 and refused.json()["error"] == 400
    wrong = api.post(STATUS_PATH, {"task_id": "x"}, headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 200 and wrong.json()["error"] == 403
    unknown = api.post(STATUS_PATH, {"task_id": "x"})
    assert unknown.status_code == 200 and unknown.json()["error"] == 404
    bad_profile = api.post(SINGLE_PATH, {"trigger_id": 96, "data": {"email": "nope"}})
    assert bad_profile.status_code == 200 and bad_profile.json()["error"] == 400
    accepted = api.post(BATCH_PATH, batch_body())
    assert accepted.status_code == 200 and accepted.json()["error"] == 0 and accepted.json()["task_id"]
    assert api.inspect("tasks")[0]["total"] == 3  # only the good request became a task


def test_body_token_only_ignores_the_authorization_header(make_api: Callable[..., Api]) -> None:
    """variant body_token_only: the header alone is 401 "API token required"; the body's token works."""
    api = make_api(variant="body_token_only")
    for path, body in ((BATCH_PATH, batch_body()), (TRIGGER_GET_PATH, {"id": 96})):
        refused = api.post(path, body)
        assert refused.status_code == 401 and refused.json()["error_text"] == "API token required"
    assert api.inspect("tasks") == []
    accepted = api.post(BATCH_PATH, batch_body() | {"token": api.token}, auth=False)
    assert accepted.status_code == 200, accepted.text
    wrong = api.post(BATCH_PATH, batch_body() | {"token": "wrong"}, auth=False)
    assert wrong.status_code == 403
    assert len(api.inspect("tasks")) == 1


def test_the_standard_variant_is_unchanged(api: Api) -> None:
    """By default: task_id at the top level, one result per profile, HTTP status = error code, header auth."""
    answer = api.post(BATCH_PATH, batch_body())
    assert answer.status_code == 200 and answer.json()["task_id"]
    results = api.wait(answer.json()["task_id"])
    assert [("profile_id" in r) for r in results] == [True, False, True]
    assert api.post(STATUS_PATH, {"task_id": "x"}).status_code == 404


def test_a_variant_the_sandbox_does_not_know_is_refused(make_api: Callable[..., Api]) -> None:
    """A typo'd variant (or captured without short_result) stops the start with a clear error."""
    with pytest.raises(ValueError, match="variant must be one of"):
        make_api(variant="short")
    with pytest.raises(ValueError, match="short_result"):
        make_api(captured=3)
