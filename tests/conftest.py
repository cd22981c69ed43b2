"""Shared fixtures: the session's sandbox, and dedicated sandboxes with knobs.

- ``sandbox``: the one started in the root ``conftest.py`` (``.url``, ``.token``), reset to an
  empty state before each test that uses it.
- ``make_sandbox(**knobs)``: starts a dedicated server for the test (any keyword argument of
  :func:`toolkit.sandbox.serve`), stopped when the test ends.
- ``sb``: the same as ``sandbox``, under the short name the client and launch tests use.
- ``isolated_journal``: points ``TOOLKIT_JOURNAL`` at the test's own ``journal.sqlite`` in
  ``tmp_path``. Not autouse: a module opts in with
  ``pytestmark = pytest.mark.usefixtures("isolated_journal")``.
- ``make_client(server, **kwargs)``: a :class:`toolkit.send.client.Client` for ``server`` (anything
  with ``.url`` and ``.token``), its journal the test's ``tmp_path / "journal.sqlite"`` unless
  ``journal=`` is given; other keyword arguments go to ``Client``.
- ``make_gateway(server, *actions)``: a forwarding gateway (a reverse proxy) in front of
  ``server``; each platform POST takes the next action (:class:`Gateway`), then it forwards.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
import requests

from toolkit.core.contract import BATCH_PATH, SANDBOX_HEADER, SINGLE_PATH, STATUS_PATH
from toolkit.sandbox import SandboxServer, serve
from toolkit.send.client import Client


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Iterator[SandboxServer]:
    """The shared session sandbox, emptied first."""
    shared: SandboxServer | None = getattr(request.config, "toolkit_sandbox", None)
    with contextlib.ExitStack() as stack:
        if shared is None:  # root conftest not loaded (e.g. run from elsewhere): start one here
            shared = stack.enter_context(serve())
        answer = requests.post(
            f"{shared.url}/_sandbox/reset", headers={"Authorization": f"Bearer {shared.token}"}, timeout=10
        )
        answer.raise_for_status()
        yield shared


@pytest.fixture
def make_sandbox(request: pytest.FixtureRequest) -> Iterator[Callable[..., SandboxServer]]:
    """A factory: ``make_sandbox(processing_rate=5, seed=1)`` -> a running, dedicated sandbox
    (with its second process under ``pytest --sandbox-two-processes``, unless told)."""
    two_processes = bool(request.config.getoption("--sandbox-two-processes", default=False))
    with contextlib.ExitStack() as stack:

        def make(**knobs: Any) -> SandboxServer:
            return stack.enter_context(serve(**{"two_processes": two_processes, **knobs}))

        yield make


@pytest.fixture
def sb(sandbox: SandboxServer) -> SandboxServer:
    """The session's shared sandbox, emptied for this test (an alias of ``sandbox``)."""
    return sandbox


@pytest.fixture
def isolated_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's real journal from a test: ``TOOLKIT_JOURNAL`` -> ``tmp_path``."""
    monkeypatch.setenv("TOOLKIT_JOURNAL", str(tmp_path / "journal.sqlite"))


@pytest.fixture
def make_client(tmp_path: Path) -> Callable[..., Client]:
    """A factory: ``make_client(server, rate_limit=8)`` -> a ``Client`` journaling in ``tmp_path``."""

    def make(server: Any, **kwargs: Any) -> Client:
        kwargs.setdefault("journal", tmp_path / "journal.sqlite")
        return Client(server.url, server.token, **kwargs)

    return make


GatewayAction = Literal[
    "forward", "forward-then-504", "forward-then-502", "503-retry-after", "503", "502", "hold"
]


@dataclass
class Gateway:
    """A reverse proxy in front of a sandbox, as companies put in front of APIs.

    Each POST to a platform route (``/api/...``) takes the next of ``actions``; once they are
    spent it forwards. ``forward-then-504`` / ``forward-then-502``: the request reaches the
    platform, which handles it, and the gateway answers 504 / 502 instead of its answer (it
    gave up waiting). ``503-retry-after``: answered at once, ``Retry-After: 0``, not forwarded;
    ``503`` and ``502``: answered at once, not forwarded. ``hold``: sets ``holding``, waits
    for ``release`` (a test's "now"), then forwards: the client stays mid-request meanwhile.
    ``posts`` records ``(path, action)``.
    """

    upstream: str
    actions: list[GatewayAction]
    url: str = ""
    posts: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def next_action(self, path: str) -> str:
        # the scripted actions are for sends and status reads; catalog reads (a launch's preflight)
        # and anything else pass straight through, so a script is not spent on them
        scripted = path.rstrip("/") in (BATCH_PATH, SINGLE_PATH, STATUS_PATH)
        with self.lock:
            action = self.actions.pop(0) if scripted and self.actions else "forward"
            self.posts.append((path, action))
            return action


def _gateway_handler(gateway: Gateway) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            action = gateway.next_action(self.path)
            if action == "hold":
                gateway.holding.set()
                gateway.release.wait(120)
            if action in ("503", "502", "503-retry-after"):
                extra = {"Retry-After": "0"} if action == "503-retry-after" else {}
                return self._answer(int(action[:3]), b"<html>gateway says no</html>", "text/html", extra)
            forwarded = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            answer = requests.post(gateway.upstream + self.path, data=body, headers=forwarded, timeout=30)
            if action.startswith("forward-then-"):
                return self._answer(int(action[-3:]), b"<html>Gateway Timeout</html>", "text/html")
            # a proxy passes the platform's own headers on (the sandbox's mark among them)
            passed = {k: v for k, v in answer.headers.items() if k.lower() == SANDBOX_HEADER.lower()}
            self._answer(
                answer.status_code, answer.content, answer.headers.get("Content-Type", "text/plain"), passed
            )

        def _answer(
            self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def make_gateway() -> Iterator[Callable[..., Gateway]]:
    """A factory: ``make_gateway(server, "forward-then-504")`` -> a running :class:`Gateway`."""
    with contextlib.ExitStack() as stack:

        def make(server: Any, *actions: GatewayAction) -> Gateway:
            gateway = Gateway(server.url, list(actions))
            httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _gateway_handler(gateway))
            thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            stack.callback(httpd.server_close)
            stack.callback(httpd.shutdown)
            stack.callback(gateway.release.set)  # first of all: never leave a request held past the test
            gateway.url = f"http://127.0.0.1:{httpd.server_address[1]}"
            return gateway

        yield make
