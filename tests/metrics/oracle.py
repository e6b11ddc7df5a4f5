"""An independent computation of what `charon-ci metrics` must report, straight from the generator's
dataclasses (tests/support/run_history.py): no charon_ci code, no HTTP, other ways to the same definitions.

Where the action reads names (step and job names against patterns), the oracle reads what the generator
knows (`GenStep.uses`, `GenJob.carried`, the build job names it generated); percentiles come from the
standard library's `statistics.quantiles` (method "inclusive": linear between closest ranks).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from tests.support.run_history import GenAttempt, GenJob, GenRun, History

FAILED = {"failure", "timed_out", "startup_failure"}


def secs(moment: datetime) -> float:
    return moment.timestamp()


@dataclass
class Dist:
    n: int
    mean: float | None = None
    median: float | None = None
    p90: float | None = None
    p95: float | None = None
    max: float | None = None


def dist(values: Iterable[float]) -> Dist:
    data = list(values)
    if not data:
        return Dist(0)
    if len(data) == 1:
        return Dist(1, data[0], data[0], data[0], data[0], data[0])
    cuts = statistics.quantiles(data, n=100, method="inclusive")
    return Dist(len(data), statistics.fmean(data), statistics.median(data), cuts[89], cuts[94], max(data))


@dataclass
class Expected:
    runs_in_window: list[GenRun]
    read_runs: set[int]  # run ids whose jobs the action must read
    build_time: Dist
    queue: Dist
    execution: Dist
    attempt_conclusions: Counter[str]
    failure_rate: float | None
    flaky_runs: set[int]
    flaky_commits: set[str]
    builds_per_commit: dict[str, int]
    pull_success: int
    pull_failed: int
    pull_workflows: set[str]
    prune_workflows: set[str]
    cleanup_success: int
    cleanup_failed: int
    ci_time: dict[str, float]  # head sha -> seconds
    ci_in_progress: int
    earlier_attempts_read: int  # one GET /attempts/{n} each
    daily_builds: dict[str, list[float]] = field(default_factory=dict)
    daily_failed: Counter[str] = field(default_factory=Counter)


def has_run(job: GenJob) -> bool:
    """A job that ran has steps (skipped jobs and jobs cancelled before they started have none)."""
    return bool(job.steps)


def pull_steps(attempt: GenAttempt, action: str) -> Iterable[tuple[GenJob, str]]:
    for job in attempt.jobs:
        if job.carried:
            continue
        for step in job.steps:
            if step.uses == action:
                yield job, step.conclusion or "none"


def probe(runs: Sequence[GenRun]) -> GenRun | None:
    """The newest (created, id) completed run that succeeded, else the newest completed one."""
    done = sorted((r for r in runs if r.status == "completed"), key=lambda r: (r.created_at, r.run_id or 0))
    ok = [r for r in done if r.conclusion == "success"]
    return (ok or done or [None])[-1]


def expect(
    history: History,
    *,
    since: datetime,
    until: datetime,
    build_files: set[str],
    build_job_files: set[str] | None = None,
    pull_sample: int = 20,
    known: set[int] | None = None,
    probed_in: tuple[datetime, datetime] | None = None,
) -> Expected:
    """What a run over [since, until] reports. `known`: runs an earlier report (the state) measured;
    `probed_in`: the window in which that earlier run recognised the workflows (then nothing is probed now)."""
    window = [run for run in history.runs if since <= run.created_at <= until]
    job_files = build_job_files or build_files
    completed = [run for run in window if run.status == "completed"]
    by_file: dict[str, list[GenRun]] = defaultdict(list)
    for run in window:
        by_file[run.workflow.file].append(run)

    probe_window = window
    if probed_in is not None:
        probe_window = [run for run in history.runs if probed_in[0] <= run.created_at <= probed_in[1]]
    probe_by_file: dict[str, list[GenRun]] = defaultdict(list)
    for run in probe_window:
        probe_by_file[run.workflow.file].append(run)
    probes = {file: probe(runs) for file, runs in probe_by_file.items()}

    def uses(run: GenRun | None, action: str) -> bool:
        return run is not None and any(True for attempt in run.attempts for _ in pull_steps(attempt, action))

    pull_files = {file for file, run in probes.items() if uses(run, "action-pull-image")}
    prune_files = {file for file, run in probes.items() if uses(run, "action-prune")}

    read: set[int] = set()
    for run in completed:
        if run.workflow.file in build_files | job_files | prune_files:
            read.add(run.run_id or 0)
    if probed_in is None:
        read |= {run.run_id or 0 for run in probes.values() if run is not None}
    # Every run the state measured is known again for free (GitHub shows it unchanged here).
    read |= {r.run_id or 0 for r in completed if (r.run_id or 0) in (known or set())}
    others = sorted(
        (r for r in completed if r.workflow.file in pull_files and (r.run_id or 0) not in read),
        key=lambda r: (r.created_at, r.run_id or 0),
        reverse=True,
    )
    read |= {r.run_id or 0 for r in (others if pull_sample == 0 else others[:pull_sample])}

    build_spans: list[float] = []
    queue: list[float] = []
    execution: list[float] = []
    conclusions: Counter[str] = Counter()
    flaky_runs: set[int] = set()
    flaky_commits: set[str] = set()
    daily_builds: dict[str, list[float]] = defaultdict(list)
    daily_failed: Counter[str] = Counter()
    for run in completed:
        if run.workflow.file not in build_files:
            continue
        seen_failure = False
        for attempt in run.attempts:
            conclusions[attempt.conclusion or "none"] += 1
            day = attempt.run_started_at.strftime("%Y-%m-%d")
            if attempt.conclusion in FAILED:
                seen_failure = True
                daily_failed[day] += 1
            elif attempt.conclusion == "success" and seen_failure:
                flaky_runs.add(run.run_id or 0)
                flaky_commits.add(run.head_sha)
            for job in attempt.jobs:
                if job.carried or not has_run(job):
                    continue
                queue.append(secs(job.started_at) - secs(job.created_at))
                if job.completed_at is not None:
                    execution.append(secs(job.completed_at) - secs(job.started_at))
            if attempt.conclusion == "success":
                end = max(secs(job.completed_at) for job in attempt.jobs if job.completed_at is not None)
                span = end - secs(attempt.run_started_at)
                build_spans.append(span)
                daily_builds[day].append(span)
    failed = sum(conclusions[c] for c in FAILED)
    decided = failed + conclusions["success"]

    builds: Counter[str] = Counter()
    for run in completed:
        if run.workflow.file not in job_files:
            continue
        for attempt in run.attempts:
            builds[run.head_sha] += sum(
                1 for job in attempt.jobs if job.name in history.build_job_names and not job.carried and has_run(job)
            )

    def rate_counts(files: set[str], action: str) -> tuple[int, int]:
        good = bad = 0
        for run in completed:
            if run.workflow.file not in files or (run.run_id or 0) not in read:
                continue
            for attempt in run.attempts:
                for job, conclusion in pull_steps(attempt, action):
                    if conclusion == "success":
                        good += 1
                    elif conclusion == "failure" or (conclusion == "cancelled" and job.conclusion == "timed_out"):
                        bad += 1
        return good, bad

    pull_good, pull_bad = rate_counts(pull_files, "action-pull-image")
    prune_good, prune_bad = rate_counts(prune_files, "action-prune")

    pr_shas = {run.head_sha for run in window if run.event == "pull_request"}
    on_sha: dict[str, list[GenRun]] = defaultdict(list)
    for run in window:
        if run.head_sha in pr_shas:
            on_sha[run.head_sha].append(run)
    ci_time: dict[str, float] = {}
    in_progress = 0
    for sha, runs in on_sha.items():
        if any(run.status != "completed" for run in runs):
            in_progress += 1
            continue
        ends = []
        for run in runs:
            finished = [secs(j.completed_at) for j in run.latest.jobs if j.completed_at is not None]
            exact = (run.run_id or 0) in read and finished
            ends.append(max(finished) if exact else secs(run.latest.updated_at))
        ci_time[sha] = max(ends) - min(secs(run.created_at) for run in runs)

    return Expected(
        runs_in_window=window,
        read_runs=read,
        build_time=dist(build_spans),
        queue=dist(queue),
        execution=dist(execution),
        attempt_conclusions=conclusions,
        failure_rate=None if not decided else failed / decided,
        flaky_runs=flaky_runs,
        flaky_commits=flaky_commits,
        builds_per_commit={sha: n for sha, n in builds.items() if n},
        pull_success=pull_good,
        pull_failed=pull_bad,
        pull_workflows=pull_files,
        prune_workflows=prune_files,
        cleanup_success=prune_good,
        cleanup_failed=prune_bad,
        ci_time=ci_time,
        ci_in_progress=in_progress,
        earlier_attempts_read=sum(
            # A build run's earlier attempts are each read; another run's only from attempt 2 to the one before
            # its latest (attempt 1 carries nothing in; the latest's start comes with the run).
            max(0, len(run.attempts) - (1 if run.workflow.file in build_files else 2))
            for run in window
            if (run.run_id or 0) in read and run.status == "completed"
        ),
        daily_builds=dict(daily_builds),
        daily_failed=daily_failed,
    )
