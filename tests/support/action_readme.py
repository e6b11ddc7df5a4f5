"""An action's README documents exactly the inputs and outputs its action.yml declares.

One check for every action (tests/tag, tests/pull, tests/metrics, ...): the README's `## Inputs` table
lists action.yml's inputs in order with their defaults (`(empty)` for none), and its `## Outputs` table
lists action.yml's outputs in order.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml


def table_rows(readme: str, heading: str) -> dict[str, list[str]]:
    """First-column name -> the other cells, of the first table under `## heading`."""
    section = readme.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([a-z0-9-]+)`", cells[0]) if line.startswith("|") else None
        if match:
            rows[match.group(1)] = cells[1:]
    return rows


def check_readme_tables(action_dir: Path) -> dict[str, Any]:
    """Assert README.md's Inputs and Outputs tables match action.yml; returns the parsed action.yml."""
    action: dict[str, Any] = yaml.safe_load((action_dir / "action.yml").read_text())
    readme = (action_dir / "README.md").read_text()
    inputs = table_rows(readme, "Inputs")
    assert list(inputs) == list(action["inputs"])
    for name, spec in action["inputs"].items():
        assert inputs[name][0].strip("`") == (spec["default"] or "(empty)"), name
    assert list(table_rows(readme, "Outputs")) == list(action["outputs"])
    return action
