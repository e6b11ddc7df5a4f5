"""action-prune under faults: 20% 5xx and connection resets with a primary budget that runs out mid-run
(zero wrong deletions; the next run finishes), the secondary limit (paced under it: no 403), GitHub's
refusals as outcomes, and two runs at once on one package."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from charon_ci.github import GithubClient
from charon_ci.prune.apply import Executor, OnlineStats, Pacer, Runtime
from charon_ci.prune.model import InUse, PackageVersion
from charon_ci.prune.policy import build_policy, plan
from charon_ci.prune.sources import DeleteResult, GhcrPackage
from tests.support.composite import parse_commands
from tests.support.fakegithub import Clock, FakeGitHub
from tests.support.fakegithub.fixtures import serve_fake_github
from tests.support.images import ImageFactory
from tests.support.prune_world import NO_WAIT, OWNER, action_inputs, build_charon_world, run_prune
from tests.support.services import Registry

pytestmark = pytest.mark.services


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    yield from serve_fake_github(seed=7)


def run_once(
    tmp_path: Path,
    inputs: dict[str, str],
    runtime: Runtime = NO_WAIT,
    capsys: pytest.CaptureFixture[str] | None = None,
) -> tuple[int, dict[str, str], str, OnlineStats]:
    """One in-process run with the runner's files; returns exit code, outputs, stdout, request stats."""
    code, outputs, stats = run_prune(tmp_path, inputs, runtime)
    stdout = capsys.readouterr().out if capsys is not None else ""
    return code, outputs, stdout, stats


def test_faults_and_an_exhausted_budget_delete_nothing_wrong_and_the_next_run_finishes(
    gh: FakeGitHub, registry: Registry, image_factory: ImageFactory, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    world = build_charon_world(gh, registry, image_factory, shuffle=2)
    errors = gh.faults.errors(0.1, status=502)
    resets = gh.faults.resets(0.1)
    # Enough for the listing, the in-use look-ups and a few deletions above the client's margin of 50.
    gh.set_rate_limit(remaining=50 + 7 + 8)
    inputs = action_inputs(gh, registry, world, **{"dry-run": "false"})

    code, out, stdout, _ = run_once(tmp_path, inputs, capsys=capsys)
    assert code == 0, stdout[-3000:]
    left = world.listed()
    assert world.keep <= left, "a version that must stay was deleted"
    assert world.all_digests - left <= world.delete
    assert 0 < int(out["deleted-count"]) < len(world.delete), out
    assert int(out["remaining-count"]) > 0
    assert "stopped early: rate budget nearly spent" in stdout
    assert gh.rate_limit().remaining > 0, "the budget was never run dry"
    assert errors.fired + resets.fired > 0

    gh.set_rate_limit(remaining=5000)
    code, out, stdout, _ = run_once(tmp_path, inputs, capsys=capsys)
    assert code == 0, stdout[-3000:]
    assert world.listed() == world.keep, "the next run finishes the job"
    assert out["remaining-count"] == "0" and out["failed-count"] == "0"
    assert not [c for c in parse_commands(stdout) if c.name == "error"]


def test_paced_under_the_secondary_limit_with_no_403(tmp_path: Path, registry: Registry) -> None:
    clock = Clock(frozen=True)
    with FakeGitHub(clock=clock) as gh:
        gh.faults.secondary_limit(900)
        package = gh.add_package(OWNER, "charon-pace", visibility="private")
        for n in range(360):
            package.add_version(f"sha256:{n:064x}", [f"sha-{n:07x}"], created_at=clock.now() - 40 * 86400)
        package.add_version("sha256:" + "f" * 64, ["latest"], created_at=clock.now() - 40 * 86400)
        gh.add_repo("wikid82/charon")
        runtime = Runtime(sleep=clock.sleep, monotonic=clock.now, wall=clock.now)
        inputs = {
            "package": "charon-pace", "owner": OWNER, "repository": "wikid82/charon", "registry-host": registry.host,
            "token": gh.token, "github-token": gh.token, "github-api-url": gh.url, "dry-run": "false",
        }  # fmt: skip
        code, out, _, stats = run_once(tmp_path, inputs, runtime)
        assert code == 0
        assert out["deleted-count"] == "360"
        deletes = gh.calls("DELETE")
        assert len(deletes) == 360 and stats.delete_requests == 360
        assert gh.count(status=403) == 0 and gh.count(status=429) == 0
        minutes = (deletes[-1].at - deletes[0].at) / 60
        assert (len(deletes) - 1) / minutes >= 160  # simulated time: exact, not a wall-clock measurement
        assert [v.name for v in package.versions()] == ["sha256:" + "f" * 64]


def test_refused_index_keeps_its_children_and_refusals_are_reported(
    gh: FakeGitHub, registry: Registry, image_factory: ImageFactory, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    world = build_charon_world(gh, registry, image_factory)
    inputs = action_inputs(gh, registry, world)
    code, out, stdout, _ = run_once(tmp_path, inputs, capsys=capsys)
    plan_file = Path(out["plan-path"])
    document = json.loads(plan_file.read_text())
    [closed_pr] = [item for item in document["delete"] if any(t.startswith("pr-7-") for t in item["tags"])]
    goes_with = {item["digest"] for item in document["delete"] if closed_pr["digest"][:19] in item["summary"]}
    assert len(goes_with) >= 4
    world.package.set_version(closed_pr["digest"], downloads=5001)  # public: GitHub refuses to delete it

    code, out, stdout, _ = run_once(tmp_path, {**inputs, "dry-run": "false"}, capsys=capsys)
    assert code == 0, stdout[-3000:]
    left = world.listed()
    assert closed_pr["digest"] in left and goes_with <= left, "children of an index that stays must stay"
    assert left == world.keep | goes_with | {closed_pr["digest"]}
    assert out["failed-count"] == str(1 + len(goes_with))
    warnings = [c.message for c in parse_commands(stdout) if c.name == "warning"]
    assert any("refused" in w and "more than 5000 downloads" in w for w in warnings), warnings
    assert any("could not be deleted" in w for w in warnings)


def test_last_tagged_version_refusal_and_already_gone_are_outcomes(gh: FakeGitHub) -> None:
    package = gh.add_package(OWNER, "solo")
    package.add_version("sha256:" + "1" * 64, ["sha-1111111"], created_at="2020-01-01T00:00:00Z")
    client = GithubClient(gh.token, api_url=gh.url, sleep=lambda s: None)
    ghcr = GhcrPackage(client, OWNER, "solo")
    [version] = ghcr.list_versions()
    refused = ghcr.delete_version(version.id)
    assert refused.status == "refused" and "last tagged version" in refused.detail
    package.add_version("sha256:" + "2" * 64, ["latest"])
    assert ghcr.delete_version(version.id).status == "deleted"
    assert ghcr.delete_version(version.id) == DeleteResult("gone", ghcr.delete_version(version.id).detail, 404)


class ScriptedDeleter:
    def __init__(self, answers: dict[int, str]) -> None:
        self.answers = answers
        self.asked: list[int] = []

    def delete(self, version: PackageVersion) -> DeleteResult:
        self.asked.append(version.id)
        return DeleteResult(self.answers.get(version.id, "deleted"), "scripted")  # type: ignore[arg-type]


class NoBudget:
    def __init__(self, allowed: int) -> None:
        self.allowed = allowed

    def allows(self, requests: int) -> bool:
        self.allowed -= requests
        return self.allowed >= 0

    def describe(self) -> str:
        return "scripted budget"


def test_executor_classifies_answers_and_stops_on_a_forbidden_token() -> None:
    now = datetime(2026, 2, 4, tzinfo=UTC)
    versions = [
        PackageVersion(n, f"sha256:{n:064x}", (f"sha-{n:07x}",), now - timedelta(days=40 + n)) for n in range(6)
    ]
    result = plan(versions, build_policy([], []), InUse(), now)
    deleter = ScriptedDeleter({5: "gone", 4: "refused", 2: "forbidden"})
    executor = Executor(deleter, NoBudget(100), Pacer(172, NO_WAIT), NO_WAIT)  # type: ignore[arg-type]
    outcome = executor.run(result)
    assert deleter.asked == [5, 4, 3, 2]  # oldest first, stopped at the forbidden answer
    assert [d.version.id for d in outcome.already_gone] == [5]
    assert [d.version.id for d in outcome.deleted] == [3]
    assert [(d.version.id, why) for d, why in outcome.failed] == [(4, "refused: scripted"), (2, "forbidden: scripted")]
    assert [d.version.id for d in outcome.remaining] == [1, 0] and outcome.fatal

    budget_stop = Executor(ScriptedDeleter({}), NoBudget(2), Pacer(172, NO_WAIT), NO_WAIT)  # type: ignore[arg-type]
    outcome = budget_stop.run(result)
    assert len(outcome.deleted) == 2 and len(outcome.remaining) == 4 and not outcome.fatal
    assert outcome.stopped_because == "rate budget nearly spent (scripted budget)"


def test_two_runs_at_once_on_one_package(
    gh: FakeGitHub, registry: Registry, image_factory: ImageFactory, tmp_path: Path
) -> None:
    world = build_charon_world(gh, registry, image_factory, shuffle=4)
    inputs = action_inputs(gh, registry, world, **{"dry-run": "false"})
    results: list[tuple[int, dict[str, str], str, OnlineStats]] = []
    folders = [tmp_path / "a", tmp_path / "b"]

    def one(folder: Path) -> None:
        folder.mkdir()
        results.append(run_once(folder, inputs, Runtime()))

    threads = [threading.Thread(target=one, args=(folder,)) for folder in folders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert len(results) == 2 and all(code == 0 for code, *_ in results)
    assert world.listed() == world.keep
    for _, out, _, _ in results:
        assert out["failed-count"] == "0", out
    deleted = sum(int(out["deleted-count"]) for _, out, _, _ in results)
    assert deleted == len(world.delete), "each version deleted exactly once; the other run saw 404 (already gone)"
