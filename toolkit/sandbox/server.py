"""Serving the sandbox with uvicorn: in a background thread (:func:`serve`) or in the
foreground until a signal (:func:`run_forever`, used by ``toolkit sandbox``).

Example:
    >>> SandboxServer("127.0.0.1", 8080, "tok", Knobs()).url
    'http://127.0.0.1:8080'
"""

from __future__ import annotations

import contextlib
import gc
import json
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

from .app import ABORT_EXTENSION, DEFAULT_BODY_TIMEOUT, create_app
from .catalog import CatalogData, CatalogError, load_catalog
from .knobs import Knobs, Variant

__all__ = ["SandboxServer", "Setup", "read_catalog", "run_forever", "serve"]

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


@dataclass(frozen=True)
class Setup:
    """How a sandbox behaves beyond its knobs: catalog, matching, body timeout, limits, gate."""

    catalog: CatalogData | None = None
    strict_catalog: bool = False
    allow_undocumented_matching: bool = False
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    max_body_bytes: int = MAX_BODY_BYTES
    max_file_bytes: int = MAX_FILE_BYTES
    paused: bool = False
    #: Large tasks checked in a second process (create_app's ``two_processes``; ``toolkit
    #: sandbox --two-processes``).
    two_processes: bool = False


def read_catalog(catalog: CatalogData | dict[str, Any] | str | Path | None) -> CatalogData | None:
    """A catalog given as data, a parsed JSON document, or a JSON file's path (None: the default).

    Raises :class:`~toolkit.sandbox.catalog.CatalogError` naming the file and what is wrong.
    """
    if catalog is None or isinstance(catalog, CatalogData):
        return catalog
    if isinstance(catalog, dict):
        return load_catalog(catalog)
    path = Path(catalog)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CatalogError(f"{path}: cannot read the catalog: {exc}") from None
    return load_catalog(document, str(path))


def _config(token: str, db: str | Path | None, knobs: Knobs, log_level: str, setup: Setup) -> uvicorn.Config:
    app = create_app(
        token=token,
        db=db,
        knobs=knobs,
        max_body_bytes=setup.max_body_bytes,
        max_file_bytes=setup.max_file_bytes,
        paused=setup.paused,
        catalog=setup.catalog,
        strict_catalog=setup.strict_catalog,
        allow_undocumented_matching=setup.allow_undocumented_matching,
        body_timeout=setup.body_timeout,
        two_processes=setup.two_processes,
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
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY on a connection only when its socket says
    # proto 6 (a plain socket says 0); without it every small answer (a task id, a status
    # "processing", a catalog read) waited ~40 ms for the client's delayed ACK (Nagle)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
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
    variant: Variant = "standard",
    captured: int | None = None,
    catalog: CatalogData | dict[str, Any] | str | Path | None = None,
    strict_catalog: bool = False,
    allow_undocumented_matching: bool = False,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_file_bytes: int = MAX_FILE_BYTES,
    paused: bool = False,
    two_processes: bool = False,
    log_level: str = "warning",
    startup_timeout: float = 15.0,
) -> Iterator[SandboxServer]:
    """Run a sandbox in a background thread for the ``with`` block; yields a :class:`SandboxServer`.

    ``port=0`` picks a free port (read back from the bound socket); ``token=None`` generates
    one. The knobs are those of :class:`~toolkit.sandbox.knobs.Knobs` (``variant`` answers as
    one documented form of the platform: ``nested_task_id``, ``short_result`` with ``captured``,
    ``error_in_200``, ``body_token_only``); ``catalog`` replaces the default catalog (a
    :class:`~toolkit.sandbox.catalog.CatalogData`, its JSON document, or a JSON file's path);
    ``strict_catalog`` refuses unknown trigger ids (404) instead of registering them;
    ``allow_undocumented_matching`` accepts the six matching modes the batch method's page does
    not list; ``body_timeout`` (seconds) drops a stalled upload with 408; ``max_body_bytes``
    and ``max_file_bytes`` lower the body and attachment limits (tests); ``paused`` starts
    the batch worker paused (``POST /_sandbox/step?profiles=N`` moves it on); ``two_processes``
    checks large tasks' profiles in a second process (``toolkit sandbox --two-processes``). Example (not run
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
        variant=variant,
        captured=captured,
    )
    setup = Setup(
        read_catalog(catalog),
        strict_catalog,
        allow_undocumented_matching,
        body_timeout,
        max_body_bytes,
        max_file_bytes,
        paused,
        two_processes,
    )
    token = token or secrets.token_urlsafe(24)
    server = uvicorn.Server(_config(token, db, knobs, log_level, setup))
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
    setup: Setup | None = None,
    log_level: str = "info",
    announce: Callable[[SandboxServer], None] | None = None,
) -> None:
    """Serve in the foreground until Ctrl-C or SIGTERM, then shut down cleanly.

    ``announce`` is called once the socket is bound (with the real port), before serving.
    """
    knobs = knobs or Knobs()
    token = token or secrets.token_urlsafe(24)
    server = uvicorn.Server(_config(token, db, knobs, log_level, setup or Setup()))
    sock = _bind(host, port)
    handle = SandboxServer(host, sock.getsockname()[1], token, knobs)
    if announce is not None:
        announce(handle)
    # uvicorn re-raises the signal that stopped it, through the handler that was in place
    # before; quiet handlers make that a no-op, so Ctrl-C and SIGTERM both end in a clean exit.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    thresholds = gc.get_threshold()
    # The process is the sandbox's: what is loaded by now (FastAPI, pydantic, polars: ~10^5
    # objects) lives for ever, so the collector stops walking it; it runs once per 50,000 new
    # containers instead of 700, and walks everything once per 100 of those rounds instead of
    # 10. Queued bodies are hundreds of thousands of acyclic dicts and lists (gc_pause.py); at
    # the default pace the collector took ~30% of the CPU.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    try:
        server.run(sockets=[sock])
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
