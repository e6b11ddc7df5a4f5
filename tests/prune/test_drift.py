"""charon_ci.prune.drift: what changed between two looks at the versions list, and when a look is trusted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from charon_ci.prune.drift import drift, merged, settle
from charon_ci.prune.model import PackageVersion

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def v(n: int, *tags: str) -> PackageVersion:
    return PackageVersion(n, f"sha256:{n:064x}", tags, WHEN)


def test_drift_names_what_appeared_disappeared_and_was_retagged_but_not_what_this_run_deleted() -> None:
    before = [v(1, "latest"), v(2), v(3, "sha-1"), v(4)]
    after = [v(1, "latest"), v(3, "sha-1", "v9.9.9"), v(5, "pr-1")]
    change = drift(before, after, ours={4})
    assert [x.id for x in change.added] == [5]
    assert [x.id for x in change.removed] == [2]
    assert [(a.id, b.tags) for a, b in change.retagged] == [(3, ("sha-1", "v9.9.9"))]
    assert change.changed and change.shifted
    assert "1 appeared (ids 5)" in change.describe() and "sha-1 -> sha-1,v9.9.9" in change.describe()
    assert not drift(before, before).changed and drift(before, before).describe() == "no change"
    assert not drift(before, [*before, v(9)]).shifted, "a push moves rows down: duplicates, never a skip"


def test_merged_keeps_what_a_look_misses_unless_this_run_deleted_it() -> None:
    known = {1: v(1, "a"), 2: v(2), 3: v(3)}
    result = merged(known, [v(1, "a", "b"), v(4)], ours={3})
    assert sorted(result) == [1, 2, 4] and result[1].tags == ("a", "b")


@pytest.mark.parametrize(
    ("looks", "trusted", "ids"),
    [
        # nothing changed: the second look shows the first was complete
        ([[v(1), v(2)], [v(1), v(2)]], True, [1, 2]),
        # a delete between page reads hid version 3 from the first look: not trusted until a third agrees
        ([[v(1), v(2)], [v(2), v(3)]], False, [1, 2, 3]),
        ([[v(1), v(2)], [v(2), v(3)], [v(2), v(3)]], True, [1, 2, 3]),
        # rows lost in every pair: never trusted; the union still holds everything seen
        ([[v(1), v(2), v(3)], [v(2), v(3)], [v(3), v(4)]], False, [1, 2, 3, 4]),
        # a push between the looks adds a row and loses none: trusted
        ([[v(1)], [v(1), v(5)]], True, [1, 5]),
    ],
)
def test_settle(looks: list[list[PackageVersion]], trusted: bool, ids: list[int]) -> None:
    result = settle(looks)
    assert result.trusted is trusted
    assert sorted(x.id for x in result.versions) == ids
    assert result.looks == len(looks) and len(result.drifts) == len(looks) - 1
