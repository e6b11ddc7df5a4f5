"""Retrying the registry under one total deadline: exponential backoff with full jitter.

Full jitter (a wait drawn uniformly from zero to the exponential ceiling) spreads the retries of many jobs
that failed together, instead of sending them back in step as fixed 10 s retries do. No wait runs past the
deadline and no attempt starts after it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    base: float = 1.0
    cap: float = 30.0

    def ceiling(self, retry_number: int) -> float:
        """The longest wait before retry `retry_number` (1 for the first retry)."""
        return min(self.cap, self.base * 2.0 ** max(0, retry_number - 1))

    def delay(self, retry_number: int, rng: random.Random) -> float:
        return rng.uniform(0.0, self.ceiling(retry_number))


class Deadline:
    """`seconds` from now on `clock`; `remaining()` never goes below zero."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.seconds = seconds
        self.started = clock()

    def elapsed(self) -> float:
        return self._clock() - self.started

    def remaining(self) -> float:
        return max(0.0, self.seconds - self.elapsed())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def wait_before_retry(self, retry_number: int, backoff: Backoff, rng: random.Random) -> float | None:
        """How long to wait before retry `retry_number`, cut to the time left; None when no time is left."""
        left = self.remaining()
        if left <= 0.0:
            return None
        return min(backoff.delay(retry_number, rng), left)
