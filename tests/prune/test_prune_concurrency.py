"""action-prune while the registry changes under it (issue 7), through the real registry behind the fake GitHub:
a delete between two page reads, a re-tag or a push after planning, a token GHCR refuses with a 404, and
rows served in any order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from charon_ci.prune.apply import Runtime
from tests.support.composite import parse_commands
from tests.support.fakegithub import Clock, FakeGitHub
from tests.support.fakegithub.fixtures import serve_fake_github
from tests.support.fakegithub.packages import VersionsRequest
from tests.support.images import ImageFactory
from tests.support.prune_world import NO_WAIT, World, action_inputs, build_charon_world, retag, run_prune, sha40
from tests.support.services import Registry

pytestmark = pytest.mark.services


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    yield from serve_fake_github(seed=7)


def digest_tagged(world: World, tag: str) -> str:
    return next(record.name for record in world.package.versions() if tag in record.tags)


def planned(outputs: dict[str, str]) -> set[str]:
    document = json.loads(Path(outputs["plan-path"]).read_text())
    return {item["digest"] for item in document["delete"]}


def put_release_at_a_page_boundary(world: World) -> str:
    """Serve the versions list in pages that end just before `v1.2.3`'s index; returns that digest."""
    release = digest_tagged(world, "v1.2.3")
    order = [record.name for record in world.package.versions()]  # the fake's order: newest first
    world.package.backend.controls.page_cap = order.index(release)
    assert order.index(release) > 0
    return release


def delete_on_page_two(world: World, victims: list[str]) -> None:
    """Another client deletes a version of page 1 each time a page 2 is asked for (until `victims` run out)."""

    def hook(request: VersionsRequest) -> None:
        if request.kind == "list" and request.page == 2 and victims:
            name = victims.pop(0)
            [record] = [r for r in world.package.versions() if r.name == name]
            world.package.backend.delete(record)

    world.package.backend.controls.on_request(hook)


def test_a_delete_between_page_reads_does_not_hide_a_release_and_the_list_is_read_again(
    gh: FakeGitHub, registry: Registry, image_factory: ImageFactory, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    world = build_charon_world(gh, registry, image_factory)
    put_release_at_a_page_boundary(world)
    victim = digest_tagged(world, "nightly-2026-01-02")
    delete_on_page_two(world, [victim])

    code, out, stats = run_prune(tmp_path, action_inputs(gh, registry, world), NO_WAIT)  # a dry run
    log = capsys.readouterr().out
    assert code == 0, log[-3000:]
    assert victim not in world.listed(), "the other client's delete happened between the page reads"
    wrong = planned(out) & world.keep
    assert not wrong, f"planned for deletion though v1.2.3 needs them: {sorted(wrong)}"
    assert planned(out) == world.delete, "every version seen is planned on (the deleted one answers 404 later)"
    assert stats.listings == 3
    assert "the versions list changed while it was read" in log and "planning on every version seen" in log


def test_a_list_that_keeps_losing_rows_keeps_every_untagged_version(
    gh: FakeGitHub, registry: Registry, image_factory: ImageFactory, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    world = build_charon_world(gh, registry, image_factory)
    world.package.backend.controls.page_cap = 30  # two pages in every listing
    victims = [r.name for r in world.package.versions()[:30] if r.name in world.delete][:3]
    assert len(victims) == 3
    delete_on_page_two(world, victims)

    code, out, stats = run_prune(tmp_path, action_inputs(gh, registry, world), NO_WAIT)
    log = capsys.readouterr().out
    assert code == 0, log[-3000:]
    assert not victims and stats.listings == 3
    untagged = {r.name for r in world.package.versions() if not r.tags}
    assert not planned(out) & world.keep
    assert not planned(out) & untagged, "every untagged version is kept while the listing cannot be trusted"
    notices = [c.message for c in parse_commands(log) if c.name == "notice"]
    assert any("every untagged version kept" in n and "lost rows while it was read" in n for n in notices), notices


def test_a_retag_after_planning_keeps_the_image_and_its_platforms(
    gh: FakeGitHub, registry: Registry, image_factory: ImageFactory, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    world = build_charon_world(gh, registry, image_factory, shuffle=3)
    feature_old = digest_tagged(world, f"feature-old-{sha40('fo')[:7]}")
    children = {r.name for r in world.package.versions() if not r.tags} & world.delete
    fired: list[int] = []

    def promote(request: VersionsRequest) -> None:
        # Right before the first DELETE is served: a release job promotes the expired image to v9.9.9.
        if request.kind == "delete" and not fired:
            fired.append(request.number)
            retag(registry, image_factory, world.repository, feature_old, "v9.9.9")

    world.package.backend.controls.on_request(promote)
    inputs = action_inputs(gh, registry, world, **{"dry-run": "false"})
    code, out, _ = run_prune(tmp_path, inputs, NO_WAIT)
    log = capsys.readouterr().out
    assert code == 0, log[-3000:]
    assert fired, "the re-tag happened during the run"
    left = world.listed()
    assert feature_old in left, "deleted carrying the protected tag v9.9.9"
    manifest = registry.client().get_manifest(world.repository, "v9.9.9")  # type: ignore[attr-defined]
    platforms = [entry.digest for entry in manifest.manifests]  # type: ignore[attr-defined]
    assert set(platforms) <= left, "v9.9.9 lost a platform"
    assert set(platforms) <= children
    assert left == world.keep | {feature_old, *platforms}
    assert "its tags changed during the run" in log and "v9.9.9" in log
    assert out["failed-count"] == str(1 + len(platforms))


def test_a_push_during_deleting_that_reuses_a_planned_platform_keeps_it(
    registry: Registry, image_factory: ImageFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rebuild pushes an index reusing a platform manifest of an expired image, and the next deletions
    come more than the freshness bound later (simulated clock): the look before them sees the push."""
    clock = Clock(frozen=True)
    with FakeGitHub(clock=clock) as gh:
        world = build_charon_world(gh, registry, image_factory, now=clock.now(), shuffle=5)
        # Every row of the list on its own page, in any order: the new push is on no particular page.
        world.package.backend.controls.page_cap = 1
        old_sha = digest_tagged(world, f"sha-{sha40('main-1')[:7]}")
        index = registry.client().get_manifest(world.repository, old_sha)  # type: ignore[attr-defined]
        arm64 = next(e for e in index.manifests if e.platform and e.platform.architecture == "arm64")  # type: ignore[attr-defined]
        deletes: list[int] = []

        def rebuild(request: VersionsRequest) -> None:
            if request.kind == "delete":
                deletes.append(request.number)
                if len(deletes) == 1:
                    image_factory.put_manifest(
                        world.repository, "sha-rebuilt",
                        json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                    "manifests": [{"mediaType": arm64.media_type, "digest": arm64.digest,
                                                   "size": arm64.size,
                                                   "platform": {"architecture": "arm64", "os": "linux"}}]}).encode(),
                        "application/vnd.oci.image.index.v1+json",
                    )  # fmt: skip
                    clock.advance(31)

        world.package.backend.controls.on_request(rebuild)
        runtime = Runtime(sleep=clock.sleep, monotonic=clock.now, wall=clock.now)
        inputs = action_inputs(gh, registry, world, **{"dry-run": "false"})
        code, out, stats = run_prune(tmp_path, inputs, runtime)
        log = capsys.readouterr().out
        assert code == 0, log[-3000:]
        assert arm64.digest in world.delete and arm64.digest in world.listed(), "the rebuilt image lost its platform"
        assert stats.freshness_looks >= 1 and int(out["failed-count"]) >= 1
        assert "kept on a fresh look" in log and "sha-rebuilt" in log


def test_a_token_without_admin_rights_is_refused_not_already_gone(
    gh: FakeGitHub, registry: Registry, image_factory: ImageFactory, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    world = build_charon_world(gh, registry, image_factory)
    world.package.backend.controls.admins = {"the-package-admin"}  # not gh.token's login
    inputs = action_inputs(gh, registry, world, **{"dry-run": "false"})
    code, out, _ = run_prune(tmp_path, inputs, NO_WAIT)
    log = capsys.readouterr().out
    assert code == 1, "a run that deleted nothing because it may not must fail"
    assert world.listed() == world.all_digests
    assert gh.count("DELETE", status=404) == 1, "stopped at the first refusal"
    assert out["deleted-count"] == "0" and int(out["failed-count"]) >= 1
    errors = [c.message for c in parse_commands(log) if c.name == "error"]
    assert len(errors) == 1 and "admin" in errors[0] and "Manage Actions access" in errors[0], errors
    assert "already gone" not in log


def test_a_version_another_run_deleted_is_already_gone(
    gh: FakeGitHub, registry: Registry, image_factory: ImageFactory, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """The other side of the 404: gone between our read and our DELETE, it is not a refusal."""
    world = build_charon_world(gh, registry, image_factory, shuffle=11)
    raced: list[str] = []

    def other_run(request: VersionsRequest) -> None:
        if request.kind == "delete" and not raced:
            [record] = [r for r in world.package.versions() if r.id == request.version_id]
            world.package.backend.delete(record)
            raced.append(record.name)

    world.package.backend.controls.on_request(other_run)
    inputs = action_inputs(gh, registry, world, **{"dry-run": "false"})
    code, out, _ = run_prune(tmp_path, inputs, NO_WAIT)
    log = capsys.readouterr().out
    assert code == 0, log[-3000:]
    assert world.listed() == world.keep
    assert out["failed-count"] == "0" and int(out["deleted-count"]) == len(world.delete) - 1
    assert "already gone" in log
