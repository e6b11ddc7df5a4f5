"""The generated Actions history (tests/support/run_history.py): realistic, consistent, as documented, and
served by the fake GitHub exactly as generated."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from tests.support.fakegithub import Clock, FakeGitHub
from tests.support.fakegithub.fixtures import serve_fake_github
from tests.support.run_history import (
    BUILD_JOB_NAMES,
    GenAttempt,
    GenJob,
    GenRun,
    History,
    generate_history,
    load_history,
)

TIMEOUT = 30
# The documented rule for "this step ran charon-ci's action X".
ACTION_STEP = re.compile(r"\(charon-ci/(action-[a-z-]+)\)$|^Run [^/\s]+/charon-ci/(action-[a-z-]+)@[0-9a-f]{40}$")


@pytest.fixture(scope="module")
def history() -> History:
    return generate_history()


def every_job(history: History) -> Iterator[tuple[GenRun, GenAttempt, GenJob]]:
    for run in history.runs:
        for attempt in run.attempts:
            for job in attempt.jobs:
                yield run, attempt, job


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the data alone ----------------------------------------------------------------------------------------------

def test_same_seed_same_history_other_seed_other_history() -> None:
    def digest(history: History) -> list[tuple[Any, ...]]:
        return [(r.workflow.file, r.head_sha, r.created_at, r.conclusion, len(r.attempts),
                 [(j.name, j.started_at, j.completed_at) for a in r.attempts for j in a.jobs]) for r in history.runs]

    assert digest(generate_history(runs=300, seed=5)) == digest(generate_history(runs=300, seed=5))
    assert digest(generate_history(runs=300, seed=5)) != digest(generate_history(runs=300, seed=6))


def test_a_week_of_exactly_the_runs_asked_with_busy_days_over_the_cap(history: History) -> None:
    assert len(history.runs) == 3000
    assert history.end - history.start == timedelta(days=7)
    assert all(history.start <= run.created_at < history.end for run in history.runs)
    assert [run.created_at for run in history.runs] == sorted(run.created_at for run in history.runs)
    per_day = history.runs_per_day()
    assert len(per_day) == 7 and sum(per_day.values()) == 3000
    assert sum(1 for count in per_day.values() if count > 1000) == 2, per_day
    numbers = defaultdict(list)
    for run in history.runs:
        numbers[run.workflow.file].append(run.run_number)
    assert all(found == list(range(1, len(found) + 1)) for found in numbers.values())


def test_it_has_every_case_the_metrics_must_handle(history: History) -> None:
    runs = history.runs
    conclusions = Counter(run.conclusion for run in runs)
    assert {"success", "failure", "cancelled", "skipped", "timed_out", None} <= set(conclusions)
    assert {run.status for run in runs} >= {"completed", "in_progress"}
    assert any(a.status == "queued" or any(j.status == "queued" for j in a.jobs) for r in runs for a in r.attempts)
    reruns = Counter(a.rerun for r in runs for a in r.attempts[1:])
    assert reruns["all"] >= 10 and reruns["failed"] >= 10
    assert any(len(r.attempts) == 3 for r in runs)
    assert sum(1 for _, _, job in every_job(history) if job.carried) >= 10
    flaky = [r for r in runs if any(a.conclusion == "failure" for a in r.attempts) and r.conclusion == "success"]
    assert len(flaky) >= 10
    assert sum(1 for r in runs if r.head_repo) >= 50 and any(p.from_fork for p in history.pulls)
    assert any(len(p.commits) >= 3 for p in history.pulls) and any(p.merged_at for p in history.pulls)
    events = Counter(r.event for r in runs)
    assert {"push", "pull_request", "workflow_run", "schedule"} <= set(events)
    assert len(history.runs_of("docker-build.yml")) >= 350
    assert len(history.runs_of("container-prune.yml")) == 28 and len(history.runs_of("nightly-build.yml")) == 7
    # GitHub's oddities, on purpose.
    assert any(j.conclusion == "skipped" and j.completed_at and j.completed_at < j.started_at
               for _, _, j in every_job(history))
    assert any(r.latest.jobs and r.latest.status == "completed" and r.latest.updated_at - max(
        j.completed_at for j in r.latest.jobs if j.completed_at) > timedelta(hours=1) for r in runs)


def test_timestamps_hold_githubs_order_except_the_documented_oddities(history: History) -> None:
    for run in history.runs:
        previous: GenAttempt | None = None
        for number, attempt in enumerate(run.attempts, start=1):
            assert attempt.number == number
            assert run.created_at <= attempt.run_started_at <= attempt.updated_at <= history.end
            if previous is not None:
                assert previous.status == "completed" and attempt.run_started_at >= previous.updated_at
            assert (attempt.conclusion is None) == (attempt.status != "completed")
            if attempt.status != "completed":
                assert attempt is run.latest
            for job in attempt.jobs:
                assert (job.conclusion is None) == (job.status != "completed") == (job.completed_at is None)
                assert job.created_at <= job.started_at
                if not job.carried:
                    assert job.created_at >= attempt.run_started_at
                oddity = job.conclusion == "skipped" and job.completed_at and job.completed_at < job.started_at
                if job.completed_at and not oddity:
                    assert job.started_at <= job.completed_at
                for step in job.steps:
                    assert (step.conclusion is None) == (step.status != "completed")
                    if step.started_at:
                        assert step.started_at >= job.started_at
                    if step.completed_at:
                        assert step.started_at and step.started_at <= step.completed_at
                        assert job.completed_at is None or step.completed_at <= job.completed_at
                assert [s.number for s in job.steps] == list(range(1, len(job.steps) + 1))
            previous = attempt


def test_attempt_conclusions_and_carried_jobs_follow_the_documented_rules(history: History) -> None:
    for run in history.runs:
        for index, attempt in enumerate(run.attempts):
            if attempt.status == "completed":
                found = {job.conclusion for job in attempt.jobs}
                expected = next((c for c in ("cancelled", "timed_out", "failure") if c in found),
                                "skipped" if found == {"skipped"} else "success")
                assert attempt.conclusion == expected
            carried = [job for job in attempt.jobs if job.carried]
            if attempt.rerun != "failed":
                assert not carried
                continue
            before = {job.name: job for job in run.attempts[index - 1].jobs}
            assert {job.name for job in carried} == {n for n, j in before.items() if j.conclusion == "success"}
            for job in carried:
                old = before[job.name]
                assert (job.created_at, job.started_at, job.completed_at, [s.name for s in job.steps]) == (
                    old.created_at, old.started_at, old.completed_at, [s.name for s in old.steps])
                assert job.started_at < attempt.run_started_at


def test_build_jobs_and_action_steps_are_recognisable_as_documented(history: History) -> None:
    names = {job.name for _, _, job in every_job(history)}
    assert {name for name in names if "build" in name} == set(BUILD_JOB_NAMES) == set(history.build_job_names)
    used: Counter[str | None] = Counter()
    for _, _, job in every_job(history):
        for step in job.steps:
            match = ACTION_STEP.search(step.name)
            assert (match.group(1) or match.group(2) if match else None) == step.uses, step.name
            used[step.uses] += 1
    prune_jobs = [j for r in history.runs_of("container-prune.yml") for a in r.attempts for j in a.jobs if j.steps]
    assert used["action-prune"] == len(prune_jobs) >= 28  # one prune step per attempt's prune job
    assert used["action-pull-image"] > 500 and used["action-tag"] > 300
    pulls = [s for _, _, j in every_job(history) for s in j.steps if s.uses == "action-pull-image"]
    assert any(s.name.startswith("Run ") for s in pulls) and any(s.name.endswith(")") for s in pulls)
    assert Counter(s.conclusion for s in pulls)["failure"] >= 10


def test_redundant_builds_before_the_migration_and_one_after(history: History) -> None:
    builds_per_sha: dict[str, int] = Counter()
    for run, _, job in every_job(history):
        if job.name in BUILD_JOB_NAMES and run.attempts[0].number == 1 and job in run.attempts[0].jobs:
            builds_per_sha[run.head_sha] += 1
    for run in history.runs_of("docker-build.yml"):
        if run.event != "pull_request" or not run.head_branch.startswith("feature/") or len(run.attempts[0].jobs) < 3:
            continue
        siblings = [r for r in history.runs if r.head_sha == run.head_sha and r.created_at - run.created_at < timedelta(
            minutes=1) and r.workflow.role in {"e2e", "integration"} and r.attempts[0].jobs]
        if run.created_at < history.migrated_at and len(siblings) == 5:
            assert builds_per_sha[run.head_sha] == 6
        if run.created_at >= history.migrated_at + timedelta(hours=1):
            assert builds_per_sha[run.head_sha] == 1


def test_only_a_newer_commit_on_the_same_pull_request_cancels_and_only_where_the_workflow_says(
        history: History) -> None:
    commits = {pull.number: pull.commits for pull in history.pulls}
    cancelled = [run for run in history.runs if any(a.conclusion == "cancelled" for a in run.attempts)]
    assert len(cancelled) >= 50
    for run in cancelled:
        assert run.workflow.cancel_in_progress and run.event == "pull_request" and run.pull is not None
        shas = commits[run.pull.number]
        assert shas.index(run.head_sha) < len(shas) - 1  # a newer commit came
        attempt = next(a for a in run.attempts if a.conclusion == "cancelled")
        newer = min(r.created_at for r in history.runs if r.pull is run.pull and r.head_sha == shas[
            shas.index(run.head_sha) + 1])
        ended = max(j.completed_at for j in attempt.jobs if j.completed_at)
        # The newer commit's runs are created 0-20 s after it is pushed; the cancel lands 2-8 s after the push.
        assert newer - timedelta(seconds=20) <= ended <= newer + timedelta(seconds=40)


def test_workflow_run_integrations_follow_each_completed_build_attempt(history: History) -> None:
    triggered = [r for r in history.runs if r.event == "workflow_run"]
    assert len(triggered) >= 200
    for run in triggered:
        assert run.trigger is not None and run.trigger_attempt is not None
        cause = run.trigger.attempts[run.trigger_attempt - 1]
        assert cause.status == "completed" and run.head_sha == run.trigger.head_sha
        assert run.head_repo == run.trigger.head_repo
        assert max(j.completed_at for j in cause.jobs if j.completed_at) < run.created_at
        if run.status == "completed" and run.attempts[0].jobs:
            first = run.attempts[0]
            assert (first.conclusion == "skipped") == (cause.conclusion != "success")
    assert history.migrated_at > history.start
    assert all(r.created_at >= history.migrated_at for r in triggered)


# --- through the fake -------------------------------------------------------------------------------------------

@pytest.fixture
def small() -> Iterator[tuple[FakeGitHub, History]]:
    history = generate_history(runs=400, seed=3, busy_days=())
    for gh in serve_fake_github(clock=Clock(start=history.end.timestamp(), frozen=True)):
        load_history(gh, history)
        yield gh, history


def get(gh: FakeGitHub, path: str, **params: Any) -> requests.Response:
    answer = requests.get(gh.url + path, params=params, timeout=TIMEOUT,
                          headers={"Authorization": f"Bearer {gh.token}"})
    assert answer.status_code == 200, answer.text[:500]
    return answer


def test_the_fake_serves_every_run_attempt_and_job_as_generated(small: tuple[FakeGitHub, History]) -> None:
    gh, history = small
    base = f"/repos/{history.repo}/actions"
    served: list[dict[str, Any]] = []
    page = 1
    while True:
        body = get(gh, f"{base}/runs", per_page=100, page=page).json()
        served += body["workflow_runs"]
        if len(body["workflow_runs"]) < 100:
            break
        page += 1
    assert [run["id"] for run in served] == [run.run_id for run in reversed(history.runs)]  # newest first
    assert [run["id"] for run in served] == sorted(run["id"] for run in served)[::-1]  # ids grow with time
    by_id = {run.run_id: run for run in history.runs}
    for shown in served:
        run = by_id[shown["id"]]
        assert (shown["path"], shown["event"], shown["head_sha"], shown["head_branch"], shown["run_number"]) == (
            run.workflow.path, run.event, run.head_sha, run.head_branch, run.run_number)
        assert (shown["status"], shown["conclusion"], shown["run_attempt"]) == (run.status, run.conclusion,
                                                                                 len(run.attempts))
        assert (shown["created_at"], shown["run_started_at"], shown["updated_at"]) == (
            iso(run.created_at), iso(run.latest.run_started_at), iso(run.latest.updated_at))
        assert shown["head_repository"]["full_name"] == (run.head_repo or history.repo)
        expected_pulls = [run.pull.number] if run.pull and not run.pull.from_fork else []
        assert [p["number"] for p in shown["pull_requests"]] == expected_pulls
    for run in history.runs:
        if len(run.attempts) == 1 and run.workflow.file != "docker-build.yml":
            continue
        for attempt in run.attempts:
            shown = get(gh, f"{base}/runs/{run.run_id}/attempts/{attempt.number}").json()
            assert (shown["status"], shown["conclusion"], shown["run_started_at"], shown["updated_at"]) == (
                attempt.status, attempt.conclusion, iso(attempt.run_started_at), iso(attempt.updated_at))
            jobs = get(gh, f"{base}/runs/{run.run_id}/attempts/{attempt.number}/jobs", per_page=100).json()["jobs"]
            assert [(j["id"], j["name"], j["status"], j["conclusion"], j["created_at"], j["started_at"],
                     j["completed_at"]) for j in jobs] == [
                (j.job_id, j.name, j.status, j.conclusion, iso(j.created_at), iso(j.started_at), iso(j.completed_at))
                for j in attempt.jobs]
            for served_job, job in zip(jobs, attempt.jobs, strict=True):
                assert [(s["name"], s["status"], s["conclusion"], s["started_at"], s["completed_at"])
                        for s in served_job["steps"]] == [
                    (s.name, s.status, s.conclusion, iso(s.started_at), iso(s.completed_at)) for s in job.steps]
    assert gh.problems() == []


def test_the_default_history_hits_the_runs_cap_on_its_busy_days(history: History) -> None:
    for gh in serve_fake_github(clock=Clock(start=history.end.timestamp(), frozen=True)):
        load_history(gh, history)
        busy = max(history.runs_per_day().items(), key=lambda item: item[1])
        answer = get(gh, f"/repos/{history.repo}/actions/runs", created=busy[0], per_page=100, page=10)
        assert answer.json()["total_count"] == busy[1] > 1000
        assert len(answer.json()["workflow_runs"]) == 100 and "next" not in answer.links
        beyond = get(gh, f"/repos/{history.repo}/actions/runs", created=busy[0], per_page=100, page=11)
        assert beyond.json()["workflow_runs"] == []
