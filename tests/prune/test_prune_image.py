"""The prune container action's packaging: prune.Dockerfile, its build context, and its entrypoint.

The image itself is built and run in CI by `.ci/build-prune-image` (two minutes, needs root and podman);
these tests pin the parts that can be checked in milliseconds: what the Dockerfile promises (a base pinned
by digest, hash-locked requirements, a non-root user), that the runner's way of resolving `image:` gives
the build the context the Dockerfile needs, and the entrypoint's early refusal of file-command files the
container user cannot write (run for real, as an unprivileged uid).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "prune.Dockerfile"
ENTRYPOINT = REPO_ROOT / "docker" / "prune-entrypoint.sh"
ACTION_YML = REPO_ROOT / "action-prune" / "action.yml"
CHARON_CI = Path(sys.executable).parent / "charon-ci"
UNPRIVILEGED_UID = 65534  # nobody: any uid other than the file owner's and root's


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def instruction(name: str) -> list[str]:
    return [args for keyword, args in dockerfile_instructions() if keyword == name]


# --- what the Dockerfile promises -------------------------------------------------------------------------


def test_base_image_is_the_official_python_image_pinned_by_digest() -> None:
    (arg,) = [a for a in instruction("ARG") if a.startswith("BASE_IMAGE=")]
    assert re.fullmatch(r"BASE_IMAGE=python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", arg)
    assert instruction("FROM") == ["${BASE_IMAGE}"]
    # The ARG comes before FROM, so it is a build argument the FROM line can use.
    keywords = [keyword for keyword, _ in dockerfile_instructions()]
    assert keywords.index("ARG") < keywords.index("FROM")


def test_requirements_are_installed_hash_locked_and_nothing_else_from_the_index() -> None:
    (copy_lock,) = [c for c in instruction("COPY") if c.startswith("requirements/")]
    assert copy_lock.split() == ["requirements/runtime.txt", "/opt/charon-ci/requirements.txt"]
    pip_runs = [run for run in instruction("RUN") if "pip install" in run]
    assert len(pip_runs) == 1
    pip_args = shlex.split(pip_runs[0].split("pip install", 1)[1].split("&&")[0])
    for flag in ("--require-hashes", "--no-deps", "--only-binary=:all:"):
        assert flag in pip_args
    assert pip_args[pip_args.index("-r") + 1] == "/opt/charon-ci/requirements.txt"
    assert [arg for arg in pip_args if not arg.startswith("-")] == ["/opt/charon-ci/requirements.txt"]


def test_the_lock_it_installs_pins_every_requirement_with_hashes() -> None:
    lines = (REPO_ROOT / "requirements" / "runtime.txt").read_text(encoding="utf-8").splitlines()
    # A requirement starts at column 0; its --hash options and "# via" comments are indented below it.
    blocks: list[list[str]] = []
    for line in lines:
        if line and not line[0].isspace() and not line.startswith("#"):
            blocks.append([line])
        elif blocks and line.strip():
            blocks[-1].append(line.strip())
    assert blocks, "no requirement in requirements/runtime.txt"
    for block in blocks:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+==[^\s;]+ \\", block[0]), block[0]
        assert any(re.fullmatch(r"--hash=sha256:[0-9a-f]{64}( \\)?", option) for option in block[1:]), block[0]


def test_runs_as_a_numeric_non_root_user_with_the_prune_entrypoint() -> None:
    (user,) = instruction("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0
    assert gid.isdigit() and int(gid) != 0
    # 1001 is the runner's uid on GitHub-hosted runners (see action-prune/PACKAGING.md).
    assert int(uid) == 1001
    (entrypoint,) = instruction("ENTRYPOINT")
    assert json.loads(entrypoint) == ["/opt/charon-ci/bin/prune-entrypoint"]
    copies = [c.split() for c in instruction("COPY")]
    assert ["docker/prune-entrypoint.sh", "/opt/charon-ci/bin/prune-entrypoint"] in copies


def test_build_context_sends_every_copied_path_and_only_those() -> None:
    sources = [c.split()[0] for c in instruction("COPY")]
    ignore = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # An allowlist: everything is excluded, then each copied source is let back in.
    assert ignore[0] == "*"
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    assert allowed == set(sources)
    for source in sources:
        assert (REPO_ROOT / source).exists(), source


# --- how the runner resolves `image:` (actions/runner, see action-prune/PACKAGING.md) ---------------------


def runner_build_paths(action_directory: str, image: str) -> tuple[str, str] | None:
    """The (Dockerfile, build context) a runner builds for `image:`, or None if it pulls instead.

    Mirrors ContainerActionHandler: `image` is a Dockerfile when its last '/'-separated segment starts with
    'Dockerfile.' or ends with 'Dockerfile' (case-insensitive, DockerUtil.IsDockerfile); the file is
    Path.Combine(ActionDirectory, image) and the context Directory.GetParent(file), which normalises '..'.
    """
    if image.lower().startswith("docker://"):
        return None
    last = image.rsplit("/", maxsplit=1)[-1].lower()
    if not (last.startswith("dockerfile.") or last.endswith("dockerfile")):
        return None
    dockerfile = str(PurePosixPath(action_directory) / image)
    context = posixpath.normpath(posixpath.dirname(dockerfile))
    return dockerfile, context


def test_runner_builds_the_root_dockerfile_with_the_repository_root_as_context() -> None:
    checkout = "/home/runner/work/_actions/owner/charon-ci/v1"
    assert runner_build_paths(f"{checkout}/action-prune", "../prune.Dockerfile") == (
        f"{checkout}/action-prune/../prune.Dockerfile",
        checkout,
    )
    # A Dockerfile inside action-prune/ would get action-prune/ as its whole context: no lib/, no lock.
    assert runner_build_paths(f"{checkout}/action-prune", "Dockerfile") == (
        f"{checkout}/action-prune/Dockerfile",
        f"{checkout}/action-prune",
    )
    assert runner_build_paths(checkout, "docker://python:3.11") is None


def test_action_yml_runs_the_root_dockerfile() -> None:
    action = yaml.safe_load(ACTION_YML.read_text(encoding="utf-8"))
    runs = action["runs"]
    assert runs["using"] == "docker"
    paths = runner_build_paths(str(ACTION_YML.parent), runs["image"])
    assert paths is not None, runs["image"]
    dockerfile, context = paths
    assert Path(dockerfile).resolve() == DOCKERFILE
    assert Path(context).resolve() == REPO_ROOT
    # The image's ENTRYPOINT already runs `charon-ci prune`; an entrypoint here would replace it.
    assert "entrypoint" not in runs


# --- the entrypoint's check of the runner's file-command files --------------------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory an unprivileged uid can traverse (pytest's tmp_path is private to its owner)."""
    with tempfile.TemporaryDirectory(prefix="charon-ci-entrypoint-") as name:
        os.chmod(name, 0o755)  # noqa: S103 - world-traversable on purpose
        yield Path(name)


def run_entrypoint(env: dict[str, str], *args: str, unprivileged: bool = False) -> subprocess.CompletedProcess[str]:
    command = ["sh", str(ENTRYPOINT), *args]
    if unprivileged and os.geteuid() == 0:
        # Root may write any file, so the refusal is only observable as another uid.
        command = ["setpriv", f"--reuid={UNPRIVILEGED_UID}", f"--regid={UNPRIVILEGED_UID}", "--clear-groups", *command]
    base = {"PATH": f"{CHARON_CI.parent}:/usr/bin:/bin", "HOME": "/nonexistent"}
    return subprocess.run(command, env=base | env, capture_output=True, text=True, timeout=60, check=False)


def runner_owned_file(path: Path) -> Path:
    """A file-command file as the runner leaves it: mode 0644, owned by a uid other than the caller's."""
    path.write_text("", encoding="utf-8")
    path.chmod(0o644 if os.geteuid() == 0 else 0o444)
    return path


def charon_ci_prune_help() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHARON_CI), "prune", "--help"],
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("variable", ["GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"])
def test_unwritable_file_command_file_is_refused_before_charon_ci_runs(shared_dir: Path, variable: str) -> None:
    target = runner_owned_file(shared_dir / "set_output_1")
    result = run_entrypoint({variable: str(target)}, "--help", unprivileged=True)
    assert result.returncode == 1
    assert result.stderr == ""
    owner = target.stat().st_uid
    expected_uid = UNPRIVILEGED_UID if os.geteuid() == 0 else os.geteuid()
    assert result.stdout == (
        f"::error title=charon-ci prune container::{variable} is not writable by this container "
        f"(uid {expected_uid}); the runner created it as uid {owner}. This action runs as uid 1001, the user "
        "of GitHub-hosted runners: run the self-hosted runner as uid 1001, or call charon-ci prune from a run "
        "step instead.\n"
    )
    assert target.read_text(encoding="utf-8") == ""


def test_refusal_never_prints_the_runner_supplied_path(shared_dir: Path) -> None:
    hostile = shared_dir / "out\n::warning::injected %0A"
    target = runner_owned_file(hostile)
    result = run_entrypoint({"GITHUB_OUTPUT": str(target)}, unprivileged=True)
    assert result.returncode == 1
    assert result.stdout.count("\n") == 1
    assert "injected" not in result.stdout + result.stderr
    assert result.stdout.startswith("::error title=charon-ci prune container::GITHUB_OUTPUT is not writable")


def test_writable_files_hand_over_to_charon_ci_prune(shared_dir: Path) -> None:
    output = shared_dir / "set_output_2"
    summary = shared_dir / "step_summary_2"
    for path in (output, summary):
        path.write_text("", encoding="utf-8")
    # As the files' owner, like uid 1001 on a GitHub-hosted runner. (The hand-over as a non-root owner is
    # run in the image itself by .ci/build-prune-image; here the venv's interpreter may be private to root.)
    direct = charon_ci_prune_help()
    via_entrypoint = run_entrypoint({"GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)}, "--help")
    assert (via_entrypoint.returncode, via_entrypoint.stdout, via_entrypoint.stderr) == (
        direct.returncode,
        direct.stdout,
        direct.stderr,
    )
    assert direct.stdout + direct.stderr, "charon-ci prune --help printed nothing"


def test_without_file_command_variables_it_hands_over_unchanged() -> None:
    direct = charon_ci_prune_help()
    via_entrypoint = run_entrypoint({}, "--help")
    assert (via_entrypoint.returncode, via_entrypoint.stdout, via_entrypoint.stderr) == (
        direct.returncode,
        direct.stdout,
        direct.stderr,
    )


def test_entrypoint_is_executable_bash() -> None:
    # Not sh: Debian's dash drops INPUT_DRY-RUN and every other hyphenated input before exec.
    assert ENTRYPOINT.stat().st_mode & stat.S_IXUSR
    assert ENTRYPOINT.read_text(encoding="utf-8").startswith("#!/bin/bash\n")
    subprocess.run(["bash", "-n", str(ENTRYPOINT)], check=True, timeout=30)
