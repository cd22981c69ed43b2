"""What is retried, how many times and how long to wait: :class:`RetryPolicy`, in one place.

A call to the platform either gets a usable answer or fails in one of the ways below
(a :class:`Failure`). What the client then does depends on whether the call is
*idempotent*: reading a task's status twice is harmless; POSTing a batch (or one
profile) twice starts the trigger twice for its profiles.

================================================  =========================  =====================
what happened (:class:`Failure`)                  batch or single POST       ``tasks/status`` poll
                                                  (not idempotent)           (idempotent)
================================================  =========================  =====================
``CONNECT``: the connection failed before         retried                    retried
sending (refused, DNS, connect timeout)
``RATE_LIMITED``: HTTP 429, or ``error`` 429      retried (``Retry-After``)  retried
``UNAVAILABLE``: HTTP 503 with ``Retry-After``    retried (``Retry-After``)  retried
``GATEWAY``: HTTP 502 / 504, or a 503 without     ``unknown``: not re-sent   retried
``Retry-After``
``ANSWER_LOST``: read timeout, connection reset   ``unknown``: not re-sent   retried
or closed after sending
``SERVER_ERROR``: HTTP 500                        ``unknown``: not re-sent   retried
``OTHER_5XX``: HTTP 501, 505, ...                 ``unknown``: not re-sent   retried
``REFUSED``: other 4xx, or ``error != 0``         raised                     raised
``UNREADABLE``: HTTP < 400, neither JSON nor XML  ``unknown``: not re-sent   raised
================================================  =========================  =====================

A POST that imports profiles is **retried only when the failure proves nothing reached the
platform**: the connection was never made (``CONNECT``), or the platform itself answered
before doing anything, in its own way of saying "come back later" (429; a 503 that carries
``Retry-After``). Its other answers before processing (401/403, other 4xx, ``error != 0``)
are **raised**: the request was refused, and trying it again unchanged would not help; the
batch is ``failed`` and safe to send again. Everything else is **ambiguous** and ends
``unknown``: a 502/504 comes from a gateway (a reverse proxy, a load balancer) that may have
forwarded the request before giving up on the answer, and a 503 without ``Retry-After`` may
be one too; a 500 or another 5xx may come after the platform started the task; a lost or
unreadable answer says nothing about what the platform did.

* **retried**: after a wait (:meth:`RetryPolicy.delay`: exponential backoff with full
  jitter, capped; a server's ``Retry-After`` wins for the failures marked so, capped at
  ``max_retry_after``), at most ``max_retries`` times; then raised like the last failure
  (:class:`~toolkit.errors.TransportError` when the platform was never reached, else the
  :class:`~toolkit.errors.ApiError` it answered).
* **unknown**: raised as :class:`~toolkit.errors.OutcomeUnknown` at once, with the reason
  (:func:`unknown_reason`). Sending it again could mail its profiles twice: a launch
  journals the batch as ``unknown`` for the user to decide (``Launch.resend_unknown()``).
* **raised**: the platform's answer, as an :class:`~toolkit.errors.ApiError` subclass.

The table is :data:`RETRY_TABLE`; a policy may carry its own (``RetryPolicy(rules=...)``).
A status poll only reads, so every failure but a refusal is retried there.

:class:`TokenBucket` (client-side rate limit) lives here too: one bucket paces every request
of a client, sends and polls of all its launches.

Example:
    >>> policy = RetryPolicy(jitter=False)
    >>> policy.verdict(Failure.GATEWAY, idempotent=False), policy.verdict(Failure.GATEWAY, idempotent=True)
    (<Verdict.UNKNOWN: 'unknown'>, <Verdict.RETRY: 'retry'>)
    >>> [policy.delay(n) for n in range(5)]
    [0.5, 1.0, 2.0, 4.0, 8.0]
    >>> policy.delay(0, retry_after=3.0, failure=Failure.RATE_LIMITED)
    3.0
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from toolkit.errors import InvalidArgumentError

__all__ = [
    "RETRY_TABLE",
    "Failure",
    "RetryNotice",
    "RetryPolicy",
    "Rule",
    "TokenBucket",
    "Verdict",
    "classify_answer",
    "parse_retry_after",
    "unknown_reason",
]


class Failure(StrEnum):
    """How a call to the platform went wrong (the rows of the retry table)."""

    #: the connection failed before the request was written: nothing reached the platform
    CONNECT = "connect"
    #: HTTP 429 (or ``error`` 429 in the answer): too many requests
    RATE_LIMITED = "rate_limited"
    #: HTTP 503 with ``Retry-After``: the platform is busy and says when to come back
    UNAVAILABLE = "unavailable"
    #: HTTP 502 / 504 (or a 503 without ``Retry-After``): a gateway in front of the platform got
    #: no (timely) answer from it, possibly after forwarding the request
    GATEWAY = "gateway"
    #: the request went out, the answer never came (read timeout, reset, closed)
    ANSWER_LOST = "answer_lost"
    #: HTTP 500: the platform failed while handling the request
    SERVER_ERROR = "server_error"
    #: any other HTTP 5xx
    OTHER_5XX = "other_5xx"
    #: any other HTTP 4xx, or an answer whose ``error`` is not 0
    REFUSED = "refused"
    #: HTTP < 400 but neither JSON nor XML (a proxy's page, a truncated body)
    UNREADABLE = "unreadable"


class Verdict(StrEnum):
    """What the client does about a failure."""

    RETRY = "retry"  #: wait, then send the same request again
    UNKNOWN = "unknown"  #: raise OutcomeUnknown: the platform may have acted, never re-send by itself
    RAISE = "raise"  #: raise the failure (the platform's answer, or TransportError)


@dataclass(frozen=True)
class Rule:
    """One row of the retry table: the verdict for a non-idempotent call and for an idempotent one."""

    not_idempotent: Verdict
    idempotent: Verdict


_RETRY, _UNKNOWN, _RAISE = Verdict.RETRY, Verdict.UNKNOWN, Verdict.RAISE

#: The retry table (see the module docs), one row per :class:`Failure`.
RETRY_TABLE: Final[Mapping[Failure, Rule]] = MappingProxyType(
    {
        Failure.CONNECT: Rule(not_idempotent=_RETRY, idempotent=_RETRY),
        Failure.RATE_LIMITED: Rule(not_idempotent=_RETRY, idempotent=_RETRY),
        Failure.UNAVAILABLE: Rule(not_idempotent=_RETRY, idempotent=_RETRY),
        Failure.GATEWAY: Rule(not_idempotent=_UNKNOWN, idempotent=_RETRY),
        Failure.ANSWER_LOST: Rule(not_idempotent=_UNKNOWN, idempotent=_RETRY),
        Failure.SERVER_ERROR: Rule(not_idempotent=_UNKNOWN, idempotent=_RETRY),
        Failure.OTHER_5XX: Rule(not_idempotent=_UNKNOWN, idempotent=_RETRY),
        Failure.REFUSED: Rule(not_idempotent=_RAISE, idempotent=_RAISE),
        Failure.UNREADABLE: Rule(not_idempotent=_UNKNOWN, idempotent=_RAISE),
    }
)

#: Failures whose wait is the server's ``Retry-After`` when it sends one.
RETRY_AFTER_FAILURES: Final = frozenset({Failure.RATE_LIMITED, Failure.UNAVAILABLE})

#: How each retried failure is told to people (``{status}``: the HTTP status). Every 5xx reads
#: "busy": to a user each means "wait, it is being retried" (the form shows these words).
_WHAT: Final[Mapping[Failure, str]] = MappingProxyType(
    {
        Failure.CONNECT: "the platform is not answering",
        Failure.RATE_LIMITED: "the platform asks to slow down (too many requests)",
        Failure.UNAVAILABLE: "the platform is busy (HTTP {status})",
        Failure.GATEWAY: "the platform is busy (HTTP {status})",
        Failure.ANSWER_LOST: "the platform's answer was lost",
        Failure.SERVER_ERROR: "the platform is busy (HTTP {status})",
        Failure.OTHER_5XX: "the platform is busy (HTTP {status})",
        Failure.REFUSED: "the platform refused the request (HTTP {status})",
        Failure.UNREADABLE: "the platform's answer was unreadable (HTTP {status})",
    }
)


#: Why each failure a non-idempotent call does not retry leaves its outcome unknown
#: (``{status}``: the HTTP status); :func:`unknown_reason` fills it in.
_WHY_UNKNOWN: Final[Mapping[Failure, str]] = MappingProxyType(
    {
        Failure.CONNECT: "the connection failed, possibly after the request was written",
        Failure.RATE_LIMITED: "the platform asked to slow down (HTTP {status})",
        Failure.UNAVAILABLE: "the platform answered HTTP {status}",
        Failure.GATEWAY: (
            "the answer was HTTP {status}, which a gateway in front of the platform (a proxy, a load balancer) "
            "gives when it forwarded the request and then gave up on the answer: the platform may have it"
        ),
        Failure.ANSWER_LOST: "the request was sent but its answer was lost",
        Failure.SERVER_ERROR: (
            "the platform failed (HTTP {status}) while handling the request, possibly after starting its task"
        ),
        Failure.OTHER_5XX: "HTTP {status} says nothing about whether the platform acted on the request",
        Failure.REFUSED: "the platform refused the request (HTTP {status})",
        Failure.UNREADABLE: "the answer (HTTP {status}) was unreadable: the platform may have acted on the request",
    }
)


def unknown_reason(failure: Failure, status: int | None = None) -> str:
    """Why a call that failed this way may or may not have been acted on, in a sentence.

    Example:
        >>> unknown_reason(Failure.ANSWER_LOST)
        'the request was sent but its answer was lost'
        >>> unknown_reason(Failure.GATEWAY, 504).startswith("the answer was HTTP 504, which a gateway")
        True
    """
    return _WHY_UNKNOWN[failure].format(status=status)


def classify_answer(
    status: int, error_code: int | None, *, readable: bool, retry_after: bool = False
) -> Failure | None:
    """The failure an HTTP answer means, or ``None`` for a usable answer.

    ``error_code`` is the answer's ``error`` field when it has one; ``readable`` says whether
    the body parsed as JSON or XML; ``retry_after`` whether it carries a ``Retry-After``
    header. The HTTP status decides first: a 503 with an error body is still "busy".

    Example:
        >>> classify_answer(200, 0, readable=True) is None
        True
        >>> classify_answer(504, None, readable=False), classify_answer(200, 429, readable=True)
        (<Failure.GATEWAY: 'gateway'>, <Failure.RATE_LIMITED: 'rate_limited'>)
        >>> classify_answer(503, None, readable=False, retry_after=True), classify_answer(503, None, readable=False)
        (<Failure.UNAVAILABLE: 'unavailable'>, <Failure.GATEWAY: 'gateway'>)
        >>> classify_answer(200, 409, readable=True), classify_answer(200, None, readable=False)
        (<Failure.REFUSED: 'refused'>, <Failure.UNREADABLE: 'unreadable'>)
    """
    if status == 429:
        return Failure.RATE_LIMITED
    if status == 503:
        return Failure.UNAVAILABLE if retry_after else Failure.GATEWAY
    if status in (502, 504):
        return Failure.GATEWAY
    if status == 500:
        return Failure.SERVER_ERROR
    if status > 500:
        return Failure.OTHER_5XX
    if error_code == 429:
        return Failure.RATE_LIMITED
    if status >= 400 or error_code not in (None, 0):
        return Failure.REFUSED
    if not readable:
        return Failure.UNREADABLE
    return None


@dataclass(frozen=True)
class RetryNotice:
    """A retry about to happen, for whoever follows the call (``on_retry=``): what went wrong,
    which retry of how many, and the wait before it. ``str()`` is a sentence for people.

    Example:
        >>> str(RetryNotice("the platform is not answering", retry=2, of=5, delay=4.0))
        'the platform is not answering: retry 2 of 5 in 4 s'
        >>> str(RetryNotice("the platform is busy (HTTP 503)", retry=1, of=5, delay=0.3))
        'the platform is busy (HTTP 503): retry 1 of 5 in 0.3 s'
    """

    what: str
    retry: int
    of: int
    delay: float

    def __str__(self) -> str:
        seconds = f"{self.delay:.1f}".removesuffix(".0")
        return f"{self.what}: retry {self.retry} of {self.of} in {seconds} s"


@dataclass(frozen=True)
class RetryPolicy:
    """Everything about waiting and trying again, as one immutable value.

    Give one to the client (``Client(url, token, retry=RetryPolicy(max_retries=2))``); the
    default is what the module docs describe. Tests and scripts that pace themselves use
    :meth:`no_wait`.

    Args:
        max_retries: retries of a failure the table retries (so at most ``max_retries + 1``
            attempts of one call).
        base, cap: the backoff: retry ``n`` (0-based) waits up to ``min(cap, base * 2**n)``
            seconds. With ``jitter`` the wait is drawn uniformly from
            ``[min(that, base / 2), that]`` (full jitter, never instant), so concurrent senders
            do not hit a recovering platform in lock-step.
        max_retry_after: a ``Retry-After`` longer than this is cut to it: a launch should not
            sleep for an hour on one header; ``max_retries`` still bounds the whole wait.
        rules: the retry table (:data:`RETRY_TABLE`), one :class:`Rule` per :class:`Failure`.
        retry_after_failures: the failures whose wait is the server's ``Retry-After``.
        poll_start, poll_min, poll_max: ``Launch.wait()`` polls task status every
            ``poll_start`` seconds at first, faster (down to ``poll_min``) while tasks
            progress, slower (up to ``poll_max``) while they stand still. A round reads
            the tasks seen moving and the next two in the queue; every task is read at least
            every ``poll_max`` seconds (the platform documents no rate for ``tasks/status``).
        poll_give_up: a task whose status could not be read this many times in a row (each
            read already retried) is left for a later ``wait()``.

    Example:
        >>> RetryPolicy(max_retries=2).max_retries
        2
        >>> RetryPolicy.no_wait().delay(3, retry_after=30.0, failure=Failure.RATE_LIMITED)
        0.0
        >>> RetryPolicy(max_retries=-1)
        Traceback (most recent call last):
        ...
        toolkit.errors.InvalidArgumentError: RetryPolicy: max_retries must be >= 0, got -1
    """

    max_retries: int = 5
    base: float = 0.5
    cap: float = 8.0
    jitter: bool = True
    max_retry_after: float = 60.0
    rules: Mapping[Failure, Rule] = field(default_factory=lambda: RETRY_TABLE, repr=False)
    retry_after_failures: frozenset[Failure] = field(default=RETRY_AFTER_FAILURES, repr=False)
    poll_start: float = 0.25
    poll_min: float = 0.1
    poll_max: float = 5.0
    poll_give_up: int = 5
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            problems.append(f"max_retries must be >= 0, got {self.max_retries!r}")
        if self.poll_give_up < 1:
            problems.append(f"poll_give_up must be >= 1, got {self.poll_give_up!r}")
        for name in ("base", "cap", "max_retry_after", "poll_start", "poll_min", "poll_max"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0 seconds, got {getattr(self, name)!r}")
        missing = [f.value for f in Failure if f not in self.rules]
        if missing:
            problems.append(f"rules has no row for {', '.join(missing)}")
        if problems:
            raise InvalidArgumentError("RetryPolicy: " + "; ".join(problems))

    @classmethod
    def no_wait(cls, max_retries: int = 5) -> RetryPolicy:
        """The same decisions without any wait: every backoff and ``Retry-After`` is 0 s.

        Example:
            >>> RetryPolicy.no_wait(2).delay(4)
            0.0
        """
        return cls(max_retries=max_retries, base=0.0, cap=0.0, jitter=False, max_retry_after=0.0,
                   poll_start=0.0, poll_min=0.0, poll_max=0.0)  # fmt: skip

    def verdict(self, failure: Failure, *, idempotent: bool) -> Verdict:
        """The table's verdict for this failure (before counting retries).

        Example:
            >>> RetryPolicy().verdict(Failure.ANSWER_LOST, idempotent=False)
            <Verdict.UNKNOWN: 'unknown'>
        """
        rule = self.rules[failure]
        return rule.idempotent if idempotent else rule.not_idempotent

    def decide(self, failure: Failure, *, idempotent: bool, attempt: int) -> Verdict:
        """The verdict for the ``attempt``-th failure of one call (0-based): a retry past
        ``max_retries`` becomes :attr:`Verdict.RAISE`.

        Example:
            >>> p = RetryPolicy(max_retries=1)
            >>> p.decide(Failure.CONNECT, idempotent=False, attempt=0), p.decide(Failure.CONNECT, idempotent=False, attempt=1)
            (<Verdict.RETRY: 'retry'>, <Verdict.RAISE: 'raise'>)
        """
        verdict = self.verdict(failure, idempotent=idempotent)
        if verdict is Verdict.RETRY and attempt >= self.max_retries:
            return Verdict.RAISE
        return verdict

    def delay(self, attempt: int, retry_after: float | None = None, failure: Failure | None = None) -> float:
        """Seconds to wait before retry number ``attempt + 1`` (``attempt`` is 0-based).

        A server's ``retry_after`` wins over the computed delay (capped at
        ``max_retry_after``) when ``failure`` is one that honours it: the server knows
        when it will have room.

        Example:
            >>> RetryPolicy(base=1.0, cap=8.0, jitter=False).delay(10)
            8.0
            >>> 0.25 <= RetryPolicy(base=0.5, cap=8.0).delay(0) <= 0.5
            True
            >>> RetryPolicy(jitter=False).delay(0, retry_after=600.0, failure=Failure.UNAVAILABLE)
            60.0
        """
        if retry_after is not None and retry_after >= 0 and failure in self.retry_after_failures:
            return min(retry_after, self.max_retry_after)
        delay = min(self.cap, self.base * (2 ** max(0, attempt)))
        if self.jitter:
            delay = self.rng.uniform(min(delay, self.base / 2), delay)
        return delay

    def notice(self, failure: Failure, attempt: int, delay: float, status: int | None = None) -> RetryNotice:
        """The sentence for people about a retry to come (see :class:`RetryNotice`).

        Example:
            >>> str(RetryPolicy(max_retries=3).notice(Failure.GATEWAY, 0, 1.0, status=502))
            'the platform is busy (HTTP 502): retry 1 of 3 in 1 s'

        """
        return RetryNotice(_WHAT[failure].format(status=status), attempt + 1, self.max_retries, delay)

    def next_poll_interval(self, interval: float, *, moved: bool) -> float:
        """The wait before the next status poll: shorter when the tasks moved since the last
        one, longer when they stood still.

        Example:
            >>> p = RetryPolicy()
            >>> p.next_poll_interval(1.0, moved=True), p.next_poll_interval(4.0, moved=False)
            (0.7, 5.0)
        """
        if moved:
            return max(self.poll_min, interval * 0.7)
        return min(self.poll_max, interval * 1.5)


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
            raise InvalidArgumentError(f"rate_limit must be > 0 requests per second, got {rate!r}")
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
