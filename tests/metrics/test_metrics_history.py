"""action-metrics over a generated week of 3,000 runs (tests/support/run_history.py) served by the fake GitHub:
every number in the report and the outputs equals the oracle's (tests/metrics/oracle.py, which reads the
generator's dataclasses, not the API), within a stated request bound; then a second run the next day with the
first report as state reads only what is new.

The action runs as the runner runs it: action-metrics/action.yml through the composite harness, outputs read
from the GITHUB_OUTPUT file it wrote.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.metrics.oracle import Expected, dist, expect
from tests.support.composite import ActionResult, ActionRunner
from tests.support.composite_fixtures import REPO_ROOT
from tests.support.fakegithub import Clock, FakeGitHub
from tests.support.fakegithub.fixtures import serve_fake_github
from tests.support.run_history import History, generate_history, load_history

ACTION = REPO_ROOT / "action-metrics"
SCHEMA = json.loads((ACTION / "ci-metrics.schema.json").read_text())
BUILD = "docker-build.yml"
LIST_RUNS = "actions/list-workflow-runs-for-repo"
JOBS = "actions/list-jobs-for-workflow-run"
ATTEMPT = "actions/get-workflow-run-attempt"


@pytest.fixture(scope="module")
def week() -> History:
    # Eight days: the report is made at the end of day 7 and again, incrementally, at the end of day 8.
    history = generate_history(runs=3400, days=8)
    assert len(history.runs) >= 3000
    return history


@pytest.fixture(scope="module")
def gh(week: History) -> Iterator[FakeGitHub]:
    for fake in serve_fake_github(clock=Clock(start=week.end.timestamp(), frozen=True)):
        load_history(fake, week)
        yield fake


def token(gh: FakeGitHub) -> str:
    """A fresh GITHUB_TOKEN (1,000 requests an hour), so each run's requests are its own."""
    value = "ghs_" + secrets.token_hex(18)
    gh.add_token(value, kind="installation")
    return value


def run_action(action_runner: ActionRunner, gh: FakeGitHub, tok: str, **inputs: str) -> ActionResult:
    result = action_runner.run(
        ACTION,
        {"repository": "wikid82/charon", "github-token": tok, **inputs},
        env={**gh.env(tok), "GITHUB_REPOSITORY": "wikid82/charon"},
        timeout=600,
    )
    assert result.exit_code == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert not result.errors
    return result


def report(result: ActionResult) -> dict[str, Any]:
    path = Path(result.outputs["report-path"])
    document: dict[str, Any] = json.loads(path.read_text())
    jsonschema.validate(document, SCHEMA)
    return document


def approx(value: float | None) -> Any:
    return None if value is None else pytest.approx(value, abs=1e-3)


def check_summary(section: dict[str, Any], expected: Any) -> None:
    assert section["n"] == expected.n
    for key in ("mean", "median", "p90", "p95", "max"):
        assert section[key] == approx(getattr(expected, key)), key


def requests_of(gh: FakeGitHub, tok: str, operation: str | None = None) -> list[Any]:
    return [r for r in gh.requests if r.token == tok and (operation is None or r.operation == operation)]


def check_against_oracle(doc: dict[str, Any], outputs: dict[str, str], want: Expected, history: History) -> None:
    ids = {run.run_id: run for run in want.runs_in_window}
    assert doc["listing"]["runs"] == len(want.runs_in_window)
    assert doc["listing"]["cut"] == 0
    running = [r for r in want.runs_in_window if r.status != "completed"
               and r.workflow.file in want.pull_workflows | want.prune_workflows | {BUILD}]  # fmt: skip
    assert doc["unread"] == ({"not completed": len(running)} if running else {}), "nothing left for lack of budget"

    build = doc["build_time"]
    check_summary(build["attempts"], want.build_time)
    check_summary(build["queue"], want.queue)
    check_summary(build["execution"], want.execution)
    assert build["anomalies"] == {}

    failures = doc["failure_rate"]
    assert failures["attempt_conclusions"] == dict(want.attempt_conclusions)
    assert failures["rate"] == approx(want.failure_rate)
    assert set(failures["flaky_runs"]) == want.flaky_runs
    assert set(failures["flaky_commits"]) == want.flaky_commits
    assert want.flaky_runs, "the generated week has flaky re-runs"

    per_commit = doc["builds_per_commit"]
    assert per_commit["commits"] == len(want.builds_per_commit)
    assert per_commit["mean"] == approx(dist(want.builds_per_commit.values()).mean)
    assert per_commit["max"] == max(want.builds_per_commit.values())

    names = {flow.name: flow.file for flow in history.workflows}
    assert {names[w["name"]] for w in doc["workflows"]["pull"]} == want.pull_workflows
    assert {names[w["name"]] for w in doc["workflows"]["prune"]} == want.prune_workflows
    pulls = doc["pull_success"]
    assert (pulls["success"], pulls["failed"]) == (want.pull_success, want.pull_failed)
    assert pulls["rate"] == approx(want.pull_success / (want.pull_success + want.pull_failed))
    assert want.pull_failed > 0 and want.cleanup_success > 0
    cleanups = doc["cleanup_success"]
    assert (cleanups["success"], cleanups["failed"]) == (want.cleanup_success, want.cleanup_failed)

    ci = doc["ci_time_per_pr"]
    assert {c["head_sha"]: pytest.approx(c["seconds"]) for c in ci["commits"]} == want.ci_time
    assert ci["in_progress"] == want.ci_in_progress
    check_summary(ci, dist(want.ci_time.values()))

    for day in doc["daily"]:
        spans = want.daily_builds.get(day["date"], [])
        assert day["builds"] == len(spans)
        assert day["median_seconds"] == approx(dist(spans).median)
        assert day["failed"] == want.daily_failed[day["date"]]

    read_now = {r["id"] for r in doc["records"]["runs"]}
    assert read_now == want.read_runs, "exactly the runs the measures need were read"
    assert all(run_id in ids for run_id in read_now)

    # The outputs are the report's numbers, in the units their names say.
    assert outputs["build-time-median-minutes"] == f"{want.build_time.median / 60:.2f}"  # type: ignore[operator]
    assert outputs["build-time-p95-minutes"] == f"{want.build_time.p95 / 60:.2f}"  # type: ignore[operator]
    assert outputs["queue-time-median-minutes"] == f"{want.queue.median / 60:.2f}"  # type: ignore[operator]
    assert outputs["failure-rate"] == f"{want.failure_rate:.4f}"
    assert outputs["builds-per-commit"] == f"{dist(want.builds_per_commit.values()).mean:.3f}"
    assert outputs["pull-success-rate"] == f"{want.pull_success / (want.pull_success + want.pull_failed):.4f}"
    assert outputs["breaches"] == str(doc["breaches"])
    assert outputs["storage-bytes"] == ""


def test_a_week_of_3000_runs_matches_the_oracle_within_the_request_bound_and_a_second_day_reads_only_news(
    action_runner: ActionRunner, gh: FakeGitHub, week: History, tmp_path: Path
) -> None:
    day7 = week.end - timedelta(days=1)
    since = day7 - timedelta(days=7)
    first_token = token(gh)
    first = run_action(
        action_runner, gh, first_token,
        since=since.isoformat(), until=(day7 - timedelta(seconds=1)).isoformat(), **{"report-dir": str(tmp_path / "1")},
    )  # fmt: skip
    doc = report(first)
    want = expect(week, since=since, until=day7 - timedelta(seconds=1), build_files={BUILD})
    assert len(want.runs_in_window) >= 3000
    check_against_oracle(doc, first.outputs, want, week)

    # Requests: list pages + one jobs list per run read + one GET per earlier attempt of those, and nothing else.
    made = requests_of(gh, first_token)
    list_pages = requests_of(gh, first_token, LIST_RUNS)
    assert len(list_pages) == sum(q["pages"] for q in doc["listing"]["queries"])
    assert len(doc["listing"]["queries"]) > 1, "a busy day passes the 1,000-result cap: the range was split"
    assert len(list_pages) <= -(-len(want.runs_in_window) // 100) + len(doc["listing"]["queries"])
    jobs_calls = requests_of(gh, first_token, JOBS)
    assert {int(r.path.split("/")[-2]) for r in jobs_calls} == want.read_runs
    assert len(jobs_calls) == len(want.read_runs)
    assert all(r.query.get("filter") == ["all"] and r.query.get("per_page") == ["100"] for r in jobs_calls)
    assert len(requests_of(gh, first_token, ATTEMPT)) == want.earlier_attempts_read
    assert not [r for r in made if r.path.endswith("/timing")]
    assert len(made) == len(list_pages) + len(jobs_calls) + want.earlier_attempts_read + 1  # + the workflows list
    assert int(first.outputs["requests-used"]) == len(made) <= 600
    assert doc["requests"]["rate_remaining"] == 1000 - len(made)

    # The next day: a window one day later, the first report as state.
    second_token = token(gh)
    until = week.end - timedelta(seconds=1)
    second = run_action(
        action_runner, gh, second_token,
        since=(since + timedelta(days=1)).isoformat(), until=until.isoformat(),
        state=str(Path(first.outputs["report-path"])), **{"report-dir": str(tmp_path / "2")},
    )  # fmt: skip
    doc2 = report(second)
    want2 = expect(
        week, since=since + timedelta(days=1), until=until, build_files={BUILD}, known=want.read_runs,
        probed_in=(since, day7 - timedelta(seconds=1)),
    )  # fmt: skip
    check_against_oracle(doc2, second.outputs, want2, week)
    made2 = requests_of(gh, second_token)
    assert int(second.outputs["requests-used"]) == len(made2) <= 150
    fetched = [int(r.path.split("/")[-2]) for r in requests_of(gh, second_token, JOBS)]
    assert set(fetched) == want2.read_runs - want.read_runs, "only runs new since the first report are fetched"
    assert len(fetched) == len(set(fetched))
    assert doc2["requests"]["runs_reused"] == len(want2.read_runs & want.read_runs) > 0


@pytest.fixture(scope="module")
def issue9_week() -> History:
    # Issue 9's case: 3,096 runs over eight days at a docker-build share of 1/6 put 3,000 runs in days 1-7,
    # 502 of them docker-build runs (bench/metrics prints the same case).
    return generate_history(runs=3096, days=8, build_share=1 / 6)


def test_issue9_case_3000_runs_500_builds_fits_600_requests_with_a_pull_sample_of_10_and_150_the_next_day(
    action_runner: ActionRunner, issue9_week: History, tmp_path: Path
) -> None:
    day7 = issue9_week.end - timedelta(days=1)
    since = day7 - timedelta(days=7)
    until = day7 - timedelta(seconds=1)
    for fake in serve_fake_github(clock=Clock(start=issue9_week.end.timestamp(), frozen=True)):
        load_history(fake, issue9_week)  # assigns the run ids the oracle names
        want = expect(issue9_week, since=since, until=until, build_files={BUILD}, pull_sample=10)
        assert len(want.runs_in_window) == 3000
        assert sum(1 for run in want.runs_in_window if run.workflow.file == BUILD) >= 500
        first_token = token(fake)
        first = run_action(
            action_runner, fake, first_token, since=since.isoformat(), until=until.isoformat(),
            **{"pull-sample": "10", "report-dir": str(tmp_path / "1")},
        )  # fmt: skip
        doc = report(first)
        check_against_oracle(doc, first.outputs, want, issue9_week)  # every build run read, nothing cut
        made = requests_of(fake, first_token)
        assert len(requests_of(fake, first_token, ATTEMPT)) == want.earlier_attempts_read
        assert len(made) == len(requests_of(fake, first_token, LIST_RUNS)) + len(want.read_runs) + (
            want.earlier_attempts_read + 1
        )
        assert int(first.outputs["requests-used"]) == len(made) <= 600

        second_token = token(fake)
        end = issue9_week.end - timedelta(seconds=1)
        second = run_action(
            action_runner, fake, second_token, since=(since + timedelta(days=1)).isoformat(), until=end.isoformat(),
            state=first.outputs["report-path"], **{"pull-sample": "10", "report-dir": str(tmp_path / "2")},
        )  # fmt: skip
        want2 = expect(
            issue9_week, since=since + timedelta(days=1), until=end, build_files={BUILD}, pull_sample=10,
            known=want.read_runs, probed_in=(since, until),
        )  # fmt: skip
        check_against_oracle(report(second), second.outputs, want2, issue9_week)
        assert int(second.outputs["requests-used"]) == len(requests_of(fake, second_token)) <= 150
