"""Pull progress for a job log: one line per layer finished, and a total every few seconds.

The engine streams a JSON event per chunk (docker) or per layer state (podman); printing them all buries the
log. A layer counts as finished at its first `Download complete`, `Pull complete` or `Already exists` (podman
never sends `Pull complete`; docker sends both, and the layer is reported once). Layer ids are shown only when
they look like ids: the stream's text comes from the engine and the registry behind it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from charon_ci import gha

FINISHED_STATES = frozenset({"Download complete", "Pull complete", "Already exists"})
STARTED_STATES = frozenset({"Pulling fs layer", "Waiting", "Downloading", "Verifying Checksum", "Extracting"})
_LAYER_ID = re.compile(r"[0-9a-f]{12,64}")


def _mib(count: int) -> str:
    return f"{count / 1024**2:.1f} MiB"


class PullProgress:
    """Feed it every decoded event of one pull (`event`), then call `done()`."""

    def __init__(
        self,
        reference: str,
        *,
        emit: Callable[[str], None] = gha.info,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 5.0,
    ) -> None:
        self.reference = reference
        self._emit = emit
        self._clock = clock
        self._interval = interval
        self._started = clock()
        self._last_total = self._started
        self._layers: set[str] = set()
        self._finished: set[str] = set()
        self._bytes: dict[str, int] = {}
        self.lines = 0

    @property
    def finished(self) -> int:
        return len(self._finished)

    @property
    def received(self) -> int:
        return sum(self._bytes.values())

    def event(self, event: Mapping[str, Any]) -> None:
        status = event.get("status")
        layer = event.get("id")
        if isinstance(layer, str) and _LAYER_ID.fullmatch(layer) and isinstance(status, str):
            self._layers.add(layer)
            detail = event.get("progressDetail")
            current = detail.get("current") if isinstance(detail, Mapping) else None
            if status == "Downloading" and type(current) is int and current >= 0:
                self._bytes[layer] = current
            if status in FINISHED_STATES and layer not in self._finished:
                self._finished.add(layer)
                total = detail.get("total") if isinstance(detail, Mapping) else None
                if type(total) is int and total > 0:
                    self._bytes[layer] = total
                self._say(f"layer {layer}: {status.lower()} ({len(self._finished)} of {len(self._layers)} seen)")
        now = self._clock()
        if now - self._last_total >= self._interval:
            self._last_total = now
            self._say(self._total(now))

    def done(self) -> str:
        """The closing total (also returned, for the summary)."""
        text = self._total(self._clock())
        self._say(text)
        return text

    def _total(self, now: float) -> str:
        received = f", {_mib(self.received)} received" if self._bytes else ""
        return (
            f"pulling {self.reference}: {len(self._finished)} of {len(self._layers)} layers done{received}, "
            f"{now - self._started:.1f} s"
        )

    def _say(self, text: str) -> None:
        self.lines += 1
        self._emit(text)
