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

__all__ = ["paused_gc"]

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
