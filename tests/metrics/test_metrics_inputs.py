"""Bad inputs: one clear `::error title=...::` naming the input and what is accepted, exit code 1, no
traceback, and nothing written (no report, no outputs). Table-driven; the last case goes through
`charon-ci metrics` as a process to show the exit code and the absence of a traceback there too."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.metrics.helpers import REPO, T0, WINDOW, run_metrics, small_history
from tests.support.composite_fixtures import REPO_ROOT
from tests.support.fakegithub import Clock, FakeGitHub
from tests.support.fakegithub.fixtures import serve_fake_github


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    fake = serve_fake_github(clock=Clock(start=T0 + 2 * 86400, frozen=True))
    for started in fake:
        small_history(started)
        yield started


def other_version(folder: Path) -> str:
    path = folder / "ci-metrics-old.json"
    path.write_text(json.dumps({"schema": "charon-ci/ci-metrics", "schema_version": 2, "repository": REPO}))
    return str(path)


def not_metrics(folder: Path) -> str:
    path = folder / "plan.json"
    path.write_text(json.dumps({"delete": [], "keep": []}))
    return str(path)


def not_json(folder: Path) -> str:
    path = folder / "broken.json"
    path.write_text("{not json")
    return str(path)


def missing(folder: Path) -> str:
    return str(folder / "nowhere.json")


# (case id, inputs (a callable makes the value from the test's folder), input named, words in the message)
CASES: list[tuple[str, dict[str, str | Callable[[Path], str]], str, str]] = [
    ("unknown-workflow", {"build-workflows": "docker-biuld.yml"}, "build-workflows", "docker-build.yml"),
    ("unknown-build-job-workflow", {"build-job-workflows": "nope"}, "build-job-workflows", "integration.yml"),
    ("unknown-pull-workflow", {"pull-workflows": "Nope"}, "pull-workflows", "file names"),
    ("malformed-since", {"since": "yesterday"}, "since", "ISO 8601"),
    ("impossible-date", {"since": "2026-02-30"}, "since", "ISO 8601"),
    ("naive-time", {"until": "2026-01-02T00:00:00"}, "until", "zone"),
    ("until-before-since", {"since": "2026-01-05", "until": "2026-01-01"}, "until", "after since"),
    ("until-equals-since", {"since": "2026-01-05T00:00:00Z", "until": "2026-01-05T00:00:00Z"}, "until", "after"),
    ("baseline-other-version", {"baseline": other_version}, "baseline", "schema version 2"),
    ("state-other-version", {"state": other_version}, "state", "schema version 2"),
    ("baseline-not-metrics", {"baseline": not_metrics}, "baseline", "not a metrics JSON"),
    ("baseline-not-json", {"baseline": not_json}, "baseline", "not JSON"),
    ("baseline-missing", {"baseline": missing}, "baseline", "cannot read"),
    ("bad-regex", {"build-job-pattern": "(build"}, "build-job-pattern", "regular expression"),
    ("rate-above-one", {"max-failure-rate": "5"}, "max-failure-rate", "percentage"),
    ("negative-minutes", {"max-build-minutes": "-3"}, "max-build-minutes", "positive"),
    ("zero-requests", {"max-requests": "0"}, "max-requests", "whole number"),
    ("sample-not-a-number", {"pull-sample": "many"}, "pull-sample", "whole number"),
    ("boolean", {"fail-on-threshold": "yes"}, "fail-on-threshold", "true"),
    ("repository", {"repository": "not a repo"}, "repository", "owner/name"),
    ("package", {"package": "Charon"}, "package", "lowercase"),
    ("dump-and-from-dump", {"dump": "a.json", "from-dump": missing}, "dump", "from-dump is set"),
    ("from-dump-missing", {"from-dump": missing}, "from-dump", "cannot read"),
    ("from-dump-not-a-dump", {"from-dump": not_metrics}, "from-dump", "not a metrics dump"),
    ("since-duration", {"since": "7x", "until": ""}, "since", "duration"),
]


@pytest.mark.parametrize(("inputs", "name", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_input_is_one_clear_error_and_nothing_is_written(
    gh: FakeGitHub, tmp_path: Path, inputs: dict[str, str | Callable[[Path], str]], name: str, words: str
) -> None:
    given = {key: value(tmp_path) if callable(value) else value for key, value in inputs.items()}
    result = run_metrics(gh, tmp_path / "out", **{**WINDOW, **given})
    assert result.code == 1
    assert len(result.errors) == 1, result.stdout
    error = result.errors[0]
    assert error.properties["title"] == f"Invalid input '{name}'"
    assert f"Input '{name}'" in error.message and words in error.message, error.message
    assert "Traceback" not in result.stdout
    assert result.outputs == {} and result.reports == [] and result.summary == ""


def test_a_state_of_another_repository_is_refused(gh: FakeGitHub, tmp_path: Path) -> None:
    first = run_metrics(gh, tmp_path / "one", **WINDOW)
    document = first.doc
    document["repository"] = "someone/else"
    state = tmp_path / "other.json"
    state.write_text(json.dumps(document))
    result = run_metrics(gh, tmp_path / "two", **WINDOW, state=str(state))
    assert result.code == 1 and [e.properties["title"] for e in result.errors] == ["Invalid input 'state'"]
    assert "acme/app" in result.errors[0].message


def test_an_api_refusal_is_one_error_not_a_traceback(gh: FakeGitHub, tmp_path: Path) -> None:
    result = run_metrics(gh, tmp_path, env={"GITHUB_TOKEN": "ghp_unknown"}, **WINDOW)
    assert result.code == 1 and len(result.errors) == 1
    assert result.errors[0].properties["title"] == "GitHub rejected the token (401)"
    assert result.reports == [] and result.outputs == {}


def test_the_command_line_exits_1_without_a_traceback(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_TOKEN": "ghp_x",
        "GITHUB_API_URL": "http://127.0.0.1:9",
        "INPUT_SINCE": "2026-01-05",
        "INPUT_UNTIL": "2026-01-01",
    }
    done = subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "charon-ci"), "metrics"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 1
    assert done.stdout.strip().splitlines()[-1].startswith("::error title=Invalid input 'until'::")
    assert "Traceback" not in done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []
