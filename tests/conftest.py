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
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

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
def make_sandbox() -> Iterator[Callable[..., SandboxServer]]:
    """A factory: ``make_sandbox(processing_rate=5, seed=1)`` -> a running, dedicated sandbox."""
    with contextlib.ExitStack() as stack:

        def make(**knobs: Any) -> SandboxServer:
            return stack.enter_context(serve(**knobs))

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
