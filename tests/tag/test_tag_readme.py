"""action-tag/README.md documents exactly the inputs and outputs action.yml and the command have."""

from __future__ import annotations

from pathlib import Path

from charon_ci.tag.command import TagResult
from charon_ci.tag.tagging import Kind, TagSet
from tests.support.action_readme import check_readme_tables

ACTION_DIR = Path(__file__).resolve().parents[2] / "action-tag"


def test_readme_tables_match_action_yml_and_the_command() -> None:
    action = check_readme_tables(ACTION_DIR)
    sha = "0123456789abcdef0123456789abcdef01234567"
    result = TagResult(TagSet(Kind.PR, ("pr-1-0123456",), "pr-1-0123456", "pr-1-0123456", 1), sha, (), {})
    assert list(result.outputs()) == list(action["outputs"])
    for name, spec in action["outputs"].items():
        assert spec["value"] == f"${{{{ steps.tag.outputs.{name} }}}}"
