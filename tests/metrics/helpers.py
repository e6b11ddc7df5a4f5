"""Running `charon-ci metrics` in-process against a fake GitHub, and a small hand-made history whose every
number is worked out by hand in the tests (tests/metrics/test_metrics_measures.py)."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from charon_ci import gha
from charon_ci.metrics import command
from tests.support.composite import WorkflowCommand, parse_commands, parse_file_command
from tests.support.composite_fixtures import REPO_ROOT
from tests.support.fakegithub import FakeGitHub, Run

SCHEMA = json.loads((REPO_ROOT / "action-metrics" / "ci-metrics.schema.json").read_text())
REPO = "acme/app"
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
NOW = T0 + 2 * 86400
PULL_STEP = "Pull image (charon-ci/action-pull-image)"
PRUNE_STEP = "Run acme/charon-ci/action-prune@" + "0" * 40


@dataclass
class Outcome:
    code: int
    stdout: str
    outputs: dict[str, str]
    summary: str
    folder: Path

    @property
    def commands(self) -> list[WorkflowCommand]:
        return parse_commands(self.stdout)

    @property
    def errors(self) -> list[WorkflowCommand]:
        return [c for c in self.commands if c.name == "error"]

    @property
    def warnings(self) -> list[WorkflowCommand]:
        return [c for c in self.commands if c.name == "warning"]

    @property
    def reports(self) -> list[Path]:
        return sorted(self.folder.glob("ci-metrics-*.json"))

    @property
    def doc(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(Path(self.outputs["report-path"]).read_text())
        jsonschema.validate(document, SCHEMA)
        return document


def run_metrics(
    gh: FakeGitHub | None, folder: Path, now: float = NOW, env: Mapping[str, str] | None = None, **inputs: str
) -> Outcome:
    """`charon-ci metrics` as the action step runs it: INPUT_* variables, GITHUB_OUTPUT and summary files."""
    folder.mkdir(parents=True, exist_ok=True)
    output_file = folder / "github_output"
    summary_file = folder / "summary.md"
    output_file.write_text("")
    summary_file.write_text("")
    variables = {
        **(gh.env() if gh is not None else {}),
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_OUTPUT": str(output_file),
        "GITHUB_STEP_SUMMARY": str(summary_file),
        "INPUT_REPORT-DIR": str(folder),
        **(env or {}),
        **{f"INPUT_{name.upper()}": value for name, value in inputs.items()},
    }
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        code = gha.run_action(lambda: command.main(variables, now=now), variables)
    return Outcome(code, captured.getvalue(), parse_file_command(output_file.read_text()), summary_file.read_text(),
                   folder)  # fmt: skip


# ------------------------------------------------------------------------------------------ a small history


@dataclass
class Small:
    """What `small_history` made, for the tests' hand-worked numbers."""

    a: Run  # PR build: attempt 1 fails its test, "re-run failed jobs" passes (flaky); build job carried
    b: Run  # push build, success
    c: Run  # build cancelled mid-build, test skipped
    d: Run  # same commit as b (pull_request), test timed out
    pulls: list[Run]
    prunes: list[Run]


def small_history(gh: FakeGitHub) -> Small:
    repo = gh.add_repo(REPO)
    build = gh.add_workflow(repo, "docker-build.yml", name="Docker Build")
    integration = gh.add_workflow(repo, "integration.yml", name="Integration")
    prune = gh.add_workflow(repo, "container-prune.yml", name="Prune")
    gh.add_workflow(repo, "docs.yml", name="Docs")
    sha_a, sha_b, sha_c = "a" * 40, "b" * 40, "c" * 40

    a = gh.add_run(repo, build, event="pull_request", head_branch="feature/x", head_sha=sha_a, created_at=T0,
                   run_started_at=T0 + 60, updated_at=T0 + 1010, conclusion="failure")  # fmt: skip
    gh.add_job(a, "build", created_at=T0 + 60, started_at=T0 + 90, completed_at=T0 + 690)
    gh.add_job(a, "test", conclusion="failure", created_at=T0 + 700, started_at=T0 + 710, completed_at=T0 + 1000)
    gh.rerun(a, failed_only=True, at=T0 + 2000)
    gh.add_job(a, "test", created_at=T0 + 2000, started_at=T0 + 2030, completed_at=T0 + 2330)
    a.status, a.conclusion, a.updated_at = "completed", "success", T0 + 2340

    b = gh.add_run(repo, build, event="push", head_sha=sha_b, created_at=T0 + 3600, run_started_at=T0 + 3602,
                   updated_at=T0 + 4530)  # fmt: skip
    gh.add_job(b, "build", created_at=T0 + 3602, started_at=T0 + 3612, completed_at=T0 + 4212)
    gh.add_job(b, "test", created_at=T0 + 4215, started_at=T0 + 4220, completed_at=T0 + 4520)

    c = gh.add_run(repo, build, event="pull_request", head_branch="feature/y", head_sha=sha_c, created_at=T0 + 7200,
                   updated_at=T0 + 7310, conclusion="cancelled")  # fmt: skip
    gh.add_job(c, "build", conclusion="cancelled", created_at=T0 + 7200, started_at=T0 + 7210, completed_at=T0 + 7300)
    gh.add_job(c, "test", conclusion="skipped", created_at=T0 + 7301, started_at=T0 + 7301, completed_at=T0 + 7301)

    d = gh.add_run(repo, build, event="pull_request", head_branch="feature/z", head_sha=sha_b, created_at=T0 + 10800,
                   updated_at=T0 + 14600, conclusion="timed_out")  # fmt: skip
    gh.add_job(d, "build", created_at=T0 + 10800, started_at=T0 + 10805, completed_at=T0 + 11305)
    gh.add_job(d, "test", conclusion="timed_out", created_at=T0 + 11310, started_at=T0 + 11315,
               completed_at=T0 + 14515)  # fmt: skip

    def integration_run(at: float, sha: str, pull: str, job: str) -> Run:
        run = gh.add_run(repo, integration, event="workflow_run", head_sha=sha, created_at=at,
                         updated_at=at + 400, conclusion=job)  # fmt: skip
        gh.add_job(run, "integration-test", conclusion=job, created_at=at, started_at=at + 10,
                   completed_at=at + 300, steps=[{"name": "Checkout"}, {"name": PULL_STEP, "conclusion": pull},
                                                 {"name": "Test", "conclusion": "skipped" if pull != "success" else
                                                  "success"}])  # fmt: skip
        return run

    pulls = [
        integration_run(T0 + 2400, sha_a, "failure", "failure"),
        integration_run(T0 + 5000, sha_b, "success", "success"),
        integration_run(T0 + 6000, sha_b, "success", "success"),
    ]

    def prune_run(at: float, outcome: str) -> Run:
        run = gh.add_run(repo, prune, event="schedule", created_at=at, updated_at=at + 200, conclusion=outcome)
        gh.add_job(run, "prune", conclusion=outcome, created_at=at, started_at=at + 5, completed_at=at + 100,
                   steps=[{"name": PRUNE_STEP, "conclusion": outcome}])  # fmt: skip
        return run

    prunes = [prune_run(T0 + 1000, "failure"), prune_run(T0 + 20000, "success")]
    docs = gh.add_run(repo, "docs.yml", event="push", head_sha=sha_b, created_at=T0 + 3700, updated_at=T0 + 3800)
    gh.add_job(docs, "docs", created_at=T0 + 3700, started_at=T0 + 3710, completed_at=T0 + 3790)
    return Small(a, b, c, d, pulls, prunes)


WINDOW = {"since": "2026-01-01", "until": "2026-01-01"}
