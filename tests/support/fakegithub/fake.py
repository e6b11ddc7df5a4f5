"""FakeGitHub: the object tests use. Starts the API host and the artifact storage host on loopback,
owns the state, and offers setters and request-log queries. See README.md beside this file."""

from __future__ import annotations

import io
import json
import re
import secrets
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from .app import Api, RequestRecord
from .clock import Clock, iso, to_epoch
from .context import Context, Settings
from .contract import Contract, Violation, shared_contract
from .faults import Faults
from .httpserver import LoopbackServer
from .overlay import job_order_problem, run_order_problem, step_order_problem
from .packages import MemoryBackend, RegistryBackend
from .ratelimit import PrimaryLimits, Snapshot
from .render import Urls
from .state import (
    Artifact,
    Job,
    OwnerType,
    Package,
    Pull,
    Repo,
    Run,
    State,
    Token,
    User,
    Visibility,
    Workflow,
    fake_sha,
)
from .storage import ArtifactStorage

Moment = float | str
DAY = 86400.0


def _lay_out_steps(steps: list[dict[str, object]], started: float, finished: float | None) -> list[dict[str, object]]:
    """Steps given without times share the job's time in equal slices (a finished job), or wait (queued) in an
    unfinished one, so that a step never sits outside its job."""
    untimed = [step for step in steps if "started_at" not in step and "completed_at" not in step]
    if finished is None:
        for step in untimed:
            step.setdefault("status", "queued")
            step.setdefault("conclusion", None)
        return steps
    if untimed and finished >= started:
        width = (finished - started) / len(untimed)
        for index, step in enumerate(untimed):
            step["started_at"] = started + index * width
            step["completed_at"] = started + (index + 1) * width
    return steps


def _check_job_timeline(name: str, created: float, started: float, completed: float | None, conclusion: str | None,
                        steps: list[dict[str, object]]) -> None:
    problem = job_order_problem(created, started, completed, conclusion)
    if problem:
        raise ValueError(f"add_job {name!r}: {problem}")
    if conclusion == "skipped" and completed is not None and completed < started:
        return
    def moment(value: object) -> float | None:
        return to_epoch(value) if isinstance(value, (int, float, str)) else None

    for index, step in enumerate(steps, start=1):
        begin, end = moment(step.get("started_at")), moment(step.get("completed_at"))
        problem = step_order_problem(started, completed, begin, end)
        if problem:
            raise ValueError(f"add_job {name!r}: step {index} ({step.get('name')!r}): {problem}")


class FakeGitHubError(AssertionError):
    """Raised at teardown when the fake saw something that must fail the test."""


def _zip(files: Mapping[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            archive.writestr(info, content.encode() if isinstance(content, str) else content)
    return buffer.getvalue()


class FakeGitHub:
    def __init__(self, *, host: str = "127.0.0.1", storage_host: str = "127.0.0.2",
                 server_url: str = "https://github.com", clock: Clock | None = None, seed: int = 0,
                 token: str | None = None, login: str = "charon-bot", contract: Contract | None = None,
                 settings: Settings | None = None) -> None:
        self.clock = clock or Clock()
        self.state = State()
        self.settings = settings or Settings()
        self.faults = Faults(self.clock, seed)
        self.limits = PrimaryLimits(self.clock)
        self.contract = contract or shared_contract()
        self._host = host
        self._storage_host = storage_host
        self._server_url = server_url.rstrip("/")
        self.storage = ArtifactStorage(self.state, self.clock, self.settings.artifact_url_ttl)
        self._api_server: LoopbackServer | None = None
        self._storage_server: LoopbackServer | None = None
        self.ctx: Context | None = None
        self.api: Api | None = None
        self.token = token or "ghp_" + secrets.token_hex(18)
        self.add_token(self.token, login=login)

    # --- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> FakeGitHub:
        self._api_server = LoopbackServer(self._host, self._dispatch)
        try:
            self._storage_server = LoopbackServer(self._storage_host, self.storage.handle)
        except OSError:
            # No second loopback address here: a different port is still a different origin for clients.
            self._storage_server = LoopbackServer(self._host, self.storage.handle)
        self.storage.base_url = self._storage_server.url
        self.ctx = Context(self.state, Urls(self._api_server.url, self._server_url), self.clock, self.settings,
                           self._sign)
        self.api = Api(self.ctx, self.contract, self.faults, self.limits)
        self._api_server.start()
        self._storage_server.start()
        return self

    def stop(self) -> None:
        for server in (self._api_server, self._storage_server):
            if server is not None:
                server.stop()

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()
        if kind is None:
            self.check()

    def _dispatch(self, request: Any) -> Any:
        assert self.api is not None
        return self.api.handle(request)

    def _sign(self, artifact_id: int) -> str:
        self.storage.ttl = self.settings.artifact_url_ttl
        return self.storage.sign(artifact_id)

    # --- addresses -------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """API base URL (GITHUB_API_URL), e.g. http://127.0.0.1:40123."""
        if self._api_server is None:
            raise RuntimeError("FakeGitHub is not started")
        return self._api_server.url

    @property
    def storage_url(self) -> str:
        return self.storage.base_url

    @property
    def server_url(self) -> str:
        return self._server_url

    def env(self, token: str | None = None) -> dict[str, str]:
        """The variables a runner would give an action talking to this fake."""
        return {"GITHUB_API_URL": self.url, "GITHUB_SERVER_URL": self._server_url,
                "GITHUB_TOKEN": token or self.token}

    # --- tokens and rate limits ------------------------------------------------------------------------------
    def add_token(self, value: str, *, login: str = "charon-bot",
                  kind: Literal["pat", "installation", "oauth"] = "pat", read_only: bool = False,
                  rate_limit: int | None = None, can_list_packages: bool | None = None) -> Token:
        """Register a credential. kind="installation" models GITHUB_TOKEN (1,000 requests/h, cannot list
        an owner's packages) unless rate_limit / can_list_packages say otherwise."""
        installation = kind == "installation"
        token = Token(value, login, kind, read_only,
                      rate_limit if rate_limit is not None else (1000 if installation else 5000),
                      can_list_packages if can_list_packages is not None else not installation,
                      self.state.user(login).id)
        with self.state.lock:
            self.state.tokens[value] = token
        return token

    def set_rate_limit(self, token: str | None = None, *, limit: int | None = None, remaining: int | None = None,
                       used: int | None = None) -> Snapshot:
        """Set a token's primary budget (default token if None): e.g. remaining=0 to start exhausted."""
        found = self.state.tokens[token or self.token]
        if limit is not None:
            found.rate_limit = limit
        return self.limits.set(f"token:{found.value}", found.rate_limit, remaining=remaining, used=used)

    def rate_limit(self, token: str | None = None) -> Snapshot:
        found = self.state.tokens[token or self.token]
        return self.limits.peek(f"token:{found.value}", found.rate_limit)

    # --- owners and repositories -----------------------------------------------------------------------------
    def add_user(self, login: str) -> User:
        return self.state.user(login, "User")

    def add_org(self, login: str) -> User:
        return self.state.user(login, "Organization")

    def add_repo(self, full_name: str, *, private: bool = False, default_branch: str = "main", fork: bool = False,
                 owner_type: OwnerType | None = None) -> Repo:
        owner_login, _, name = full_name.partition("/")
        if not name:
            raise ValueError("full_name must be OWNER/NAME")
        with self.state.lock:
            existing = self.state.find_repo(owner_login, name)
            if existing is not None:
                existing.private, existing.default_branch, existing.fork = private, default_branch, fork
                return existing
            repo = Repo(self.state.user(owner_login, owner_type), name, self.state.ids.next("repo"), private,
                        default_branch, fork, self.clock.now() - 400 * DAY)
            self.state.repos[full_name.lower()] = repo
            return repo

    def repo(self, repo: Repo | str) -> Repo:
        if isinstance(repo, Repo):
            return repo
        owner, _, name = repo.partition("/")
        return self.state.find_repo(owner, name) or self.add_repo(repo)

    # --- workflows, runs, jobs, artifacts --------------------------------------------------------------------
    def add_workflow(self, repo: Repo | str, path: str = ".github/workflows/ci.yml", *, name: str | None = None,
                     state: str = "active") -> Workflow:
        target = self.repo(repo)
        if not path.startswith(".github/"):
            path = f".github/workflows/{path}"
        with self.state.lock:
            for flow in self.state.workflows.values():
                if flow.repo.id == target.id and flow.path == path:
                    return flow
            created = self.clock.now() - 200 * DAY
            flow = Workflow(self.state.ids.next("workflow"), target, name or Path(path).stem, path, state, created,
                            created)
            self.state.workflows[flow.id] = flow
            return flow

    def add_run(self, repo: Repo | str, workflow: Workflow | str = "ci.yml", *, event: str = "push",
                status: str = "completed", conclusion: str | None = "success", head_branch: str | None = "main",
                head_sha: str | None = None, head_repo: Repo | str | None = None, actor: str | None = None,
                run_number: int | None = None, run_attempt: int = 1, created_at: Moment | None = None,
                run_started_at: Moment | None = None, updated_at: Moment | None = None,
                pull_requests: Iterable[Pull] = (), display_title: str = "",
                head_commit_message: str = "Update", usage: dict[str, object] | None = None) -> Run:
        target = self.repo(repo)
        flow = workflow if isinstance(workflow, Workflow) else self.add_workflow(target, workflow)
        if status != "completed":
            conclusion = None
        with self.state.lock:
            number = run_number or 1 + sum(1 for r in self.state.runs.values() if r.workflow.id == flow.id)
            created = self.clock.now() if created_at is None else to_epoch(created_at)
            started = created if run_started_at is None else to_epoch(run_started_at)
            updated = to_epoch(updated_at) if updated_at is not None else (
                started + 300 if status == "completed" else started)
            problem = run_order_problem(created, started, updated)
            if problem:
                raise ValueError(f"add_run: {problem} (got {iso(created)}, {iso(started)}, {iso(updated)})")
            run = Run(
                id=self.state.ids.next("run"), repo=target, workflow=flow, run_number=number, event=event,
                status=status, conclusion=conclusion, head_branch=head_branch,
                head_sha=head_sha or fake_sha(f"{target.full_name}:{flow.path}:{number}"),
                head_repo=self.repo(head_repo) if head_repo is not None else None,
                actor=self.state.user(actor) if actor else None, run_attempt=run_attempt,
                created_at=created, updated_at=updated, run_started_at=started,
                check_suite_id=self.state.ids.next("check_suite"), display_title=display_title,
                head_commit_message=head_commit_message, pull_requests=list(pull_requests), usage=usage,
            )
            self.state.runs[run.id] = run
            return run

    def add_job(self, run: Run, name: str, *, status: str = "completed", conclusion: str | None = "success",
                created_at: Moment | None = None, started_at: Moment | None = None,
                completed_at: Moment | None = None, run_attempt: int | None = None,
                labels: Iterable[str] = ("ubuntu-latest",), runner_name: str | None = "GitHub Actions 2",
                steps: Iterable[dict[str, object]] = ()) -> Job:
        created = run.run_started_at if created_at is None else to_epoch(created_at)
        started = created + 5 if started_at is None else to_epoch(started_at)
        if status != "completed":
            conclusion = None
        finished: float | None = None
        if completed_at is not None:
            finished = to_epoch(completed_at)
        elif status == "completed":
            finished = started + 60
        copied = _lay_out_steps([dict(step) for step in steps], started, finished)
        _check_job_timeline(name, created, started, finished, conclusion, copied)
        with self.state.lock:
            item = Job(self.state.ids.next("job"), run, name, status, conclusion, created, started, finished,
                       run_attempt or run.run_attempt, list(labels), runner_name, copied)
            run.jobs.append(item)
            self.state.jobs[item.id] = item
            return item

    def rerun(self, run: Run, *, failed_only: bool = False, at: Moment | None = None, status: str = "queued",
              actor: str | None = None, carry: Iterable[str] | None = None) -> list[Job]:
        """Start attempt `run.run_attempt + 1`, as GitHub's "Re-run all jobs" / "Re-run failed jobs" do.

        The run keeps `created_at`; `run_started_at` and `updated_at` become `at` (default: now), `status`
        becomes `status` with no conclusion, and the attempt ending here is kept (`/attempts/{n}` serves it,
        `previous_attempt_url` points at it). `failed_only=True` copies the jobs of the ending attempt that
        passed (conclusion success or neutral; or exactly the job names in `carry`) into the new attempt
        with their old timestamps and steps, as GitHub does; add the re-run jobs with `add_job(run, ...)`.
        Returns the carried jobs. Finish the attempt by setting `run.status`, `run.conclusion`, `run.updated_at`.
        """
        moment = self.clock.now() if at is None else to_epoch(at)
        with self.state.lock:
            if run.status != "completed":
                raise ValueError(f"rerun: run {run.id} is {run.status}; GitHub re-runs completed runs only")
            if moment < run.updated_at:
                raise ValueError(f"rerun: the new attempt starts at {iso(moment)}, before the last one ended "
                                 f"({iso(run.updated_at)})")
            ending = run.attempt(run.run_attempt)
            assert ending is not None
            run.past_attempts[run.run_attempt] = ending
            names = set(carry) if carry is not None else None
            passed = [job for job in run.jobs_of(run.run_attempt)
                      if (job.name in names if names is not None else job.conclusion in {"success", "neutral"})]
            run.run_attempt += 1
            run.status = status
            run.conclusion = None
            run.run_started_at = run.updated_at = moment
            if actor is not None:
                run.triggering_actor = self.state.user(actor)
            carried: list[Job] = []
            if failed_only:
                for old in passed:
                    item = replace(old, id=self.state.ids.next("job"), run_attempt=run.run_attempt,
                                   labels=list(old.labels), steps=[dict(step) for step in old.steps],
                                   carried_from=old.id)
                    run.jobs.append(item)
                    self.state.jobs[item.id] = item
                    carried.append(item)
            return carried

    def add_artifact(self, where: Run | Repo | str, name: str, data: bytes | None = None, *,
                     files: Mapping[str, bytes | str] | None = None, created_at: Moment | None = None,
                     expires_at: Moment | None = None, expired: bool = False,
                     upload_artifact_version: int = 4) -> Artifact:
        """An artifact of a run (or of a repository). `data` is the zip's bytes; or give `files` to zip.

        It expires when the fake's clock reaches `expires_at` (default: 90 days after `created_at`);
        `expired=True` makes that now. `upload_artifact_version` below 4 leaves `digest` null, as GitHub
        does for artifacts uploaded before upload-artifact v4."""
        run = where if isinstance(where, Run) else None
        repo = run.repo if run is not None else self.repo(where)  # type: ignore[arg-type]
        payload = data if data is not None else _zip(files or {f"{name}.txt": name})
        created = (run.updated_at if run else self.clock.now()) if created_at is None else to_epoch(created_at)
        expires = created + 90 * DAY if expires_at is None else to_epoch(expires_at)
        if expired:
            if expires_at is not None and expires > self.clock.now():
                raise ValueError("expired=True contradicts an expires_at in the future")
            expires = min(expires, self.clock.now())
        with self.state.lock:
            item = Artifact(self.state.ids.next("artifact"), repo, name, payload, run, created, created, expires,
                            upload_artifact_version >= 4, self.clock)
            if run is not None:
                run.artifacts.append(item)
            self.state.artifacts[item.id] = item
            return item

    # --- pull requests ---------------------------------------------------------------------------------------
    def add_pull(self, repo: Repo | str, head_ref: str, *, head_sha: str | None = None, head_owner: str | None = None,
                 base_ref: str | None = None, base_sha: str | None = None, number: int | None = None,
                 state: Literal["open", "closed"] = "open", user: str | None = None, title: str = "Change",
                 body: str | None = None, created_at: Moment | None = None, updated_at: Moment | None = None,
                 closed_at: Moment | None = None, merged_at: Moment | None = None,
                 merge_commit_sha: str | None = None, commits: Iterable[str] = (), draft: bool = False,
                 labels: Iterable[str] = ()) -> Pull:
        """A pull request into `repo`. `head_owner` other than the repo's owner makes the head a fork."""
        base = self.repo(repo)
        owner = head_owner or base.owner.login
        head_repo = base if owner.lower() == base.owner.login.lower() else self.add_repo(
            f"{owner}/{base.name}", fork=True)
        with self.state.lock:
            taken = [p.number for p in self.state.pulls.values() if p.repo.id == base.id]
            created = self.clock.now() if created_at is None else to_epoch(created_at)
            merged = None if merged_at is None else to_epoch(merged_at)
            closed = merged if closed_at is None else to_epoch(closed_at)
            sha = head_sha or fake_sha(f"{owner}:{head_ref}")
            pull = Pull(
                id=self.state.ids.next("pull"), number=number or max(taken, default=0) + 1, repo=base,
                head_repo=head_repo, head_ref=head_ref, head_sha=sha, base_ref=base_ref or base.default_branch,
                base_sha=base_sha or fake_sha(f"{base.full_name}:{base_ref or base.default_branch}"),
                user=self.state.user(user or owner), title=title, body=body,
                state="closed" if merged is not None or closed is not None else state, draft=draft,
                created_at=created, updated_at=created if updated_at is None else to_epoch(updated_at),
                closed_at=closed, merged_at=merged, merge_commit_sha=merge_commit_sha,
                commits=list(commits) or [sha], labels=list(labels),
            )
            self.state.pulls[pull.id] = pull
            return pull

    # --- packages --------------------------------------------------------------------------------------------
    def _owner(self, login: str, owner_type: OwnerType) -> User:
        return self.state.user(login, owner_type)

    def add_package(self, owner: str, name: str, *, package_type: str = "container",
                    visibility: Visibility = "private", owner_type: OwnerType = "Organization",
                    repository: Repo | str | None = None, created_at: Moment | None = None) -> Package:
        """A package whose versions live in memory: add them with `package.add_version(...)`."""
        return self._add_package(owner, name, package_type, visibility, owner_type, repository, created_at,
                                 MemoryBackend(self.state.ids, self.clock))

    def add_container_package(self, owner: str, name: str, *, registry_url: str, repository: str,
                              storage_dir: Path | str, visibility: Visibility = "public",
                              owner_type: OwnerType = "Organization", repo: Repo | str | None = None,
                              created_at: Moment | None = None) -> Package:
        """A container package whose versions are the manifests of `repository` in a real registry."""
        backend = RegistryBackend(self.state.ids, self.clock, registry_url, repository, storage_dir)
        return self._add_package(owner, name, "container", visibility, owner_type, repo, created_at, backend)

    def _add_package(self, owner: str, name: str, package_type: str, visibility: Visibility,
                     owner_type: OwnerType, repository: Repo | str | None, created_at: Moment | None,
                     backend: MemoryBackend | RegistryBackend) -> Package:
        created = self.clock.now() - 30 * DAY if created_at is None else to_epoch(created_at)
        with self.state.lock:
            package = Package(self.state.ids.next("package"), self._owner(owner, owner_type), name, package_type,
                              visibility, backend, self.repo(repository) if repository else None, created, created)
            self.state.packages[package.id] = package
            return package

    # --- request log and checks ------------------------------------------------------------------------------
    @property
    def requests(self) -> list[RequestRecord]:
        """Every request the API host received, in arrival order (resets included, status None)."""
        assert self.api is not None
        return self.api.log

    @property
    def storage_requests(self) -> list[RequestRecord]:
        return self.storage.log

    def calls(self, method: str | None = None, *, operation: str | None = None, path: str | None = None,
              status: int | None = None) -> list[RequestRecord]:
        """Requests filtered by method, operationId, path regex (re.search) and/or status served."""
        pattern = re.compile(path) if path is not None else None
        return [
            r for r in list(self.requests)
            if (method is None or r.method == method.upper()) and (operation is None or r.operation == operation)
            and (pattern is None or pattern.search(r.path)) and (status is None or r.status == status)
        ]

    def count(self, method: str | None = None, *, operation: str | None = None, path: str | None = None,
              status: int | None = None) -> int:
        return len(self.calls(method, operation=operation, path=path, status=status))

    @property
    def violations(self) -> list[Violation]:
        assert self.api is not None
        return self.api.violations

    def take_violations(self) -> list[Violation]:
        """Return and forget the contract violations (for tests that provoke one on purpose)."""
        taken = list(self.violations)
        self.violations.clear()
        return taken

    @property
    def contract_checks(self) -> Counter[str | None]:
        """operationId -> how many responses were checked against the OpenAPI contract."""
        assert self.api is not None
        return self.api.checked

    @property
    def internal_errors(self) -> list[str]:
        assert self.api is not None
        return self.api.internal_errors

    @property
    def token_leaks(self) -> list[RequestRecord]:
        return self.storage.token_leaks

    def take_token_leaks(self) -> list[RequestRecord]:
        taken = list(self.token_leaks)
        self.token_leaks.clear()
        return taken

    def corrupt(self, operation: str, mutate: Callable[[Any], Any]) -> None:
        """Test hook: pass the JSON body of `operation`'s responses through `mutate` before the contract check."""
        assert self.api is not None
        self.api.corruptors[operation] = lambda body: json.dumps(mutate(json.loads(body))).encode()

    def corrupt_headers(self, operation: str, mutate: Callable[[dict[str, str]], dict[str, str]]) -> None:
        """Test hook: pass `operation`'s response headers (lower-case names) through `mutate` before the check."""
        assert self.api is not None
        self.api.header_corruptors[operation] = mutate

    def problems(self) -> list[str]:
        if self.api is None:
            return []
        found = [f"contract violation: {v}" for v in self.violations]
        found += [f"internal error: {e}" for e in self.internal_errors]
        found += [f"Authorization header sent to the artifact storage host: {r.method} {r.path}"
                  for r in self.token_leaks]
        return found

    def check(self) -> None:
        """Raise FakeGitHubError if a response broke the contract, a handler crashed or a token leaked."""
        found = self.problems()
        if found:
            raise FakeGitHubError("fake GitHub saw problems:\n" + "\n".join(found))
