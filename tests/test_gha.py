"""The runner protocol, with test vectors ported from @actions/core's own tests (core.test.ts, command.test.ts)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from charon_ci import gha
from tests.support.composite import parse_file_command

# --- inputs --------------------------------------------------------------------------------------------

INPUT_ENV = {
    "INPUT_MY_INPUT": "val",
    "INPUT_MISSING": "",
    "INPUT_SPECIAL_CHARS_'\t\"\\": "'\t\"\\ response ",
    "INPUT_MULTIPLE_SPACES_VARIABLE": "I have multiple spaces",
    "INPUT_BOOLEAN_INPUT": "true",
    "INPUT_BOOLEAN_INPUT_TRUE1": "true",
    "INPUT_BOOLEAN_INPUT_TRUE2": "True",
    "INPUT_BOOLEAN_INPUT_TRUE3": "TRUE",
    "INPUT_BOOLEAN_INPUT_FALSE1": "false",
    "INPUT_BOOLEAN_INPUT_FALSE2": "False",
    "INPUT_BOOLEAN_INPUT_FALSE3": "FALSE",
    "INPUT_WRONG_BOOLEAN_INPUT": "wrong",
    "INPUT_WITH_TRAILING_WHITESPACE": "  some val  ",
    "INPUT_MY_INPUT_LIST": "val1\nval2\nval3",
    "INPUT_LIST_WITH_TRAILING_WHITESPACE": "  val1  \n  val2  \n  ",
    "INPUT_LIST_WITH_EMPTY_LINES": "a\n\n  \nb\r\nc",
    "INPUT_MAIN-BRANCH": "trunk",
}


@pytest.fixture
def inputs() -> gha.Inputs:
    return gha.Inputs(INPUT_ENV)


def test_input_gets_non_required_and_required(inputs: gha.Inputs) -> None:
    assert inputs.text("my input") == "val"
    assert inputs.text("my input", required=True) == "val"


def test_input_is_case_insensitive(inputs: gha.Inputs) -> None:
    assert inputs.text("My InPuT") == "val"


def test_input_missing_required_names_the_input(inputs: gha.Inputs) -> None:
    with pytest.raises(gha.InputError) as caught:
        inputs.text("missing", required=True, accepted="a package name")
    assert caught.value.name == "missing"
    assert "missing" in caught.value.message and "a package name" in caught.value.message


def test_input_missing_non_required_is_default(inputs: gha.Inputs) -> None:
    assert inputs.text("missing") == ""
    assert inputs.text("absent", default="x") == "x"


def test_input_with_special_characters_and_spaces(inputs: gha.Inputs) -> None:
    assert inputs.text("special chars_'\t\"\\") == "'\t\"\\ response"
    assert inputs.text("multiple spaces variable") == "I have multiple spaces"


def test_input_keeps_hyphens_in_the_variable_name(inputs: gha.Inputs) -> None:
    assert gha.Inputs.variable("main-branch") == "INPUT_MAIN-BRANCH"
    assert inputs.text("main-branch") == "trunk"


def test_input_is_trimmed(inputs: gha.Inputs) -> None:
    assert inputs.text("with trailing whitespace") == "some val"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("boolean input", True),
        ("boolean input true1", True),
        ("boolean input true2", True),
        ("boolean input true3", True),
        ("boolean input false1", False),
        ("boolean input false2", False),
        ("boolean input false3", False),
    ],
)
def test_boolean_input_yaml_core_schema(inputs: gha.Inputs, name: str, expected: bool) -> None:
    assert inputs.boolean(name) is expected


@pytest.mark.parametrize("word", ["wrong", "yes", "on", "1", "tRUE", "y"])
def test_boolean_input_refuses_other_words(word: str) -> None:
    with pytest.raises(gha.InputError) as caught:
        gha.Inputs({"INPUT_FLAG": word}).boolean("flag", default=False)
    assert "true | True | TRUE | false | False | FALSE" in caught.value.message
    assert caught.value.name == "flag"


def test_boolean_input_default_and_required() -> None:
    assert gha.Inputs({}).boolean("flag", default=True) is True
    with pytest.raises(gha.InputError):
        gha.Inputs({}).boolean("flag")


def test_multiline_input(inputs: gha.Inputs) -> None:
    assert inputs.lines("my input list") == ["val1", "val2", "val3"]
    assert inputs.lines("list with trailing whitespace") == ["val1", "val2"]
    assert inputs.lines("list with empty lines") == ["a", "b", "c"]
    assert inputs.lines("absent") == []
    with pytest.raises(gha.InputError):
        inputs.lines("absent", required=True)


# --- workflow commands ------------------------------------------------------------------------------------


def test_command_escapes_message(capsys: pytest.CaptureFixture[str]) -> None:
    gha.error("percent % percent % cr \r cr \r lf \n lf \n")
    gha.error("%25 %25 %0D %0D %0A %0A")
    assert capsys.readouterr().out.splitlines() == [
        "::error::percent %25 percent %25 cr %0D cr %0D lf %0A lf %0A",
        "::error::%2525 %2525 %250D %250D %250A %250A",
    ]


def test_command_escapes_properties(capsys: pytest.CaptureFixture[str]) -> None:
    gha.warning("", title="percent % percent % cr \r cr \r lf \n lf \n colon : colon : comma , comma ,")
    assert capsys.readouterr().out == (
        "::warning title=percent %25 percent %25 cr %0D cr %0D lf %0A lf %0A "
        "colon %3A colon %3A comma %2C comma %2C::\n"
    )


def test_error_escapes_the_message(capsys: pytest.CaptureFixture[str]) -> None:
    gha.error("Error message\r\n\n")
    assert capsys.readouterr().out == "::error::Error message%0D%0A%0A\n"


def test_annotation_with_every_property(capsys: pytest.CaptureFixture[str]) -> None:
    gha.annotation("error", "Error message", title="A title", file="root/test.txt", line=5, end_line=5, col=1,
                   end_column=2)
    assert capsys.readouterr().out == (
        "::error title=A title,file=root/test.txt,line=5,endLine=5,col=1,endColumn=2::Error message\n"
    )


def test_annotation_leaves_out_empty_properties(capsys: pytest.CaptureFixture[str]) -> None:
    # actions-toolkit prints `endLine=,col=` here; the runner would then read empty properties.
    gha.notice("Notice message", title="T")
    gha.warning("Warning message", title="", file=None)
    gha.error("at a line", file="a.py", line=3)
    assert capsys.readouterr().out.splitlines() == [
        "::notice title=T::Notice message",
        "::warning::Warning message",
        "::error file=a.py,line=3,endLine=3::at a line",
    ]


def test_set_secret_group_debug(capsys: pytest.CaptureFixture[str]) -> None:
    gha.set_secret("secret val")
    gha.set_secret("")  # nothing to mask
    with gha.group("my-group"):
        gha.debug("Debug\nmessage")
    assert capsys.readouterr().out.splitlines() == [
        "::add-mask::secret val",
        "::group::my-group",
        "::debug::Debug%0Amessage",
        "::endgroup::",
    ]


def test_info_defuses_lines_that_look_like_commands(capsys: pytest.CaptureFixture[str]) -> None:
    gha.info("branch is\n::add-mask::x\n  ::error::y\r\nok")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "branch is"
    assert all(not line.lstrip().startswith("::") for line in lines)
    assert lines[-1] == "ok"
    assert len(lines) == 4


def test_info_defuses_the_old_command_form_anywhere_in_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    gha.info("tag x##[error]forged and ##[set-output name=a;]b")
    out = capsys.readouterr().out
    assert "##[" not in out
    assert out.replace("\u200b", "") == "tag x##[error]forged and ##[set-output name=a;]b\n"


# --- outputs --------------------------------------------------------------------------------------------

DELIMITER_RE = re.compile(r"^ghadelimiter_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_outputs_are_written_in_one_go_with_a_random_delimiter(tmp_path: Path) -> None:
    output_file = tmp_path / "output"
    output_file.write_text("")
    outputs = gha.Outputs({"GITHUB_OUTPUT": str(output_file)})
    outputs.set("my out", "value\nwith lines")
    outputs.set("empty", "")
    assert output_file.read_text() == ""  # nothing is written before flush
    assert outputs.flush() is None
    text = output_file.read_text()
    header = text.splitlines()[0]
    assert header.startswith("my out<<")
    assert DELIMITER_RE.match(header.split("<<", 1)[1])
    assert parse_file_command(text) == {"my out": "value\nwith lines", "empty": ""}


def test_outputs_use_a_new_delimiter_each_time() -> None:
    first = gha.Outputs({})
    first.set("a", "1")
    second = gha.Outputs({})
    second.set("a", "1")
    assert first.render() != second.render()


def test_outputs_refuse_a_value_or_name_containing_the_delimiter() -> None:
    delimiter = "ghadelimiter_9f2b7e6c-1111-4222-8333-444455556666"
    outputs = gha.Outputs({})
    outputs.set("value", f"a\n{delimiter}\ninjected=1")
    with pytest.raises(gha.OutputError):
        outputs.render(delimiter)
    named = gha.Outputs({})
    named.set(f"x{delimiter}", "v")
    with pytest.raises(gha.OutputError):
        named.render(delimiter)


@pytest.mark.parametrize("name", ["", "a\nb", "a<<b", "a=b"])
def test_outputs_refuse_bad_names(name: str) -> None:
    with pytest.raises(gha.OutputError):
        gha.Outputs({}).set(name, "v")


def test_outputs_without_a_runner_are_returned() -> None:
    outputs = gha.Outputs({})
    outputs.set("tag", "pr-1-abcdef0")
    assert outputs.flush() == {"tag": "pr-1-abcdef0"}


def test_summary_appends(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("# before\n")
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    assert gha.append_summary("| a |\n|---|", env)
    assert gha.append_summary("second\n", env)
    assert summary.read_text() == "# before\n| a |\n|---|\nsecond\n"
    assert gha.append_summary("nowhere", {}) is False


# --- failure --------------------------------------------------------------------------------------------


def _run_failing(body: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    script = "import sys\nfrom charon_ci import gha\n" + body + "\nsys.exit(gha.run_action(main))\n"
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False,
        env={"PATH": "/usr/bin:/bin", **(extra_env or {})},
    )


def test_run_action_turns_input_error_into_one_error_line() -> None:
    result = _run_failing("def main():\n    raise gha.InputError('retention', 'pattern=duration lines', 'x')")
    assert result.returncode == 1
    assert result.stdout == (
        "::error title=Invalid input 'retention'::Input 'retention' got 'x'; accepted: pattern=duration lines.\n"
    )
    assert "Traceback" not in result.stderr


def test_run_action_hides_the_traceback_of_a_bug_unless_debugging() -> None:
    body = "def main():\n    raise RuntimeError('line one\\n::add-mask::nope')"
    result = _run_failing(body)
    assert result.returncode == 1
    assert result.stdout == "::error title=charon-ci internal error::RuntimeError: line one%0A::add-mask::nope\n"
    assert "Traceback" not in result.stdout + result.stderr
    debugging = _run_failing(body, {"RUNNER_DEBUG": "1"})
    assert "Traceback" in debugging.stdout


def test_run_action_passes_the_exit_code() -> None:
    assert gha.run_action(lambda: None) == 0
    assert gha.run_action(lambda: 3) == 3
