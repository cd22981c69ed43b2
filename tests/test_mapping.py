"""toolkit.core.mapping: every bad declaration fails at construction with a message that says what to do."""

from __future__ import annotations

import array
import base64
import datetime as dt
from pathlib import Path

import pytest

import toolkit
from toolkit.core.contract import MAX_FILE_BYTES, Channel, MatchingMode
from toolkit.core.mapping import Attachment, Mapping, Subscription, Trigger, check_attachment_size
from toolkit.errors import InvalidArgumentError, SerializationError, ToolkitError


# --- Subscription ----------------------------------------------------------------------------
def test_subscription_fields_per_channel() -> None:
    assert Subscription("email", "mail", 21).contact_field == "email"
    assert Subscription("phone", "tel", 20).contact_field == "phone"  # the seed's channel name
    assert Subscription("sms", "tel", 20).kind == "phone"
    assert Subscription("push", "pid", 3, provider="fcm").contact_field == "subscription_id"
    assert Subscription("telegram_bot", "cc", 3).kind == "object"


def test_unknown_channel_with_hint() -> None:
    with pytest.raises(
        InvalidArgumentError, match="unknown subscription channel 'emial'; did you mean 'email'"
    ):
        Subscription("emial", "email", 21)
    with pytest.raises(InvalidArgumentError, match=r"use one of \['email'"):
        Subscription("carrier_pigeon", "email", 21)


@pytest.mark.parametrize("resource_id", [0, -1, "21", 2.0, True, None])
def test_subscription_resource_id_must_be_a_positive_int(resource_id: object) -> None:
    with pytest.raises(InvalidArgumentError, match="resource_id must be a positive integer"):
        Subscription("email", "email", resource_id)  # type: ignore[arg-type]


def test_subscription_extra_cannot_override_toolkit_fields() -> None:
    with pytest.raises(InvalidArgumentError, match="set by the toolkit"):
        Subscription("email", "email", 21, email="x@y.z")
    with pytest.raises(SerializationError):
        Subscription("email", "email", 21, status=object())


# --- Mapping ------------------------------------------------------------------------------------
def test_unknown_matching_mode_with_hint() -> None:
    with pytest.raises(InvalidArgumentError, match="unknown matching mode 'emali'; did you mean 'email'"):
        Mapping({"email": "email"}, matching="emali")
    with pytest.raises(InvalidArgumentError, match="use one of"):
        Mapping({"email": "email"}, matching="zzz")


def test_custom_needs_match_field() -> None:
    with pytest.raises(InvalidArgumentError, match="needs match_field"):
        Mapping({"crm": "CRM_ID"}, matching="custom")
    with pytest.raises(InvalidArgumentError, match="not a target of fields; did you mean 'CRM_ID'"):
        Mapping({"crm": "CRM_ID"}, matching="custom", match_field="CRM_Id")
    with pytest.raises(InvalidArgumentError, match="only used with matching='custom'"):
        Mapping({"email": "email"}, match_field="email")
    m = Mapping({"crm": "CRM_ID"}, matching="custom_sub", match_field="CRM_ID")
    assert m.match_column == "crm"
    assert m.request_options() == {"matching": "custom_sub", "field_name": "CRM_ID"}


@pytest.mark.parametrize(
    ("matching", "fields", "subs", "wanted"),
    [
        ("email", {"name": "_fname"}, [], "an email in fields"),
        ("email_profile", {"name": "_fname"}, [Subscription("email", "m", 1)], "an email in fields"),
        ("phone", {"email": "email"}, [], "a phone in fields"),
        ("profile_id", {"email": "email"}, [], "a profile_id"),
        ("email_sub", {"email": "email"}, [], "an email in a subscription"),
        ("phone_sub", {"phone": "phones"}, [], "a phone in a subscription"),
        ("push_sub", {"email": "email"}, [Subscription("email", "email", 1)], "a push subscription id"),
        ("email_phone", {"name": "_fname"}, [], "an email or a phone"),
    ],
)
def test_matching_mode_requires_its_key_source(matching: str, fields: dict, subs: list, wanted: str) -> None:
    with pytest.raises(InvalidArgumentError, match=wanted):
        Mapping(fields, subscriptions=subs, matching=matching)


def test_phone_matching_may_take_the_phone_from_a_subscription() -> None:
    """matching='phone' falls back to a phone subscription, as the contract's table says."""
    m = Mapping({"name": "_fname"}, subscriptions=[Subscription("sms", "mobile", 20)], matching="phone")
    assert m.rule.subscription_fallback and m.columns == ["name", "mobile"]


def test_a_matching_mode_may_be_given_as_the_contract_enum() -> None:
    """MatchingMode members are accepted and kept as their plain text (bodies, reprs, messages)."""
    m = Mapping({"email": "email"}, matching=MatchingMode.EMAIL_PROFILE)
    assert type(m.matching) is str and m.matching == "email_profile"
    assert Subscription(Channel.SMS, "phone", 20).channel.__class__ is str


def test_email_matching_may_take_the_email_from_a_subscription() -> None:
    m = Mapping({"name": "_fname"}, subscriptions=[Subscription("email", "mail", 21)])
    assert m.columns == ["name", "mail"]


def test_fields_must_be_a_nonempty_name_map_without_clashes() -> None:
    with pytest.raises(InvalidArgumentError, match="non-empty dict"):
        Mapping({})
    with pytest.raises(InvalidArgumentError, match="both map to field 'email'"):
        Mapping({"email": "email", "mail": "email"})
    with pytest.raises(InvalidArgumentError, match="must map a name to a name"):
        Mapping({"email": ""})
    with pytest.raises(InvalidArgumentError, match="Subscription objects"):
        Mapping({"email": "email"}, subscriptions=[("email", "email", 21)])  # type: ignore[list-item]
    with pytest.raises(InvalidArgumentError, match="resource_id must be a positive integer"):
        Mapping({"email": "email"}, resource_id=0)


def test_mapping_columns_in_order_without_repeats() -> None:
    m = Mapping({"email": "email", "n": "_fname"}, subscriptions=[Subscription("email", "email", 21)])
    assert m.columns == ["email", "n"]
    assert Mapping({"email": "email"}, resource_id=5).request_options() == {
        "matching": "email",
        "resource_id": 5,
    }


# --- Trigger ---------------------------------------------------------------------------------
@pytest.mark.parametrize("trigger_id", [0, -5, "96", 9.6, True, None])
def test_trigger_id_must_be_a_positive_int(trigger_id: object) -> None:
    with pytest.raises(InvalidArgumentError, match="trigger_id must be a positive integer"):
        Trigger(trigger_id)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"content": {"when": dt.date(2024, 1, 1)}},
        {"content": {"x": float("nan")}},
        {"custom_data": {"s": {1, 2}}},
        {"custom_data": ["not", "a", "dict"]},
        {"content": {"x": b"bytes"}},
    ],
)
def test_content_and_custom_data_must_be_json(kwargs: dict) -> None:
    with pytest.raises(SerializationError) as info:
        Trigger(96, **kwargs)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ToolkitError)
    assert ("content" in str(info.value)) or ("custom_data" in str(info.value))


def test_trigger_request_options_in_seed_order() -> None:
    t = Trigger(
        96,
        timeout=dt.timedelta(days=1, hours=2, minutes=5),
        content={"page": "registration_form"},
        custom_data={"k": [1, 2]},
        skip_triggers=True,
    )
    options = t.request_options()
    assert list(options) == [
        "trigger_id", "skip_triggers", "skip_invalid_subscriptions", "detect_geo",
        "timeout", "content", "custom_data",
    ]  # fmt: skip
    assert options["timeout"] == {"days": 1, "hours": 2, "minutes": 5}
    assert options["skip_triggers"] is True and options["detect_geo"] is False


@pytest.mark.parametrize("timeout", [{"days": -1}, {"weeks": 1}, 5, "5m"])
def test_bad_timeout(timeout: object) -> None:
    with pytest.raises(InvalidArgumentError, match="timeout"):
        Trigger(96, timeout=timeout)  # type: ignore[arg-type]


# --- attachments -----------------------------------------------------------------------------
def test_attach_bytes_pair_becomes_data_uri() -> None:
    t = Trigger(96, attach=[("Attach.txt", "今日は\n".encode())])
    assert t.request_options()["attach"] == [
        {"data": "data:text/plain;base64,5LuK5pel44GvCg==", "name": "Attach.txt"}
    ]


def test_attach_path_is_refused_by_the_core_with_the_helper_to_use(tmp_path: Path) -> None:
    """The core reads no files: a path in attach names toolkit.io.read_attachment instead."""
    path = tmp_path / "report.csv"
    path.write_bytes(b"a,b\n")
    for given in (path, str(path)):
        with pytest.raises(InvalidArgumentError, match=r"toolkit\.io\.read_attachment\(path\)") as caught:
            Trigger(96, attach=[given])
        assert str(path) in str(caught.value)


def test_attachment_mime_given_and_unknown() -> None:
    a = toolkit.Attachment.from_bytes("Attach.txt", b"x", mime="text/csv")
    assert a.data_uri == "data:text/csv;base64,eA=="
    assert Attachment.from_bytes("blob.zzzunknown", b"x").mime == "application/octet-stream"
    assert Trigger(96, attach=[a]).attach == (a,)


def test_attachment_size_is_counted_in_bytes_whatever_the_buffer() -> None:
    """A buffer of 4-byte items is sized in bytes (the limit is on bytes), and encoded whole."""
    words = memoryview(array.array("I", [1, 2]))
    attachment = Attachment.from_bytes("words.bin", words)
    assert attachment.size == 8
    assert attachment.data_uri.endswith(base64.b64encode(words.tobytes()).decode())
    with pytest.raises(InvalidArgumentError, match=r"'big\.zip' is 104,857,601 bytes"):
        check_attachment_size("big.zip", MAX_FILE_BYTES + 1)


def test_attach_at_the_file_limit_passes_the_size_check(monkeypatch: pytest.MonkeyPatch) -> None:
    # the limit is inclusive: exactly MAX_FILE_BYTES is allowed (checked without allocating it)
    import toolkit.core.mapping as mapping_module

    monkeypatch.setattr(mapping_module, "MAX_FILE_BYTES", 4)
    assert Attachment.from_bytes("a.bin", b"1234").size == 4
    with pytest.raises(InvalidArgumentError, match="file limit"):
        Attachment.from_bytes("a.bin", b"12345")


def test_attach_bad_items(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="read the file first"):
        Trigger(96, attach=[tmp_path / "missing.txt"])
    with pytest.raises(InvalidArgumentError, match="Attachment objects or \\(name, bytes\\) pairs"):
        Trigger(96, attach=[123])
    with pytest.raises(InvalidArgumentError, match="expected bytes"):
        Trigger(96, attach=[("a.txt", "text, not bytes")])
