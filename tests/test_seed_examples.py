"""The seed's two request examples, rebuilt from a pandas frame and from a polars frame with toolkit.core.plan.

Our bodies are compared field by field with the published examples (both parsed; ``token`` left
out: the client sends it in a header). Our bodies also carry ``format``, ``skip_triggers``,
``skip_invalid_subscriptions`` and ``detect_geo`` explicitly: each must equal the example's value
or, where the example leaves it out, the platform's default.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pytest

from toolkit import Attachment, Mapping, Subscription, Trigger, plan
from toolkit.core.contract import loads_xml

EXAMPLES = Path(__file__).parent / "fixtures" / "examples"
KINDS = ["pandas", "polars"]
# the platform's documented defaults for the fields the examples leave out
DEFAULTS = {
    "format": "json",
    "skip_triggers": False,
    "skip_invalid_subscriptions": False,
    "detect_geo": False,
}
XML_DEFAULTS = {
    "format": "xml",
    "skip_triggers": "false",
    "skip_invalid_subscriptions": "false",
    "detect_geo": "false",
}


def load_json(name: str) -> dict[str, Any]:
    example = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    del example["token"]
    return example


def load_xml(name: str) -> dict[str, Any]:
    example = loads_xml((EXAMPLES / name).read_bytes())
    del example["token"]
    return example


def frame(records: list[dict[str, Any]], kind: str) -> Any:
    return pd.DataFrame(records) if kind == "pandas" else pl.DataFrame(records)


def email_segment(example: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per profile of the email example: profile fields + the two subscription contacts."""
    rows = []
    for item in example["data"]:
        profile = item.get("data", item)  # JSON wraps each profile, XML does not
        subs = {s["channel"]: s for s in profile["subscriptions"]}
        rows.append(
            {
                "first_name": profile["_fname"],
                "last_name": profile["_lname"],
                "email": profile["email"],
                "phone": profile["phones"],
                "sub_email": subs["email"]["email"],
                "sub_phone": subs["phone"]["phone"],
            }
        )
    return rows


EMAIL_MAPPING = Mapping(
    {"first_name": "_fname", "last_name": "_lname", "email": "email", "phone": "phones"},
    subscriptions=[Subscription("email", "sub_email", 21), Subscription("phone", "sub_phone", 20)],
)


def email_trigger(example: dict[str, Any], **kwargs: Any) -> Trigger:
    (attach,) = example["attach"]
    head, encoded = attach["data"].split(",", 1)
    assert head == "data:text/csv;base64"
    attachment = Attachment.from_bytes(attach["name"], base64.b64decode(encoded), mime="text/csv")
    return Trigger(
        96,
        timeout={"days": 0, "hours": 0, "minutes": 5},
        content={"page": "registration_form"},
        attach=[attachment],
        **kwargs,
    )


def assert_matches_example(ours: dict[str, Any], example: dict[str, Any], defaults: dict[str, Any]) -> None:
    for key, value in example.items():
        assert ours[key] == value, key
    for key in set(ours) - set(example):
        assert key in defaults, f"unexpected field {key!r}"
        assert ours[key] == defaults[key], key


def trimmed_lnames(example: dict[str, Any]) -> dict[str, Any]:
    """The example with its profiles' `_lname` trimmed, as the toolkit sends them."""
    copy = json.loads(json.dumps(example))
    for item in copy["data"]:
        profile = item.get("data", item)
        profile["_lname"] = profile["_lname"].strip()
    return copy


# --- email example (JSON) ----------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_email_example_json(kind: str) -> None:
    example = load_json("batch_request_email.json")
    p = plan(frame(email_segment(example), kind), EMAIL_MAPPING, email_trigger(example))
    (batch,) = p.batches
    ours = json.loads(batch.body)
    assert batch.rows == (0, 1) and batch.keys == ("example1@example.com", "example3@example.com")
    # the seed's own data has " Beckham" with a leading space; we trim it
    assert [d["data"]["_lname"] for d in example["data"]] == [" Beckham", " Beckham"]
    assert [d["data"]["_lname"] for d in ours["data"]] == ["Beckham", "Beckham"]
    assert_matches_example(ours, trimmed_lnames(example), DEFAULTS)
    assert ours["attach"] == [{"data": "data:text/csv;base64,5LuK5pel44GvCg==", "name": "Attach.txt"}]


# --- custom example (JSON) ---------------------------------------------------------------------
def custom_segment(example: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [
        {
            "first_name": p["_fname"],
            "last_name": p["_lname"],
            "email": p["email"],
            "phone": p["phones"],
            "crm": p[key],
        }
        for p in (item.get("data", item) for item in example["data"])
    ]


def custom_mapping(key: str) -> Mapping:
    return Mapping(
        {"first_name": "_fname", "last_name": "_lname", "email": "email", "phone": "phones", "crm": key},
        matching="custom",
        match_field=key,
    )


@pytest.mark.parametrize("kind", KINDS)
def test_custom_example_json(kind: str) -> None:
    example = load_json("batch_request_custom.json")
    segment = frame(custom_segment(example, "Custom_id"), kind)
    p = plan(segment, custom_mapping("Custom_id"), Trigger(96, detect_geo=True))
    (batch,) = p.batches
    ours = json.loads(batch.body)
    assert_matches_example(ours, example, DEFAULTS)
    assert batch.keys == ("0002", "0001")  # text keys keep their leading zeros
    # both profiles share one email: matching on Custom_id, that is not a duplicate
    assert len(p.rejected) == 0


# --- custom example (XML) ----------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_custom_example_xml(kind: str) -> None:
    example = load_xml("batch_request_custom.xml")
    segment = frame(custom_segment(example, "Custom_ID"), kind)
    p = plan(segment, custom_mapping("Custom_ID"), Trigger(96, detect_geo=True), format="xml")
    (batch,) = p.batches
    assert batch.content_type == "application/xml"
    assert_matches_example(loads_xml(batch.body), example, XML_DEFAULTS)


# --- email example (XML) -----------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_email_example_xml_rejects_the_row_with_an_invalid_subscription(kind: str) -> None:
    example = load_xml("batch_request_email.xml")
    segment = frame(email_segment(example), kind)
    p = plan(segment, EMAIL_MAPPING, email_trigger(example), format="xml")
    (batch,) = p.batches
    assert batch.rows == (0,)
    rejected = pl.from_pandas(p.rejected) if kind == "pandas" else p.rejected
    ((position, rule, reason),) = rejected.select("position", "rule", "reason").rows()
    assert (position, rule) == (1, "invalid_subscription")
    assert "'@example.com'" in reason and "sub_email" in reason
    ours = loads_xml(batch.body)
    expected = {**example, "data": example["data"][:1]}
    assert_matches_example(ours, expected, XML_DEFAULTS)


@pytest.mark.parametrize("kind", KINDS)
def test_email_example_xml_with_skip_invalid_subscriptions(kind: str) -> None:
    example = load_xml("batch_request_email.xml")
    segment = frame(email_segment(example), kind)
    trigger = email_trigger(example, skip_invalid_subscriptions=True)
    p = plan(segment, EMAIL_MAPPING, trigger, format="xml")
    (batch,) = p.batches
    assert batch.rows == (0, 1) and len(p.rejected) == 0
    ours = loads_xml(batch.body)
    assert ours["skip_invalid_subscriptions"] == "true"
    # only the invalid subscription is left out of the second profile
    expected = json.loads(json.dumps(example))
    expected["data"][1]["subscriptions"] = [
        s for s in expected["data"][1]["subscriptions"] if s["channel"] != "email"
    ]
    assert_matches_example(ours, expected, {**XML_DEFAULTS, "skip_invalid_subscriptions": "true"})
