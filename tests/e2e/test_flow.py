"""The whole flow end to end (tests/support/flow.py, the story `bash .ci/demo` plays): action-tag, a real podman
build, push, the artifact, action-pull-image from the registry and from the artifact, a fork's artifact-only
hand-off, action-prune on the resulting registry, action-metrics on the runs the story left. Each hand-off is
asserted here from what the story recorded, not from its own checks."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.support import flow, services
from tests.support.composite import ActionRunner
from tests.support.fakegithub import FakeGitHub
from tests.support.flow import (
    MAIN_SHA,
    PR_CLOSED,
    SHA_A,
    SHA_B,
    SHA_FORK,
    FlowFailure,
    FlowReport,
    FlowWorld,
    Story,
    summary_table,
)

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def flow_engine(registry: services.Registry) -> Iterator[tuple[str, Any]]:
    """(DOCKER_HOST, client) of an engine that may pull from the registry over http: `.ci/test`'s, else our own."""
    external = services.engine_from_env()
    if external is not None:
        client = external.client()
        yield external.docker_host, client
        client.close()
        return
    with services.running_engine([registry.host]) as engine:
        client = engine.client()
        yield engine.docker_host, client
        client.close()


@pytest.fixture
def world(fake_github: FakeGitHub, registry: services.Registry, flow_engine: tuple[str, Any],
          action_runner: ActionRunner, tmp_path: Path) -> FlowWorld:  # fmt: skip
    docker_host, client = flow_engine
    # A package (registry repository) of its own, so the services `.ci/test` shares hold nothing else in it.
    return FlowWorld(fake_github, registry, docker_host, client, action_runner, tmp_path,
                     package_name=f"charon-{uuid.uuid4().hex[:8]}")  # fmt: skip


def test_build_once_test_many_prune_measure(world: FlowWorld) -> None:
    lines: list[str] = []
    report: FlowReport = Story(world, lines.append).play()
    name = world.image_name
    build_a, build_b = report.builds["PR #12 @A"], report.builds["PR #12 @B"]
    build_fork = report.builds["fork PR #42 @F"]

    # The build: action-tag's tag and artifact name, the revision label of the commit, pushed unless a fork.
    assert (build_a.tag, build_b.tag, build_fork.tag) == (f"pr-12-{SHA_A[:7]}", f"pr-12-{SHA_B[:7]}",
                                                          f"pr-42-{SHA_FORK[:7]}")  # fmt: skip
    for build in (build_a, build_b, build_fork):
        assert build.artifact_name == f"image-{build.tag}"
        assert build.tags == (f"{name}:{build.tag}",)
        assert build.labels["org.opencontainers.image.revision"] == build.sha
    assert build_a.pushed_digest and build_b.pushed_digest and build_fork.pushed_digest is None
    assert len({build_a.image_id, build_b.image_id, build_fork.image_id}) == 3
    uploaded = {a.name: a.run.id for a in world.gh.state.artifacts.values() if a.run is not None}
    assert uploaded == {build.artifact_name: build.run_id for build in (build_a, build_b, build_fork)}

    # Consumers: the same tag on both sides, the source, the revision proven, the very image the build made.
    expected = {
        "WAF @A": (build_a, "registry"),
        "Cerberus @A": (build_a, "artifact"),  # the registry lost the tag: the artifact
        "WAF @B": (build_b, "registry"),
        "WAF @F": (build_fork, "artifact"),  # a fork: the artifact only
    }
    for label, (build, source) in expected.items():
        consumer = report.consumers[label]
        assert consumer.upstream is build
        assert consumer.image == f"{name}:{build.tag}", label
        assert consumer.source == source, label
        assert consumer.revision == consumer.label_revision == build.sha, label
        assert consumer.image_id == build.image_id, label
    assert report.consumers["WAF @A"].registry_asked and report.consumers["Cerberus @A"].registry_asked
    assert report.consumers["Cerberus @A"].attempts == 2  # the registry said manifest unknown, then the artifact
    fork = report.consumers["WAF @F"]
    assert fork.attempts == 1 and not fork.registry_asked
    # Both artifact hand-offs downloaded through the 302 to the storage host, never with the token.
    assert world.gh.count("GET", operation="actions/download-artifact", status=302) == 2
    assert world.gh.token_leaks == []

    # Prune on the resulting registry: the open PR's current image and main's are kept, the rest goes.
    prune = report.prune
    assert prune is not None
    assert build_b.pushed_digest in prune.kept and build_b.pushed_digest in prune.remaining
    assert any("in use (open PR #12)" in reason for item in prune.plan["keep"] if item["digest"] ==
               build_b.pushed_digest for reason in item["reasons"])  # fmt: skip
    latest = report.history["latest"]
    assert latest == report.history[f"sha-{MAIN_SHA[:7]}"] and latest in prune.remaining
    gone = {report.history[f"pr-{PR_CLOSED}-7777777"], report.history["sha-3333333"]}
    assert set(prune.deleted) == gone and not gone & prune.remaining
    assert prune.remaining == {latest, build_b.pushed_digest}
    assert prune.outputs["deleted-count"] == "2" and prune.outputs["failed-count"] == "0"
    assert report.after_prune is not None and report.after_prune.source == "registry"
    assert report.after_prune.image_id == build_b.image_id

    # Metrics read the runs the story left: one build per commit, every pull and the cleanup succeeded.
    metrics = report.metrics
    assert metrics is not None
    assert metrics.builds_per_commit == {SHA_A: 1, SHA_B: 1, SHA_FORK: 1}
    assert float(metrics.outputs["builds-per-commit"]) == 1.0
    assert float(metrics.outputs["pull-success-rate"]) == 1.0
    assert float(metrics.outputs["cleanup-success-rate"]) == 1.0

    # What the demo prints: each hand-off as it happened, then the table.
    handoffs = [line for line in lines if "hand-off" in line]
    assert len(handoffs) == len(report.handoffs) == 12
    assert [h.taker for h in report.handoffs] == [
        "registry", "artifact", "WAF @A", "Cerberus @A", "registry", "artifact", "WAF @B", "artifact", "WAF @F",
        "registry", "WAF @B re-run", "metrics",
    ]  # fmt: skip
    table = summary_table(report).splitlines()
    assert len(table) == 2 + len(report.handoffs) and table[0].startswith("#")


class WrongRevisionStory(Story):
    """A build whose image carries another commit's revision label: the consumer must refuse it."""

    def _podman_build(self, label: str, sha: str, tags: tuple[str, ...], labels: Any) -> str:
        return super()._podman_build(label, sha, tags, {**labels, "org.opencontainers.image.revision": "0" * 40})


def test_a_failed_hand_off_stops_the_story(world: FlowWorld) -> None:
    story = WrongRevisionStory(world, lambda line: None)
    story.setup()
    build = story.build("PR #12 @A", 12, SHA_A, "feature/flow-demo")
    with pytest.raises(FlowFailure, match="WAF @A: action-pull-image failed") as failure:
        story.consume("WAF @A", "waf-integration.yml", build, expect="registry")
    assert "revision" in str(failure.value)
    assert [h.taker for h in story.report.handoffs] == ["registry", "artifact"]
    assert "WAF @A" not in story.report.consumers


def test_the_demo_exits_1_and_shows_the_hand_offs_so_far_when_one_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`bash .ci/demo`'s exit code and output when a hand-off fails (the story itself is stubbed here)."""

    @contextlib.contextmanager
    def no_services(runner_temp: Path) -> Iterator[Any]:
        yield SimpleNamespace(gh=SimpleNamespace(problems=list))

    def fail_after_one(self: Story) -> FlowReport:
        self.hand_off("PR #12 @A", "registry", "127.0.0.1:1/wikid82/charon:pr-12-a1a2a3a", "push", "digest 1234")
        raise FlowFailure("WAF @A: came from the artifact, expected the registry")

    monkeypatch.setattr(flow, "demo_world", no_services)
    monkeypatch.setattr(Story, "play", fail_after_one)
    assert flow.main(["--runner-temp", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert "hand-off 1 PR #12 @A -> registry" in out and "charon:pr-12-a1a2a3a" in out.split("\n\n")[-1]
    assert "FAILED after" in err and "expected the registry" in err
