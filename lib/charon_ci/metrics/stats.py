"""The pipeline measures, computed from a `History`: pure, no I/O and no clock.

Definitions (documented for users in action-metrics/README.md and the JSON Schema):
- An attempt's jobs are the jobs whose `run_attempt` is its number. A job of attempt n > 1 created before
  attempt n started, or listed already under an earlier attempt, was carried over by "re-run failed jobs"
  with its old timestamps: it ran once and is not counted again (queue, execution, builds, steps).
- Build time: per successful attempt of a build-workflow run, from the attempt's `run_started_at` to the
  last `completed_at` of its jobs. Attempts that did not succeed are counted by conclusion, not timed.
- Queue time: a job's `started_at - created_at`; execution time: `completed_at - started_at`; for the jobs
  that ran in completed attempts of build runs (not skipped, and not cancelled before it started, which
  shows as no time between `started_at` and `completed_at`). A negative span (GitHub's clocks,
  or a skipped job "completing" before it started) is left out and counted as an anomaly.
- Failure rate: failed attempts / decided attempts of build runs, where failed = failure, timed_out or
  startup_failure and decided = failed + success; every conclusion is shown beside it.
- Flaky: a build run with a failed attempt followed by a successful one (a re-run, no new commit).
- Builds per commit: per head sha, the jobs matching `build-job-pattern` that ran, in every attempt of every
  build-job workflow's runs; over the commits with at least one.
- Pull / cleanup success: steps matching the pull / prune pattern in the jobs of the pull / prune runs
  read: success / (success + failed), a step cancelled by its job's timeout counting as failed (timed_out);
  skipped and other cancelled steps are shown apart.
- CI time per PR head commit: from the first run created on the sha to the last run's end (its last job's
  `completed_at` when its jobs were read, else its `updated_at`), once every run on the sha completed.
Percentiles interpolate linearly between the two nearest ranks (as numpy's default does).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from charon_ci.metrics.model import FAILED_CONCLUSIONS, SUCCESS, Attempt, History, Job, Run
from charon_ci.metrics.roles import Roles, matching_steps

PULL_REQUEST_EVENTS = frozenset({"pull_request", "pull_request_target"})
SLOWEST_JOBS = 10


# ------------------------------------------------------------------------------------------ numbers


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks of an ascending, non-empty sequence."""
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Summary:
    """A distribution of seconds (or counts). Everything but `n` is None when n is 0."""

    n: int
    mean: float | None = None
    median: float | None = None
    p90: float | None = None
    p95: float | None = None
    max: float | None = None
    min: float | None = None

    @classmethod
    def of(cls, values: Iterable[float]) -> Summary:
        ordered = sorted(values)
        if not ordered:
            return cls(0)
        return cls(
            n=len(ordered),
            mean=math.fsum(ordered) / len(ordered),
            median=percentile(ordered, 0.5),
            p90=percentile(ordered, 0.9),
            p95=percentile(ordered, 0.95),
            max=ordered[-1],
            min=ordered[0],
        )

    def as_json(self, digits: int = 3) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, digits)

        return {
            "n": self.n,
            "mean": rounded(self.mean),
            "median": rounded(self.median),
            "p90": rounded(self.p90),
            "p95": rounded(self.p95),
            "max": rounded(self.max),
            "min": rounded(self.min),
        }


def rate(good: int, bad: int) -> float | None:
    return None if good + bad == 0 else bad / (good + bad)


# ------------------------------------------------------------------------------------------ attempts


def attempt_jobs(jobs: Sequence[Job], attempts: Mapping[int, Attempt]) -> dict[int, tuple[list[Job], list[Job]]]:
    """attempt number -> (jobs that ran in it, jobs carried into it from an earlier attempt)."""
    by_attempt: dict[int, list[Job]] = defaultdict(list)
    for job in jobs:
        by_attempt[job.run_attempt].append(job)
    first_seen: dict[int, int] = {}
    for number in sorted(by_attempt):
        for job in by_attempt[number]:
            first_seen.setdefault(job.id, number)
    result: dict[int, tuple[list[Job], list[Job]]] = {}
    for number in sorted(set(by_attempt) | set(attempts)):
        attempt = attempts.get(number)
        started = attempt.run_started_at if attempt is not None else None
        ran: list[Job] = []
        carried: list[Job] = []
        for job in by_attempt.get(number, []):
            earlier = first_seen[job.id] < number
            before_start = number > 1 and started is not None and job.created_at < started
            (carried if earlier or before_start else ran).append(job)
        result[number] = (ran, carried)
    return result


def job_ran(job: Job) -> bool:
    """Skipped jobs, and jobs cancelled before they started (no time between started_at and completed_at),
    did not run."""
    if job.started_at is None or job.conclusion == "skipped":
        return False
    return job.conclusion != "cancelled" or (job.completed_at is not None and job.completed_at > job.started_at)


def step_outcome(job: Job, conclusion: str | None) -> str:
    """A step's conclusion for a success rate: a step cancelled because its job timed out failed."""
    if conclusion == "cancelled" and job.conclusion == "timed_out":
        return "timed_out"
    return conclusion or "none"


# ------------------------------------------------------------------------------------------ results


@dataclass
class BuildTimes:
    attempts: Summary
    queue: Summary
    execution: Summary
    slowest_jobs: list[tuple[str, Summary]]
    not_timed: Counter[str]  # attempts not timed, by why (their conclusion, "no jobs", ...)
    anomalies: Counter[str]  # negative spans left out
    timed: list[tuple[int, int, float, float]]  # (run id, attempt, started at, seconds): the daily chart's points


@dataclass
class Failures:
    conclusions: Counter[str]  # completed attempts of build runs
    failed: int
    decided: int
    rate: float | None
    run_conclusions: Counter[str]  # the latest attempt of every listed build run (read or not)
    flaky_runs: list[int]
    flaky_commits: list[str]


@dataclass
class BuildsPerCommit:
    per_commit: dict[str, int]  # head sha -> build jobs that ran (commits with at least one)
    summary: Summary
    distribution: dict[int, int]  # builds -> commits


@dataclass
class StepRate:
    runs: int  # runs of these workflows in the window (completed)
    runs_read: int
    steps: Counter[str]  # step conclusions
    success: int
    failed: int
    rate: float | None  # success rate
    workflows: list[int]


@dataclass
class PullRequestTime:
    head_sha: str
    label: str
    runs: int
    seconds: float


@dataclass
class CiTime:
    summary: Summary
    commits: list[PullRequestTime]
    in_progress: int  # PR head commits with a run not completed yet
    ends_from_jobs: int  # runs whose end is their last job's completed_at
    ends_from_updated_at: int


@dataclass
class Day:
    date: str  # YYYY-MM-DD
    builds: int  # successful build attempts started that day (timed)
    median_seconds: float | None
    failed: int  # failed build attempts started that day
    completed: int


@dataclass
class WorkflowRuns:
    workflow_id: int
    name: str
    runs: int
    completed: int
    conclusions: Counter[str]


@dataclass
class Metrics:
    build: BuildTimes
    failures: Failures
    builds_per_commit: BuildsPerCommit
    pulls: StepRate
    cleanups: StepRate
    ci_time: CiTime
    daily: list[Day]
    workflows: list[WorkflowRuns]
    build_runs: int
    build_runs_read: int
    build_attempts_read: int
    unread: Counter[str] = field(default_factory=Counter)


# ------------------------------------------------------------------------------------------ compute


def compute(
    history: History,
    roles: Roles,
    build_job_pattern: re.Pattern[str],
    pull_pattern: re.Pattern[str],
    prune_pattern: re.Pattern[str],
) -> Metrics:
    """Every measure over `history`."""
    build_runs = [run for run in history.runs if run.workflow_id in roles.build]
    read_build_runs = [run for run in build_runs if run.id in history.jobs]
    split = {
        run.id: attempt_jobs(history.jobs[run.id], history.attempts.get(run.id, {}))
        for run in history.runs
        if run.id in history.jobs
    }
    build = _build_times(read_build_runs, history, split)
    failures = _failures(build_runs, read_build_runs, history)
    per_commit = _builds_per_commit(history, roles, split, build_job_pattern)
    pulls = _step_rate(history, roles.pull, split, pull_pattern)
    cleanups = _step_rate(history, roles.prune, split, prune_pattern)
    ci_time = _ci_time(history, split)
    daily = _daily(history, build, read_build_runs)
    workflows = _workflow_runs(history)
    unread = Counter(why for run_id, why in history.unread.items())
    return Metrics(
        build=build,
        failures=failures,
        builds_per_commit=per_commit,
        pulls=pulls,
        cleanups=cleanups,
        ci_time=ci_time,
        daily=daily,
        workflows=workflows,
        build_runs=len(build_runs),
        build_runs_read=len(read_build_runs),
        build_attempts_read=sum(len(history.attempts.get(run.id, {})) for run in read_build_runs),
        unread=unread,
    )


def _build_times(
    runs: Sequence[Run], history: History, split: Mapping[int, Mapping[int, tuple[list[Job], list[Job]]]]
) -> BuildTimes:
    spans: list[float] = []
    timed: list[tuple[int, int, float, float]] = []
    queue: list[float] = []
    execution: list[float] = []
    by_name: dict[str, list[float]] = defaultdict(list)
    not_timed: Counter[str] = Counter()
    anomalies: Counter[str] = Counter()
    for run in runs:
        attempts = history.attempts.get(run.id, {})
        for number, attempt in sorted(attempts.items()):
            if not attempt.completed:
                not_timed["not completed"] += 1
                continue
            ran, carried = split[run.id].get(number, ([], []))
            for job in ran:
                if not job_ran(job) or job.started_at is None:
                    continue
                waited = job.started_at - job.created_at
                if waited < 0:
                    anomalies["queue time < 0"] += 1
                else:
                    queue.append(waited)
                if job.completed_at is None:
                    continue
                took = job.completed_at - job.started_at
                if took < 0:
                    anomalies["execution time < 0"] += 1
                else:
                    execution.append(took)
                    by_name[job.name].append(took)
            if attempt.conclusion != SUCCESS:
                not_timed[attempt.conclusion or "no conclusion"] += 1
                continue
            ends = [job.completed_at for job in (*ran, *carried) if job.completed_at is not None]
            if not ends or attempt.run_started_at is None:
                not_timed["no jobs" if not ends else "no start time"] += 1
                continue
            span = max(ends) - attempt.run_started_at
            if span < 0:
                anomalies["build time < 0"] += 1
                continue
            spans.append(span)
            timed.append((run.id, number, attempt.run_started_at, span))
    slowest = sorted(
        ((name, Summary.of(values)) for name, values in by_name.items()),
        key=lambda item: (-(item[1].median or 0.0), item[0]),
    )[:SLOWEST_JOBS]
    return BuildTimes(Summary.of(spans), Summary.of(queue), Summary.of(execution), slowest, not_timed, anomalies, timed)


def _failures(build_runs: Sequence[Run], read_runs: Sequence[Run], history: History) -> Failures:
    conclusions: Counter[str] = Counter()
    flaky_runs: list[int] = []
    flaky_commits: dict[str, None] = {}
    for run in read_runs:
        ordered = [history.attempts[run.id][n] for n in sorted(history.attempts.get(run.id, {}))]
        completed = [a for a in ordered if a.completed]
        conclusions.update(a.conclusion or "none" for a in completed)
        failed_at = [i for i, a in enumerate(completed) if a.conclusion in FAILED_CONCLUSIONS]
        if failed_at and any(a.conclusion == SUCCESS for a in completed[failed_at[0] + 1 :]):
            flaky_runs.append(run.id)
            flaky_commits.setdefault(run.head_sha)
    failed = sum(conclusions[c] for c in FAILED_CONCLUSIONS)
    decided = failed + conclusions[SUCCESS]
    run_conclusions = Counter((run.conclusion or "none") if run.completed else run.status for run in build_runs)
    return Failures(
        conclusions,
        failed,
        decided,
        rate(conclusions[SUCCESS], failed),
        run_conclusions,
        sorted(flaky_runs),
        list(flaky_commits),
    )


def _builds_per_commit(
    history: History,
    roles: Roles,
    split: Mapping[int, Mapping[int, tuple[list[Job], list[Job]]]],
    pattern: re.Pattern[str],
) -> BuildsPerCommit:
    counts: Counter[str] = Counter()
    for run in history.runs:
        if run.workflow_id not in roles.build_jobs or run.id not in split:
            continue
        for ran, _carried in split[run.id].values():
            counts[run.head_sha] += sum(1 for job in ran if job_ran(job) and pattern.search(job.name))
    per_commit = {sha: count for sha, count in counts.items() if count > 0}
    distribution = Counter(per_commit.values())
    return BuildsPerCommit(per_commit, Summary.of(per_commit.values()), dict(sorted(distribution.items())))


def _step_rate(
    history: History,
    workflows: frozenset[int],
    split: Mapping[int, Mapping[int, tuple[list[Job], list[Job]]]],
    pattern: re.Pattern[str],
) -> StepRate:
    runs = [run for run in history.runs if run.workflow_id in workflows and run.completed]
    read = [run for run in runs if run.id in split]
    steps: Counter[str] = Counter()
    for run in read:
        for ran, _carried in split[run.id].values():
            steps.update(step_outcome(job, step.conclusion) for job, step in matching_steps(ran, pattern))
    failed = sum(steps[c] for c in FAILED_CONCLUSIONS)
    success = steps[SUCCESS]
    failure_rate = rate(success, failed)
    return StepRate(
        len(runs),
        len(read),
        steps,
        success,
        failed,
        None if failure_rate is None else 1.0 - failure_rate,
        sorted(workflows),
    )


def _run_end(run: Run, split: Mapping[int, Mapping[int, tuple[list[Job], list[Job]]]]) -> tuple[float, bool]:
    """When a completed run ended: its latest attempt's last job, else `updated_at`. (end, from jobs)."""
    attempts = split.get(run.id)
    if attempts is not None:
        ran, carried = attempts.get(run.run_attempt, ([], []))
        ends = [job.completed_at for job in (*ran, *carried) if job.completed_at is not None]
        if ends:
            return max(ends), True
    return run.updated_at, False


def _ci_time(history: History, split: Mapping[int, Mapping[int, tuple[list[Job], list[Job]]]]) -> CiTime:
    heads = {run.head_sha for run in history.runs if run.event in PULL_REQUEST_EVENTS}
    on_sha: dict[str, list[Run]] = defaultdict(list)
    for run in history.runs:
        if run.head_sha in heads:
            on_sha[run.head_sha].append(run)
    commits: list[PullRequestTime] = []
    in_progress = from_jobs = from_updated = 0
    for sha in sorted(on_sha):
        runs = on_sha[sha]
        if not all(run.completed for run in runs):
            in_progress += 1
            continue
        ends = [_run_end(run, split) for run in runs]
        from_jobs += sum(1 for _, exact in ends if exact)
        from_updated += sum(1 for _, exact in ends if not exact)
        start = min(run.created_at for run in runs)
        end = max(moment for moment, _ in ends)
        numbers = sorted({n for run in runs for n in run.pull_requests})
        pr_runs = [run for run in runs if run.event in PULL_REQUEST_EVENTS]
        label = ", ".join(f"#{n}" for n in numbers) or f"{pr_runs[0].head_repository}:{pr_runs[0].head_branch}"
        commits.append(PullRequestTime(sha, label, len(runs), max(0.0, end - start)))
    return CiTime(Summary.of(c.seconds for c in commits), commits, in_progress, from_jobs, from_updated)


def day_of(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d")


def _daily(history: History, build: BuildTimes, read_runs: Sequence[Run]) -> list[Day]:
    first = datetime.fromtimestamp(history.since, UTC).date()
    last = datetime.fromtimestamp(history.until, UTC).date()
    spans: dict[str, list[float]] = defaultdict(list)
    for _run_id, _number, started, span in build.timed:
        spans[day_of(started)].append(span)
    failed: Counter[str] = Counter()
    completed: Counter[str] = Counter()
    for run in read_runs:
        for attempt in history.attempts.get(run.id, {}).values():
            if not attempt.completed:
                continue
            day = day_of(attempt.run_started_at if attempt.run_started_at is not None else run.created_at)
            completed[day] += 1
            if attempt.conclusion in FAILED_CONCLUSIONS:
                failed[day] += 1
    days: list[Day] = []
    current = first
    while current <= last:
        key = current.isoformat()
        values = sorted(spans.get(key, []))
        days.append(Day(key, len(values), percentile(values, 0.5) if values else None, failed[key], completed[key]))
        current += timedelta(days=1)
    return days


def _workflow_runs(history: History) -> list[WorkflowRuns]:
    grouped: dict[int, list[Run]] = defaultdict(list)
    for run in history.runs:
        grouped[run.workflow_id].append(run)
    result = []
    for workflow_id, runs in sorted(grouped.items()):
        flow = history.workflows.get(workflow_id)
        name = flow.name if flow is not None else (runs[0].name or str(workflow_id))
        completed = [run for run in runs if run.completed]
        result.append(
            WorkflowRuns(
                workflow_id, name, len(runs), len(completed), Counter(r.conclusion or "none" for r in completed)
            )
        )
    return result
