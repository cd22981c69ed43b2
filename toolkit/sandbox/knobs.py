"""Realism knobs: pacing, latency, rate limit and faults, reproducible with a seed.

All knobs are off by default. They apply to the platform routes only, never to
``/_sandbox/*``, so a test can always inspect the state a faulty run left behind.

Example:
    >>> faults = Faults(Knobs(fail_rate=0.5, seed=1))
    >>> [faults.draw().kind for _ in range(6)]
    ['fail', 'fail', 'ok', 'ok', 'fail', 'ok']
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal, get_args

__all__ = ["VARIANTS", "Fault", "Faults", "IdSource", "Knobs", "RateLimiter", "Variant"]

#: How the sandbox answers, one per documented form of the platform's answers (docs/CONTRACT.md):
#: ``standard`` (the seed's JSON forms), ``nested_task_id`` (``{"data": {"task_id": ...}}``, as
#: ``profiles/get_all`` answers), ``short_result`` (a finished task's result is
#: ``{captured, errors, status}``, the seed's XML example), ``error_in_200`` (an error's code in
#: the body of an HTTP 200 answer), ``body_token_only`` (an older install: the Authorization
#: header is ignored, 401 without a ``token`` in the body).
Variant = Literal["standard", "nested_task_id", "short_result", "error_in_200", "body_token_only"]
VARIANTS: Final[tuple[str, ...]] = get_args(Variant)


@dataclass(frozen=True)
class Knobs:
    """How the sandbox departs from an ideal platform. Every field is off by default.

    Example:
        >>> Knobs(fail_rate=0.1, drop_rate=0.1).faulty
        True
        >>> Knobs(fail_rate=1.5)
        Traceback (most recent call last):
        ...
        ValueError: fail_rate must be between 0 and 1, not 1.5
        >>> Knobs(variant="short_result", captured=0).variant
        'short_result'
    """

    #: Profiles per second a task advances (None: as fast as possible, still in the background).
    processing_rate: float | None = None
    #: Milliseconds added before each platform request is handled.
    latency_ms: float = 0.0
    #: Platform requests per second allowed (token bucket, burst of one second); then 429.
    rate_limit: float | None = None
    #: Fraction of platform requests answered 500/502/503 before anything is done.
    fail_rate: float = 0.0
    #: Fraction of platform requests whose connection is closed before anything is done.
    drop_rate: float = 0.0
    #: Fraction of platform requests handled in full whose answer is lost (connection closed).
    lose_response_rate: float = 0.0
    #: Seed for task ids, profile ids and fault draws (None: unpredictable).
    seed: int | None = None
    #: Which documented form of the platform's answers to give (:data:`VARIANTS`).
    variant: Variant = "standard"
    #: With ``variant="short_result"``: the ``captured`` count a finished task reports (None: the
    #: profiles it really imported), so a test can make the platform's figures disagree with the rows.
    captured: int | None = None

    def __post_init__(self) -> None:
        for name in ("fail_rate", "drop_rate", "lose_response_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {value}")
        if self.fail_rate + self.drop_rate + self.lose_response_rate > 1.0 + 1e-9:
            raise ValueError("fail_rate + drop_rate + lose_response_rate must not exceed 1")
        for name in ("processing_rate", "rate_limit"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive (or None for off), not {value}")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must not be negative, not {self.latency_ms}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, not {self.variant!r}")
        if self.captured is not None and (self.variant != "short_result" or self.captured < 0):
            raise ValueError("captured is a count (0 or more) for variant 'short_result' only")

    @property
    def faulty(self) -> bool:
        """True when any fault knob is on."""
        return bool(self.fail_rate or self.drop_rate or self.lose_response_rate)


@dataclass(frozen=True)
class Fault:
    """What to do with one platform request."""

    kind: Literal["ok", "fail", "drop", "lose"]
    #: The HTTP status of a ``fail``.
    status: int = 0


class Faults:
    """Draws a :class:`Fault` per platform request; one seeded stream, so a run repeats exactly."""

    _FAIL_STATUSES = (500, 502, 503)

    def __init__(self, knobs: Knobs) -> None:
        self._knobs = knobs
        self._rng = random.Random(f"{knobs.seed}:faults") if knobs.seed is not None else random.Random()
        self._lock = threading.Lock()

    def draw(self) -> Fault:
        """The fate of the next request (always two draws, so knobs do not shift the stream)."""
        with self._lock:
            u, pick = self._rng.random(), self._rng.random()
        k = self._knobs
        if u < k.fail_rate:
            return Fault("fail", self._FAIL_STATUSES[int(pick * len(self._FAIL_STATUSES))])
        if u < k.fail_rate + k.drop_rate:
            return Fault("drop")
        if u < k.fail_rate + k.drop_rate + k.lose_response_rate:
            return Fault("lose")
        return Fault("ok")


class RateLimiter:
    """A token bucket: ``rate`` requests per second, bursts of up to one second's worth.

    Example:
        >>> limiter = RateLimiter(2, clock=lambda: 0.0)
        >>> limiter.acquire(), limiter.acquire(), limiter.acquire()
        (None, None, 1)
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._capacity = max(1.0, rate)
        self._tokens = self._capacity
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> int | None:
        """None when the request may go on, else the whole seconds to wait (``Retry-After``)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return None
            return max(1, math.ceil((1.0 - self._tokens) / self._rate))


#: Profile ids made at a time (knobs.IdSource): a method call and a lock each cost as much as an id.
_IDS_AHEAD: Final = 1024


class IdSource:
    """Task ids (uuid4 strings) and profile ids (24 hex digits), seeded or not.

    Example:
        >>> a, b = IdSource(7), IdSource(7)
        >>> a.task_id() == b.task_id(), len(a.profile_id())
        (True, 24)
    """

    def __init__(self, seed: int | None) -> None:
        # Separate streams: the order of profile creation never shifts the task ids.
        if seed is None:
            self._tasks: random.Random = random.SystemRandom()
            self._profiles: random.Random = random.SystemRandom()
        else:
            self._tasks = random.Random(f"{seed}:tasks")
            self._profiles = random.Random(f"{seed}:profiles")
        self._lock = threading.Lock()
        self._seeded = seed is not None
        self._ready: list[str] = []  # the next profile ids, the next one last

    def task_id(self) -> str:
        """A new uuid4 string."""
        with self._lock:
            return str(uuid.UUID(int=self._tasks.getrandbits(128), version=4))

    def profile_id(self) -> str:
        """A new 24-hex-digit profile id (the platform's ObjectId-like shape)."""
        try:
            return self._ready.pop()  # atomic: two threads never get the same id
        except IndexError:
            pass
        with self._lock:
            if not self._ready:
                self._ready = self._more_profile_ids()
        return self.profile_id()

    def _more_profile_ids(self) -> list[str]:
        """The next :data:`_IDS_AHEAD` profile ids, made in one call, the first of them last.

        Seeded, they are the ids one ``getrandbits(96)`` each would give, in the same order:
        ``getrandbits(96 * n)`` reads the same 32-bit words and places the first id's lowest, so
        the hex digits of the first id end the string. Unseeded, the system's randomness is read
        once for all of them, not one syscall per id.
        """
        if self._seeded:
            digits = f"{self._profiles.getrandbits(96 * _IDS_AHEAD):0{24 * _IDS_AHEAD}x}"
        else:
            digits = os.urandom(12 * _IDS_AHEAD).hex()
        return [digits[start : start + 24] for start in range(0, 24 * _IDS_AHEAD, 24)]
