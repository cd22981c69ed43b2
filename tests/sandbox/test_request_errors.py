"""Envelope errors: 400 with an error_text that says what is wrong, nothing imported."""

from __future__ import annotations

from typing import Any

import pytest
from sandbox_helpers import Api

from toolkit.core.contract import BATCH_PATH, SINGLE_PATH, STATUS_PATH, loads_xml

OK_DATA = [{"data": {"email": "a@example.com"}}]


def assert_400(answer: Any, *words: str) -> None:
    assert answer.status_code == 400, answer.text
    body = answer.json() if answer.text.startswith("{") else loads_xml(answer.content)
    assert str(body["error"]) == "400"
    for word in words:
        assert word in body["error_text"], body["error_text"]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'{"trigger_id": 1, "data": [', ("malformed JSON",)),
        (b"[1, 2]", ("must be an object",)),
        (b"", ("empty",)),
        (b'{"trigger_id": NaN, "data": []}', ("malformed JSON",)),
    ],
    ids=["truncated", "array", "empty", "nan"],
)
def test_malformed_json(api: Api, raw: bytes, words: tuple[str, ...]) -> None:
    assert_400(api.post(BATCH_PATH, data=raw), *words)


@pytest.mark.parametrize("raw", ["<xml><trigger_id>1</trigger_id>", "<xml><a></b></xml>", "<"])
def test_malformed_xml(api: Api, raw: str) -> None:
    answer = api.post(BATCH_PATH, data=raw, xml=True)
    assert answer.headers["content-type"].startswith("application/xml")
    assert_400(answer, "malformed XML")


@pytest.mark.parametrize(
    ("envelope", "words"),
    [
        ({"data": OK_DATA}, ("trigger_id is required",)),
        ({"trigger_id": "96", "data": OK_DATA}, ("trigger_id must be an integer",)),
        ({"trigger_id": 9.5, "data": OK_DATA}, ("trigger_id must be an integer",)),
        ({"trigger_id": True, "data": OK_DATA}, ("trigger_id must be an integer",)),
        ({"trigger_id": 1, "resource_id": "x", "data": OK_DATA}, ("resource_id must be an integer",)),
        ({"trigger_id": 1, "matching": "fax", "data": OK_DATA}, ("unknown matching 'fax'",)),
        ({"trigger_id": 1, "matching": "custom", "data": OK_DATA}, ("field_name",)),
        ({"trigger_id": 1, "matching": "custom_sub", "data": OK_DATA}, ("not documented", "custom")),
        ({"trigger_id": 1}, ("data is required",)),
        ({"trigger_id": 1, "data": {"email": "a@example.com"}}, ("data must be a list",)),
        ({"trigger_id": 1, "data": "a@example.com"}, ("data must be a list",)),
        ({"trigger_id": 1, "data": []}, ("data is empty",)),
        ({"trigger_id": 1, "data": [{"email": "a@example.com"}]}, ("data[0]", '{"data": {...fields...}}')),
        ({"trigger_id": 1, "data": [*OK_DATA, "x"]}, ("data[1]",)),
        (
            {"trigger_id": 1, "data": OK_DATA, "skip_triggers": "yes"},
            ("skip_triggers must be true or false",),
        ),
        ({"trigger_id": 1, "data": OK_DATA, "content": [1]}, ("content must be an object",)),
        ({"trigger_id": 1, "data": OK_DATA, "format": "csv"}, ("format must be 'json' or 'xml'",)),
        ({"trigger_id": 1, "data": OK_DATA, "attach": [{"data": "hello", "name": "a.txt"}]}, ("data URI",)),
        (
            {
                "trigger_id": 1,
                "data": OK_DATA,
                "attach": [{"data": "data:text/plain;base64,%%%%", "name": "a"}],
            },
            ("data URI",),
        ),
        (
            {"trigger_id": 1, "data": OK_DATA, "attach": [{"data": "data:text/plain;base64,aGk="}]},
            ("no 'name'",),
        ),
    ],
    ids=lambda v: v[0][:40] if isinstance(v, tuple) else None,
)
def test_envelope_errors_import_nothing(api: Api, envelope: dict[str, Any], words: tuple[str, ...]) -> None:
    assert_400(api.post(BATCH_PATH, envelope), *words)
    assert api.inspect("tasks") == []


def test_single_route_checks_the_same_envelope(api: Api) -> None:
    assert_400(api.post(SINGLE_PATH, {"data": {"email": "a@example.com"}}), "trigger_id is required")
    assert_400(api.post(SINGLE_PATH, {"trigger_id": 1, "data": ["a"]}), "one profile object")
    assert_400(api.post(SINGLE_PATH, {"trigger_id": 1, "matching": "custom", "data": {}}), "field_name")
    assert_400(api.post(STATUS_PATH, {}), "task_id is required")
    assert_400(api.post(STATUS_PATH, {"task_id": 5}), "task_id must be a string")
    assert api.inspect("profiles") == []


def test_attachment_over_the_file_limit(make_api) -> None:  # type: ignore[no-untyped-def]
    api = make_api(max_file_bytes=8)
    ok = {
        "trigger_id": 1,
        "data": OK_DATA,
        "attach": [{"data": "data:text/plain;base64,aGVsbG8=", "name": "a"}],
    }
    assert api.post(BATCH_PATH, ok).status_code == 200
    big = {
        "trigger_id": 1,
        "data": OK_DATA,
        "attach": [{"data": "data:text/plain;base64,aGVsbG8gd29ybGQ=", "name": "b"}],
    }
    assert_400(api.post(BATCH_PATH, big), "'b'", "11 bytes", "limit")


def test_xml_values_are_coerced(api: Api) -> None:
    xml = (
        "<xml><trigger_id> 96 </trigger_id><resource_id>21</resource_id><skip_triggers>true</skip_triggers>"
        "<skip_invalid_subscriptions>false</skip_invalid_subscriptions><detect_geo>1</detect_geo>"
        "<data><email>a@example.com</email></data></xml>"
    )
    answer = api.post(BATCH_PATH, data=xml, xml=True)
    assert answer.status_code == 200, answer.text
    api.wait(loads_xml(answer.content)["task_id"])
    assert api.inspect("sends") == []  # skip_triggers "true" was read as true
    assert [t["trigger_id"] for t in api.inspect("tasks")] == [96]
    bad = xml.replace("<skip_triggers>true", "<skip_triggers>yes")
    assert_400(api.post(BATCH_PATH, data=bad, xml=True), "skip_triggers")
    not_int = xml.replace("<trigger_id> 96 ", "<trigger_id>ninety-six")
    assert_400(api.post(BATCH_PATH, data=not_int, xml=True), "trigger_id must be an integer")
