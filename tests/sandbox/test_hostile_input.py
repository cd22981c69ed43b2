"""Hostile input: every one answered with the platform's envelope and a 4xx, never a 500, and the
sandbox still serves afterwards."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from sandbox_helpers import Api

from toolkit.core.contract import BATCH_PATH, SINGLE_PATH, STATUS_PATH, TRIGGER_GET_PATH, loads_xml

TOO_BIG = 2**63  # one past SQLite's (and Go's) largest integer
ONE = [{"data": {"email": "a@example.com"}}]


def envelope(answer: Any) -> dict[str, Any]:
    """The answer's envelope, JSON or XML."""
    if answer.headers["content-type"].startswith("application/xml"):
        return loads_xml(answer.content)
    return answer.json()  # type: ignore[no-any-return]


def assert_refused(answer: Any, code: int, *words: str) -> None:
    """A 4xx whose envelope carries the same code and says what is wrong."""
    assert answer.status_code == code, answer.text
    body = envelope(answer)
    assert str(body["error"]) == str(code)
    for word in words:
        assert word in body["error_text"], body["error_text"]


@pytest.mark.parametrize("path", [BATCH_PATH, SINGLE_PATH])
@pytest.mark.parametrize("value", [TOO_BIG, -TOO_BIG, 0, 2**64 - 1])
def test_a_trigger_id_out_of_range_is_a_400_on_both_import_routes(api: Api, path: str, value: int) -> None:
    """trigger_id 2**63 (and its kin) used to overflow SQLite into a 500; now it is named in a 400."""
    data = ONE if path == BATCH_PATH else ONE[0]["data"]
    assert_refused(api.post(path, {"trigger_id": value, "data": data}), 400, "trigger_id must be between")
    xml = f"<xml><trigger_id>{value}</trigger_id><data><email>a@example.com</email></data></xml>"
    assert_refused(api.post(path, data=xml, xml=True), 400, "trigger_id must be")
    assert api.inspect("tasks") == [] and api.inspect("profiles") == []


def test_a_trigger_id_out_of_range_is_a_400_on_the_send_log(api: Api) -> None:
    """/_sandbox/sends?trigger_id=2**63 answers 400 in the envelope, not a 500."""
    answer = api.http.get(
        f"{api.url}/_sandbox/sends", params={"trigger_id": TOO_BIG}, headers=api.auth, timeout=10
    )
    assert_refused(answer, 400, "trigger_id")
    assert api.inspect("sends", trigger_id=7) == []


@pytest.mark.parametrize("path", [BATCH_PATH, SINGLE_PATH, STATUS_PATH, TRIGGER_GET_PATH])
def test_xml_declaring_an_unknown_encoding_is_a_400_on_every_route(api: Api, path: str) -> None:
    """encoding="x-bogus" used to raise LookupError (500); now every route names the encoding."""
    xml = '<?xml version="1.0" encoding="x-bogus"?><xml><trigger_id>1</trigger_id><task_id>t</task_id></xml>'
    answer = api.post(path, data=xml, xml=True)
    assert answer.headers["content-type"].startswith("application/xml")
    assert_refused(answer, 400, "x-bogus", "UTF-8")


def test_xml_in_a_declared_encoding_python_knows_is_read(api: Api) -> None:
    """A known non-UTF-8 declaration (windows-1251) is decoded, not refused."""
    xml = '<?xml version="1.0" encoding="windows-1251"?><xml><trigger_id>1</trigger_id><data><email>a@example.com</email><_fname>Анна</_fname></data></xml>'
    answer = api.post(BATCH_PATH, data=xml.encode("windows-1251"), xml=True)
    assert answer.status_code == 200, answer.text
    api.wait(loads_xml(answer.content)["task_id"])
    [profile] = api.inspect("profiles")
    assert profile["fields"]["_fname"] == "Анна"


PEAK_PROBE = """
import resource, sys
from toolkit.sandbox.envelope import ApiFailure, BATCH_LISTS, decode
depth = 10 * 1024 * 1024 // 7
body = b"<a>" * depth + b"</a>" * depth
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    decode(body, "xml", BATCH_LISTS)
except ApiFailure as exc:
    print(exc.code, exc.text)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_a_10_mib_body_of_nested_xml_is_refused_without_building_its_tree() -> None:
    """1.5 million levels of nesting are refused by the streaming scan: the reader's peak grows by
    a few MB (the tree used to take 530 MB), measured in a fresh process."""
    done = subprocess.run([sys.executable, "-c", PEAK_PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answer, grown_mb = done.stdout.splitlines()
    assert answer == "400 the body nests deeper than 64 levels"
    assert int(grown_mb) < 50


def test_nested_and_oversized_xml_over_http_are_400(api: Api) -> None:
    """Depth and element count are bounded over HTTP too, and the sandbox keeps serving."""
    deep = b"<xml>" + b"<a>" * 100 + b"</a>" * 100 + b"</xml>"
    assert_refused(api.post(BATCH_PATH, data=deep, xml=True), 400, "nests deeper than 64")
    wide = b"<xml>" + b"<a/>" * 500_001 + b"</xml>"
    assert_refused(api.post(BATCH_PATH, data=wide, xml=True), 400, "more than 500,000 XML elements")
    dtd = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><xml><trigger_id>&a;</trigger_id></xml>'
    assert_refused(api.post(BATCH_PATH, data=dtd, xml=True), 400, "DTD")
    assert_refused(api.post(BATCH_PATH, data=b"<xml>true</xml>", xml=True), 400, "not text")
    assert api.alive() and api.inspect("tasks") == []


def _stalled_upload(url: str, token: str, path: str) -> bytes:
    """Send the headers and half of a declared body, then nothing: all that comes back until the
    server closes the connection (the socket's timeout fails the test if it never does)."""
    parts = urlsplit(url)
    body = b'{"trigger_id": 1, "data": [{"data": {"email": "a@example.com"}}]}'
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode() + body[: len(body) // 2])
        received = b""
        while chunk := sock.recv(65536):  # until the server closes the connection
            received += chunk
    return received


def test_a_stalled_upload_is_answered_408_and_dropped(make_api: Callable[..., Api]) -> None:
    """A body that stops arriving is answered 408 (envelope) after body_timeout, the connection is
    closed, nothing is imported, and the sandbox serves the next request."""
    api = make_api(body_timeout=0.5)
    received = _stalled_upload(api.url, api.token, BATCH_PATH)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), received[:200]
    assert b"connection: close" in head.lower()
    assert b'"error":408' in body and b"stalled" in body
    assert api.inspect("tasks") == [] and api.alive()
