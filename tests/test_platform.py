"""The real platform, client side (issue 12), over HTTP: the sandbox says it is one, one-item XML
arrays reach it as arrays.

Answers the sandbox never gives (nested task ids, the short result form, errors inside
HTTP 200, body-only authentication) are played by a tiny scripted stub server, answering
exactly the documented shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl
import pytest
import requests

import toolkit
from toolkit.core import contract
from toolkit.send.client import Client

pytestmark = pytest.mark.usefixtures("isolated_journal")


def _inspect(server: Any, route: str) -> list[dict[str, Any]]:
    r = requests.get(f"{server.url}/_sandbox/{route}", headers={"Authorization": f"Bearer {server.token}"},
                     timeout=10)  # fmt: skip
    r.raise_for_status()
    return r.json()


def test_every_sandbox_answer_says_it_is_a_sandbox(sb: Any) -> None:
    """Answers of the sandbox, errors included, carry the header the client tells it by."""
    ok = requests.post(f"{sb.url}{contract.STATUS_PATH}", json={"task_id": "none"},
                       headers={"Authorization": f"Bearer {sb.token}"}, timeout=10)  # fmt: skip
    refused = requests.post(f"{sb.url}{contract.BATCH_PATH}", json={}, timeout=10)
    assert ok.headers[contract.SANDBOX_HEADER] == "1" and refused.headers[contract.SANDBOX_HEADER] == "1"
    assert refused.status_code == 401


def test_one_profile_xml_batch_with_one_subscription_arrives_as_arrays(
    sb: Any, make_client: Callable[..., Client]
) -> None:
    """A one-profile XML batch (a lone, marked <data>) with one subscription and a one-item
    list field is imported as a profile with one subscription and a one-item list."""
    frame = pl.DataFrame({"email": ["lone@platform.example"], "tags": [["vip"]]})
    mapping = toolkit.Mapping({"email": "email", "tags": "tags"},
                              subscriptions=[toolkit.Subscription("email", "email", 21)])  # fmt: skip
    p = toolkit.plan(frame, mapping, toolkit.Trigger(96), format="xml")
    assert p.batches[0].body.count(b"array='true'") == 3  # data, subscriptions, tags
    client = make_client(sb)
    client.launch(p, progress=False).wait(progress=False)
    (profile,) = [x for x in _inspect(sb, "profiles") if x["fields"].get("email") == "lone@platform.example"]
    assert profile["fields"]["tags"] == ["vip"]
    assert [s["resource_id"] for s in profile["subscriptions"]] == [21]
    client.close()
