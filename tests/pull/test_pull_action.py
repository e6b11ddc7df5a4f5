"""action-pull-image end to end through action.yml: the real registry (behind a fault proxy), a real podman
engine, the fake GitHub for runs and artifacts."""

from __future__ import annotations

from pathlib import Path

from tests.pull.world import (
    ARTIFACT, LOCAL, REPO, SHA, TAG, PullWorld, pr_consumer, run_pull, zip_like_upload_artifact,
)  # fmt: skip
from tests.support.composite import ActionRunner
from tests.support.fakegithub import FakeGitHub


def build_run(gh: FakeGitHub, sha: str = SHA) -> int:
    gh.add_repo(REPO)
    run = gh.add_run(REPO, "build.yml", event="pull_request", head_sha=sha, head_branch="feature/pull")
    return run.id


def test_registry_hit(action_runner: ActionRunner, fake_github: FakeGitHub, world: PullWorld, repository: str,
                      tmp_path: Path) -> None:  # fmt: skip
    pushed = world.push(repository, revision=SHA)
    run_id = build_run(fake_github)
    result = run_pull(action_runner, fake_github, world, tmp_path,
                      {"image-name": world.name(repository), "local-tag": LOCAL}, payload=pr_consumer(run_id))  # fmt: skip
    assert result.succeeded, result.stdout + result.stderr
    print(result.stdout)
    assert result.outputs["source"] == "registry"
    assert result.outputs["image"] == f"{world.name(repository)}:{TAG}"
    assert result.outputs["digest"] == pushed.digest
    assert result.outputs["image-id"] == pushed.config.digest == world.image_id(LOCAL)
    assert result.outputs["revision"] == SHA
    assert result.outputs["attempts"] == "1"


def test_tag_missing_goes_to_the_artifact(action_runner: ActionRunner, fake_github: FakeGitHub, world: PullWorld,
                                          repository: str, tmp_path: Path) -> None:  # fmt: skip
    pushed = world.push(repository, None, revision=SHA)
    expected = f"{world.name(repository)}:{TAG}"
    archive = world.saved_archive(pushed, expected, tmp_path / "charon-pr-image.tar")
    run_id = build_run(fake_github)
    fake_github.add_artifact(fake_github.state.runs[run_id], ARTIFACT,
                             zip_like_upload_artifact({"charon-pr-image.tar": archive}))  # fmt: skip
    result = run_pull(action_runner, fake_github, world, tmp_path,
                      {"image-name": world.name(repository), "local-tag": LOCAL}, payload=pr_consumer(run_id))  # fmt: skip
    print(result.stdout, result.stderr)
    assert result.succeeded
    assert result.outputs["source"] == "artifact"
    assert result.outputs["image-id"] == pushed.config.digest == world.image_id(LOCAL)
