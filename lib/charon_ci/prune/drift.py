"""How a package's versions list changed between two looks at it, and when a look can be trusted: pure.

GitHub pages the versions list by page number and promises no order. When another client deletes a version
between two of our page reads, every row after it moves up one place and the row that crossed the page
boundary is never seen; a version pushed meanwhile moves rows down and one is seen twice (harmless: the
copies merge). A version that was never seen looks absent, so its platform manifests, attestations and
signatures look referenced by nothing.

The rule used here: a look is complete (it saw every version that existed when it began, except those
removed while it ran) when a later look still shows every version it saw, apart from those this run deleted
itself. A skip needs a removal of a row the look had already read, and that row is then missing from the
next look. Callers plan on the union of their looks (a version seen once counts as present, with the tags
of its latest sighting), which only ever keeps more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from itertools import pairwise

from charon_ci.prune.model import PackageVersion, shown


@dataclass(frozen=True)
class Drift:
    """What a later look shows that an earlier one did not."""

    added: tuple[PackageVersion, ...] = ()  # not in the earlier look: pushed since, or skipped by it
    removed: tuple[PackageVersion, ...] = ()  # gone, and not deleted by this run: someone else deleted it
    retagged: tuple[tuple[PackageVersion, PackageVersion], ...] = ()  # (earlier, later)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.retagged)

    @property
    def shifted(self) -> bool:
        """Rows were removed: pages read while that happened may have skipped a version."""
        return bool(self.removed)

    def describe(self) -> str:
        parts: list[str] = []
        if self.added:
            parts.append(f"{len(self.added)} appeared ({_ids(v.id for v in self.added)})")
        if self.removed:
            parts.append(f"{len(self.removed)} disappeared ({_ids(v.id for v in self.removed)})")
        if self.retagged:
            changes = ", ".join(
                f"id {after.id}: {_tags(before)} -> {_tags(after)}" for before, after in self.retagged[:3]
            )
            more = f" and {len(self.retagged) - 3} more" if len(self.retagged) > 3 else ""
            parts.append(f"{len(self.retagged)} re-tagged ({changes}{more})")
        return "; ".join(parts) or "no change"


def _ids(ids: Iterable[int]) -> str:
    listed = [str(i) for i in ids]
    return "ids " + ", ".join(listed[:5]) + (f" and {len(listed) - 5} more" if len(listed) > 5 else "")


def _tags(version: PackageVersion) -> str:
    return ",".join(shown(tag) for tag in version.tags) or "untagged"


def drift(before: Iterable[PackageVersion], after: Iterable[PackageVersion], ours: Set[int] = frozenset()) -> Drift:
    """`after` compared with `before`; versions in `ours` (deleted by this run) are not counted as removed."""
    earlier = {v.id: v for v in before}
    later = {v.id: v for v in after}
    added = tuple(v for i, v in later.items() if i not in earlier)
    removed = tuple(v for i, v in earlier.items() if i not in later and i not in ours)
    retagged = tuple((v, later[i]) for i, v in earlier.items() if i in later and set(later[i].tags) != set(v.tags))
    return Drift(added, removed, retagged)


def merged(
    known: Mapping[int, PackageVersion], look: Iterable[PackageVersion], ours: Set[int] = frozenset()
) -> dict[int, PackageVersion]:
    """`known` brought up to date by a later look: every version the look shows (with its tags now), and
    every known version it misses that this run did not delete (another client deleted it, or the look
    skipped it; either way it stays, which only keeps more)."""
    result = {i: v for i, v in known.items() if i not in ours}
    result.update((v.id, v) for v in look)
    return result


@dataclass(frozen=True)
class Settled:
    """A listing built from consecutive looks."""

    versions: tuple[PackageVersion, ...]  # the union, latest tags
    trusted: bool  # some look was shown complete by the one after it
    looks: int
    drifts: tuple[Drift, ...]  # between consecutive looks

    @property
    def changed(self) -> bool:
        return any(d.changed for d in self.drifts)

    def describe(self) -> str:
        return "; ".join(f"look {n + 2}: {d.describe()}" for n, d in enumerate(self.drifts) if d.changed)


def settle(
    looks: Sequence[Sequence[PackageVersion]],
    known: Mapping[int, PackageVersion] | None = None,
    ours: Set[int] = frozenset(),
) -> Settled:
    """The union of `looks` (oldest first) over `known`; trusted when some look is followed by one that
    removes nothing. Nothing this run does happens between the looks, so `ours` holds throughout."""
    union: dict[int, PackageVersion] = dict(known or {})
    for look in looks:
        union = merged(union, look, ours)
    drifts = tuple(drift(a, b, ours) for a, b in pairwise(looks))
    trusted = any(not d.shifted for d in drifts)
    return Settled(tuple(union.values()), trusted, len(looks), drifts)
