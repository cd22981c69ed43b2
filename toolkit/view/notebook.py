"""Notebook set-up: one call gives a :class:`~toolkit.send.client.Client`, on the platform or a sandbox.

:func:`connect` reads ``TOOLKIT_API_URL`` / ``TOOLKIT_API_TOKEN``: when both are set it
talks to that platform (the real one, or the test session's sandbox). Otherwise it starts
a local sandbox in the background, once per kernel, for the kernel's life, and points
the environment at it (so ``Client.from_env()`` and :class:`~toolkit.view.widgets.LaunchForm`
find it too). Sandbox launches are journalled in a temporary file, not in your real
journal, unless ``TOOLKIT_JOURNAL`` says otherwise.

Example:
    >>> import os
    >>> saved = {k: os.environ.pop(k, None) for k in ("TOOLKIT_API_URL", "TOOLKIT_API_TOKEN")}
    >>> describe({"TOOLKIT_API_URL": "https://api.example.com", "TOOLKIT_API_TOKEN": "t"})
    'the platform at https://api.example.com'
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

if TYPE_CHECKING:
    from toolkit.sandbox import SandboxServer

__all__ = ["connect", "describe", "sandbox"]

_ENV_JOURNAL = "TOOLKIT_JOURNAL"
_lock = threading.Lock()
_stack: contextlib.ExitStack | None = None
_server: SandboxServer | None = None


def describe(environ: Mapping[str, str] | None = None) -> str:
    """Where :func:`connect` goes, in words (never the token)."""
    env = os.environ if environ is None else environ
    if env.get(ENV_URL, "").strip() and env.get(ENV_TOKEN, "").strip():
        if _server is not None and env.get(ENV_URL) == _server.url:
            return f"the local sandbox at {_server.url}"
        return f"the platform at {env[ENV_URL].strip()}"
    return "a local sandbox (started on first connect())"


def sandbox() -> SandboxServer | None:
    """The sandbox :func:`connect` started in this kernel, if it did."""
    return _server


def connect(*, verbose: bool = False, **knobs: Any) -> Client:
    """A Client: from the environment when ``TOOLKIT_API_URL`` and ``TOOLKIT_API_TOKEN`` are
    set, else on a local sandbox started now (once per kernel, stopped when it exits).

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
        if not (url and token) and _server is None:
            from toolkit.sandbox import serve

            stack = contextlib.ExitStack()
            server = stack.enter_context(serve(**knobs))
            atexit.register(stack.close)
            _stack, _server = stack, server
            os.environ[ENV_URL] = server.url
            os.environ[ENV_TOKEN] = server.token
            if not os.environ.get(_ENV_JOURNAL):
                folder = Path(tempfile.mkdtemp(prefix="toolkit-notebook-"))
                os.environ[_ENV_JOURNAL] = str(folder / "journal.sqlite")
        client = Client.from_env()
    if verbose:
        print(f"Connected to {describe()}.")
    return client
