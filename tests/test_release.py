""".ci/release.py, the steps of .github/workflows/release.yml: a `vX.Y.Z` tag is released only when the tree,
the changelog and CI agree; its notes are its CHANGELOG.md section; the prebuilt prune image is pinned by digest.

CI state is read from the fake GitHub over real HTTP (its answers validated against GitHub's OpenAPI description).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.support.composite_fixtures import REPO_ROOT
from tests.support.fakegithub import FakeGitHub

SCRIPT = REPO_ROOT / ".ci" / "release.py"
REPO = "octo-org/charon-ci"
SHA = "1234567890abcdef1234567890abcdef12345678"
DIGEST = "sha256:" + "ab" * 32


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("charon_release", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["charon_release"] = module
    spec.loader.exec_module(module)
    return module


release = load()

CHANGELOG = """# Changelog

## [Unreleased]

### Added
- something newer

## [1.2.0] - 2026-12-01

### Added
- a feature ([#4](https://example.invalid/4))

### Fixed
- a bug

## [1.1.0] - 2026-11-01

- older

[1.2.0]: https://github.com/octo-org/charon-ci/compare/v1.1.0...v1.2.0
"""


def tree(tmp_path: Path, version: str = "1.2.0", changelog: str = CHANGELOG) -> Path:
    (tmp_path / "lib" / "charon_ci").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "charon-ci"\nversion = "{version}"\n')
    (tmp_path / "lib" / "charon_ci" / "__init__.py").write_text(f'"""x"""\n\n__version__ = "{version}"\n')
    (tmp_path / "CHANGELOG.md").write_text(changelog)
    return tmp_path


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False)


# -- tags, versions, changelog ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["v1.2", "1.2.3", "v1.2.3-rc.1", "v01.2.3", "v1.2.3 ", "vX.Y.Z", "v1.2.3.4"])
def test_only_a_plain_semver_tag_is_released(tag: str) -> None:
    with pytest.raises(release.ReleaseError, match=r"not vMAJOR\.MINOR\.PATCH"):
        release.parse_tag(tag)


def test_the_section_of_the_version_is_the_release_notes_body() -> None:
    section = release.changelog_section(CHANGELOG, release.parse_tag("v1.2.0"))
    assert section == "### Added\n- a feature ([#4](https://example.invalid/4))\n\n### Fixed\n- a bug"
    assert release.changelog_section(CHANGELOG, release.parse_tag("v1.1.0")) == "- older"  # link definitions dropped


@pytest.mark.parametrize(
    ("changelog", "message"),
    [
        (CHANGELOG.replace("## [1.2.0] - 2026-12-01", "## [1.2.0]"), "needs its date"),
        (CHANGELOG.replace("[1.2.0] - 2026-12-01", "[1.2.1] - 2026-12-01"), "no '## \\[1.2.0\\] - YYYY-MM-DD' section"),
        ("# Changelog\n\n## [1.2.0] - 2026-12-01\n\n## [1.1.0] - 2026-11-01\n- x\n", "section is empty"),
    ],
)
def test_a_missing_or_empty_section_stops_the_release(changelog: str, message: str) -> None:
    with pytest.raises(release.ReleaseError, match=message):
        release.changelog_section(changelog, release.parse_tag("v1.2.0"))


def test_check_wants_the_tree_to_declare_the_tagged_version(tmp_path: Path) -> None:
    assert str(release.check("v1.2.0", tree(tmp_path))) == "1.2.0"
    (tmp_path / "pyproject.toml").write_text('[project]\nversion = "1.1.0"\n')
    with pytest.raises(release.ReleaseError, match=r"pyproject\.toml says version 1\.1\.0, the tag says 1\.2\.0"):
        release.check("v1.2.0", tmp_path)


def test_this_repository_declares_one_version_everywhere() -> None:
    versions = set(release.tree_versions(REPO_ROOT).values())
    assert len(versions) == 1 and len(release.tree_versions(REPO_ROOT)) == 2
    assert "## [Unreleased]" in (REPO_ROOT / "CHANGELOG.md").read_text()


def test_notes_carry_the_section_and_the_pins(tmp_path: Path) -> None:
    root = tree(tmp_path)
    for action in ("action-tag", "action-prune"):
        (root / action).mkdir()
        (root / action / "action.yml").write_text("name: x\n")
    result = run_cli("--root", str(root), "notes", "--tag", "v1.2.0", "--sha", SHA, "--repository", REPO,
                     "--prune-image", f"ghcr.io/octo-org/charon-ci-prune@{DIGEST}")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("### Added\n- a feature")
    assert f"- uses: {REPO}/action-prune@{SHA} # v1.2.0\n- uses: {REPO}/action-tag@{SHA} # v1.2.0" in result.stdout
    assert f"`ghcr.io/octo-org/charon-ci-prune@{DIGEST}`" in result.stdout
    assert "`v1` points at the same commit for convenience" in result.stdout


def test_errors_are_one_workflow_command_line(tmp_path: Path) -> None:
    result = run_cli("--root", str(tree(tmp_path, version="1.1.9")), "check", "--tag", "v1.2.0")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "::error title=release::lib/charon_ci/__init__.py says version 1.1.9, the tag says 1.2.0: "
        "bump it before tagging"
    ]
    assert "Traceback" not in result.stderr
    assert run_cli("major", "--tag", "v12.0.3").stdout == "v12\n"


# -- CI of the tagged commit, against the fake GitHub ------------------------------------------------------------


def fetch_from(gh: FakeGitHub):  # type: ignore[no-untyped-def]
    return release.github_fetch(gh.url, gh.token)


def test_a_passed_push_run_lets_the_release_go_on(fake_github: FakeGitHub) -> None:
    fake_github.add_repo(REPO)
    fake_github.add_run(REPO, "ci.yml", event="pull_request", head_sha=SHA, conclusion="failure")
    fake_github.add_run(REPO, "ci.yml", event="push", head_sha=SHA, conclusion="failure")
    fake_github.add_run(REPO, "ci.yml", event="push", head_sha=SHA, conclusion="success", run_attempt=2)
    fake_github.add_run(REPO, "ci.yml", event="push", head_sha="f" * 40, conclusion="success")
    seen = release.wait_for_ci(fetch_from(fake_github), REPO, "ci.yml", SHA, timeout=0)
    assert any(line.endswith("completed/success") for line in seen)


@pytest.mark.parametrize(
    ("runs", "message"),
    [
        ([], "no push run of it at all"),
        ([("push", "completed", "failure")], "completed/failure"),
        ([("pull_request", "completed", "success")], "no push run of it at all"),  # a PR head is not the tag's tree
        ([("push", "completed", "cancelled")], "completed/cancelled"),
    ],
)
def test_without_a_passed_push_run_the_release_stops(fake_github: FakeGitHub, runs: list[tuple[str, str, str]],
                                                     message: str) -> None:  # fmt: skip
    fake_github.add_repo(REPO)
    fake_github.add_workflow(REPO, ".github/workflows/ci.yml")
    fake_github.add_run(REPO, "release.yml", event="push", head_sha=SHA)  # another workflow passing is not CI
    for event, status, conclusion in runs:
        fake_github.add_run(REPO, "ci.yml", event=event, status=status, conclusion=conclusion, head_sha=SHA)
    with pytest.raises(release.ReleaseError, match=message):
        release.wait_for_ci(fetch_from(fake_github), REPO, "ci.yml", SHA, timeout=0)


def test_a_running_ci_is_waited_for_then_judged(fake_github: FakeGitHub) -> None:
    fake_github.add_repo(REPO)
    run = fake_github.add_run(REPO, "ci.yml", event="push", status="in_progress", head_sha=SHA)
    slept: list[float] = []
    now = [0.0]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds
        if len(slept) == 2:  # CI finishes while the release waits
            run.status, run.conclusion = "completed", "success"

    seen = release.wait_for_ci(fetch_from(fake_github), REPO, "ci.yml", SHA, timeout=600, interval=30, sleep=sleep,
                               clock=lambda: now[0])  # fmt: skip
    assert slept == [30, 30] and seen == [f"run {run.id}: completed/success"]

    run.status, run.conclusion = "in_progress", None
    with pytest.raises(release.ReleaseError, match="still running after 60 s"):
        release.wait_for_ci(fetch_from(fake_github), REPO, "ci.yml", SHA, timeout=60, interval=30, sleep=sleep,
                            clock=lambda: now[0])  # fmt: skip
    assert len(slept) == 4  # two more waits of 30 s, then the deadline


def test_a_refused_token_or_an_unknown_workflow_is_a_clear_error(fake_github: FakeGitHub) -> None:
    fake_github.add_repo(REPO)
    with pytest.raises(release.ReleaseError, match=r"GitHub answered 404 .*: Not Found"):
        release.wait_for_ci(fetch_from(fake_github), REPO, "ci.yml", SHA, timeout=0)
    with pytest.raises(release.ReleaseError, match="GitHub answered 401"):
        release.wait_for_ci(release.github_fetch(fake_github.url, "not-a-token"), REPO, "ci.yml", SHA, timeout=0)


# -- the prebuilt prune image --------------------------------------------------------------------------------------


def test_pinning_rewrites_only_the_image_of_the_real_action_prune(tmp_path: Path) -> None:
    original = (REPO_ROOT / "action-prune" / "action.yml").read_text()
    reference = f"docker://ghcr.io/octo-org/charon-ci-prune@{DIGEST}"
    pinned = release.pin_prune_image(original, reference, SHA)
    before, after = yaml.safe_load(original), yaml.safe_load(pinned)
    assert after["runs"] == {"using": "docker", "image": reference}
    assert {key: value for key, value in after.items() if key != "runs"} == {
        key: value for key, value in before.items() if key != "runs"}  # fmt: skip
    assert "prune.Dockerfile #" not in pinned and "zizmor: ignore" not in pinned
    target = tmp_path / "action-prune" / "action.yml"
    target.parent.mkdir()
    target.write_text(pinned)
    tools = REPO_ROOT / ".venv" / "bin"
    schema = subprocess.run([tools / "check-jsonschema", "--builtin-schema", "vendor.github-actions", target],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert schema.returncode == 0, schema.stdout + schema.stderr
    zizmor = subprocess.run([tools / "zizmor", "--offline", "--no-progress", target], capture_output=True, text=True,
                            check=False)  # fmt: skip
    assert zizmor.returncode == 0, zizmor.stdout + zizmor.stderr


@pytest.mark.parametrize("reference", [
    "ghcr.io/octo-org/charon-ci-prune@" + DIGEST,  # no docker://
    "docker://ghcr.io/octo-org/charon-ci-prune:v1.2.0",  # a tag moves
    "docker://docker.io/octo/charon-ci-prune@" + DIGEST,
    "docker://ghcr.io/Octo/charon-ci-prune@" + DIGEST,  # references are lower case
    "docker://ghcr.io/octo-org/charon-ci-prune@sha256:abc",
])  # fmt: skip
def test_only_a_ghcr_digest_reference_is_pinned(reference: str) -> None:
    with pytest.raises(release.ReleaseError, match=r"is not docker://ghcr\.io"):
        release.pin_prune_image((REPO_ROOT / "action-prune" / "action.yml").read_text(), reference, SHA)


def test_pinning_twice_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(REPO_ROOT / "action-prune", root / "action-prune")
    reference = f"docker://ghcr.io/octo-org/charon-ci-prune@{DIGEST}"
    first = run_cli("--root", str(root), "pin-prune-image", "--reference", reference, "--built-from", SHA)
    assert first.returncode == 0, first.stdout
    again = run_cli("--root", str(root), "pin-prune-image", "--reference", reference, "--built-from", SHA)
    assert again.returncode == 1 and "no single `image: ../prune.Dockerfile` line" in again.stdout
