"""action-tag/README.md documents exactly the inputs and outputs action.yml and the command have."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from charon_ci.tag.command import TagResult
from charon_ci.tag.tagging import Kind, TagSet

ACTION_DIR = Path(__file__).resolve().parents[2] / "action-tag"


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
    action = yaml.safe_load((ACTION_DIR / "action.yml").read_text())
    readme = (ACTION_DIR / "README.md").read_text()
    inputs = table_rows(readme, "Inputs")
    assert list(inputs) == list(action["inputs"])
    for name, spec in action["inputs"].items():
        shown = inputs[name][0].strip("`")
        assert shown == (spec["default"] or "(empty)"), name
    outputs = table_rows(readme, "Outputs")
    assert list(outputs) == list(action["outputs"])
    sha = "0123456789abcdef0123456789abcdef01234567"
    result = TagResult(TagSet(Kind.PR, ("pr-1-0123456",), "pr-1-0123456", "pr-1-0123456", 1), sha, (), {})
    assert list(result.outputs()) == list(action["outputs"])
    for name, spec in action["outputs"].items():
        assert spec["value"] == f"${{{{ steps.tag.outputs.{name} }}}}"
