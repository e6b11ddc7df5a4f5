"""action-tag end to end: `action-tag/action.yml` run the way the runner runs it (composite harness), once
for the build's own event and once as a `workflow_run` consumer of that build; both must give the same tags.

Every payload is one of the real examples in shared/github-rest/events/ or derived from one, and is validated
against its webhook schema definition before it is used.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.events import derive
from tests.support.composite import ActionRunner
from tests.support.composite_fixtures import REPO_ROOT
from tests.support.fakegithub import FakeGitHub

ACTION = REPO_ROOT / "action-tag"
REPO = "octo-org/octo-repo"
SHA = "5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b"
DEFAULT_BRANCH_SHA = "dddddddddddddddddddddddddddddddddddddddd"  # GITHUB_SHA of a workflow_run consumer
MERGE_SHA = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"  # GITHUB_SHA of a pull_request run
IMAGES = "ghcr.io/octo-org/app\nghcr.io/octo-org/app-debug"
COMPARED = ("tag", "artifact-name", "tag-names", "tags", "sha", "short-sha", "pr-number", "kind")

# A case's `setup` prepares the fake GitHub and may patch the payloads (the run id of a nightly).
Setup = Callable[[FakeGitHub, "Case"], None]


class Case:
    def __init__(
        self,
        case_id: str,
        event: str,
        payload: dict[str, Any],
        consumer: dict[str, Any],
        expected: tuple[str, ...],
        kind: str,
        *,
        env: dict[str, str] | None = None,
        inputs: dict[str, str] | None = None,
        consumer_inputs: dict[str, str] | None = None,
        setup: Setup | None = None,
        api_calls: bool = False,
    ) -> None:
        self.id = case_id
        self.event = event
        self.payload = payload
        self.consumer = consumer
        self.expected = expected
        self.kind = kind
        self.env = env or {}
        self.inputs = inputs or {}
        self.consumer_inputs = self.inputs if consumer_inputs is None else consumer_inputs
        self.setup = setup
        self.api_calls = api_calls


def push_case(case_id: str, ref: str, expected: tuple[str, ...], kind: str, **options: Any) -> Case:
    name = ref.split("/", 2)[2]
    return Case(case_id, "push", derive.push(ref, SHA), derive.workflow_run("push", name, SHA), expected, kind,
                **options)  # fmt: skip


def pr_case(case_id: str, base: str, number: int, head_ref: str, expected: str) -> Case:
    payload = derive.pull_request(number, SHA, head_ref, base=base)
    consumer = derive.workflow_run("pull_request", head_ref, SHA, pull_requests=[(number, SHA, head_ref)])
    return Case(case_id, payload_event(base), payload, consumer, (expected,), "pr", env={"GITHUB_SHA": MERGE_SHA})


def payload_event(base: str) -> str:
    return base.split(".", 1)[0]


def fork_setup(gh: FakeGitHub, _case: Case) -> None:
    gh.add_repo(REPO)
    gh.add_pull(REPO, derive.FORK_BRANCH, head_sha="0" * 40, head_owner=derive.FORK_OWNER, number=7, state="closed")
    gh.add_pull(REPO, derive.FORK_BRANCH, head_sha=derive.FORK_HEAD_SHA, head_owner=derive.FORK_OWNER,
                number=derive.FORK_PR)  # fmt: skip


def nightly_setup(gh: FakeGitHub, case: Case) -> None:
    run = gh.add_run(REPO, "build.yml", event=case.consumer["workflow_run"]["event"],
                     created_at=case.consumer["workflow_run"]["created_at"])  # fmt: skip
    case.env["GITHUB_RUN_ID"] = str(run.id)
    case.consumer["workflow_run"]["id"] = run.id


def sha7(sha: str = SHA) -> str:
    return sha[:7]


def cases() -> list[Case]:
    s = sha7()
    pr_bases = ["pull_request.opened.12.json", "pull_request.opened.13.json", "pull_request.opened.14.json",
                "pull_request.synchronize.22.json", "pull_request.reopened.18.json", "pull_request.reopened.19.json",
                "pull_request.closed.3.json", "pull_request.closed.4.json"]  # fmt: skip
    table = [pr_case(f"pr-{base.removesuffix('.json')}", base, 2, "changes", f"pr-2-{s}") for base in pr_bases]
    table += [
        pr_case("pr-hotfix-branch", "pull_request.opened.12.json", 1234, "HOTFIX/Critical-Bug", f"pr-1234-{s}"),
        Case("pr-from-fork", "pull_request", derive.fixture("pull_request.opened.fork.json"),
             derive.fixture("workflow_run.completed.fork-pr.json"), (f"pr-42-{sha7(derive.FORK_HEAD_SHA)}",), "pr",
             env={"GITHUB_SHA": MERGE_SHA}, setup=fork_setup, api_calls=True),
        push_case("push-main", "refs/heads/main", ("latest", f"sha-{s}"), "main"),
        push_case("push-main-input", "refs/heads/master", ("latest", f"sha-{s}"), "main",
                  inputs={"main-branch": "master"}),
        push_case("push-dev", "refs/heads/development", ("dev", f"sha-{s}"), "dev"),
        push_case("push-dev-input", "refs/heads/next", ("dev", f"sha-{s}"), "dev", inputs={"dev-branch": "next"}),
        push_case("push-master-is-a-branch", "refs/heads/master", (f"master-{s}",), "branch"),
        push_case("spec-1", "refs/heads/feature/Add_New-Feature", (f"feature-add-new-feature-{s}",), "branch"),
        push_case("spec-2", "refs/heads/feature/dns/subdomain", (f"feature-dns-subdomain-{s}",), "branch"),
        push_case("spec-3", "refs/heads/feature/fix-#123", (f"feature-fix-123-{s}",), "branch"),
        push_case("spec-4", "refs/heads/HOTFIX/Critical-Bug", (f"hotfix-critical-bug-{s}",), "branch"),
        push_case("spec-5", "refs/heads/dependabot/npm_and_yarn/frontend/vite-5.0.12",
                  (f"dependabot-npm-and-yarn-frontend-vite-5-0-12-{s}",), "branch"),
        push_case("push-hostile-branch", 'refs/heads/zzz";echo${IFS}"hello";#', (f"zzz-echo-ifs-hello-{s}",), "branch"),
        push_case("push-10000-chars", "refs/heads/" + "x" * 10_000, ("x" * 120 + f"-{s}",), "branch"),
        push_case("push-unicode-only", "refs/heads/日本語", (f"branch-{s}",), "branch"),
        push_case("push-release-branch", "refs/heads/release/1.2.3", (f"release-1-2-3-{s}",), "branch"),
        push_case("push-tag-no-v", "refs/tags/1.2.3", ("1.2.3", "1.2"), "release"),
        push_case("push-tag-build-metadata", "refs/tags/v1.2.3+build.5", ("v1.2.3_build.5", "1.2"), "release"),
        push_case("push-tag-not-a-version", "refs/tags/simple-tag", (f"simple-tag-{s}",), "branch"),
        Case("push-tag-release", "push", derive.fixture("push.tag-release.json"),
             derive.workflow_run("push", "v1.2.3", "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"), ("v1.2.3", "1.2"),
             "release"),
        Case("push-tag-prerelease", "push", derive.fixture("push.tag-prerelease.json"),
             derive.workflow_run("push", "v2.0.0-rc.1", "b1b2c3d4e5f60718293a4b5c6d7e8f9012345678"),
             ("v2.0.0-rc.1",), "release"),
    ]  # fmt: skip
    for base in ("release.published.10.json", "release.published.11.json"):
        table.append(Case(f"release-{base.removesuffix('.json')}", "release", derive.shared(base),
                          derive.workflow_run("release", "0.0.1", SHA), ("0.0.1", "0.0"), "release",
                          env={"GITHUB_SHA": SHA, "GITHUB_REF": "refs/tags/0.0.1"}))  # fmt: skip
    table += [
        Case("release-prerelease", "release", derive.fixture("release.published.prerelease.json"),
             derive.workflow_run("release", "v2.0.0-rc.1", SHA), ("v2.0.0-rc.1",), "release",
             env={"GITHUB_SHA": SHA}),
        Case("schedule-across-midnight", "schedule", derive.fixture("schedule.json"),
             derive.fixture("workflow_run.completed.schedule.json"), ("nightly", "nightly-2026-02-04"), "nightly",
             env={"GITHUB_SHA": "c1b2c3d4e5f60718293a4b5c6d7e8f9012345678"}, setup=nightly_setup, api_calls=True),
        Case("dispatch-nightly", "workflow_dispatch", derive.fixture("workflow_dispatch.nightly.json"),
             derive.workflow_run("workflow_dispatch", "main", SHA, created_at="2026-03-01T00:00:01+01:00"),
             ("nightly", "nightly-2026-02-28"), "nightly", env={"GITHUB_SHA": SHA, "GITHUB_REF": "refs/heads/main"},
             inputs={"nightly": "true"}, setup=nightly_setup, api_calls=True),
        Case("dispatch-branch", "workflow_dispatch", derive.shared("workflow_dispatch.1.json"),
             derive.workflow_run("workflow_dispatch", "master", SHA), ("latest", f"sha-{s}"), "main",
             env={"GITHUB_SHA": SHA, "GITHUB_REF": "refs/heads/master"}, inputs={"main-branch": "master"}),
        Case("dispatch-tag", "workflow_dispatch", derive.workflow_dispatch("refs/tags/v3.1.4"),
             derive.workflow_run("workflow_dispatch", "v3.1.4", SHA), ("v3.1.4", "3.1"), "release",
             env={"GITHUB_SHA": SHA, "GITHUB_REF": "refs/tags/v3.1.4"}),
    ]  # fmt: skip
    # The real workflow_run examples report on a repository_dispatch run of master at 3484a3f.
    for example in ("workflow_run.completed.1.json", "workflow_run.completed.2.json"):
        sha = "3484a3fb816e0859fd6e1cea078d76385ff50625"
        table.append(Case(f"repository-dispatch-{example.removesuffix('.json')}", "repository_dispatch",
                          derive.repository_dispatch("master"), derive.shared(example), ("latest", f"sha-{sha7(sha)}"),
                          "main", env={"GITHUB_SHA": sha, "GITHUB_REF": "refs/heads/master"},
                          inputs={"main-branch": "master"}))  # fmt: skip
    return table


CASES = cases()


def test_the_table_is_large_enough_and_covers_every_kind() -> None:
    assert len(CASES) >= 30
    assert len({case.id for case in CASES}) == len(CASES)
    assert {case.kind for case in CASES} == {"pr", "main", "dev", "branch", "release", "nightly"}
    assert {case.event for case in CASES} >= {"pull_request", "push", "release", "schedule", "workflow_dispatch",
                                              "repository_dispatch"}  # fmt: skip


def run_action(runner: ActionRunner, tmp_path: Path, gh: FakeGitHub, event: str, payload: dict[str, Any],
               inputs: dict[str, str], env: dict[str, str]) -> Any:  # fmt: skip
    event_path = tmp_path / f"{event}-{len(list(tmp_path.iterdir()))}.json"
    event_path.write_text(json.dumps(payload))
    job_env = {**gh.env(), "GITHUB_EVENT_NAME": event, "GITHUB_EVENT_PATH": str(event_path),
               "GITHUB_REPOSITORY": REPO, "SOURCE_DATE_EPOCH": "1770000000", **env}  # fmt: skip
    return runner.run(ACTION, {"images": IMAGES, **inputs}, env=job_env)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_build_and_workflow_run_consumer_give_the_same_tags(
    case: Case, action_runner: ActionRunner, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    if case.setup is not None:
        case.setup(fake_github, case)
    if case.event != "schedule":
        derive.validate(case.event, case.payload)
    derive.validate("workflow_run", case.consumer)

    built = run_action(action_runner, tmp_path, fake_github, case.event, case.payload, case.inputs, case.env)
    assert built.succeeded, built.stdout + built.stderr
    assert tuple(built.outputs["tag-names"].splitlines()) == case.expected
    assert built.outputs["kind"] == case.kind
    assert built.outputs["tags"].splitlines() == [
        f"{image}:{t}" for image in IMAGES.splitlines() for t in case.expected
    ]
    assert built.errors == []

    consumed = run_action(action_runner, tmp_path, fake_github, "workflow_run", case.consumer, case.consumer_inputs,
                          {"GITHUB_SHA": DEFAULT_BRANCH_SHA, "GITHUB_REF": "refs/heads/main"})  # fmt: skip
    assert consumed.succeeded, consumed.stdout + consumed.stderr
    assert {name: consumed.outputs[name] for name in COMPARED} == {name: built.outputs[name] for name in COMPARED}
    labels = dict(line.split("=", 1) for line in consumed.outputs["labels"].splitlines())
    assert labels["org.opencontainers.image.revision"] == built.outputs["sha"]
    assert consumed.outputs["sha"] != DEFAULT_BRANCH_SHA and built.outputs["sha"] != MERGE_SHA
    assert bool(fake_github.requests) is case.api_calls


def test_hostile_branch_never_reaches_a_shell(action_runner: ActionRunner, fake_github: FakeGitHub,
                                              tmp_path: Path) -> None:  # fmt: skip
    marker = tmp_path / "pwned"
    for name in (f"$(touch {marker})", f"`touch {marker}`", f'";touch {marker};#', f"x\ntouch {marker}"):
        payload = derive.workflow_run("push", name, SHA)
        result = run_action(action_runner, tmp_path, fake_github, "workflow_run", payload, {}, {})
        assert result.succeeded, result.stdout + result.stderr
        assert result.outputs["kind"] == "branch" and result.outputs["tag"].endswith(f"-{sha7()}")
    assert not marker.exists()


def test_refusal_through_the_action_is_one_error_and_no_outputs(action_runner: ActionRunner, fake_github: FakeGitHub,
                                                                tmp_path: Path) -> None:  # fmt: skip
    result = run_action(action_runner, tmp_path, fake_github, "push", derive.push("refs/heads/x", SHA),
                        {"images": "ghcr.io/octo-org/App"}, {})  # fmt: skip
    assert result.exit_code == 1
    assert [e.properties["title"] for e in result.errors] == ["Invalid input 'images'"]
    assert result.outputs == {}
    assert "Traceback" not in result.stdout + result.stderr


def test_action_yml_passes_inputs_only_through_env() -> None:
    definition = yaml.safe_load((ACTION / "action.yml").read_text())
    inputs = set(definition["inputs"])
    assert inputs == {"images", "main-branch", "dev-branch", "nightly", "github-token"}
    assert set(definition["outputs"]) == {"tag", "artifact-name", "tag-names", "tags", "labels", "json", "sha",
                                          "short-sha", "pr-number", "kind"}  # fmt: skip
    assert definition["inputs"]["github-token"]["default"] == "${{ github.token }}"
    steps = definition["runs"]["steps"]
    for step in steps:
        assert "${{" not in step["run"]
    env = steps[-1]["env"]
    assert {f"INPUT_{name.upper()}": f"${{{{ inputs.{name} }}}}" for name in inputs}.items() <= env.items()
