"""The catalog: served by the platform's catalog methods with the documented shapes, editable at
/_sandbox/catalog, checked when an import names a trigger, strict on request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sandbox_helpers import Api

from toolkit.core.contract import (
    BATCH_PATH,
    DATABASE_FIELDS_PATH,
    DATABASES_LIST_PATH,
    RESOURCE_GET_PATH,
    RESOURCES_LIST_PATH,
    SINGLE_PATH,
    SYSTEM_FIELDS,
    TRIGGER_GET_PATH,
    TRIGGERS_LIST_PATH,
    loads_xml,
)

ONE = [{"data": {"email": "a@example.com"}}]
SMALL = {
    "triggers": [{"id": 5, "name": "Welcome", "list_id": 1, "resource_id": 2}],
    "databases": [{"id": 1, "name": "Shop", "fields": [{"name": "points", "type": "int"}]}],
    "resources": [{"id": 2, "name": "Mail", "channels": ["email"], "dbs_ids": [1]}],
}


def ok(answer: Any) -> dict[str, Any]:
    """The body of a successful answer (JSON)."""
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["error"] == 0 and body["error_text"] == "Successful operation"
    return body  # type: ignore[no-any-return]


def test_trigger_get_answers_the_documented_fields(api: Api) -> None:
    """campaigns/triggers/get: data with id, name, is_active, trigger_type, list_id, resource_id, send_channel."""
    data = ok(api.post(TRIGGER_GET_PATH, {"id": 96}))["data"]
    assert {
        k: data[k] for k in ("id", "is_active", "trigger_type", "list_id", "resource_id", "send_channel")
    } == {
        "id": 96,
        "is_active": True,
        "trigger_type": "api_call",
        "list_id": 1,
        "resource_id": 21,
        "send_channel": "email",
    }
    xml = api.post(TRIGGER_GET_PATH, data="<xml><id>101</id></xml>", xml=True)
    assert loads_xml(xml.content, ())["data"]["is_active"] == "false"


def test_the_lists_page_by_id_and_count_everything(api: Api) -> None:
    """Lists go by id from from_id, at most limit; total_count counts all, next_from_id asks for the rest."""
    triggers = ok(api.post(TRIGGERS_LIST_PATH, {}))
    assert [t["id"] for t in triggers["data"]] == [96, 101, 102, 103]
    assert triggers["data"][0]["type"] == "api_call" and triggers["total_count"] == 4
    active = ok(api.post(TRIGGERS_LIST_PATH, {"is_active": True}))["data"]
    assert 101 not in [t["id"] for t in active]
    first = ok(api.post(RESOURCES_LIST_PATH, {"limit": 2}))
    assert [r["id"] for r in first["data"]] == [3, 20] and first["total_count"] == 4
    rest = ok(api.post(RESOURCES_LIST_PATH, {"from_id": first["next_from_id"]}))
    assert [r["id"] for r in rest["data"]] == [21, 22]
    databases = ok(api.post(DATABASES_LIST_PATH + "/", {}))  # the docs print this path with a slash
    assert [d["name"] for d in databases["data"]] == ["Customers", "Partners"]


def test_database_fields_are_the_system_ones_then_the_typed_custom_ones(api: Api) -> None:
    """databases/fields: every system field, then the database's own with their types."""
    fields = ok(api.post(DATABASE_FIELDS_PATH, {"id": 1}))["data"]
    system = [f["name"] for f in fields if f["is_system"]]
    assert set(system) == SYSTEM_FIELDS
    custom = {f["name"]: f["type"] for f in fields if not f["is_system"]}
    assert custom["CRM_ID"] == "string" and custom["orders"] == "int" and custom["tags"] == "tags"
    assert ok(api.post(DATABASE_FIELDS_PATH, {"db_id": 2}))["data"][-1]["is_system"]  # no custom fields
    assert api.post(DATABASE_FIELDS_PATH, {"id": 77}).status_code == 404


def test_resource_get_names_its_channels(api: Api) -> None:
    """resources/get: the channels a resource sends on and its databases; 404 when unknown."""
    assert ok(api.post(RESOURCE_GET_PATH, {"id": 20}))["data"]["channels"] == ["sms"]
    assert ok(api.post(RESOURCE_GET_PATH, {"id": 22}))["data"]["dbs_ids"] == [2]
    missing = api.post(RESOURCE_GET_PATH, {"id": 999})
    assert missing.status_code == 404 and "resource 999 not found" in missing.json()["error_text"]


def test_an_unknown_trigger_is_registered_on_first_use(api: Api) -> None:
    """Rehearsals with any id keep working: the id becomes an active API-call trigger, once."""
    assert api.post(TRIGGER_GET_PATH, {"id": 4242}).json()["data"]["trigger_type"] == "api_call"
    api.run([{"email": "a@example.com"}], trigger_id=4243)
    ids = [t["id"] for t in api.inspect("catalog")["triggers"]]
    assert ids.count(4242) == 1 and ids.count(4243) == 1


@pytest.mark.parametrize(("trigger_id", "reason"), [(101, "is not active"), (102, "of type 'subscription'")])
@pytest.mark.parametrize("path", [BATCH_PATH, SINGLE_PATH])
def test_an_inactive_or_non_api_trigger_starts_nothing(
    api: Api, path: str, trigger_id: int, reason: str
) -> None:
    """Only an active API-call trigger is started by an import: the others answer 404 with the reason."""
    data = ONE if path == BATCH_PATH else ONE[0]["data"]
    answer = api.post(path, {"trigger_id": trigger_id, "data": data})
    assert answer.status_code == 404 and reason in answer.json()["error_text"], answer.text
    assert api.inspect("tasks") == [] and api.inspect("profiles") == [] and api.inspect("sends") == []


def test_a_strict_catalog_refuses_an_unknown_trigger(make_api: Callable[..., Api]) -> None:
    """strict_catalog: an id the catalog does not know is a 404, for the catalog and the imports alike."""
    api = make_api(strict_catalog=True)
    assert api.post(TRIGGER_GET_PATH, {"id": 4242}).status_code == 404
    refused = api.post(BATCH_PATH, {"trigger_id": 4242, "data": ONE})
    assert refused.status_code == 404 and "trigger campaign 4242 not found" in refused.json()["error_text"]
    assert api.inspect("tasks") == []
    assert api.post(BATCH_PATH, {"trigger_id": 96, "data": ONE}).status_code == 200


def test_the_catalog_is_replaced_by_put_and_restored_by_reset(api: Api) -> None:
    """PUT /_sandbox/catalog serves a new catalog at once; /_sandbox/reset brings back the starting one."""
    put = api.http.put(f"{api.url}/_sandbox/catalog", json=SMALL, headers=api.auth, timeout=10)
    assert put.status_code == 200, put.text
    assert [t["id"] for t in ok(api.post(TRIGGERS_LIST_PATH, {}))["data"]] == [5]
    assert [
        f["name"] for f in ok(api.post(DATABASE_FIELDS_PATH, {"id": 1}))["data"] if not f["is_system"]
    ] == ["points"]
    bad = api.http.put(
        f"{api.url}/_sandbox/catalog", json={"triggers": [{"id": "x"}]}, headers=api.auth, timeout=10
    )
    assert bad.status_code == 400 and "triggers.0.id" in bad.json()["error_text"]
    api.control("reset")
    assert 96 in [t["id"] for t in api.inspect("catalog")["triggers"]]


def test_a_catalog_given_at_start_is_served(make_api: Callable[..., Api]) -> None:
    """serve(catalog=...) takes a catalog document; the default triggers are then unknown to it."""
    api = make_api(catalog=SMALL, strict_catalog=True)
    assert api.inspect("catalog")["triggers"][0]["name"] == "Welcome"
    assert api.post(TRIGGER_GET_PATH, {"id": 96}).status_code == 404
