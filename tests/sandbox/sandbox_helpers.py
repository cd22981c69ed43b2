"""Helpers for the sandbox tests: a thin HTTP wrapper (real requests, no mocks).

A module with a unique name (not ``conftest``) so test modules can import it unambiguously.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import requests

from toolkit.core.contract import BATCH_PATH, SINGLE_PATH, STATUS_PATH
from toolkit.sandbox import SandboxServer

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "examples"


def example(name: str) -> bytes:
    """The bytes of a seed example file."""
    return (EXAMPLES / name).read_bytes()


class Api:
    """Calls one sandbox the way a client would, with the token in the Authorization header."""

    def __init__(self, server: SandboxServer) -> None:
        self.server = server
        self.url = server.url
        self.token = server.token
        self.http = requests.Session()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def post(
        self,
        path: str,
        json: Any = None,
        *,
        data: bytes | str | None = None,
        xml: bool = False,
        auth: bool = True,
        headers: dict[str, str] | None = None,
        timeout: float = 15,
    ) -> requests.Response:
        all_headers = {**(self.auth if auth else {}), **(headers or {})}
        if json is not None:  # UTF-8 as-is (requests would \u-escape: 6 bytes per non-ASCII char)
            data, json = orjson.dumps(json), None
        if data is not None:
            all_headers.setdefault("Content-Type", "application/xml" if xml else "application/json")
        return self.http.post(self.url + path, json=json, data=data, headers=all_headers, timeout=timeout)

    def batch(self, profiles: list[dict[str, Any]], **envelope: Any) -> str:
        """Start a batch task (JSON) and return its id."""
        body = {"trigger_id": 7, "data": [{"data": p} for p in profiles], **envelope}
        answer = self.post(BATCH_PATH, body)
        assert answer.status_code == 200, answer.text
        return answer.json()["task_id"]  # type: ignore[no-any-return]

    def single(self, profile: dict[str, Any], **envelope: Any) -> requests.Response:
        return self.post(SINGLE_PATH, {"trigger_id": 7, "data": profile, **envelope})

    def status(self, task_id: str) -> dict[str, Any]:
        answer = self.post(STATUS_PATH, {"task_id": task_id})
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]  # type: ignore[no-any-return]

    def wait(self, task_id: str, timeout: float = 60) -> list[dict[str, Any]]:
        """Poll until the task completes; its per-profile results."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = self.status(task_id)
            if data["status"] == "completed":
                return data["result"]["result"]  # type: ignore[no-any-return]
            time.sleep(0.02)
        raise AssertionError(f"task {task_id} did not complete in {timeout} s")

    def run(self, profiles: list[dict[str, Any]], **envelope: Any) -> list[dict[str, Any]]:
        return self.wait(self.batch(profiles, **envelope))

    def inspect(self, what: str, **params: Any) -> Any:
        answer = self.http.get(f"{self.url}/_sandbox/{what}", params=params, headers=self.auth, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def control(self, action: str, **params: Any) -> dict[str, Any]:
        """``POST /_sandbox/{pause,step,resume}``: the batch worker's gate."""
        answer = self.http.post(f"{self.url}/_sandbox/{action}", params=params, headers=self.auth, timeout=60)
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    def step(self, profiles: int) -> int:
        """Let a paused worker import exactly ``profiles`` more profiles; how many it did."""
        return self.control("step", profiles=profiles)["processed"]  # type: ignore[no-any-return]

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
        """Poll ``condition`` until it holds (the timeout only stops a hung test)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not after {timeout} s")
            time.sleep(0.02)

    def alive(self) -> bool:
        return requests.get(f"{self.url}/_sandbox/health", timeout=5).json() == {"status": "ok"}
