"""A seeded, realistic week of GitHub Actions history for a repository like wikid82/charon, as plain data.

`generate_history(seed=0)` returns a `History` of `GenRun`s (each with its `GenAttempt`s, each with its
`GenJob`s, each with its `GenStep`s): datetimes (UTC, whole seconds) and GitHub's status/conclusion strings.
An independent test oracle reads these dataclasses directly; `load_history(fake, history)` puts the same
history into a `FakeGitHub` (and fills in the `run_id`/`job_id` GitHub assigned), so the code under test reads
it over HTTP. Generating and loading 3,000 runs takes about a second; 30,000 are fine for a bench.

Structure (what an oracle can rely on)
--------------------------------------
Window: runs are created in `[history.start, history.end)` (default 7 days ending `DEFAULT_END`, a midnight);
`history.end` is "now" (give the fake `Clock(start=history.end.timestamp(), frozen=True)`). Exactly `runs`
runs are generated. Days `busy_days` (indices into the window's 24-hour days) take `busy_share` of the
commits, so with the defaults (3,000 runs) those days hold more than 1,000 runs each and a `created` query
for such a day hits the runs list's 1,000-result cap.

Commits: pushes to `main` (also the merge commits of PRs), `development` and `feature/*` branches, and pull
requests with one to six commits (head branches `feature/*`, `fix/*`, `renovate/*`; about one PR in eight
comes from a fork `contributor-N/charon`, `GenRun.head_repo` set, GitHub shows no `pull_requests` for it).
A new commit on a PR cancels the previous commit's runs still running of the workflows with
`GenWorkflow.cancel_in_progress` (docker-build, e2e, quality-checks, and integrations started by the commit's
own event; not those started by `workflow_run`): conclusion `cancelled`. Each commit starts, at its time:

| workflow file (name) | role | on | jobs (`needs` in brackets) |
|---|---|---|---|
| docker-build.yml (Docker Build, Publish & Test) | build | push, PR | build-and-push; scan, test-image [b-a-p] |
| e2e-tests.yml (E2E Tests) | e2e | PR | before migration: build; e2e (1/3)..(3/3) [build]; after: shards only |
| supply-chain-pr.yml, security-pr.yml | other | pull_request | verify / trivy |
| quality-checks.yml (Quality Checks) | other | push, pull_request | lint; backend-tests; frontend-tests |
| codeql.yml (CodeQL) | other | push to main | analyze (go); analyze (javascript-typescript) |
| {crowdsec,cerberus,waf,rate-limit}-integration.yml (Integration Test: ...) | integration | see below | see below |
| container-prune.yml (Container Registry Prune) | prune | schedule, every 6 h | prune |
| nightly-build.yml (Nightly Build) | nightly | schedule, 02:00 | build-nightly |

Scheduled runs use the newest direct push to main before them as head_sha (not PR merge commits).

Integration workflows only run for head branches `main`, `development`, `feature/**` (the spec's filter, so
a fork PR from a `feature/...` branch triggers them too). Before `migrated_at` (default: the middle of the
window) they run on the commit's own event with their own `build-image` job and `integration-test`
[build-image], and e2e has its own `build` job: six build jobs per PR commit. From `migrated_at` on they run on
`workflow_run`: one run per integration workflow each time an attempt of the commit's docker-build run
completes (re-runs and cancellations included), created 6-23 s after that attempt's last job completed
(`created_at` > the build attempt's jobs' `completed_at`), with one `integration-test` job that
is skipped when that build attempt did not succeed (all jobs skipped -> run conclusion `skipped`).
`GenRun.trigger` is then the build `GenRun` and `GenRun.trigger_attempt` its attempt number.

`build_share` (default None: the mix above, about 13-14% docker-build runs) adds pushes to `hotfix/*` branches,
which start docker-build and quality-checks only, until docker-build runs are about that share of the runs.

Build jobs (for a `build-job-pattern`): exactly the jobs named `build-and-push`, `build`, `build-image` and
`build-nightly`; no other job name contains "build". `History.build_job_names` lists them.

Steps and actions: GitHub's API does not say which action a step ran, so workflows name their steps. A step
ran charon-ci's action X (`action-pull-image`, `action-prune`, `action-tag`) when its name either ends in
`(charon-ci/X)` (a named step: "Pull image (charon-ci/action-pull-image)") or is GitHub's default name for an
unnamed `uses:` step, `Run wikid82/charon-ci/X@<40-hex sha>` (cerberus and rate-limit use that form).
`GenStep.uses` holds X for the oracle (None for other steps). Pull attempts: the pull steps in scan,
integration-test (after migration) and e2e shards (after migration); a pull step that fails fails its job
(later steps `skipped`, post steps still run); a skipped pull step (job cancelled first) is no attempt.
Cleanup: container-prune's `prune` job, whose step "Prune registry (charon-ci/action-prune)" succeeds or fails.

Attempts: attempt 1 starts 0-3 s after `created_at`. A failed or timed-out attempt (not a cancelled one) is
re-run with probability 0.4, 5-180 min after its `updated_at` (up to attempt 3): "Re-run failed jobs"
(`GenAttempt.rerun == "failed"`) carries the jobs that succeeded into the new attempt unchanged (same times
and steps, `GenJob.carried` True) and re-runs the others; "Re-run all jobs" (`"all"`) re-runs every job. 1% of
successful attempts are re-run in full. `created_at` stays the first attempt's; each attempt has its own
`run_started_at` and `updated_at`. So a "flaky" commit is one whose attempt failed and a later attempt of the
same run succeeded.

Timestamps: `created_at <= run_started_at <= updated_at` per attempt; jobs `created_at` (queued, after the
attempt starts and after their needs complete) `<= started_at` (2-40 s queue, 5% 1-5 min, 0.5% 10-40 min,
and half the jobs queued in the last 15 minutes wait 10-40 min: runners are short at the end)
`<= completed_at`; steps lie inside their job. Known oddities, on purpose: a third of skipped jobs report
`completed_at` one to three seconds before `started_at`; carried jobs start before their attempt's
`run_started_at`; 3% of final attempts have `updated_at` hours after their last job completed. Attempt
conclusion: `cancelled` if a job was cancelled, else `timed_out` if one timed out, else `failure` if one
failed, else `skipped` if every job was skipped, else `success`.

At `history.end` some runs are still going: their last attempt is `in_progress` (a job started) or `queued`
(none started), with `conclusion` None; jobs not created yet are absent, queued jobs have no steps.
"""

from __future__ import annotations

import bisect
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from tests.support.fakegithub import FakeGitHub, Pull, Run

DEFAULT_END = datetime(2025, 9, 15, tzinfo=UTC)
REPO = "wikid82/charon"
ACTIONS_OWNER = "wikid82"
BUILD_JOB_NAMES = ("build-and-push", "build", "build-image", "build-nightly")
Role = Literal["build", "integration", "e2e", "prune", "nightly", "other"]


# --- the history's data ----------------------------------------------------------------------------------------

@dataclass(slots=True)
class GenStep:
    name: str
    number: int
    status: str  # completed | in_progress | queued
    conclusion: str | None  # success | failure | cancelled | skipped | None (not completed)
    started_at: datetime | None
    completed_at: datetime | None
    uses: str | None = None  # "action-pull-image" etc. when the step ran that charon-ci action


@dataclass(slots=True)
class GenJob:
    name: str
    status: str  # completed | in_progress | queued
    conclusion: str | None
    created_at: datetime
    started_at: datetime
    completed_at: datetime | None
    steps: list[GenStep]
    labels: list[str] = field(default_factory=lambda: ["ubuntu-latest"])
    carried: bool = False  # copied unchanged from the previous attempt by "Re-run failed jobs"
    job_id: int | None = None  # set by load_history


@dataclass(slots=True)
class GenAttempt:
    number: int
    status: str  # completed | in_progress | queued
    conclusion: str | None
    run_started_at: datetime
    updated_at: datetime
    jobs: list[GenJob]
    rerun: Literal["", "all", "failed"] = ""  # how this attempt was started ("" = the first)
    actor: str | None = None  # who started a re-run


@dataclass(slots=True)
class GenWorkflow:
    file: str  # docker-build.yml
    name: str  # Docker Build, Publish & Test
    role: Role
    cancel_in_progress: bool = False

    @property
    def path(self) -> str:
        return f".github/workflows/{self.file}"


@dataclass(slots=True)
class GenPull:
    number: int
    head_ref: str
    head_owner: str | None  # a fork's owner, None for a branch of the repository
    user: str
    title: str
    created_at: datetime
    commits: list[str] = field(default_factory=list)  # shas, oldest first, those pushed before history.end
    merged_at: datetime | None = None
    merge_commit_sha: str | None = None

    @property
    def from_fork(self) -> bool:
        return self.head_owner is not None

    @property
    def head_sha(self) -> str:
        return self.commits[-1]


@dataclass(slots=True)
class GenRun:
    workflow: GenWorkflow
    event: str  # push | pull_request | workflow_run | schedule
    head_branch: str
    head_sha: str
    actor: str
    display_title: str
    created_at: datetime
    attempts: list[GenAttempt]
    run_number: int = 0
    head_repo: str | None = None  # "contributor-3/charon" for a fork PR's runs
    pull: GenPull | None = None
    trigger: GenRun | None = None  # workflow_run: the build run whose attempt completion started this run
    trigger_attempt: int | None = None
    run_id: int | None = None  # set by load_history

    @property
    def latest(self) -> GenAttempt:
        return self.attempts[-1]

    @property
    def status(self) -> str:
        return self.attempts[-1].status

    @property
    def conclusion(self) -> str | None:
        return self.attempts[-1].conclusion


@dataclass
class History:
    repo: str
    seed: int
    start: datetime
    end: datetime  # "now"
    migrated_at: datetime
    workflows: list[GenWorkflow]
    runs: list[GenRun]  # sorted by created_at (then generation order)
    pulls: list[GenPull]
    build_job_names: tuple[str, ...] = BUILD_JOB_NAMES

    def runs_of(self, workflow_file: str) -> list[GenRun]:
        return [run for run in self.runs if run.workflow.file == workflow_file]

    def runs_per_day(self) -> dict[str, int]:
        """UTC date (YYYY-MM-DD) -> runs created that day."""
        return dict(sorted(Counter(run.created_at.strftime("%Y-%m-%d") for run in self.runs).items()))


# --- workflow and job shapes -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StepSpec:
    name: str
    share: float  # of the job's running time
    fail: float = 0.0  # chance that the job fails at this step
    uses: str | None = None
    always: bool = False  # post steps run after a failure too


@dataclass(frozen=True, slots=True)
class JobSpec:
    name: str
    minutes: tuple[float, float]
    steps: tuple[StepSpec, ...]
    needs: tuple[str, ...] = ()
    timeout_rate: float = 0.0  # chance the job hangs until its timeout-minutes
    timeout_minutes: int = 30
    needs_green_upstream: bool = False  # workflow_run jobs: `if: github.event.workflow_run.conclusion == 'success'`


def _pinned(action: str) -> str:
    return f"Run {ACTIONS_OWNER}/charon-ci/{action}@" + "3f1c2b7a9d0e4c5b6a7f8e9d0c1b2a3f4e5d6c7b"


CHECKOUT = StepSpec("Checkout (actions/checkout)", 0.02)
POST_CHECKOUT = StepSpec("Post Checkout (actions/checkout)", 0.005, always=True)


def _pull_step(named: bool) -> StepSpec:
    name = "Pull image (charon-ci/action-pull-image)" if named else _pinned("action-pull-image")
    return StepSpec(name, 0.12, fail=0.035, uses="action-pull-image")


def _build_job(name: str, minutes: tuple[float, float], fail: float, *, tag: bool = True,
               needs: tuple[str, ...] = ()) -> JobSpec:
    steps = [CHECKOUT, StepSpec("Set up Buildx (docker/setup-buildx-action)", 0.03),
             StepSpec("Log in to GHCR (docker/login-action)", 0.01)]
    if tag:
        steps.append(StepSpec("Compute tags (charon-ci/action-tag)", 0.01, uses="action-tag"))
    steps += [StepSpec("Build and push (docker/build-push-action)", 0.85, fail=fail),
              StepSpec("Upload image artifact (actions/upload-artifact)", 0.07), POST_CHECKOUT]
    return JobSpec(name, minutes, tuple(steps), needs=needs)


def _tests_job(name: str, minutes: tuple[float, float], fail: float, *, needs: tuple[str, ...] = (),
               pull: bool | None = None, green_upstream: bool = False, timeout_rate: float = 0.0) -> JobSpec:
    steps = [CHECKOUT]
    if pull is not None:
        steps.append(_pull_step(pull))
    steps += [StepSpec("Run tests", 0.8, fail=fail), POST_CHECKOUT]
    return JobSpec(name, minutes, tuple(steps), needs=needs, needs_green_upstream=green_upstream,
                   timeout_rate=timeout_rate, timeout_minutes=int(minutes[1] * 2))


DOCKER_BUILD = GenWorkflow("docker-build.yml", "Docker Build, Publish & Test", "build", cancel_in_progress=True)
E2E = GenWorkflow("e2e-tests.yml", "E2E Tests", "e2e", cancel_in_progress=True)
SUPPLY_CHAIN = GenWorkflow("supply-chain-pr.yml", "Supply Chain Verification (PR)", "other")
SECURITY = GenWorkflow("security-pr.yml", "Security Scan (PR)", "other")
QUALITY = GenWorkflow("quality-checks.yml", "Quality Checks", "other", cancel_in_progress=True)
CODEQL = GenWorkflow("codeql.yml", "CodeQL", "other")
PRUNE = GenWorkflow("container-prune.yml", "Container Registry Prune", "prune")
NIGHTLY = GenWorkflow("nightly-build.yml", "Nightly Build", "nightly")
INTEGRATIONS = (
    (GenWorkflow("crowdsec-integration.yml", "Integration Test: CrowdSec", "integration", True), True),
    (GenWorkflow("cerberus-integration.yml", "Integration Test: Cerberus", "integration", True), False),
    (GenWorkflow("waf-integration.yml", "Integration Test: WAF", "integration", True), True),
    (GenWorkflow("rate-limit-integration.yml", "Integration Test: Rate Limit", "integration", True), False),
)  # (workflow, names its pull step)
WORKFLOWS = [DOCKER_BUILD, E2E, SUPPLY_CHAIN, SECURITY, QUALITY, CODEQL, PRUNE, NIGHTLY,
             *(flow for flow, _ in INTEGRATIONS)]

SHAPES: dict[str, tuple[JobSpec, ...]] = {
    "docker-build:pr": (_build_job("build-and-push", (6, 9), 0.03),
                        _tests_job("scan", (2, 4), 0.02, needs=("build-and-push",), pull=True),
                        _tests_job("test-image", (3, 5), 0.03, needs=("build-and-push",))),
    "docker-build:push": (_build_job("build-and-push", (12, 16), 0.03),
                          _tests_job("scan", (2, 4), 0.02, needs=("build-and-push",), pull=True),
                          _tests_job("test-image", (3, 5), 0.03, needs=("build-and-push",))),
    "e2e:old": (_build_job("build", (9, 11), 0.03, tag=False),
                *(_tests_job(f"e2e ({i}/3)", (6, 10), 0.05, needs=("build",), timeout_rate=0.01) for i in (1, 2, 3))),
    "e2e:new": tuple(_tests_job(f"e2e ({i}/3)", (6, 10), 0.05, pull=True, timeout_rate=0.01) for i in (1, 2, 3)),
    "integration:old": (_build_job("build-image", (8, 11), 0.03, tag=False),
                        _tests_job("integration-test", (4, 8), 0.04, needs=("build-image",))),
    "integration:new:named": (_tests_job("integration-test", (4, 9), 0.04, pull=True, green_upstream=True),),
    "integration:new:pinned": (_tests_job("integration-test", (4, 9), 0.04, pull=False, green_upstream=True),),
    "supply-chain": (JobSpec("verify", (2, 4), (CHECKOUT, StepSpec(
        "Download image artifact (actions/download-artifact)", 0.3), StepSpec("Verify SBOM", 0.6, fail=0.02))),),
    "security": (JobSpec("trivy", (2, 5), (CHECKOUT, StepSpec(
        "Download image artifact (actions/download-artifact)", 0.3), StepSpec("Scan", 0.6, fail=0.03))),),
    "quality": (_tests_job("lint", (1, 2), 0.03), _tests_job("backend-tests", (4, 7), 0.04),
                _tests_job("frontend-tests", (3, 5), 0.03)),
    "codeql": (_tests_job("analyze (go)", (5, 9), 0.01), _tests_job("analyze (javascript-typescript)", (4, 8), 0.01)),
    "prune": (JobSpec("prune", (1, 4), (
        StepSpec("Prune registry (charon-ci/action-prune)", 0.8, fail=0.04, uses="action-prune"),
        StepSpec("Upload prune report (actions/upload-artifact)", 0.1, always=True))),),
    "nightly": (_build_job("build-nightly", (14, 18), 0.04),),
}


# --- simulation --------------------------------------------------------------------------------------------------

def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(slots=True)
class _Outcome:
    """One job's result while an attempt is played: when dependents may start, and how it ended."""

    done_at: int
    conclusion: str | None  # None: not finished by the end of the history


class _Sim:
    def __init__(self, rng: random.Random, end: int) -> None:
        self.rng = rng
        self.end = end

    def queue_delay(self, ready: int) -> int:
        roll = self.rng.random()
        if roll < 0.005 or (ready > self.end - 900 and roll < 0.5):  # runners short, also in the last 15 min
            return self.rng.randint(600, 2400)
        if roll < 0.055:
            return self.rng.randint(60, 300)
        return self.rng.randint(2, 40)

    def steps(self, spec: JobSpec, started: int, cancel_at: int | None) -> tuple[list[GenStep], int, str | None]:
        """Play a started job's steps: (steps, completed_at or the end, conclusion or None if still running)."""
        rng = self.rng
        seconds = int(rng.uniform(*spec.minutes) * 60)
        hang = rng.random() < spec.timeout_rate
        out: list[GenStep] = []
        clock = started + rng.randint(1, 4)
        if clock > self.end:  # still setting up at the end of the history
            out.append(GenStep("Set up job", 1, "in_progress", None, _at(started), None))
            for later in spec.steps:
                out.append(GenStep(later.name, len(out) + 1, "queued", None, None, None, later.uses))
            out.append(GenStep("Complete job", len(out) + 1, "queued", None, None, None))
            return out, self.end, None
        out.append(GenStep("Set up job", 1, "completed", "success", _at(started), _at(clock)))
        if cancel_at is not None:
            cancel_at = max(cancel_at, clock)  # a cancel during set-up lands when set-up ends
        failed: str | None = None  # "failure" | "timed_out" | "cancelled"
        for spec_step in spec.steps:
            number = len(out) + 1
            if failed is not None and not spec_step.always:
                out.append(GenStep(spec_step.name, number, "completed", "skipped", _at(clock), _at(clock),
                                   spec_step.uses))
                continue
            length = max(1, int(seconds * spec_step.share))
            conclusion = "success"
            if failed is None and hang and spec_step.fail > 0:
                length = max(length, spec.timeout_minutes * 60 - (clock - started))
                conclusion = failed = "timed_out"
            elif failed is None and spec_step.fail and rng.random() < spec_step.fail:
                length = max(1, int(length * rng.uniform(0.05, 1.0)))
                conclusion = failed = "failure"
            finish = clock + length
            if cancel_at is not None and finish > cancel_at and cancel_at < self.end:  # cancelled mid-step
                out.append(GenStep(spec_step.name, number, "completed", "cancelled", _at(clock), _at(cancel_at),
                                   spec_step.uses))
                return self._close(out, spec, cancel_at, "cancelled")
            if finish > self.end:  # still running at the end of the history
                out.append(GenStep(spec_step.name, number, "in_progress", None, _at(clock), None, spec_step.uses))
                for later in spec.steps[spec.steps.index(spec_step) + 1:]:
                    out.append(GenStep(later.name, len(out) + 1, "queued", None, None, None, later.uses))
                out.append(GenStep("Complete job", len(out) + 1, "queued", None, None, None))
                return out, self.end, None
            out.append(GenStep(spec_step.name, number, "completed",
                               "cancelled" if conclusion == "timed_out" else conclusion, _at(clock), _at(finish),
                               spec_step.uses))
            clock = finish
        return self._close(out, spec, clock, failed or "success")

    def _close(self, out: list[GenStep], spec: JobSpec, clock: int,
               conclusion: str) -> tuple[list[GenStep], int, str | None]:
        if conclusion == "cancelled":
            done = {s.name for s in out}
            for s in spec.steps:
                if s.name not in done:
                    out.append(GenStep(s.name, len(out) + 1, "completed", "skipped", _at(clock), _at(clock), s.uses))
        finish = clock + self.rng.randint(0, 2)
        if finish > self.end:
            out.append(GenStep("Complete job", len(out) + 1, "in_progress", None, _at(clock), None))
            return out, self.end, None
        out.append(GenStep("Complete job", len(out) + 1, "completed", "success", _at(clock), _at(finish)))
        return out, finish, conclusion

    def attempt(self, specs: tuple[JobSpec, ...], number: int, start: int, *, upstream_ok: bool = True,
                cancel_at: int | None = None, carried: dict[str, GenJob] | None = None,
                rerun: Literal["", "all", "failed"] = "", actor: str | None = None) -> GenAttempt | None:
        """Play one attempt from `start` (its run_started_at). None when it would start after the end."""
        if start >= self.end:
            return None
        rng = self.rng
        jobs: list[GenJob] = []
        outcomes: dict[str, _Outcome] = {}
        unfinished = False
        for spec in specs:
            kept = (carried or {}).get(spec.name)
            if kept is not None:
                jobs.append(GenJob(kept.name, kept.status, kept.conclusion, kept.created_at, kept.started_at,
                                   kept.completed_at, list(kept.steps), list(kept.labels), carried=True))
                outcomes[spec.name] = _Outcome(start, kept.conclusion)
                continue
            if any(need not in outcomes for need in spec.needs):
                continue  # a need was never queued (cancelled run, or the end came first: then unfinished is set)
            if any(outcomes[need].conclusion is None for need in spec.needs):
                unfinished = True  # waits for a job still running at the end
                continue
            ready = max([start + rng.randint(1, 4)] + [outcomes[need].done_at + rng.randint(1, 3)
                                                        for need in spec.needs])
            if cancel_at is not None and ready >= cancel_at:
                continue  # the run was cancelled before this job was queued
            if ready >= self.end:
                unfinished = True
                continue
            blocked = any(outcomes[need].conclusion != "success" for need in spec.needs)
            if blocked or (spec.needs_green_upstream and not upstream_ok):
                # Skipped: no steps; GitHub's oddity of completing before it started, now and then.
                late = ready + rng.randint(1, 3) if rng.random() < 1 / 3 else ready
                jobs.append(GenJob(spec.name, "completed", "skipped", _at(ready), _at(late), _at(ready), []))
                outcomes[spec.name] = _Outcome(ready, "skipped")
                continue
            started = ready + self.queue_delay(ready)
            if cancel_at is not None and started >= cancel_at:
                jobs.append(GenJob(spec.name, "completed", "cancelled", _at(ready), _at(cancel_at), _at(cancel_at),
                                   []))
                outcomes[spec.name] = _Outcome(cancel_at, "cancelled")
                continue
            if started >= self.end:
                jobs.append(GenJob(spec.name, "queued", None, _at(ready), _at(ready), None, []))
                outcomes[spec.name] = _Outcome(self.end, None)
                unfinished = True
                continue
            steps, finished, conclusion = self.steps(spec, started, cancel_at)
            if conclusion is None:
                unfinished = True
            jobs.append(GenJob(spec.name, "completed" if conclusion else "in_progress", conclusion, _at(ready),
                               _at(started), _at(finished) if conclusion else None, steps))
            outcomes[spec.name] = _Outcome(finished, conclusion)
        jobs.sort(key=lambda job: not job.carried)  # as GitHub numbers them: carried jobs exist first
        last = max([start] + [o.done_at for o in outcomes.values() if o.conclusion is not None] +
                   [int(j.started_at.timestamp()) for j in jobs if j.status == "in_progress"])
        if unfinished or not jobs:
            status = "in_progress" if any(j.status != "queued" for j in jobs if not j.carried) else "queued"
            return GenAttempt(number, status, None, _at(start), _at(min(last, self.end)), jobs, rerun, actor)
        conclusions = {j.conclusion for j in jobs}
        for worst in ("cancelled", "timed_out", "failure"):
            if worst in conclusions:
                conclusion = worst
                break
        else:
            conclusion = "skipped" if conclusions == {"skipped"} else "success"
        updated = last + rng.randint(1, 5)
        if updated > self.end:
            return GenAttempt(number, "in_progress", None, _at(start), _at(last), jobs, rerun, actor)
        return GenAttempt(number, "completed", conclusion, _at(start), _at(updated), jobs, rerun, actor)


@dataclass(frozen=True, slots=True)
class _Source:
    """What started a run: the commit (or schedule) it ran for."""

    event: str
    branch: str
    sha: str
    actor: str
    title: str
    pull: GenPull | None = None
    head_repo: str | None = None


class _Generator:
    def __init__(self, *, runs: int, seed: int, start: int, end: int, migrated_at: int, busy_days: tuple[int, ...],
                 busy_share: float, repo: str, build_share: float | None = None) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
        self.sim = _Sim(self.rng, end)
        self.target, self.start, self.end, self.migrated_at, self.repo = runs, start, end, migrated_at, repo
        days = (end - start) // 86400
        busy = [d for d in busy_days if 0 <= d < days]
        quiet = days - len(busy)
        self.day_weights = [(busy_share / len(busy) if d in busy else (1 - busy_share) / quiet) if busy and quiet
                            else 1 / days for d in range(days)]
        self.build_share = build_share
        self.runs: list[GenRun] = []
        self.day_counts = [0] * days
        self.pulls: list[GenPull] = []
        self.main_pushes: list[tuple[int, str]] = []  # (time, sha), for scheduled runs
        self.next_pull = 1200
        self.maintainers = ["wikid82", "alice-dev", "bob-ops"]
        self.contributors = [f"contributor-{n}" for n in range(1, 9)]

    # -- helpers --
    def sha(self) -> str:
        return f"{self.rng.getrandbits(160):040x}"

    def moment(self) -> int:
        """A commit time: on a day still short of its share of the runs (so busy days reliably get theirs)."""
        rng = self.rng
        short = [max(0.0, weight * self.target - count) for weight, count in zip(self.day_weights, self.day_counts,
                                                                               strict=True)]
        day = rng.choices(range(len(short)), short if any(short) else self.day_weights)[0]
        hour = rng.choices(range(24), [1, 1, 1, 1, 1, 2, 3, 5, 8, 9, 9, 9, 8, 9, 9, 9, 8, 7, 6, 5, 4, 3, 2, 1])[0]
        return self.start + day * 86400 + hour * 3600 + rng.randrange(3600)

    def add(self, run: GenRun) -> GenRun:
        self.runs.append(run)
        day = (int(run.created_at.timestamp()) - self.start) // 86400
        if 0 <= day < len(self.day_counts):
            self.day_counts[day] += 1
        return run

    # -- one run with its attempts --
    def play(self, flow: GenWorkflow, shape: str, source: _Source, *, created: int, cancel_at: int | None = None,
             trigger: GenRun | None = None, trigger_attempt: int | None = None,
             upstream_ok: bool = True) -> GenRun | None:
        rng = self.rng
        specs = SHAPES[shape]
        if not flow.cancel_in_progress:
            cancel_at = None
        first = self.sim.attempt(specs, 1, created + rng.randint(0, 3), upstream_ok=upstream_ok, cancel_at=cancel_at)
        if first is None:
            return None
        run = self.add(GenRun(flow, "workflow_run" if trigger else source.event, source.branch, source.sha,
                              source.actor, source.title, _at(created), [first], head_repo=source.head_repo,
                              pull=source.pull, trigger=trigger, trigger_attempt=trigger_attempt))
        while len(run.attempts) < 3 and run.status == "completed":
            last = run.latest
            roll = rng.random()
            if last.conclusion in {"failure", "timed_out"} and roll < 0.4:
                kind: Literal["all", "failed"] = "failed" if rng.random() < 0.6 else "all"
            elif last.conclusion == "success" and roll < 0.01:
                kind = "all"
            else:
                break
            at = int(last.updated_at.timestamp()) + rng.randint(300, 10_800)
            carried = {j.name: j for j in last.jobs if j.conclusion == "success"} if kind == "failed" else None
            nxt = self.sim.attempt(specs, len(run.attempts) + 1, at, upstream_ok=upstream_ok, carried=carried,
                                   rerun=kind, actor=rng.choice(self.maintainers))
            if nxt is None:
                break
            run.attempts.append(nxt)
        final = run.latest
        if final.status == "completed" and rng.random() < 0.03:
            final.updated_at += timedelta(hours=rng.randint(1, 30))  # updated_at can move after the run ended
            final.updated_at = min(final.updated_at, _at(self.end))
        return run

    # -- what a commit starts --
    def commit(self, *, event: str, branch: str, sha: str, actor: str, title: str, at: int,
               pull: GenPull | None = None, head_repo: str | None = None, cancel_at: int | None = None) -> None:
        migrated = at >= self.migrated_at
        is_pr = event == "pull_request"
        common = _Source(event, branch, sha, actor, title, pull, head_repo)

        def gap() -> int:
            return at + self.rng.randint(0, 20)

        build = self.play(DOCKER_BUILD, "docker-build:pr" if is_pr else "docker-build:push", common, created=gap(),
                          cancel_at=cancel_at)
        if is_pr:
            self.play(E2E, "e2e:new" if migrated else "e2e:old", common, created=gap(), cancel_at=cancel_at)
            self.play(SUPPLY_CHAIN, "supply-chain", common, created=gap(), cancel_at=cancel_at)
            self.play(SECURITY, "security", common, created=gap(), cancel_at=cancel_at)
        self.play(QUALITY, "quality", common, created=gap(), cancel_at=cancel_at)
        if event == "push" and branch == "main":
            self.play(CODEQL, "codeql", common, created=gap(), cancel_at=cancel_at)
        if not (branch in {"main", "development"} or branch.startswith("feature/")):
            return
        if not migrated:
            for flow, _ in INTEGRATIONS:
                self.play(flow, "integration:old", common, created=gap(), cancel_at=cancel_at)
            return
        if build is None:
            return
        for attempt in build.attempts:  # workflow_run fires on every completed attempt
            if attempt.status != "completed":
                continue
            # When the attempt completed (its updated_at may have moved on since).
            done = max((int(j.completed_at.timestamp()) for j in attempt.jobs if j.completed_at),
                       default=int(attempt.run_started_at.timestamp())) + 3
            for flow, named in INTEGRATIONS:
                self.play(flow, "integration:new:named" if named else "integration:new:pinned", common,
                          created=done + self.rng.randint(3, 20), trigger=build, trigger_attempt=attempt.number,
                          upstream_ok=attempt.conclusion == "success")

    def pull_request(self, at: int | None = None) -> None:
        rng = self.rng
        fork = rng.random() < 0.125
        bot = not fork and rng.random() < 0.15
        owner = rng.choice(self.contributors) if fork else None
        user = owner or ("renovate[bot]" if bot else rng.choice(self.maintainers))
        topic = f"{rng.choice(['proxy', 'waf', 'crowdsec', 'ui', 'auth', 'certs', 'logs'])}-{rng.randrange(1000)}"
        prefix = "renovate/" if bot else rng.choice(["feature/", "feature/", "feature/", "fix/"])
        pull = GenPull(self.next_pull, prefix + topic, owner, user, f"Update {topic}", _at(0))
        self.next_pull += 1
        first = self.moment() if at is None else at
        times = [first]
        for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 4, 6]) - 1):
            times.append(times[-1] + (rng.randint(60, 600) if rng.random() < 0.3 else rng.randint(900, 14_400)))
        times = [t for t in times if t < self.end]
        pull.created_at = _at(first - rng.randint(0, 300))
        head_repo = f"{owner}/charon" if owner else None
        for index, moment in enumerate(times):
            sha = self.sha()
            pull.commits.append(sha)
            following = times[index + 1] if index + 1 < len(times) else None
            self.commit(event="pull_request", branch=pull.head_ref, sha=sha, actor=user, title=pull.title, at=moment,
                        pull=pull, head_repo=head_repo, cancel_at=following + rng.randint(2, 8) if following else None)
        self.pulls.append(pull)
        merge_at = times[-1] + rng.randint(1800, 10_800)
        if not fork and merge_at < self.end and rng.random() < 0.7:
            pull.merged_at, pull.merge_commit_sha = _at(merge_at), self.sha()
            self.push("main", merge_at, sha=pull.merge_commit_sha, actor=rng.choice(self.maintainers),
                      title=f"{pull.title} (#{pull.number})")

    def push(self, branch: str, at: int, *, sha: str | None = None, actor: str | None = None,
             title: str | None = None) -> None:
        sha = sha or self.sha()
        if branch == "main":
            bisect.insort(self.main_pushes, (at, sha))
        self.commit(event="push", branch=branch, sha=sha, actor=actor or self.rng.choice(self.maintainers),
                    title=title or f"Push to {branch}", at=at)

    def scheduled(self) -> None:
        rng = self.rng
        for at in range(self.start + 17 * 60, self.end, 6 * 3600):
            source = _Source("schedule", "main", self.main_sha(at), "wikid82", PRUNE.name)
            self.play(PRUNE, "prune", source, created=at + rng.randint(120, 1200))
        for at in range(self.start + 2 * 3600, self.end, 86400):
            source = _Source("schedule", "main", self.main_sha(at), "wikid82", NIGHTLY.name)
            self.play(NIGHTLY, "nightly", source, created=at + rng.randint(120, 1200))

    def _build_runs(self) -> int:
        return sum(1 for run in self.runs if run.workflow is DOCKER_BUILD)

    def main_sha(self, at: int) -> str:
        index = bisect.bisect_right(self.main_pushes, (at, "g"))
        return self.main_pushes[index - 1][1] if index else "0" * 39 + "1"

    def generate(self) -> tuple[list[GenRun], list[GenPull]]:
        rng = self.rng
        # Direct pushes to main first (scheduled runs build the main head of their time), then the rest.
        for _ in range(max(3, self.target // 250)):
            self.push("main", self.moment())
        self.scheduled()
        # Work in the last half hour: runs still queued or in progress at the end.
        for _ in range(max(2, self.target // 1000)):
            self.pull_request(at=self.end - rng.randint(60, 1800))
        self.push("main", self.end - rng.randint(300, 1500))
        while len(self.runs) < self.target:
            if self.build_share is not None and self._build_runs() < self.build_share * (len(self.runs) + 2):
                # A push to a hotfix/* branch starts docker-build and quality-checks only (no integrations,
                # no e2e): the cheapest way to raise the share of build runs. Off by default (same histories).
                self.push(f"hotfix/{rng.choice(['tls', 'dns', 'ui', 'auth'])}-{rng.randrange(100)}", self.moment())
                continue
            roll = rng.random()
            if roll < 0.7:
                self.pull_request()
            elif roll < 0.85:
                self.push("development", self.moment())
            else:
                self.push(f"feature/{rng.choice(['ipv6', 'sso', 'metrics', 'acme'])}-{rng.randrange(100)}",
                          self.moment())
        # Drop the overshoot from the last generated runs (children were generated after their parents).
        kept = self.runs[: self.target]
        order = sorted(range(len(kept)), key=lambda i: (kept[i].created_at, i))
        ordered = [kept[i] for i in order]
        numbers: Counter[str] = Counter()
        for run in ordered:
            numbers[run.workflow.file] += 1
            run.run_number = numbers[run.workflow.file]
        used = {id(run.pull) for run in ordered if run.pull is not None}
        return ordered, [pull for pull in self.pulls if id(pull) in used]


def generate_history(*, runs: int = 3000, seed: int = 0, days: int = 7, end: datetime = DEFAULT_END,
                     migrated_at: datetime | None = None, busy_days: tuple[int, ...] = (2, 3),
                     busy_share: float = 0.8, repo: str = REPO, build_share: float | None = None) -> History:
    """A week (`days`) of history ending at `end` with exactly `runs` runs. See the module docstring.

    `build_share` (None: the natural mix, about 13-14% docker-build runs) raises the share of docker-build runs
    to about that fraction of all runs by adding pushes to `hotfix/*` branches (docker-build + quality-checks).
    """
    stop = int(end.timestamp())
    begin = stop - days * 86400
    migrated = migrated_at or _at(begin + days * 86400 // 2)
    generator = _Generator(runs=runs, seed=seed, start=begin, end=stop, migrated_at=int(migrated.timestamp()),
                           busy_days=busy_days, busy_share=busy_share, repo=repo, build_share=build_share)
    generated, pulls = generator.generate()
    return History(repo, seed, _at(begin), _at(stop), migrated, list(WORKFLOWS), generated, pulls)


# --- into the fake -----------------------------------------------------------------------------------------------

def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _step_dicts(job: GenJob) -> list[dict[str, object]]:
    return [{"name": s.name, "number": s.number, "status": s.status, "conclusion": s.conclusion,
             "started_at": _epoch(s.started_at), "completed_at": _epoch(s.completed_at)} for s in job.steps]


def load_history(fake: FakeGitHub, history: History) -> None:
    """Put `history` into `fake`: repository, workflows, pull requests, runs with every attempt, jobs and steps
    (in created order, so run ids grow with time as on GitHub). Sets `run_id` and `job_id` on the history."""
    repo = fake.add_repo(history.repo, owner_type="User")
    flows = {flow.file: fake.add_workflow(repo, flow.path, name=flow.name) for flow in history.workflows}
    pulls: dict[int, Pull] = {}
    for pull in history.pulls:
        pulls[pull.number] = fake.add_pull(
            repo, pull.head_ref, head_sha=pull.head_sha, head_owner=pull.head_owner, number=pull.number,
            user=pull.user, title=pull.title, created_at=pull.created_at.timestamp(),
            merged_at=_epoch(pull.merged_at), merge_commit_sha=pull.merge_commit_sha, commits=pull.commits)
    for gen in history.runs:
        first = gen.attempts[0]
        run: Run = fake.add_run(
            repo, flows[gen.workflow.file], event=gen.event, status=first.status, conclusion=first.conclusion,
            head_branch=gen.head_branch, head_sha=gen.head_sha, head_repo=gen.head_repo, actor=gen.actor,
            run_number=gen.run_number, created_at=gen.created_at.timestamp(),
            run_started_at=first.run_started_at.timestamp(), updated_at=first.updated_at.timestamp(),
            pull_requests=[pulls[gen.pull.number]] if gen.pull is not None else (), display_title=gen.display_title,
            head_commit_message=gen.display_title)
        gen.run_id = run.id
        for attempt in gen.attempts:
            if attempt.number > 1:
                carried_names = [job.name for job in attempt.jobs if job.carried]
                carried = fake.rerun(run, failed_only=attempt.rerun == "failed", at=attempt.run_started_at.timestamp(),
                                     status=attempt.status, actor=attempt.actor, carry=carried_names)
                by_name = {job.name: job for job in carried}
                for job in attempt.jobs:
                    if job.carried:
                        job.job_id = by_name[job.name].id
            for job in attempt.jobs:
                if job.carried:
                    continue
                job.job_id = fake.add_job(
                    run, job.name, status=job.status, conclusion=job.conclusion, created_at=job.created_at.timestamp(),
                    started_at=job.started_at.timestamp(), completed_at=_epoch(job.completed_at),
                    run_attempt=attempt.number, labels=job.labels, steps=_step_dicts(job)).id
            run.status, run.conclusion = attempt.status, attempt.conclusion
            run.updated_at = attempt.updated_at.timestamp()
