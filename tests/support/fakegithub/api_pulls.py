"""Pull requests: the list with `state`/`head`/`base` filters, and the pulls associated with a commit."""

from __future__ import annotations

from . import render
from .api_actions import repo_of
from .context import Context
from .pagination import paginate
from .routes import ApiError, Request, Response, Router
from .state import Pull


def _sorted(pulls: list[Pull], sort: str, direction: str | None) -> list[Pull]:
    # GitHub: direction defaults to desc for sort=created (the default sort), asc otherwise.
    descending = (direction or ("desc" if sort == "created" else "asc")) == "desc"
    key = {
        "created": lambda p: (p.created_at, p.id), "updated": lambda p: (p.updated_at, p.id),
        "popularity": lambda p: (0, p.id), "long-running": lambda p: (-p.created_at, p.id),
    }[sort]
    return sorted(pulls, key=key, reverse=descending)


def list_pulls(ctx: Context, request: Request) -> Response:
    state = request.arg("state", "open") or "open"
    if state not in {"open", "closed", "all"}:
        raise ApiError(422, "Validation Failed: state must be one of open, closed, all")
    sort = request.arg("sort", "created") or "created"
    if sort not in {"created", "updated", "popularity", "long-running"}:
        raise ApiError(422, "Validation Failed: sort must be one of created, updated, popularity, long-running")
    head = request.arg("head")
    base = request.arg("base")
    with ctx.state.lock:
        repo = repo_of(ctx, request)
        pulls = [p for p in ctx.state.pulls.values() if p.repo.id == repo.id and state in {"all", p.state}]
        # `head` must be OWNER:BRANCH; GitHub ignores a bare branch name.
        if head and ":" in head:
            owner, _, branch = head.partition(":")
            pulls = [p for p in pulls if p.head_repo.owner.login.lower() == owner.lower() and p.head_ref == branch]
        if base:
            pulls = [p for p in pulls if p.base_ref == base]
        page = paginate(_sorted(pulls, sort, request.arg("direction")), request.query, ctx.urls.api, request.path)
        body = [render.pull_request_simple(p, ctx.urls) for p in page.items]
    return Response.json(200, body, {"link": page.link} if page.link else None)


def commit_pulls(ctx: Context, request: Request) -> Response:
    sha = request.params["commit_sha"]
    with ctx.state.lock:
        repo = repo_of(ctx, request)
        found = []
        for pull in ctx.state.pulls.values():
            if pull.repo.id != repo.id:
                continue
            merged_here = pull.merge_commit_sha is not None and pull.merge_commit_sha == sha
            # A commit that only exists in a fork is unknown to the base repository: [].
            on_branch = not pull.from_fork and (sha == pull.head_sha or sha in pull.commits)
            if merged_here or on_branch:
                found.append(pull)
        found.sort(key=lambda p: p.number, reverse=True)
        page = paginate(found, request.query, ctx.urls.api, request.path)
        body = [render.pull_request_simple(p, ctx.urls) for p in page.items]
    return Response.json(200, body, {"link": page.link} if page.link else None)


def register(router: Router) -> None:
    router.add("GET", "/repos/{owner}/{repo}/pulls", "pulls/list", list_pulls, "repo")
    router.add("GET", "/repos/{owner}/{repo}/commits/{commit_sha}/pulls",
               "repos/list-pull-requests-associated-with-commit", commit_pulls, "repo")
