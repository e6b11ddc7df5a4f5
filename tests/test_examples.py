"""The example workflows use the actions as they are declared: known inputs, known outputs, pinned refs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.composite_fixtures import REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / "examples" / "workflows").glob("*.yml"))
USES_RE = re.compile(r"^[\w.-]+/charon-ci/(action-[a-z-]+)@([0-9a-f]{40})$")
STEP_OUTPUT_RE = re.compile(r"steps\.([\w-]+)\.outputs\.([\w-]+)")


def steps_of(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_there_are_examples() -> None:
    assert len(WORKFLOWS) >= 2


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_charon_ci_steps_match_the_action_definitions(path: Path) -> None:
    workflow = yaml.safe_load(path.read_text())
    steps = steps_of(workflow)
    charon_steps = {}
    for step in steps:
        uses = step.get("uses", "")
        if "/charon-ci/" not in uses:
            continue
        match = USES_RE.match(uses)
        assert match, f"{path.name}: {uses!r} is not OWNER/charon-ci/action-X@<40-char sha>"
        definition = yaml.safe_load((REPO_ROOT / match.group(1) / "action.yml").read_text())
        unknown = set(step.get("with", {})) - set(definition.get("inputs", {}))
        assert not unknown, f"{path.name}: {match.group(1)} has no inputs {sorted(unknown)}"
        if "id" in step:
            charon_steps[step["id"]] = set(definition.get("outputs", {}))
    assert charon_steps, f"{path.name} uses no charon-ci action"
    for step_id, output in STEP_OUTPUT_RE.findall(path.read_text()):
        if step_id in charon_steps:
            assert output in charon_steps[step_id], f"{path.name}: steps.{step_id} has no output {output!r}"
