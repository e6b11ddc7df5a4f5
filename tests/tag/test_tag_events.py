"""Event payloads into build contexts (charon_ci.tag.events), on the real webhook examples and fixtures
derived from them; and the fixtures' validity against the webhook schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from charon_ci.tag import events
from charon_ci.tag.events import NightlyBuild, PullLookup, PullRequestBuild, RefBuild
from charon_ci.tag.tagging import TagError
from tests.fixtures.events import derive

SHA = "0123456789abcdef0123456789abcdef01234567"
ENV = {"GITHUB_REPOSITORY": "octo-org/octo-repo", "GITHUB_SHA": SHA, "GITHUB_RUN_ID": "777"}


def parse(event: str, payload: dict[str, Any], env: dict[str, str] | None = None, **kw: Any) -> events.BuildContext:
    return events.parse_event(event, payload, ENV if env is None else env, **kw)


@pytest.mark.parametrize("name", sorted(p.name for p in derive.HERE.glob("*.json")))
def test_every_fixture_is_valid_against_the_webhook_schema(name: str) -> None:
    event_name, payload = derive.static_fixtures()[name]
    assert json.loads((derive.HERE / name).read_text()) == payload, "regenerate: python -m tests.fixtures.events.derive"
    if event_name == "schedule":
        with pytest.raises(LookupError):  # not a webhook: the schema has no definition to hold it to
            derive.validate(event_name, payload)
        assert isinstance(payload["schedule"], str)
        return
    assert derive.validate(event_name, payload)


def test_fixture_validation_can_fail() -> None:
    broken = derive.fixture("workflow_run.completed.fork-pr.json")
    broken["workflow_run"]["pull_requests"] = [{"number": "42"}]
    with pytest.raises(Exception, match=r"required property|is not of type"):
        derive.validate("workflow_run", broken)


@pytest.mark.parametrize(
    "name",
    ["pull_request.opened.12.json", "pull_request.opened.13.json", "pull_request.opened.14.json",
     "pull_request.synchronize.22.json", "pull_request.reopened.18.json", "pull_request.reopened.19.json",
     "pull_request.closed.3.json", "pull_request.closed.4.json"],
)  # fmt: skip
@pytest.mark.parametrize("event_name", ["pull_request", "pull_request_target"])
def test_pull_request_uses_the_head_commit_not_the_merge_commit(name: str, event_name: str) -> None:
    context = parse(event_name, derive.shared(name))
    assert context.build == PullRequestBuild("ec26c3e57ca3a959ca5aad62de7213c562f8c821", 2)
    assert context.sha != ENV["GITHUB_SHA"]  # GITHUB_SHA is the merge commit for pull_request
    assert context.pr_number == 2


def test_push_of_a_branch_and_of_a_tag() -> None:
    branch = parse("push", derive.shared("push.4.json"))
    assert branch.build == RefBuild("master", "branch", "6113728f27ae82c7b1a177c8d03f9e96e0adf246")
    assert (branch.ref, branch.branch) == ("refs/heads/master", "master")
    tag = parse("push", derive.fixture("push.tag-release.json"))
    assert tag.build == RefBuild("v1.2.3", "tag", "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678")
    assert tag.branch is None


@pytest.mark.parametrize("name", ["push.1.json", "push.2.json", "push.3.json", "push.6.json"])
def test_push_that_deleted_the_ref_is_refused(name: str) -> None:
    with pytest.raises(TagError, match="deleted 'refs/tags/simple-tag'"):
        parse("push", derive.shared(name))


def test_push_without_after_falls_back_to_github_sha() -> None:
    payload = derive.shared("push.4.json")
    del payload["after"]
    assert parse("push", payload).sha == SHA
    with pytest.raises(TagError, match="40-hex"):
        parse("push", payload, {**ENV, "GITHUB_SHA": ""})


@pytest.mark.parametrize("ref", ["refs/pull/1/merge", "master", "refs/heads/", "refs/remotes/x"])
def test_push_of_an_unsupported_ref_is_refused(ref: str) -> None:
    with pytest.raises(TagError, match="refs/heads/<branch> or refs/tags/<tag>"):
        parse("push", derive.push(ref, SHA))


@pytest.mark.parametrize("name", ["release.published.10.json", "release.published.11.json"])
def test_release(name: str) -> None:
    context = parse("release", derive.shared(name))
    assert context.build == RefBuild("0.0.1", "tag", SHA, False)
    assert context.ref == "refs/tags/0.0.1"


def test_deleted_release_is_refused() -> None:
    payload = derive.shared("release.published.10.json") | {"action": "deleted"}
    with pytest.raises(TagError, match="no build"):
        parse("release", payload)


def test_schedule_and_nightly_dispatch_need_the_run_id_for_their_date() -> None:
    assert parse("schedule", derive.fixture("schedule.json")).build == NightlyBuild(SHA, None, 777)
    dispatch = derive.fixture("workflow_dispatch.nightly.json")
    assert parse("workflow_dispatch", dispatch, nightly=True).build == NightlyBuild(SHA, None, 777)


def test_dispatch_without_nightly_is_a_build_of_its_ref() -> None:
    payload = derive.shared("workflow_dispatch.1.json")
    assert parse("workflow_dispatch", payload).build == RefBuild("master", "branch", SHA)
    tag = parse("workflow_dispatch", payload, {**ENV, "GITHUB_REF": "refs/tags/v3.1.4"})
    assert tag.build == RefBuild("v3.1.4", "tag", SHA)
    assert parse("repository_dispatch", derive.repository_dispatch("main"), {**ENV, "GITHUB_REF": "refs/heads/main"}
                 ).build == RefBuild("main", "branch", SHA)  # fmt: skip


@pytest.mark.parametrize("name", ["create.1.json", "create.2.json", "create.3.json", "create.4.json"])
def test_unsupported_events_are_refused(name: str) -> None:
    with pytest.raises(TagError, match="does not tag 'create' events; supported: pull_request"):
        parse("create", derive.shared(name))


# --- workflow_run -------------------------------------------------------------------------------------------


def test_workflow_run_examples_rebuild_the_upstream_repository_dispatch() -> None:
    for name in ("workflow_run.completed.1.json", "workflow_run.completed.2.json"):
        context = parse("workflow_run", derive.shared(name), {})
        assert context.source_event == "repository_dispatch"
        assert context.build == RefBuild("master", "branch", "3484a3fb816e0859fd6e1cea078d76385ff50625")
        assert context.repository == "octo-org/octo-repo"  # from the payload when GITHUB_REPOSITORY is unset
        assert context.upstream is not None and context.upstream.run_id == 289782451
        assert context.warnings == ()


@pytest.mark.parametrize("name", ["workflow_run.requested.3.json", "workflow_run.requested.4.json"])
def test_upstream_that_did_not_succeed_gives_a_warning(name: str) -> None:
    context = parse("workflow_run", derive.shared(name))
    assert len(context.warnings) == 1 and "not 'success'" in context.warnings[0]


def test_same_repository_pr_comes_from_pull_requests_matching_the_head_sha() -> None:
    entries = [(7, "f" * 40, "other"), (8, SHA, "feature/x")]
    payload = derive.workflow_run("pull_request", "feature/x", SHA, pull_requests=entries)
    assert parse("workflow_run", payload).build == PullRequestBuild(SHA, 8)


def test_two_prs_with_the_run_commit_as_head_are_refused() -> None:
    payload = derive.workflow_run("pull_request", "f", SHA, pull_requests=[(7, SHA, "f"), (8, SHA, "f")])
    with pytest.raises(TagError, match=r"pull requests \[7, 8\]"):
        parse("workflow_run", payload)


def test_fork_pr_needs_a_lookup() -> None:
    context = parse("workflow_run", derive.fixture("workflow_run.completed.fork-pr.json"))
    assert context.build == PullRequestBuild(
        derive.FORK_HEAD_SHA, None, PullLookup("octo-org/octo-repo", "forker", "feature/dns", derive.FORK_HEAD_SHA)
    )


def test_pr_entry_whose_head_moved_on_is_not_taken() -> None:
    payload = derive.workflow_run("pull_request", "f", SHA, pull_requests=[(7, "e" * 40, "f")])
    build = parse("workflow_run", payload).build
    assert isinstance(build, PullRequestBuild) and build.number is None and build.lookup is not None


def test_pull_request_target_upstream_is_refused() -> None:
    with pytest.raises(TagError, match="base branch's commit"):
        parse("workflow_run", derive.workflow_run("pull_request_target", "main", SHA, pull_requests=[(3, SHA, "x")]))


def test_upstream_push_and_release() -> None:
    push = parse("workflow_run", derive.workflow_run("push", "v1.2.3", SHA))
    assert push.build == RefBuild("v1.2.3", None, SHA)
    release = parse("workflow_run", derive.workflow_run("release", "v1.2.3", SHA))
    assert release.build == RefBuild("v1.2.3", "tag", SHA)


def test_upstream_schedule_is_dated_by_the_run_created_at() -> None:
    context = parse("workflow_run", derive.fixture("workflow_run.completed.schedule.json"))
    assert context.build == NightlyBuild("c1b2c3d4e5f60718293a4b5c6d7e8f9012345678", "2026-02-04T23:59:58Z", 30433643)


def test_upstream_dispatch_is_nightly_only_when_the_consumer_says_so() -> None:
    payload = derive.workflow_run("workflow_dispatch", "main", SHA)
    assert parse("workflow_run", payload).build == RefBuild("main", None, SHA)
    assert isinstance(parse("workflow_run", payload, nightly=True).build, NightlyBuild)


@pytest.mark.parametrize("event", ["workflow_run", "merge_group", "issue_comment"])
def test_unsupported_upstream_events_are_refused(event: str) -> None:
    with pytest.raises(TagError, match="can rebuild the tags of"):
        parse("workflow_run", derive.workflow_run(event, "main", SHA))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p["workflow_run"].update(head_sha="abc"), "workflow_run.head_sha must be a 40-hex"),
        (lambda p: p["workflow_run"].update(head_sha=None), "no usable workflow_run.head_sha"),
        (lambda p: p["workflow_run"].update(id=True), "no usable workflow_run.id"),
        (lambda p: p["workflow_run"].update(event=["push"]), "no usable workflow_run.event"),
        (lambda p: p.pop("workflow_run"), "no usable workflow_run.id"),
        (lambda p: p["workflow_run"].update(head_branch=None), "head_branch is empty"),
        (lambda p: p["workflow_run"].update(pull_requests="x"), "no usable workflow_run.pull_requests"),
    ],
)
def test_malformed_workflow_run_payloads_are_refused(mutate: Any, message: str) -> None:
    payload = derive.workflow_run("push", "main", SHA)
    mutate(payload)
    if "pull_requests" in message:
        payload["workflow_run"]["event"] = "pull_request"
    with pytest.raises(TagError, match=message):
        parse("workflow_run", payload)


@pytest.mark.parametrize(
    ("number", "ok"), [(1, True), (0, False), (-3, False), (True, False), (2.0, False), ("2", False), (2**60, False)]
)
def test_pr_numbers_must_be_positive_integers(number: Any, ok: bool) -> None:
    payload = derive.shared("pull_request.opened.12.json")
    payload["pull_request"]["number"] = number
    if ok:
        assert parse("pull_request", payload).pr_number == number
    else:
        with pytest.raises(TagError, match=r"pull_request\.number"):
            parse("pull_request", payload)


def test_repository_must_be_owner_slash_name() -> None:
    with pytest.raises(TagError, match="GITHUB_REPOSITORY must be owner/name"):
        parse("push", derive.shared("push.4.json"), {**ENV, "GITHUB_REPOSITORY": "a/b/c"})


@pytest.mark.parametrize(
    ("stamp", "date"),
    [("2026-02-04T23:59:58Z", "2026-02-04"), ("2026-02-04T23:30:00-02:00", "2026-02-05"),
     ("2026-02-05T00:30:00+01:00", "2026-02-04"), ("2026-02-04T10:00:00.123Z", "2026-02-04")],
)  # fmt: skip
def test_utc_date(stamp: str, date: str) -> None:
    assert events.utc_date(stamp, "x") == date


@pytest.mark.parametrize("stamp", ["2026-02-04", "2026-13-01T00:00:00Z", "yesterday", "2026-02-04T25:00:00Z"])
def test_utc_date_refuses_non_timestamps(stamp: str) -> None:
    with pytest.raises(TagError, match=r"timestamp|real date"):
        events.utc_date(stamp, "x")


def test_read_event_errors(tmp_path: Path) -> None:
    with pytest.raises(TagError, match="GITHUB_EVENT_NAME is not set"):
        events.read_event({})
    with pytest.raises(TagError, match="GITHUB_EVENT_PATH is not set"):
        events.read_event({"GITHUB_EVENT_NAME": "push"})
    with pytest.raises(TagError, match="cannot be read"):
        events.read_event({"GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": str(tmp_path / "missing.json")})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TagError, match="not valid JSON"):
        events.read_event({"GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": str(bad)})
    bad.write_text("[" * 100_000)
    with pytest.raises(TagError, match="nested too deeply"):
        events.read_event({"GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": str(bad)})
    bad.write_text("[1, 2]")
    with pytest.raises(TagError, match="JSON object"):
        events.read_event({"GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": str(bad)})
