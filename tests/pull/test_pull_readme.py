"""action-pull-image/README.md documents exactly the inputs and outputs action.yml and the command have."""

from __future__ import annotations

import re

import yaml

from charon_ci.pull.command import OUTPUT_NAMES
from tests.pull.world import ACTION


def table_rows(readme: str, heading: str) -> dict[str, list[str]]:
    """First-column name -> the other cells, of the first table under `## heading`."""
    section = readme.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([a-z-]+)`", cells[0]) if line.startswith("|") else None
        if match:
            rows[match.group(1)] = cells[1:]
    return rows


def test_readme_tables_match_action_yml_and_the_command() -> None:
    action = yaml.safe_load((ACTION / "action.yml").read_text())
    readme = (ACTION / "README.md").read_text()
    inputs = table_rows(readme, "Inputs")
    assert list(inputs) == list(action["inputs"])
    for name, spec in action["inputs"].items():
        assert inputs[name][0].strip("`") == (spec["default"] or "(empty)"), name
    outputs = table_rows(readme, "Outputs")
    assert list(outputs) == list(action["outputs"]) == list(OUTPUT_NAMES)


def test_readme_names_the_permissions_and_both_consumers() -> None:
    readme = (ACTION / "README.md").read_text()
    permissions = readme.split("\n## Permissions\n", 1)[1].split("\n## ", 1)[0]
    assert "| `actions: read` |" in permissions and "| `packages: read` |" in permissions
    assert "`actions: read`" in readme and "`packages: read`" in readme
    assert "## `needs:` consumer" in readme and "## `workflow_run` consumer" in readme
