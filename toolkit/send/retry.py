"""Retry policy and client-side rate limiting for the HTTP client.

Two small, thread-safe pieces the :class:`toolkit.Client` is built on:

* :class:`Backoff`: bounded exponential backoff with full jitter, honouring a server's
  ``Retry-After`` when one is given.
* :class:`TokenBucket`: a token bucket shared by every request of a client (batch sends
  and status polls of all its launches), so ``rate_limit`` is one budget, not one per
  thread.

Example:
    >>> b = Backoff(base=0.5, cap=4.0, jitter=False)
    >>> [b.delay(n) for n in range(5)]
    [0.5, 1.0, 2.0, 4.0, 4.0]
    >>> bucket = TokenBucket(rate=1000)
    >>> bucket.acquire() >= 0.0
    True
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = ["Backoff", "RetryNotice", "TokenBucket", "parse_retry_after"]

#: A ``Retry-After`` longer than this is capped: a launch should not sleep for an hour
#: on one header; the attempt budget still bounds the whole wait.
MAX_RETRY_AFTER = 60.0


@dataclass(frozen=True)
class Backoff:
    """Delays between attempts: ``min(cap, base * 2**attempt)``, jittered.

    Full jitter (a uniform draw in ``[0, delay]``) spreads the retries of concurrent
    senders so they do not hit a recovering server in lock-step. The draw is never
    below ``base / 2`` so a retry never fires instantly.

    Example:
        >>> Backoff(base=1.0, cap=8.0, jitter=False).delay(10)
        8.0
        >>> 0.25 <= Backoff(base=0.5, cap=8.0).delay(0) <= 0.5
        True
        >>> Backoff(jitter=False).delay(0, retry_after=3.0)
        3.0
    """

    base: float = 0.5
    cap: float = 8.0
    jitter: bool = True
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to sleep before retry number ``attempt + 1`` (``attempt`` is 0-based).

        A server's ``retry_after`` wins over the computed delay (capped at
        :data:`MAX_RETRY_AFTER`): the server knows when it will have room.
        """
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, MAX_RETRY_AFTER)
        delay = min(self.cap, self.base * (2 ** max(0, attempt)))
        if self.jitter:
            delay = self.rng.uniform(min(delay, self.base / 2), delay)
        return delay


@dataclass(frozen=True)
class RetryNotice:
    """A retry about to happen, for whoever follows the call (``on_retry=``): what went wrong,
    which retry of how many, and the wait before it. ``str()`` is a sentence for people.

    Example:
        >>> str(RetryNotice("the platform is not answering", retry=2, of=5, delay=4.0))
        'the platform is not answering: retry 2 of 5 in 4 s'
        >>> str(RetryNotice("the platform is busy (HTTP 503)", retry=1, of=5, delay=0.25))
        'the platform is busy (HTTP 503): retry 1 of 5 in 0.2 s'
    """

    what: str
    retry: int
    of: int
    delay: float

    def __str__(self) -> str:
        seconds = f"{self.delay:.1f}".removesuffix(".0")
        return f"{self.what}: retry {self.retry} of {self.of} in {seconds} s"


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as seconds, or ``None``.

    Example:
        >>> parse_retry_after("2"), parse_retry_after("0.5"), parse_retry_after(None)
        (2.0, 0.5, None)
        >>> parse_retry_after("Wed, 21 Oct 2015 07:28:05 GMT",
        ...                   now=datetime(2015, 10, 21, 7, 28, tzinfo=UTC))
        5.0
        >>> parse_retry_after("soon") is None
        True
    """
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class TokenBucket:
    """A thread-safe token bucket: at most ``rate`` acquisitions per second on average,
    with bursts of up to ``burst`` (default: one second's worth, at least 1).

    ``acquire()`` blocks until a token is free and returns the seconds it waited.

    Example:
        >>> bucket = TokenBucket(rate=50, burst=1)
        >>> _ = bucket.acquire()
        >>> 0.0 < bucket.acquire() <= 0.05
        True
    """

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0 requests per second, got {rate!r}")
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else max(1.0, self.rate)
        self._tokens = self.burst
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def _reserve(self) -> float:
        """Take a token (possibly going into debt) and return how long to wait for it.

        Reserving under the lock and sleeping outside it keeps waiters in arrival order
        without holding the lock while asleep.
        """
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self) -> float:
        """Block until a request may go; return the seconds waited."""
        wait = self._reserve()
        if wait > 0:
            time.sleep(wait)
        return wait

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate:g}/s, burst={self.burst:g})"
