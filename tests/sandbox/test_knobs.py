"""Status progression with a processing rate, the fault knobs, and seed reproducibility."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import requests
from sandbox_helpers import Api

from toolkit.core.contract import BATCH_PATH, STATUS_PATH

ONE = {"trigger_id": 3, "data": [{"data": {"email": "a@example.com"}}]}


def test_status_goes_queued_processing_completed(make_api: Callable[..., Api]) -> None:
    api = make_api(processing_rate=40)
    first = api.batch([{"email": f"a{i}@example.com"} for i in range(12)])
    second = api.batch([{"email": f"b{i}@example.com"} for i in range(4)])
    seen: dict[str, list[tuple[str, int]]] = {first: [], second: []}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for task_id, trail in seen.items():
            data = api.status(task_id)
            assert ("result" in data) == (data["status"] == "completed")
            trail.append((data["status"], data["progress"]))
        if all(trail[-1][0] == "completed" for trail in seen.values()):
            break
        time.sleep(0.03)
    first_states = [s for s, _ in seen[first]]
    assert first_states[0] in ("queued", "processing") and first_states[-1] == "completed"
    assert "processing" in first_states
    assert seen[second][0][0] == "queued"  # one worker: the second task waits its turn
    progress = [p for _, p in seen[first]]
    assert progress == sorted(progress) and progress[-1] == 100
    assert len({p for s, p in seen[first] if s == "processing"}) >= 3  # it rose step by step
    assert len(api.wait(first)) == 12


def test_fail_rate_answers_5xx_and_does_nothing(make_api: Callable[..., Api]) -> None:
    api = make_api(fail_rate=1.0, seed=3)
    statuses = set()
    for _ in range(8):
        answer = api.post(BATCH_PATH, ONE)
        assert answer.status_code in (500, 502, 503)
        assert answer.json()["error"] == answer.status_code and answer.json()["error_text"]
        statuses.add(answer.status_code)
    assert len(statuses) >= 2
    assert api.inspect("tasks") == []  # knobs never touch /_sandbox/*
    xml = api.post(STATUS_PATH, data="<xml><task_id>x</task_id></xml>", xml=True)
    assert xml.status_code >= 500 and xml.text.startswith("<xml>")


def test_drop_rate_closes_the_connection_before_anything(make_api: Callable[..., Api]) -> None:
    api = make_api(drop_rate=1.0)
    for _ in range(3):
        with pytest.raises(requests.ConnectionError):
            api.post(BATCH_PATH, ONE)
    assert api.inspect("tasks") == [] and api.alive()


def test_lost_response_still_runs_the_task(make_api: Callable[..., Api]) -> None:
    api = make_api(lose_response_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        api.post(BATCH_PATH, ONE)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and api.inspect("tasks")[0]["status"] != "completed":
        time.sleep(0.02)
    [task] = api.inspect("tasks")
    assert task["status"] == "completed" and task["imported"] == 1
    assert len(api.inspect("sends")) == 1  # sending again would trigger twice


def test_rate_limit_answers_429_with_retry_after(make_api: Callable[..., Api]) -> None:
    api = make_api(rate_limit=3)
    answers = [api.post(STATUS_PATH, {"task_id": "x"}) for _ in range(8)]
    codes = [a.status_code for a in answers]
    assert codes[:3] == [404, 404, 404] and 429 in codes
    limited = answers[codes.index(429)]
    assert limited.json()["error"] == 429
    retry_after = int(limited.headers["Retry-After"])
    assert retry_after >= 1
    assert api.inspect("tasks") == []  # inspection is never rate limited
    time.sleep(retry_after)
    assert api.post(STATUS_PATH, {"task_id": "x"}).status_code == 404


def test_latency_delays_platform_routes_only(make_api: Callable[..., Api]) -> None:
    api = make_api(latency_ms=250)
    start = time.perf_counter()
    api.post(STATUS_PATH, {"task_id": "x"})
    assert time.perf_counter() - start >= 0.25
    start = time.perf_counter()
    api.inspect("tasks")
    assert time.perf_counter() - start < 0.2


def run_script(api: Api) -> tuple[list[str], list[str]]:
    task_ids = [api.batch([{"email": f"{n}{i}@example.com"} for i in range(3)]) for n in "ab"]
    profile_ids = [r["profile_id"] for t in task_ids for r in api.wait(t)]
    return task_ids, profile_ids


def fault_script(api: Api) -> list[int | str]:
    outcomes: list[int | str] = []
    for _ in range(12):
        try:
            outcomes.append(api.post(STATUS_PATH, {"task_id": "x"}).status_code)
        except requests.ConnectionError:
            outcomes.append("dropped")
    return outcomes


def test_seed_makes_ids_and_faults_reproducible(make_api: Callable[..., Api]) -> None:
    a, b, c = make_api(seed=11), make_api(seed=11), make_api(seed=12)
    same, again, other = run_script(a), run_script(b), run_script(c)
    assert same == again
    assert set(same[0]).isdisjoint(other[0]) and set(same[1]).isdisjoint(other[1])
    knobs = {"fail_rate": 0.3, "drop_rate": 0.3}
    f1, f2 = make_api(seed=5, **knobs), make_api(seed=5, **knobs)
    first, second = fault_script(f1), fault_script(f2)
    assert first == second
    assert {404, "dropped"} <= set(first) and any(isinstance(o, int) and o >= 500 for o in first)
