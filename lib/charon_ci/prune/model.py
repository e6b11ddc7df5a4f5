"""What a prune run knows about a package and the work in flight: plain data, no policy and no I/O.

Shared by the retention core (which judges it) and the edges (which fetch it), so neither imports the other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

import msgspec

__all__ = ["InUse", "PackageVersion", "shown"]

_PR_TAG_RE = re.compile(r"pr-(\d+)(?:-.*)?")
_HEX_RE = re.compile(r"[0-9a-f]{7,40}")
# What a tag or digest may hold and still be printed as is; anything else came from a hand-made snapshot
# or a misbehaving server, and could forge log lines, runner commands (`::x::` at a line start, `##[x]`
# anywhere) or Markdown in the job summary.
# One pattern (a plain tag, or a digest `algorithm:encoded`), so a line's text is checked in one call;
# possessive (`*+`), since no part can give back a character the next part would take.
_SHOWN_AS_IS_RE = re.compile(r"[A-Za-z0-9_.-]*+|[a-z0-9]++(?:[+._-][a-z0-9]++)*+:[A-Za-z0-9=_-]++")


def shown(text: str) -> str:
    """`text` for a log line or the job summary: unchanged when a plain tag or digest, else quoted with
    every character outside letters, digits and `_ . -` written as a \\x / \\u escape."""
    if _SHOWN_AS_IS_RE.fullmatch(text):
        return text
    escaped = "".join(
        ch
        if ch.isascii() and (ch.isalnum() or ch in "_.-")
        else f"\\x{ord(ch):02x}"
        if ord(ch) < 0x100
        else f"\\u{ord(ch):04x}"
        if ord(ch) < 0x10000
        else f"\\U{ord(ch):08x}"
        for ch in text
    )
    return f'"{escaped}"'


class PackageVersion(msgspec.Struct, frozen=True, gc=False):
    """One manifest digest in the package, with every tag it carries.

    A msgspec struct: as immutable as a frozen dataclass, made four times as fast as a named tuple and 40
    bytes smaller (a run holds one for each of up to hundreds of thousands of versions). Outside the cyclic
    collector (`gc=False`): it refers only to strings, numbers and a time, so it can never be in a cycle."""

    id: int
    digest: str
    tags: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True)
class InUse:
    """What running work still needs (spec 6.5). `checked` is False when nobody looked (offline)."""

    open_pull_requests: frozenset[int] = frozenset()
    active_run_shas: frozenset[str] = frozenset()  # head_sha of queued and in-progress runs
    active_runs: int = 0
    checked: bool = True

    def why(self, tag: str) -> str | None:
        pr = _PR_TAG_RE.fullmatch(tag) if self.open_pull_requests else None
        if pr and int(pr.group(1)) in self.open_pull_requests:
            return f"open PR #{int(pr.group(1))}"
        if self.active_run_shas:
            last = tag.rsplit("-", 1)[-1].lower()
            if last[:7] in self._prefixes and _HEX_RE.fullmatch(last):
                for sha in self.active_run_shas:
                    if sha.lower().startswith(last):
                        return f"run of {last} queued or in progress"
        return None

    @cached_property
    def _prefixes(self) -> frozenset[str]:
        return frozenset(sha[:7].lower() for sha in self.active_run_shas)
