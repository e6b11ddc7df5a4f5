"""The runs list under GitHub's per-query cap, the request budget, and incremental runs with a state.

The fake's cap is lowered (it is 1,000 on GitHub) so that small histories show the same behaviour; the
3,000-run week in test_metrics_history.py shows it at the real cap."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.metrics.helpers import REPO, T0, WINDOW, run_metrics, small_history
from tests.support.fakegithub import Clock, FakeGitHub
from tests.support.fakegithub.fixtures import serve_fake_github

LIST = "actions/list-workflow-runs-for-repo"
JOBS = "actions/list-jobs-for-workflow-run"


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    yield from serve_fake_github(clock=Clock(start=T0 + 2 * 86400, frozen=True))


def builds(gh: FakeGitHub, moments: list[float]) -> None:
    for index, at in enumerate(moments):
        run = gh.add_run(REPO, "docker-build.yml", head_sha=f"{index:040x}", created_at=at, updated_at=at + 700)
        gh.add_job(run, "build", created_at=at, started_at=at + 10, completed_at=at + 610)


@pytest.mark.parametrize("links", ["no-last", "capped", "total"])
def test_the_window_is_split_below_the_cap_and_every_run_is_read_once(
    gh: FakeGitHub, tmp_path: Path, links: str
) -> None:
    gh.settings.runs_result_cap = 7
    gh.settings.runs_capped_links = links  # type: ignore[assignment]
    # 30 runs, two pairs sharing a second (the seam between queries must not lose either).
    moments = [T0 + 600 * i for i in range(26)] + [T0 + 600 * 3, T0 + 600 * 10, T0 + 600 * 17, T0 + 600 * 24]
    builds(gh, moments)
    result = run_metrics(gh, tmp_path, **WINDOW)
    assert result.code == 0, result.stdout
    doc = result.doc
    assert doc["listing"]["runs"] == 30 and doc["listing"]["cut"] == 0
    assert result.outputs["runs-cut"] == "0"
    assert len(doc["listing"]["queries"]) >= 5
    assert all(q["fetched"] <= 7 for q in doc["listing"]["queries"])
    assert gh.count(operation=LIST) == sum(q["pages"] for q in doc["listing"]["queries"])
    assert doc["build_time"]["attempts"]["n"] == 30
    assert gh.count(operation=JOBS) == 30


def test_more_runs_in_one_second_than_a_query_lists_are_counted_as_cut_and_the_rest_is_read(
    gh: FakeGitHub, tmp_path: Path
) -> None:
    gh.settings.runs_result_cap = 4
    builds(gh, [T0 + 100 * i for i in range(5)] + [T0 + 5000] * 6 + [T0 + 9000])
    result = run_metrics(gh, tmp_path, **WINDOW)
    assert result.code == 0, result.stdout
    doc = result.doc
    # 12 runs: the 6 of one second can be read only 4 at a time; everything else is read.
    assert doc["listing"]["cut"] == 2 and result.outputs["runs-cut"] == "2"
    assert doc["listing"]["runs"] == 10
    assert "6 runs were created in the second 2026-01-01T01:23:20Z" in doc["listing"]["cut_reason"]
    assert [w.properties["title"] for w in result.warnings] == ["Runs list cut"]
    assert "runs could not be listed" in result.summary


def test_the_request_budget_stops_reading_jobs_and_the_next_run_with_the_state_reads_the_rest(
    gh: FakeGitHub, tmp_path: Path
) -> None:
    small_history(gh)
    # Workflows, the runs page and 6 more: the look at each workflow (4) and 2 build runs.
    first = run_metrics(gh, tmp_path / "one", **WINDOW, **{"max-requests": "8"})
    assert first.code == 0, first.stdout
    doc = first.doc
    assert doc["requests"]["api_requests"] == 8 == len(gh.requests)
    budget = "request budget (max-requests or the rate limit) spent"
    assert doc["unread"] == {budget: 4}
    assert [w.properties["title"] for w in first.warnings if w.properties["title"] == "Request budget reached"]
    read_first = {r["id"] for r in doc["records"]["runs"]}
    assert len(read_first) == 6

    gh.requests.clear()
    second = run_metrics(gh, tmp_path / "two", **WINDOW, state=first.outputs["report-path"])
    doc2 = second.doc
    assert doc2["unread"] == {}
    fetched = {int(r.path.split("/")[-2]) for r in gh.calls(operation=JOBS)}
    assert fetched and not fetched & read_first
    assert doc2["requests"]["runs_reused"] == 6 and doc2["requests"]["runs_read"] == 4
    full = run_metrics(gh, tmp_path / "three", **WINDOW)
    for key in ("build_time", "failure_rate", "builds_per_commit", "pull_success", "cleanup_success", "ci_time_per_pr"):
        assert doc2[key] == full.doc[key], key


def test_a_run_re_run_after_the_state_was_made_is_read_again_with_only_its_new_attempt(
    gh: FakeGitHub, tmp_path: Path
) -> None:
    world = small_history(gh)
    first = run_metrics(gh, tmp_path / "one", **WINDOW)
    gh.rerun(world.b, at=T0 + 50000)
    gh.add_job(world.b, "build", created_at=T0 + 50000, started_at=T0 + 50010, completed_at=T0 + 50500)
    gh.add_job(world.b, "test", created_at=T0 + 50501, started_at=T0 + 50502, completed_at=T0 + 50600)
    world.b.status, world.b.conclusion, world.b.updated_at = "completed", "success", T0 + 50610
    gh.requests.clear()
    second = run_metrics(gh, tmp_path / "two", **WINDOW, state=first.outputs["report-path"])
    # Run b: one jobs list; its attempt 1 is known from the state, attempt 2 is the run itself.
    assert [r.path.rsplit("/", 2)[-2] for r in gh.calls(operation=JOBS)] == [str(world.b.id)]
    assert gh.count(operation="actions/get-workflow-run-attempt") == 0
    assert second.doc["build_time"]["attempts"]["n"] == 3
    assert second.doc["requests"]["api_requests"] == 3


def test_a_state_made_with_other_patterns_is_not_reused_for_runs(gh: FakeGitHub, tmp_path: Path) -> None:
    small_history(gh)
    first = run_metrics(gh, tmp_path / "one", **WINDOW)
    gh.requests.clear()
    second = run_metrics(gh, tmp_path / "two", **WINDOW, state=first.outputs["report-path"],
                         **{"pull-step-pattern": r"(?i)pull image"})  # fmt: skip
    assert second.code == 0 and not second.errors
    assert second.doc["requests"]["runs_reused"] == 0
    assert "workflows or patterns differ" in second.stdout
    assert gh.count(operation=JOBS) == 10


def test_the_report_is_the_state_a_file_written_by_an_earlier_run_names(gh: FakeGitHub, tmp_path: Path) -> None:
    small_history(gh)
    first = run_metrics(gh, tmp_path / "one", **WINDOW)
    records = json.loads(Path(first.outputs["report-path"]).read_text())["records"]
    assert len(records["runs"]) == 10
    # Steps are trimmed to what a measure reads (pull and prune steps): the state stays small.
    steps = [step["name"] for run in records["runs"] for job in run["jobs"] for step in job["steps"]]
    assert steps and all("charon-ci/action-" in name for name in steps)


def test_server_errors_are_retried_and_every_retry_is_counted(gh: FakeGitHub, tmp_path: Path) -> None:
    small_history(gh)
    rule = gh.faults.fail_next(2, status=502, operation=JOBS)
    result = run_metrics(gh, tmp_path, **WINDOW)
    assert result.code == 0, result.stdout
    assert rule.fired == 2
    doc = result.doc
    assert doc["requests"]["api_requests"] == 13 + 2 == len(gh.requests)
    assert doc["build_time"]["attempts"]["n"] == 2 and doc["failure_rate"]["rate"] == 0.5


def test_without_pull_and_prune_measures_jobs_are_read_for_build_runs_only(gh: FakeGitHub, tmp_path: Path) -> None:
    world = small_history(gh)
    result = run_metrics(gh, tmp_path, **WINDOW, **{"pull-workflows": "none", "prune-workflows": "none"})
    doc = result.doc
    builds = {world.a.id, world.b.id, world.c.id, world.d.id}
    assert {int(r.path.split("/")[-2]) for r in gh.calls(operation=JOBS)} == builds
    assert doc["requests"]["api_requests"] == 1 + 1 + 4 + 1  # workflows, runs page, 4 jobs lists, a's attempt 1
    assert doc["pull_success"]["n"] == 0 and result.outputs["pull-success-rate"] == ""
    assert doc["workflows"]["recognised"] == {}
