"""Status progression with a processing rate, the fault knobs, and seed reproducibility."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest
import requests
from sandbox_helpers import Api

from toolkit.core.contract import BATCH_PATH, STATUS_PATH

ONE = {"trigger_id": 3, "data": [{"data": {"email": "a@example.com"}}]}


def test_status_goes_queued_processing_completed(make_api: Callable[..., Api]) -> None:
    """A task is queued until the worker reaches it, processing with its progress rising per
    profile done (no result yet), then completed with every result; one worker, tasks in order."""
    api = make_api(paused=True)
    first = api.batch([{"email": f"a{i}@example.com"} for i in range(12)])
    second = api.batch([{"email": f"b{i}@example.com"} for i in range(4)])
    assert api.status(first) == api.status(second) == {"status": "queued", "progress": 0}
    for done, progress in ((4, 33), (8, 66)):
        assert api.step(4) == 4
        assert api.status(first) == {"status": "processing", "progress": progress}, done
        assert api.status(second) == {"status": "queued", "progress": 0}  # it waits its turn
    assert api.step(4) == 4
    data = api.status(first)
    assert (data["status"], data["progress"]) == ("completed", 100)
    assert [r["profile_id"] for r in data["result"]["result"]] == [
        p["profile_id"] for p in api.inspect("profiles")
    ]
    assert api.status(second) == {"status": "queued", "progress": 0}  # not started by that step
    assert api.step(100) == 4  # the queue runs dry: the step says how many it could do
    assert len(api.wait(second)) == 4
    assert api.step(1) == 0  # nothing left to do


def test_a_paused_worker_resumes_freely(make_api: Callable[..., Api]) -> None:
    """pause keeps new tasks queued; resume lets them all complete without further steps."""
    api = make_api()
    assert api.control("pause") == {"paused": True}
    task_id = api.batch([{"email": f"p{i}@example.com"} for i in range(3)])
    assert api.status(task_id) == {"status": "queued", "progress": 0}
    assert api.control("resume") == {"paused": False}
    assert len(api.wait(task_id)) == 3


def test_processing_rate_still_completes_every_profile_once(make_api: Callable[..., Api]) -> None:
    """With a processing rate the task is paced, not shortened: every profile is imported once."""
    api = make_api(processing_rate=200)
    results = api.run([{"email": f"r{i}@example.com"} for i in range(10)])
    assert len({r["profile_id"] for r in results}) == 10
    assert len(api.inspect("sends")) == 10


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
    """The answer is lost but the task was queued: it runs once, and sending again would trigger twice."""
    api = make_api(lose_response_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        api.post(BATCH_PATH, ONE)
    api.wait_until(lambda: [t["status"] for t in api.inspect("tasks")] == ["completed"], "the task completes")
    [task] = api.inspect("tasks")
    assert task["imported"] == 1
    assert len(api.inspect("sends")) == 1


def test_rate_limit_answers_429_with_retry_after(make_api: Callable[..., Api]) -> None:
    """Over the rate, 429 with Retry-After; waiting that long is enough; inspection is never limited."""
    api = make_api(rate_limit=0.5)  # one request per two seconds, a burst of one
    answers = [api.post(STATUS_PATH, {"task_id": "x"}) for _ in range(4)]
    codes = [a.status_code for a in answers]
    assert codes[0] == 404 and 429 in codes
    limited = answers[codes.index(429)]
    assert limited.json()["error"] == 429
    retry_after = int(limited.headers["Retry-After"])
    assert retry_after >= 1
    assert api.inspect("tasks") == []  # inspection is never rate limited
    time.sleep(retry_after)
    assert api.post(STATUS_PATH, {"task_id": "x"}).status_code == 404


def test_latency_delays_platform_routes_only(
    make_api: Callable[..., Api], caplog: pytest.LogCaptureFixture
) -> None:
    """The latency knob holds each platform answer back, and never an inspection route's."""
    caplog.set_level(logging.INFO, logger="toolkit.sandbox")
    api = make_api(latency_ms=250)
    start = time.perf_counter()
    api.post(STATUS_PATH, {"task_id": "x"})
    assert time.perf_counter() - start >= 0.25  # a lower bound: the server waited that long
    api.inspect("tasks")  # (each answer's line is logged before its last bytes go out)
    lines = [
        r.getMessage() for r in caplog.records if r.name == "toolkit.sandbox" and " -> " in r.getMessage()
    ]
    [platform] = [line for line in lines if STATUS_PATH in line]
    [inspection] = [line for line in lines if "/_sandbox/tasks" in line]
    assert "(+250 ms latency knob)" in platform
    assert "latency" not in inspection


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
