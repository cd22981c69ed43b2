"""Every matching mode of the contract's table, end to end: a core plan's bodies, sent as they
are, make the sandbox find the profile by the very key the plan computed."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from sandbox_helpers import Api

from toolkit.core.contract import BATCH_PATH, MATCHING_MODES, MatchingMode
from toolkit.core.mapping import Mapping, Subscription, Trigger
from toolkit.core.plan import plan

# mode -> (fields, subscriptions, match_field): where each row carries its key
CASES: dict[str, tuple[dict[str, str], list[Subscription], str | None]] = {
    MatchingMode.EMAIL: ({"email": "email", "name": "_fname"}, [], None),
    MatchingMode.EMAIL_PROFILE: ({"email": "email", "name": "_fname"}, [], None),
    MatchingMode.EMAIL_SUB: ({"name": "_fname"}, [Subscription("email", "email", 21)], None),
    MatchingMode.PHONE: ({"phone": "phones", "name": "_fname"}, [], None),
    MatchingMode.PHONE_SUB: ({"name": "_fname"}, [Subscription("sms", "phone", 20)], None),
    MatchingMode.PUSH_SUB: ({"name": "_fname"}, [Subscription("push", "push_id", 3, provider="fcm")], None),
    MatchingMode.CUSTOM: ({"crm": "CRM_ID", "name": "_fname"}, [], "CRM_ID"),
    MatchingMode.EMAIL_PHONE: ({"phone": "phones", "name": "_fname"}, [], None),
    MatchingMode.EMAIL_PHONE_SUB: ({"name": "_fname"}, [Subscription("sms", "phone", 20)], None),
}
# Not in CASES: profile_id (its own test below) and custom_sub, whose key the core reads from
# a profile field while the platform (and the sandbox) read it from the subscriptions'
# custom_fields, which a Subscription cannot fill per row.
COVERED = {*CASES, MatchingMode.PROFILE_ID, MatchingMode.CUSTOM_SUB}


def _send(api: Api, mapping: Mapping, frame: pl.DataFrame) -> tuple[str, list[dict[str, Any]]]:
    """Plan ``frame``, post its one body as it is, wait; the plan's key and the results."""
    planned = plan(frame, mapping, Trigger(5))
    [batch] = planned.batches
    answer = api.post(BATCH_PATH, data=batch.body)
    assert answer.status_code == 200, answer.text
    return batch.keys[0], api.wait(answer.json()["task_id"])


def test_the_cases_cover_every_mode_of_the_table() -> None:
    """A mode added to the contract's table gets a case here (or says why it has none)."""
    assert set(MATCHING_MODES) == COVERED


@pytest.mark.parametrize("mode", list(CASES), ids=str)
def test_a_second_plan_with_the_same_key_updates_the_profile_the_first_created(api: Api, mode: str) -> None:
    """The sandbox matches a row on the key the core planned, so a re-import updates, never duplicates."""
    fields, subscriptions, match_field = CASES[mode]
    mapping = Mapping(fields, subscriptions=subscriptions, matching=mode, match_field=match_field)
    row = {"email": "ann@example.com", "phone": "8 900 123-45-67", "push_id": "p-1", "crm": "CRM-1"}
    first_key, [first] = _send(api, mapping, pl.DataFrame([{**row, "name": "Ann"}]))
    second_key, [second] = _send(api, mapping, pl.DataFrame([{**row, "name": "Anna"}]))
    assert first_key == second_key
    assert "profile_id" in first, first
    assert second == first
    [profile] = api.inspect("profiles")
    assert profile["fields"]["_fname"] == "Anna"


def test_profile_id_plans_update_the_profile_they_name(api: Api) -> None:
    """matching='profile_id' sends the id the row holds; the sandbox updates that profile."""
    [created] = api.run([{"email": "ann@example.com"}])
    mapping = Mapping({"pid": "profile_id", "name": "_fname"}, matching=MatchingMode.PROFILE_ID)
    key, [updated] = _send(api, mapping, pl.DataFrame({"pid": [created["profile_id"]], "name": ["Ann"]}))
    assert key == created["profile_id"] and updated == created
    [profile] = api.inspect("profiles")
    assert profile["fields"] == {"email": "ann@example.com", "_fname": "Ann"}
