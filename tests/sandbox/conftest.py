"""Fixtures of the sandbox tests: ``api`` (shared sandbox) and ``make_api`` (dedicated one)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sandbox_helpers import Api

from toolkit.sandbox import SandboxServer


@pytest.fixture
def api(sandbox: SandboxServer) -> Api:
    """An :class:`Api` on the shared (freshly reset) sandbox."""
    return Api(sandbox)


@pytest.fixture
def make_api(make_sandbox: Callable[..., SandboxServer]) -> Callable[..., Api]:
    """``make_api(**knobs)``: an :class:`Api` on a dedicated sandbox."""
    return lambda **knobs: Api(make_sandbox(**knobs))
