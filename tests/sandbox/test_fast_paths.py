"""The sandbox's fast paths answer exactly as the plain ones they stand for.

- the column-wise email and phone checks of a chunk (``profiles.email_table`` / ``phone_table``)
  against the validators, one value at a time;
- the keys ``check_profile`` finds on its walk over a profile against ``index_keys`` of what it
  stores, for every matching mode;
- ``checked_profiles`` (a chunk's usual profiles settled in one tight loop) against
  ``check_profile`` of each profile, for every matching mode, usual and unusual profiles mixed;
- the JSON depth counted on a body's bytes against the walk over its parsed containers;
- a batch's profiles kept as text (``with_raw_profiles``) against the profiles parsed whole;
- the in-memory store against the SQLite store, the same imports through the same engine;
- the collector pause, entered from many threads at once, leaves the collector as it found it;
- a bulk task's body frozen out of the collector's reach, and collected from once the worker idles.
"""

from __future__ import annotations

import gc
import threading
import time
import weakref
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from toolkit.core.contract import CHANNELS, MatchingMode
from toolkit.sandbox.engine import Engine
from toolkit.sandbox.envelope import (
    MAX_DEPTH,
    ImportEnvelope,
    RawProfiles,
    _depth_ok,
    _json_depth_ok,
    with_raw_profiles,
)
from toolkit.sandbox.gc_pause import paused_gc
from toolkit.sandbox.knobs import IdSource
from toolkit.sandbox.memstore import MemoryStore
from toolkit.sandbox.prepare import PREPARE_FROM
from toolkit.sandbox.profiles import (
    Checked,
    ProfileError,
    check_profile,
    check_profiles,
    checked_profiles,
    chunk_checks,
    email_table,
    index_keys,
    phone_table,
)
from toolkit.sandbox.store import Store
from toolkit.sandbox.validators import is_email, normalize_phone

# Values near the patterns' edges: ASCII and not, whitespace of every kind, digits of other scripts.
_EMAIL_PARTS = st.sampled_from(
    [
        "a",
        "Z",
        "0",
        ".",
        "..",
        "@",
        "-",
        "_",
        "+",
        "xn--",
        "co",
        "é",
        "ß",
        "٣",
        " ",
        "\t",
        "\n",
        "\u00a0",
        "'",
        "`",
    ]
)
_PHONE_PARTS = st.sampled_from(
    ["+", "7", "0", "9", "1", " ", "-", "(", ")", ".", "\t", "\n", "\u00a0", "\u2007", "٣", "x", "+7900"]
)


def _joined(parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(parts, max_size=30).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(_joined(_EMAIL_PARTS) | st.emails().map(str) | st.text(max_size=40), max_size=40))
def test_the_chunk_email_check_answers_as_is_email(values: list[str]) -> None:
    distinct = list(dict.fromkeys(values))
    assert email_table(distinct) == {v: is_email(v) for v in distinct}


@settings(max_examples=300, deadline=None)
@given(st.lists(_joined(_PHONE_PARTS) | st.text(max_size=30), max_size=40))
def test_the_chunk_phone_check_answers_as_normalize_phone(values: list[str]) -> None:
    distinct = list(dict.fromkeys(values))
    assert phone_table(distinct) == {v: normalize_phone(v) for v in distinct}


_CONTACTS = st.sampled_from(
    ["a@b.co", " A@B.co ", "bad@", "", "+7 900 000-00-00", "+79000000000", "12", "x", " tok ", "٣@b.co"]
)
_VALUES = _CONTACTS | st.none() | st.integers(-3, 3) | st.booleans() | st.just({"k": 1}) | st.just([])
_SUBSCRIPTIONS = st.lists(
    st.fixed_dictionaries(
        {"channel": st.sampled_from([*CHANNELS, "fax", 5])},
        optional={
            "email": _VALUES,
            "phone": _VALUES,
            "subscription_id": _VALUES,
            "cc_data": _VALUES,
            "resource_id": st.sampled_from([None, "", 7, "8", " 9 ", "x", True, 1.5]),
        },
    ),
    max_size=3,
)
_PROFILES = st.fixed_dictionaries(
    {},
    optional={
        "email": _VALUES,
        "phones": _VALUES | st.lists(_CONTACTS, max_size=3),
        "profile_id": _VALUES,
        "_regdate": st.sampled_from(["2024-02-29", "2023-02-29", "", None]),
        "CRM": _VALUES,
        "subscriptions": _SUBSCRIPTIONS | _VALUES,
    },
)


def _envelope(profiles: list[dict[str, Any]], matching: MatchingMode, skip_invalid: bool) -> ImportEnvelope:
    """A batch of ``profiles``; custom matching on the field ``CRM``."""
    return ImportEnvelope(
        trigger_id=1,
        matching=matching,
        profiles=profiles,
        field_name="CRM",
        skip_invalid_subscriptions=skip_invalid,
    )


@settings(max_examples=400, deadline=None)
@given(st.lists(_PROFILES, min_size=1, max_size=8), st.sampled_from(list(MatchingMode)), st.booleans())
def test_the_keys_found_on_the_check_are_those_indexed(
    profiles: list[dict[str, Any]], matching: MatchingMode, skip_invalid: bool
) -> None:
    env = _envelope(profiles, matching, skip_invalid)
    for checks in (chunk_checks(profiles), None):
        for fields in profiles:
            try:
                checked = check_profile(fields, env, checks) if checks else check_profile(fields, env)
            except ProfileError:
                continue
            assert checked.index == index_keys(checked.fields, checked.subscriptions, set())


# Profiles as a segment sends them (valid contacts already in their stored form, integer
# resources, real dates and IPs), with the near misses the fast path must leave to check_profile.
_USUAL_EMAILS = st.sampled_from(
    ["a@b.co", "Ann.Lee@mail.example", "x@y.org", " a@b.co", "a@b.co ", "bad@", "ä@b.co"]
)
_USUAL_PHONES = st.sampled_from(["+79000000000", "+79991234567", "+7 900 000-00-00", "12", "", None])
_USUAL_SUBSCRIPTIONS = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {"channel": st.sampled_from(["email", "email", "push"]), "email": _USUAL_EMAILS},
            optional={"resource_id": st.sampled_from([21, 7, None, "", "8", True, 1.5])},
        ),
        st.fixed_dictionaries(
            {"channel": st.sampled_from(["sms", "phone", "viber", "whatsapp"]), "phone": _USUAL_PHONES},
            optional={"resource_id": st.sampled_from([20, None, "9"])},
        ),
        st.just("not an object"),
    ),
    max_size=3,
)
_USUAL_PROFILES = st.fixed_dictionaries(
    {},
    optional={
        "_fname": st.sampled_from(["Ann", "Ирина", ""]),
        "email": _USUAL_EMAILS | st.sampled_from(["", None, 5]),
        "phones": _USUAL_PHONES | st.just(["+79000000000"]) | st.just(7),
        "_regdate": st.sampled_from(["2024-02-29", "2023-02-29", "2024-01-31T10:00:00Z", "", None, 20240101]),
        "_ip": st.sampled_from(["10.0.0.1", "300.1.1.1", "", None, 1]),
        "CRM": _VALUES,
        "subscriptions": _USUAL_SUBSCRIPTIONS | st.sampled_from([None, "", {"channel": "email"}, 3]),
    },
)


def _usual(**changes: Any) -> dict[str, Any]:
    return {
        "email": "a@b.co",
        "phones": "+79000000000",
        "_regdate": "2022-01-13",
        "subscriptions": [{"channel": "email", "email": "a@b.co", "resource_id": 21}],
        **changes,
    }


# The near misses one at a time, each in an otherwise usual profile (random chunks rarely hold one).
_NEAR_MISSES = [
    _usual(subscriptions=[{"channel": "sms", "phone": "+7 900 000-00-00"}]),
    _usual(subscriptions=[{"channel": "email", "email": " a@b.co"}]),
    _usual(subscriptions=[{"channel": "email", "email": "a@b.co", "resource_id": "8"}]),
    _usual(subscriptions=[{"channel": "email", "email": "a@b.co", "resource_id": True}]),
    _usual(subscriptions=[{"channel": "push", "subscription_id": "t"}]),
    _usual(subscriptions={"channel": "email", "email": "a@b.co"}),
    _usual(phones=["+79000000000"]),
    _usual(phones="+7 900 000-00-00"),
    _usual(email=" A@B.co "),
    _usual(_regdate="2023-02-29"),
    _usual(_ip="10.0.0.1"),
    _usual(email="", subscriptions=[]),
    _usual(email="", phones="", subscriptions=[{"channel": "sms", "phone": "+79000000000"}]),
]


@settings(max_examples=500, deadline=None)
@example(_NEAR_MISSES, MatchingMode.EMAIL, False, True)
@example(_NEAR_MISSES, MatchingMode.PHONE, True, False)
@example(_NEAR_MISSES, MatchingMode.EMAIL_PROFILE, False, True)
@given(
    st.lists(_USUAL_PROFILES | _PROFILES, min_size=1, max_size=12),
    st.sampled_from(list(MatchingMode)),
    st.booleans(),
    st.booleans(),
)
def test_the_chunk_check_answers_as_check_profile(
    profiles: list[dict[str, Any]], matching: MatchingMode, skip_invalid: bool, tables: bool
) -> None:
    env = _envelope(profiles, matching, skip_invalid)
    before = orjson.dumps(profiles)
    checks = chunk_checks(profiles) if tables else None
    for fields, answer in zip(profiles, check_profiles(profiles, env, checks), strict=True):
        try:
            expected: Checked | ProfileError = check_profile(fields, env)
        except ProfileError as exc:
            expected = exc
        if isinstance(expected, ProfileError):
            assert isinstance(answer, ProfileError)
            assert (answer.code, answer.text) == (expected.code, expected.text)
            continue
        assert isinstance(answer, Checked)
        got = (answer.fields, answer.subscriptions, answer.keys, answer.profile_id, answer.index)
        assert got == (
            expected.fields,
            expected.subscriptions,
            expected.keys,
            expected.profile_id,
            expected.index,
        )
        # what is stored is byte for byte what check_profile would have stored
        assert orjson.dumps(answer.fields) == orjson.dumps(expected.fields)
        assert orjson.dumps(answer.subscriptions) == orjson.dumps(expected.subscriptions)
    assert orjson.dumps(profiles) == before  # the request is never changed


def test_the_chunk_check_settles_a_usual_chunk_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """The usual profile never reaches check_profile (else the fast path would be dead code)."""
    import toolkit.sandbox.profiles as profiles_module

    usual = [
        {
            "email": f"p{i}@mail.example",
            "phones": "+7900000000" + str(i % 10),
            "_regdate": "2022-01-13",
            "subscriptions": [
                {"channel": "email", "email": f"p{i}@mail.example", "resource_id": 21},
                {"channel": "sms", "phone": "+7900000000" + str(i % 10)},
            ],
        }
        for i in range(100)
    ]
    slow: list[dict[str, Any]] = []
    exact = profiles_module.check_profile
    monkeypatch.setattr(profiles_module, "check_profile", lambda f, *a: slow.append(f) or exact(f, *a))
    env = ImportEnvelope(trigger_id=1, matching="email", profiles=usual)
    answers = list(checked_profiles(usual, env, chunk_checks(usual)))
    assert slow == [] and all(isinstance(a, Checked) for a in answers)
    odd = [{**usual[0], "subscriptions": [{"channel": "email", "email": " p0@mail.example"}]}]
    assert next(checked_profiles(odd, env, chunk_checks(odd))).subscriptions == [  # type: ignore[union-attr]
        {"channel": "email", "email": "p0@mail.example"}
    ]
    assert slow == odd  # a padded subscription email is stored stripped: check_profile does it


def test_the_usual_values_are_settled_column_wise() -> None:
    """Long emails and 254-character limits and padded values: the exact answers, both ways."""
    values = ["a@b.co", "a" * 250 + "@b.co", " a@b.co ", "a@b.c", "ä@b.co", "a@localhost"]
    assert email_table(values) == {v: is_email(v) for v in values}
    phones = ["+7 (900) 000-00-00", "+0 900 000 00 00", "+7900", "+7\u00a0900\u00a0000\u00a00000", ""]
    assert phone_table(phones) == {v: normalize_phone(v) for v in phones}


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.text(alphabet='ab"\\[]{}é ', max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet='k"\\[{', max_size=4), inner, max_size=3)
    ),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(_JSON, st.integers(1, 8), st.booleans())
def test_json_depth_on_the_bytes_agrees_with_the_walk(value: Any, limit: int, indent: bool) -> None:
    body = {"x": value}
    raw = orjson.dumps(body, option=orjson.OPT_INDENT_2 if indent else 0)
    assert _json_depth_ok(raw, limit) == _depth_ok(body, limit)


def _written(value: Any, spaced: bool, escaped: bool) -> bytes:
    text = orjson.dumps(value, option=orjson.OPT_INDENT_2 if spaced else 0)
    return text.replace(b"b", b"\\u0062") if escaped else text  # "b" is in no literal


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.dictionaries(st.text(alphabet="ab", max_size=2), _JSON, max_size=3), max_size=5),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_profiles_kept_as_text_parse_as_the_whole_body(
    profiles: list[dict[str, Any]], spaced: bool, escaped: bool, repeated: bool
) -> None:
    """Written any way JSON allows (spaces, escapes, a repeated key: its last value counts), each
    profile's text parses to the profile the whole body's parse holds, in order."""
    items = [_written({"data": p}, spaced, escaped) for p in profiles]
    if repeated:  # a repeated "data", in the body and in each item
        items = [b'{"data": {"x": 1}, ' + item[1:] for item in items]
    raw = (
        b'{"data": 5, "trigger_id": 1, "data": [' + b", ".join(items) + b"]}"
        if repeated
        else (b'{"trigger_id": 1, "data": [' + b",".join(items) + b"]}")
    )
    parsed = orjson.loads(raw)
    env = ImportEnvelope(trigger_id=1, matching="email", profiles=[i["data"] for i in parsed["data"]])
    kept = with_raw_profiles(env, raw)
    assert isinstance(kept.profiles, RawProfiles)
    assert kept.profiles[0 : len(profiles)] == env.profiles
    assert [kept.profiles[i] for i in range(len(profiles))] == env.profiles
    assert list(kept.profiles) == env.profiles
    texts = b",".join(kept.profiles.joined(i, i + 2) for i in range(0, len(profiles), 2))
    assert orjson.loads(b"[" + texts + b"]") == env.profiles  # the chunks sent to the second process


def test_profiles_not_found_one_for_one_stay_parsed() -> None:
    env = ImportEnvelope(trigger_id=1, matching="email", profiles=[{"email": "a@b.co"}])
    assert with_raw_profiles(env, b'{"data": [{"data": {}}, {"data": {}}]}') is env  # not the same count
    assert with_raw_profiles(env, b'{"trigger_id": 1}') is env


def test_json_depth_at_the_limit() -> None:
    inside = orjson.dumps({"a": '"[[[' * 100}).decode()  # brackets and escaped quotes in a string
    at_limit = "[" * (MAX_DEPTH - 1) + inside + "]" * (MAX_DEPTH - 1)
    over = "[" * MAX_DEPTH + inside + "]" * MAX_DEPTH
    assert _json_depth_ok(at_limit.encode(), MAX_DEPTH)
    assert not _json_depth_ok(over.encode(), MAX_DEPTH)


def _profiles() -> list[dict[str, Any]]:
    people: list[dict[str, Any]] = []
    for i in range(300):
        person: dict[str, Any] = {"email": f"p{i % 250}@example.com", "_fname": f"N{i}", "CRM": i % 7}
        if i % 3 == 0:
            person["subscriptions"] = [{"channel": "sms", "phone": f"+7 900 000 {i % 100:04d}"}]
        if i % 50 == 7:
            person["email"] = "broken@"
        if i % 40 == 9:
            person["phones"] = ["+7 900 111 22 33", "12"]
        people.append(person)
    return people


def _state(store: Store | MemoryStore) -> tuple[Any, ...]:
    def timeless(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if not k.endswith(("_at", "time"))} for r in rows]

    def listed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return timeless(orjson.loads(orjson.dumps(rows)))  # as the route answers them

    return listed(store.list_profiles()), listed(store.list_sends()), listed(store.list_tasks())


@pytest.mark.parametrize("matching", ["email", "phone", "custom"])
def test_the_memory_store_and_sqlite_agree(matching: str) -> None:
    """The same chunks (new profiles, updates, in-chunk duplicates, failures, a late custom index)
    through one engine each: the same results, profiles, sends and task counts."""
    seen = []
    for store in (MemoryStore(), Store()):
        engine = Engine(store, IdSource(5))
        profiles = _profiles()
        env = ImportEnvelope(
            trigger_id=9,
            matching=matching,
            profiles=profiles,
            field_name="CRM" if matching == "custom" else None,
        )
        store.create_task("t", env.to_dict())
        results = []
        for start in range(0, len(profiles), 100):
            with store.transaction():
                chunk = engine.import_chunk(env, profiles[start : start + 100], "t")
                store.record_results("t", start, chunk, last=start + 100 >= len(profiles))
            results += chunk
        task = store.task("t")
        seen.append((results, task, _state(store)))
        store.close()
    assert seen[0] == seen[1]
    results = seen[0][0]
    assert any(isinstance(r, tuple) for r in results) and any(isinstance(r, str) for r in results)


def _twins(offset: int) -> list[dict[str, Any]]:
    """A chunk that finds itself: later profiles share an email, a subscription's email or a phone
    with earlier ones of the same chunk (none in the store yet), or only a key no mode looks up."""
    people: list[dict[str, Any]] = []
    for i in range(offset, offset + 120):
        person: dict[str, Any] = {"email": f"t{i}@example.com", "phones": f"+7 901 000 {i:04d}"}
        if i % 10 == 3:
            person["email"] = f"t{i - 1}@example.com"  # the one before, by email
        if i % 10 == 5:
            del person["email"]  # found by the subscription's email in the modes that fall back
            person["subscriptions"] = [{"channel": "email", "email": f"T{i - 3}@example.com "}]
        if i % 10 == 7:
            person["phones"] = f"+7 901 000 {i - 2:04d}"  # the one two before, by phone
        if i % 10 == 9:
            person["subscriptions"] = [{"channel": "sms", "phone": f"+7 901 000 {i - 1:04d}"}]
        people.append(person)
    return people


@pytest.mark.parametrize("matching", ["email", "email_profile", "phone", "email_sub", "phone_sub"])
def test_a_chunk_that_finds_its_own_profiles_is_placed_in_turn(matching: str) -> None:
    """Profiles of one chunk found by later ones of the same chunk (by email, a subscription's email
    or a phone), chunks of new profiles, and chunks that find stored ones: the in-memory store
    answers as SQLite does."""
    seen = []
    for store in (MemoryStore(), Store()):
        engine = Engine(store, IdSource(8))
        results = []
        for n, offset in enumerate((0, 1000, 0)):
            profiles = _twins(offset) if n != 1 else [{"email": f"new{i}@example.com"} for i in range(100)]
            env = ImportEnvelope(trigger_id=9, matching=matching, profiles=profiles)
            store.create_task(f"t{n}", env.to_dict())
            with store.transaction():
                chunk = engine.import_chunk(env, profiles, f"t{n}")
                store.record_results(f"t{n}", 0, chunk, last=True)
            results.append(chunk)
        seen.append((results, _state(store)))
        store.close()
    assert seen[0] == seen[1]
    created = [r for task in seen[0][0] for r in task if isinstance(r, str)]
    assert len(set(created)) < len(created)  # some profiles were found again (merged)


def test_the_collector_pause_is_counted_across_threads() -> None:
    assert gc.isenabled()
    barrier = threading.Barrier(8)
    seen: list[bool] = []

    def hold() -> None:
        with paused_gc():
            barrier.wait(timeout=10)  # all eight inside at once
            with paused_gc():
                seen.append(gc.isenabled())
            seen.append(gc.isenabled())

    threads = [threading.Thread(target=hold) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == [False] * 16
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()  # a collector that was off stays off
    finally:
        gc.enable()


def test_a_bulk_task_freezes_its_body_and_the_idle_worker_collects() -> None:
    """A large task's body is kept out of the collector's reach while it waits, and the collector
    is paused for the task; once the worker is idle, a cycle made before or during the task is
    collected all the same."""

    class Node:
        ref: Any = None

    engine = Engine(MemoryStore(), IdSource(1))
    engine.start()
    try:
        gc.collect()
        gc.disable()  # nothing collects the cycle before the task's freeze takes it out of reach
        node = Node()
        node.ref = node
        alive = weakref.ref(node)
        del node
        env = ImportEnvelope(
            trigger_id=1,
            matching="email",
            profiles=[{"email": f"p{i}@example.com"} for i in range(PREPARE_FROM)],
        )
        task_id = engine.submit(env)
        during = Node()  # made while the task runs: frozen with what the task made, at its end
        during.ref = during
        alive_during = weakref.ref(during)
        del during
        gc.enable()
        deadline = time.monotonic() + 60  # only stops a hung test
        while (
            alive() is not None
            or alive_during() is not None
            or engine.store.task(task_id)["status"] != "completed"  # type: ignore[index]
        ):
            assert time.monotonic() < deadline, "the cycle was not collected once the worker was idle"
            time.sleep(0.01)
        assert gc.isenabled()
    finally:
        engine.stop()
        gc.enable()
        gc.unfreeze()  # the idle collection froze what was alive, as the sandbox's process keeps it


def test_a_bulk_task_stopped_half_way_resumes_where_it_stopped() -> None:
    """A worker stopped half-way through a bulk task (in memory) and a new one on the same store
    imports the rest: each profile once, the results of the whole task in order."""
    store = MemoryStore()
    profiles = [{"email": f"p{i}@example.com"} for i in range(PREPARE_FROM + 600)]
    profiles[2100] = {"email": "broken@"}
    env = ImportEnvelope(trigger_id=1, matching="email", profiles=profiles)
    engine = Engine(store, IdSource(1), paused=True)
    engine.start()
    task_id = engine.submit(env)
    assert engine.step(1000) == 1000
    engine.stop()
    assert store.task(task_id)["done"] == 1000  # type: ignore[index]
    engine = Engine(store, IdSource(2))  # a new worker on the same store resumes it
    engine.start()
    try:
        deadline = time.monotonic() + 60  # only stops a hung test
        while (task := store.task(task_id)) is None or task["status"] not in ("completed", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        engine.stop()
    assert task["status"] == "completed", task["error_text"]
    results = task["results"]
    assert len(results) == len(profiles) and len(store.list_profiles()) == len(profiles) - 1
    assert results[2100]["error_text"] == "invalid email 'broken@'"
    assert sum("profile_id" in r for r in results) == len(profiles) - 1
