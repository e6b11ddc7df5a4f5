"""GitHub's search-style `created` qualifier for the workflow-runs list: `A..B`, `>=A`, `>A`, `<=A`, `<A`,
`A`, with `*` for an open end; A/B are dates (`2024-01-31`, whole UTC days) or ISO 8601 timestamps."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

_DAY = 86400.0
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class FilterError(ValueError):
    pass


@dataclass(frozen=True)
class TimeRange:
    start: float | None  # inclusive
    end: float | None  # exclusive

    def __contains__(self, moment: float) -> bool:
        return (self.start is None or moment >= self.start) and (self.end is None or moment < self.end)


def _bounds(text: str) -> tuple[float, float]:
    """(first instant, first instant after) of a date or a timestamp."""
    text = text.strip()
    if _DATE.match(text):
        try:
            start = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
        except ValueError as exc:  # 2025-13-01
            raise FilterError(f"invalid date {text!r}") from exc
        return start, start + _DAY
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError as exc:
        raise FilterError(f"invalid date {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    instant = moment.timestamp()
    return instant, instant + 1e-6


def parse_created(text: str) -> TimeRange:
    text = text.strip()
    if ".." in text:
        low, high = text.split("..", 1)
        start = None if low.strip() in {"", "*"} else _bounds(low)[0]
        end = None if high.strip() in {"", "*"} else _bounds(high)[1]
        return TimeRange(start, end)
    for prefix in (">=", "<=", ">", "<"):
        if text.startswith(prefix):
            first, after = _bounds(text[len(prefix):])
            return {
                ">=": TimeRange(first, None), ">": TimeRange(after, None),
                "<=": TimeRange(None, after), "<": TimeRange(None, first),
            }[prefix]
    first, after = _bounds(text)
    return TimeRange(first, after)
