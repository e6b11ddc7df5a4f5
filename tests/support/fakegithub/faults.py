"""Per-test fault injection: latency, injected 5xx, connection resets and GitHub's secondary rate limit
(points a minute, or one-off refusals), with or without `retry-after`.

Every rule can be narrowed to a method, an operationId and/or a path regex. Random rules draw from one
seeded RNG (`faults.seed(n)`), so a failing run replays exactly with the same request order.
"""

from __future__ import annotations

import random
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from .clock import Clock

FaultKind = Literal["latency", "status", "reset", "secondary"]

# GitHub: "most REST API GET, HEAD, and OPTIONS requests are 1 point; most POST, PATCH, PUT, or DELETE are 5".
_WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


@dataclass
class FaultRule:
    kind: FaultKind
    probability: float = 1.0
    remaining: int | None = None  # None: unlimited; else the rule fires this many more times
    status: int = 502
    retry_after: int | None = None  # "secondary" rules: the retry-after header to send, None for none
    seconds: float = 0.0
    jitter: float = 0.0
    method: str | None = None
    operation: str | None = None
    path: re.Pattern[str] | None = None
    fired: int = 0

    def matches(self, method: str, operation: str | None, path: str) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        if self.operation is not None and self.operation != operation:
            return False
        return self.path is None or self.path.search(path) is not None


@dataclass(frozen=True)
class Refusal:
    """A secondary-limit refusal: the status (403 or 429) and the retry-after to send (None: no header)."""

    status: int
    retry_after: int | None


@dataclass(frozen=True)
class Decision:
    """What the faults say about one request."""

    delay: float = 0.0
    reset: bool = False
    status: int | None = None
    secondary: Refusal | None = None


@dataclass
class SecondaryLimit:
    points_per_minute: int
    status: int  # 403 or 429, as GitHub answers either
    window: float = 60.0
    retry_after: bool = True  # False: refuse without the header, as GitHub sometimes does
    # (token-or-ip, endpoint) -> deque of (simulated time, points)
    spent: dict[tuple[str, str], deque[tuple[float, int]]] = field(default_factory=dict)


class Faults:
    def __init__(self, clock: Clock, seed: int = 0) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._rng = random.Random(seed)  # noqa: S311 - reproducible faults, not secrets
        self.rules: list[FaultRule] = []
        self.secondary: SecondaryLimit | None = None

    # --- configuration ---------------------------------------------------------------------------------------
    def seed(self, value: int) -> None:
        with self._lock:
            self._rng = random.Random(value)  # noqa: S311 - reproducible faults, not secrets

    def clear(self) -> None:
        """Remove every rule and the secondary limit."""
        with self._lock:
            self.rules.clear()
            self.secondary = None

    def _add(self, rule: FaultRule) -> FaultRule:
        if not 0.0 <= rule.probability <= 1.0:
            raise ValueError("probability must be within 0..1")
        with self._lock:
            self.rules.append(rule)
        return rule

    @staticmethod
    def _pattern(path: str | None) -> re.Pattern[str] | None:
        return re.compile(path) if path is not None else None

    def latency(self, seconds: float, *, jitter: float = 0.0, rate: float = 1.0, method: str | None = None,
                operation: str | None = None, path: str | None = None) -> FaultRule:
        """Delay matching requests by `seconds` (+ uniform 0..jitter) of real time before answering."""
        return self._add(FaultRule("latency", rate, None, seconds=seconds, jitter=jitter, method=method,
                                   operation=operation, path=self._pattern(path)))

    def errors(self, rate: float, *, status: int = 502, method: str | None = None, operation: str | None = None,
               path: str | None = None) -> FaultRule:
        """Answer a seeded-random fraction `rate` of matching requests with `status` (a 5xx)."""
        return self._add(FaultRule("status", rate, None, status=status, method=method, operation=operation,
                                   path=self._pattern(path)))

    def fail_next(self, count: int = 1, *, status: int = 502, method: str | None = None,
                  operation: str | None = None, path: str | None = None) -> FaultRule:
        """Answer the next `count` matching requests with `status`."""
        return self._add(FaultRule("status", 1.0, count, status=status, method=method, operation=operation,
                                   path=self._pattern(path)))

    def resets(self, rate: float, *, method: str | None = None, operation: str | None = None,
               path: str | None = None) -> FaultRule:
        """Close the connection without any response for a seeded-random fraction of matching requests."""
        return self._add(FaultRule("reset", rate, None, method=method, operation=operation, path=self._pattern(path)))

    def reset_next(self, count: int = 1, *, method: str | None = None, operation: str | None = None,
                   path: str | None = None) -> FaultRule:
        """Close the connection without a response for the next `count` matching requests."""
        return self._add(FaultRule("reset", 1.0, count, method=method, operation=operation, path=self._pattern(path)))

    def secondary_limit(self, points_per_minute: int = 900, *, status: int = 403, window: float = 60.0,
                        retry_after: bool = True) -> None:
        """GitHub's secondary limit: points per `window` (simulated seconds) per token and endpoint.

        GET/HEAD cost 1 point, POST/PATCH/PUT/DELETE 5. Over the limit: `status` (403 or 429) with
        `retry-after` = seconds until enough points leave the window, or with no `retry-after` at all
        (`retry_after=False`; a client must then wait at least a minute). Refused requests cost nothing.
        """
        _check_limit_status(status)
        with self._lock:
            self.secondary = SecondaryLimit(points_per_minute, status, window, retry_after)

    def secondary_next(self, count: int = 1, *, status: int = 403, retry_after: int | None = None,
                       method: str | None = None, operation: str | None = None,
                       path: str | None = None) -> FaultRule:
        """Refuse the next `count` matching requests with a secondary-limit answer: `status` (403 or 429),
        `retry-after: <retry_after>` or no such header when None. Checked after the primary budget is spent."""
        _check_limit_status(status)
        if retry_after is not None and retry_after < 0:
            raise ValueError("retry_after must be a number of seconds")
        return self._add(FaultRule("secondary", 1.0, count, status=status, retry_after=retry_after, method=method,
                                   operation=operation, path=self._pattern(path)))

    # --- evaluation ------------------------------------------------------------------------------------------
    def decide(self, method: str, operation: str | None, path: str) -> Decision:
        delay = 0.0
        reset = False
        status: int | None = None
        secondary: Refusal | None = None
        with self._lock:
            for rule in self.rules:
                if not rule.matches(method, operation, path):
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                if rule.kind == "latency":
                    delay += rule.seconds + (self._rng.uniform(0, rule.jitter) if rule.jitter else 0.0)
                elif rule.kind == "reset" and not reset and status is None:
                    reset = True
                elif rule.kind == "status" and not reset and status is None and secondary is None:
                    status = rule.status
                elif rule.kind == "secondary" and not reset and status is None and secondary is None:
                    secondary = Refusal(rule.status, rule.retry_after)
                else:
                    continue
                rule.fired += 1
                if rule.remaining is not None:
                    rule.remaining -= 1
        return Decision(delay, reset, status, secondary)

    @staticmethod
    def cost(method: str) -> int:
        return 5 if method.upper() in _WRITE_METHODS else 1

    def spend_secondary(self, who: str, endpoint: str, method: str) -> Refusal | None:
        """Spend the request's points; None if allowed, else the refusal (retry-after in whole simulated
        seconds, when the limit sends one)."""
        with self._lock:
            limit = self.secondary
            if limit is None:
                return None
            now = self._clock.now()
            spent = limit.spent.setdefault((who, endpoint), deque())
            while spent and spent[0][0] <= now - limit.window:
                spent.popleft()
            cost = self.cost(method)
            total = sum(points for _, points in spent)
            if total + cost <= limit.points_per_minute:
                spent.append((now, cost))
                return None
            # Wait until enough of the oldest points leave the window for this request to fit.
            excess = total + cost - limit.points_per_minute
            freed = 0
            wait_until = now
            for moment, points in spent:
                freed += points
                wait_until = moment + limit.window
                if freed >= excess:
                    break
            wait = max(1, int(wait_until - now + 0.999))
            return Refusal(limit.status, wait if limit.retry_after else None)


def _check_limit_status(status: int) -> None:
    if status not in {403, 429}:
        raise ValueError("GitHub answers a rate limit with 403 or 429")
