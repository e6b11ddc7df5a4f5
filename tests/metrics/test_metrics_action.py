"""action-metrics/action.yml as the runner runs it (composite harness), and its README's tables."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from charon_ci.metrics import report
from tests.metrics.helpers import REPO, T0, WINDOW, run_metrics, small_history
from tests.support.action_readme import check_readme_tables
from tests.support.composite import ActionRunner
from tests.support.composite_fixtures import REPO_ROOT
from tests.support.fakegithub import Clock, FakeGitHub
from tests.support.fakegithub.fixtures import serve_fake_github

ACTION = REPO_ROOT / "action-metrics"


def action() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ACTION / "action.yml").read_text())
    return loaded


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    yield from serve_fake_github(clock=Clock(start=T0 + 2 * 86400, frozen=True))


def test_the_composite_action_writes_the_outputs_the_command_computes(
    action_runner: ActionRunner, gh: FakeGitHub, tmp_path: Path
) -> None:
    small_history(gh)
    result = action_runner.run(
        ACTION,
        {**WINDOW, "report-dir": str(tmp_path / "action"), "github-token": gh.token},
        env={**gh.env(), "GITHUB_REPOSITORY": REPO},
    )
    step = result.steps[-1]
    assert result.exit_code == 0, step.stdout[-3000:] + step.stderr[-3000:]
    # The outputs the runner reads from the step's GITHUB_OUTPUT file, mapped by action.yml's outputs.
    assert set(result.outputs) == set(action()["outputs"])
    direct = run_metrics(gh, tmp_path / "direct", **WINDOW)
    expected = dict(direct.outputs)
    assert Path(result.outputs.pop("report-path")).name == Path(expected.pop("report-path")).name
    expected["requests-used"] = result.outputs["requests-used"]
    assert result.outputs == expected
    assert result.outputs["failure-rate"] == "0.5000" and result.outputs["build-time-median-minutes"] == "10.40"
    assert "## CI metrics for acme/app" in result.summary


def test_a_bad_input_through_the_action_is_one_error(action_runner: ActionRunner, gh: FakeGitHub) -> None:
    small_history(gh)
    result = action_runner.run(
        ACTION, {"since": "2026-01-05", "until": "2026-01-01", "github-token": gh.token},
        env={**gh.env(), "GITHUB_REPOSITORY": REPO},
    )  # fmt: skip
    assert result.exit_code == 1 and result.outputs == {}
    assert [e.properties["title"] for e in result.errors] == ["Invalid input 'until'"]
    assert "Traceback" not in result.stdout + result.stderr
    assert len(gh.requests) == 0


def test_inputs_reach_the_program_only_through_env_and_the_bootstrap_is_action_tags() -> None:
    steps = action()["runs"]["steps"]
    tag_steps = yaml.safe_load((REPO_ROOT / "action-tag" / "action.yml").read_text())["runs"]["steps"]
    assert steps[:3] == tag_steps[:3], "the same bootstrap steps, so both can be updated the same way"
    run_step = steps[3]
    assert "${{" not in run_step["run"]
    declared = set(action()["inputs"])
    mapped = {key for key in run_step["env"] if key != "CHARON_CI"}
    assert mapped == {f"INPUT_{name.upper()}" for name in declared}
    for name in declared:
        assert run_step["env"][f"INPUT_{name.upper()}"] == f"${{{{ inputs.{name} }}}}"


def test_the_readme_documents_exactly_the_inputs_and_outputs() -> None:
    definition = check_readme_tables(ACTION)
    readme = (ACTION / "README.md").read_text()
    for name, spec in definition["outputs"].items():
        assert spec["value"] == f"${{{{ steps.metrics.outputs.{name} }}}}"
    assert "actions: read" in readme and "packages: read" in readme


def test_the_command_writes_every_declared_output() -> None:
    document = {
        "build_time": {"attempts": {"median": 60.0, "p95": 120.0, "mean": 90.0}, "queue": {"median": 6.0}},
        "failure_rate": {"rate": 0.25}, "builds_per_commit": {"mean": 1.5}, "pull_success": {"rate": None},
        "cleanup_success": {"rate": 1.0}, "storage": None, "breaches": 0, "requests": {"api_requests": 3},
        "listing": {"cut": 0},
    }  # fmt: skip
    outputs = report.outputs(document, "ci-metrics-20260101.json")
    assert list(outputs) == list(action()["outputs"])
    assert outputs["pull-success-rate"] == "" and outputs["storage-bytes"] == ""
    assert outputs["build-time-median-minutes"] == "1.00" and outputs["queue-time-median-minutes"] == "0.10"
