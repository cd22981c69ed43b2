"""--db persistence across restarts, task resume, and hostile bodies."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from sandbox_helpers import Api

from toolkit.core.contract import BATCH_PATH, SINGLE_PATH, STATUS_PATH, loads_xml
from toolkit.sandbox import SandboxServer, serve


def test_db_keeps_profiles_tasks_and_sends_across_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "sandbox.sqlite"
    with serve(db=db, token="t") as first:
        api = Api(first)
        task_id = api.batch([{"email": "keep@example.com"}, {"email": "bad"}])
        results = api.wait(task_id)
        before = (api.inspect("profiles"), api.inspect("tasks"), api.inspect("sends"))
    with serve(db=db, token="t") as second:
        api = Api(second)
        assert (api.inspect("profiles"), api.inspect("tasks"), api.inspect("sends")) == before
        assert api.wait(task_id) == results
        [again] = api.run([{"email": "keep@example.com", "_fname": "Kept"}])
        assert again["profile_id"] == results[0]["profile_id"]


def test_an_unfinished_task_resumes_after_a_restart_without_doubles(tmp_path: Path) -> None:
    """A server stopped mid-task resumes it on the same --db: each profile imported and sent once."""
    db = tmp_path / "sandbox.sqlite"
    profiles = [{"email": f"r{i}@example.com"} for i in range(30)]
    with serve(db=db, token="t", seed=1, paused=True) as stopped:
        api = Api(stopped)
        task_id = api.batch(profiles)
        assert api.step(10) == 10
        assert api.status(task_id) == {"status": "processing", "progress": 33}
    with serve(db=db, token="t", seed=1) as restarted:
        api = Api(restarted)
        results = api.wait(task_id)
        assert len(results) == 30 and all("profile_id" in r for r in results)
        assert len({r["profile_id"] for r in results}) == 30
        sends = api.inspect("sends")
        assert sorted(s["profile_id"] for s in sends) == sorted(r["profile_id"] for r in results)
        assert len(api.inspect("profiles")) == 30
        # seeded ids never collide with the ids of the previous run
        assert api.batch([{"email": "new@example.com"}]) != task_id


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<xml><trigger_id>1</trigger_id><data><email>&lol9;</email></data></xml>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><trigger_id>1</trigger_id><data><email>&xxe;</email></data></xml>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion-laughs", "external-entity"])
def test_xml_bombs_are_refused_and_the_server_stays_up(api: Api, body: str) -> None:
    for path in (BATCH_PATH, SINGLE_PATH, STATUS_PATH):
        answer = api.post(path, data=body, xml=True)
        assert answer.status_code == 400
        parsed = loads_xml(answer.content)
        assert parsed["error"] == "400" and "forbidden XML" in parsed["error_text"]
        assert "root:" not in answer.text
    assert api.alive() and api.inspect("profiles") == []


@pytest.mark.parametrize("depth", [100, 5000, 200_000])
def test_deep_json_nesting_is_a_400(api: Api, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    body = '{"trigger_id": 1, "data": [{"data": {"email": "a@example.com", "deep": ' + nested + "}}]}"
    answer = api.post(BATCH_PATH, data=body)
    assert answer.status_code == 400 and answer.json()["error"] == 400
    assert api.alive() and api.inspect("tasks") == []


@pytest.mark.parametrize("depth", [100, 50_000])
def test_deep_xml_nesting_is_a_400(api: Api, depth: int) -> None:
    body = "<xml><trigger_id>1</trigger_id><data>" + "<a>" * depth + "x" + "</a>" * depth + "</data></xml>"
    answer = api.post(BATCH_PATH, data=body, xml=True)
    assert answer.status_code == 400 and "nests deeper" in loads_xml(answer.content)["error_text"]
    assert api.alive()


def test_huge_strings_are_just_data(api: Api) -> None:
    big = "é" * 4_000_000  # 8 MB of UTF-8, under the body limit
    [result] = api.run([{"email": "big@example.com", "note": big}])
    assert "profile_id" in result
    answer = api.post(BATCH_PATH, data=orjson.dumps({"trigger_id": 1, "data": [{"data": {"email": big}}]}))
    [bad] = api.wait(answer.json()["task_id"])
    assert bad["error"] == 400 and len(bad["error_text"]) < 200  # the error quotes, it does not echo
    assert api.alive()


def test_make_sandbox_gives_separate_servers(make_sandbox: Callable[..., SandboxServer]) -> None:
    one, two = make_sandbox(), make_sandbox(token="fixed")
    assert one.url != two.url and two.token == "fixed"
    Api(one).run([{"email": "only-here@example.com"}])
    assert Api(two).inspect("profiles") == []
