"""`charon-ci tag` as a command: inputs, outputs in one go, JSON without GITHUB_OUTPUT, clean refusals and
hostile ref names that cannot change another output or reach the log as a workflow command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from charon_ci.tag import command as tag
from tests.fixtures.events import derive
from tests.support.composite import parse_commands, parse_file_command

SHA = "0123456789abcdef0123456789abcdef01234567"
OUTPUT_NAMES = {"tag", "artifact-name", "tag-names", "tags", "labels", "json", "sha", "short-sha", "pr-number", "kind"}


class Run:
    def __init__(self, code: int, stdout: str, stderr: str, output_file: Path) -> None:
        self.code = code
        self.stdout = stdout
        self.stderr = stderr
        self.outputs = parse_file_command(output_file.read_text()) if output_file.exists() else {}
        self.output_text = output_file.read_text() if output_file.exists() else ""

    @property
    def commands(self) -> list[Any]:
        return parse_commands(self.stdout)

    @property
    def errors(self) -> list[Any]:
        return [c for c in self.commands if c.name == "error"]


@pytest.fixture
def run_tag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    """Runs the command in-process with a runner-like environment; returns a Run."""

    def run(event_name: str, payload: Any, *, inputs: dict[str, str] | None = None, output: bool = True,
            **env: str) -> Run:  # fmt: skip
        event_path = tmp_path / f"event-{len(list(tmp_path.iterdir()))}.json"
        event_path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
        output_file = tmp_path / f"output-{event_path.stem}"
        environ = {
            "GITHUB_EVENT_NAME": event_name, "GITHUB_EVENT_PATH": str(event_path), "GITHUB_SHA": SHA,
            "GITHUB_REPOSITORY": "octo-org/octo-repo", "GITHUB_SERVER_URL": "https://github.com",
            "SOURCE_DATE_EPOCH": "1770000000",
            **({"GITHUB_OUTPUT": str(output_file)} if output else {}),
            **{f"INPUT_{name.upper()}": value for name, value in (inputs or {}).items()},
            **env,
        }  # fmt: skip
        code = tag.gha.run_action(lambda: tag.main(environ), environ)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err, output_file)

    return run


def test_pull_request_outputs(run_tag: Any) -> None:
    result = run_tag(
        "pull_request",
        derive.shared("pull_request.opened.12.json"),
        inputs={"images": "ghcr.io/octo-org/app\n\n ghcr.io/octo-org/app-debug \nghcr.io/octo-org/app"},
    )
    assert result.code == 0, result.stdout
    assert set(result.outputs) == OUTPUT_NAMES
    head = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    assert result.outputs["tag"] == "pr-2-ec26c3e"
    assert result.outputs["tag-names"] == "pr-2-ec26c3e"
    assert result.outputs["tags"] == "ghcr.io/octo-org/app:pr-2-ec26c3e\nghcr.io/octo-org/app-debug:pr-2-ec26c3e"
    assert (result.outputs["sha"], result.outputs["short-sha"]) == (head, "ec26c3e")
    assert (result.outputs["pr-number"], result.outputs["kind"]) == ("2", "pr")
    assert result.outputs["labels"].splitlines() == [
        f"org.opencontainers.image.revision={head}",
        "org.opencontainers.image.source=https://github.com/octo-org/octo-repo",
        "org.opencontainers.image.created=2026-02-02T02:40:00Z",
        "org.opencontainers.image.version=pr-2-ec26c3e",
        "org.opencontainers.image.url=https://github.com/octo-org/octo-repo",
    ]
    document = json.loads(result.outputs["json"])
    assert document["tag"] == result.outputs["tag"]
    assert document["tags"] == result.outputs["tags"].splitlines()
    assert document["pr-number"] == 2
    assert document["labels"]["org.opencontainers.image.revision"] == head


def test_outputs_are_written_in_one_go_with_a_random_delimiter(run_tag: Any) -> None:
    first = run_tag("push", derive.push("refs/heads/main", SHA)).output_text
    second = run_tag("push", derive.push("refs/heads/main", SHA)).output_text
    delimiters = {line.split("<<", 1)[1] for line in first.splitlines() if "<<" in line}
    assert len(delimiters) == 1 and next(iter(delimiters)).startswith("ghadelimiter_")
    assert first.count("<<") == len(OUTPUT_NAMES)
    assert first.split("<<", 1)[1].split("\n", 1)[0] != second.split("<<", 1)[1].split("\n", 1)[0]


def test_main_branch_push(run_tag: Any) -> None:
    result = run_tag("push", derive.shared("push.4.json"), inputs={"main-branch": "master"})
    assert result.outputs["tag-names"] == "latest\nsha-6113728"
    assert (result.outputs["tag"], result.outputs["kind"], result.outputs["pr-number"]) == ("sha-6113728", "main", "")


def test_artifact_name_is_image_and_the_primary_tag(run_tag: Any) -> None:
    result = run_tag("push", derive.shared("push.4.json"), inputs={"main-branch": "master"})
    assert result.outputs["artifact-name"] == "image-sha-6113728"
    pr = run_tag("pull_request", derive.pull_request(9, SHA, "feature/x"), GITHUB_SHA="e" * 40)
    assert pr.outputs["artifact-name"] == f"image-pr-9-{SHA[:7]}" == "image-" + pr.outputs["tag"]


def test_without_github_output_the_json_is_printed(run_tag: Any) -> None:
    result = run_tag("push", derive.shared("push.4.json"), output=False, inputs={"images": "ghcr.io/o/app"})
    assert result.code == 0
    document = json.loads(result.stdout[result.stdout.index("{") :])
    assert document["tags"] == ["ghcr.io/o/app:master-6113728"]
    assert document["kind"] == "branch"
    assert set(document) == OUTPUT_NAMES - {"json"}


@pytest.mark.parametrize(
    ("event_name", "payload", "env", "title"),
    [
        ("create", derive.shared("create.1.json"), {}, "Unsupported event"),
        ("push", derive.shared("push.1.json"), {}, "Nothing was built"),
        ("push", {**derive.push("refs/heads/x", SHA), "after": None}, {"GITHUB_SHA": ""},
         "Missing or invalid commit sha"),
        ("schedule", derive.schedule(), {"GITHUB_SHA": "123"}, "Missing or invalid commit sha"),
        ("push", "{truncated", {}, "Malformed event payload"),
        ("push", derive.push("refs/heads/v1.2.3", SHA), {}, "Ambiguous branch name"),
        ("push", derive.push("refs/tags/main", SHA), {}, "Ambiguous tag name"),
        ("push", derive.shared("push.4.json"), {"GITHUB_SERVER_URL": "javascript:alert(1)"},
         "Invalid GITHUB_SERVER_URL"),
        ("push", derive.shared("push.4.json"), {"SOURCE_DATE_EPOCH": "yesterday"}, "Invalid SOURCE_DATE_EPOCH"),
        ("workflow_run", derive.workflow_run("pull_request_target", "main", SHA),
         {}, "Cannot rebuild a pull_request_target tag"),
    ],
)  # fmt: skip
def test_refusals_are_one_error_line_and_no_outputs(
    run_tag: Any, event_name: str, payload: Any, env: dict[str, str], title: str
) -> None:
    result = run_tag(event_name, payload, **env)
    assert result.code == 1
    assert [e.properties.get("title") for e in result.errors] == [title]
    assert result.output_text == ""
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("inputs", "name"),
    [
        ({"images": "ghcr.io/o/app\nghcr.io/o/App"}, "images"),
        ({"images": "ghcr.io/o/app:v1"}, "images"),
        ({"nightly": "yes"}, "nightly"),
        ({"main-branch": "trunk", "dev-branch": "trunk"}, "dev-branch"),
    ],
)
def test_invalid_inputs_are_refused_by_name(run_tag: Any, inputs: dict[str, str], name: str) -> None:
    result = run_tag("push", derive.shared("push.4.json"), inputs=inputs)
    assert result.code == 1
    assert [e.properties.get("title") for e in result.errors] == [f"Invalid input '{name}'"]
    assert result.output_text == ""


def test_release_marked_prerelease_against_its_version_warns(run_tag: Any) -> None:
    result = run_tag("release", derive.release("v1.2.3", prerelease=True))
    assert result.code == 0
    assert result.outputs["tag-names"] == "v1.2.3\n1.2"
    assert [c.name for c in result.commands] == ["warning"]
    honest = run_tag("release", derive.fixture("release.published.prerelease.json"))
    assert honest.outputs["tag-names"] == "v2.0.0-rc.1"
    assert honest.commands == []
    assert honest.outputs["labels"].splitlines()[3] == "org.opencontainers.image.version=v2.0.0-rc.1"


HOSTILE_NAMES = [
    'zzz";echo${IFS}"hello";#',
    "x\n::add-mask::everything\ny",
    "::add-mask::x",
    "x\nghadelimiter_00000000-0000-0000-0000-000000000000\nkind<<EOF\nmain\nEOF",
    "a\r\nb%0A::error::pwned",
    "$(touch /tmp/charon-pwned)`id`",
    "b" * 10_000,
    "\u202etxt.exe/\u200b\u0000\ud800",
    "日本語",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
@pytest.mark.parametrize("via", ["push", "workflow_run"])
def test_hostile_ref_names_change_nothing_but_their_own_tag(run_tag: Any, name: str, via: str) -> None:
    if via == "push":
        result = run_tag("push", derive.push(f"refs/heads/{name}", SHA), inputs={"images": "ghcr.io/o/app"})
    else:
        result = run_tag("workflow_run", derive.workflow_run("push", name, SHA), inputs={"images": "ghcr.io/o/app"})
    assert result.code == 0, result.stdout
    assert set(result.outputs) == OUTPUT_NAMES
    tag_name = result.outputs["tag"]
    assert result.outputs["tag-names"] == tag_name
    assert result.outputs["tags"] == f"ghcr.io/o/app:{tag_name}"
    assert (result.outputs["kind"], result.outputs["sha"], result.outputs["pr-number"]) == ("branch", SHA, "")
    assert tag_name.endswith("-0123456") and len(tag_name) <= 128
    # Only our own notice (for a name with nothing usable) may appear as a workflow command.
    assert all(c.name == "notice" for c in result.commands), result.commands
    for line in result.stdout.splitlines():
        assert not line.lstrip().startswith("::") or line.startswith("::notice title=action-tag::")
    assert "\r" not in result.output_text and "\x00" not in result.output_text


def test_help_and_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert tag.run(["--help"]) == 0
    assert "INPUT_IMAGES" in capsys.readouterr().out
    assert tag.run(["--images", "x"]) == 2
    assert "takes no arguments" in capsys.readouterr().err


def test_cli_refusal_has_no_traceback(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps(derive.shared("create.1.json")))
    env = {"PATH": os.environ.get("PATH", ""), "GITHUB_EVENT_NAME": "create", "GITHUB_EVENT_PATH": str(event),
           "GITHUB_OUTPUT": str(tmp_path / "out")}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "charon_ci", "tag"], env=env, capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert done.returncode == 1
    assert done.stdout.count("::error") == 1 and done.stderr == ""
    assert not (tmp_path / "out").exists() or (tmp_path / "out").read_text() == ""
