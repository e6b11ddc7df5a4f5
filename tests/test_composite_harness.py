"""The composite harness itself: it must run an action the way the runner does and refuse what it cannot model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.composite import ActionRunner, HarnessError, evaluate, parse_commands, parse_file_command
from tests.support.composite_fixtures import REPO_ROOT

SAMPLE = REPO_ROOT / "tests" / "data" / "sample-action"


def test_sample_action_end_to_end(action_runner: ActionRunner) -> None:
    result = action_runner.run(SAMPLE, {"who": "world"}, env={"GITHUB_TOKEN": "ghs_example"})
    assert result.succeeded, result.stdout + result.stderr
    assert result.outputs == {"message": "hello, world!", "token-length": "11", "echoed": "yes/13"}
    assert result.env_written == {"GREETED": "yes"}


def test_untrusted_input_never_reaches_the_shell(action_runner: ActionRunner, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile = f'$(touch {marker})`touch {marker}`";touch {marker};#'
    result = action_runner.run(SAMPLE, {"who": hostile, "greeting": "hi"})
    assert result.succeeded, result.stderr
    assert result.outputs["message"] == f"hi, {hostile}!"
    assert not marker.exists()


def test_required_input_is_enforced_by_the_action_not_the_runner(action_runner: ActionRunner) -> None:
    result = action_runner.run(SAMPLE, {"who": "  "})
    assert result.exit_code == 1
    assert [(e.properties, e.message) for e in result.errors] == [
        ({"title": "Invalid input 'who'"}, "Input 'who' is required: a name.")
    ]
    assert result.outputs == {}


def test_undeclared_input_is_a_test_bug(action_runner: ActionRunner) -> None:
    with pytest.raises(HarnessError, match="not declared"):
        action_runner.run(SAMPLE, {"who": "x", "unknown": "y"})


@pytest.mark.parametrize(
    "expression",
    ["${{ inputs.who || 'x' }}", "${{ secrets.TOKEN }}", "${{ github.nope }}", "${{ steps.nope.outputs.a }}",
     "${{ toJSON(github) }}", "${{ inputs }}"],
)
def test_unknown_expressions_fail(expression: str) -> None:
    context = {"inputs": {"who": "a"}, "github": {"token": "t"}, "steps": {}, "env": {}}
    with pytest.raises(HarnessError):
        evaluate(expression, context)


def test_known_expressions_evaluate() -> None:
    context = {"inputs": {"who": "a"}, "steps": {"s": {"outputs": {"o": "1"}}}, "env": {"E": "e"}}
    assert evaluate("${{inputs.who}}-${{ steps.s.outputs.o }}-${{ steps.s.outputs.missing }}-${{ env.E }}-"
                    "${{ env.UNSET }}", context) == "a-1--e-"


def test_file_command_parsing_matches_the_runner() -> None:
    text = "a=1\nb<<EOF_X\nline1\nline2\nEOF_X\nc=x=y\n"
    assert parse_file_command(text) == {"a": "1", "b": "line1\nline2", "c": "x=y"}
    with pytest.raises(HarnessError):
        parse_file_command("b<<D\nno end\n")


def test_workflow_commands_are_parsed_and_unescaped() -> None:
    commands = parse_commands("plain\n::error title=A%3A b%2C c::x%0Ay\n  ::add-mask::s\n\u200b::error::no\n")
    assert [(c.name, c.properties, c.message) for c in commands] == [
        ("error", {"title": "A: b, c"}, "x\ny"),
        ("add-mask", {}, "s"),
    ]
