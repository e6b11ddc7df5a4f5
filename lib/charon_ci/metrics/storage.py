"""Registry storage by tag pattern: pure, over prune's version and manifest facts.

Groups follow the prune action's own rules (charon_ci.prune.policy), so the two actions agree on what a tag
is: a version with a protected tag is `protected`; else the first retention pattern any of its tags
matches (`pr-*`, `feature-*`, `sha-*`, `nightly-*` by default); else `other`. A version whose only tags are
referrer tags (`sha256-<hex>.sig`, ...) follows its subject, like an OCI referrer does. Untagged versions
that no tagged one reaches (an index's platform images and attestations are reached) are `untagged`.

Bytes are the sizes of config and layer blobs listed by the image manifests a group reaches (through index
children and referrers), each blob counted once per group. `exclusive_bytes` counts the blobs no other
group reaches (what deleting the group would free); the package total counts every blob once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from charon_ci.prune.model import PackageVersion
from charon_ci.prune.policy import Policy
from charon_ci.prune.reachability import ManifestFacts, ManifestGraph, mark, referrer_subject

PROTECTED = "protected"
OTHER = "other"
UNTAGGED = "untagged"


@dataclass
class Group:
    name: str
    versions: int = 0
    tags: int = 0
    manifests: int = 0
    bytes: int = 0
    exclusive_bytes: int = 0
    unmeasured_manifests: int = 0  # reached but not readable: their blobs are missing from `bytes`

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": self.versions,
            "tags": self.tags,
            "manifests": self.manifests,
            "bytes": self.bytes,
            "exclusive_bytes": self.exclusive_bytes,
            "unmeasured_manifests": self.unmeasured_manifests,
        }


@dataclass
class Storage:
    package: str
    versions: int
    total_bytes: int
    groups: list[Group] = field(default_factory=list)
    unmeasured_manifests: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "versions": self.versions,
            "total_bytes": self.total_bytes,
            "unmeasured_manifests": self.unmeasured_manifests,
            "groups": [group.as_json() for group in self.groups],
        }


def group_name(tags: Sequence[str], policy: Policy) -> str | None:
    """The group of a version's tags; None when every tag is a referrer tag (it follows its subject)."""
    own = [tag for tag in tags if referrer_subject(tag) is None]
    if not tags:
        return UNTAGGED
    if not own:
        return None
    if any(policy.protected_by(tag) is not None for tag in own):
        return PROTECTED
    rules = [index for tag in own if (index := policy.rule_for(tag)) is not None]
    return policy.rules[min(rules)].pattern if rules else OTHER


def measure(
    package: str,
    versions: Sequence[PackageVersion],
    manifests: Mapping[str, ManifestFacts],
    unreadable: Mapping[str, str],
    policy: Policy,
) -> Storage:
    graph = ManifestGraph(manifests, unreadable)
    by_digest = {version.digest: version for version in versions}
    tag_referrers: dict[str, list[str]] = {}
    roots: dict[str, list[str]] = {}
    followers: list[PackageVersion] = []
    for version in versions:
        name = group_name(version.tags, policy)
        if name is None:
            followers.append(version)
            for tag in version.tags:
                subject = referrer_subject(tag)
                if subject is not None:
                    tag_referrers.setdefault(subject, []).append(version.digest)
        elif name != UNTAGGED:
            roots.setdefault(name, []).append(version.digest)
    # A referrer-tagged version whose subject is not in the package has nothing to follow: `other`.
    for version in followers:
        subjects = [s for tag in version.tags if (s := referrer_subject(tag)) is not None]
        if not any(subject in by_digest for subject in subjects):
            roots.setdefault(OTHER, []).append(version.digest)
    reached: dict[str, set[str]] = {
        name: set(mark(digests, graph, tag_referrers).reached) for name, digests in roots.items()
    }
    tagged_reach = set().union(*reached.values()) if reached else set()
    orphans = [v.digest for v in versions if not v.tags and v.digest not in tagged_reach]
    if orphans:
        reached[UNTAGGED] = set(mark(orphans, graph, tag_referrers).reached)
        roots[UNTAGGED] = orphans

    blob_sizes: dict[str, int] = {}
    group_blobs: dict[str, set[str]] = {}
    for name, digests in reached.items():
        blobs: set[str] = set()
        for digest in digests:
            facts = manifests.get(digest)
            if facts is None:
                continue
            for blob, size in facts.blobs:
                blob_sizes[blob] = size
                blobs.add(blob)
        group_blobs[name] = blobs
    owners: dict[str, int] = {}
    for blobs in group_blobs.values():
        for blob in blobs:
            owners[blob] = owners.get(blob, 0) + 1

    order = [rule.pattern for rule in policy.rules] + [PROTECTED, OTHER, UNTAGGED]
    groups: list[Group] = []
    for name in order:
        digests = reached.get(name, set())
        group = Group(name)
        group.versions = len(roots.get(name, []))
        group.tags = sum(len(by_digest[d].tags) for d in roots.get(name, []) if d in by_digest)
        group.manifests = len(digests)
        group.bytes = sum(blob_sizes[b] for b in group_blobs.get(name, set()))
        group.exclusive_bytes = sum(blob_sizes[b] for b in group_blobs.get(name, set()) if owners[b] == 1)
        group.unmeasured_manifests = sum(1 for d in digests if d not in manifests)
        groups.append(group)

    every_blob: dict[str, int] = {}
    for facts in manifests.values():
        every_blob.update(facts.blobs)
    known = set(by_digest) | set(manifests)
    return Storage(
        package=package,
        versions=len(versions),
        total_bytes=sum(every_blob.values()),
        groups=groups,
        unmeasured_manifests=sum(1 for d in known if d not in manifests),
    )
