"""action-prune against the real loopback registry behind the fake GitHub: after a real run exactly the
expected versions are gone, every kept tag still pulls through the engine for both platforms, and a
second run right after deletes nothing; with the versions list in push order and in a random order (GitHub
promises none)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.composite import ActionRunner
from tests.support.fakegithub import FakeGitHub
from tests.support.fakegithub.fixtures import serve_fake_github
from tests.support.images import ImageFactory, pull
from tests.support.prune_world import World, action_inputs, build_charon_world
from tests.support.services import Registry

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "action-prune"
# What the image's entrypoint execs (docker/prune-entrypoint.sh checks file permissions, then runs this).
ENTRYPOINT = [str(ROOT / ".venv" / "bin" / "charon-ci"), "prune"]
ENV = {"PATH": f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin"}

pytestmark = pytest.mark.services


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    yield from serve_fake_github()


def run(action_runner: ActionRunner, gh: FakeGitHub, registry: Registry, world: World, **extra: str) -> Any:
    inputs = action_inputs(gh, registry, world, **extra)
    inputs["plan-file"] = str(action_runner.runner_temp / f"plan-{uuid.uuid4().hex[:8]}.json")
    result = action_runner.run(ACTION, inputs, env=ENV, docker_entrypoint=ENTRYPOINT)
    step = result.steps[0]
    assert result.exit_code == 0, step.stdout[-4000:] + step.stderr[-4000:]
    return result


def plan_file(result: Any) -> dict[str, Any]:
    return dict(json.loads(Path(result.outputs["plan-path"]).read_text()))


@pytest.mark.parametrize("shuffle", [None, 1], ids=["push-order", "shuffled"])
def test_forty_versions_exactly_the_expected_go_and_every_kept_tag_pulls(
    action_runner: ActionRunner,
    gh: FakeGitHub,
    registry: Registry,
    image_factory: ImageFactory,
    docker_client: Any,
    shuffle: int | None,
) -> None:
    world = build_charon_world(gh, registry, image_factory, shuffle=shuffle)
    assert len(world.all_digests) >= 40
    assert world.listed() == world.all_digests

    # A dry run deletes nothing and plans exactly the expected set.
    dry = run(action_runner, gh, registry, world)
    assert gh.count("DELETE") == 0
    assert world.listed() == world.all_digests
    assert dry.outputs["planned-count"] == str(len(world.delete))
    assert dry.outputs["deleted-count"] == "0" and dry.outputs["remaining-count"] == str(len(world.delete))

    result = run(action_runner, gh, registry, world, **{"dry-run": "false"})
    out = result.outputs
    assert world.listed() == world.keep, "exactly the expected versions are gone"
    assert out["deleted-count"] == str(len(world.delete)), out
    assert out["failed-count"] == "0" and out["remaining-count"] == "0"
    assert out["kept-count"] == str(len(world.keep))
    assert int(out["bytes-freed"]) > 0
    document = plan_file(result)
    assert {item["digest"] for item in document["delete"]} == world.delete
    assert all(item["result"] == "deleted" for item in document["delete"])
    # Each index went before its children: no moment at which a listed child was missing.
    deletes = [r.path.rsplit("/", 1)[-1] for r in gh.calls("DELETE")]
    assert len(deletes) == len(world.delete)
    log = result.steps[0].stdout
    assert log.index("::group::Plan: ") < log.index("::group::Deleting "), "the plan is shown before anything goes"
    assert "in use (open PR #12)" in log and "queued or in progress" in log
    assert "referenced by kept" in log  # the shared child of dev and the signature of v1.2.3
    assert "| deleted |" in result.summary and "bytes freed" in result.summary

    for tag, platforms in sorted(world.kept_tags.items()):
        for platform in platforms:
            image = pull(docker_client, f"{registry.host}/{world.repository}:{tag}", platform=platform)
            assert image.attrs["Architecture"] == platform.split("/")[1], (tag, platform)
            docker_client.images.remove(image.id, force=True)

    # A second run right after deletes nothing.
    gh.requests.clear()
    again = run(action_runner, gh, registry, world, **{"dry-run": "false"})
    assert again.outputs["planned-count"] == "0" and gh.count("DELETE") == 0
    assert world.listed() == world.keep
