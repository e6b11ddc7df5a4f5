"""State entities -> GitHub JSON objects, built field by field from the OpenAPI schemas.

API URLs point at the fake's own base URL, so a client that follows `url`/`archive_download_url` stays on
loopback; web URLs (`html_url`) use `server_url` (https://github.com unless the test says otherwise).
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from .clock import iso
from .packages import VersionRecord
from .state import Artifact, Job, Package, Pull, Repo, Run, User, Workflow

Json = dict[str, Any]


def node_id(prefix: str, number: int) -> str:
    """A node id shaped like GitHub's current ones (`WFR_kwLO...`); opaque to clients anyway."""
    raw = number.to_bytes(8, "big").lstrip(b"\0") or b"\0"
    return f"{prefix}_kwDO" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _iso_or_none(moment: float | None) -> str | None:
    return None if moment is None else iso(moment)


def package_url_name(name: str) -> str:
    """Package names containing `/` are URL-encoded in paths (`%2F`)."""
    return quote(name, safe="")


@dataclass(frozen=True)
class Urls:
    api: str  # http://127.0.0.1:PORT (no trailing slash)
    web: str = "https://github.com"

    @property
    def git_host(self) -> str:
        return urlsplit(self.web).netloc or "github.com"

    def repo_api(self, repo: Repo) -> str:
        return f"{self.api}/repos/{repo.full_name}"

    def owner_scope(self, owner: User) -> str:
        return "orgs" if owner.type == "Organization" else "users"


def simple_user(user: User, urls: Urls) -> Json:
    api = f"{urls.api}/users/{user.login}"
    return {
        "login": user.login, "id": user.id, "node_id": node_id("O" if user.type == "Organization" else "U", user.id),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{user.id}?v=4", "gravatar_id": "",
        "url": api, "html_url": f"{urls.web}/{user.login}",
        "followers_url": f"{api}/followers", "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}", "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions", "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos", "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events", "type": user.type, "site_admin": False,
        "user_view_type": "public",
    }


def minimal_repository(repo: Repo, urls: Urls) -> Json:
    base = urls.repo_api(repo)
    web = f"{urls.web}/{repo.full_name}"
    return {
        "id": repo.id, "node_id": node_id("R", repo.id), "name": repo.name, "full_name": repo.full_name,
        "owner": simple_user(repo.owner, urls), "private": repo.private, "html_url": web,
        "description": None, "fork": repo.fork, "url": base,
        "archive_url": f"{base}/{{archive_format}}{{/ref}}", "assignees_url": f"{base}/assignees{{/user}}",
        "blobs_url": f"{base}/git/blobs{{/sha}}", "branches_url": f"{base}/branches{{/branch}}",
        "collaborators_url": f"{base}/collaborators{{/collaborator}}", "comments_url": f"{base}/comments{{/number}}",
        "commits_url": f"{base}/commits{{/sha}}", "compare_url": f"{base}/compare/{{base}}...{{head}}",
        "contents_url": f"{base}/contents/{{+path}}", "contributors_url": f"{base}/contributors",
        "deployments_url": f"{base}/deployments", "downloads_url": f"{base}/downloads",
        "events_url": f"{base}/events", "forks_url": f"{base}/forks",
        "git_commits_url": f"{base}/git/commits{{/sha}}", "git_refs_url": f"{base}/git/refs{{/sha}}",
        "git_tags_url": f"{base}/git/tags{{/sha}}", "git_url": f"git://{urls.git_host}/{repo.full_name}.git",
        "issue_comment_url": f"{base}/issues/comments{{/number}}",
        "issue_events_url": f"{base}/issues/events{{/number}}", "issues_url": f"{base}/issues{{/number}}",
        "keys_url": f"{base}/keys{{/key_id}}", "labels_url": f"{base}/labels{{/name}}",
        "languages_url": f"{base}/languages", "merges_url": f"{base}/merges",
        "milestones_url": f"{base}/milestones{{/number}}",
        "notifications_url": f"{base}/notifications{{?since,all,participating}}",
        "pulls_url": f"{base}/pulls{{/number}}", "releases_url": f"{base}/releases{{/id}}",
        "ssh_url": f"git@{urls.git_host}:{repo.full_name}.git", "stargazers_url": f"{base}/stargazers",
        "statuses_url": f"{base}/statuses/{{sha}}", "subscribers_url": f"{base}/subscribers",
        "subscription_url": f"{base}/subscription", "tags_url": f"{base}/tags", "teams_url": f"{base}/teams",
        "trees_url": f"{base}/git/trees{{/sha}}", "clone_url": f"{web}.git", "mirror_url": None,
        "hooks_url": f"{base}/hooks", "svn_url": web, "homepage": None, "language": "Python",
        "forks_count": 0, "stargazers_count": 0, "watchers_count": 0, "size": 1024,
        "default_branch": repo.default_branch, "open_issues_count": 0, "is_template": False, "topics": [],
        "has_issues": True, "has_projects": True, "has_wiki": True, "has_pages": False, "has_downloads": True,
        "has_discussions": False, "archived": False, "disabled": False,
        "visibility": "private" if repo.private else "public",
        "pushed_at": iso(repo.created_at), "created_at": iso(repo.created_at), "updated_at": iso(repo.created_at),
        "allow_forking": True, "web_commit_signoff_required": False,
        "forks": 0, "open_issues": 0, "watchers": 0,
    }


def repository(repo: Repo, urls: Urls) -> Json:
    """The full `repository` object (pull request head/base)."""
    body = minimal_repository(repo, urls)
    body.update({"license": None, "allow_rebase_merge": True, "allow_squash_merge": True,
                 "allow_merge_commit": True, "allow_auto_merge": False, "delete_branch_on_merge": False})
    return body


def _pull_minimal(pull: Pull, urls: Urls) -> Json:
    def side(repo: Repo, ref: str, sha: str) -> Json:
        return {"ref": ref, "sha": sha, "repo": {"id": repo.id, "url": urls.repo_api(repo), "name": repo.name}}

    return {
        "id": pull.id, "number": pull.number, "url": f"{urls.repo_api(pull.repo)}/pulls/{pull.number}",
        "head": side(pull.head_repo, pull.head_ref, pull.head_sha),
        "base": side(pull.repo, pull.base_ref, pull.base_sha),
    }


def workflow_run(run: Run, urls: Urls, exclude_pull_requests: bool = False) -> Json:
    base = f"{urls.repo_api(run.repo)}/actions/runs/{run.id}"
    actor = run.actor or run.repo.owner
    # GitHub leaves pull_requests empty for pull requests from forks.
    pulls = [] if exclude_pull_requests else [_pull_minimal(p, urls) for p in run.pull_requests if not p.from_fork]
    head = run.source_repo
    return {
        "id": run.id, "name": run.workflow.name, "node_id": node_id("WFR", run.id),
        "check_suite_id": run.check_suite_id, "check_suite_node_id": node_id("CS", run.check_suite_id),
        "head_branch": run.head_branch, "head_sha": run.head_sha, "path": run.workflow.path,
        "display_title": run.display_title or run.head_commit_message.splitlines()[0],
        "run_number": run.run_number, "run_attempt": run.run_attempt, "event": run.event,
        "status": run.status, "conclusion": run.conclusion, "workflow_id": run.workflow.id,
        "referenced_workflows": list(run.referenced_workflows),
        "url": base, "html_url": f"{urls.web}/{run.repo.full_name}/actions/runs/{run.id}",
        "pull_requests": pulls, "created_at": iso(run.created_at), "updated_at": iso(run.updated_at),
        "actor": simple_user(actor, urls), "triggering_actor": simple_user(run.triggering_actor or actor, urls),
        "run_started_at": iso(run.run_started_at),
        "jobs_url": f"{base}/jobs", "logs_url": f"{base}/logs",
        "check_suite_url": f"{urls.repo_api(run.repo)}/check-suites/{run.check_suite_id}",
        "artifacts_url": f"{base}/artifacts", "cancel_url": f"{base}/cancel", "rerun_url": f"{base}/rerun",
        "previous_attempt_url": f"{base}/attempts/{run.run_attempt - 1}" if run.run_attempt > 1 else None,
        "workflow_url": f"{urls.repo_api(run.repo)}/actions/workflows/{run.workflow.id}",
        "head_commit": {
            "id": run.head_sha, "tree_id": run.head_sha[::-1], "message": run.head_commit_message,
            "timestamp": iso(run.created_at),
            "author": {"name": actor.login, "email": f"{actor.id}+{actor.login}@users.noreply.github.com"},
            "committer": {"name": "GitHub", "email": "noreply@github.com"},
        },
        "repository": minimal_repository(run.repo, urls), "head_repository": minimal_repository(head, urls),
        "head_repository_id": head.id,
    }


def _step(step: dict[str, object], number: int) -> Json:
    out: Json = {"name": step.get("name", f"Step {number}"), "status": step.get("status", "completed"),
                 "conclusion": step.get("conclusion", "success"), "number": step.get("number", number)}
    for key in ("started_at", "completed_at"):
        value = step.get(key)
        out[key] = iso(value) if isinstance(value, (int, float)) else value
    return out


def job(job: Job, urls: Urls) -> Json:
    run = job.run
    repo_api = urls.repo_api(run.repo)
    has_runner = job.runner_name is not None and job.status != "queued"
    return {
        "id": job.id, "run_id": run.id, "run_url": f"{repo_api}/actions/runs/{run.id}",
        "run_attempt": job.run_attempt, "node_id": node_id("CR", job.id), "head_sha": run.head_sha,
        "url": f"{repo_api}/actions/jobs/{job.id}",
        "html_url": f"{urls.web}/{run.repo.full_name}/actions/runs/{run.id}/job/{job.id}",
        "status": job.status, "conclusion": job.conclusion, "created_at": iso(job.created_at),
        "started_at": iso(job.started_at), "completed_at": _iso_or_none(job.completed_at), "name": job.name,
        "steps": [_step(step, index) for index, step in enumerate(job.steps, start=1)],
        "check_run_url": f"{repo_api}/check-runs/{job.id}", "labels": list(job.labels),
        "runner_id": 1000 + job.id % 1000 if has_runner else None,
        "runner_name": job.runner_name if has_runner else None,
        "runner_group_id": 2 if has_runner else None,
        "runner_group_name": "GitHub Actions" if has_runner else None,
        "workflow_name": run.workflow.name, "head_branch": run.head_branch,
    }


def workflow(flow: Workflow, urls: Urls) -> Json:
    web = f"{urls.web}/{flow.repo.full_name}"
    return {
        "id": flow.id, "node_id": node_id("W", flow.id), "name": flow.name, "path": flow.path, "state": flow.state,
        "created_at": iso(flow.created_at), "updated_at": iso(flow.updated_at),
        "url": f"{urls.repo_api(flow.repo)}/actions/workflows/{flow.id}",
        "html_url": f"{web}/blob/{flow.repo.default_branch}/{flow.path}",
        "badge_url": f"{web}/workflows/{quote(flow.name)}/badge.svg",
    }


def _billable_os(labels: list[str]) -> str | None:
    joined = " ".join(labels).lower()
    if "self-hosted" in joined:
        return None
    if "macos" in joined:
        return "MACOS"
    if "windows" in joined:
        return "WINDOWS"
    return "UBUNTU"


def workflow_run_usage(run: Run) -> Json:
    if run.usage is not None:
        return dict(run.usage)
    billable: dict[str, Json] = {}
    for item in run.jobs:
        platform = _billable_os(item.labels)
        if platform is None or item.completed_at is None or item.run_attempt != run.run_attempt:
            continue
        # Billing rounds each job up to whole minutes.
        minutes = max(1, math.ceil((item.completed_at - item.started_at) / 60))
        entry = billable.setdefault(platform, {"total_ms": 0, "jobs": 0, "job_runs": []})
        entry["total_ms"] += minutes * 60_000
        entry["jobs"] += 1
        entry["job_runs"].append({"job_id": item.id, "duration_ms": minutes * 60_000})
    body: Json = {"billable": billable}
    if run.status == "completed":
        body["run_duration_ms"] = max(0, int((run.updated_at - run.run_started_at) * 1000))
    return body


def artifact(item: Artifact, urls: Urls) -> Json:
    url = f"{urls.repo_api(item.repo)}/actions/artifacts/{item.id}"
    body: Json = {
        "id": item.id, "node_id": node_id("MDg6QXJ0aWZhY3Q", item.id), "name": item.name,
        "size_in_bytes": len(item.data), "url": url, "archive_download_url": f"{url}/zip", "expired": item.expired,
        "created_at": iso(item.created_at), "expires_at": iso(item.expires_at), "updated_at": iso(item.updated_at),
        "digest": item.digest, "workflow_run": None,
    }
    if item.run is not None:
        body["workflow_run"] = {
            "id": item.run.id, "repository_id": item.repo.id, "head_repository_id": item.run.source_repo.id,
            "head_branch": item.run.head_branch or "", "head_sha": item.run.head_sha,
        }
    return body


def pull_request_simple(pull: Pull, urls: Urls) -> Json:
    base_api = urls.repo_api(pull.repo)
    api = f"{base_api}/pulls/{pull.number}"
    web = f"{urls.web}/{pull.repo.full_name}/pull/{pull.number}"
    issue = f"{base_api}/issues/{pull.number}"

    def side(repo: Repo, ref: str, sha: str) -> Json:
        return {"label": f"{repo.owner.login}:{ref}", "ref": ref, "sha": sha, "repo": repository(repo, urls),
                "user": simple_user(repo.owner, urls)}

    labels = [
        {"id": 6_000_000_000 + index, "node_id": node_id("LA", 6_000_000_000 + index),
         "url": f"{base_api}/labels/{quote(name)}", "name": name, "description": "", "color": "ededed",
         "default": False}
        for index, name in enumerate(pull.labels)
    ]
    author = "OWNER" if pull.user.id == pull.repo.owner.id else ("CONTRIBUTOR" if pull.from_fork else "MEMBER")
    return {
        "url": api, "id": pull.id, "node_id": node_id("PR", pull.id), "html_url": web, "diff_url": f"{web}.diff",
        "patch_url": f"{web}.patch", "issue_url": issue, "commits_url": f"{api}/commits",
        "review_comments_url": f"{api}/comments", "review_comment_url": f"{base_api}/pulls/comments{{/number}}",
        "comments_url": f"{issue}/comments", "statuses_url": f"{base_api}/statuses/{pull.head_sha}",
        "number": pull.number, "state": pull.state, "locked": False, "title": pull.title,
        "user": simple_user(pull.user, urls), "body": pull.body, "labels": labels, "milestone": None,
        "active_lock_reason": None, "created_at": iso(pull.created_at), "updated_at": iso(pull.updated_at),
        "closed_at": _iso_or_none(pull.closed_at), "merged_at": _iso_or_none(pull.merged_at),
        "merge_commit_sha": pull.merge_commit_sha, "assignee": None, "assignees": [], "requested_reviewers": [],
        "requested_teams": [],
        "head": side(pull.head_repo, pull.head_ref, pull.head_sha),
        "base": side(pull.repo, pull.base_ref, pull.base_sha),
        "_links": {
            "self": {"href": api}, "html": {"href": web}, "issue": {"href": issue},
            "comments": {"href": f"{issue}/comments"}, "review_comments": {"href": f"{api}/comments"},
            "review_comment": {"href": f"{base_api}/pulls/comments{{/number}}"}, "commits": {"href": f"{api}/commits"},
            "statuses": {"href": f"{base_api}/statuses/{pull.head_sha}"},
        },
        "author_association": author, "auto_merge": None, "draft": pull.draft,
    }


def _package_paths(package: Package, urls: Urls) -> tuple[str, str]:
    scope = urls.owner_scope(package.owner)
    name = package_url_name(package.name)
    api = f"{urls.api}/{scope}/{package.owner.login}/packages/{package.package_type}/{name}"
    web = f"{urls.web}/{scope}/{package.owner.login}/packages/{package.package_type}"
    return api, web


def package(item: Package, urls: Urls, version_count: int) -> Json:
    api, web = _package_paths(item, urls)
    return {
        "id": item.id, "name": item.name, "package_type": item.package_type, "owner": simple_user(item.owner, urls),
        "version_count": version_count, "visibility": item.visibility, "url": api,
        "created_at": iso(item.created_at), "updated_at": iso(item.updated_at),
        "repository": minimal_repository(item.repository, urls) if item.repository else None,
        "html_url": f"{web}/package/{package_url_name(item.name)}",
    }


def package_version(item: Package, version: VersionRecord, urls: Urls) -> Json:
    api, web = _package_paths(item, urls)
    body: Json = {
        "id": version.id, "name": version.name, "url": f"{api}/versions/{version.id}",
        "package_html_url": f"{web}/package/{package_url_name(item.name)}",
        "html_url": f"{web}/{package_url_name(item.name)}/{version.id}",
        "created_at": iso(version.created_at), "updated_at": iso(version.updated_at),
    }
    if version.description is not None:
        body["description"] = version.description
    if version.deleted_at is not None:
        body["deleted_at"] = iso(version.deleted_at)
    metadata: Json = {"package_type": item.package_type}
    if item.package_type == "container":
        metadata["container"] = {"tags": list(version.tags)}
    elif item.package_type == "docker":
        metadata["docker"] = {"tag": list(version.tags), "tags": list(version.tags)}
    body["metadata"] = metadata
    return body
