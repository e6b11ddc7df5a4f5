"""Which manifests a kept image still needs: mark from the kept versions, sweep only what was not reached.

Edges followed from a reached manifest:
- its children, when it is an index (platform manifests, buildx attestation manifests, nested indexes);
- its referrers: manifests whose OCI `subject` is it, and versions tagged with the cosign / OCI fallback
  referrer tags `sha256-<hex>`, `sha256-<hex>.sig`, `.att`, `.sbom` naming it.

A reached manifest whose content is unknown (not read yet, or unreadable) might have children of its own;
the caller learns about it through `Marking.unresolved` / `Marking.unreadable` and must not treat anything
it might reference as unreachable. No I/O here: the graph is whatever the caller managed to read.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from charon_ci.prune.model import shown

_REFERRER_TAG_RE = re.compile(r"sha256-([a-f0-9]{64})(?:\.(?:sig|att|sbom))?")


def referrer_subject(tag: str) -> str | None:
    """The digest a referrer tag points at (`sha256-<hex>.sig` -> `sha256:<hex>`), else None."""
    if not tag.startswith("sha256-"):
        return None  # most tags: no need to run the pattern
    match = _REFERRER_TAG_RE.fullmatch(tag)
    return f"sha256:{match.group(1)}" if match else None


def short_digest(digest: str) -> str:
    """`algorithm:` and the first 12 characters after it (the whole text when it has no `:`), for logs."""
    colon = digest.find(":")
    return shown(digest if colon < 0 else digest[: colon + 13])


@dataclass(frozen=True, slots=True)
class ChildRef:
    """One entry of an index.

    `may_have_children` is False when its media type says image manifest: nothing below it to follow, so
    it need not be read for reachability. `platform` is True when the entry names a platform (or is a
    buildx attestation of one): it is an image of this index, not a referrer of some other manifest. Other
    entries (a referrers index lists manifests that carry a `subject`) must be read to know what they are.
    """

    digest: str
    may_have_children: bool = False
    platform: bool = True


@dataclass(frozen=True, slots=True)
class ManifestFacts:
    """What was learned by reading one manifest."""

    digest: str
    children: tuple[ChildRef, ...] = ()
    subject: str | None = None
    # (digest, size) of the config and layer blobs of an image manifest; used for bytes freed only.
    blobs: tuple[tuple[str, int], ...] = ()
    is_index: bool = False


class ManifestGraph:
    """The manifests read so far, and those that could not be read (digest -> why). Treat as immutable:
    `with_facts` returns a new graph."""

    def __init__(
        self, manifests: Mapping[str, ManifestFacts] | None = None, unreadable: Mapping[str, str] | None = None
    ) -> None:
        self.manifests: Mapping[str, ManifestFacts] = dict(manifests or {})
        self.unreadable: Mapping[str, str] = {
            digest: why for digest, why in (unreadable or {}).items() if digest not in self.manifests
        }
        self._parents: dict[str, list[str]] = {}
        self._platform_entries: set[str] = set()
        self._leaves: set[str] = set()
        self._referrers: dict[str, list[str]] = {}
        for facts in self.manifests.values():
            for child in facts.children:
                self._parents.setdefault(child.digest, []).append(facts.digest)
                if not child.may_have_children:
                    self._leaves.add(child.digest)
                if child.platform:
                    self._platform_entries.add(child.digest)
            if facts.subject:
                self._referrers.setdefault(facts.subject, []).append(facts.digest)

    def parents(self, digest: str) -> list[str]:
        """Read manifests that list `digest` as a child."""
        return self._parents.get(digest, [])

    def referrers(self, digest: str) -> list[str]:
        """Read manifests whose `subject` is `digest`."""
        return self._referrers.get(digest, [])

    def is_known_leaf(self, digest: str) -> bool:
        """Listed by some read index as an image manifest: nothing below it to follow."""
        return digest in self._leaves

    def role_known(self, digest: str) -> bool:
        """We know whether it refers to anything: it was read, or a read index lists it as a platform."""
        return digest in self.manifests or digest in self._platform_entries

    def with_facts(self, facts: Iterable[ManifestFacts], unreadable: Mapping[str, str]) -> ManifestGraph:
        manifests = dict(self.manifests)
        manifests.update((item.digest, item) for item in facts)
        return ManifestGraph(manifests, {**self.unreadable, **unreadable})


@dataclass
class Marking:
    # reached digest -> the digest it was reached from (a root maps to itself)
    reached: dict[str, str]
    # reached digests whose manifest has not been read and might have children
    unresolved: set[str]
    # reached digests whose manifest could not be read
    unreadable: set[str]


def mark(
    roots: Iterable[str],
    graph: ManifestGraph | None,
    tag_referrers: Mapping[str, list[str]],
) -> Marking:
    """Everything reachable from `roots`. `tag_referrers` maps a subject digest to the digests of versions
    carrying a referrer tag for it. Without a graph only tag referrers are followed."""
    if graph is None and not tag_referrers:
        return Marking({root: root for root in roots}, set(), set())  # nothing to follow from any root
    reached: dict[str, str] = {}
    queue: deque[str] = deque()
    for root in roots:
        if root not in reached:
            reached[root] = root
            queue.append(root)
    unresolved: set[str] = set()
    unreadable: set[str] = set()
    while queue:
        digest = queue.popleft()
        following: Iterable[str] = tag_referrers.get(digest, ())
        if graph is not None:
            facts = graph.manifests.get(digest)
            children: Iterable[str] = ()
            if facts is not None:
                children = [child.digest for child in facts.children]
            elif digest in graph.unreadable:
                unreadable.add(digest)
            elif not graph.is_known_leaf(digest):
                unresolved.add(digest)
            following = [*following, *children, *graph.referrers(digest)]
        for nxt in following:
            if nxt not in reached:
                reached[nxt] = digest
                queue.append(nxt)
    return Marking(reached, unresolved, unreadable)
