"""Pausing Python's cyclic garbage collector around the sandbox's bulk work.

Parsing a 10 MB body makes ~50,000 dicts and lists, importing its profiles as many again, and
the store keeps them: every 700 new containers the collector runs, and every so often it walks
every object the store holds. Measured on a 100,000-profile launch, collections took more than
half of the sandbox's CPU (12,900 profiles/s with them, 33,900/s without). None of these objects
form reference cycles (JSON cannot make one), so there is nothing for the collector to find in
them; it is paused while a body is parsed or a chunk imported, and runs as usual in between.

The pause is process-wide (the collector is), so it is counted: the first of several threads to
enter pauses it, the last to leave restores it, and a collector that was already off stays off.
Reference counting, which frees all of these objects, is never affected.

Example:
    >>> import gc
    >>> with paused_gc():
    ...     gc.isenabled()
    False
    >>> gc.isenabled()
    True
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["freeze_parsed", "paused_gc", "thaw_when_idle"]

_lock = threading.Lock()
_holders = 0
_was_enabled = False


@contextmanager
def paused_gc() -> Iterator[None]:
    """Keep the cyclic collector off for the block (re-entrant and thread-safe)."""
    global _holders, _was_enabled
    with _lock:
        if _holders == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _was_enabled:
                gc.enable()


_frozen_since_idle = False


def freeze_parsed() -> None:
    """Put every object tracked so far, a just-parsed body's included, out of the collector's
    reach (``gc.freeze``: constant time), until :func:`thaw_when_idle`.

    The body of a bulk task (2,000 profiles or more, no processing rate: engine.py) stays alive,
    untouched, until its task is over: tens of thousands of acyclic containers that every young collection in between
    walked again (measured: ~10% of the sandbox's CPU during a million-profile launch).
    Reference counting still frees them the moment their task lets go of them.
    """
    global _frozen_since_idle
    with _lock:
        gc.freeze()
        _frozen_since_idle = True


def thaw_when_idle() -> None:
    """Once the work is done: a full collection of what :func:`freeze_parsed` kept out of reach
    (any cycle made meanwhile is found now), then everything alive frozen again, as the
    sandbox's process keeps what it loaded (server.py). Nothing to do without a freeze."""
    global _frozen_since_idle
    with _lock:
        if not _frozen_since_idle:
            return
        _frozen_since_idle = False
        gc.unfreeze()
        gc.collect()
        gc.freeze()
