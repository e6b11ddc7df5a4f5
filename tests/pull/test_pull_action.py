"""action-pull-image end to end through action.yml: the real registry (behind a fault proxy), a real podman
engine, the fake GitHub for runs and artifacts. Where the image comes from, and how the registry is retried.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures.events import derive
from tests.pull import world as w
from tests.pull.world import PullWorld, pr_consumer, run_pull
from tests.support.composite import ActionResult, ActionRunner
from tests.support.fakegithub import FakeGitHub

ENGINE = r"^(containers|docker)/"  # the engine's User-Agent; the action's own client is python-requests


def build_run(gh: FakeGitHub, sha: str = w.SHA, head_repo: str | None = None) -> int:
    gh.add_repo(w.REPO)
    run = gh.add_run(w.REPO, "build.yml", event="pull_request", head_sha=sha, head_branch=w.BRANCH, head_repo=head_repo)
    return run.id


def add_artifact(gh: FakeGitHub, world: PullWorld, run_id: int, pushed: w.PushedImage, save_as: str,
                 tmp_path: Path, *, name: str = w.ARTIFACT, file: str = "charon-pr-image.tar") -> None:  # fmt: skip
    """What the build uploads: `docker save` of the image under `save_as`, zipped, named `name`."""
    archive = world.saved_archive(pushed, save_as, tmp_path / file)
    gh.add_artifact(gh.state.runs[run_id], name, w.zip_like_upload_artifact({file: archive}))


def pull(runner: ActionRunner, gh: FakeGitHub, world: PullWorld, tmp_path: Path, repository: str, run_id: int,
         **inputs: str) -> ActionResult:  # fmt: skip
    given = {"image-name": world.name(repository), "local-tag": w.LOCAL, **inputs}
    return run_pull(runner, gh, world, tmp_path, given, payload=pr_consumer(run_id))


def assert_ok(result: ActionResult, source: str) -> None:
    assert result.succeeded, result.stdout + result.stderr
    assert result.errors == []
    assert result.outputs["source"] == source
    assert "Traceback" not in result.stdout + result.stderr


def artifact_requests(gh: FakeGitHub) -> int:
    return gh.count("GET", operation="actions/list-workflow-run-artifacts")


# --- the registry ---------------------------------------------------------------------------------------------


def test_registry_hit(action_runner: ActionRunner, fake_github: FakeGitHub, world: PullWorld, repository: str,
                      tmp_path: Path) -> None:  # fmt: skip
    pushed = world.push(repository, revision=w.SHA)
    result = pull(action_runner, fake_github, world, tmp_path, repository, build_run(fake_github))
    assert_ok(result, "registry")
    expected = f"{world.name(repository)}:{w.TAG}"
    assert result.outputs == {
        "source": "registry", "image": expected, "image-id": pushed.config.digest, "digest": pushed.digest,
        "revision": w.SHA, "local-tag": w.LOCAL, "attempts": "1", "seconds": result.outputs["seconds"],
    }  # fmt: skip
    assert float(result.outputs["seconds"]) > 0
    assert world.image_id(w.LOCAL) == world.image_id(expected) == pushed.config.digest
    assert artifact_requests(fake_github) == 0
    # proven before pulling: the action read the manifest and config itself, then the engine pulled
    ours = [s.path for s in world.proxy.seen(agent="python-requests")]
    assert ours[0].endswith(f"/manifests/{w.TAG}") and any(pushed.config.digest in p for p in ours)
    assert world.proxy.seen(f"/manifests/{w.TAG}", agent=ENGINE)
    assert "from the **registry**" in result.summary and "revision proven" in result.summary
    # one line per layer finished, never a line per chunk
    layer_lines = [line for line in result.stdout.splitlines() if line.startswith("layer ")]
    assert len(layer_lines) == len(pushed.layers) + 1  # podman reports the config blob too


def test_registry_503_twice_then_success(action_runner: ActionRunner, fake_github: FakeGitHub, world: PullWorld,
                                         repository: str, tmp_path: Path) -> None:  # fmt: skip
    world.push(repository, revision=w.SHA)
    rule = world.proxy.fail_next(2, 503, path=f"/manifests/{w.TAG}")
    result = pull(action_runner, fake_github, world, tmp_path, repository, build_run(fake_github))
    assert_ok(result, "registry")
    assert rule.fired == 2
    assert result.outputs["attempts"] == "3"
    assert result.stdout.count("registry attempt") == 2 and "503" in result.stdout
    assert artifact_requests(fake_github) == 0


def test_503_inside_the_engines_pull_stream_is_retried(action_runner: ActionRunner, fake_github: FakeGitHub,
                                                       world: PullWorld, repository: str,
                                                       tmp_path: Path) -> None:  # fmt: skip
    """The action's own manifest read succeeds; the engine's pull then reports the 503 inside its 200 stream."""
    world.push(repository, revision=w.SHA)
    rule = world.proxy.fail_next(2, 503, path=f"/manifests/{w.TAG}", agent=ENGINE)
    result = pull(action_runner, fake_github, world, tmp_path, repository, build_run(fake_github))
    assert_ok(result, "registry")
    assert rule.fired == 2
    assert result.outputs["attempts"] == "3"
    assert "the engine's pull" in result.stdout


def test_429_toomanyrequests_is_retried(action_runner: ActionRunner, fake_github: FakeGitHub, world: PullWorld,
                                        repository: str, tmp_path: Path) -> None:  # fmt: skip
    world.push(repository, revision=w.SHA)
    world.proxy.fail_next(1, 429, code="TOOMANYREQUESTS", headers={"Retry-After": "1"})
    result = pull(action_runner, fake_github, world, tmp_path, repository, build_run(fake_github))
    assert_ok(result, "registry")
    assert result.outputs["attempts"] == "2"


def test_permanent_error_inside_the_pull_stream_goes_to_the_artifact(
    action_runner: ActionRunner, fake_github: FakeGitHub, world: PullWorld, repository: str, tmp_path: Path
) -> None:
    """`denied` to the engine (its 200 stream carries the error): no retry, straight to the artifact."""
    pushed = world.push(repository, revision=w.SHA)
    run_id = build_run(fake_github)
    add_artifact(fake_github, world, run_id, pushed, f"{world.name(repository)}:{w.TAG}", tmp_path)
    world.proxy.fail_next(100, 403, path=f"/manifests/{w.TAG}", agent=ENGINE, code="DENIED")
    result = pull(action_runner, fake_github, world, tmp_path, repository, run_id)
    assert_ok(result, "artifact")
    assert len(world.proxy.seen(f"/manifests/{w.TAG}", agent=ENGINE)) == 1
    assert result.outputs["attempts"] == "2"  # one registry attempt, one artifact
    assert "denied" in result.stdout


# --- the artifact ---------------------------------------------------------------------------------------------


def test_tag_missing_goes_to_the_artifact_at_once(action_runner: ActionRunner, fake_github: FakeGitHub,
                                                  world: PullWorld, repository: str,
                                                  tmp_path: Path) -> None:  # fmt: skip
    pushed = world.push(repository, None, revision=w.SHA)  # the registry holds the image, but not the tag
    run_id = build_run(fake_github)
    expected = f"{world.name(repository)}:{w.TAG}"
    add_artifact(fake_github, world, run_id, pushed, expected, tmp_path)
    result = pull(action_runner, fake_github, world, tmp_path, repository, run_id)
    assert_ok(result, "artifact")
    assert result.outputs["image"] == expected
    assert result.outputs["image-id"] == pushed.config.digest == world.image_id(w.LOCAL)
    assert result.outputs["digest"] == ""
    assert result.outputs["revision"] == w.SHA
    assert result.outputs["attempts"] == "2"
    assert len(world.proxy.seen(f"/manifests/{w.TAG}")) == 1  # manifest unknown is permanent: no retry
    assert world.proxy.seen(f"/manifests/{w.TAG}", agent=ENGINE) == []  # nothing to pull, nothing pulled
    # the zip came through the 302 from the second host, without the token
    assert fake_github.count("GET", operation="actions/download-artifact", status=302) == 1
    assert [r.status for r in fake_github.storage_requests] == [200]
    assert all("authorization" not in r.headers for r in fake_github.storage_requests)
    assert "from the **artifact**" in result.summary and "manifest unknown" in result.summary
    assert "matches the digest GitHub recorded" in result.summary  # the zip's sha256 was checked


def test_registry_down_goes_to_the_artifact_after_the_deadline(action_runner: ActionRunner,
                                                               fake_github: FakeGitHub, world: PullWorld,
                                                               repository: str, tmp_path: Path) -> None:  # fmt: skip
    pushed = world.push(repository, None, revision=w.SHA)
    run_id = build_run(fake_github)
    down_name = world.name(repository, world.down_host)
    add_artifact(fake_github, world, run_id, pushed, f"{down_name}:{w.TAG}", tmp_path)
    result = run_pull(action_runner, fake_github, world, tmp_path,
                      {"image-name": down_name, "local-tag": w.LOCAL, "registry-timeout": "2s"},
                      payload=pr_consumer(run_id))  # fmt: skip
    assert_ok(result, "artifact")
    assert int(result.outputs["attempts"]) >= 3  # at least two registry attempts, then the artifact
    assert "registry-timeout 2 s" in result.stdout
    assert world.image_id(w.LOCAL) == pushed.config.digest


def test_fork_pr_workflow_run_takes_the_artifact_first(action_runner: ActionRunner, fake_github: FakeGitHub,
                                                       world: PullWorld, repository: str,
                                                       tmp_path: Path) -> None:  # fmt: skip
    """A fork cannot push to GHCR: its build's artifact is the hand-off, and the registry is not even asked."""
    sha, owner, branch, number = derive.FORK_HEAD_SHA, derive.FORK_OWNER, derive.FORK_BRANCH, derive.FORK_PR
    fake_github.add_repo(w.REPO)
    fake_github.add_pull(w.REPO, branch, head_sha=sha, head_owner=owner, number=number)
    run = fake_github.add_run(w.REPO, "build.yml", event="pull_request", head_sha=sha, head_branch=branch,
                              head_repo=f"{owner}/octo-repo")  # fmt: skip
    payload = derive.workflow_run("pull_request", branch, sha, head_owner=owner, run_id=run.id)
    derive.validate("workflow_run", payload)
    pushed = world.push(repository, None, revision=sha)
    tag = f"pr-{number}-{sha[:7]}"
    add_artifact(fake_github, world, run.id, pushed, f"{world.name(repository)}:{tag}", tmp_path,
                 name=f"image-{tag}", file="image.tar")  # fmt: skip
    result = run_pull(action_runner, fake_github, world, tmp_path,
                      {"image-name": world.name(repository), "local-tag": w.LOCAL}, payload=payload)  # fmt: skip
    assert_ok(result, "artifact")
    assert result.outputs["revision"] == sha and result.outputs["attempts"] == "1"
    assert world.image_id(w.LOCAL) == pushed.config.digest
    notices = [c.message for c in result.commands if c.name == "notice"]
    assert any(f"fork {owner}/octo-repo" in n for n in notices)
    assert world.proxy.seen("/manifests/") == []
    assert fake_github.count("GET", operation="pulls/list") >= 1  # the fork's PR number, looked up as action-tag does


def test_needs_job_pulls_the_builds_digest(action_runner: ActionRunner, fake_github: FakeGitHub, world: PullWorld,
                                           repository: str, tmp_path: Path) -> None:  # fmt: skip
    """A `needs:` job in the build's own pull_request workflow: this run's tag, and the build's digest output."""
    index = world.factory.push_index(repository, w.TAG, revision=w.SHA)
    fake_github.add_repo(w.REPO)
    payload = derive.pull_request(w.PR, w.SHA, w.BRANCH)
    result = run_pull(action_runner, fake_github, world, tmp_path,
                      {"image-name": world.name(repository), "expected-digest": index.digest, "local-tag": w.LOCAL},
                      event="pull_request", payload=payload,
                      env={"GITHUB_SHA": "e" * 40, "GITHUB_RUN_ID": "4242"})  # fmt: skip
    assert_ok(result, "registry")
    assert result.outputs["image"] == f"{world.name(repository)}@{index.digest}"
    assert result.outputs["digest"] == index.digest
    child = index.child("linux/amd64")
    assert result.outputs["image-id"] == child.config.digest == world.image_id(w.LOCAL)
    digests = world.engine.api.inspect_image(w.LOCAL)["RepoDigests"]
    assert any(d.endswith(index.digest) for d in digests)
    assert world.proxy.seen(f"/manifests/{index.digest}", agent=ENGINE)


def test_the_command_line_without_an_event_prints_the_outputs(world: PullWorld, repository: str,
                                                              tmp_path: Path) -> None:  # fmt: skip
    """`charon-ci pull-image` outside a runner: an image and a revision are enough (no event, no GITHUB_OUTPUT)."""
    pushed = world.push(repository, "sha-5a6b7c8", revision=w.SHA)
    env = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path), "RUNNER_TEMP": str(tmp_path),
        "DOCKER_HOST": world.docker_host,
        "INPUT_IMAGE": f"{world.name(repository)}:sha-5a6b7c8", "INPUT_EXPECTED-REVISION": w.SHA[:7],
        "INPUT_LOCAL-TAG": "cli-test:local",
    }  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "charon_ci", "pull-image"], env=env, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    printed = json.loads(done.stdout[done.stdout.index("{\n") :])
    assert printed["source"] == "registry" and printed["image-id"] == pushed.config.digest
    assert world.image_id("cli-test:local") == pushed.config.digest


def test_registry_login_with_username_and_password(action_runner: ActionRunner, fake_github: FakeGitHub,
                                                   world: PullWorld, repository: str,
                                                   tmp_path: Path) -> None:  # fmt: skip
    assert world.auth_registry is not None and world.auth_factory is not None
    pushed = world.auth_factory.push_image(repository, w.TAG, revision=w.SHA)
    run_id = build_run(fake_github)
    name = f"{world.auth_registry.host}/{repository}"
    anonymous = run_pull(action_runner, fake_github, world, tmp_path, {"image-name": name}, payload=pr_consumer(run_id))
    assert anonymous.exit_code == 1
    assert [e.properties["title"] for e in anonymous.errors] == ["Image not found"]
    assert "authentication required" in anonymous.errors[0].message  # unauthorized is permanent: one attempt
    assert "attempt 1)" in anonymous.errors[0].message

    user, password = w.AUTH
    result = run_pull(action_runner, fake_github, world, tmp_path,
                      {"image-name": name, "registry-username": user, "registry-password": password,
                       "local-tag": w.LOCAL}, payload=pr_consumer(run_id))  # fmt: skip
    assert_ok(result, "registry")
    assert result.outputs["image-id"] == pushed.config.digest == world.image_id(w.LOCAL)
    assert result.commands[0].name == "add-mask" and result.commands[0].message == password
    assert result.stdout.count(password) == 1  # only in the mask command


def test_needs_job_of_a_fork_pr_loads_this_runs_artifact(action_runner: ActionRunner, fake_github: FakeGitHub,
                                                         world: PullWorld, repository: str,
                                                         tmp_path: Path) -> None:  # fmt: skip
    """A `needs:` job in a fork PR's own pull_request workflow: nothing was pushed, this run has the artifact."""
    pushed = world.push(repository, None, revision=w.SHA)
    run_id = build_run(fake_github, head_repo="forker/octo-repo")
    add_artifact(fake_github, world, run_id, pushed, f"{world.name(repository)}:{w.TAG}", tmp_path)
    payload = derive.pull_request(w.PR, w.SHA, w.BRANCH, fork_owner="forker")
    derive.validate("pull_request", payload)
    result = run_pull(action_runner, fake_github, world, tmp_path,
                      {"image-name": world.name(repository), "local-tag": w.LOCAL}, event="pull_request",
                      payload=payload, env={"GITHUB_SHA": "e" * 40, "GITHUB_RUN_ID": str(run_id)})  # fmt: skip
    assert_ok(result, "artifact")
    assert result.outputs["attempts"] == "1" and world.proxy.seen("/manifests/") == []
    assert world.image_id(w.LOCAL) == pushed.config.digest
