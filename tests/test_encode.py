"""toolkit.core.encode: fragments and envelopes, byte-exact, JSON and XML."""

from __future__ import annotations

import json

import polars as pl
import pytest

from toolkit import Mapping, Subscription, Trigger, plan
from toolkit.core.contract import loads_xml
from toolkit.core.encode import envelope, json_rows, xml_rows
from toolkit.core.validate import prepare
from toolkit.errors import InvalidArgumentError

NASTY = [
    'quote " back \\ slash',
    "<tag> & 'amp'",
    "line\nbreak\r\nwin\ttab",
    "Привет 😀",
    "]]> -->",
    "a\u2028b\u2029c",
    "nul-free \x7f del",
]


def test_json_fragments_escape_every_string_exactly() -> None:
    df = pl.DataFrame({"email": [f"u{i}@x.io" for i in range(len(NASTY))], "v": NASTY})
    mapping = Mapping({"email": "email", "v": "note"})
    fragments = json_rows(prepare(df, mapping, Trigger(1)), mapping).to_list()
    assert [json.loads(f)["data"]["note"] for f in fragments] == NASTY


def test_xml_fragments_escape_every_string_exactly() -> None:
    df = pl.DataFrame({"email": [f"u{i}@x.io" for i in range(len(NASTY))], "v": NASTY})
    mapping = Mapping({"email": "email", "v": "note"})
    fragments = xml_rows(prepare(df, mapping, Trigger(1), format="xml"), mapping).to_list()
    parsed = loads_xml("<xml>" + "".join(fragments) + "</xml>")
    assert [p["note"] for p in parsed["data"]] == NASTY  # \r survives as &#13;


def test_json_field_names_are_escaped() -> None:
    df = pl.DataFrame({"email": ["a@x.io"], "v": ["x"]})
    p = plan(df, Mapping({"email": "email", "v": 'odd "name" é'}), Trigger(1))
    assert json.loads(p.batches[0].body)["data"][0]["data"]['odd "name" é'] == "x"


def test_xml_field_names_must_be_element_names() -> None:
    df = pl.DataFrame({"email": ["a@x.io"], "v": ["x"]})
    with pytest.raises(InvalidArgumentError, match="cannot be an XML element name"):
        plan(df, Mapping({"email": "email", "v": "first name"}), Trigger(1), format="xml")


def test_struct_columns_are_objects() -> None:
    df = pl.DataFrame({"email": ["a@x.io", "b@x.io"], "addr": [{"city": "Москва", "zip": 101000}, None]})
    m = Mapping({"email": "email", "addr": "address"})
    body = json.loads(plan(df, m, Trigger(1)).batches[0].body)
    assert [d["data"].get("address") for d in body["data"]] == [{"city": "Москва", "zip": 101000}, None]
    xml = loads_xml(plan(df, m, Trigger(1), format="xml").batches[0].body)
    assert xml["data"][0]["address"] == {"city": "Москва", "zip": "101000"}
    assert "address" not in xml["data"][1]


def test_json_envelope_options_first_data_last() -> None:
    env = envelope(
        Mapping({"crm": "CRM_ID"}, matching="custom", match_field="CRM_ID", resource_id=4),
        Trigger(96, content={"page": "x"}, timeout={"minutes": 5}),
        "json",
    )
    whole = json.loads(env.prefix + b'{"data":{"CRM_ID":"1"}}' + env.suffix)
    assert list(whole) == [
        "format", "matching", "field_name", "resource_id", "trigger_id", "skip_triggers",
        "skip_invalid_subscriptions", "detect_geo", "timeout", "content", "data",
    ]  # fmt: skip
    assert whole["timeout"] == {"days": 0, "hours": 0, "minutes": 5}
    assert env.separator == b","
    assert "token" not in whole


def test_xml_envelope_parses_and_holds_no_token() -> None:
    env = envelope(Mapping({"email": "email"}), Trigger(96, attach=[("a.txt", b"hi")]), "xml")
    parsed = loads_xml(env.prefix + b"<data>\n<email>a@x.io</email>\n</data>" + env.suffix)
    assert parsed["format"] == "xml" and parsed["trigger_id"] == "96"
    assert parsed["attach"] == [{"data": "data:text/plain;base64,aGk=", "name": "a.txt"}]
    assert parsed["data"] == [{"email": "a@x.io"}]
    assert "token" not in parsed


def test_subscriptions_json_and_xml_match() -> None:
    df = pl.DataFrame({"email": ["a@x.io", "b@x.io"], "tel": ["+79000000001", None]})
    m = Mapping(
        {"email": "email"},
        subscriptions=[Subscription("email", "email", 21, cats=["news"]), Subscription("sms", "tel", 20)],
    )
    j = [d["data"] for d in json.loads(plan(df, m, Trigger(1)).batches[0].body)["data"]]
    x = loads_xml(plan(df, m, Trigger(1), format="xml").batches[0].body)["data"]
    assert j[0]["subscriptions"] == [
        {"channel": "email", "email": "a@x.io", "resource_id": 21, "cats": ["news"]},
        {"channel": "sms", "phone": "+79000000001", "resource_id": 20},
    ]
    assert x[0]["subscriptions"] == [
        {"channel": "email", "email": "a@x.io", "resource_id": "21", "cats": ["news"]},
        {"channel": "sms", "phone": "+79000000001", "resource_id": "20"},
    ]
    # a null contact leaves that subscription out
    assert j[1]["subscriptions"] == [
        {"channel": "email", "email": "b@x.io", "resource_id": 21, "cats": ["news"]}
    ]
    assert x[1]["subscriptions"] == [
        {"channel": "email", "email": "b@x.io", "resource_id": "21", "cats": ["news"]}
    ]


def test_push_subscription_carries_its_id_and_provider() -> None:
    df = pl.DataFrame({"email": ["a@x.io"], "pid": ["  tok-1 "]})
    m = Mapping({"email": "email"}, subscriptions=[Subscription("push", "pid", 3, provider="fcm")])
    (profile,) = json.loads(plan(df, m, Trigger(1)).batches[0].body)["data"]
    assert profile["data"]["subscriptions"] == [
        {"channel": "push", "subscription_id": "tok-1", "resource_id": 3, "provider": "fcm"}
    ]


def test_numbers_in_xml_are_plain_text() -> None:
    df = pl.DataFrame({"email": ["a@x.io"], "n": [2**62], "f": [0.1 + 0.2], "b": [False]})
    p = plan(df, Mapping({"email": "email", "n": "n", "f": "f", "b": "b"}), Trigger(1), format="xml")
    assert b"<n>4611686018427387904</n>\n<f>0.30000000000000004</f>\n<b>false</b>" in p.batches[0].body


# --- XML one-item arrays: array='true' on every repeated element holding one item ---------------
def _xml_body(rows: dict[str, list], mapping: Mapping, **trigger: object) -> bytes:
    (batch,) = plan(pl.DataFrame(rows), mapping, Trigger(1, **trigger), format="xml").batches  # type: ignore[arg-type]
    return batch.body


_TWO_SUBS = [Subscription("email", "email", 21), Subscription("sms", "tel", 20)]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_xml_arrays_round_trip_by_their_markers_alone(n: int) -> None:
    """A reader that knows no element by name (no list paths) still reads data, subscriptions,
    list fields and attach as arrays, with one item and with many."""
    rows = {
        "email": [f"p{i}@x.io" for i in range(n)],
        "tel": [f"+7900000000{i}" if i % 2 == 0 else None for i in range(n)],  # row 1: one subscription
        "tags": [["vip"] if i == 0 else ["vip", "new"] for i in range(n)],
    }
    body = _xml_body(rows, Mapping({"email": "email", "tags": "tags"}, subscriptions=_TWO_SUBS),
                     attach=[("a.txt", b"hi")])  # fmt: skip
    parsed = loads_xml(body, frozenset())
    assert [p["email"] for p in parsed["data"]] == rows["email"]
    assert [len(p["subscriptions"]) for p in parsed["data"]] == [1 if i % 2 else 2 for i in range(n)]
    assert [p["tags"] for p in parsed["data"]] == rows["tags"]
    assert parsed["attach"] == [{"data": "data:text/plain;base64,aGk=", "name": "a.txt"}]
    # the marker goes on lone items only: a body of many profiles is the seed's plain repetition
    assert body.count(b"<data array='true'>") == (n == 1)
    assert body.count(b"<subscriptions array='true'>") == n // 2


def test_xml_one_subscription_mapped_is_always_marked() -> None:
    """The common mapping with one subscription writes a lone, marked <subscriptions> in every profile."""
    body = _xml_body({"email": ["a@x.io", "b@x.io"]}, Mapping({"email": "email"},
                     subscriptions=[Subscription("email", "email", 21)]))  # fmt: skip
    assert body.count(b"<subscriptions array='true'>") == 2 and b"<subscriptions>" not in body
    assert [p["subscriptions"][0]["resource_id"] for p in loads_xml(body, frozenset())["data"]] == [
        "21",
        "21",
    ]


@pytest.mark.parametrize("n", [1, 3])
def test_xml_bodies_are_exactly_the_size_planned(n: int) -> None:
    """The marker's bytes are counted when the plan sizes and splits bodies (a body is checked
    against its planned size before it leaves)."""
    rows = {"email": [f"p{i}@x.io" for i in range(n)], "tel": ["+79000000001"] + [None] * (n - 1)}
    p = plan(pl.DataFrame(rows), Mapping({"email": "email"}, subscriptions=_TWO_SUBS), Trigger(1),
             format="xml", max_rows=1)  # fmt: skip
    assert [len(b.body) for b in p.batches] == [b.nbytes for b in p.batches]
    assert all(b"<data array='true'>" in b.body for b in p.batches)


def test_json_bodies_carry_no_marker() -> None:
    """The marker is XML's: JSON bodies of one profile are unchanged."""
    (batch,) = plan(pl.DataFrame({"email": ["a@x.io"]}), Mapping({"email": "email"}), Trigger(1)).batches
    assert batch.body.endswith(b'"data":[{"data":{"email":"a@x.io"}}]}')
