"""What the metrics are computed from: workflows, runs, attempts and jobs as plain data, and their JSON forms.

Parsed from GitHub's REST objects (`workflow-run`, `job`, `workflow`), and written back as the same objects
trimmed to the fields read here, so a dump, a state file and a live run all go through one parser.
Times are epoch seconds (floats): 30,000 runs are compared and subtracted many times over.
No I/O and no policy here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from charon_ci.prune.reachability import ManifestFacts

__all__ = [
    "Attempt",
    "History",
    "Job",
    "Listing",
    "ListingQuery",
    "Reusable",
    "Run",
    "RunRecord",
    "Step",
    "Workflow",
    "format_time",
    "parse_attempt",
    "parse_job",
    "parse_run",
    "parse_time",
    "parse_workflow",
]

# Conclusions GitHub gives runs, attempts and jobs. A failure is a verdict against the change; cancelled,
# skipped, neutral, stale and action_required are not verdicts and are shown apart, never mixed in.
FAILED_CONCLUSIONS = frozenset({"failure", "timed_out", "startup_failure"})
SUCCESS = "success"


def parse_time(value: Any, what: str) -> float:
    """ISO 8601 with a zone (GitHub sends `2026-02-01T10:00:00Z`) -> epoch seconds."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} is not a timestamp")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{what} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _optional_time(value: Any, what: str) -> float | None:
    return None if value is None else parse_time(value, what)


def format_time(moment: float) -> str:
    """Epoch seconds -> `2026-02-01T10:00:00Z` (whole seconds, as GitHub writes them)."""
    return datetime.fromtimestamp(int(moment // 1), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _format_optional(moment: float | None) -> str | None:
    return None if moment is None else format_time(moment)


def _int(body: Mapping[str, Any], key: str, what: str) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{what}: '{key}' is not an integer")
    return value


def _str(body: Mapping[str, Any], key: str, what: str, *, optional: bool = False) -> str:
    value = body.get(key)
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{what}: '{key}' is not a string")
    return value


def _mapping(body: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise ValueError(f"{what} is not a JSON object")
    return body


@dataclass(frozen=True, slots=True)
class Workflow:
    id: int
    name: str
    path: str  # .github/workflows/build.yml

    @property
    def file_name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "path": self.path}


def parse_workflow(body: Any) -> Workflow:
    item = _mapping(body, "workflow")
    return Workflow(_int(item, "id", "workflow"), _str(item, "name", "workflow"), _str(item, "path", "workflow"))


@dataclass(frozen=True, slots=True)
class Run:
    """A workflow run as the runs list shows it: its latest attempt's state."""

    id: int
    workflow_id: int
    name: str
    event: str
    status: str
    conclusion: str | None
    head_sha: str
    head_branch: str
    head_repository: str  # owner/name the commit came from (a fork for fork pull requests)
    pull_requests: tuple[int, ...]  # empty for fork pull requests, as GitHub sends it
    run_attempt: int
    created_at: float  # the first attempt's creation: kept by re-runs
    run_started_at: float | None  # the latest attempt's start: reset by re-runs
    updated_at: float

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workflow_id": self.workflow_id,
            "name": self.name,
            "event": self.event,
            "status": self.status,
            "conclusion": self.conclusion,
            "head_sha": self.head_sha,
            "head_branch": self.head_branch,
            "head_repository": {"full_name": self.head_repository},
            "pull_requests": [{"number": number} for number in self.pull_requests],
            "run_attempt": self.run_attempt,
            "created_at": format_time(self.created_at),
            "run_started_at": _format_optional(self.run_started_at),
            "updated_at": format_time(self.updated_at),
        }


def parse_run(body: Any) -> Run:
    item = _mapping(body, "workflow run")
    what = f"workflow run {item.get('id')!r}"
    pulls: list[int] = []
    for pull in item.get("pull_requests") or []:
        number = _mapping(pull, what + " pull request").get("number")
        if isinstance(number, int) and not isinstance(number, bool):
            pulls.append(number)
    head_repo = item.get("head_repository")
    head_name = head_repo.get("full_name") if isinstance(head_repo, Mapping) else None
    conclusion = item.get("conclusion")
    attempt = item.get("run_attempt", 1)
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        raise ValueError(f"{what}: 'run_attempt' is not a positive integer")
    return Run(
        id=_int(item, "id", what),
        workflow_id=_int(item, "workflow_id", what),
        name=_str(item, "name", what, optional=True),
        event=_str(item, "event", what),
        status=_str(item, "status", what),
        conclusion=conclusion if isinstance(conclusion, str) else None,
        head_sha=_str(item, "head_sha", what),
        head_branch=_str(item, "head_branch", what, optional=True),
        head_repository=head_name if isinstance(head_name, str) else "",
        pull_requests=tuple(pulls),
        run_attempt=attempt,
        created_at=parse_time(item.get("created_at"), what + " created_at"),
        run_started_at=_optional_time(item.get("run_started_at"), what + " run_started_at"),
        updated_at=parse_time(item.get("updated_at"), what + " updated_at"),
    )


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt of a run (`GET .../runs/{id}/attempts/{n}`, or the run itself for its latest attempt)."""

    run_id: int
    number: int
    status: str
    conclusion: str | None
    run_started_at: float | None

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.run_id,
            "run_attempt": self.number,
            "status": self.status,
            "conclusion": self.conclusion,
            "run_started_at": _format_optional(self.run_started_at),
        }


def parse_attempt(body: Any) -> Attempt:
    item = _mapping(body, "workflow run attempt")
    what = f"attempt {item.get('run_attempt')!r} of run {item.get('id')!r}"
    conclusion = item.get("conclusion")
    return Attempt(
        run_id=_int(item, "id", what),
        number=_int(item, "run_attempt", what),
        status=_str(item, "status", what),
        conclusion=conclusion if isinstance(conclusion, str) else None,
        run_started_at=_optional_time(item.get("run_started_at"), what + " run_started_at"),
    )


def latest_attempt(run: Run) -> Attempt:
    return Attempt(run.id, run.run_attempt, run.status, run.conclusion, run.run_started_at)


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    number: int
    status: str
    conclusion: str | None

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "number": self.number, "status": self.status, "conclusion": self.conclusion}


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    run_id: int
    run_attempt: int
    name: str
    status: str
    conclusion: str | None
    created_at: float  # queued
    started_at: float | None
    completed_at: float | None
    steps: tuple[Step, ...] = ()

    def as_json(self, steps: Iterable[Step] | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "run_id": self.run_id,
            "run_attempt": self.run_attempt,
            "name": self.name,
            "status": self.status,
            "conclusion": self.conclusion,
            "created_at": format_time(self.created_at),
            "started_at": _format_optional(self.started_at),
            "completed_at": _format_optional(self.completed_at),
            "steps": [step.as_json() for step in (self.steps if steps is None else steps)],
        }


def parse_job(body: Any) -> Job:
    item = _mapping(body, "job")
    what = f"job {item.get('id')!r}"
    steps: list[Step] = []
    for position, raw in enumerate(item.get("steps") or [], start=1):
        step = _mapping(raw, f"{what} step {position}")
        number = step.get("number", position)
        conclusion = step.get("conclusion")
        steps.append(
            Step(
                name=_str(step, "name", f"{what} step {position}"),
                number=number if isinstance(number, int) and not isinstance(number, bool) else position,
                status=_str(step, "status", f"{what} step {position}"),
                conclusion=conclusion if isinstance(conclusion, str) else None,
            )
        )
    conclusion = item.get("conclusion")
    attempt = item.get("run_attempt", 1)
    return Job(
        id=_int(item, "id", what),
        run_id=_int(item, "run_id", what),
        run_attempt=attempt if isinstance(attempt, int) and not isinstance(attempt, bool) and attempt >= 1 else 1,
        name=_str(item, "name", what),
        status=_str(item, "status", what),
        conclusion=conclusion if isinstance(conclusion, str) else None,
        created_at=parse_time(item.get("created_at"), what + " created_at"),
        started_at=_optional_time(item.get("started_at"), what + " started_at"),
        completed_at=_optional_time(item.get("completed_at"), what + " completed_at"),
        steps=tuple(steps),
    )


@dataclass(frozen=True, slots=True)
class ListingQuery:
    """One `created=A..B` query of the runs list: what GitHub counted, and what it let us read."""

    created: str
    total_count: int
    fetched: int
    pages: int


@dataclass
class Listing:
    """How the window was listed. `cut` is how many runs GitHub counted that could not be read."""

    queries: list[ListingQuery] = field(default_factory=list)
    cut: int = 0
    cut_reason: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "queries": [
                {"created": q.created, "total_count": q.total_count, "fetched": q.fetched, "pages": q.pages}
                for q in self.queries
            ],
            "cut": self.cut,
            "cut_reason": self.cut_reason,
        }


@dataclass
class History:
    """Everything one metrics run knows about the repository's workflow runs in the window.

    `attempts` holds the attempts of the runs whose jobs were read (every attempt, the latest included);
    `jobs` the jobs of every attempt of those runs. Runs outside `jobs` were listed but not looked into.
    """

    repository: str
    since: float
    until: float
    workflows: dict[int, Workflow] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)
    attempts: dict[int, dict[int, Attempt]] = field(default_factory=dict)
    jobs: dict[int, tuple[Job, ...]] = field(default_factory=dict)
    listing: Listing = field(default_factory=Listing)
    # run id -> why its jobs were not read although a measure wanted them (request budget, not completed)
    unread: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunRecord:
    """A run measured by an earlier metrics run: what it read then, reusable while the run is unchanged."""

    run_attempt: int
    status: str
    attempts: Mapping[int, Attempt]
    jobs: tuple[Job, ...]


@dataclass
class Reusable:
    """What a previous metrics JSON (`state` or `baseline`) lets this run skip fetching again."""

    runs: dict[int, RunRecord] = field(default_factory=dict)
    probed: dict[int, tuple[bool, bool]] = field(default_factory=dict)  # workflow id -> (pull, prune)
    manifests: dict[str, ManifestFacts] = field(default_factory=dict)  # digest -> facts (content never changes)
