"""Bad input through action-pull-image/action.yml: one `::error` naming the input and what is accepted, exit 1,
no traceback, no outputs, nothing run from the input, the engine never asked; and the action's wiring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.fixtures.events import derive
from tests.pull.world import ACTION, BRANCH, PR, REPO, SHA
from tests.support.composite import ActionRunner

DIGEST = "sha256:" + "a" * 64
NAME = "ghcr.io/octo-org/app"

CASES = [
    ({}, "image"),
    ({"image": f"{NAME}:x", "image-name": NAME}, "image"),
    ({"image": NAME}, "image"),
    ({"image": f"{NAME}:$(touch MARKER)"}, "image"),
    ({"image-name": "$(touch MARKER)"}, "image-name"),
    ({"image-name": f"{NAME}:tag"}, "image-name"),
    ({"image-name": NAME, "expected-digest": "sha256:12"}, "expected-digest"),
    ({"image": f"{NAME}@{DIGEST}", "expected-digest": "sha256:" + "b" * 64}, "expected-digest"),
    ({"image-name": NAME, "expected-revision": "main"}, "expected-revision"),
    ({"image-name": NAME, "expected-revision": "abc12"}, "expected-revision"),
    ({"image-name": NAME, "on-mismatch": "ignore"}, "on-mismatch"),
    ({"image-name": NAME, "local-tag": "Charon:Local"}, "local-tag"),
    ({"image-name": NAME, "registry-timeout": "forever"}, "registry-timeout"),
    ({"image-name": NAME, "registry-username": "me", "registry-password": ""}, "registry-password"),
    ({"image-name": NAME, "run-id": "12a"}, "run-id"),
    ({"image-name": NAME, "artifact-name": "a/b"}, "artifact-name"),
    ({"image-name": NAME, "max-artifact-size": "lots"}, "max-artifact-size"),
    ({"image-name": NAME, "allowed-conclusions": "success, great"}, "allowed-conclusions"),
    ({"image-name": NAME, "nightly": "yes"}, "nightly"),
    ({"image-name": NAME, "dev-branch": "main"}, "dev-branch"),
]


@pytest.mark.parametrize(("inputs", "name"), CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_is_one_error_naming_it(action_runner: ActionRunner, tmp_path: Path, inputs: dict[str, str],
                                          name: str) -> None:  # fmt: skip
    marker = tmp_path / "MARKER"
    given = {key: value.replace("MARKER", str(marker)) for key, value in inputs.items()}
    event = tmp_path / "event.json"
    event.write_text(json.dumps(derive.pull_request(PR, SHA, BRANCH)))
    result = action_runner.run(ACTION, {"registry-password": "s3cret-value", **given}, env={
        "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event), "GITHUB_REPOSITORY": REPO,
        "GITHUB_SHA": "e" * 40, "GITHUB_TOKEN": "ghs_" + "x" * 36, "DOCKER_HOST": f"unix://{tmp_path}/no.sock",
    })  # fmt: skip
    assert result.exit_code == 1
    assert [e.properties.get("title") for e in result.errors] == [f"Invalid input '{name}'"], result.stdout
    assert result.outputs == {}
    assert "Traceback" not in result.stdout + result.stderr
    assert not marker.exists()
    # the password is masked before anything else is printed, and never printed otherwise
    if given.get("registry-password", "s3cret-value"):
        commands = result.commands
        assert commands[0].name == "add-mask" and commands[0].message == "s3cret-value"
        assert result.stdout.count("s3cret-value") == 1


def test_engine_unreachable_is_one_clear_error(action_runner: ActionRunner, tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps(derive.pull_request(PR, SHA, BRANCH)))
    result = action_runner.run(ACTION, {"image-name": NAME}, env={
        "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event), "GITHUB_REPOSITORY": REPO,
        "GITHUB_SHA": "e" * 40, "DOCKER_HOST": f"unix://{tmp_path}/no.sock",
    })  # fmt: skip
    assert result.exit_code == 1
    assert [e.properties.get("title") for e in result.errors] == ["Docker engine not reachable"]
    assert f"{tmp_path}/no.sock" in result.errors[0].message
    assert "Traceback" not in result.stdout + result.stderr


def test_action_yml_passes_inputs_only_through_env_and_bootstraps_as_action_tag_does() -> None:
    definition = yaml.safe_load((ACTION / "action.yml").read_text())
    tag_definition = yaml.safe_load((ACTION.parent / "action-tag" / "action.yml").read_text())
    steps = definition["runs"]["steps"]
    assert steps[0] == tag_definition["runs"]["steps"][0]  # the same bootstrap, so it changes in one place
    for step in steps:
        assert "${{" not in step["run"]
    env = steps[-1]["env"]
    inputs = definition["inputs"]
    assert {f"INPUT_{name.upper()}": f"${{{{ inputs.{name} }}}}" for name in inputs}.items() <= env.items()
    assert inputs["github-token"]["default"] == "${{ github.token }}"
    assert set(definition["outputs"]) == {"source", "image", "image-id", "digest", "revision", "local-tag",
                                          "attempts", "seconds"}  # fmt: skip
    for name, spec in definition["outputs"].items():
        assert spec["value"] == f"${{{{ steps.pull.outputs.{name} }}}}"
