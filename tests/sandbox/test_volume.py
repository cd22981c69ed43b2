"""The sandbox at volume: 50,000 profiles in 5 batch tasks, every one stored, findable and sent once."""

from __future__ import annotations

from sandbox_helpers import Api

PROFILES, BATCHES = 50_000, 5


def _people(start: int, count: int) -> list[dict[str, object]]:
    return [
        {
            "email": f"vol{i}@example.com",
            "_fname": f"Name{i}",
            "CRM_ID": str(i),
            "subscriptions": [{"channel": "email", "email": f"vol{i}@example.com", "resource_id": 21}],
        }
        for i in range(start, start + count)
    ]


def test_fifty_thousand_profiles_are_all_imported_findable_and_sent_once(api: Api) -> None:
    """50k profiles in 5 tasks: all imported, each stored once with its fields and sent once; a custom
    field never looked up before then finds the same people (its index built late) instead of creating."""
    per = PROFILES // BATCHES
    tasks = [api.batch(_people(b * per, per), matching="email") for b in range(BATCHES)]
    results = [r for task_id in tasks for r in api.wait(task_id, timeout=600)]
    assert len(results) == PROFILES and all("profile_id" in r for r in results), "a profile failed"
    profiles = api.inspect("profiles")
    by_email = {p["fields"]["email"]: p for p in profiles}
    assert len(profiles) == len(by_email) == PROFILES
    assert [r["profile_id"] for r in results] == [
        by_email[f"vol{i}@example.com"]["profile_id"] for i in range(PROFILES)
    ]
    assert by_email["vol49999@example.com"]["fields"]["CRM_ID"] == "49999"
    sends = api.inspect("sends")
    assert sorted(s["profile_id"] for s in sends) == sorted(p["profile_id"] for p in profiles)

    again = [{"CRM_ID": str(i), "_fname": "Renamed"} for i in (0, 25_000, 49_999)]
    found = api.run(again, matching="custom", field_name="CRM_ID")
    assert [r.get("profile_id") for r in found] == [
        by_email[f"vol{i}@example.com"]["profile_id"] for i in (0, 25_000, 49_999)
    ]
    after = api.inspect("profiles")
    assert len(after) == PROFILES
    assert {p["fields"]["_fname"] for p in after if p["fields"]["CRM_ID"] in {"0", "25000", "49999"}} == {
        "Renamed"
    }
