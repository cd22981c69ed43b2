"""Leases: which live process is sending a launch, so no other process relabels or re-sends it.

A process sending a launch's batches (``client.launch``, ``launch.resend_unknown()``) holds
the launch's lease in the journal: its process id, host name, and a heartbeat time it
refreshes every :data:`LEASE_HEARTBEAT` seconds while it works (:class:`Heartbeat`). Any other
process that opens the launch meanwhile (``client.resume``, ``toolkit status`` / ``resume``, a
re-launch, the launch form) sees a live lease and stays read-only: it shows progress, never
turns the holder's in-flight batches into ``unknown`` and never sends.

A lease is taken over only when its holder is provably gone (:meth:`Lease.gone`):

* it ran on this host and its process no longer exists, or
* its heartbeat is older than :data:`LEASE_TIMEOUT` seconds (a holder on another host, a
  frozen or suspended machine, a process id reused by another program).

Example:
    >>> lease = Lease("l1", owner="o1", pid=os.getpid(), hostname=HOSTNAME, heartbeat=1000.0, taken=990.0)
    >>> lease.gone(now=1010.0) is None             # this very process, heartbeat 10 s ago: alive
    True
    >>> lease.gone(now=1000.0 + LEASE_TIMEOUT + 1)
    'its last heartbeat was 61 s ago (more than 60 s)'
    >>> lease.describe(now=1003.0).endswith("(last heartbeat 3 s ago)")
    True
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = ["HOSTNAME", "LEASE_HEARTBEAT", "LEASE_TIMEOUT", "Heartbeat", "Lease", "process_exists"]

log = logging.getLogger("toolkit.send.lease")

#: Seconds without a heartbeat after which a lease's holder counts as gone, wherever it ran.
LEASE_TIMEOUT: Final = 60.0
#: Seconds between two heartbeats of a sending process (a sixth of the timeout: a heartbeat
#: delayed by a busy machine or a locked journal does not lose the lease).
LEASE_HEARTBEAT: Final = 10.0
#: This machine's name, as leases record it.
HOSTNAME: Final = socket.gethostname()


def process_exists(pid: int) -> bool:
    """True unless process ``pid`` provably does not exist on this machine.

    Example:
        >>> process_exists(os.getpid())
        True
    """
    if os.name == "nt":  # os.kill would terminate it there: no cheap probe, the heartbeat decides
        return True
    try:
        os.kill(pid, 0)  # signal 0: an existence check, nothing is sent
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, under another user
        return True
    return True


@dataclass(frozen=True)
class Lease:
    """Who sends a launch: ``owner`` (one send session's id), its process and host, and times
    (seconds since the epoch: processes on other hosts compare them too)."""

    launch_id: str
    owner: str
    pid: int
    hostname: str
    heartbeat: float
    taken: float

    def gone(self, *, timeout: float = LEASE_TIMEOUT, now: float | None = None) -> str | None:
        """Why the holder is provably gone, or ``None`` while it may still be sending."""
        now = time.time() if now is None else now
        age = now - self.heartbeat
        if age > timeout:
            return f"its last heartbeat was {age:.0f} s ago (more than {timeout:.0f} s)"
        if self.hostname == HOSTNAME and not process_exists(self.pid):
            return f"process {self.pid} no longer exists on {self.hostname}"
        return None

    def describe(self, *, now: float | None = None) -> str:
        """The holder in words, e.g. ``process 4242 on host-a (last heartbeat 3 s ago)``."""
        age = max(0.0, (time.time() if now is None else now) - self.heartbeat)
        return f"process {self.pid} on {self.hostname} (last heartbeat {age:.0f} s ago)"


class Heartbeat:
    """A daemon thread calling ``renew()`` every ``interval`` seconds until :meth:`stop`.

    ``renew`` returns False when the lease is no longer this holder's (taken over after this
    process stood still too long): the heartbeat then stops and :attr:`lost` is set. An error
    in ``renew`` (a journal locked for a moment) is logged and tried again next time.

    Example:
        >>> beats = []
        >>> with Heartbeat(lambda: beats.append(1) or len(beats) < 2, interval=0.001) as hb:
        ...     hb.lost.wait(5)
        True
        >>> len(beats)
        2
    """

    def __init__(self, renew: Callable[[], bool], *, interval: float = LEASE_HEARTBEAT) -> None:
        self._renew = renew
        self._interval = interval
        self._stopped = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name="toolkit-lease", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                kept = self._renew()
            except Exception as exc:  # a journal busy for a moment: the next beat tries again
                log.warning("lease heartbeat not written (tried again in %g s): %s", self._interval, exc)
                continue
            if not kept:
                self.lost.set()
                return
