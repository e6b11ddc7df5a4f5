"""lib/bootstrap.sh: one environment per job, reused by later charon-ci steps, rebuilt when half-made."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.composite import parse_file_command
from tests.support.composite_fixtures import REPO_ROOT

SCRIPT = REPO_ROOT / "lib" / "bootstrap.sh"


def bootstrap(runner_temp: Path, candidates: str = sys.executable) -> subprocess.CompletedProcess[str]:
    output = runner_temp / "output"
    output.write_text("")
    env = {
        "PATH": os.environ["PATH"], "HOME": str(runner_temp), "RUNNER_TEMP": str(runner_temp),
        "GITHUB_OUTPUT": str(output), "CHARON_CI_PYTHON_CANDIDATES": candidates,
    }
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, check=False)


def python_of(runner_temp: Path) -> Path:
    return Path(parse_file_command((runner_temp / "output").read_text())["python"])


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
    launcher = Path(parse_file_command((tmp_path / "output").read_text())["command"])
    assert launcher == python.parent / "charon-ci"
    help_text = subprocess.run([launcher, "--help"], capture_output=True, text=True, check=False)
    assert help_text.returncode == 0 and "usage: charon-ci" in help_text.stdout
    second = bootstrap(tmp_path)
    assert second.returncode == 0
    assert python_of(tmp_path) == python
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
    old = tmp_path / "bin" / "python3"
    old.parent.mkdir()
    old.write_text("#!/bin/sh\nexit 1\n")  # answers the version check as Python < 3.11 would
    old.chmod(0o755)
    result = bootstrap(tmp_path, candidates=str(old))
    assert result.returncode == 1
    assert result.stdout.strip().splitlines() == [
        "::error title=charon-ci bootstrap::charon-ci needs Python 3.11 or newer on PATH "
        "(add actions/setup-python before this step)"
    ]
