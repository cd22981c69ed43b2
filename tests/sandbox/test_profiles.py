"""Per-profile failures beside successes, and the matching modes."""

from __future__ import annotations

from collections.abc import Callable

from sandbox_helpers import Api

from toolkit.core.contract import BATCH_PATH


def test_bad_profiles_fail_alone_with_readable_errors_in_input_order(api: Api) -> None:
    profiles = [
        {"email": "ok1@example.com", "_bdate": "1990-02-28", "_regdate": "2024-01-31T10:00:00+03:00"},
        {"email": "not-an-email"},
        {"email": "p1@example.com", "phones": "12345"},
        {"email": "p2@example.com", "phones": ["+79000000000", "+000000000000"]},
        {"email": "ip@example.com", "_ip": "::1"},
        {"email": "re@example.com", "_regip": "300.1.1.1"},
        {"email": "bd@example.com", "_bdate": "31.12.1990"},
        {"_fname": "No Key"},
        {"email": "sub@example.com", "subscriptions": [{"channel": "fax", "email": "sub@example.com"}]},
        {"email": "sub2@example.com", "subscriptions": [{"channel": "sms", "phone": "8 900 000"}]},
        {"email": "ok2@example.com", "_ip": "10.0.0.1", "phones": "+7 (900) 000-00-01"},
    ]
    results = api.run(profiles)
    assert len(results) == len(profiles)
    assert "profile_id" in results[0] and "profile_id" in results[-1]
    expected = [
        None,
        "invalid email 'not-an-email'",
        "invalid phone '12345'",
        "invalid phone '+000000000000'",
        "invalid _ip '::1'",
        "invalid _regip '300.1.1.1'",
        "invalid _bdate '31.12.1990'",
        "no key to match on: matching 'email'",
        "unknown channel 'fax'",
        "invalid phone '8 900 000'",
        None,
    ]
    for result, text in zip(results, expected, strict=True):
        if text is None:
            assert set(result) == {"profile_id"}
        else:
            assert result["error"] == 400
            assert text in result["error_text"], result["error_text"]
    sends = api.inspect("sends")
    assert [s["profile_id"] for s in sends] == [results[0]["profile_id"], results[-1]["profile_id"]]
    [task] = api.inspect("tasks")
    assert (task["imported"], task["failed"]) == (2, 9)


def test_skip_invalid_subscriptions_drops_only_the_bad_one(api: Api) -> None:
    subs = [
        {"channel": "email", "email": "@example.com", "resource_id": 21},
        {"channel": "phone", "phone": "+79000005475", "resource_id": "20"},
    ]
    [result] = api.run(
        [{"email": "romeo@example.com", "subscriptions": subs}], skip_invalid_subscriptions=True
    )
    assert "profile_id" in result
    [profile] = api.inspect("profiles")
    assert profile["subscriptions"] == [{"channel": "phone", "phone": "+79000005475", "resource_id": 20}]


def test_skip_triggers_imports_without_sends(api: Api) -> None:
    results = api.run([{"email": "a@example.com"}, {"email": "b@example.com"}], skip_triggers=True)
    assert all("profile_id" in r for r in results)
    assert api.inspect("sends") == []
    assert len(api.inspect("profiles")) == 2


def test_email_matching_creates_then_updates_keeping_the_id(api: Api) -> None:
    [first] = api.run(
        [
            {
                "email": "ann@example.com",
                "_fname": "Ann",
                "subscriptions": [{"channel": "email", "email": "ann@example.com"}],
            }
        ]
    )
    [again] = api.run(
        [
            {
                "email": "ANN@example.com",
                "_lname": "Lee",
                "subscriptions": [{"channel": "sms", "phone": "+79000000009", "resource_id": 20}],
            }
        ]
    )
    assert again["profile_id"] == first["profile_id"]
    [profile] = api.inspect("profiles")
    assert profile["fields"] == {"email": "ANN@example.com", "_fname": "Ann", "_lname": "Lee"}
    assert [s["channel"] for s in profile["subscriptions"]] == ["email", "sms"]
    # within one batch too: the second row updates the profile the first created
    results = api.run([{"email": "bo@example.com"}, {"email": "bo@example.com", "_fname": "Bo"}])
    assert results[0]["profile_id"] == results[1]["profile_id"]


def test_profile_id_matching_only_updates(api: Api) -> None:
    [created] = api.run([{"email": "a@example.com"}])
    pid = created["profile_id"]
    results = api.run(
        [
            {"profile_id": pid, "_fname": "Known"},
            {"profile_id": "f" * 24, "_fname": "Ghost"},
            {"_fname": "NoId"},
        ],
        matching="profile_id",
    )
    assert results[0] == {"profile_id": pid}
    assert results[1]["error"] == 404 and "f" * 24 in results[1]["error_text"]
    assert results[2]["error"] == 400 and "profile_id" in results[2]["error_text"]
    [profile] = api.inspect("profiles")
    assert profile["fields"] == {"email": "a@example.com", "_fname": "Known"}


def test_custom_matching_uses_the_named_field(api: Api) -> None:
    rows = [{"email": "same@example.com", "CRM": "0001"}, {"email": "same@example.com", "CRM": "0002"}]
    first = api.run(rows, matching="custom", field_name="CRM")
    assert first[0]["profile_id"] != first[1]["profile_id"]
    [update] = api.run([{"CRM": "0002", "_fname": "Two"}], matching="custom", field_name="CRM")
    assert update["profile_id"] == first[1]["profile_id"]
    [missing] = api.run([{"email": "x@example.com"}], matching="custom", field_name="CRM")
    assert missing["error"] == 400 and "field_name" in missing["error_text"]
    # by email the two profiles are ambiguous
    [ambiguous] = api.run([{"email": "same@example.com"}], matching="email")
    assert ambiguous["error"] == 409


def test_email_sub_matches_on_subscription_contacts(make_api: Callable[..., Api]) -> None:
    """email_sub (an undocumented mode for this method, taken with the opt-in) looks in subscriptions only."""
    api = make_api(allow_undocumented_matching=True)
    sub = {"channel": "email", "email": "inbox@example.com", "resource_id": 21}
    [created] = api.run([{"email": "profile@example.com", "subscriptions": [sub]}], matching="email_sub")
    [by_sub] = api.run([{"_fname": "Sub", "subscriptions": [sub]}], matching="email_sub")
    assert by_sub["profile_id"] == created["profile_id"]
    # The profile's own email is not a subscription: email_sub does not find it.
    [other] = api.run(
        [{"subscriptions": [{"channel": "email", "email": "profile@example.com"}]}], matching="email_sub"
    )
    assert other["profile_id"] != created["profile_id"]
    [no_sub] = api.run([{"email": "profile@example.com"}], matching="email_sub")
    assert no_sub["error"] == 400 and "email subscription" in no_sub["error_text"]


def test_phone_and_email_profile_modes(api: Api) -> None:
    [a] = api.run([{"phones": "+79000000001", "_fname": "A"}], matching="phone")
    [b] = api.run([{"phones": ["+7 900 000 00 01"], "_lname": "B"}], matching="phone")
    assert a["profile_id"] == b["profile_id"]
    [c] = api.run([{"subscriptions": [{"channel": "email", "email": "c@example.com"}]}], matching="email")
    [d] = api.run([{"email": "c@example.com"}], matching="email_profile")
    assert c["profile_id"] != d["profile_id"]  # email_profile ignores subscriptions
    answer = api.post(
        BATCH_PATH, {"trigger_id": 1, "matching": "phone", "data": [{"data": {"email": "e@x.co"}}]}
    )
    [result] = api.wait(answer.json()["task_id"])
    assert "phones" in result["error_text"]
