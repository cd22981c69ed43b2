"""Notebook set-up: one call gives a :class:`~toolkit.send.client.Client`, on a sandbox unless asked otherwise.

:func:`connect` reads ``TOOLKIT_API_URL`` / ``TOOLKIT_API_TOKEN``. When both name a toolkit
sandbox (the test session's, ``make lab``'s) it talks to it. When they name anything else
(the real platform), it does so only if ``TOOLKIT_USE_REAL_PLATFORM=1`` is set too: the
guided notebooks launch the bundled sample, and must not reach real people because the
environment happens to point at production. Otherwise it starts a local sandbox in the
background, once per kernel, for the kernel's life, and points the environment at it (so
``Client.from_env()`` and :class:`~toolkit.view.widgets.LaunchForm` find it too). Sandbox
launches are journalled in a temporary file, not in your real journal, unless
``TOOLKIT_JOURNAL`` says otherwise.

Example:
    >>> import os
    >>> saved = {k: os.environ.pop(k, None) for k in ("TOOLKIT_API_URL", "TOOLKIT_API_TOKEN")}
    >>> describe({"TOOLKIT_API_URL": "https://api.example.com", "TOOLKIT_API_TOKEN": "t",
    ...           "TOOLKIT_USE_REAL_PLATFORM": "1"})
    'the platform at https://api.example.com'
    >>> describe({"TOOLKIT_API_URL": "https://api.example.com", "TOOLKIT_API_TOKEN": "t"})
    'a local sandbox (started on first connect(): TOOLKIT_USE_REAL_PLATFORM is not set)'
    >>> describe({})
    'a local sandbox (started on first connect())'
    >>> os.environ.update({k: v for k, v in saved.items() if v is not None})
"""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.send.client import ENV_TOKEN, ENV_URL, Client
from toolkit.send.target import ENV_USE_REAL_PLATFORM, real_platform_allowed, url_is_sandbox

if TYPE_CHECKING:
    from toolkit.sandbox import SandboxServer

__all__ = ["connect", "describe", "sandbox"]

_ENV_JOURNAL = "TOOLKIT_JOURNAL"
_lock = threading.Lock()
_stack: contextlib.ExitStack | None = None
_server: SandboxServer | None = None


def describe(environ: Mapping[str, str] | None = None) -> str:
    """Where :func:`connect` goes, in words (never the token; no request is made: a URL that
    may be a sandbox is named as the platform unless it is this kernel's own)."""
    env = os.environ if environ is None else environ
    if env.get(ENV_URL, "").strip() and env.get(ENV_TOKEN, "").strip():
        if _server is not None and env.get(ENV_URL) == _server.url:
            return f"the local sandbox at {_server.url}"
        if real_platform_allowed(env):
            return f"the platform at {env[ENV_URL].strip()}"
        return f"a local sandbox (started on first connect(): {ENV_USE_REAL_PLATFORM} is not set)"
    return "a local sandbox (started on first connect())"


def sandbox() -> SandboxServer | None:
    """The sandbox :func:`connect` started in this kernel, if it did."""
    return _server


def connect(*, verbose: bool = False, **knobs: Any) -> Client:
    """A Client: from the environment when ``TOOLKIT_API_URL`` and ``TOOLKIT_API_TOKEN`` name a
    toolkit sandbox, or the platform with ``TOOLKIT_USE_REAL_PLATFORM=1``; else on a local
    sandbox started now (once per kernel, stopped when it exits), the environment pointed at it.

    Args:
        verbose: print where the client points (the URL, never the token).
        **knobs: :func:`toolkit.sandbox.serve` knobs for the embedded sandbox
            (``processing_rate=``, ``fail_rate=``, ``seed=``, ...); ignored for a platform.

    Example (starts a server)::

        client = toolkit.view.notebook.connect()
        client.launch(plan)
    """
    global _stack, _server
    with _lock:
        url, token = os.environ.get(ENV_URL, "").strip(), os.environ.get(ENV_TOKEN, "").strip()
        configured = bool(url and token) and (real_platform_allowed() or url_is_sandbox(url, token))
        if url and token and not configured:
            print(f"{ENV_URL} points at {url}, which is not a toolkit sandbox: these notebooks use a local sandbox "
                  f"instead (set {ENV_USE_REAL_PLATFORM}=1 to reach that platform).")  # fmt: skip
        if not configured and _server is None:
            from toolkit.sandbox import serve

            stack = contextlib.ExitStack()
            server = stack.enter_context(serve(**knobs))
            atexit.register(stack.close)
            _stack, _server = stack, server
            if not os.environ.get(_ENV_JOURNAL):
                folder = Path(tempfile.mkdtemp(prefix="toolkit-notebook-"))
                os.environ[_ENV_JOURNAL] = str(folder / "journal.sqlite")
        if not configured:
            assert _server is not None
            os.environ[ENV_URL], os.environ[ENV_TOKEN] = _server.url, _server.token
        client = Client.from_env()
    if verbose:
        print(f"Connected to {describe()}.")
    return client
