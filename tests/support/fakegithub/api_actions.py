"""Actions: workflows, workflow runs (with GitHub's filters and 1,000-result cap), run attempts, jobs (per
attempt, `filter=latest` in today's or the pre-May-2025 meaning), run timing (switchable to 410), artifacts and
the artifact download redirect."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, overload

from . import render
from .context import Context
from .filters import FilterError, parse_created
from .pagination import paginate
from .routes import ApiError, Request, Response, Router, not_found
from .state import Artifact, Job, Repo, Run

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
        # GitHub compares the created_at it shows, which has whole seconds.
        if window is not None and math.floor(run.created_at) not in window:
            continue
        selected.append(run)
    selected.sort(key=lambda run: (run.created_at, run.id), reverse=True)
    return selected


class _CappedView(Sequence[Run]):
    """All matching runs as far as their count goes, but only the first `cap` can be read: pages past the cap
    come back empty (Settings.runs_capped_links == "total")."""

    def __init__(self, runs: list[Run], cap: int) -> None:
        self._runs, self._cap = runs, cap

    def __len__(self) -> int:
        return len(self._runs)

    @overload
    def __getitem__(self, index: int) -> Run: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Run]: ...

    def __getitem__(self, index: int | slice) -> Run | Sequence[Run]:
        if isinstance(index, slice):
            start, stop, _ = index.indices(len(self._runs))
            return self._runs[min(start, self._cap):min(stop, self._cap)]
        if index >= self._cap:
            raise IndexError(index)
        return self._runs[index]


def _without_last(link: str | None) -> str | None:
    kept = [part for part in (link or "").split(", ") if part and not part.endswith('rel="last"')]
    return ", ".join(kept) or None


def _runs_response(ctx: Context, request: Request, runs: list[Run]) -> Response:
    matching = _filter_runs(ctx, request, runs)
    filtered = any(request.arg(name) for name in CAPPED_FILTERS)
    cap = ctx.settings.runs_result_cap
    capped = (filtered or not ctx.settings.runs_cap_requires_filter) and len(matching) > cap
    exclude = request.flag("exclude_pull_requests")
    mode = ctx.settings.runs_capped_links
    items: Sequence[Run] = _CappedView(matching, cap) if capped and mode == "total" else (
        matching[:cap] if capped else matching)
    page = paginate(items, request.query, ctx.urls.api, request.path)
    link = _without_last(page.link) if capped and mode == "no-last" else page.link
    body = {"total_count": len(matching),
            "workflow_runs": [render.workflow_run(run, ctx.urls, exclude) for run in page.items]}
    return Response.json(200, body, {"link": link} if link else None)


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


def _attempt_number(request: Request, run: Run) -> int:
    raw = request.params["attempt_number"]
    number = int(raw) if raw.isdigit() else 0
    if not 1 <= number <= run.run_attempt:
        raise not_found()
    return number


def get_run_attempt(ctx: Context, request: Request) -> Response:
    with ctx.state.lock:
        run = _run_of(ctx, request, repo_of(ctx, request))
        shown = run.as_attempt(_attempt_number(request, run))
        assert shown is not None  # the number was checked
        return Response.json(200, render.workflow_run(shown, ctx.urls, request.flag("exclude_pull_requests")))


def _newest_of_each_name(run: Run) -> list[Job]:
    # Before May 2025 `filter=latest` meant the most recent execution of each job, whichever attempt ran it.
    newest: dict[str, Job] = {}
    for job in run.jobs:
        held = newest.get(job.name)
        if held is None or (job.run_attempt, job.id) > (held.run_attempt, held.id):
            newest[job.name] = job
    return sorted(newest.values(), key=lambda job: job.id)


def list_jobs(ctx: Context, request: Request) -> Response:
    job_filter = request.arg("filter", "latest")
    if job_filter not in {"latest", "all"}:
        raise ApiError(422, "Invalid value for `filter`: must be one of latest, all")
    with ctx.state.lock:
        run = _run_of(ctx, request, repo_of(ctx, request))
        if job_filter == "all":
            jobs = list(run.jobs)
        elif ctx.settings.jobs_latest == "per-name":
            jobs = _newest_of_each_name(run)
        else:
            jobs = run.jobs_of(run.run_attempt)
        return _listing(request, "jobs", jobs, len(jobs), ctx, lambda j: render.job(j, ctx.urls))


def list_attempt_jobs(ctx: Context, request: Request) -> Response:
    with ctx.state.lock:
        run = _run_of(ctx, request, repo_of(ctx, request))
        jobs = run.jobs_of(_attempt_number(request, run))
        return _listing(request, "jobs", jobs, len(jobs), ctx, lambda j: render.job(j, ctx.urls))


TIMING_GONE = "This endpoint has been removed. Use the billing usage report instead."


def run_timing(ctx: Context, request: Request) -> Response:
    with ctx.state.lock:
        run = _run_of(ctx, request, repo_of(ctx, request))
        if ctx.settings.timing_gone:
            raise ApiError(410, TIMING_GONE, "https://docs.github.com/rest/actions/workflow-runs#get-workflow-run-usage")
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
    router.add("GET", f"{repo}/runs/{{run_id}}/attempts/{{attempt_number}}", "actions/get-workflow-run-attempt",
               get_run_attempt, "repo")
    router.add("GET", f"{repo}/runs/{{run_id}}/attempts/{{attempt_number}}/jobs",
               "actions/list-jobs-for-workflow-run-attempt", list_attempt_jobs, "repo")
    router.add("GET", f"{repo}/runs/{{run_id}}/timing", "actions/get-workflow-run-usage", run_timing, "repo")
    router.add("GET", f"{repo}/runs/{{run_id}}/artifacts", "actions/list-workflow-run-artifacts",
               list_run_artifacts, "repo")
    router.add("GET", f"{repo}/artifacts", "actions/list-artifacts-for-repo", list_repo_artifacts, "repo")
    router.add("GET", f"{repo}/artifacts/{{artifact_id}}/{{archive_format}}", "actions/download-artifact",
               download_artifact, "required")

