"""action-pull-image's artifact path end to end through action.yml, as GitHub really serves artifacts: one
uploaded before upload-artifact v4 (`digest: null`), ones that expired by the fake's clock, and every hostile
artifact the issue names. A refused artifact is one `::error` naming what was tried, exit 1, no outputs,
nothing loaded, no tag moved, nothing tagged `local-tag` and nothing left in RUNNER_TEMP.

The registry holds the image, but not under the tag asked for (`manifest unknown`): the artifact decides.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.pull import world as w
from tests.pull.test_pull_action import artifact_requests, build_run
from tests.pull.world import PullWorld, pr_consumer, run_pull
from tests.support import artifacts, images
from tests.support.composite import ActionResult, ActionRunner
from tests.support.fakegithub import FakeGitHub

EngineState = list[tuple[str, tuple[str, ...]]]


@dataclass(frozen=True)
class Upstream:
    """A build's run with its image saved the way the build saves it (not yet uploaded)."""

    run_id: int
    expected: str  # the reference the consumer asks for (registry/repository:pr-17-5a6b7c8)
    image_id: str
    tar: Path  # `docker save` of the image tagged `expected`


@pytest.fixture
def local_tag() -> str:
    """Per test: the session's engine keeps `charon:local` from other tests."""
    return f"charon-{uuid.uuid4().hex[:8]}:local"


@pytest.fixture
def upstream(fake_github: FakeGitHub, world: PullWorld, repository: str, tmp_path: Path) -> Upstream:
    pushed = world.push(repository, None, revision=w.SHA)  # the registry has the image, not the tag
    expected = f"{world.name(repository)}:{w.TAG}"
    tar = tmp_path / "charon-pr-image.tar"
    world.saved_archive(pushed, expected, tar)
    return Upstream(build_run(fake_github), expected, pushed.config.digest, tar)


def engine_state(world: PullWorld) -> EngineState:
    """Every image the engine holds with its tags: what a refused artifact must leave unchanged."""
    return sorted((i["Id"], tuple(sorted(i.get("RepoTags") or ()))) for i in world.engine.api.images(all=True))


def pull(runner: ActionRunner, gh: FakeGitHub, world: PullWorld, tmp_path: Path, repository: str, run_id: int,
         local: str, **inputs: str) -> ActionResult:  # fmt: skip
    given = {"image-name": world.name(repository), "local-tag": local, **inputs}
    return run_pull(runner, gh, world, tmp_path, given, payload=pr_consumer(run_id))


def leftovers(runner: ActionRunner) -> list[str]:
    return sorted(p.name for p in runner.runner_temp.glob("charon-ci-artifact-*"))


def assert_refused(result: ActionResult, runner: ActionRunner, world: PullWorld, before: EngineState, local: str,
                   title: str = "Image not found") -> str:  # fmt: skip
    """One `::error` that names both sources tried; nothing loaded, tagged or left behind. Returns its message."""
    assert result.exit_code == 1
    assert [e.properties.get("title") for e in result.errors] == [title], result.stdout
    message = result.errors[0].message
    assert "registry: " in message and "manifest unknown" in message.lower() and "artifact: " in message
    assert result.outputs == {}
    assert "Traceback" not in result.stdout + result.stderr
    assert not world.has(local)
    assert engine_state(world) == before
    assert leftovers(runner) == []
    assert "**action-pull-image** failed" in result.summary
    return message


# --- what GitHub serves ---------------------------------------------------------------------------------------


def test_a_pre_v4_artifact_without_digest_loads_and_says_it_is_not_verified(
    action_runner: ActionRunner, fake_github: FakeGitHub, world: PullWorld, repository: str, tmp_path: Path,
    upstream: Upstream, local_tag: str,
) -> None:  # fmt: skip
    zipped = w.zip_like_upload_artifact({"charon-pr-image.tar": upstream.tar.read_bytes()})
    fake_github.add_artifact(fake_github.state.runs[upstream.run_id], w.ARTIFACT, zipped, upload_artifact_version=3)
    result = pull(action_runner, fake_github, world, tmp_path, repository, upstream.run_id, local_tag)
    assert result.succeeded, result.stdout + result.stderr
    assert result.errors == []
    assert result.outputs["source"] == "artifact" and result.outputs["image-id"] == upstream.image_id
    assert world.image_id(local_tag) == upstream.image_id
    # GitHub gave no digest: the bytes cannot be checked against the upload, and the log and summary say so
    sha256 = hashlib.sha256(zipped).hexdigest()
    assert f"sha256 {sha256} NOT verified: GitHub recorded no digest for this artifact" in result.stdout
    notices = [c.message for c in result.commands if c.name == "notice"]
    assert any("NOT verified" in n and "The revision label is still checked" in n for n in notices)
    assert "NOT verified" in result.summary and "matches the digest" not in result.summary
    assert "revision proven" in result.summary  # what still proves it
    world.forget(local_tag, upstream.expected)


def test_an_unzipped_zstd_archive_loads(
    action_runner: ActionRunner, fake_github: FakeGitHub, world: PullWorld, repository: str, tmp_path: Path,
    upstream: Upstream, local_tag: str,
) -> None:  # fmt: skip
    """upload-artifact's `archive: false`: the `docker save | zstd` file itself, no zip; known by its bytes."""
    packed = artifacts.zstd_file(upstream.tar, tmp_path / "charon.tar.zst")
    fake_github.add_artifact(fake_github.state.runs[upstream.run_id], w.ARTIFACT, packed.read_bytes())
    result = pull(action_runner, fake_github, world, tmp_path, repository, upstream.run_id, local_tag)
    assert result.succeeded, result.stdout + result.stderr
    assert result.outputs["source"] == "artifact" and world.image_id(local_tag) == upstream.image_id
    assert leftovers(action_runner) == []
    world.forget(local_tag, upstream.expected)


def test_an_expired_artifact_is_one_clear_error(
    action_runner: ActionRunner, fake_github: FakeGitHub, world: PullWorld, repository: str, tmp_path: Path,
    upstream: Upstream, local_tag: str,
) -> None:  # fmt: skip
    """Expired by the fake's clock (`expired: true` in the listing): refused before any download."""
    zipped = w.zip_like_upload_artifact({"image.tar": upstream.tar.read_bytes()})
    now = fake_github.clock.now()
    fake_github.add_artifact(fake_github.state.runs[upstream.run_id], w.ARTIFACT, zipped, created_at=now - 8 * 86400,
                             expires_at=now - 86400)  # fmt: skip
    before = engine_state(world)
    result = pull(action_runner, fake_github, world, tmp_path, repository, upstream.run_id, local_tag)
    message = assert_refused(result, action_runner, world, before, local_tag)
    assert f"the artifact '{w.ARTIFACT}' of run {upstream.run_id} of {w.REPO} expired on" in message
    assert "Re-run the build to make a new one" in message
    assert fake_github.count("GET", operation="actions/download-artifact") == 0


def test_an_artifact_expiring_between_listing_and_download_is_one_clear_error(
    action_runner: ActionRunner, fake_github: FakeGitHub, world: PullWorld, repository: str, tmp_path: Path,
    upstream: Upstream, local_tag: str,
) -> None:  # fmt: skip
    """Listed with minutes to live, gone (410) when the download asks: GitHub's clock moved on in between."""
    zipped = w.zip_like_upload_artifact({"image.tar": upstream.tar.read_bytes()})
    clock = fake_github.clock
    fake_github.add_artifact(fake_github.state.runs[upstream.run_id], w.ARTIFACT, zipped,
                             expires_at=clock.now() + 300)  # fmt: skip

    def time_passes(body: dict[str, Any]) -> dict[str, Any]:
        assert [item["expired"] for item in body["artifacts"]] == [False]  # listed as usable
        clock.advance(600)
        return body

    fake_github.corrupt("actions/list-workflow-run-artifacts", time_passes)
    before = engine_state(world)
    result = pull(action_runner, fake_github, world, tmp_path, repository, upstream.run_id, local_tag)
    message = assert_refused(result, action_runner, world, before, local_tag)
    assert "GitHub answered 410 Gone, the artifact has expired" in message
    assert fake_github.count("GET", operation="actions/download-artifact", status=410) == 1


def test_an_artifact_of_another_run_is_not_used(
    action_runner: ActionRunner, fake_github: FakeGitHub, world: PullWorld, repository: str, tmp_path: Path,
    upstream: Upstream, local_tag: str,
) -> None:  # fmt: skip
    """The upstream run uploaded no image; another run of the same commit has one under the very name."""
    fake_github.add_artifact(fake_github.state.runs[upstream.run_id], "sbom", files={"sbom.json": "{}"})
    other = build_run(fake_github)
    zipped = w.zip_like_upload_artifact({"image.tar": upstream.tar.read_bytes()})
    fake_github.add_artifact(fake_github.state.runs[other], w.ARTIFACT, zipped)
    before = engine_state(world)
    result = pull(action_runner, fake_github, world, tmp_path, repository, upstream.run_id, local_tag)
    message = assert_refused(result, action_runner, world, before, local_tag)
    assert f"run {upstream.run_id} of {w.REPO} has no artifact named '{w.ARTIFACT}'; it has: 'sbom'" in message
    assert fake_github.count("GET", operation="actions/download-artifact") == 0


def test_an_artifact_whose_bytes_do_not_match_the_recorded_digest_is_refused(
    action_runner: ActionRunner, fake_github: FakeGitHub, world: PullWorld, repository: str, tmp_path: Path,
    upstream: Upstream, local_tag: str,
) -> None:  # fmt: skip
    zipped = w.zip_like_upload_artifact({"image.tar": upstream.tar.read_bytes()})
    fake_github.add_artifact(fake_github.state.runs[upstream.run_id], w.ARTIFACT, zipped)
    recorded = hashlib.sha256(b"what the build uploaded").hexdigest()

    def record_another_digest(body: dict[str, Any]) -> dict[str, Any]:
        for item in body["artifacts"]:
            item["digest"] = f"sha256:{recorded}"
        return body

    fake_github.corrupt("actions/list-workflow-run-artifacts", record_another_digest)
    before = engine_state(world)
    result = pull(action_runner, fake_github, world, tmp_path, repository, upstream.run_id, local_tag)
    message = assert_refused(result, action_runner, world, before, local_tag, "Image artifact refused")
    assert f"but GitHub recorded sha256:{recorded}; refused: the bytes are not what the build uploaded" in message


def test_an_artifact_over_max_artifact_size_is_refused_before_downloading(
    action_runner: ActionRunner, fake_github: FakeGitHub, world: PullWorld, repository: str, tmp_path: Path,
    upstream: Upstream, local_tag: str,
) -> None:  # fmt: skip
    zipped = w.zip_like_upload_artifact({"image.tar": upstream.tar.read_bytes()})
    fake_github.add_artifact(fake_github.state.runs[upstream.run_id], w.ARTIFACT, zipped)
    before = engine_state(world)
    result = pull(action_runner, fake_github, world, tmp_path, repository, upstream.run_id, local_tag,
                  **{"max-artifact-size": "100"})  # fmt: skip
    message = assert_refused(result, action_runner, world, before, local_tag)
    assert "over max-artifact-size, which is 100 bytes" in message
    assert fake_github.count("GET", operation="actions/download-artifact") == 0


def test_an_image_in_neither_place_is_one_error_naming_both(
    action_runner: ActionRunner, fake_github: FakeGitHub, world: PullWorld, repository: str, tmp_path: Path,
    upstream: Upstream, local_tag: str,
) -> None:  # fmt: skip
    before = engine_state(world)
    result = pull(action_runner, fake_github, world, tmp_path, repository, upstream.run_id, local_tag)
    message = assert_refused(result, action_runner, world, before, local_tag)
    assert f"{upstream.expected} could not be obtained from any source" in message
    assert f"run {upstream.run_id} of {w.REPO} has no artifacts" in message


# --- hostile contents -----------------------------------------------------------------------------------------

Hostile = Callable[[Path, Path], bytes]  # (the saved tar, a scratch dir) -> the artifact's zip


def zip_slip(tar: Path, scratch: Path) -> bytes:
    return artifacts.zip_with_entries(scratch / "z.zip", [("../../../tmp/image.tar", tar.read_bytes())]).read_bytes()


def absolute_path(tar: Path, scratch: Path) -> bytes:
    return artifacts.zip_with_entries(scratch / "z.zip", [("/var/lib/image.tar", tar.read_bytes())]).read_bytes()


def symlink(tar: Path, scratch: Path) -> bytes:
    entries = [("image.tar", tar.read_bytes()), artifacts.symlink_entry("latest.tar", "/etc/shadow")]
    return artifacts.zip_with_entries(scratch / "z.zip", entries).read_bytes()


def zip_bomb(tar: Path, scratch: Path) -> bytes:
    return artifacts.zip_bomb(scratch / "z.zip", expanded=512 << 20).read_bytes()


def two_tars(tar: Path, scratch: Path) -> bytes:
    return artifacts.upload_artifact_zip(scratch / "z.zip", {"amd64.tar": tar, "arm64.tar": tar}).read_bytes()


HOSTILE: list[tuple[Hostile, str]] = [
    (zip_slip, "the artifact's zip entry '../../../tmp/image.tar' climbs out of the archive with '..'"),
    (absolute_path, "the artifact's zip entry '/var/lib/image.tar' is an absolute path"),
    (symlink, "the artifact's zip entry 'latest.tar' is a symbolic link"),
    (zip_bomb, "past the 67108864-byte expansion cap (a zip bomb"),
    (two_tars, "the artifact's zip holds 2 image tars ('amd64.tar', 'arm64.tar'); name the one to load with"),
]


@pytest.mark.parametrize(("make", "complaint"), HOSTILE, ids=[make.__name__ for make, _ in HOSTILE])
def test_a_hostile_artifact_is_refused_and_nothing_is_loaded(
    action_runner: ActionRunner, fake_github: FakeGitHub, world: PullWorld, repository: str, tmp_path: Path,
    upstream: Upstream, local_tag: str, make: Hostile, complaint: str,
) -> None:  # fmt: skip
    fake_github.add_artifact(fake_github.state.runs[upstream.run_id], w.ARTIFACT, make(upstream.tar, tmp_path))
    before = engine_state(world)
    result = pull(action_runner, fake_github, world, tmp_path, repository, upstream.run_id, local_tag)
    message = assert_refused(result, action_runner, world, before, local_tag, "Image artifact refused")
    assert complaint in message
    assert not world.has(upstream.expected)


def test_a_tar_claiming_latest_of_another_image_is_refused_and_moves_no_tag(
    action_runner: ActionRunner, fake_github: FakeGitHub, world: PullWorld, repository: str, tmp_path: Path,
    upstream: Upstream, local_tag: str,
) -> None:  # fmt: skip
    """moby/moby#35625: loading a tar moves every tag its manifest.json names. The build's image also claims
    `latest` of another image the job already has; loading it would silently replace that image."""
    victim = world.factory.push_image(f"{repository}-victim", "latest", revision="f" * 40)
    victim_ref = f"{world.registry.host}/{repository}-victim:latest"
    images.pull(world.engine, victim_ref)
    victim_id = world.image_id(victim_ref)
    assert victim_id == victim.config.digest
    hostile = artifacts.retag_archive(upstream.tar, tmp_path / "hostile.tar", [upstream.expected, victim_ref])
    zipped = w.zip_like_upload_artifact({"image.tar": hostile.read_bytes()})
    fake_github.add_artifact(fake_github.state.runs[upstream.run_id], w.ARTIFACT, zipped)
    before = engine_state(world)
    result = pull(action_runner, fake_github, world, tmp_path, repository, upstream.run_id, local_tag)
    message = assert_refused(result, action_runner, world, before, local_tag, "Image artifact refused")
    assert (
        f"the tar's manifest.json would tag the loaded image '{victim_ref}', overwriting that tag; the artifact may "
        f"set only {upstream.expected}. Refused: nothing was loaded."
    ) in message
    assert world.image_id(victim_ref) == victim_id
    assert not world.has(upstream.expected) and not world.has(upstream.image_id)
    world.forget(victim_ref)


# --- choosing the artifact ------------------------------------------------------------------------------------


def test_run_id_artifact_name_glob_and_artifact_file_choose_the_image(
    action_runner: ActionRunner, fake_github: FakeGitHub, world: PullWorld, repository: str, tmp_path: Path,
    upstream: Upstream, local_tag: str,
) -> None:  # fmt: skip
    """A manually dispatched consumer names the build's run (`run-id`), the artifact by glob, and the tar inside
    an artifact that holds two. The job's own run (GITHUB_RUN_ID) has nothing."""
    other, _ = artifacts.write_docker_archive(tmp_path / "other.tar", None, layer_bytes=1000, seed=7)
    zipped = w.zip_like_upload_artifact({"debug/other.tar": other.read_bytes(),
                                         "dist/charon.tar": upstream.tar.read_bytes()})  # fmt: skip
    run = fake_github.state.runs[upstream.run_id]
    fake_github.add_artifact(run, "sbom-sha-5a6b7c8", files={"sbom.json": "{}"})
    fake_github.add_artifact(run, "image-sha-5a6b7c8", zipped)
    own_run = build_run(fake_github)
    inputs = {
        "image": upstream.expected, "expected-revision": w.SHA, "local-tag": local_tag,
        "run-id": str(upstream.run_id), "artifact-name": "image-*", "artifact-file": "dist/charon.tar",
    }  # fmt: skip
    result = run_pull(action_runner, fake_github, world, tmp_path, inputs, event="workflow_dispatch", payload={},
                      env={"GITHUB_RUN_ID": str(own_run)})  # fmt: skip
    assert result.succeeded, result.stdout + result.stderr
    assert result.outputs["source"] == "artifact" and result.outputs["image"] == upstream.expected
    assert world.image_id(local_tag) == upstream.image_id
    assert f"of run {upstream.run_id} (input run-id)" in result.stdout
    listings = fake_github.calls("GET", operation="actions/list-workflow-run-artifacts")
    assert {c.path.split("/")[-2] for c in listings} == {str(upstream.run_id)}
    assert artifact_requests(fake_github) == 1  # a glob lists every artifact of the run, once
    world.forget(local_tag, upstream.expected)


def test_the_api_answering_429_with_retry_after_is_waited_out(
    action_runner: ActionRunner, fake_github: FakeGitHub, world: PullWorld, repository: str, tmp_path: Path,
    upstream: Upstream, local_tag: str,
) -> None:  # fmt: skip
    """GitHub's secondary limit on the listing (429, `retry-after: 2`): waited out, then the artifact loads."""
    zipped = w.zip_like_upload_artifact({"image.tar": upstream.tar.read_bytes()})
    fake_github.add_artifact(fake_github.state.runs[upstream.run_id], w.ARTIFACT, zipped)
    fake_github.faults.secondary_next(1, status=429, retry_after=2, operation="actions/list-workflow-run-artifacts")
    result = pull(action_runner, fake_github, world, tmp_path, repository, upstream.run_id, local_tag)
    assert result.succeeded, result.stdout + result.stderr
    assert result.outputs["source"] == "artifact" and world.image_id(local_tag) == upstream.image_id
    refused, listed = fake_github.calls("GET", operation="actions/list-workflow-run-artifacts")
    assert (refused.status, listed.status) == (429, 200)
    assert listed.at - refused.at >= 1.9  # the fake's clock runs in real time here; a sleep only overshoots
    world.forget(local_tag, upstream.expected)


def test_a_private_repository_without_access_names_actions_read(
    action_runner: ActionRunner, fake_github: FakeGitHub, world: PullWorld, repository: str, tmp_path: Path,
    local_tag: str,
) -> None:  # fmt: skip
    """No token that may read the private repository's runs: GitHub answers 404, and the error says which
    permission the job needs."""
    pushed = world.push(repository, None, revision=w.SHA)
    fake_github.add_repo(w.REPO, private=True)
    run = fake_github.add_run(w.REPO, "build.yml", event="pull_request", head_sha=w.SHA, head_branch=w.BRANCH)
    expected = f"{world.name(repository)}:{w.TAG}"
    archive = world.saved_archive(pushed, expected, tmp_path / "image.tar")
    fake_github.add_artifact(run, w.ARTIFACT, w.zip_like_upload_artifact({"image.tar": archive}))
    before = engine_state(world)
    result = run_pull(action_runner, fake_github, world, tmp_path,
                      {"image-name": world.name(repository), "local-tag": local_tag},
                      payload=pr_consumer(run.id), env={"GITHUB_TOKEN": ""})  # fmt: skip
    message = assert_refused(result, action_runner, world, before, local_tag)
    assert f"Listing the artifacts of run {run.id} of {w.REPO} failed: GitHub answered 404 Not Found" in message
    assert f"the job's token needs `permissions: actions: read` on {w.REPO}" in message
