"""Where a launch goes, said before anything is sent: the toolkit's sandbox or the platform.

The sandbox marks every answer with the ``X-Toolkit-Sandbox: 1`` header
(:data:`toolkit.core.contract.SANDBOX_HEADER`); the platform never does. A client learns it
from any answer, or asks once (:meth:`~toolkit.send.transport.Transport.probe`); a host that
cannot be reached counts as the platform, the safe side.

The guided notebooks, ``make demo``, ``make lab`` and ``make app`` use a sandbox even when
``TOOLKIT_API_URL`` points at the platform, unless ``TOOLKIT_USE_REAL_PLATFORM=1`` is set
(:func:`real_platform_allowed`).

Example:
    >>> class Known:
    ...     base_url, sandbox = "http://127.0.0.1:8080", True
    >>> target_label(Known(), ask=False)
    'SANDBOX at 127.0.0.1:8080'
    >>> Known.sandbox = None
    >>> target_label(Known(), ask=False)
    'PLATFORM at 127.0.0.1:8080'
    >>> real_platform_allowed({"TOOLKIT_USE_REAL_PLATFORM": "1"}), real_platform_allowed({})
    (True, False)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from toolkit.send.transport import Transport

__all__ = ["ENV_USE_REAL_PLATFORM", "real_platform_allowed", "target_label", "url_is_sandbox"]

#: Set to ``1`` to let the notebooks, ``make lab`` and ``make app`` reach the platform that
#: ``TOOLKIT_API_URL`` names; without it they start a local sandbox instead.
ENV_USE_REAL_PLATFORM: Final = "TOOLKIT_USE_REAL_PLATFORM"


def real_platform_allowed(environ: Mapping[str, str] | None = None) -> bool:
    """True when the user asked the guided tools to reach the real platform (``=1``/``true``/``yes``)."""
    env = os.environ if environ is None else environ
    return env.get(ENV_USE_REAL_PLATFORM, "").strip().lower() in ("1", "true", "yes")


def target_label(client: Any, *, ask: bool = True) -> str:
    """``"SANDBOX at 127.0.0.1:PORT"`` or ``"PLATFORM at host"``: where ``client`` sends.

    ``ask`` lets a client that has had no answer yet ask once (one small request); without
    it (a ``repr``) an unknown target is named the platform. The words differ on purpose:
    every launch surface shows them before anything is sent.
    """
    where = urlsplit(str(getattr(client, "base_url", ""))).netloc or str(getattr(client, "host", "?"))
    if ask and callable(getattr(client, "is_sandbox", None)):
        sandbox = bool(client.is_sandbox())
    else:
        sandbox = getattr(client, "sandbox", None) is True
    return f"{'SANDBOX' if sandbox else 'PLATFORM'} at {where}"


def url_is_sandbox(url: str, token: str) -> bool:
    """Whether the server at ``url`` is the toolkit's sandbox (one request; unreachable: no).

    Example (needs a server)::

        url_is_sandbox(os.environ["TOOLKIT_API_URL"], os.environ["TOOLKIT_API_TOKEN"])
    """
    transport = Transport(url.rstrip("/"), token, timeout=5.0)
    try:
        return transport.probe()
    finally:
        transport.close()
