"""This repository's own workflows (.github/workflows): what .ci/test's schema check and zizmor do not say.

CI runs the same `.ci/run` on pull requests and pushes to main; the release runs only for vX.Y.Z tags and only
through the checks of .ci/release.py; every job is time-boxed and least-privileged, every action and image
pinned, and no expression is pasted into a script.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.composite_fixtures import REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
USES_LINE_RE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<comment>\s+#\s*(?P<version>v\d+\.\d+\.\d+))?\s*$")
RELEASE_SUBCOMMANDS = {"check", "wait-for-ci", "notes", "pin-prune-image", "major"}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_there_are_the_ci_and_release_workflows() -> None:
    assert {path.name for path in WORKFLOWS} >= {"ci.yml", "release.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_every_job_is_time_boxed_and_least_privileged(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] == {}, "grant per job, nothing at the top"
    for name, job in workflow["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int) and job["timeout-minutes"] <= 100, name
        assert isinstance(job.get("permissions"), dict) and job["permissions"], name
        assert "write-all" not in str(job["permissions"]) and set(job["permissions"].values()) <= {"read", "write"}
        for step in job.get("steps", []):
            assert "${{" not in step.get("run", ""), f"{name}: an expression inside run: (use env:)"
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, f"{name}: keep no git credentials"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_actions_and_images_are_pinned(path: Path) -> None:
    for line in path.read_text().splitlines():
        if re.match(r"^\s*(?:-\s+)?uses:", line):
            match = USES_LINE_RE.match(line)
            assert match and match.group("comment"), f"no version comment: {line.strip()}"
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", match.group("ref")), line.strip()
    for job in load(path)["jobs"].values():
        container = job.get("container")
        if container is not None:
            image = container["image"] if isinstance(container, dict) else container
            assert re.search(r"@sha256:[0-9a-f]{64}$", image), image


def test_ci_runs_the_developers_command_on_pull_requests_and_pushes_to_main() -> None:
    ci = load(REPO_ROOT / ".github" / "workflows" / "ci.yml")
    assert "pull_request" in ci["on"] and ci["on"]["push"] == {"branches": ["main"]}
    assert "pull_request_target" not in ci["on"] and "workflow_run" not in ci["on"]
    runs = [step.get("run", "") for step in ci["jobs"]["run"]["steps"]]
    assert "bash .ci/run" in runs
    assert ci["jobs"]["run"]["timeout-minutes"] <= 90  # .ci/run's own budget
    assert any("zizmor" in run for run in (step.get("run", "") for step in steps(ci)))


def test_the_release_runs_for_version_tags_and_only_after_its_checks() -> None:
    release = load(REPO_ROOT / ".github" / "workflows" / "release.yml")
    assert release["on"] == {"push": {"tags": ["v[0-9]+.[0-9]+.[0-9]+"]}}
    jobs = release["jobs"]
    assert jobs["prune-image"]["needs"] == "check" and jobs["publish"]["needs"] == "prune-image"
    check_runs = " ".join(step.get("run", "") for step in jobs["check"]["steps"])
    assert "release.py check " in check_runs and "release.py wait-for-ci " in check_runs
    assert jobs["check"]["permissions"] == {"contents": "read", "actions": "read"}
    called = set(re.findall(r"\.ci/release\.py ([a-z-]+)", (REPO_ROOT / ".github" / "workflows" / "release.yml")
                            .read_text()))  # fmt: skip
    assert called == RELEASE_SUBCOMMANDS
    # Only the job that writes the release may write contents.
    writers = {name for name, job in jobs.items() if job["permissions"].get("contents") == "write"}
    assert writers == {"publish"}
    platforms = {entry["arch"]: entry["runner"] for entry in jobs["prune-image"]["strategy"]["matrix"]["include"]}
    assert platforms == {"amd64": "ubuntu-24.04", "arm64": "ubuntu-24.04-arm"}
