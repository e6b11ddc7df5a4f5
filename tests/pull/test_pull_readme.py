"""action-pull-image/README.md documents exactly the inputs and outputs action.yml and the command have."""

from __future__ import annotations

from charon_ci.pull.command import OUTPUT_NAMES
from tests.pull.world import ACTION
from tests.support.action_readme import check_readme_tables


def test_readme_tables_match_action_yml_and_the_command() -> None:
    action = check_readme_tables(ACTION)
    assert list(action["outputs"]) == list(OUTPUT_NAMES)

def test_readme_names_the_permissions_and_both_consumers() -> None:
    readme = (ACTION / "README.md").read_text()
    permissions = readme.split("\n## Permissions\n", 1)[1].split("\n## ", 1)[0]
    assert "| `actions: read` |" in permissions and "| `packages: read` |" in permissions
    assert "`actions: read`" in readme and "`packages: read`" in readme
    assert "## `needs:` consumer" in readme and "## `workflow_run` consumer" in readme
