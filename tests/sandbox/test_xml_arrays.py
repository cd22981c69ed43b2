"""XML one-item arrays: the sandbox reads an element marked array='true' as a list of one (and
array='true' with no content as an empty list), on any element; without the marker, only the
elements the platform knows as lists (data, subscriptions, attach) are lists."""

from __future__ import annotations

from typing import Any

import pytest
from sandbox_helpers import Api

from toolkit.core.contract import BATCH_PATH, REQUEST_LIST_PATHS, dumps_xml, loads_xml


def post_xml(api: Api, xml: str) -> list[dict[str, Any]]:
    """Post an XML batch, wait for it; the stored profiles."""
    answer = api.post(BATCH_PATH, data=xml, xml=True)
    assert answer.status_code == 200, answer.text
    api.wait(loads_xml(answer.content)["task_id"])
    return api.inspect("profiles")  # type: ignore[no-any-return]


@pytest.mark.parametrize("items", [["vip"], ["vip", "new"], []], ids=["one", "many", "none"])
def test_a_list_field_round_trips_whatever_its_length(api: Api, items: list[str]) -> None:
    """contract.dumps_xml marks a one-item (or empty) list field; the sandbox stores it as a list."""
    body = dumps_xml({"trigger_id": 96, "data": [{"email": "a@example.com", "tags": items}]})
    [profile] = post_xml(api, body.decode())
    assert profile["fields"]["tags"] == items


def test_a_marked_lone_profile_and_subscription_are_lists_of_one(api: Api) -> None:
    """<data array='true'> and <subscriptions array='true'> (the markers every one-item array of a
    body carries) are one profile and one subscription; attach likewise."""
    xml = (
        "<xml><trigger_id>96</trigger_id>"
        "<attach array='true'><data>data:text/plain;base64,aGk=</data><name>a.txt</name></attach>"
        "<data array='true'><email>a@example.com</email>"
        "<subscriptions array='true'><channel>email</channel><email>a@example.com</email>"
        "<resource_id>21</resource_id></subscriptions>"
        "<cats array='true'>news</cats></data></xml>"
    )
    [profile] = post_xml(api, xml)
    assert profile["subscriptions"] == [{"channel": "email", "email": "a@example.com", "resource_id": 21}]
    assert profile["fields"]["cats"] == ["news"]
    [send] = api.inspect("sends")
    assert send["attachments"] == [{"name": "a.txt", "size": 2}]


def test_many_profiles_and_subscriptions_without_markers(api: Api) -> None:
    """Repeated elements are lists with or without the marker; an unmarked lone field is a value."""
    xml = (
        "<xml><trigger_id>96</trigger_id>"
        "<data><email>a@example.com</email><cats>news</cats>"
        "<subscriptions><channel>email</channel><email>a@example.com</email></subscriptions>"
        "<subscriptions><channel>sms</channel><phone>+79000000001</phone></subscriptions></data>"
        "<data><email>b@example.com</email></data></xml>"
    )
    first, second = post_xml(api, xml)
    assert [s["channel"] for s in first["subscriptions"]] == ["email", "sms"]
    assert first["fields"]["cats"] == "news" and second["fields"] == {"email": "b@example.com"}


@pytest.mark.parametrize(
    "value",
    [{"data": [{"email": "a@b.co"}]}, {"data": [{"email": "a@b.co"}, {"email": "c@d.co"}]}, {"attach": []}],
    ids=["one-profile", "two-profiles", "no-attach"],
)
def test_contract_xml_reads_back_what_it_writes(value: dict[str, Any]) -> None:
    """dumps_xml then loads_xml is the identity on a body's lists, one item, many or none."""
    assert loads_xml(dumps_xml(value), REQUEST_LIST_PATHS) == value
