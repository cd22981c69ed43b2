"""toolkit.core.contract: the platform's XML shapes, read and written exactly as the seed shows them."""

from __future__ import annotations

from pathlib import Path

import defusedxml
import pytest

from toolkit.core.contract import (
    MATCHING_MODES,
    REQUEST_LIST_PATHS,
    STATUS_LIST_PATHS,
    dumps_xml,
    is_xml_name,
    loads_xml,
    xml_fragment,
    xml_text,
)

EXAMPLES = Path(__file__).parent / "fixtures" / "examples"
REQUEST_XML = ["batch_request_email.xml", "batch_request_custom.xml", "status_request.xml"]
RESPONSE_XML = ["batch_response_ok.xml", "batch_response_body_too_large.xml"]


@pytest.mark.parametrize("name", REQUEST_XML + RESPONSE_XML)
def test_seed_request_and_response_xml_round_trip_byte_for_byte(name: str) -> None:
    raw = (EXAMPLES / name).read_bytes()
    assert dumps_xml(loads_xml(raw, REQUEST_LIST_PATHS)) == raw


def test_seed_status_response_xml_round_trips_byte_for_byte() -> None:
    # the platform writes an empty array as <errors/> (CONTRACT.md, V)
    raw = (EXAMPLES / "status_response_completed.xml").read_bytes()
    parsed = loads_xml(raw, STATUS_LIST_PATHS)
    assert parsed["data"]["result"]["errors"] == []
    assert dumps_xml(parsed) == raw


def test_loads_xml_reads_the_seed_email_request_as_json_shape() -> None:
    parsed = loads_xml((EXAMPLES / "batch_request_email.xml").read_bytes())
    assert [p["_fname"] for p in parsed["data"]] == ["Brooklyn", "Romeo"]
    subs = parsed["data"][0]["subscriptions"]
    assert [s["channel"] for s in subs] == ["email", "phone"]
    assert parsed["attach"] == [{"data": "data:text/csv;base64,5LuK5pel44GvCg==", "name": "Attach.txt"}]
    assert parsed["timeout"] == {"days": "0", "hours": "0", "minutes": "5"}


def test_one_item_arrays_stay_arrays_through_xml() -> None:
    body = dumps_xml({"data": [{"email": "a@x.io", "tags": ["vip"]}], "attach": [{"name": "a"}]})
    assert b"<tags array='true'>vip</tags>" in body
    parsed = loads_xml(body)
    assert parsed == {"data": [{"email": "a@x.io", "tags": ["vip"]}], "attach": [{"name": "a"}]}


def test_dumps_xml_escapes_text_and_keeps_unicode_as_utf8() -> None:
    body = dumps_xml({"name": "Tom & Jerry <3> Привет 😀"})
    assert "Привет 😀".encode() in body
    assert loads_xml(body) == {"name": "Tom & Jerry <3> Привет 😀"}


def test_xml_text_refuses_characters_xml_cannot_carry() -> None:
    for bad in ("a\x01b", "a\x0bb", "a\ufffeb", "a\uffffb"):
        with pytest.raises(ValueError, match="control character"):
            xml_text(bad)
    assert xml_text("tab\tnew\nline") == "tab\tnew\nline"
    assert xml_text(0.1 + 0.2) == "0.30000000000000004"
    assert xml_text(False) == "false"


def test_dumps_xml_leaves_out_none_values() -> None:
    assert dumps_xml({"a": None, "b": 1}) == b"<xml>\n<b>1</b>\n</xml>\n"
    assert xml_fragment({"a": None}) == ""


def test_entity_bomb_is_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>\n'
        b"<xml><data><email>&lol3;</email></data></xml>"
    )
    with pytest.raises(defusedxml.DefusedXmlException):
        loads_xml(bomb)


def test_external_entity_is_refused() -> None:
    xxe = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><a>&e;</a></xml>'
    with pytest.raises(ValueError):
        loads_xml(xxe)


def test_malformed_xml_raises() -> None:
    with pytest.raises(SyntaxError):  # xml.etree.ElementTree.ParseError
        loads_xml(b"<xml><data></xml>")


def test_xml_names() -> None:
    assert is_xml_name("_fname") and is_xml_name("Custom_ID")
    assert not is_xml_name("first name")
    assert not is_xml_name("1st")
    assert not is_xml_name("xmlthing")


def test_every_matching_mode_of_the_docs_is_known() -> None:
    assert set(MATCHING_MODES) == {
        "email", "email_profile", "email_sub", "phone", "phone_sub", "profile_id",
        "push_sub", "custom", "custom_sub", "email_phone", "email_phone_sub",
    }  # fmt: skip
    assert MATCHING_MODES["profile_id"].creates is False
