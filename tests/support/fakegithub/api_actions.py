"""Actions: workflows, workflow runs (with GitHub's filters and 1,000-result cap), jobs, run timing,
artifacts and the artifact download redirect."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from . import render
from .context import Context
from .filters import FilterError, parse_created
from .pagination import paginate
from .routes import ApiError, Request, Response, Router, not_found
from .state import Artifact, Repo, Run

CONCLUSIONS = {"action_required", "cancelled", "failure", "neutral", "skipped", "stale", "success", "timed_out"}
CAPPED_FILTERS = ("actor", "branch", "check_suite_id", "created", "event", "head_sha", "status")


def repo_of(ctx: Context, request: Request) -> Repo:
    repo = ctx.state.find_repo(request.params["owner"], request.params["repo"])
    # GitHub hides private repositories from anonymous callers behind a plain 404.
    if repo is None or (repo.private and request.token is None):
        raise not_found()
    return repo


def _run_of(ctx: Context, request: Request, repo: Repo) -> Run:
    raw = request.params["run_id"]
    run = ctx.state.runs.get(int(raw)) if raw.isdigit() else None
    if run is None or run.repo.id != repo.id:
        raise not_found()
    return run


def _listing(request: Request, key: str, items: Sequence[Any], total: int, ctx: Context,
             render_one: Callable[[Any], render.Json]) -> Response:
    page = paginate(items, request.query, ctx.urls.api, request.path)
    body = {"total_count": total, key: [render_one(item) for item in page.items]}
    return Response.json(200, body, {"link": page.link} if page.link else None)


def _filter_runs(ctx: Context, request: Request, runs: list[Run]) -> list[Run]:
    status = request.arg("status")
    created = request.arg("created")
    try:
        window = parse_created(created) if created else None
    except FilterError as exc:
        raise ApiError(422, f"Invalid created qualifier: {exc}") from None
    checks: dict[str, Callable[[Run, str], bool]] = {
        "actor": lambda run, value: (run.actor or run.repo.owner).login.lower() == value.lower(),
        "branch": lambda run, value: run.head_branch == value,
        "event": lambda run, value: run.event == value,
        "head_sha": lambda run, value: run.head_sha == value,
        "check_suite_id": lambda run, value: str(run.check_suite_id) == value,
    }
    wanted = {name: value for name in checks if (value := request.arg(name))}
    selected = []
    for run in runs:
        if any(not checks[name](run, value) for name, value in wanted.items()):
            continue
        if status:
            if status in CONCLUSIONS and run.conclusion != status:
                continue
            if status not in CONCLUSIONS and run.status != status:
                continue
        if window is not None and run.created_at not in window:
            continue
        selected.append(run)
    selected.sort(key=lambda run: (run.created_at, run.id), reverse=True)
    return selected


def _runs_response(ctx: Context, request: Request, runs: list[Run]) -> Response:
    matching = _filter_runs(ctx, request, runs)
    visible: list[Run] = matching
    filtered = any(request.arg(name) for name in CAPPED_FILTERS)
    if filtered or not ctx.settings.runs_cap_requires_filter:
        visible = matching[: ctx.settings.runs_result_cap]
    exclude = request.flag("exclude_pull_requests")
    return _listing(request, "workflow_runs", visible, len(matching), ctx,
                    lambda run: render.workflow_run(run, ctx.urls, exclude))


def list_runs_for_repo(ctx: Context, request: Request) -> Response:
    with ctx.state.lock:
        repo = repo_of(ctx, request)
        return _runs_response(ctx, request, ctx.state.runs_of(repo))


def list_runs_for_workflow(ctx: Context, request: Request) -> Response:
    with ctx.state.lock:
        repo = repo_of(ctx, request)
        wanted = request.params["workflow_id"]
        flow = next((w for w in ctx.state.workflows.values() if w.repo.id == repo.id
                     and (str(w.id) == wanted or w.path.rsplit("/", 1)[-1] == wanted)), None)
        if flow is None:
            raise not_found()
        return _runs_response(ctx, request, [run for run in ctx.state.runs_of(repo) if run.workflow.id == flow.id])


def list_workflows(ctx: Context, request: Request) -> Response:
    with ctx.state.lock:
        repo = repo_of(ctx, request)
        flows = sorted((w for w in ctx.state.workflows.values() if w.repo.id == repo.id), key=lambda w: w.id)
        return _listing(request, "workflows", flows, len(flows), ctx, lambda w: render.workflow(w, ctx.urls))


def get_run(ctx: Context, request: Request) -> Response:
    with ctx.state.lock:
        run = _run_of(ctx, request, repo_of(ctx, request))
        return Response.json(200, render.workflow_run(run, ctx.urls, request.flag("exclude_pull_requests")))


def list_jobs(ctx: Context, request: Request) -> Response:
    job_filter = request.arg("filter", "latest")
    if job_filter not in {"latest", "all"}:
        raise ApiError(422, "Invalid value for `filter`: must be one of latest, all")
    with ctx.state.lock:
        run = _run_of(ctx, request, repo_of(ctx, request))
        jobs = [j for j in run.jobs if job_filter == "all" or j.run_attempt == run.run_attempt]
        return _listing(request, "jobs", jobs, len(jobs), ctx, lambda j: render.job(j, ctx.urls))


def run_timing(ctx: Context, request: Request) -> Response:
    with ctx.state.lock:
        run = _run_of(ctx, request, repo_of(ctx, request))
        return Response.json(200, render.workflow_run_usage(run))


def _artifacts_response(ctx: Context, request: Request, artifacts: list[Artifact]) -> Response:
    name = request.arg("name")
    chosen = [a for a in artifacts if name is None or a.name == name]
    chosen.sort(key=lambda a: (a.created_at, a.id), reverse=request.arg("direction", "desc") != "asc")
    return _listing(request, "artifacts", chosen, len(chosen), ctx, lambda a: render.artifact(a, ctx.urls))


def list_run_artifacts(ctx: Context, request: Request) -> Response:
    with ctx.state.lock:
        run = _run_of(ctx, request, repo_of(ctx, request))
        return _artifacts_response(ctx, request, list(run.artifacts))


def list_repo_artifacts(ctx: Context, request: Request) -> Response:
    with ctx.state.lock:
        repo = repo_of(ctx, request)
        return _artifacts_response(ctx, request, [a for a in ctx.state.artifacts.values() if a.repo.id == repo.id])


def download_artifact(ctx: Context, request: Request) -> Response:
    with ctx.state.lock:
        repo = repo_of(ctx, request)
        raw = request.params["artifact_id"]
        item = ctx.state.artifacts.get(int(raw)) if raw.isdigit() else None
        if item is None or item.repo.id != repo.id or request.params["archive_format"] != "zip":
            raise not_found()
        if item.expired:
            raise ApiError(410, "Artifact has expired", "https://docs.github.com/rest/actions/artifacts")
        return Response.empty(302, {"location": ctx.sign_artifact_url(item.id)})


def register(router: Router) -> None:
    repo = "/repos/{owner}/{repo}/actions"
    router.add("GET", f"{repo}/runs", "actions/list-workflow-runs-for-repo", list_runs_for_repo, "repo")
    router.add("GET", f"{repo}/workflows/{{workflow_id}}/runs", "actions/list-workflow-runs",
               list_runs_for_workflow, "repo")
    router.add("GET", f"{repo}/workflows", "actions/list-repo-workflows", list_workflows, "repo")
    router.add("GET", f"{repo}/runs/{{run_id}}", "actions/get-workflow-run", get_run, "repo")
    router.add("GET", f"{repo}/runs/{{run_id}}/jobs", "actions/list-jobs-for-workflow-run", list_jobs, "repo")
    router.add("GET", f"{repo}/runs/{{run_id}}/timing", "actions/get-workflow-run-usage", run_timing, "repo")
    router.add("GET", f"{repo}/runs/{{run_id}}/artifacts", "actions/list-workflow-run-artifacts",
               list_run_artifacts, "repo")
    router.add("GET", f"{repo}/artifacts", "actions/list-artifacts-for-repo", list_repo_artifacts, "repo")
    router.add("GET", f"{repo}/artifacts/{{artifact_id}}/{{archive_format}}", "actions/download-artifact",
               download_artifact, "required")

