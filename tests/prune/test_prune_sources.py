"""The prune edges: manifests read into reachability facts, owner detection, the mid-run look at new pushes,
conditional listing, bytes freed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from charon_ci import oci, registry
from charon_ci.github import GithubClient
from charon_ci.prune.apply import GhcrWatch, Replanner, Runtime, measured_bytes
from charon_ci.prune.model import InUse
from charon_ci.prune.policy import Decision, build_policy
from charon_ci.prune.reachability import ManifestFacts, ManifestGraph
from charon_ci.prune.sources import GhcrPackage, InUseLookup, ManifestSource, manifest_facts, owner_type_from_event
from tests.support.fakegithub import FakeGitHub
from tests.support.images import ImageFactory, canonical_json
from tests.support.prune_world import OWNER, build_charon_world
from tests.support.services import Registry


def test_owner_type_comes_from_the_event_when_it_is_this_owner(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"repository": {"owner": {"login": "Wikid82", "type": "User"}}}))
    env = {"GITHUB_EVENT_PATH": str(event)}
    assert owner_type_from_event(env, "wikid82") == "User"
    assert owner_type_from_event(env, "someone-else") is None
    assert owner_type_from_event({"GITHUB_EVENT_PATH": str(tmp_path / "missing.json")}, "wikid82") is None


def test_user_packages_are_found_after_the_org_route_answers_404(fake_github: FakeGitHub) -> None:
    package = fake_github.add_package("wikid82", "charon", owner_type="User")
    package.add_version("sha256:" + "a" * 64, ["latest"])
    ghcr = GhcrPackage(
        GithubClient(fake_github.token, api_url=fake_github.url, sleep=lambda s: None), "wikid82", "charon"
    )
    [version] = ghcr.list_versions()
    assert version.tags == ("latest",) and ghcr.scope == "users/wikid82" and ghcr.list_requests == 2
    known = GhcrPackage(ghcr.client, "wikid82", "charon")
    known.detect_scope("User")
    assert len(known.list_versions()) == 1 and known.list_requests == 1


@pytest.mark.services
def test_manifests_become_reachability_facts(registry: Registry, image_factory: ImageFactory, repository: str) -> None:
    pushed = image_factory.push_index(repository, "x", attestations=True)
    sbom = image_factory.push_referrer(repository, pushed)
    source = ManifestSource(registry.client(), repository)  # type: ignore[attr-defined]
    fallback_digest = source.client.resolve(repository, oci.referrers_tag(pushed.digest)).digest
    facts, failed = source.read([pushed.digest, sbom.digest, fallback_digest, "sha256:" + "0" * 64])
    index, artifact, fallback = facts
    assert failed == {"sha256:" + "0" * 64: "manifest unknown to the registry"}
    assert index.is_index and len(index.children) == 4
    assert all(child.platform and not child.may_have_children for child in index.children)  # images + attestations
    assert artifact.subject == pushed.digest and artifact.blobs
    # A referrers index lists artifacts without a platform: they must be read to learn their subject.
    assert [c.digest for c in fallback.children] == [sbom.digest] and not fallback.children[0].platform


@pytest.mark.services
def test_a_push_during_the_run_that_reuses_a_planned_child_keeps_it(
    fake_github: FakeGitHub, registry: Registry, image_factory: ImageFactory
) -> None:
    world = build_charon_world(fake_github, registry, image_factory)
    client = GithubClient(fake_github.token, api_url=fake_github.url, sleep=lambda s: None)
    ghcr = GhcrPackage(client, OWNER, world.package_name)
    versions = ghcr.list_versions()
    source = ManifestSource(registry.client(), world.repository)  # type: ignore[attr-defined]
    in_use = InUse(frozenset({12}), frozenset({world.active_run_sha}), 1)
    replanner = Replanner(build_policy([], []), in_use, versions[0].created_at, source.read)
    result = replanner(versions)
    graph = replanner.graph
    pending: dict[str, Decision] = {d.version.digest: d for d in result.delete}
    # Someone pushes a new image that reuses a platform manifest this run is about to delete.
    reused = next(
        c.digest
        for d in result.delete
        for c in graph.manifests.get(d.version.digest, ManifestFacts("")).children
        if c.digest in pending and c.platform
    )
    child = registry.client().get_manifest(world.repository, reused)  # type: ignore[attr-defined]
    entry = {"mediaType": child.media_type, "digest": reused, "size": child.size,
             "platform": {"architecture": "amd64", "os": "linux"}}  # fmt: skip
    body = canonical_json({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [entry]})
    image_factory.put_manifest(world.repository, "sha-newpush", body, oci.OCI_INDEX)
    watch = GhcrWatch(ghcr, replanner, {v.id: v for v in versions}, Runtime(), basis=0.0)
    held = watch.look(pending, frozenset())
    assert set(held) == {reused}, held
    assert "referenced by kept" in held[reused] and "sha-newpush" in held[reused]
    assert watch.looks == 1 and watch.look_requests == 2  # two listings of one page: the second one agreed


def test_unchanged_pages_answer_304_and_a_full_last_page_is_asked_again(fake_github: FakeGitHub) -> None:
    package = fake_github.add_package(OWNER, "paged")
    for n in range(200):
        package.add_version(f"sha256:{n:064x}", [f"sha-{n:07x}"], created_at=1_700_000_000 + n)
    ghcr = GhcrPackage(GithubClient(fake_github.token, api_url=fake_github.url, sleep=lambda s: None), OWNER, "paged")
    ghcr.detect_scope("Organization")
    assert len(ghcr.list_versions()) == 200 and ghcr.list_requests == 2 and ghcr.unchanged_pages == 0
    assert len(ghcr.list_versions()) == 200
    # Both pages unchanged; the last one is full, so whether a third page exists is asked without an ETag.
    assert ghcr.list_requests == 5 and ghcr.unchanged_pages == 2
    assert fake_github.count(status=304) == 2
    package.add_version("sha256:" + "f" * 64, ["latest"], created_at=1_600_000_000)  # oldest: a third page
    assert len(ghcr.list_versions()) == 201
    assert fake_github.rate_limit().used == ghcr.list_requests - ghcr.unchanged_pages


def test_bytes_freed_counts_only_blobs_no_kept_image_uses() -> None:
    graph = ManifestGraph({
        "gone": ManifestFacts("gone", blobs=(("base", 100), ("app1", 10))),
        "gone2": ManifestFacts("gone2", blobs=(("base", 100), ("app2", 20))),
        "kept": ManifestFacts("kept", blobs=(("base", 100), ("app3", 30))),
    })  # fmt: skip
    assert measured_bytes(graph, ["gone", "gone2"], ["kept"]) == 30
    assert measured_bytes(graph, ["gone", "gone2", "kept"], []) == 160


def test_registry_errors_become_reasons_not_exceptions() -> None:
    class Broken:
        def get_manifest(self, repository: str, digest: str) -> oci.Manifest:
            raise registry.RegistryUnavailable("503 three times")

    source = ManifestSource(Broken(), "a/b")  # type: ignore[arg-type]
    assert source.read(["sha256:" + "1" * 64]) == ([], {"sha256:" + "1" * 64: "RegistryUnavailable: 503 three times"})
    assert manifest_facts  # the converter is exercised against the real registry above


def test_this_prune_run_is_not_an_active_run(fake_github: FakeGitHub) -> None:
    repo = fake_github.add_repo("wikid82/charon")
    own = fake_github.add_run(repo, "container-prune.yml", status="in_progress", conclusion=None, head_sha="a" * 40)
    other = fake_github.add_run(repo, status="queued", conclusion=None, head_sha="b" * 40)
    fake_github.add_pull(repo, "x", number=5, state="open")
    client = GithubClient(fake_github.token, api_url=fake_github.url, sleep=lambda s: None)
    facts = InUseLookup(client, "wikid82/charon", own_run_id=own.id).facts()
    assert facts.active_runs == 1 and facts.active_run_shas == frozenset({"b" * 40})
    assert facts.open_pull_requests == frozenset({5})
    assert InUseLookup(client, "wikid82/charon").facts().active_runs == 2
    assert other.id != own.id
