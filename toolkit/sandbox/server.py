"""Serving the sandbox with uvicorn: in a background thread (:func:`serve`) or in the
foreground until a signal (:func:`run_forever`, used by ``toolkit sandbox``).

Example:
    >>> SandboxServer("127.0.0.1", 8080, "tok", Knobs()).url
    'http://127.0.0.1:8080'
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from toolkit.core.contract import MAX_BODY_BYTES, MAX_FILE_BYTES

from .app import ABORT_EXTENSION, create_app
from .knobs import Knobs

__all__ = ["SandboxServer", "run_forever", "serve"]

log = logging.getLogger("toolkit.sandbox")


class AbortableH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus a scope extension that closes the connection at once.

    ASGI has no way to say "hang up without answering"; the drop and lose-response knobs
    need exactly that, so the protocol hands the app a callable bound to its transport.
    (Always h11, even if httptools is installed, so this works the same everywhere.)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        inner = self.app

        async def app(scope: Any, receive: Any, send: Any) -> None:
            extensions = scope.get("extensions") or {}
            extensions[ABORT_EXTENSION] = self.abort_connection
            scope["extensions"] = extensions
            await inner(scope, receive, send)

        self.app = app

    def abort_connection(self) -> None:
        """Close the TCP connection now, unanswered; the client sees a reset or a disconnect."""
        if self.cycle is not None:
            # Tell uvicorn the client is gone, so it does not answer 500 for the app's silence.
            self.cycle.disconnected = True
        self.transport.abort()


@dataclass
class SandboxServer:
    """A running sandbox: where it is and how to get in."""

    host: str
    port: int
    token: str
    knobs: Knobs
    _stop: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        if self._stop is not None:
            stop, self._stop = self._stop, None
            stop()


def _config(
    token: str,
    db: str | Path | None,
    knobs: Knobs,
    log_level: str,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_file_bytes: int = MAX_FILE_BYTES,
    paused: bool = False,
) -> uvicorn.Config:
    app = create_app(
        token=token,
        db=db,
        knobs=knobs,
        max_body_bytes=max_body_bytes,
        max_file_bytes=max_file_bytes,
        paused=paused,
    )
    return uvicorn.Config(
        app,
        http=AbortableH11Protocol,
        ws="none",
        lifespan="on",
        log_level=log_level,
        log_config=None,  # never reconfigure the host process's logging
        access_log=False,  # our own access log leaves query strings (and tokens) out
        timeout_graceful_shutdown=3,
        timeout_keep_alive=5,
    )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # Listen now: a client told the URL before uvicorn is up waits in the backlog instead of
    # being refused (uvicorn's own listen() later is harmless).
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@contextlib.contextmanager
def serve(
    port: int = 0,
    token: str | None = None,
    *,
    host: str = "127.0.0.1",
    db: str | Path | None = None,
    seed: int | None = None,
    processing_rate: float | None = None,
    latency_ms: float = 0.0,
    rate_limit: float | None = None,
    fail_rate: float = 0.0,
    drop_rate: float = 0.0,
    lose_response_rate: float = 0.0,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_file_bytes: int = MAX_FILE_BYTES,
    paused: bool = False,
    log_level: str = "warning",
    startup_timeout: float = 15.0,
) -> Iterator[SandboxServer]:
    """Run a sandbox in a background thread for the ``with`` block; yields a :class:`SandboxServer`.

    ``port=0`` picks a free port (read back from the bound socket); ``token=None`` generates
    one. The knobs are those of :class:`~toolkit.sandbox.knobs.Knobs`; ``max_body_bytes``
    and ``max_file_bytes`` lower the body and attachment limits (tests); ``paused`` starts
    the batch worker paused (``POST /_sandbox/step?profiles=N`` moves it on). Example (not run
    as a doctest: it starts a server)::

        with serve(seed=1, processing_rate=50) as sandbox:
            requests.post(sandbox.url + "/api/v1.1/tasks/status",
                          headers={"Authorization": f"Bearer {sandbox.token}"},
                          json={"task_id": "x"})
    """
    knobs = Knobs(
        processing_rate=processing_rate,
        latency_ms=latency_ms,
        rate_limit=rate_limit,
        fail_rate=fail_rate,
        drop_rate=drop_rate,
        lose_response_rate=lose_response_rate,
        seed=seed,
    )
    token = token or secrets.token_urlsafe(24)
    server = uvicorn.Server(_config(token, db, knobs, log_level, max_body_bytes, max_file_bytes, paused))
    sock = _bind(host, port)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{sock.getsockname()[1]}", daemon=True
    )

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    handle = SandboxServer(host, sock.getsockname()[1], token, knobs, stop)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            stop()
            raise RuntimeError(f"the sandbox did not start on {handle.url}")
        time.sleep(0.005)
    try:
        yield handle
    finally:
        handle.stop()


def run_forever(
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    token: str | None = None,
    db: str | Path | None = None,
    knobs: Knobs | None = None,
    log_level: str = "info",
    announce: Callable[[SandboxServer], None] | None = None,
) -> None:
    """Serve in the foreground until Ctrl-C or SIGTERM, then shut down cleanly.

    ``announce`` is called once the socket is bound (with the real port), before serving.
    """
    knobs = knobs or Knobs()
    token = token or secrets.token_urlsafe(24)
    server = uvicorn.Server(_config(token, db, knobs, log_level))
    sock = _bind(host, port)
    handle = SandboxServer(host, sock.getsockname()[1], token, knobs)
    if announce is not None:
        announce(handle)
    # uvicorn re-raises the signal that stopped it, through the handler that was in place
    # before; quiet handlers make that a no-op, so Ctrl-C and SIGTERM both end in a clean exit.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
