"""GitHub's primary rate limit: an hourly budget per token (per client address when anonymous).

Every response carries `x-ratelimit-limit/remaining/used/reset/resource`. The budget is spent before the
handler runs (so concurrent requests cannot overdraw it) and given back for a 304, which GitHub does not
charge. `/rate_limit` reads the budget without spending it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .clock import Clock

WINDOW_SECONDS = 3600.0
ANONYMOUS_LIMIT = 60


@dataclass
class Budget:
    limit: int
    used: int = 0
    reset_at: float = 0.0  # simulated epoch seconds; 0 = window not started

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(frozen=True)
class Snapshot:
    limit: int
    remaining: int
    used: int
    reset: int
    resource: str = "core"

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.limit), "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-used": str(self.used), "x-ratelimit-reset": str(self.reset),
            "x-ratelimit-resource": self.resource,
        }


class PrimaryLimits:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._budgets: dict[str, Budget] = {}

    def _budget(self, key: str, limit: int) -> Budget:
        now = self._clock.now()
        budget = self._budgets.get(key)
        if budget is None:
            budget = self._budgets[key] = Budget(limit)
        budget.limit = limit
        if budget.reset_at and now >= budget.reset_at:
            budget.used = 0
            budget.reset_at = 0.0
        if not budget.reset_at:
            budget.reset_at = now + WINDOW_SECONDS
        return budget

    def _snapshot(self, budget: Budget) -> Snapshot:
        return Snapshot(budget.limit, budget.remaining, budget.used, int(budget.reset_at))

    def spend(self, key: str, limit: int) -> tuple[bool, Snapshot]:
        """Spend one request; (False, snapshot) when the budget is already exhausted."""
        with self._lock:
            budget = self._budget(key, limit)
            if budget.remaining <= 0:
                return False, self._snapshot(budget)
            budget.used += 1
            return True, self._snapshot(budget)

    def refund(self, key: str, limit: int) -> Snapshot:
        with self._lock:
            budget = self._budget(key, limit)
            budget.used = max(0, budget.used - 1)
            return self._snapshot(budget)

    def peek(self, key: str, limit: int) -> Snapshot:
        with self._lock:
            return self._snapshot(self._budget(key, limit))

    def set(self, key: str, limit: int, *, remaining: int | None = None, used: int | None = None) -> Snapshot:
        """Test hook: set the budget's limit and how much of it is left (or used)."""
        with self._lock:
            budget = self._budget(key, limit)
            budget.limit = limit
            if remaining is not None:
                budget.used = max(0, limit - remaining)
            if used is not None:
                budget.used = used
            return self._snapshot(budget)
