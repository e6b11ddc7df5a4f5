"""action-pull-image's proofs through action.yml: the revision label (match, mismatch under fail and warn,
missing), the digest, and the trust in the upstream run. A failed proof is one `::error`, exit 1, no outputs,
and nothing left tagged `local-tag`."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.pull import world as w
from tests.pull.test_pull_action import ENGINE, add_artifact, build_run
from tests.pull.world import PullWorld, pr_consumer, run_pull
from tests.support.composite import ActionResult, ActionRunner
from tests.support.fakegithub import FakeGitHub


@pytest.fixture
def local_tag() -> str:
    return f"charon-{uuid.uuid4().hex[:8]}:local"


def pull(runner: ActionRunner, gh: FakeGitHub, world: PullWorld, tmp_path: Path, repository: str, local: str,
         run_id: int | None = None, **inputs: str) -> ActionResult:  # fmt: skip
    given = {"image-name": world.name(repository), "local-tag": local, **inputs}
    return run_pull(runner, gh, world, tmp_path, given, payload=pr_consumer(run_id or build_run(gh)))


def assert_refused(result: ActionResult, title: str, world: PullWorld, local: str) -> str:
    assert result.exit_code == 1
    assert [e.properties.get("title") for e in result.errors] == [title], result.stdout
    assert result.outputs == {}
    assert "Traceback" not in result.stdout + result.stderr
    assert not world.has(local)
    return result.errors[0].message


def test_revision_matches_an_abbreviated_expected_revision(action_runner: ActionRunner, fake_github: FakeGitHub,
                                                           world: PullWorld, repository: str, tmp_path: Path,
                                                           local_tag: str) -> None:  # fmt: skip
    world.push(repository, revision=w.SHA)
    result = pull(
        action_runner, fake_github, world, tmp_path, repository, local_tag, **{"expected-revision": w.SHA[:7]}
    )
    assert result.succeeded, result.stdout
    assert result.outputs["revision"] == w.SHA and world.has(local_tag)


def test_mismatch_fails_before_pulling(action_runner: ActionRunner, fake_github: FakeGitHub, world: PullWorld,
                                       repository: str, tmp_path: Path, local_tag: str) -> None:  # fmt: skip
    world.push(repository, revision=w.OTHER_SHA)
    result = pull(action_runner, fake_github, world, tmp_path, repository, local_tag)
    message = assert_refused(result, "Revision mismatch", world, local_tag)
    assert w.OTHER_SHA in message and w.SHA[:12] in message and "upstream run" in message
    # one manifest and one config read decided it: the engine never pulled a byte
    assert world.proxy.seen(agent=ENGINE) == []
    assert not world.has(f"{world.name(repository)}:{w.TAG}")
    assert "failed" in result.summary


def test_mismatch_with_warn_pulls_and_warns(action_runner: ActionRunner, fake_github: FakeGitHub, world: PullWorld,
                                            repository: str, tmp_path: Path, local_tag: str) -> None:  # fmt: skip
    world.push(repository, revision=w.OTHER_SHA)
    result = pull(action_runner, fake_github, world, tmp_path, repository, local_tag, **{"on-mismatch": "warn"})
    assert result.succeeded, result.stdout
    warnings = [c for c in result.commands if c.name == "warning"]
    assert [c.properties["title"] for c in warnings] == ["Revision mismatch"]  # once, not again after the pull
    assert result.outputs["revision"] == w.OTHER_SHA and world.has(local_tag)
    assert "MISMATCHED" in result.summary


def test_missing_label_is_its_own_refusal(action_runner: ActionRunner, fake_github: FakeGitHub, world: PullWorld,
                                          repository: str, tmp_path: Path, local_tag: str) -> None:  # fmt: skip
    world.push(repository)  # no revision label at all
    result = pull(action_runner, fake_github, world, tmp_path, repository, local_tag)
    message = assert_refused(result, "Revision label missing", world, local_tag)
    assert "org.opencontainers.image.revision" in message


def test_digest_mismatch_is_refused_before_pulling(action_runner: ActionRunner, fake_github: FakeGitHub,
                                                   world: PullWorld, repository: str, tmp_path: Path,
                                                   local_tag: str) -> None:  # fmt: skip
    """The registry (here a tampering proxy) answers the expected digest with another image's manifest."""
    wanted = world.push(repository, revision=w.SHA)
    other = world.push(repository, "other", revision=w.SHA)
    world.proxy.serve_instead(f"/manifests/{wanted.digest}", other.manifest, other.media_type)
    result = pull(action_runner, fake_github, world, tmp_path, repository, local_tag,
                  **{"expected-digest": wanted.digest})  # fmt: skip
    message = assert_refused(result, "Digest mismatch", world, local_tag)
    assert wanted.digest in message
    assert world.proxy.seen(agent=ENGINE) == []


def test_artifact_with_another_revision_is_loaded_then_removed(action_runner: ActionRunner,
                                                               fake_github: FakeGitHub, world: PullWorld,
                                                               repository: str, tmp_path: Path,
                                                               local_tag: str) -> None:  # fmt: skip
    pushed = world.push(repository, None, revision=w.OTHER_SHA)
    run_id = build_run(fake_github)
    expected = f"{world.name(repository)}:{w.TAG}"
    add_artifact(fake_github, world, run_id, pushed, expected, tmp_path)
    result = pull(action_runner, fake_github, world, tmp_path, repository, local_tag, run_id)
    assert_refused(result, "Revision mismatch", world, local_tag)
    assert not world.has(expected)  # the name the archive gave it is gone again


def test_unsuccessful_upstream_run_is_refused(action_runner: ActionRunner, fake_github: FakeGitHub,
                                              world: PullWorld, repository: str, tmp_path: Path,
                                              local_tag: str) -> None:  # fmt: skip
    world.push(repository, revision=w.SHA)
    run_id = build_run(fake_github)
    given = {"image-name": world.name(repository), "local-tag": local_tag}
    failed = pr_consumer(run_id, conclusion="failure")
    result = run_pull(action_runner, fake_github, world, tmp_path, given, payload=failed)
    message = assert_refused(result, "Upstream run not successful", world, local_tag)
    assert "'failure'" in message
    assert world.proxy.log == [] and fake_github.count("GET", operation="actions/list-workflow-run-artifacts") == 0
    allowed = run_pull(action_runner, fake_github, world, tmp_path,
                       {**given, "allowed-conclusions": "success, failure"}, payload=failed)  # fmt: skip
    assert allowed.succeeded, allowed.stdout
