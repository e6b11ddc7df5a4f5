"""The composite harness itself: it must run an action the way the runner does and refuse what it cannot model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.composite import (
    ActionRunner,
    HarnessError,
    NestedCall,
    evaluate,
    evaluate_condition,
    parse_commands,
    parse_file_command,
)
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
    ["${{ inputs.who > 'x' }}", "${{ secrets.TOKEN }}", "${{ github.nope }}", "${{ steps.nope.outputs.a }}",
     "${{ toJSON(github) }}", "${{ inputs }}", "${{ inputs['who'] }}", "${{ inputs.who == }}", "${{ (inputs.who }}",
     "${{ success() && inputs.who }}", "${{ }}"],
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


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("steps.s.outputs.missing || steps.s.outputs.o", "1"),
        ("steps.s.outputs.o || steps.s.outputs.missing", "1"),
        ("steps.s.outputs.missing || steps.t.outputs.missing", ""),
        ("inputs.who && 'yes'", "yes"),
        ("steps.s.outputs.missing && 'yes'", ""),
        ("inputs.flag == 'TRUE'", "true"),  # strings compare without regard to case
        ("inputs.flag != 'true'", "false"),
        ("!inputs.flag", "false"),
        ("!steps.s.outputs.missing", "true"),
        ("steps.s.outputs.o == 1", "true"),  # a string and a number compare as numbers
        ("steps.s.outputs.missing == 0", "true"),  # null is 0
        ("inputs.who == 0", "false"),  # 'a' is NaN as a number
        ("env.UNSET == null", "true"),
        ("(inputs.who == 'b' || inputs.flag == 'true') && 'both'", "both"),
        ("'it''s'", "it's"),
        ("true && false", "false"),
    ],
)
def test_operators_evaluate_as_on_the_runner(expression: str, expected: str) -> None:
    context = {"inputs": {"who": "a", "flag": "true"}, "steps": {"s": {"outputs": {"o": "1"}}, "t": {"outputs": {}}},
               "env": {}}  # fmt: skip
    assert evaluate("${{ " + expression + " }}", context) == expected


def test_if_conditions_with_and_without_braces() -> None:
    context = {"steps": {"b": {"outputs": {"needs": "true"}}}}
    assert evaluate_condition("steps.b.outputs.needs == 'true'", context) is True
    assert evaluate_condition("${{ steps.b.outputs.needs != 'true' }}", context) is False
    assert evaluate_condition(False, context) is False


NESTED_ACTION = """
name: nested
description: a composite with a conditional nested action
inputs:
  want:
    description: whether to call the nested action
    default: "no"
outputs:
  got:
    description: what the last step saw
    value: ${{ steps.first.outputs.value || steps.nested.outputs.value }}
runs:
  using: composite
  steps:
    - id: first
      shell: bash
      env:
        WANT: ${{ inputs.want }}
      run: if [ "$WANT" = no ]; then echo value=from-first >> "$GITHUB_OUTPUT"; fi
    - id: nested
      if: steps.first.outputs.value == ''
      uses: example/tool@0123456789abcdef0123456789abcdef01234567 # v1.0.0
      with:
        flag: false
        who: ${{ inputs.want }}
    - id: after
      if: ${{ steps.nested.outcome == 'success' }}
      shell: bash
      run: echo "/added/by/after" >> "$GITHUB_PATH"
"""


def write_nested_action(tmp_path: Path) -> Path:
    folder = tmp_path / "nested-action"
    folder.mkdir()
    (folder / "action.yml").write_text(NESTED_ACTION)
    return folder


def test_a_step_skipped_by_its_condition_needs_no_stand_in(action_runner: ActionRunner, tmp_path: Path) -> None:
    result = action_runner.run(write_nested_action(tmp_path))
    assert result.succeeded, result.stderr
    assert [(step.id, step.skipped) for step in result.steps] == [("first", False), ("nested", True), ("after", True)]
    assert result.outputs == {"got": "from-first"}
    assert result.path_added == []


def test_a_nested_action_is_played_by_the_tests_stand_in(action_runner: ActionRunner, tmp_path: Path) -> None:
    calls: list[NestedCall] = []

    def stand_in(call: NestedCall) -> dict[str, str]:
        calls.append(call)
        return {"value": "from-stand-in"}

    result = action_runner.run(write_nested_action(tmp_path), {"want": "yes"}, nested={"example/tool": stand_in})
    assert result.succeeded, result.stderr
    assert [call.uses for call in calls] == ["example/tool@0123456789abcdef0123456789abcdef01234567"]
    assert calls[0].with_inputs == {"flag": "false", "who": "yes"}  # YAML false reaches the action as "false"
    assert result.outputs == {"got": "from-stand-in"}
    assert [step.skipped for step in result.steps] == [False, False, False]
    assert result.path_added == ["/added/by/after"]


def test_a_nested_action_without_a_stand_in_is_a_test_bug(action_runner: ActionRunner, tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="cannot run another action"):
        action_runner.run(write_nested_action(tmp_path), {"want": "yes"})


def test_env_none_removes_a_runner_variable(action_runner: ActionRunner, tmp_path: Path) -> None:
    folder = tmp_path / "env-action"
    folder.mkdir()
    (folder / "action.yml").write_text(
        "name: env\ndescription: prints a variable\noutputs:\n  seen:\n    description: it\n"
        "    value: ${{ steps.p.outputs.seen }}\nruns:\n  using: composite\n  steps:\n    - id: p\n"
        "      shell: bash\n      run: echo \"seen=${CI-unset}\" >> \"$GITHUB_OUTPUT\"\n"
    )
    assert action_runner.run(folder).outputs == {"seen": "true"}
    assert action_runner.run(folder, env={"CI": None}).outputs == {"seen": "unset"}
