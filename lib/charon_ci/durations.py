"""Durations as people write them in workflow inputs: `30m`, `24h`, `7d`, `2w`, or a sum such as `1d12h`.

Months and years are refused on purpose: their length varies, and a retention period must mean one thing.
"""

from __future__ import annotations

import re
from datetime import timedelta

from charon_ci.gha import InputError

ACCEPTED = "a whole number followed by m (minutes), h (hours), d (days) or w (weeks), e.g. 30m, 24h, 7d, 2w, 1d12h"

_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART_RE = re.compile(r"(\d+)([mhdw])")
_WHOLE_RE = re.compile(r"(?:\d+[mhdw])+")
# Anything beyond this is certainly a typo (and would overflow timedelta arithmetic near datetime.max).
_MAX = timedelta(days=3650)
_MAX_CHARS = 64


def parse_duration(text: str, input_name: str) -> timedelta:
    """Parse `text`; any other spelling raises InputError naming `input_name`."""
    value = text.strip()
    # Bounded before int(): thousands of digits are slow to convert, and refused by Python past 4,300.
    if len(value) > _MAX_CHARS or not _WHOLE_RE.fullmatch(value):
        raise InputError(input_name, ACCEPTED, text)
    seconds = sum(int(number) * _UNIT_SECONDS[unit] for number, unit in _PART_RE.findall(value))
    if seconds > _MAX.total_seconds():
        raise InputError(input_name, ACCEPTED + " (at most 3650d)", text)
    return timedelta(seconds=seconds)


def format_duration(span: timedelta) -> str:
    """Short exact form for log lines, to the minute: `40d3h5m`, `30d30m`, `5h`, `0m`; a negative span is the
    same truncated toward zero, after a minus sign (`-1h30m`)."""
    if span.days < 0:  # timedelta keeps days negative and seconds positive: format the positive span
        text = format_duration(-span)
        return text if text == "0m" else "-" + text
    # From the fields timedelta holds, whole numbers all the way: prune writes one for each expired tag.
    days = span.days
    hours, seconds = divmod(span.seconds, 3600)
    minutes = seconds // 60
    if days and hours and minutes:  # most ages
        return f"{days}d{hours}h{minutes}m"
    text = (f"{days}d" if days else "") + (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text or "0m"
