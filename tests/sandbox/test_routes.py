"""Happy paths of every route, with the seed's own example bodies, in JSON and XML."""

from __future__ import annotations

import os
import re
from pathlib import Path

import orjson
import pytest
import requests
from sandbox_helpers import Api, example

from toolkit.core.contract import BATCH_PATH, SINGLE_PATH, STATUS_LIST_PATHS, STATUS_PATH, loads_xml

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
HEX24 = re.compile(r"^[0-9a-f]{24}$")


def xml_task_id(text: str) -> str:
    return loads_xml(text)["task_id"]  # type: ignore[no-any-return]


def test_batch_json_example_imports_both_profiles_and_logs_sends(api: Api) -> None:
    answer = api.post(BATCH_PATH, data=example("batch_request_email.json"))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert list(body) == list(orjson.loads(example("batch_response_ok.json")))  # error, error_text, task_id
    assert body["error"] == 0 and body["error_text"] == "Successful operation"
    assert UUID4.match(body["task_id"])

    results = api.wait(body["task_id"])
    assert len(results) == 2 and all(HEX24.match(r["profile_id"]) for r in results)
    profiles = api.inspect("profiles")
    assert [p["fields"]["email"] for p in profiles] == ["example1@example.com", "example3@example.com"]
    assert [p["profile_id"] for p in profiles] == [r["profile_id"] for r in results]
    sends = api.inspect("sends")
    assert [s["profile_id"] for s in sends] == [r["profile_id"] for r in results]
    assert {s["trigger_id"] for s in sends} == {96}
    assert sends[0]["content"] == {"page": "registration_form"}
    assert sends[0]["attachments"] == [{"name": "Attach.txt", "size": 10}]


def test_status_json_has_the_seed_example_shape(api: Api) -> None:
    task_id = api.batch([{"email": "a@example.com"}, {"email": "b@example.com"}])
    api.wait(task_id)
    answer = api.post(STATUS_PATH, {"task_id": task_id})
    seed = orjson.loads(example("status_response_completed.json"))
    body = answer.json()
    assert answer.status_code == 200
    assert list(body) == list(seed)
    assert list(body["data"]) == list(seed["data"])
    assert list(body["data"]["result"]) == list(seed["data"]["result"])
    assert body["data"]["status"] == "completed" and body["data"]["progress"] == 100
    assert body["data"]["result"]["error"] == 0 and body["data"]["result"]["error_text"] == ""


def test_batch_xml_example_answers_xml_and_fails_only_the_bad_subscription(api: Api) -> None:
    answer = api.post(BATCH_PATH, data=example("batch_request_email.xml"), xml=True)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/xml")
    parsed = loads_xml(answer.content)
    assert parsed["error"] == "0" and parsed["error_text"] == "Successful operation"
    task_id = parsed["task_id"]
    assert UUID4.match(task_id)
    json_results = api.wait(task_id)

    status = api.post(STATUS_PATH, data=f"<xml><task_id>{task_id}</task_id></xml>", xml=True)
    assert status.status_code == 200 and status.text.startswith("<xml>")
    data = loads_xml(status.content, STATUS_LIST_PATHS)["data"]
    assert data["status"] == "completed" and data["progress"] == "100"
    result = data["result"]
    assert result["captured"] == "1" and result["status"] == "ok"
    # Romeo's email subscription "@example.com" is invalid; Brooklyn is imported.
    assert result["errors"] == [
        {"index": "1", "error": "400", "error_text": result["errors"][0]["error_text"]}
    ]
    assert "@example.com" in result["errors"][0]["error_text"]
    xml_results = result["result"]
    assert HEX24.match(xml_results[0]["profile_id"])
    # The XML list is the JSON list, values as XML text.
    assert xml_results == [{k: str(v) for k, v in r.items()} for r in json_results]
    assert json_results[1]["error"] == 400


def test_status_xml_without_failures_has_an_empty_errors_element(api: Api) -> None:
    task_id = api.batch([{"email": "solo@example.com"}])
    api.wait(task_id)
    status = api.post(STATUS_PATH, {"task_id": task_id, "format": "xml"})
    assert "<errors/>" in status.text
    result = loads_xml(status.content, STATUS_LIST_PATHS)["data"]["result"]
    assert result["errors"] == [] and len(result["result"]) == 1


def test_custom_examples_answer_in_the_format_they_name(api: Api) -> None:
    xml_answer = api.post(BATCH_PATH, data=example("batch_request_custom.xml"), xml=True)
    assert xml_answer.status_code == 200 and xml_answer.text.startswith("<xml>")
    api.wait(xml_task_id(xml_answer.text))
    json_answer = api.post(BATCH_PATH, data=example("batch_request_custom.json"))
    assert json_answer.status_code == 200
    api.wait(json_answer.json()["task_id"])
    # A JSON request naming format=xml is answered in XML.
    body = orjson.loads(example("batch_request_custom.json")) | {"format": "xml"}
    crossed = api.post(BATCH_PATH, body)
    assert crossed.headers["content-type"].startswith("application/xml")
    api.wait(xml_task_id(crossed.text))
    # Both examples share one email but differ by custom id: four profiles, two per field name.
    fields = [p["fields"] for p in api.inspect("profiles")]
    assert sorted(f.get("Custom_ID", f.get("Custom_id")) for f in fields) == ["0001", "0001", "0002", "0002"]


def test_single_route_imports_one_profile_in_both_shapes(api: Api) -> None:
    first = api.single({"email": "one@example.com", "_fname": "Ann"})
    assert first.status_code == 200
    body = first.json()
    assert body["error"] == 0 and body["error_text"] == "Successful operation"
    assert HEX24.match(body["profile_id"])
    wrapped = api.single({"data": {"email": "ONE@example.com", "_lname": "Lee"}})
    assert wrapped.json()["profile_id"] == body["profile_id"]
    [profile] = api.inspect("profiles")
    assert profile["fields"]["_fname"] == "Ann" and profile["fields"]["_lname"] == "Lee"
    assert len(api.inspect("sends")) == 2


def test_single_route_xml_and_profile_error_envelope(api: Api) -> None:
    xml = "<xml><trigger_id>5</trigger_id><data><email>x@example.com</email></data></xml>"
    answer = api.post(SINGLE_PATH, data=xml, xml=True)
    assert answer.status_code == 200
    assert HEX24.match(loads_xml(answer.content)["profile_id"])
    bad = api.single({"email": "not-an-email"})
    assert bad.status_code == 400
    assert bad.json() == {"error": 400, "error_text": "invalid email 'not-an-email'"}
    unknown = api.single({"profile_id": "0" * 24}, matching="profile_id")
    assert unknown.status_code == 404 and unknown.json()["error"] == 404


def test_unknown_task_id_is_a_404_envelope(api: Api) -> None:
    answer = api.post(STATUS_PATH, {"task_id": "no-such-task"})
    assert answer.status_code == 404
    assert answer.json()["error"] == 404
    assert "no-such-task" in answer.json()["error_text"] and "unknown" in answer.json()["error_text"]
    xml = api.post(STATUS_PATH, data="<xml><task_id>nope</task_id></xml>", xml=True)
    assert xml.status_code == 404 and loads_xml(xml.content)["error"] == "404"


def test_openapi_documents_every_route(api: Api) -> None:
    doc = requests.get(api.url + "/openapi.json", timeout=10).json()
    paths = doc["paths"]
    for path in (BATCH_PATH, SINGLE_PATH, STATUS_PATH):
        assert set(paths[path]) == {"post"}
        operation = paths[path]["post"]
        assert operation["summary"]
        assert {"application/json", "application/xml"} <= set(operation["requestBody"]["content"])
    for path in ("/_sandbox/sends", "/_sandbox/profiles", "/_sandbox/tasks", "/_sandbox/health"):
        assert "get" in paths[path]
    assert "post" in paths["/_sandbox/reset"]
    # every $ref resolves
    refs = re.findall(r'"\$ref":\s*"#/components/schemas/([^"]+)"', orjson.dumps(doc).decode())
    assert refs and set(refs) <= set(doc["components"]["schemas"])
    assert requests.get(api.url + "/docs", timeout=10).status_code == 200


@pytest.mark.parametrize("path", ["sends", "profiles", "tasks"])
def test_inspection_routes_start_empty_after_reset(api: Api, path: str) -> None:
    api.run([{"email": "a@example.com"}])
    assert api.inspect(path)
    assert api.http.post(api.url + "/_sandbox/reset", headers=api.auth, timeout=10).json() == {"reset": True}
    assert api.inspect(path) == []


def test_sends_filter_by_trigger(api: Api) -> None:
    api.run([{"email": "a@example.com"}], trigger_id=1)
    api.run([{"email": "b@example.com"}], trigger_id=2)
    assert [s["trigger_id"] for s in api.inspect("sends", trigger_id=2)] == [2]
    assert len(api.inspect("sends")) == 2


def test_unknown_paths_and_methods_answer_in_the_envelope(api: Api) -> None:
    missing = api.post("/api/v1.1/profiles/nope", {"x": 1})
    assert missing.status_code == 404 and missing.json()["error"] == 404
    wrong_method = api.http.get(api.url + STATUS_PATH, headers=api.auth, timeout=5)
    assert wrong_method.status_code == 405 and wrong_method.json()["error"] == 405


def test_the_session_sandbox_is_exported_for_clients_and_notebooks(api: Api) -> None:
    assert os.environ["TOOLKIT_API_URL"] == api.url
    assert os.environ["TOOLKIT_API_TOKEN"] == api.token
    journal = Path(os.environ["TOOLKIT_JOURNAL"])
    assert journal.parent.is_dir() and journal.name.endswith(".sqlite")
