"""Registry storage by tag pattern over a Charon-like package in the real loopback registry (prune's test
world: multi-arch indexes with attestations, a platform image shared by two indexes, a cosign signature, OCI
referrers with their fallback tag index, untagged orphans). The expected numbers are computed here by walking
the registry's manifests over plain HTTP, with this file's own grouping rules."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.metrics.helpers import run_metrics
from tests.support.fakegithub import FakeGitHub
from tests.support.fakegithub.fixtures import serve_fake_github
from tests.support.images import ImageFactory
from tests.support.prune_world import OWNER, REPO, World, build_charon_world
from tests.support.services import Registry

pytestmark = pytest.mark.services

ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])  # fmt: skip
REFERRER_TAG = re.compile(r"sha256-([0-9a-f]{64})(?:\.(?:sig|att|sbom))?")
SEMVER = re.compile(r"v?\d+\.\d+(?:\.\d+(?:-[0-9A-Za-z.-]+)?)?")


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    yield from serve_fake_github()


def manifests(registry: Registry, repository: str, digests: set[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    todo = list(digests)
    while todo:
        digest = todo.pop()
        if digest in found:
            continue
        answer = requests.get(f"{registry.url}/v2/{repository}/manifests/{digest}", headers={"Accept": ACCEPT},
                              timeout=10)  # fmt: skip
        answer.raise_for_status()
        found[digest] = answer.json()
        todo += [child["digest"] for child in found[digest].get("manifests", [])]
    return found


def group_of(tags: list[str]) -> str | None:
    own = [t for t in tags if not REFERRER_TAG.fullmatch(t)]
    if not tags:
        return "untagged"
    if not own:
        return None
    if any(t in ("latest", "dev") or SEMVER.fullmatch(t) for t in own):
        return "protected"
    for prefix in ("pr-", "feature-", "sha-", "nightly-"):
        if any(t.startswith(prefix) for t in own):
            return prefix + "*"
    return "other"


def expected_storage(registry: Registry, world: World) -> tuple[int, dict[str, tuple[int, int, int]]]:
    """(total bytes, group -> (versions, manifests reached, bytes))."""
    versions = {v.name: list(v.tags) for v in world.package.versions()}
    docs = manifests(registry, world.repository, set(versions))
    subjects: dict[str, list[str]] = defaultdict(list)  # digest -> manifests or versions that refer to it
    for digest, doc in docs.items():
        if "subject" in doc:
            subjects[doc["subject"]["digest"]].append(digest)
    for digest, tags in versions.items():
        for tag in tags:
            match = REFERRER_TAG.fullmatch(tag)
            if match:
                subjects["sha256:" + match.group(1)].append(digest)

    def reach(roots: list[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(roots)
        while todo:
            digest = todo.pop()
            if digest in seen:
                continue
            seen.add(digest)
            todo += [c["digest"] for c in docs.get(digest, {}).get("manifests", [])] + subjects.get(digest, [])
        return seen

    def blobs(digests: set[str]) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for digest in digests:
            doc = docs.get(digest, {})
            if "layers" in doc:
                for blob in [doc["config"], *doc["layers"]]:
                    sizes[blob["digest"]] = blob["size"]
        return sizes

    roots: dict[str, list[str]] = defaultdict(list)
    for digest, tags in versions.items():
        name = group_of(tags)
        if name not in (None, "untagged"):
            roots[name].append(digest)
    reached = {name: reach(digests) for name, digests in roots.items()}
    tagged = set().union(*reached.values())
    orphans = [d for d, tags in versions.items() if not tags and d not in tagged]
    roots["untagged"] = orphans
    reached["untagged"] = reach(orphans)
    total = sum(blobs(set(docs)).values())
    return total, {name: (len(roots[name]), len(reached[name]), sum(blobs(reached[name]).values())) for name in roots}


def test_storage_by_tag_pattern_counts_each_blob_once_and_a_second_run_reads_no_manifest(
    gh: FakeGitHub, registry: Registry, image_factory: ImageFactory, tmp_path: Path
) -> None:
    world = build_charon_world(gh, registry, image_factory)
    gh.add_workflow(REPO, "docker-build.yml")
    inputs = {"package": world.package_name, "owner": OWNER, "registry-host": registry.host, "since": "7d"}
    env = {"GITHUB_REPOSITORY": REPO}
    first = run_metrics(gh, tmp_path / "one", env=env, **inputs)
    assert first.code == 0, first.stdout
    storage = first.doc["storage"]
    total, groups = expected_storage(registry, world)
    assert storage["total_bytes"] == total == int(first.outputs["storage-bytes"])
    assert storage["versions"] == len(world.package.versions())
    assert storage["unmeasured_manifests"] == 0
    measured = {g["name"]: (g["versions"], g["manifests"], g["bytes"]) for g in storage["groups"] if g["versions"]}
    assert measured == groups
    # Groups share layers (the same base, a platform image shared by dev and an old sha index): each blob is in
    # the total once, so the groups' bytes add up to more.
    assert sum(g["bytes"] for g in storage["groups"]) > total
    assert first.doc["requests"]["registry_manifest_reads"] >= storage["versions"]
    assert "### Registry storage by tag pattern" in first.summary

    second = run_metrics(gh, tmp_path / "two", env=env, state=first.outputs["report-path"], **inputs)
    assert second.doc["storage"] == storage
    assert second.doc["requests"]["registry_manifest_reads"] == 0
    assert second.doc["requests"]["manifests_reused"] >= storage["versions"]
