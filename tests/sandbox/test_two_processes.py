"""A sandbox checking large tasks in a second process (``two_processes``, what ``toolkit sandbox
--two-processes`` runs) answers exactly as one that checks them itself: the same per-profile
results, profiles, sends and task counts, over HTTP, for new profiles, updates (in a task and
across tasks), failures of every kind, a custom-field index built half-way, a stepped task and a
reset, an XML body and a JSON one written unusually (spaces, escapes, a repeated key); whether the
second process checked every chunk or shared them with the engine."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from sandbox_helpers import Api

from toolkit.core.contract import BATCH_PATH, dumps_xml, loads_xml
from toolkit.sandbox.engine import Engine
from toolkit.sandbox.prepare import PREPARE_FROM, Preparer

ROWS = PREPARE_FROM + 600  # two whole chunks and a partial one


def _profiles(offset: int) -> list[dict[str, Any]]:
    people: list[dict[str, Any]] = []
    for i in range(offset, offset + ROWS):
        person: dict[str, Any] = {"email": f"p{i % 2000}@example.com", "_fname": f"N{i}", "CRM": i % 97}
        if i % 3 == 0:
            person["subscriptions"] = [
                {"channel": "sms", "phone": f"+7 900 000 {i % 1000:04d}", "resource_id": "5"}
            ]
        if i % 50 == 7:
            person["email"] = "broken@"
        if i % 40 == 9:
            person["phones"] = ["+7 900 111 22 33", "12"]
        if i % 70 == 11:
            person["_regdate"] = "2024-13-40"
        if i % 90 == 13:
            person["subscriptions"] = [{"channel": "fax", "number": 1}]
        people.append(person)
    return people


def _timeless(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if not k.endswith(("_at", "time"))} for r in rows]


def _session(api: Api) -> tuple[Any, ...]:
    results = [
        api.run(_profiles(0), matching="email"),
        api.run(_profiles(1500), matching="email"),  # updates of the first task's profiles
        api.run(_profiles(300), matching="phone"),
        api.run(_profiles(0), matching="custom", field_name="CRM"),  # ambiguous: 409s
        api.run(_profiles(2000), matching="email", skip_invalid_subscriptions=True),
        api.run(_profiles(300), matching="email_phone"),  # two lookups a profile
    ]
    # profile_id: updates of the first task's profiles, and ids nobody has (404s)
    ids = [r["profile_id"] for r in results[0] if "profile_id" in r]
    by_id = [{"profile_id": pid, "_fname": f"U{i}"} for i, pid in enumerate(ids)] + [
        {"profile_id": "f" * 24}
    ] * 50
    results.append(api.run(by_id, matching="profile_id"))
    # XML: the second process reads the body itself. JSON written by hand, spaces, escapes and a
    # repeated key (its last value counts): each profile's text is found again, the same values.
    xml = dumps_xml({"trigger_id": 7, "matching": "email", "data": _profiles(6000)})
    answer = api.post(BATCH_PATH, data=xml, xml=True)
    assert answer.status_code == 200, answer.text
    results.append(api.wait(loads_xml(answer.content)["task_id"]))
    items = b" ,\n ".join(
        b'{ "data" : {"gone": 1}, "data" : ' + orjson.dumps(p) + b" }" for p in _profiles(7000)
    )
    unusual = b'{"data": [], "trigger_id": 7, "data" : [ ' + items.replace(b"@", b"\\u0040") + b" ] }"
    answer = api.post(BATCH_PATH, data=unusual)
    assert answer.status_code == 200, answer.text
    results.append(api.wait(answer.json()["task_id"]))
    # A paused worker stepped through a split chunk: the rest of the task is checked in process.
    api.control("pause")
    task_id = api.batch(_profiles(4000), matching="email")
    assert api.step(1500) == 1500
    api.control("resume")
    results.append(api.wait(task_id))
    state = (
        _timeless(api.inspect("profiles")),
        _timeless(api.inspect("sends")),
        _timeless(api.inspect("tasks")),
    )
    assert api.control("reset")
    results.append(api.run(_profiles(0), matching="email"))  # after a reset: ids start afresh
    return results, state, _timeless(api.inspect("profiles"))


def test_two_processes_answer_as_one(make_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch) -> None:
    prepared: list[int] = []
    import_prepared = Engine.import_prepared

    def counted(self: Engine, env: Any, items: list[Any], task_id: str) -> Any:
        prepared.append(len(items))
        return import_prepared(self, env, items, task_id)

    monkeypatch.setattr(Engine, "import_prepared", counted)
    as_text: list[int] = []  # tasks whose profiles were kept as text (envelope.with_raw_profiles)
    submit_profiles = Preparer.submit_profiles

    def counted_text(self: Preparer, task_id: str, seq: int, env: Any) -> None:
        as_text.append(len(env.profiles))
        submit_profiles(self, task_id, seq, env)

    monkeypatch.setattr(Preparer, "submit_profiles", counted_text)
    one = _session(make_api(seed=3, two_processes=False, allow_undocumented_matching=True))
    assert not prepared
    # The engine waits for each chunk: every task's whole chunks come from the second process,
    # but the stepped one's, from its split chunk on.
    monkeypatch.setattr(Engine, "wait_for_preparer", True)
    two = _session(make_api(seed=3, two_processes=True, allow_undocumented_matching=True))
    assert any(p.name == "sandbox-preparer" for p in multiprocessing.active_children())
    assert len(prepared) >= 6 * (ROWS // 1000)
    assert len(as_text) == 10  # every JSON task's (the XML one is read whole)
    # Shared (the default): each chunk from whichever process had it first; the same answers.
    monkeypatch.setattr(Engine, "wait_for_preparer", False)
    shared = _session(make_api(seed=3, two_processes=True, allow_undocumented_matching=True))
    assert len(as_text) == 20
    assert one == two
    assert one == shared
    results = one[0]
    flat = [r for task in results for r in task]
    assert {r.get("error") for r in flat} >= {None, 400, 404, 409}
    assert any("invalid email 'broken@'" in r.get("error_text", "") for r in flat)


def test_the_preparer_leaves_the_chunks_the_engine_took() -> None:
    """The second process prepares a task's chunks in order, skipping those the engine said it
    checks itself (``take``): none is prepared twice. It says how far it got (``reached``), and a
    body whose profiles are kept as text (``submit_profiles``) is prepared as its bytes are."""
    import orjson

    from toolkit.sandbox.envelope import parse_import, with_raw_profiles
    from toolkit.sandbox.prepare import CHUNK, Preparer, RequestSource

    body = orjson.dumps({"trigger_id": 1, "data": [{"data": p} for p in _profiles(0)]})
    source = RequestSource(body, xml=False, max_file_bytes=1 << 20, undocumented_matching=False)
    as_text = with_raw_profiles(parse_import(orjson.loads(body), xml=False, single=False), body)
    preparer = Preparer()
    try:
        preparer.take(1, CHUNK)  # the engine checks task 1's first chunk itself
        preparer.submit("t1", 1, source)
        preparer.submit("t2", 2, source)  # untouched by the engine: every chunk prepared
        preparer.submit_profiles("t3", 3, as_text)
        last = ROWS // CHUNK * CHUNK
        t2 = [preparer.chunk("t2", start) for start in (0, CHUNK, last)]
        assert [len(chunk or ()) for chunk in t2] == [CHUNK, CHUNK, ROWS - last]
        assert preparer.reached(2, last) and not preparer.reached(4, 0)
        # t2's chunks came after all of t1's: t1's first chunk was never prepared.
        assert preparer.chunk("t1", 0, timeout=0) is None
        assert len(preparer.chunk("t1", CHUNK, timeout=0) or ()) == CHUNK
        assert len(preparer.chunk("t1", last, timeout=0) or ()) == ROWS - last
        t3 = [preparer.chunk("t3", start) for start in (0, CHUNK, last)]
        for from_bytes, from_text in zip(t2, t3, strict=True):
            assert from_bytes is not None and from_text is not None
            assert [
                (from_text.error(i), from_text.blobs(i), sorted(from_text.keys(i)), from_text.lookups(i))
                for i in range(len(from_text))
            ] == [
                (from_bytes.error(i), from_bytes.blobs(i), sorted(from_bytes.keys(i)), from_bytes.lookups(i))
                for i in range(len(from_bytes))
            ]
    finally:
        preparer.close()
