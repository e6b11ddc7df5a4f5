"""The fake GitHub's workflow runs as GitHub keeps them: attempts, re-runs, job filters, the 1,000-result cap's
links, the `created` qualifier, `/timing` closing down, and the runs/jobs overlay contract."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.support.fakegithub import Clock, FakeGitHub, Run
from tests.support.fakegithub.clock import to_epoch
from tests.support.fakegithub.fixtures import serve_fake_github

TIMEOUT = 10
T0 = to_epoch("2025-06-02T10:00:00Z")


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    yield from serve_fake_github(clock=Clock(start=T0 + 30 * 86400, frozen=True))


def get(gh: FakeGitHub, path: str, **params: Any) -> requests.Response:
    return requests.get(gh.url + path, params=params, timeout=TIMEOUT,
                        headers={"Authorization": f"Bearer {gh.token}", "Accept": "application/vnd.github+json"})


def runs_path(run: Run) -> str:
    return f"/repos/{run.repo.full_name}/actions/runs/{run.id}"


def failed_build(gh: FakeGitHub) -> Run:
    """A build run whose first attempt failed: `build` passed, `test` failed, `deploy` was skipped."""
    run = gh.add_run("wikid82/charon", "docker-build.yml", conclusion="failure", created_at=T0,
                     run_started_at=T0 + 2, updated_at=T0 + 900)
    gh.add_job(run, "build", created_at=T0 + 3, started_at=T0 + 20, completed_at=T0 + 600,
               steps=[{"name": "Set up job", "started_at": T0 + 20, "completed_at": T0 + 22},
                      {"name": "Build (docker/build-push-action)", "started_at": T0 + 22, "completed_at": T0 + 598}])
    gh.add_job(run, "test", conclusion="failure", created_at=T0 + 601, started_at=T0 + 610, completed_at=T0 + 880)
    gh.add_job(run, "deploy", conclusion="skipped", created_at=T0 + 881, started_at=T0 + 881, completed_at=T0 + 881)
    return run


# --- attempts ----------------------------------------------------------------------------------------------------

def test_a_rerun_keeps_created_at_resets_run_started_at_and_serves_every_attempt(gh: FakeGitHub) -> None:
    run = failed_build(gh)
    gh.rerun(run, at=T0 + 3600, actor="maintainer")
    for name in ("build", "test", "deploy"):
        gh.add_job(run, name, created_at=T0 + 3601, started_at=T0 + 3610, completed_at=T0 + 4000)
    run.status, run.conclusion, run.updated_at = "completed", "success", T0 + 4005

    latest = get(gh, runs_path(run)).json()
    assert latest["run_attempt"] == 2
    assert latest["created_at"] == "2025-06-02T10:00:00Z"  # the first attempt's
    assert latest["run_started_at"] == "2025-06-02T11:00:00Z"
    assert latest["previous_attempt_url"] == f"{gh.url}{runs_path(run)}/attempts/1"
    assert latest["triggering_actor"]["login"] == "maintainer"

    first = get(gh, f"{runs_path(run)}/attempts/1").json()
    assert (first["run_attempt"], first["status"], first["conclusion"]) == (1, "completed", "failure")
    assert (first["created_at"], first["run_started_at"], first["updated_at"]) == (
        "2025-06-02T10:00:00Z", "2025-06-02T10:00:02Z", "2025-06-02T10:15:00Z")
    assert first["previous_attempt_url"] is None
    assert get(gh, f"{runs_path(run)}/attempts/2").json() == latest
    for missing in ("0", "3", "x"):
        assert get(gh, f"{runs_path(run)}/attempts/{missing}").status_code == 404
        assert get(gh, f"{runs_path(run)}/attempts/{missing}/jobs").status_code == 404
    # A non-integer attempt number is also a request the contract refuses (fake-strict records it).
    assert [v.operation_id for v in gh.take_violations()] == [
        "actions/get-workflow-run-attempt", "actions/list-jobs-for-workflow-run-attempt"
    ]  # fmt: skip

    jobs_1 = get(gh, f"{runs_path(run)}/attempts/1/jobs").json()
    assert [(j["name"], j["run_attempt"], j["conclusion"]) for j in jobs_1["jobs"]] == [
        ("build", 1, "success"), ("test", 1, "failure"), ("deploy", 1, "skipped")]
    jobs_2 = get(gh, f"{runs_path(run)}/attempts/2/jobs").json()
    assert {j["run_attempt"] for j in jobs_2["jobs"]} == {2} and jobs_2["total_count"] == 3


def test_previous_attempt_url_chains_through_three_attempts(gh: FakeGitHub) -> None:
    run = failed_build(gh)
    gh.rerun(run, at=T0 + 1000)
    run.status, run.conclusion, run.updated_at = "completed", "cancelled", T0 + 1100
    gh.rerun(run, at=T0 + 2000, status="in_progress")
    assert get(gh, runs_path(run)).json()["previous_attempt_url"].endswith(f"/runs/{run.id}/attempts/2")
    second = get(gh, f"{runs_path(run)}/attempts/2").json()
    assert second["previous_attempt_url"].endswith(f"/runs/{run.id}/attempts/1")
    assert (second["conclusion"], second["run_started_at"]) == ("cancelled", "2025-06-02T10:16:40Z")
    third = get(gh, f"{runs_path(run)}/attempts/3").json()
    assert (third["status"], third["conclusion"]) == ("in_progress", None)


def test_rerun_failed_jobs_carries_passed_jobs_with_their_old_timestamps(gh: FakeGitHub) -> None:
    run = failed_build(gh)
    old_build = run.jobs_of(1)[0]
    carried = gh.rerun(run, failed_only=True, at=T0 + 7200)
    assert [job.name for job in carried] == ["build"]
    gh.add_job(run, "test", created_at=T0 + 7201, started_at=T0 + 7230, completed_at=T0 + 7500)
    run.status, run.conclusion, run.updated_at = "completed", "success", T0 + 7510

    jobs = get(gh, f"{runs_path(run)}/attempts/2/jobs").json()["jobs"]
    build = next(job for job in jobs if job["name"] == "build")
    assert build["run_attempt"] == 2 and build["id"] != old_build.id
    assert (build["started_at"], build["completed_at"]) == ("2025-06-02T10:00:20Z", "2025-06-02T10:10:00Z")
    assert [step["name"] for step in build["steps"]] == ["Set up job", "Build (docker/build-push-action)"]
    # The carried job ran before this attempt started: a duration must not be taken from run_started_at to it.
    assert build["started_at"] < get(gh, runs_path(run)).json()["run_started_at"]
    assert carried[0].carried_from == old_build.id
    assert get(gh, f"{runs_path(run)}/jobs", filter="all").json()["total_count"] == 5


def test_a_run_added_at_a_later_attempt_derives_earlier_attempts_from_their_jobs(gh: FakeGitHub) -> None:
    run = gh.add_run("acme/app", created_at=T0, run_started_at=T0 + 5000, updated_at=T0 + 5600, run_attempt=2)
    gh.add_job(run, "unit", run_attempt=1, conclusion="timed_out", created_at=T0 + 1, started_at=T0 + 10,
               completed_at=T0 + 3600)
    gh.add_job(run, "unit", created_at=T0 + 5001, started_at=T0 + 5010, completed_at=T0 + 5500)
    first = get(gh, f"{runs_path(run)}/attempts/1").json()
    assert (first["conclusion"], first["run_started_at"], first["updated_at"]) == (
        "timed_out", "2025-06-02T10:00:01Z", "2025-06-02T11:00:00Z")


def test_filter_latest_in_todays_and_in_the_pre_may_2025_meaning(gh: FakeGitHub) -> None:
    run = failed_build(gh)
    gh.rerun(run, at=T0 + 3600, status="in_progress")
    gh.add_job(run, "build", status="in_progress", created_at=T0 + 3601, started_at=T0 + 3605)

    def names(**params: str) -> list[tuple[str, int]]:
        body = get(gh, f"{runs_path(run)}/jobs", **params).json()
        assert body["total_count"] == len(body["jobs"])
        return [(job["name"], job["run_attempt"]) for job in body["jobs"]]

    assert names() == [("build", 2)] == names(filter="latest")  # the last attempt only
    assert len(names(filter="all")) == 4
    gh.settings.jobs_latest = "per-name"
    assert names() == [("test", 1), ("deploy", 1), ("build", 2)]  # newest of each name, by job id
    assert names(filter="all") == [("build", 1), ("test", 1), ("deploy", 1), ("build", 2)]
    assert get(gh, f"{runs_path(run)}/jobs", filter="newest").status_code == 422
    assert [v.operation_id for v in gh.take_violations()] == ["actions/list-jobs-for-workflow-run"]  # out of range


def test_rerun_refuses_what_github_refuses(gh: FakeGitHub) -> None:
    running = gh.add_run("acme/app", status="in_progress", created_at=T0)
    with pytest.raises(ValueError, match="completed runs only"):
        gh.rerun(running)
    done = gh.add_run("acme/app", created_at=T0, updated_at=T0 + 600)
    with pytest.raises(ValueError, match="before the last one ended"):
        gh.rerun(done, at=T0 + 100)


# --- timestamps and the overlay ----------------------------------------------------------------------------------

def test_setters_refuse_timelines_github_never_shows(gh: FakeGitHub) -> None:
    with pytest.raises(ValueError, match="created_at <= run_started_at"):
        gh.add_run("acme/app", created_at=T0, run_started_at=T0 - 1)
    run = gh.add_run("acme/app", created_at=T0, updated_at=T0 + 600)
    with pytest.raises(ValueError, match="created_at <= started_at"):
        gh.add_job(run, "queued-late", created_at=T0 + 10, started_at=T0 + 5)
    with pytest.raises(ValueError, match="only a skipped job"):
        gh.add_job(run, "backwards", created_at=T0, started_at=T0 + 10, completed_at=T0 + 5)
    with pytest.raises(ValueError, match=r"step 1 .*after its job"):
        gh.add_job(run, "spill", created_at=T0, started_at=T0 + 1, completed_at=T0 + 60,
                   steps=[{"name": "long", "started_at": T0 + 1, "completed_at": T0 + 61}])


def test_a_skipped_job_may_complete_before_it_started_as_on_github(gh: FakeGitHub) -> None:
    run = gh.add_run("acme/app", created_at=T0, updated_at=T0 + 600)
    gh.add_job(run, "deploy", conclusion="skipped", created_at=T0 + 5, started_at=T0 + 9, completed_at=T0 + 5)
    job = get(gh, f"{runs_path(run)}/jobs").json()["jobs"][0]
    assert job["completed_at"] < job["started_at"]
    assert gh.violations == []


def test_untimed_steps_share_their_jobs_time(gh: FakeGitHub) -> None:
    run = gh.add_run("acme/app", created_at=T0, updated_at=T0 + 600)
    gh.add_job(run, "lint", created_at=T0, started_at=T0 + 10, completed_at=T0 + 70,
               steps=[{"name": "a"}, {"name": "b"}, {"name": "c"}])
    gh.add_job(run, "wait", status="queued", created_at=T0, started_at=T0, steps=[{"name": "a"}])
    jobs = get(gh, f"{runs_path(run)}/jobs").json()["jobs"]
    assert [(s["started_at"], s["completed_at"]) for s in jobs[0]["steps"]] == [
        ("2025-06-02T10:00:10Z", "2025-06-02T10:00:30Z"), ("2025-06-02T10:00:30Z", "2025-06-02T10:00:50Z"),
        ("2025-06-02T10:00:50Z", "2025-06-02T10:01:10Z")]
    assert jobs[1]["steps"][0]["status"] == "queued" and jobs[1]["steps"][0]["conclusion"] is None


@pytest.mark.parametrize(("operation", "mutate", "expected"), [
    # Fields the OpenAPI leaves optional or untyped, which the overlay requires with GitHub's values.
    ("actions/get-workflow-run", lambda b: {k: v for k, v in b.items() if k != "run_started_at"},
     "'run_started_at' is a required property"),
    ("actions/get-workflow-run", lambda b: {**b, "conclusion": "passed"}, "conclusion"),
    ("actions/get-workflow-run", lambda b: {**b, "status": "in_progress"}, "conclusion"),  # in progress, concluded
    ("actions/get-workflow-run", lambda b: {**b, "previous_attempt_url": "/runs/1/attempts/1"}, "previous_attempt_url"),
    ("actions/get-workflow-run", lambda b: {**b, "run_started_at": "2025-06-02T09:00:00Z"},
     "created_at <= run_started_at"),
    ("actions/get-workflow-run", lambda b: {**b, "updated_at": "2025-06-02T10:20:00+00:00"}, "updated_at"),
    ("actions/get-workflow-run", lambda b: {**b, "run_attempt": 3, "previous_attempt_url": b["url"] + "/attempts/1"},
     "does not name attempt 2"),
    ("actions/list-workflow-runs-for-repo",
     lambda b: {**b, "workflow_runs": [{**r, "run_attempt": 2} for r in b["workflow_runs"]]}, "previous_attempt_url"),
    ("actions/get-workflow-run-attempt", lambda b: {**b, "run_attempt": 2}, "previous_attempt_url"),
    ("actions/list-jobs-for-workflow-run",
     lambda b: {**b, "jobs": [{**j, "status": "in_progress"} for j in b["jobs"]]}, "conclusion"),
    ("actions/list-jobs-for-workflow-run",
     lambda b: {**b, "jobs": [{**j, "created_at": "2025-06-02T12:00:00Z"} for j in b["jobs"]]},
     "created_at <= started_at"),
    ("actions/list-jobs-for-workflow-run-attempt",
     lambda b: {**b, "jobs": [{**j, "run_url": j["run_url"] + "0"} for j in b["jobs"]]}, "run_url"),
    ("actions/list-jobs-for-workflow-run-attempt",
     lambda b: {**b, "jobs": [{**j, "steps": [{**s, "completed_at": "2025-06-02T12:00:00Z"} for s in j["steps"]]}
                              for j in b["jobs"]]}, "after its job"),
])
def test_the_overlay_catches_what_the_openapi_lets_through(gh: FakeGitHub, operation: str, mutate: Any,
                                                           expected: str) -> None:
    run = failed_build(gh)
    paths = {
        "actions/get-workflow-run": runs_path(run), "actions/get-workflow-run-attempt": f"{runs_path(run)}/attempts/1",
        "actions/list-workflow-runs-for-repo": "/repos/wikid82/charon/actions/runs",
        "actions/list-jobs-for-workflow-run": f"{runs_path(run)}/jobs",
        "actions/list-jobs-for-workflow-run-attempt": f"{runs_path(run)}/attempts/1/jobs",
    }
    assert get(gh, paths[operation]).status_code == 200  # as served, the body passes both
    gh.corrupt(operation, mutate)
    answer = get(gh, paths[operation])
    assert answer.status_code == 500
    caught = gh.take_violations()
    assert len(caught) == 1 and caught[0].operation_id == operation
    assert "overlay" in caught[0].problem and expected in caught[0].problem, caught[0].problem


# --- /timing ------------------------------------------------------------------------------------------------------

def test_timing_can_be_closed_down_to_410(gh: FakeGitHub) -> None:
    run = failed_build(gh)
    assert get(gh, f"{runs_path(run)}/timing").status_code == 200
    gh.settings.timing_gone = True
    gone = get(gh, f"{runs_path(run)}/timing")
    assert gone.status_code == 410 and gone.json()["status"] == "410" and "removed" in gone.json()["message"]
    assert gh.violations == []


# --- the runs list: the 1,000-result cap's links and the `created` qualifier ---------------------------------------

def busy_repo(gh: FakeGitHub, count: int = 1050) -> None:
    repo = gh.add_repo("acme/busy")
    for number in range(count):
        gh.add_run(repo, created_at=T0 + number * 60)


def page_of(link: dict[str, Any], rel: str) -> int:
    return int(parse_qs(urlsplit(link[rel]["url"]).query)["page"][0])


def test_capped_runs_pages_carry_no_last_link_by_default(gh: FakeGitHub) -> None:
    busy_repo(gh)
    url: str | None = f"{gh.url}/repos/acme/busy/actions/runs?per_page=100&created=2025-06-01..2025-06-03"
    seen, pages = 0, 0
    while url:
        answer = requests.get(url, headers={"Authorization": f"Bearer {gh.token}"}, timeout=TIMEOUT)
        assert answer.json()["total_count"] == 1050
        assert "last" not in answer.links
        seen += len(answer.json()["workflow_runs"])
        pages += 1
        url = answer.links.get("next", {}).get("url")
    assert (seen, pages) == (1000, 10)
    # Under the cap a query keeps its rel="last".
    small = get(gh, "/repos/acme/busy/actions/runs", per_page=100, created="2025-06-02T10:00:00Z..2025-06-02T15:00:00Z")
    assert small.json()["total_count"] == 301 and page_of(small.links, "last") == 4


def test_capped_runs_links_in_the_capped_and_total_modes(gh: FakeGitHub) -> None:
    busy_repo(gh)
    gh.settings.runs_capped_links = "capped"
    first = get(gh, "/repos/acme/busy/actions/runs", per_page=100, event="push")
    assert page_of(first.links, "last") == 10
    gh.settings.runs_capped_links = "total"
    first = get(gh, "/repos/acme/busy/actions/runs", per_page=100, event="push")
    assert page_of(first.links, "last") == 11
    tenth = get(gh, "/repos/acme/busy/actions/runs", per_page=100, event="push", page=10)
    assert len(tenth.json()["workflow_runs"]) == 100 and page_of(tenth.links, "next") == 11
    beyond = get(gh, "/repos/acme/busy/actions/runs", per_page=100, event="push", page=11)
    assert beyond.json()["workflow_runs"] == [] and beyond.json()["total_count"] == 1050


def test_created_qualifier_forms_filter_on_the_second_github_shows(gh: FakeGitHub) -> None:
    repo = gh.add_repo("acme/app")
    moments = ["2025-06-01T23:59:59Z", "2025-06-02T00:00:00Z", "2025-06-02T12:00:00Z", "2025-06-02T23:59:59Z",
               "2025-06-03T00:00:00Z"]
    for moment in moments:
        gh.add_run(repo, created_at=moment)
    gh.add_run(repo, created_at=to_epoch("2025-06-02T12:00:00Z") + 0.75)  # shown as 12:00:00

    def created(query: str) -> list[str]:
        answer = get(gh, "/repos/acme/app/actions/runs", created=query, per_page=100)
        assert answer.status_code == 200, answer.text
        return sorted(run["created_at"] for run in answer.json()["workflow_runs"])

    noon = "2025-06-02T12:00:00Z"
    assert created("2025-06-02") == ["2025-06-02T00:00:00Z", noon, noon, "2025-06-02T23:59:59Z"]
    assert created("2025-06-02..2025-06-02") == created("2025-06-02")
    assert created("2025-06-01..2025-06-02") == sorted([*moments[:4], noon]) and len(created("2025-06-01..*")) == 6
    assert created(">=2025-06-02") == ["2025-06-02T00:00:00Z", noon, noon, "2025-06-02T23:59:59Z", moments[4]]
    assert created(">2025-06-02") == [moments[4]]
    assert created("<=2025-06-01") == [moments[0]] and created("<2025-06-02") == [moments[0]]
    assert created(f"<={noon}") == [*moments[:2], noon, noon]  # the second shown, fraction and all
    assert created(f">{noon}") == moments[3:]
    assert created(f"{noon}..2025-06-02T23:59:59Z") == [noon, noon, moments[3]]
    assert created("2025-06-02T13:00:00+01:00") == [noon, noon]  # offsets, also when '+' arrives as a space
    raw = requests.get(f"{gh.url}/repos/acme/app/actions/runs?created=2025-06-02T13:00:00+01:00", timeout=TIMEOUT,
                       headers={"Authorization": f"Bearer {gh.token}"})
    assert raw.json()["total_count"] == 2
    assert created("*..2025-06-01T23:59:59Z") == [moments[0]]
    for bad in ("yesterday", "2025-13-01", ">=", "2025-06-02..soon"):
        assert get(gh, "/repos/acme/app/actions/runs", created=bad).status_code == 422
