"""Property test over random registry states: what is kept, used or reachable is never planned for deletion,
the plan is exact when every manifest can be read, the order of the listing changes nothing, and planning
again after the deletions deletes nothing.

The checks use their own small model (closure over the *true* manifest graph, their own reading of PR and
sha tags), not the planner's helpers. The world generator respects the one assumption the planner documents:
a tagged version can be the child of an index (`imagetools create`) only when that index is readable, since
an unreadable or offline index cannot show it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from charon_ci.prune.model import InUse, PackageVersion
from charon_ci.prune.policy import ACTIVE_RUN_BUFFER, Plan, Policy, build_policy, plan, plan_with_reads
from charon_ci.prune.reachability import ChildRef, ManifestFacts, ManifestGraph

NOW = datetime(2026, 2, 4, 3, 0, tzinfo=UTC)
SHAS = [f"{n:07x}" + "e" * 33 for n in range(0xABC1230, 0xABC1236)]
SEMVER_RE = re.compile(r"v?\d+\.\d+(\.\d+(-[0-9A-Za-z.-]+)?)?")
POLICIES = [
    build_policy([], []),
    build_policy([], [], min_age="0m"),
    build_policy(["pr-*=1h", "*=3d"], ["latest"], min_age="1h", keep_last="1"),
    build_policy(["sha-*=10d", "pr-*=1d"], [], keep_last="2"),
    build_policy(["*=0m"], ["dev", r"v\d+\..*"], min_age="0m"),
]
# NOSHRINK=1 skips shrinking (a failure in a 36-version world can take minutes to shrink).
PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
PHASES += [] if os.environ.get("NOSHRINK") else [Phase.shrink]
STATS = {"deleted": 0, "kept": 0, "blocked": 0, "examples": 0, "exact": 0}


@dataclass
class World:
    versions: list[PackageVersion]
    truth: dict[str, ManifestFacts]  # every manifest as it really is
    unreadable: set[str]  # reads of these fail
    in_use: InUse
    policy: Policy
    online: bool
    order: list[int]  # another order of the same versions: GitHub promises none


def dg(n: int) -> str:
    return f"sha256:{n:064x}"


@st.composite
def worlds(draw: st.DrawFn) -> World:
    count = draw(st.integers(min_value=1, max_value=36))
    online = draw(st.booleans())
    flaky = draw(st.booleans())  # some manifests cannot be read
    kinds = draw(st.lists(st.sampled_from(["index", "image", "untagged"]), min_size=count, max_size=count))
    # Ages in minutes: anywhere in 90 days, or within half an hour of a limit (1h, 1d, 2d, 3d, 7d, 10d, 30d,
    # each plus the one-hour buffer), where off-by-a-buffer mistakes show.
    edges = [h * 60 + extra for h in (1, 24, 48, 72, 168, 240, 720) for extra in (0, 60)]
    near_edge = st.builds(lambda e, d: max(e + d, 0), st.sampled_from(edges), st.integers(-30, 30))
    ages = draw(st.lists(st.one_of(st.integers(0, 90 * 24 * 60), near_edge), min_size=count, max_size=count))
    used_tags: set[str] = set()
    versions: list[PackageVersion] = []
    unreadable: set[str] = set()
    for i in range(count):
        tags: list[str] = []
        if kinds[i] != "untagged":
            sha = draw(st.sampled_from(SHAS))[:7]
            candidates = draw(
                st.lists(
                    st.one_of(
                        st.builds(lambda n, s=sha: f"pr-{n}-{s}", st.integers(1, 6)),
                        st.just(f"sha-{sha}"),
                        st.builds(lambda w, s=sha: f"feature-{w}-{s}", st.sampled_from(["dns", "ui"])),
                        st.builds(lambda d: f"nightly-2026-01-{d:02d}", st.integers(1, 28)),
                        st.sampled_from(["latest", "dev", "v1.2.3", "1.2", "v2.0.0-rc.1", "misc", "edge"]),
                        # a cosign signature / attestation / SBOM, or an OCI fallback referrers tag: an
                        # image manifest pushed after its subject
                        st.builds(
                            lambda n, ext: f"sha256-{n:064x}{ext}",
                            st.integers(0, max(i - 1, 0)),
                            st.sampled_from([".sig", ".att", ".sbom", ""]),
                        )
                        if kinds[i] == "image"
                        else st.just("edge"),
                    ),
                    min_size=1,
                    max_size=3,
                )
            )
            tags = [t for t in dict.fromkeys(candidates) if t not in used_tags]
            used_tags.update(tags)
        versions.append(PackageVersion(i, dg(i), tuple(tags), NOW - timedelta(minutes=ages[i])))
        if online and flaky and draw(st.integers(0, 5)) == 0:
            unreadable.add(dg(i))

    truth: dict[str, ManifestFacts] = {}
    untagged = [i for i in range(count) if not versions[i].tags]
    subject_of: list[str | None] = [
        dg(draw(st.integers(0, count - 1))) if kinds[i] == "untagged" and draw(st.integers(0, 5)) == 0 else None
        for i in range(count)
    ]  # OCI referrers, of anything (even of a later index: allowed by the spec)
    for i in range(count):
        children: list[ChildRef] = []
        subject = subject_of[i]
        if kinds[i] == "index":
            # Content addressing makes the graph acyclic: an index lists only manifests that existed first.
            pool = [j for j in untagged if j < i]
            if online and dg(i) not in unreadable:
                pool += [j for j in range(i) if versions[j].tags]
            if pool:
                for j in draw(st.lists(st.sampled_from(pool), max_size=4, unique=True)):
                    # A referrer (a manifest with a subject) is never listed as a platform of an index.
                    platform = subject_of[j] is None and draw(st.booleans())
                    children.append(ChildRef(dg(j), may_have_children=kinds[j] == "index", platform=platform))
        truth[dg(i)] = ManifestFacts(dg(i), tuple(children), subject, is_index=bool(children))

    open_prs = frozenset(draw(st.sets(st.integers(1, 6), max_size=3)))
    active = frozenset(draw(st.sets(st.sampled_from(SHAS), max_size=2)))
    runs = len(active) + draw(st.integers(0, 1))
    policy = draw(st.sampled_from(POLICIES))
    order = draw(st.permutations(range(count)))
    return World(versions, truth, unreadable, InUse(open_prs, active, runs), policy, online, list(order))


def run_plan(world: World, versions: Sequence[PackageVersion]) -> Plan:
    if not world.online:
        return plan(versions, world.policy, world.in_use, NOW, None)

    def read(digests: Sequence[str]) -> tuple[list[ManifestFacts], dict[str, str]]:
        facts = [world.truth[d] for d in digests if d in world.truth and d not in world.unreadable]
        return facts, {d: "HTTP 500" for d in digests if d in world.unreadable}

    result, _ = plan_with_reads(versions, world.policy, world.in_use, NOW, read)
    return result


# ---------------------------------------------------------------------------------- the reference model


REFERRER_TAG_RE = re.compile(r"sha256-([0-9a-f]{64})(\.sig|\.att|\.sbom)?")


def is_sig(tag: str) -> bool:
    """A cosign `.sig`/`.att`/`.sbom` tag or an OCI fallback referrers tag: it names its subject."""
    return REFERRER_TAG_RE.fullmatch(tag) is not None


def tag_must_stay(world: World, version: PackageVersion, tag: str) -> bool:
    """Protected or in use, by this test's own reading of the rules."""
    if world.policy.protect and any(re.fullmatch(rule.source, tag) for rule in world.policy.protect):
        return True
    pr = re.fullmatch(r"pr-(\d+)-.*", tag)
    if pr and int(pr.group(1)) in world.in_use.open_pull_requests:
        return True
    suffix = tag.rsplit("-", 1)[-1]
    return len(suffix) >= 7 and any(sha.startswith(suffix) for sha in world.in_use.active_run_shas)


def closure(world: World, roots: set[str], present: set[str]) -> set[str]:
    """Everything the true graph reaches from `roots`: children, subject referrers, referrer tags."""
    referrers: dict[str, set[str]] = {}
    for facts in world.truth.values():
        if facts.subject:
            referrers.setdefault(facts.subject, set()).add(facts.digest)
    for version in world.versions:
        for tag in version.tags:
            match = REFERRER_TAG_RE.fullmatch(tag)
            if match:
                referrers.setdefault("sha256:" + match.group(1), set()).add(version.digest)
    seen = set(roots)
    todo = list(roots)
    while todo:
        digest = todo.pop()
        nxt = {c.digest for c in world.truth[digest].children} | referrers.get(digest, set())
        for item in nxt & present:
            if item not in seen:
                seen.add(item)
                todo.append(item)
    return seen


def expected_deletions(world: World, versions: Sequence[PackageVersion]) -> set[int]:
    """What an exact planner deletes when every manifest can be read."""
    policy = world.policy
    buffer = ACTIVE_RUN_BUFFER if world.in_use.active_runs else timedelta(0)
    newest: dict[int, set[int]] = {}
    for index in range(len(policy.rules)):
        members = [v for v in versions if any(policy.rule_for(t) == index for t in v.tags if not is_sig(t))]
        members.sort(key=lambda v: (v.created_at, v.id), reverse=True)
        newest[index] = {v.id for v in members[: policy.keep_last]}
    roots: set[str] = set()
    for version in versions:
        age = NOW - version.created_at
        if age < policy.min_age + buffer:
            roots.add(version.digest)
        for tag in version.tags:
            if tag_must_stay(world, version, tag):
                roots.add(version.digest)
            elif tag.startswith("sha256-"):
                continue
            else:
                rule = policy.rule_for(tag)
                if rule is None or age < policy.rules[rule].lifetime + buffer or version.id in newest[rule]:
                    roots.add(version.digest)
    present = {v.digest for v in versions}
    kept = closure(world, roots, present)
    return {v.id for v in versions if v.digest not in kept}


# ---------------------------------------------------------------------------------- the properties


def check_safe(world: World, versions: Sequence[PackageVersion], result: Plan) -> None:
    deleted = {d.version.digest for d in result.delete}
    kept = {d.version.digest for d in result.keep}
    assert deleted | kept == {v.digest for v in versions} and not deleted & kept
    buffer = ACTIVE_RUN_BUFFER if world.in_use.active_runs else timedelta(0)
    for decision in result.delete:
        version = decision.version
        assert NOW - version.created_at >= world.policy.min_age + buffer, decision
        for tag in version.tags:
            assert not tag_must_stay(world, version, tag), (tag, decision)
            rule = world.policy.rule_for(tag)
            if not tag.startswith("sha256-"):
                assert rule is not None, "a tag that matches no rule is never deleted"
                assert NOW - version.created_at >= world.policy.rules[rule].lifetime + buffer, (tag, decision)
        if not world.online:
            assert version.tags, "offline plans never delete untagged versions"
        assert decision.reasons, decision
    for decision in result.keep:
        assert decision.reasons, decision
    for index, _rule in enumerate(world.policy.rules):
        members = sorted(
            (v for v in versions if any(world.policy.rule_for(t) == index for t in v.tags if not is_sig(t))),
            key=lambda v: (v.created_at, v.id),
            reverse=True,
        )
        newest = {v.digest for v in members[: world.policy.keep_last]}
        assert not newest & deleted, "one of a rule's keep-last newest versions is planned for deletion"
    reachable = closure(world, kept, {v.digest for v in versions})
    assert not reachable & deleted, "a version reachable from a kept one is planned for deletion"
    if result.blocked_by:
        assert all(d.version.tags for d in result.delete), "untagged deleted despite an unreadable kept manifest"
    # Oldest group first, a parent before its children: no deleted parent appears after its child.
    position = {d.version.digest: n for n, d in enumerate(result.delete)}
    for digest, n in position.items():
        for child in world.truth[digest].children:
            if child.digest in position and world.online and digest not in world.unreadable:
                assert position[child.digest] > n, "a child is deleted before its index"


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=PHASES)
@given(worlds())
def test_never_deletes_what_must_stay_and_second_run_deletes_nothing(world: World) -> None:
    first = run_plan(world, world.versions)
    check_safe(world, world.versions, first)
    # The same versions listed in another order give the same plan, down to the order of deletions.
    reordered = run_plan(world, [world.versions[i] for i in world.order])
    assert [(d.version.id, d.summary) for d in reordered.delete] == [(d.version.id, d.summary) for d in first.delete]
    assert [(d.version.id, d.summary) for d in reordered.keep] == [(d.version.id, d.summary) for d in first.keep]
    if world.online and not world.unreadable:
        assert {d.version.id for d in first.delete} == expected_deletions(world, world.versions)
    remaining = [v for v in world.versions if v.digest not in first.delete_digests]
    second = run_plan(world, remaining)
    check_safe(world, remaining, second)
    assert not second.delete, [d.summary for d in second.delete]
    STATS["examples"] += 1
    STATS["deleted"] += len(first.delete)
    STATS["kept"] += len(first.keep)
    STATS["blocked"] += bool(first.blocked_by)
    STATS["exact"] += world.online and not world.unreadable


def test_the_property_test_saw_real_work() -> None:
    """Guards against a generator that only ever produces trivial worlds (runs after the test above)."""
    if STATS["examples"] == 0:
        test_never_deletes_what_must_stay_and_second_run_deletes_nothing()
    assert STATS["examples"] >= 500
    assert STATS["deleted"] > STATS["examples"]  # on average more than one deletion per world
    assert STATS["kept"] > STATS["examples"]
    assert STATS["blocked"] > 10
    assert STATS["exact"] > 100


def test_unreadable_graph_fixture_sanity() -> None:
    graph = ManifestGraph({}, {dg(1): "HTTP 500"})
    assert graph.unreadable == {dg(1): "HTTP 500"}
    assert SEMVER_RE.fullmatch("v1.2.3")
