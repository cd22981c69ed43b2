"""The sandbox: a local HTTP server that speaks the platform API faithfully.

It backs the demo, the notebooks and every client test. It is an independent
implementation of ``docs/CONTRACT.md``: it imports only :mod:`toolkit.core.contract` from the
rest of the package (its validators are its own), so it can catch the client's mistakes.

Needs the ``sandbox`` extra (fastapi, uvicorn): ``pip install 'toolkit[sandbox]'``.

Start it with ``toolkit sandbox [--host 127.0.0.1] [--port 8080] [--token TOKEN] [--db PATH]
[--seed N] [knobs]`` (prints its URL and token, serves until Ctrl-C or SIGTERM), or from
Python::

    with serve() as sandbox:            # a free port, a generated token, in-memory state
        client = Client(sandbox.url, sandbox.token)

Platform routes (POST; JSON or XML in, answered in the body's ``format``, else in the
request's own format; token as ``Authorization: Bearer`` or the body's ``token``):

- ``/api/v1.1/campaigns/triggers/import_and_start_batch_task``: checks the envelope, answers
  at once with a ``task_id`` and imports the profiles in the background.
- ``/api/v1.1/campaigns/triggers/import_and_start``: one profile, imported before answering
  with its ``profile_id`` (or that profile's error envelope).
- ``/api/v1.1/tasks/status``: ``queued`` -> ``processing`` (``progress`` 0..100) ->
  ``completed`` with one result per profile in input order (``profile_id``, or ``error`` and
  ``error_text``). The XML answer follows the seed's XML example (``captured``, ``errors``,
  ``status``) plus one ``<result>`` per profile.

Errors use the platform's envelope, with the HTTP status equal to ``error``: 400 (bad
body or envelope; over 10 MB gives the seed's exact body), 401 (no token), 403 (wrong
token), 404 (unknown task), 429 (rate limit knob, with ``Retry-After``), 500/502/503
(fail knob). A bad profile (no match key, invalid email/phone/IP/date/subscription) fails
alone with error 400 in the task's results; 409 when it matches several profiles, 404 for
an unknown ``profile_id``.

Inspection routes (not part of the platform; token required except for health):
``GET /_sandbox/sends[?trigger_id=&task_id=]``, ``GET /_sandbox/profiles``,
``GET /_sandbox/tasks``, ``POST /_sandbox/reset``, ``GET /_sandbox/health``. ``/docs`` shows
every route.

Worker control (for tests that must see a task in a given state without racing the clock):
``POST /_sandbox/pause``, ``POST /_sandbox/step?profiles=N`` (import exactly N more
profiles, answer once they are committed, stay paused), ``POST /_sandbox/resume``;
``serve(paused=True)`` starts paused, so every batch task stays ``queued`` until stepped.

State lives in SQLite: in memory by default, in a file with ``db=``/``--db``. With a file,
profiles, tasks and sends survive a restart, and a task left queued or processing resumes
where it stopped (each chunk of profiles commits together with the task's progress, so no
profile is imported or triggered twice).

Realism knobs (keyword arguments of :func:`serve`, CLI flags; off by default; platform
routes only): ``processing_rate`` (profiles per second), ``latency_ms``, ``rate_limit``
(requests per second, then 429), ``fail_rate`` (500/502/503 before doing anything),
``drop_rate`` (connection closed before doing anything), ``lose_response_rate`` (the
request is handled, then the connection is closed instead of answering), ``seed``
(reproducible task ids, profile ids and faults).

Example:
    >>> from toolkit.sandbox import Knobs
    >>> Knobs(processing_rate=100, seed=7).faulty
    False
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from .knobs import Knobs

if TYPE_CHECKING:
    from .app import create_app
    from .server import SandboxServer, serve

__all__ = ["Knobs", "SandboxServer", "create_app", "require_server", "serve"]


def require_server(feature: str = "the local sandbox (toolkit.sandbox)") -> None:
    """Check that the server's packages (the ``sandbox`` extra) are installed, else raise an
    ``ImportError`` saying which extra to install. (The sandbox shares nothing of the toolkit
    but the contract, so this is its own small twin of ``toolkit.errors.require_extra``.)

    Example:
        >>> require_server()  # fastapi and uvicorn are there
    """
    missing = []
    for module in ("fastapi", "uvicorn"):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a broken or blocked installation counts as missing
            found = False
        if not found:
            missing.append(module)
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise ModuleNotFoundError(
            f"{feature} needs the 'sandbox' extra ({', '.join(missing)} {verb} not installed): "
            "pip install 'toolkit[sandbox]'",
            name=missing[0],
        )


def __getattr__(name: str) -> Any:
    """The server side, imported on first use: a core install (no ``sandbox`` extra) can
    import this package, and the ``toolkit`` command register its ``sandbox`` sub-command."""
    if name not in ("SandboxServer", "create_app", "serve"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    require_server()
    from . import app, server

    return {"SandboxServer": server.SandboxServer, "create_app": app.create_app, "serve": server.serve}[name]
