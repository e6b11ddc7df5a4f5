"""What a prune run knows about a package and the work in flight: plain data, no policy and no I/O.

Shared by the retention core (which judges it) and the edges (which fetch it), so neither imports the other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

__all__ = ["InUse", "PackageVersion", "collect_versions", "parse_versions", "shown"]

_PR_TAG_RE = re.compile(r"pr-(\d+)(?:-.*)?")
_HEX_RE = re.compile(r"[0-9a-f]{7,40}")
_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[A-Za-z0-9=_-]+")
# What a tag or digest may hold and still be printed as is; anything else came from a hand-made snapshot
# or a misbehaving server, and could forge log lines, runner commands (`::x::` at a line start, `##[x]`
# anywhere) or Markdown in the job summary.
_PLAIN_TEXT_RE = re.compile(r"[A-Za-z0-9_.-]*")


def shown(text: str) -> str:
    """`text` for a log line or the job summary: unchanged when a plain tag or digest, else quoted with
    every character outside letters, digits and `_ . -` written as a \\x / \\u escape."""
    if _PLAIN_TEXT_RE.fullmatch(text) or _DIGEST_RE.fullmatch(text):
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


@dataclass(frozen=True, slots=True)
class PackageVersion:
    """One manifest digest in the package, with every tag it carries."""

    id: int
    digest: str
    tags: tuple[str, ...]
    created_at: datetime


_NOTHING: dict[str, Any] = {}  # read-only default for absent fields


def parse_versions(items: Any, source: str) -> list[PackageVersion]:
    """Package versions from the GitHub REST `.../packages/container/NAME/versions` JSON (a list).

    Raises ValueError naming `source` and the first item that is not a container package version."""
    if not isinstance(items, list):
        raise ValueError(f"{source}: expected a JSON list of package versions")
    return collect_versions(items, source)


def collect_versions(items: Iterable[Any], source: str) -> list[PackageVersion]:
    """`parse_versions` over any iterable (a snapshot is read item by item, never held whole)."""
    by_id: dict[int, PackageVersion] = {}
    digests: set[str] = set()
    # Versions listed one after another often share their push's second: parse that time once.
    last_stamp: object = None
    last_created = datetime.min
    for position, item in enumerate(items):
        try:
            tags = item.get("metadata", _NOTHING).get("container", _NOTHING).get("tags", ())
            if not isinstance(tags, list | tuple):
                raise TypeError("tags is not a list")
            stamp = item["created_at"]
            if stamp != last_stamp or not isinstance(stamp, str):
                created = datetime.fromisoformat(stamp)
                last_stamp, last_created = stamp, created if created.tzinfo else created.replace(tzinfo=UTC)
            created = last_created
            version = PackageVersion(id=item["id"], digest=item["name"], tags=tuple(tags), created_at=created)
        except (AttributeError, KeyError, TypeError, ValueError):
            raise ValueError(f"{source}: item {position} is not a container package version") from None
        if (
            type(version.id) is not int  # bool is an int to isinstance; JSON true is not an id
            or not isinstance(version.digest, str)
            or not version.digest
            or (version.tags and not all(isinstance(tag, str) for tag in version.tags))
        ):
            raise ValueError(f"{source}: item {position} is not a container package version")
        # Pages listed while another run deletes can repeat a version: merge its tags (judging the union
        # only ever keeps more). Two versions sharing an id or a digest would mix up their verdicts: refused.
        earlier = by_id.get(version.id)
        if earlier is not None and earlier.digest == version.digest:
            merged = tuple(dict.fromkeys(earlier.tags + version.tags))
            by_id[version.id] = replace(earlier, tags=merged)
            continue
        if earlier is not None or version.digest in digests:
            raise ValueError(f"{source}: item {position} repeats the id or digest of another version")
        by_id[version.id] = version
        digests.add(version.digest)
    return list(by_id.values())


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
