"""The API look-ups of action-tag (a fork's PR number, a nightly run's date) against the fake GitHub."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from charon_ci import gha
from charon_ci.github import GithubClient
from charon_ci.tag import command as tag
from charon_ci.tag import lookups
from charon_ci.tag.events import PullLookup
from tests.fixtures.events import derive
from tests.support.composite import parse_commands, parse_file_command
from tests.support.fakegithub import FakeGitHub

HEAD = derive.FORK_HEAD_SHA
REPO = "octo-org/octo-repo"
LOOKUP = PullLookup(REPO, derive.FORK_OWNER, derive.FORK_BRANCH, HEAD)


def pull(number: int, sha: str, *, state: str = "open", owner: str = "forker") -> dict[str, Any]:
    return {"number": number, "state": state, "head": {"sha": sha, "repo": {"owner": {"login": owner}}}}


def test_choose_pull_request() -> None:
    assert lookups.choose_pull_request([], HEAD) is None
    assert lookups.choose_pull_request([pull(1, "e" * 40), pull(2, HEAD)], HEAD) == 2
    assert lookups.choose_pull_request([pull(1, HEAD, state="closed"), pull(2, HEAD)], HEAD) == 2
    assert lookups.choose_pull_request([pull(1, HEAD, owner="x"), pull(2, HEAD)], HEAD, "forker") == 2
    assert lookups.choose_pull_request([pull(3, HEAD.upper())], HEAD) == 3
    # Junk from the API is skipped, never trusted.
    assert (
        lookups.choose_pull_request([{"number": "4", "head": {"sha": HEAD}}, None, pull(0, HEAD)], HEAD) is None
    )
    with pytest.raises(gha.ActionFailure, match=r"pull requests \[1, 2\]"):
        lookups.choose_pull_request([pull(1, HEAD), pull(2, HEAD)], HEAD)
    with pytest.raises(gha.ActionFailure, match="refusing to guess"):
        lookups.choose_pull_request([pull(1, HEAD, state="closed"), pull(2, HEAD, state="closed")], HEAD)


def client(gh: FakeGitHub) -> GithubClient:
    return GithubClient(gh.token, api_url=gh.url, sleep=lambda _s: None)


def test_fork_pr_found_by_head_branch_with_state_all(fake_github: FakeGitHub) -> None:
    fake_github.add_repo(REPO)
    fake_github.add_pull(REPO, derive.FORK_BRANCH, head_sha="1" * 40, head_owner="forker", number=40, state="closed")
    fake_github.add_pull(REPO, "feature/dns", head_sha=HEAD, head_owner="someone-else", number=41)
    fake_github.add_pull(REPO, derive.FORK_BRANCH, head_sha=HEAD, head_owner="forker", number=42)
    with client(fake_github) as api:
        assert lookups.find_pull_request(api, LOOKUP) == 42
    [call] = fake_github.calls("GET", operation="pulls/list")
    assert call.query["head"] == ["forker:feature/dns"] and call.query["state"] == ["all"]


def test_fork_pr_found_among_open_prs_when_the_branch_filter_finds_none(fake_github: FakeGitHub) -> None:
    fake_github.add_repo(REPO)
    fake_github.add_pull(REPO, "renamed", head_sha=HEAD, head_owner="forker", number=43)
    with client(fake_github) as api:
        assert lookups.find_pull_request(api, LOOKUP) == 43
    assert [c.query.get("state") for c in fake_github.calls("GET", operation="pulls/list")] == [["all"], ["open"]]


def test_pr_whose_head_moved_on_is_not_guessed(fake_github: FakeGitHub) -> None:
    fake_github.add_repo(REPO)
    fake_github.add_pull(REPO, derive.FORK_BRANCH, head_sha="2" * 40, head_owner="forker", number=42)
    with client(fake_github) as api, pytest.raises(gha.ActionFailure, match="No pull request of octo-org/octo-repo"):
        lookups.find_pull_request(api, LOOKUP)


def test_refused_lookup_names_the_permission(fake_github: FakeGitHub) -> None:
    fake_github.add_repo(REPO, private=True)
    anonymous = GithubClient("", api_url=fake_github.url, sleep=lambda _s: None)
    with anonymous as api, pytest.raises(gha.ActionFailure, match="pull-requests: read"):
        lookups.find_pull_request(api, LOOKUP)


def test_run_created_at(fake_github: FakeGitHub) -> None:
    run = fake_github.add_run(REPO, "build.yml", event="schedule", created_at="2026-02-04T23:59:58Z")
    with client(fake_github) as api:
        assert lookups.run_created_at(api, REPO, run.id) == "2026-02-04T23:59:58Z"
        with pytest.raises(gha.ActionFailure, match="actions: read"):
            lookups.run_created_at(api, REPO, run.id + 1000)


# --- through the command ------------------------------------------------------------------------------------


def run_command(tmp_path: Path, gh: FakeGitHub, event_name: str, payload: Any, capsys: Any, **env: str) -> Any:
    event = tmp_path / f"{event_name}.json"
    event.write_text(json.dumps(payload))
    output = tmp_path / f"{event_name}.out"
    environ = {
        "GITHUB_EVENT_NAME": event_name, "GITHUB_EVENT_PATH": str(event), "GITHUB_REPOSITORY": REPO,
        "GITHUB_SHA": "9" * 40, "GITHUB_OUTPUT": str(output), "GITHUB_API_URL": gh.url, "INPUT_GITHUB-TOKEN": gh.token,
        **env,
    }  # fmt: skip
    code = gha.run_action(lambda: tag.main(environ), environ)
    stdout = capsys.readouterr().out
    return code, parse_file_command(output.read_text()) if output.exists() else {}, parse_commands(stdout)


def test_fork_pr_upstream_and_consumer_agree(tmp_path: Path, fake_github: FakeGitHub, capsys: Any) -> None:
    fake_github.add_repo(REPO)
    fake_github.add_pull(REPO, derive.FORK_BRANCH, head_sha=HEAD, head_owner="forker", number=derive.FORK_PR)
    code, built, _ = run_command(tmp_path, fake_github, "pull_request", derive.fixture("pull_request.opened.fork.json"),
                                 capsys)  # fmt: skip
    assert code == 0 and built["tag"] == "pr-42-f0e1d2c"
    assert fake_github.requests == []  # the build itself needs no API call
    code, consumed, commands = run_command(tmp_path, fake_github, "workflow_run",
                                           derive.fixture("workflow_run.completed.fork-pr.json"), capsys)  # fmt: skip
    assert code == 0, commands
    assert {k: v for k, v in consumed.items() if k not in {"labels", "json"}} == {
        k: v for k, v in built.items() if k not in {"labels", "json"}
    }
    assert consumed["pr-number"] == "42"
    assert commands[0].name == "add-mask"  # the token is masked before any request
    assert {c.name for c in commands} <= {"add-mask", "debug"}


def test_nightly_build_and_consumer_agree_across_midnight(tmp_path: Path, fake_github: FakeGitHub, capsys: Any) -> None:
    consumer = derive.fixture("workflow_run.completed.schedule.json")
    run = fake_github.add_run(REPO, "build.yml", event="schedule", created_at=consumer["workflow_run"]["created_at"])
    consumer["workflow_run"]["id"] = run.id
    sha = consumer["workflow_run"]["head_sha"]
    code, built, _ = run_command(tmp_path, fake_github, "schedule", derive.fixture("schedule.json"), capsys,
                                 GITHUB_SHA=sha, GITHUB_RUN_ID=str(run.id))  # fmt: skip
    assert code == 0
    assert built["tag-names"] == "nightly\nnightly-2026-02-04"
    assert fake_github.count("GET", operation="actions/get-workflow-run") == 1
    code, consumed, _ = run_command(tmp_path, fake_github, "workflow_run", consumer, capsys)
    assert code == 0
    assert (consumed["tag"], consumed["tag-names"], consumed["sha"]) == (built["tag"], built["tag-names"], sha)
    assert fake_github.count("GET", operation="actions/get-workflow-run") == 1  # the consumer reads its payload


def test_nightly_without_a_run_id_is_refused(tmp_path: Path, fake_github: FakeGitHub, capsys: Any) -> None:
    code, outputs, commands = run_command(tmp_path, fake_github, "schedule", derive.fixture("schedule.json"), capsys)
    assert code == 1 and outputs == {}
    assert [c.properties.get("title") for c in commands if c.name == "error"] == ["No run id"]


def test_fork_pr_ambiguous_through_the_api_is_one_error_and_no_outputs(
    tmp_path: Path, fake_github: FakeGitHub, capsys: Any
) -> None:
    # One fork branch opened against two base branches: both PRs have the run's commit as head.
    fake_github.add_repo(REPO)
    fake_github.add_pull(REPO, derive.FORK_BRANCH, head_sha=HEAD, head_owner="forker", number=42)
    fake_github.add_pull(REPO, derive.FORK_BRANCH, head_sha=HEAD, head_owner="forker", number=43, base_ref="release")
    code, outputs, commands = run_command(tmp_path, fake_github, "workflow_run",
                                          derive.fixture("workflow_run.completed.fork-pr.json"), capsys)  # fmt: skip
    assert code == 1 and outputs == {}
    [error] = [c for c in commands if c.name == "error"]
    assert error.properties.get("title") == "Ambiguous pull request" and "[42, 43]" in error.message
    assert fake_github.count("GET", operation="pulls/list") == 1  # the branch filter found both: no fallback


@pytest.mark.parametrize("number", [10**200, 2**53 + 1])
def test_fork_pr_number_from_the_api_is_bounded_like_the_payloads(
    tmp_path: Path, fake_github: FakeGitHub, capsys: Any, number: int
) -> None:
    """A PR number the API answers is checked as the event payload's is (at most 2**53): one clear error,
    not an internal one, and no outputs."""
    fake_github.add_repo(REPO)
    fake_github.add_pull(REPO, derive.FORK_BRANCH, head_sha=HEAD, head_owner="forker", number=number)
    code, outputs, commands = run_command(tmp_path, fake_github, "workflow_run",
                                          derive.fixture("workflow_run.completed.fork-pr.json"), capsys)  # fmt: skip
    assert code == 1 and outputs == {}
    [error] = [c for c in commands if c.name == "error"]
    assert error.properties.get("title") == "Pull request lookup failed", error
    assert "not a pull request number" in error.message and "internal" not in str(error.properties)
