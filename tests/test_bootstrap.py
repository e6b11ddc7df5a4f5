"""lib/bootstrap.sh and lib/bootstrap-steps.yml: one environment per job, reused by later charon-ci steps, rebuilt
when half-made; and on runners without a Python >= 3.11 (ubuntu-22.04's 3.10, self-hosted runners and container
jobs without Python) the actions/setup-python fallback, with the same action outputs and the job's own PATH
untouched.

The harness cannot run the nested actions/setup-python step for real (a node24 action that downloads Python
from github.com, which nothing here reaches): these tests check that step's `uses:`, `if:` and `with:` against
lib/bootstrap-steps.yml and every composite action.yml, and play the step with tests/support/python_fallback.py's
stand-in, which accepts only `update-environment: false` and installs a real interpreter into a tool-cache
layout.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.events import derive
from tests.support.composite import ActionRunner, parse_file_command
from tests.support.composite_fixtures import REPO_ROOT
from tests.support.python_fallback import SetupPythonStandIn, job_env, runner_path

SCRIPT = REPO_ROOT / "lib" / "bootstrap.sh"
STEPS_FILE = REPO_ROOT / "lib" / "bootstrap-steps.yml"
LAUNCHER_ENV = "${{ steps.bootstrap.outputs.command || steps.bootstrap-fallback.outputs.command }}"
SHA = "5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b"


def bootstrap(runner_temp: Path, candidates: str | None = sys.executable, *args: str,
              path: str | None = None, python: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    output = runner_temp / "output"
    output.write_text("")
    env = {"PATH": path or os.environ["PATH"], "HOME": str(runner_temp), "RUNNER_TEMP": str(runner_temp),
           "GITHUB_OUTPUT": str(output)}  # fmt: skip
    if candidates is not None:
        env["CHARON_CI_PYTHON_CANDIDATES"] = candidates
    if python is not None:
        env["CHARON_CI_PYTHON"] = python
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, check=False)


def outputs_of(runner_temp: Path) -> dict[str, str]:
    return parse_file_command((runner_temp / "output").read_text())


def python_of(runner_temp: Path) -> Path:
    return Path(outputs_of(runner_temp)["python"])


def test_environment_is_made_once_and_reused(tmp_path: Path) -> None:
    first = bootstrap(tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    python = python_of(tmp_path)
    assert python.is_relative_to(tmp_path / "charon-ci")
    marker = python.parent.parent / ".charon-ci-ready"
    made_at = marker.stat().st_mtime_ns
    check = subprocess.run([python, "-c", "import charon_ci.gha, requests, docker, semver; print('ok')"],
                           capture_output=True, text=True, check=False)
    assert check.stdout == "ok\n", check.stderr
    launcher = Path(outputs_of(tmp_path)["command"])
    assert launcher == python.parent / "charon-ci"
    help_text = subprocess.run([launcher, "--help"], capture_output=True, text=True, check=False)
    assert help_text.returncode == 0 and "usage: charon-ci" in help_text.stdout
    second = bootstrap(tmp_path)
    assert second.returncode == 0
    assert outputs_of(tmp_path) == {"python": str(python), "command": str(launcher)}
    assert marker.stat().st_mtime_ns == made_at  # reused, not rebuilt


def test_a_half_made_environment_is_rebuilt(tmp_path: Path) -> None:
    assert bootstrap(tmp_path).returncode == 0
    python = python_of(tmp_path)
    (python.parent.parent / ".charon-ci-ready").unlink()
    (python.parent.parent / "leftover").write_text("from a cancelled step")
    assert bootstrap(tmp_path).returncode == 0
    assert not (python.parent.parent / "leftover").exists()
    assert (python.parent.parent / ".charon-ci-ready").exists()


def test_too_old_a_python_is_one_clear_error(tmp_path: Path) -> None:
    fake = runner_path(tmp_path / "bin", "3.10")
    result = bootstrap(tmp_path, None, path=fake.path)
    assert result.returncode == 1
    assert result.stdout.strip().splitlines() == [
        "::error title=charon-ci bootstrap::charon-ci needs Python 3.11 or newer on PATH "
        "(python3.13, python3.12, python3.11 or python3)"
    ]
    assert fake.calls() == [["-c", "import sys; sys.exit(sys.version_info < (3, 11))"]]


@pytest.mark.parametrize("python", ["3.10", None], ids=["python-3.10-only", "no-python"])
def test_without_a_suitable_python_the_first_step_asks_for_one(tmp_path: Path, python: str | None) -> None:
    fake = runner_path(tmp_path / "bin", python)
    result = bootstrap(tmp_path, None, "--or-ask-for-python", path=fake.path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert outputs_of(tmp_path) == {"needs-python": "true"}
    assert "::" not in result.stdout  # a notice in plain words, not a warning or an error
    assert not (tmp_path / "charon-ci").exists() or not any((tmp_path / "charon-ci").iterdir())


def test_the_fallback_interpreter_is_reused_by_later_steps_without_asking_again(tmp_path: Path) -> None:
    fake = runner_path(tmp_path / "bin", "3.10")
    made = bootstrap(tmp_path, None, path=fake.path, python=sys.executable)
    assert made.returncode == 0, made.stdout + made.stderr
    fallback = outputs_of(tmp_path)
    probes = len(fake.calls())
    later = bootstrap(tmp_path, None, "--or-ask-for-python", path=fake.path)
    assert later.returncode == 0, later.stdout + later.stderr
    assert outputs_of(tmp_path) == fallback
    assert len(fake.calls()) == probes  # found by name: no interpreter was started


def test_a_tool_cache_python_that_needs_its_lib_on_ld_library_path(tmp_path: Path) -> None:
    stand_in = SetupPythonStandIn(needs_library_path=True)
    setup = stand_in_call(stand_in, tmp_path)
    tool_cache_python = setup["python-path"]
    alone = subprocess.run([tool_cache_python, "-c", "pass"], capture_output=True, text=True, check=False)
    assert alone.returncode == 127 and "libpython" in alone.stderr  # the stand-in really needs it

    result = bootstrap(tmp_path, None, path=runner_path(tmp_path / "bin", None).path, python=tool_cache_python)
    assert result.returncode == 0, result.stdout + result.stderr
    outputs = outputs_of(tmp_path)
    lib = str(Path(tool_cache_python).parent.parent / "lib")
    # The outputs set LD_LIBRARY_PATH for charon-ci's own processes only, and being bash they keep the
    # runner's hyphenated INPUT_ names (dash would drop them).
    seen = subprocess.run(
        ["env", "INPUT_MAIN-BRANCH=trunk", outputs["python"], "-c",
         "import os; print(os.environ['LD_LIBRARY_PATH']); print(os.environ['INPUT_MAIN-BRANCH'])"],
        capture_output=True, text=True, check=False, env={"PATH": os.environ["PATH"], "LD_LIBRARY_PATH": "/x"},
    )  # fmt: skip
    assert seen.stdout.splitlines() == [f"{lib}:/x", "trunk"], seen.stderr
    help_text = subprocess.run([outputs["command"], "--help"], capture_output=True, text=True, check=False)
    assert help_text.returncode == 0 and "usage: charon-ci" in help_text.stdout, help_text.stderr
    assert Path(outputs["command"]).read_text().startswith("#!") and "LD_LIBRARY_PATH" in Path(
        outputs["command"]).read_text()  # fmt: skip


def test_a_fallback_python_that_does_not_run_is_one_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "toolcache" / "Python" / "3.11.9" / "x64" / "bin" / "python"
    broken.parent.mkdir(parents=True)
    # What a tool-cache Python built on a newer Ubuntu prints in an older container image (and a second line).
    loader_error = "/lib/libc.so.6: version `GLIBC_2.38%' not found\nsecond line"
    broken.write_text(f"#!/bin/sh\ncat >&2 <<'EOF'\n{loader_error}\nEOF\nexit 1\n")
    broken.chmod(0o755)
    result = bootstrap(tmp_path, None, path=runner_path(tmp_path / "bin", None).path, python=str(broken))
    assert result.returncode == 1
    assert result.stdout.strip().splitlines() == [
        "::error title=charon-ci bootstrap::the Python actions/setup-python provided does not run here or is older "
        "than 3.11 (/lib/libc.so.6: version `GLIBC_2.38%25' not found). In a container job, use an image with "
        "python3 3.11 or newer on PATH."
    ]
    assert "Traceback" not in result.stderr


def test_a_host_pip_too_old_for_python_option_falls_back_to_ensurepip(tmp_path: Path) -> None:
    old_pip = tmp_path / "old-pip" / "python3"
    old_pip.parent.mkdir()
    old_pip.write_text(
        "#!/usr/bin/env bash\n"
        '[ "$*" = "-m pip --version" ] && { echo "pip 22.0.2 from /usr/lib/python3/dist-packages/pip (python 3.11)";'
        " exit 0; }\n"
        f'[ "$1" = "-m" ] && [ "$2" = pip ] && {{ echo "this pip has no --python" >&2; exit 2; }}\n'
        f'exec {sys.executable} "$@"\n'
    )  # fmt: skip
    old_pip.chmod(0o755)
    result = bootstrap(tmp_path, str(old_pip))
    assert result.returncode == 0, result.stdout + result.stderr
    python = python_of(tmp_path)
    check = subprocess.run([python, "-c", "import pip, requests; print('ok')"], capture_output=True, text=True,
                           check=False)  # fmt: skip
    assert check.stdout == "ok\n", check.stderr  # pip was installed into the venv by ensurepip


# -- the steps every composite action carries ------------------------------------------------------------


def canonical_steps() -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = yaml.safe_load(STEPS_FILE.read_text())
    return steps


def composite_actions() -> list[Path]:
    found = []
    for action_yml in sorted(REPO_ROOT.glob("action-*/action.yml")):
        if (yaml.safe_load(action_yml.read_text()).get("runs") or {}).get("using") == "composite":
            found.append(action_yml)
    return found


def test_the_fallback_steps_ask_setup_python_for_a_pinned_python_and_no_environment_change() -> None:
    bootstrap_step, setup, fallback = canonical_steps()
    assert bootstrap_step == {"id": "bootstrap", "shell": "bash",
                              "run": 'bash "$GITHUB_ACTION_PATH/../lib/bootstrap.sh" --or-ask-for-python'}  # fmt: skip
    condition = "steps.bootstrap.outputs.needs-python == 'true'"
    assert setup["if"] == condition and fallback["if"] == condition
    assert re.fullmatch(r"actions/setup-python@[0-9a-f]{40}", setup["uses"])
    # The same minor version the tests and the prune image run on; update-environment: false keeps the job's
    # PATH, pythonLocation, LD_LIBRARY_PATH and the rest as they were.
    assert setup["with"] == {"python-version": "3.11", "update-environment": False}
    assert fallback["env"] == {"CHARON_CI_PYTHON": "${{ steps.setup-python.outputs.python-path }}"}
    assert fallback["run"] == 'bash "$GITHUB_ACTION_PATH/../lib/bootstrap.sh"'
    pin = re.search(r"uses: (actions/setup-python@[0-9a-f]{40}) # (v\d+\.\d+\.\d+)$", STEPS_FILE.read_text(), re.M)
    assert pin is not None and pin.group(1) == setup["uses"]


def test_there_is_a_composite_action_to_check() -> None:
    assert REPO_ROOT / "action-tag" / "action.yml" in composite_actions()


@pytest.mark.parametrize("action_yml", composite_actions(), ids=lambda path: path.parent.name)
def test_every_composite_action_starts_with_the_bootstrap_steps(action_yml: Path) -> None:
    text = action_yml.read_text()
    steps = yaml.safe_load(text)["runs"]["steps"]
    assert steps[:3] == canonical_steps(), f"{action_yml}: copy lib/bootstrap-steps.yml verbatim"
    pin_line = next(line.strip() for line in STEPS_FILE.read_text().splitlines() if "uses: " in line)
    assert [line.strip() for line in text.splitlines() if "actions/setup-python@" in line] == [pin_line]
    # Later steps take the launcher from whichever bootstrap ran, never from one of them only.
    for step in steps[3:]:
        for name, value in (step.get("env") or {}).items():
            if "steps.bootstrap" in str(value):
                assert (name, value) == ("CHARON_CI", LAUNCHER_ENV), f"{action_yml}: step {step.get('id')}"


# -- action-tag through the harness on runners without a suitable Python -----------------------------------


def run_tag(runner: ActionRunner, tmp_path: Path, env: dict[str, str | None], stand_in: SetupPythonStandIn) -> Any:
    event_path = tmp_path / "push.json"
    event_path.write_text(json.dumps(derive.push("refs/heads/main", SHA)))
    job = {"GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": str(event_path), "GITHUB_REPOSITORY": "octo-org/app",
           "SOURCE_DATE_EPOCH": "1770000000", **env}  # fmt: skip
    return runner.run(REPO_ROOT / "action-tag", {"images": "ghcr.io/octo-org/app"}, env=job,
                      nested={"actions/setup-python": stand_in})  # fmt: skip


def step_states(result: Any) -> dict[str, str]:
    return {step.id: "skipped" if step.skipped else "ran" for step in result.steps}


@pytest.mark.parametrize("python", ["3.10", None], ids=["ubuntu-22.04-python-3.10", "no-python"])
def test_action_tag_on_a_runner_without_python_3_11_gives_the_same_outputs(tmp_path: Path,
                                                                            python: str | None) -> None:  # fmt: skip
    stand_in = SetupPythonStandIn()
    # A runner with a suitable Python (the tests' own): only the first step runs.
    usual = run_tag(ActionRunner(mkdir(tmp_path / "usual")), tmp_path, {}, stand_in)
    assert usual.succeeded, usual.stdout + usual.stderr
    assert step_states(usual) == {"bootstrap": "ran", "setup-python": "skipped", "bootstrap-fallback": "skipped",
                                  "tag": "ran"}  # fmt: skip
    assert stand_in.calls == []

    fake = runner_path(tmp_path / "bin", python)
    runner = ActionRunner(mkdir(tmp_path / "fallback"))
    fallback = run_tag(runner, tmp_path, job_env(fake), stand_in)
    assert fallback.succeeded, fallback.stdout + fallback.stderr
    assert step_states(fallback) == {"bootstrap": "ran", "setup-python": "ran", "bootstrap-fallback": "ran",
                                     "tag": "ran"}  # fmt: skip
    assert fallback.steps[0].outputs == {"needs-python": "true"}
    assert [call.with_inputs for call in stand_in.calls] == [{"python-version": "3.11", "update-environment": "false"}]
    assert fallback.outputs == usual.outputs
    assert fallback.outputs["tag-names"].splitlines() == ["latest", f"sha-{SHA[:7]}"]
    # The job's environment is left as it was: nothing added to PATH or written to GITHUB_ENV by any step.
    assert fallback.path_added == [] and fallback.env_written == {}
    if python is not None:
        assert fake.calls() == [["-c", "import sys; sys.exit(sys.version_info < (3, 11))"]]

    # A second charon-ci action in the same job finds the environment at once: no setup-python again.
    again = run_tag(runner, tmp_path, job_env(fake), stand_in)
    assert again.succeeded, again.stdout + again.stderr
    assert step_states(again) == {"bootstrap": "ran", "setup-python": "skipped", "bootstrap-fallback": "skipped",
                                  "tag": "ran"}  # fmt: skip
    assert len(stand_in.calls) == 1
    assert again.outputs == usual.outputs


def mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def stand_in_call(stand_in: SetupPythonStandIn, runner_temp: Path) -> dict[str, str]:
    from tests.support.composite import NestedCall

    call = NestedCall("actions/setup-python@" + "0" * 40, {"python-version": "3.11", "update-environment": "false"},
                      {"RUNNER_TEMP": str(runner_temp)})  # fmt: skip
    return stand_in(call)
