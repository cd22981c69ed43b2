"""Shared fixtures: the session's sandbox, and dedicated sandboxes with knobs.

- ``sandbox``: the one started in the root ``conftest.py`` (``.url``, ``.token``), reset to an
  empty state before each test that uses it.
- ``make_sandbox(**knobs)``: starts a dedicated server for the test (any keyword argument of
  :func:`toolkit.sandbox.serve`), stopped when the test ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from toolkit.sandbox import SandboxServer, serve


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
