"""The example workflows use the actions as they are declared (known inputs, known outputs, pinned refs) and
follow spec section 10: timeouts on every job and step, least-privilege permissions per job, third-party
actions pinned by commit with a version comment, no expression inside a `run:` script. They also agree with
each other and with the story tests/support/flow.py plays (workflow names, artifact name)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.composite_fixtures import REPO_ROOT
from tests.support.flow import WORKFLOWS as STORY_WORKFLOWS

EXAMPLES = REPO_ROOT / "examples" / "workflows"
WORKFLOWS = sorted(EXAMPLES.glob("*.yml"))
USES_RE = re.compile(r"^[\w.-]+/charon-ci/(action-[a-z-]+)@([0-9a-f]{40})$")
# `owner/repo[/path]@<40 hex> # v1.2.3`, on one line, as Dependabot writes and updates pins.
PINNED_LINE_RE = re.compile(r"uses: [\w.-]+/[\w.-]+(?:/[\w./-]+)?@[0-9a-f]{40} # v\d+(?:\.\d+)*\s*$")
STEP_OUTPUT_RE = re.compile(r"steps\.([\w-]+)\.outputs\.([\w-]+)")
NEEDS_OUTPUT_RE = re.compile(r"needs\.([\w-]+)\.outputs\.([\w-]+)")


def load(path: Path) -> dict[str, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as True.
    return {("on" if key is True else str(key)): value for key, value in loaded.items()}


SELF_CALL_RE = re.compile(r"^\$/\.github/workflows/([\w.-]+\.ya?ml)$")  # a reusable workflow of this repository


def called_workflow(job: dict[str, Any]) -> Path | None:
    """The example a job calls as a reusable workflow (`uses: $/.github/workflows/NAME.yml`), else None."""
    match = SELF_CALL_RE.match(str(job.get("uses", "")))
    return EXAMPLES / match.group(1) if match else None


def uses_action(path: Path, action: str) -> bool:
    """Whether a workflow runs `action`, in its own steps or in a reusable workflow it calls."""
    for job in load(path)["jobs"].values():
        called = called_workflow(job)
        if called is not None and uses_action(called, action):
            return True
        if any(charon_action(step) == action for step in job.get("steps", [])):
            return True
    return False


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def charon_action(step: dict[str, Any]) -> str | None:
    uses = str(step.get("uses", ""))
    match = USES_RE.match(uses)
    return match.group(1) if match else None


def definition(action: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO_ROOT / action / "action.yml").read_text())
    return loaded


# The workflows that get the image on the build's workflow_run (ci-metrics.yml also runs then, for the API only).
CONSUMERS = [
    path for path in WORKFLOWS if "workflow_run" in (load(path)["on"] or {}) and uses_action(path, "action-pull-image")
]


def test_there_are_examples() -> None:
    names = {path.name for path in WORKFLOWS}
    expected = {"docker-build.yml", "integration-test.yml", "waf-integration.yml", "cerberus-integration.yml",
                "crowdsec-integration.yml", "rate-limit-integration.yml", "e2e-tests.yml", "container-prune.yml",
                "ci-metrics.yml"}  # fmt: skip
    assert expected <= names


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_charon_ci_steps_match_the_action_definitions(path: Path) -> None:
    workflow = load(path)
    used = 0
    for job_name, job in workflow["jobs"].items():
        called = called_workflow(job)
        if called is not None:  # its steps are checked as the example it is
            assert called.is_file() and "workflow_call" in load(called)["on"], f"{path.name} calls {job['uses']}"
            used += any(uses_action(called, action) for action in ("action-tag", "action-pull-image"))
        outputs_of: dict[str, set[str]] = {}
        for step in job.get("steps", []):
            uses = str(step.get("uses", ""))
            if "/charon-ci/" not in uses:
                continue
            action = charon_action(step)
            assert action, f"{path.name}: {uses!r} is not OWNER/charon-ci/action-X@<40-char sha>"
            declared = definition(action)
            unknown = set(step.get("with", {})) - set(declared.get("inputs", {}))
            assert not unknown, f"{path.name}: {action} has no inputs {sorted(unknown)}"
            if "name" in step:  # action-metrics recognises pull and prune steps by `charon-ci/action-...`
                assert f"charon-ci/{action}" in step["name"], f"{path.name}: step {step['name']!r} hides {action}"
            if "id" in step:
                outputs_of[step["id"]] = set(declared.get("outputs", {}))
            used += 1
        for text in strings(job):
            for step_id, output in STEP_OUTPUT_RE.findall(text):
                if step_id in outputs_of:
                    assert output in outputs_of[step_id], f"{path.name} {job_name}: steps.{step_id} has no {output!r}"
            for needed, output in NEEDS_OUTPUT_RE.findall(text):
                assert output in workflow["jobs"][needed].get("outputs", {}), f"{path.name}: needs.{needed}.{output}"
    assert used, f"{path.name} uses no charon-ci action"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_spec_section_10(path: Path) -> None:
    workflow = load(path)
    # Least privilege: nothing at the workflow level, each job says what it needs.
    assert workflow.get("permissions") == {}, f"{path.name}: top-level permissions must be {{}}"
    for job_name, job in workflow["jobs"].items():
        where = f"{path.name} job {job_name}"
        assert isinstance(job.get("permissions"), dict), f"{where}: no permissions of its own"
        assert not any(value == "write-all" for value in job["permissions"].values()), where
        if called_workflow(job) is not None:
            continue  # GitHub allows no timeout on a calling job: the called workflow's jobs have theirs
        assert isinstance(job.get("timeout-minutes"), int), f"{where}: no job timeout"
        for index, step in enumerate(job.get("steps", [])):
            shown = step.get("name") or step.get("uses") or f"step {index}"
            assert isinstance(step.get("timeout-minutes"), int), f"{where}: {shown} has no step timeout"
            # Untrusted values reach scripts only through env: no expression inside a script at all.
            assert "${{" not in str(step.get("run", "")), f"{where}: {shown} has an expression in run:"
    # Third-party actions by commit with the version it is, as Dependabot keeps them.
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if "uses:" not in line or "/charon-ci/" in line or re.search(r"uses: (\$|\.)/", line):
            continue  # charon-ci is checked above; `$/` and `./` are this repository's own files
        assert PINNED_LINE_RE.search(line), f"{path.name}:{number}: not pinned by sha with a version comment: {line}"


def test_there_are_workflow_run_consumers() -> None:
    names = {path.name for path in CONSUMERS}
    assert names == {"waf-integration.yml", "cerberus-integration.yml", "crowdsec-integration.yml",
                     "rate-limit-integration.yml", "e2e-tests.yml"}  # fmt: skip


@pytest.mark.parametrize("path", CONSUMERS, ids=lambda p: p.name)
def test_workflow_run_consumers_filter_branches_and_group_by_commit(path: Path) -> None:
    workflow = load(path)
    trigger = workflow["on"]["workflow_run"]
    names = {load(other)["name"] for other in WORKFLOWS}
    assert set(trigger["workflows"]) <= names, f"{path.name} waits for a workflow no example defines"
    assert trigger["types"] == ["completed"]
    assert trigger["branches"] == ["main", "development", "feature/**"], "spec 7.4's explicit branch filter"
    group = workflow["concurrency"]["group"]
    assert "github.event.workflow_run.head_branch" in group and "github.event.workflow_run.head_sha" in group
    assert workflow["concurrency"]["cancel-in-progress"] is True
    for job in workflow["jobs"].values():
        if "needs" not in job:
            assert "workflow_run.conclusion == 'success'" in str(job.get("if", "")), f"{path.name}: ungated job"


def test_the_build_uploads_under_the_name_the_consumers_look_for() -> None:
    build = load(EXAMPLES / "docker-build.yml")["jobs"]["build"]
    tag_ids = [step["id"] for step in build["steps"] if charon_action(step) == "action-tag"]
    assert len(tag_ids) == 1
    uploads = [step for step in build["steps"] if str(step.get("uses", "")).startswith("actions/upload-artifact@")]
    assert [step["with"]["name"] for step in uploads] == [f"${{{{ steps.{tag_ids[0]}.outputs.artifact-name }}}}"]
    # action-pull-image's default artifact name is action-tag's: no consumer names it.
    for path in WORKFLOWS:
        for job in load(path)["jobs"].values():
            for step in job.get("steps", []):
                if charon_action(step) == "action-pull-image":
                    assert "artifact-name" not in step.get("with", {}), path.name


def test_the_story_plays_the_examples_workflows() -> None:
    """tests/support/flow.py records its runs under the examples' file and workflow names."""
    for file_name, name in STORY_WORKFLOWS.items():
        assert load(EXAMPLES / file_name)["name"] == name, file_name
