"""A whole launch against every documented answer variant the sandbox rehearses (issue 12).

Each test plans, launches, waits and reads the results over HTTP, then checks two things a user
would notice: no row is reported ``imported`` unless the answer proves it, and the sandbox's send
log shows each profile started at most once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import polars as pl
import pytest
import requests

import toolkit
from toolkit import Client, Mapping, Trigger
from toolkit.errors import AuthError

MAPPING = Mapping({"email": "email", "name": "_fname"})
TRIGGER = Trigger(96)  # an active API-call trigger of the sandbox's catalog


def _segment(n: int, tag: str) -> pl.DataFrame:
    return pl.DataFrame(
        {"email": [f"{tag}{i}@variant.test" for i in range(n)], "name": [f"N{i}" for i in range(n)]}
    )


def _inspect(server: Any, route: str) -> list[dict[str, Any]]:
    answer = requests.get(
        f"{server.url}/_sandbox/{route}", headers={"Authorization": f"Bearer {server.token}"}, timeout=10
    )
    answer.raise_for_status()
    return answer.json()


def _sends_by_email(server: Any) -> Counter[str]:
    emails = {p["profile_id"]: p["fields"].get("email") for p in _inspect(server, "profiles")}
    return Counter(emails[s["profile_id"]] for s in _inspect(server, "sends"))


def _launch(server: Any, client: Client, rows: int, tag: str) -> pl.DataFrame:
    plan = toolkit.plan(_segment(rows, tag), MAPPING, TRIGGER, max_rows=10)
    launch = client.launch(plan, progress=False).wait(timeout=60, progress=False)
    assert not launch.timed_out
    results = launch.results()
    return results if isinstance(results, pl.DataFrame) else pl.from_pandas(results)


@pytest.mark.parametrize("variant", ["standard", "nested_task_id", "body_token_only"])
def test_a_launch_imports_every_row_when_the_answers_prove_it(
    variant: str, make_sandbox: Callable[..., Any], make_client: Callable[..., Client]
) -> None:
    """Top-level or nested task ids, header or body-only tokens: every row imported, each sent once."""
    server = make_sandbox(variant=variant)
    client = make_client(server)
    results = _launch(server, client, 25, variant)
    assert results["status"].to_list() == ["imported"] * 25
    sends = _sends_by_email(server)
    assert len(sends) == 25 and set(sends.values()) == {1}
    if variant == "body_token_only":
        assert client.token_in_body is True  # learnt from the first 401, kept since
    client.close()


@pytest.mark.parametrize(("captured", "want"), [(None, "imported"), (3, "unknown")])
def test_the_short_result_form_imports_only_when_every_row_was_captured(
    captured: int | None, want: str, make_sandbox: Callable[..., Any], make_client: Callable[..., Client]
) -> None:
    """{captured, errors, status}: all rows captured -> imported; fewer -> unknown, quoting the counts."""
    server = make_sandbox(variant="short_result", captured=captured)
    client = make_client(server)
    results = _launch(server, client, 10, f"short{captured}")
    assert results["status"].to_list() == [want] * 10
    if want == "unknown":
        assert all("3" in text and "10" in text for text in results["error_text"].to_list()), results
    assert set(_sends_by_email(server).values()) == {1}
    client.close()


def test_errors_inside_http_200_are_errors(
    make_sandbox: Callable[..., Any], make_client: Callable[..., Client]
) -> None:
    """A refused token answered with HTTP 200 and error 403 is an AuthError; nothing is imported or sent."""
    server = make_sandbox(variant="error_in_200")
    good = make_client(server)
    assert _launch(server, good, 5, "ok200")["status"].to_list() == ["imported"] * 5
    bad = Client(server.url, "wrong-token-0123456789", journal=good.journal_path)
    with pytest.raises(AuthError):
        bad.launch(toolkit.plan(_segment(5, "bad200"), MAPPING, TRIGGER), progress=False, preflight=False)
    assert sum(_sends_by_email(server).values()) == 5  # only the good launch's profiles
    good.close()
    bad.close()
