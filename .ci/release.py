#!/usr/bin/env python3
"""The release workflow's steps (.github/workflows/release.yml), runnable and tested here.

Standard library only: the release job runs it with the runner's own python3, before anything is installed.

  release.py check --tag vX.Y.Z                 the tag, pyproject.toml, charon_ci.__version__ and CHANGELOG.md agree
  release.py wait-for-ci --sha SHA              a `push` run of ci.yml for SHA succeeded (waits while one runs)
  release.py notes --tag vX.Y.Z --sha SHA       the release notes: the CHANGELOG section and how to pin
  release.py pin-prune-image --reference REF    action-prune/action.yml runs the prebuilt image REF
  release.py major --tag vX.Y.Z                 prints vX

Errors are one `::error title=release::...` line and exit code 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TAG_RE = re.compile(r"^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
SECTION_RE = re.compile(r"^## \[(?P<version>[^\]]+)\](?: - (?P<date>\S+))?\s*$")
LINK_DEFINITION_RE = re.compile(r"^\[[^\]]+\]: \S+$")
DIGEST_REFERENCE_RE = re.compile(r"^docker://ghcr\.io/[a-z0-9][a-z0-9._/-]*@sha256:[0-9a-f]{64}$")
PRUNE_IMAGE_LINE_RE = re.compile(r"^(?P<indent>\s+)image: \.\./prune\.Dockerfile\b.*$")


class ReleaseError(Exception):
    """A release must not go on; the message says why and what to do."""


@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def parse_tag(tag: str) -> Version:
    match = TAG_RE.match(tag)
    if not match:
        raise ReleaseError(f"tag {tag!r} is not vMAJOR.MINOR.PATCH (e.g. v1.2.3)")
    return Version(*(int(part) for part in match.groups()))


# -- the changelog ------------------------------------------------------------------------------------------


def changelog_section(text: str, version: Version) -> str:
    """The body of `## [X.Y.Z] - YYYY-MM-DD` up to the next `## ` heading, without link definitions."""
    lines = text.splitlines()
    start = None
    for index, line in enumerate(lines):
        match = SECTION_RE.match(line)
        if match and match.group("version") == str(version):
            date = match.group("date") or ""
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
                raise ReleaseError(f"CHANGELOG.md: the [{version}] heading needs its date: "
                                   f"'## [{version}] - YYYY-MM-DD'")  # fmt: skip
            start = index + 1
            break
    if start is None:
        raise ReleaseError(
            f"CHANGELOG.md has no '## [{version}] - YYYY-MM-DD' section: move the Unreleased entries under one "
            "before pushing the tag"
        )
    end = next((index for index in range(start, len(lines)) if lines[index].startswith("## ")), len(lines))
    body = [line for line in lines[start:end] if not LINK_DEFINITION_RE.match(line)]
    section = "\n".join(body).strip()
    if not section:
        raise ReleaseError(f"CHANGELOG.md: the [{version}] section is empty")
    return section


def release_notes(section: str, version: Version, sha: str, repository: str, actions: Sequence[str],
                  prune_image: str | None) -> str:  # fmt: skip
    if not re.fullmatch(r"[0-9a-f]{40}", sha):
        raise ReleaseError(f"--sha {sha!r} is not a 40-hex commit sha")
    pins = "\n".join(f"- uses: {repository}/{action}@{sha} # v{version}" for action in actions)
    parts = [
        section,
        "## Use this release",
        "Pin the actions by commit (Dependabot's `github-actions` updates keep the sha and the comment current):",
        f"```yaml\n{pins}\n```",
        f"`v{version.major}` points at the same commit for convenience; it moves with every "
        f"v{version.major}.x.y release.",
    ]
    if prune_image:
        parts.append(f"action-prune runs the prebuilt image `{prune_image}` (built from `prune.Dockerfile` of this "
                     "commit's parent), so jobs pull it instead of building it.")  # fmt: skip
    return "\n\n".join(parts) + "\n"


# -- versions in the tree ------------------------------------------------------------------------------------


def tree_versions(root: Path) -> dict[str, str]:
    """The version pyproject.toml and charon_ci.__version__ declare (the tag must match both)."""
    found: dict[str, str] = {}
    pyproject = re.search(r'^version = "([^"]+)"$', (root / "pyproject.toml").read_text(), re.M)
    if pyproject:
        found["pyproject.toml"] = pyproject.group(1)
    package = re.search(r'^__version__ = "([^"]+)"$', (root / "lib/charon_ci/__init__.py").read_text(), re.M)
    if package:
        found["lib/charon_ci/__init__.py"] = package.group(1)
    return found


def check(tag: str, root: Path) -> Version:
    version = parse_tag(tag)
    for where, declared in sorted(tree_versions(root).items()):
        if declared != str(version):
            raise ReleaseError(f"{where} says version {declared}, the tag says {version}: bump it before tagging")
    changelog_section((root / "CHANGELOG.md").read_text(), version)
    return version


# -- CI of the tagged commit ---------------------------------------------------------------------------------

Fetch = Callable[[str], dict[str, object]]


def github_fetch(api_url: str, token: str) -> Fetch:
    def fetch(path: str) -> dict[str, object]:
        request = urllib.request.Request(f"{api_url.rstrip('/')}{path}", headers={  # noqa: S310 - https API
            "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
            "Authorization": f"Bearer {token}", "User-Agent": "charon-ci-release"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                data: dict[str, object] = json.loads(response.read())
                return data
        except urllib.error.HTTPError as error:
            try:
                said = json.loads(error.read()).get("message", "")
            except (ValueError, AttributeError, OSError):
                said = ""
            raise ReleaseError(f"GitHub answered {error.code} to GET {path}" + (f": {said}" if said else "")) from None
        except (urllib.error.URLError, TimeoutError) as error:
            raise ReleaseError(f"GitHub did not answer GET {path}: {error}") from None

    return fetch


def ci_state(fetch: Fetch, repository: str, workflow: str, sha: str) -> tuple[str, list[str]]:
    """'success', 'running' or 'failed' for the `push` runs of `workflow` at `sha`, with what was seen."""
    query = urllib.parse.urlencode({"head_sha": sha, "event": "push", "per_page": 100})
    data = fetch(f"/repos/{repository}/actions/workflows/{urllib.parse.quote(workflow)}/runs?{query}")
    runs = data.get("workflow_runs")
    if not isinstance(runs, list):
        raise ReleaseError("GitHub's workflow runs answer has no workflow_runs list")
    ours = [run for run in runs if isinstance(run, dict) and run.get("head_sha") == sha and run.get("event") == "push"]
    seen = [f"run {run.get('id')}: {run.get('status')}/{run.get('conclusion')}" for run in ours]
    if any(run.get("status") == "completed" and run.get("conclusion") == "success" for run in ours):
        return "success", seen
    if any(run.get("status") != "completed" for run in ours):
        return "running", seen
    return "failed", seen


def wait_for_ci(fetch: Fetch, repository: str, workflow: str, sha: str, timeout: float, interval: float = 30,
                sleep: Callable[[float], None] = time.sleep,
                clock: Callable[[], float] = time.monotonic) -> list[str]:  # fmt: skip
    deadline = clock() + timeout
    while True:
        state, seen = ci_state(fetch, repository, workflow, sha)
        if state == "success":
            return seen
        if state == "failed":
            detail = "; ".join(seen) if seen else "no push run of it at all"
            raise ReleaseError(f"{workflow} has not passed for {sha} ({detail}): push the commit to the default "
                               "branch, let CI pass, then push the tag again")  # fmt: skip
        if clock() + interval > deadline:
            raise ReleaseError(f"{workflow} for {sha} is still running after {timeout:.0f} s ({'; '.join(seen)}): "
                               "re-run this release once it has passed")  # fmt: skip
        sleep(interval)


# -- the prebuilt prune image ---------------------------------------------------------------------------------


def pin_prune_image(action_yml: str, reference: str, built_from: str) -> str:
    """action-prune/action.yml with `image: ../prune.Dockerfile` (and its comment) replaced by `reference`."""
    if not DIGEST_REFERENCE_RE.match(reference):
        raise ReleaseError(f"--reference {reference!r} is not docker://ghcr.io/OWNER/NAME@sha256:<64 hex>")
    lines = action_yml.splitlines()
    found = [index for index, line in enumerate(lines) if PRUNE_IMAGE_LINE_RE.match(line)]
    if len(found) != 1:
        raise ReleaseError("action-prune/action.yml has no single `image: ../prune.Dockerfile` line to pin")
    index = found[0]
    indent = PRUNE_IMAGE_LINE_RE.match(lines[index]).group("indent")  # type: ignore[union-attr]
    first_comment = index
    while first_comment > 0 and lines[first_comment - 1].startswith(f"{indent}#"):
        first_comment -= 1
    replacement = [
        f"{indent}# Prebuilt by the release workflow from prune.Dockerfile at {built_from} and pinned by digest:",
        f"{indent}# jobs pull it instead of building it (see action-prune/README.md).",
        f"{indent}image: {reference}",
    ]
    return "\n".join([*lines[:first_comment], *replacement, *lines[index + 1 :]]) + "\n"


# -- command line ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="release.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check").add_argument("--tag", required=True)
    wait = commands.add_parser("wait-for-ci")
    wait.add_argument("--sha", required=True)
    wait.add_argument("--workflow", default="ci.yml")
    wait.add_argument("--repository", default=None, help="owner/name (default: GITHUB_REPOSITORY)")
    wait.add_argument("--timeout", type=float, default=5400)
    wait.add_argument("--interval", type=float, default=30)
    notes = commands.add_parser("notes")
    notes.add_argument("--tag", required=True)
    notes.add_argument("--sha", required=True)
    notes.add_argument("--repository", default=None)
    notes.add_argument("--prune-image", default=None)
    pin = commands.add_parser("pin-prune-image")
    pin.add_argument("--reference", required=True)
    pin.add_argument("--built-from", required=True, help="the commit the image was built from")
    commands.add_parser("major").add_argument("--tag", required=True)
    options = parser.parse_args(argv)
    root: Path = options.root
    try:
        if options.command == "check":
            version = check(options.tag, root)
            print(f"v{version}: tag, pyproject.toml, charon_ci.__version__ and CHANGELOG.md agree")
        elif options.command == "wait-for-ci":
            repository = options.repository or os.environ.get("GITHUB_REPOSITORY", "")
            token = os.environ.get("GITHUB_TOKEN", "")
            if not repository or not token:
                raise ReleaseError("wait-for-ci needs GITHUB_REPOSITORY (or --repository) and GITHUB_TOKEN")
            fetch = github_fetch(os.environ.get("GITHUB_API_URL", "https://api.github.com"), token)
            seen = wait_for_ci(fetch, repository, options.workflow, options.sha, options.timeout, options.interval)
            print(f"{options.workflow} passed for {options.sha}: {'; '.join(seen)}")
        elif options.command == "notes":
            version = parse_tag(options.tag)
            repository = options.repository or os.environ.get("GITHUB_REPOSITORY", "OWNER/charon-ci")
            section = changelog_section((root / "CHANGELOG.md").read_text(), version)
            actions = sorted(path.parent.name for path in root.glob("action-*/action.yml"))
            sys.stdout.write(release_notes(section, version, options.sha, repository, actions, options.prune_image))
        elif options.command == "pin-prune-image":
            action = root / "action-prune" / "action.yml"
            action.write_text(pin_prune_image(action.read_text(), options.reference, options.built_from))
            print(f"action-prune/action.yml: image: {options.reference}")
        else:
            print(f"v{parse_tag(options.tag).major}")
    except ReleaseError as error:
        message = str(error).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        print(f"::error title=release::{message}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
