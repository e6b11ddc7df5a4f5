"""The fake's notion of time: rate-limit windows, signed-URL expiry and default timestamps all read it.

`Clock(scale=60)` makes one real second count as one simulated minute, so a bench can exercise
"900 points a minute" or "1,000 requests an hour" without waiting: `clock.sleep(seconds)` sleeps the
simulated seconds in scaled real time (give it to a client as its sleep function). `Clock(frozen=True)`
only moves when a test calls `advance()`.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class Clock:
    def __init__(self, start: float | None = None, scale: float = 1.0, frozen: bool = False) -> None:
        if scale <= 0:
            raise ValueError("scale must be positive")
        self._lock = threading.Lock()
        self._origin_real = time.monotonic()
        self._origin = time.time() if start is None else start
        self._scale = scale
        self._frozen = frozen
        self._offset = 0.0

    @property
    def scale(self) -> float:
        return self._scale

    @scale.setter
    def scale(self, value: float) -> None:
        if value <= 0:
            raise ValueError("scale must be positive")
        with self._lock:
            # Re-anchor so the simulated time does not jump when the speed changes.
            now = self._now_locked()
            self._origin_real = time.monotonic()
            self._origin = now
            self._offset = 0.0
            self._scale = value

    def _now_locked(self) -> float:
        elapsed = 0.0 if self._frozen else (time.monotonic() - self._origin_real) * self._scale
        return self._origin + elapsed + self._offset

    def now(self) -> float:
        """Simulated epoch seconds."""
        with self._lock:
            return self._now_locked()

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds

    def sleep(self, seconds: float) -> None:
        """Sleep `seconds` of simulated time (a frozen clock advances instead of sleeping)."""
        if seconds <= 0:
            return
        if self._frozen:
            self.advance(seconds)
        else:
            time.sleep(seconds / self._scale)


def iso(moment: float | datetime) -> str:
    """GitHub's timestamp form: 2024-01-31T12:00:00Z."""
    if isinstance(moment, datetime):
        value = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    else:
        value = datetime.fromtimestamp(moment, UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_epoch(moment: float | datetime | str) -> float:
    """Accept epoch seconds, an aware/naive (UTC) datetime or an ISO 8601 string."""
    if isinstance(moment, (int, float)):
        return float(moment)
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
