"""Every measure over a small history worked out by hand (tests/metrics/helpers.py `small_history`): a flaky
PR build re-run with "re-run failed jobs" (its passed build job carried into attempt 2 with old timestamps),
a plain push build, a build cancelled mid-build, a timed-out one on the same commit as the push, integration
runs that pull (one pull fails), prune runs (one fails), and a docs workflow that does neither."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.metrics.helpers import REPO, T0, WINDOW, Small, run_metrics, small_history
from tests.support.fakegithub import Clock, FakeGitHub
from tests.support.fakegithub.fixtures import serve_fake_github


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    yield from serve_fake_github(clock=Clock(start=T0 + 2 * 86400, frozen=True))


def summary(section: dict[str, Any]) -> tuple[Any, ...]:
    return section["n"], section["mean"], section["median"], section["p90"], section["p95"], section["max"]


def test_every_measure_matches_the_hand_worked_numbers(gh: FakeGitHub, tmp_path: Path) -> None:
    world = small_history(gh)
    result = run_metrics(gh, tmp_path, **WINDOW)
    assert result.code == 0 and not result.errors, result.stdout
    doc = result.doc

    build = doc["build_time"]
    # Attempt 2 of the re-run: from its own run_started_at (T0+2000) to its last job (T0+2330), not from the
    # run's created_at; the push build: T0+3602 to T0+4520.
    assert summary(build["attempts"]) == (2, 624.0, 624.0, 859.2, 888.6, 918.0)
    assert build["not_timed"] == {"cancelled": 1, "failure": 1, "timed_out": 1}
    # Queue: a1 build 30, a1 test 10, a2 test 30 (the carried build is not counted again), b 10 + 5, c's
    # build 10 (cancelled while running: it ran; the skipped test did not), d 5 + 5.
    assert summary(build["queue"]) == (8, 13.125, 10.0, 30.0, 30.0, 30.0)
    assert build["execution"]["n"] == 8 and build["execution"]["max"] == 3200.0
    assert [(j["name"], j["n"], j["median"]) for j in build["slowest_jobs"]] == [
        ("build", 4, 550.0),
        ("test", 4, 300.0),
    ]
    assert (build["runs"], build["runs_read"], build["attempts_read"]) == (4, 4, 5)

    failures = doc["failure_rate"]
    assert failures["attempt_conclusions"] == {"cancelled": 1, "failure": 1, "success": 2, "timed_out": 1}
    assert (failures["failed"], failures["decided"], failures["completed"], failures["rate"]) == (2, 4, 5, 0.5)
    assert failures["run_conclusions"] == {"cancelled": 1, "success": 2, "timed_out": 1}
    assert failures["flaky_runs"] == [world.a.id] and failures["flaky_commits"] == ["a" * 40]

    per_commit = doc["builds_per_commit"]
    assert (per_commit["commits"], per_commit["mean"], per_commit["max"]) == (3, round(4 / 3, 6), 2)
    assert per_commit["distribution"] == {"1": 2, "2": 1}

    assert [w["path"] for w in doc["workflows"]["pull"]] == [".github/workflows/integration.yml"]
    assert [w["path"] for w in doc["workflows"]["prune"]] == [".github/workflows/container-prune.yml"]
    pulls = doc["pull_success"]
    assert (pulls["success"], pulls["failed"], pulls["runs"], pulls["runs_read"]) == (2, 1, 3, 3)
    assert pulls["rate"] == round(2 / 3, 6)
    cleanups = doc["cleanup_success"]
    assert (cleanups["success"], cleanups["failed"], cleanups["rate"]) == (1, 1, 0.5)

    ci = doc["ci_time_per_pr"]
    times = {c["head_sha"][0]: c["seconds"] for c in ci["commits"]}
    # sha a: T0 to its failed integration run's job end (T0+2700); sha b (d is a PR on the push's commit):
    # T0+3600 to d's timed-out test (T0+14515); sha c: T0+7200 to the skipped test's T0+7301.
    assert times == {"a": 2700.0, "b": 10915.0, "c": 101.0}
    assert (ci["n"], ci["median"], ci["in_progress"], ci["ends_from_jobs"], ci["ends_from_updated_at"]) == (
        3, 2700.0, 0, 8, 0)  # fmt: skip
    labels = {c["head_sha"][0]: c["label"] for c in ci["commits"]}
    assert labels["a"] == f"{REPO}:feature/x"

    assert doc["daily"] == [{"date": "2026-01-01", "builds": 2, "median_seconds": 624.0, "failed": 2, "completed": 5}]
    assert doc["listing"]["runs"] == 10 and doc["listing"]["cut"] == 0

    # Requests: workflows, one runs page, a look at each of the 4 workflows (build's is run b), the other 3
    # build runs + 1 earlier attempt, the other prune run and the other 2 integration runs.
    assert doc["requests"]["api_requests"] == 13 == len(gh.requests)
    assert gh.count(operation="actions/get-workflow-run-attempt") == 1
    assert gh.count(path=r"/timing$") == 0

    outputs = result.outputs
    assert outputs["build-time-median-minutes"] == "10.40"
    assert outputs["build-time-p95-minutes"] == "14.81"
    assert outputs["build-time-mean-minutes"] == "10.40"
    assert outputs["queue-time-median-minutes"] == "0.17"
    assert outputs["failure-rate"] == "0.5000"
    assert outputs["builds-per-commit"] == "1.333"
    assert outputs["pull-success-rate"] == "0.6667"
    assert outputs["cleanup-success-rate"] == "0.5000"
    assert outputs["storage-bytes"] == ""
    assert outputs["requests-used"] == "13"
    assert outputs["runs-cut"] == "0"
    # 50 % of decided builds failed (limit 5 %), 1 of 3 pulls failed (limit 10 %); the mean build is 10.4 min.
    assert outputs["breaches"] == "2"
    assert [w.properties.get("title") for w in result.warnings] == [
        "Build failure rate above threshold",
        "Image pull failures above threshold",
    ]


@pytest.mark.parametrize("jobs_latest", ["attempt", "per-name"])
def test_the_numbers_do_not_depend_on_what_filter_latest_means_and_timing_is_never_asked(
    gh: FakeGitHub, tmp_path: Path, jobs_latest: str
) -> None:
    small_history(gh)
    gh.settings.jobs_latest = jobs_latest  # type: ignore[assignment]
    gh.settings.timing_gone = True
    result = run_metrics(gh, tmp_path, **WINDOW)
    assert result.code == 0, result.stdout
    doc = result.doc
    assert summary(doc["build_time"]["attempts"]) == (2, 624.0, 624.0, 859.2, 888.6, 918.0)
    assert doc["failure_rate"]["rate"] == 0.5 and doc["builds_per_commit"]["commits"] == 3
    jobs = gh.calls(operation="actions/list-jobs-for-workflow-run")
    assert jobs and all(call.query.get("filter") == ["all"] for call in jobs)
    assert gh.count(path=r"/timing$") == 0


def test_a_run_still_going_is_counted_but_not_measured(gh: FakeGitHub, tmp_path: Path) -> None:
    world: Small = small_history(gh)
    running = gh.add_run(REPO, "docker-build.yml", status="in_progress", head_sha="e" * 40, created_at=T0 + 30000)
    gh.add_job(running, "build", status="in_progress", created_at=T0 + 30000, started_at=T0 + 30010)
    result = run_metrics(gh, tmp_path, **WINDOW)
    doc = result.doc
    assert doc["build_time"]["runs"] == 5 and doc["build_time"]["runs_read"] == 4
    assert doc["failure_rate"]["run_conclusions"]["in_progress"] == 1
    assert doc["unread"] == {"not completed": 1}
    assert gh.count(path=rf"/runs/{running.id}/jobs") == 0
    assert doc["build_time"]["attempts"]["n"] == 2
    assert world.a.id in doc["failure_rate"]["flaky_runs"]
