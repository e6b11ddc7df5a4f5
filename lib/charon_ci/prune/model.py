"""What a prune run knows about a package and the work in flight: plain data, no policy and no I/O.

Shared by the retention core (which judges it) and the edges (which fetch it), so neither imports the other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, NamedTuple

__all__ = ["InUse", "PackageVersion", "collect_versions", "parse_versions", "shown"]

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


class PackageVersion(NamedTuple):
    """One manifest digest in the package, with every tag it carries.

    A named tuple, not a frozen dataclass: equally immutable, and made twice as fast (a run makes one for
    each of up to hundreds of thousands of versions)."""

    id: int
    digest: str
    tags: tuple[str, ...]
    created_at: datetime


_SEQUENCES = (list, tuple)


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
    created = datetime.min
    for position, item in enumerate(items):
        try:
            version_id, digest, stamp = item["id"], item["name"], item["created_at"]
            try:
                tags = item["metadata"]["container"]["tags"]
            except KeyError:  # a version without tags may leave out any level
                tags = item.get("metadata", _NOTHING).get("container", _NOTHING).get("tags", ())
            if stamp != last_stamp or type(stamp) is not str:
                created = datetime.fromisoformat(stamp)
                if created.tzinfo is None:
                    created = created.replace(tzinfo=UTC)
                last_stamp = stamp
        except (AttributeError, KeyError, TypeError, ValueError):
            raise ValueError(f"{source}: item {position} is not a container package version") from None
        if (
            type(version_id) is not int  # bool is an int to isinstance; JSON true is not an id
            or type(digest) is not str
            or not digest
            or not isinstance(tags, _SEQUENCES)  # tuple() would also take a string or a dict
            or (tags and not all(type(tag) is str for tag in tags))
        ):
            raise ValueError(f"{source}: item {position} is not a container package version")
        # Pages listed while another run deletes can repeat a version: merge its tags (judging the union
        # only ever keeps more). Two versions sharing an id or a digest would mix up their verdicts: refused.
        earlier = by_id.get(version_id)
        if earlier is not None and earlier.digest == digest:
            merged = tuple(dict.fromkeys(earlier.tags + tuple(tags)))
            by_id[version_id] = earlier._replace(tags=merged)
            continue
        if earlier is not None or digest in digests:
            raise ValueError(f"{source}: item {position} repeats the id or digest of another version")
        by_id[version_id] = PackageVersion(version_id, digest, tuple(tags), created)
        digests.add(digest)
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
