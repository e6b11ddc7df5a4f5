"""In-memory GitHub state: users, repositories, workflows, runs, jobs, artifacts, pulls, packages.

Entities are plain mutable dataclasses: a test may change a field after adding it (e.g. `run.status =
"completed"`) and the next response shows it. Timestamps are epoch seconds of the fake's clock.
Ids come from one counter per kind, started at realistic magnitudes so they never collide across kinds.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .clock import Clock
    from .packages import PackageBackend, VersionRecord

OwnerType = Literal["User", "Organization"]
Visibility = Literal["public", "private"]


class Ids:
    """Per-kind id counters (thread-safe via itertools.count's atomic next under the GIL)."""

    def __init__(self) -> None:
        bases = {
            "user": 50_000_000, "repo": 600_000_000, "workflow": 80_000_000, "run": 9_000_000_000,
            "check_suite": 25_000_000_000, "job": 27_000_000_000, "artifact": 1_500_000_000,
            "pull": 1_800_000_000, "package": 3_000_000, "version": 200_000_000, "label": 6_000_000_000,
        }
        self._counters = {kind: itertools.count(base + 1) for kind, base in bases.items()}

    def next(self, kind: str) -> int:
        return next(self._counters[kind])


def fake_sha(seed: str) -> str:
    """A deterministic 40-hex commit sha for tests that do not care which."""
    return hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest()


@dataclass
class User:
    login: str
    id: int
    type: OwnerType = "User"


@dataclass
class Repo:
    owner: User
    name: str
    id: int
    private: bool = False
    default_branch: str = "main"
    fork: bool = False
    created_at: float = 0.0

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"


@dataclass
class Workflow:
    id: int
    repo: Repo
    name: str
    path: str
    state: str = "active"
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass
class Job:
    id: int
    run: Run
    name: str
    status: str = "completed"
    conclusion: str | None = "success"
    created_at: float = 0.0  # queued
    started_at: float = 0.0
    completed_at: float | None = None
    run_attempt: int = 1
    labels: list[str] = field(default_factory=lambda: ["ubuntu-latest"])
    runner_name: str | None = "GitHub Actions 2"
    steps: list[dict[str, object]] = field(default_factory=list)  # raw step objects (name/status/...)
    carried_from: int | None = None  # id of the job a "re-run failed jobs" copied into this attempt


# Run conclusions, worst first: what an attempt derived from its jobs concludes.
_CONCLUSION_RANK = ("startup_failure", "timed_out", "failure", "cancelled", "action_required", "neutral", "success",
                    "skipped")


@dataclass
class Attempt:
    """One execution of a workflow run, as `/runs/{id}/attempts/{n}` shows it. A run's own status, conclusion,
    `run_started_at` and `updated_at` are those of its latest attempt; earlier ones are kept here."""

    number: int
    status: str
    conclusion: str | None
    run_started_at: float
    updated_at: float
    triggering_actor: User | None = None


@dataclass
class Run:
    id: int
    repo: Repo
    workflow: Workflow
    run_number: int
    event: str = "push"
    status: str = "completed"
    conclusion: str | None = "success"
    head_branch: str | None = "main"
    head_sha: str = ""
    head_repo: Repo | None = None  # None: the repository itself; a fork's Repo for fork pull requests
    actor: User | None = None
    triggering_actor: User | None = None
    run_attempt: int = 1
    created_at: float = 0.0
    updated_at: float = 0.0
    run_started_at: float = 0.0
    check_suite_id: int = 0
    display_title: str = ""
    head_commit_message: str = "Update"
    pull_requests: list[Pull] = field(default_factory=list)
    referenced_workflows: list[dict[str, str]] = field(default_factory=list)
    usage: dict[str, object] | None = None  # explicit /timing body; None: derived from the jobs
    jobs: list[Job] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)
    # Earlier attempts (number -> state), recorded by FakeGitHub.rerun. An earlier attempt that was never
    # recorded (a run added with run_attempt=3) is derived from its jobs: see attempt().
    past_attempts: dict[int, Attempt] = field(default_factory=dict)

    @property
    def source_repo(self) -> Repo:
        return self.head_repo or self.repo

    def jobs_of(self, attempt: int) -> list[Job]:
        return [job for job in self.jobs if job.run_attempt == attempt]

    def attempt(self, number: int) -> Attempt | None:
        """The state of attempt `number` (None when the run has no such attempt)."""
        if number == self.run_attempt:
            return Attempt(number, self.status, self.conclusion, self.run_started_at, self.updated_at,
                           self.triggering_actor)
        if number < 1 or number > self.run_attempt:
            return None
        recorded = self.past_attempts.get(number)
        if recorded is not None:
            return recorded
        jobs = self.jobs_of(number)
        conclusions = [job.conclusion for job in jobs if job.conclusion is not None]
        worst = min(conclusions, key=lambda c: _CONCLUSION_RANK.index(c) if c in _CONCLUSION_RANK else 0,
                    default="success")
        started = min((job.created_at for job in jobs), default=self.created_at)
        finished = max((job.completed_at or job.started_at for job in jobs), default=started)
        return Attempt(number, "completed", worst, started, max(started, finished), self.triggering_actor)

    def as_attempt(self, number: int) -> Run | None:
        """A copy of this run showing attempt `number`'s state, for rendering (jobs are shared, not copied)."""
        state = self.attempt(number)
        if state is None:
            return None
        return replace(self, run_attempt=number, status=state.status, conclusion=state.conclusion,
                       run_started_at=state.run_started_at, updated_at=state.updated_at,
                       triggering_actor=state.triggering_actor)


@dataclass
class Artifact:
    """An artifact; `expired` follows the fake's clock: True once it reaches `expires_at`."""

    id: int
    repo: Repo
    name: str
    data: bytes
    run: Run | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    expires_at: float = 0.0
    # upload-artifact v4 and later record a sha256; GitHub shows `digest: null` for older uploads.
    has_digest: bool = True
    clock: Clock | None = field(default=None, repr=False, compare=False)

    def _now(self) -> float:
        return self.clock.now() if self.clock is not None else time.time()

    @property
    def expired(self) -> bool:
        return self._now() >= self.expires_at

    @expired.setter
    def expired(self, value: bool) -> None:
        """`artifact.expired = True` expires it now (expires_at moves to the clock's present)."""
        if value:
            self.expires_at = min(self.expires_at, self._now())
        elif self.expired:
            raise ValueError("an expired artifact cannot come back: set expires_at to a later time instead")

    @property
    def digest(self) -> str | None:
        return "sha256:" + hashlib.sha256(self.data).hexdigest() if self.has_digest else None


@dataclass
class Pull:
    id: int
    number: int
    repo: Repo  # the base repository
    head_repo: Repo  # the base repository itself, or a fork (owner differs)
    head_ref: str
    head_sha: str
    base_ref: str
    base_sha: str
    user: User
    title: str = "Change"
    body: str | None = None
    state: Literal["open", "closed"] = "open"
    draft: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0
    closed_at: float | None = None
    merged_at: float | None = None
    merge_commit_sha: str | None = None
    commits: list[str] = field(default_factory=list)  # shas of the PR's commits (head_sha included)
    labels: list[str] = field(default_factory=list)

    @property
    def from_fork(self) -> bool:
        return self.head_repo.id != self.repo.id


@dataclass
class Package:
    id: int
    owner: User
    name: str
    package_type: str
    visibility: Visibility
    backend: PackageBackend
    repository: Repo | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    # Shortcuts to the backend, so tests read `package.add_version(...)`.
    def versions(self) -> list[VersionRecord]:
        """Active versions, newest first (for a registry-backed package: read from its storage now)."""
        return self.backend.versions()

    def deleted_versions(self) -> list[VersionRecord]:
        return self.backend.deleted()

    def add_version(self, name: str, tags: list[str] | tuple[str, ...] = (), *, created_at: float | str | None = None,
                    updated_at: float | str | None = None, downloads: int = 0) -> VersionRecord:
        """In-memory packages only: registry-backed versions come from what was pushed."""
        add = getattr(self.backend, "add_version", None)
        if add is None:
            raise TypeError(f"package {self.name!r} is registry-backed: push a manifest instead")
        record: VersionRecord = add(name, tags, created_at=created_at, updated_at=updated_at, downloads=downloads)
        return record

    def set_version(self, name: str, *, created_at: float | str | None = None, updated_at: float | str | None = None,
                    downloads: int | None = None) -> VersionRecord:
        """Set a version's timestamps (epoch seconds or ISO 8601) or download count, by name (digest)."""
        return self.backend.set_version(name, created_at=created_at, updated_at=updated_at, downloads=downloads)

    def version_id(self, name: str) -> int:
        """The id GitHub shows for the version called `name` (for containers: the manifest digest)."""
        for record in self.backend.versions():
            if record.name == name:
                return record.id
        raise KeyError(f"no active version {name!r} in package {self.name!r}")


@dataclass
class Token:
    """A credential the fake accepts. `kind` "installation" is a GITHUB_TOKEN (ghs_...), "pat" a PAT."""

    value: str
    login: str = "charon-bot"
    kind: Literal["pat", "installation", "oauth"] = "pat"
    read_only: bool = False  # writes (DELETE) answer 403 "Resource not accessible by integration"
    rate_limit: int = 5000  # primary budget per hour (GITHUB_TOKEN: 1,000)
    can_list_packages: bool = True  # GITHUB_TOKEN cannot list an owner's packages
    user_id: int = 0


class State:
    """All entities, guarded by one lock that request handlers hold while they read or change state."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.ids = Ids()
        self.users: dict[str, User] = {}
        self.repos: dict[str, Repo] = {}
        self.workflows: dict[int, Workflow] = {}
        self.runs: dict[int, Run] = {}
        self.jobs: dict[int, Job] = {}
        self.artifacts: dict[int, Artifact] = {}
        self.pulls: dict[int, Pull] = {}
        self.packages: dict[int, Package] = {}
        self.tokens: dict[str, Token] = {}

    def user(self, login: str, type: OwnerType | None = None) -> User:
        with self.lock:
            found = self.users.get(login.lower())
            if found is None:
                found = User(login, self.ids.next("user"), type or "User")
                self.users[login.lower()] = found
            elif type is not None:
                found.type = type
            return found

    def find_repo(self, owner: str, name: str) -> Repo | None:
        return self.repos.get(f"{owner}/{name}".lower())

    def runs_of(self, repo: Repo) -> list[Run]:
        return [run for run in self.runs.values() if run.repo.id == repo.id]

    def package(self, owner: str, package_type: str, name: str) -> Package | None:
        for package in self.packages.values():
            if (package.owner.login.lower() == owner.lower() and package.package_type == package_type
                    and package.name == name):
                return package
        return None
