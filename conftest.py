"""Session-wide set-up: one shared sandbox for every test and every notebook.

``pytest_sessionstart`` starts it and exports ``TOOLKIT_API_URL`` / ``TOOLKIT_API_TOKEN`` in
``os.environ`` (notebook kernels that nbval starts later inherit them; pytest fixtures never
reach those kernels), and points ``TOOLKIT_JOURNAL`` at a temporary file. Tests always talk
to this local sandbox: the variables are overridden inside the test process only, and put
back when the session ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

_ENV_NAMES = ("TOOLKIT_API_URL", "TOOLKIT_API_TOKEN", "TOOLKIT_JOURNAL")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--sandbox-two-processes",
        action="store_true",
        help="run every test sandbox with its second process (toolkit sandbox --two-processes)",
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    from toolkit.sandbox import serve

    config = session.config
    stack = contextlib.ExitStack()
    sandbox = stack.enter_context(serve(two_processes=config.getoption("--sandbox-two-processes")))
    journal_dir = Path(tempfile.mkdtemp(prefix="toolkit-test-journal-"))
    stack.callback(shutil.rmtree, journal_dir, ignore_errors=True)
    saved = {name: os.environ.get(name) for name in _ENV_NAMES}
    os.environ["TOOLKIT_API_URL"] = sandbox.url
    os.environ["TOOLKIT_API_TOKEN"] = sandbox.token
    os.environ["TOOLKIT_JOURNAL"] = str(journal_dir / "journal.sqlite")
    # tests/conftest.py's `sandbox` fixture reads these two attributes.
    config.toolkit_sandbox = sandbox  # type: ignore[attr-defined]
    config.toolkit_session_stack = stack  # type: ignore[attr-defined]
    config.toolkit_saved_env = saved  # type: ignore[attr-defined]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    stack = getattr(config, "toolkit_session_stack", None)
    if stack is None:
        return
    for name, value in config.toolkit_saved_env.items():  # type: ignore[attr-defined]
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    stack.close()
    config.toolkit_session_stack = None  # type: ignore[attr-defined]
