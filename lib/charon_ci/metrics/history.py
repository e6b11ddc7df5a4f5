"""Where the metrics' facts come from: workflow runs, their attempts and jobs, and the package's versions.

The API budget is the point of this module. The job token has 1,000 requests an hour per repository, so:
- the runs list is read 100 a page for one `created=SINCE..UNTIL` range; GitHub answers at most 1,000 runs
  per query (`total_count` stays exact), so once a query has given all it will, the next one continues
  below the oldest run read (duplicates at the seam are dropped by id); a second in which more than a
  query's worth of runs was created is the only thing that can still be cut, and is reported;
- jobs are read only for the runs a measure needs (build, build-job, prune and sampled pull workflows),
  with `filter=all` (every attempt in one list, whatever `filter=latest` means this year), plus one
  `GET .../attempts/{n}` per earlier attempt whose start or conclusion a measure uses: every earlier attempt
  of a build run, only the middle ones (2 .. latest-1) of any other run (see `earlier_attempts_needed`);
- a run an earlier metrics JSON already measured, unchanged since (same attempt, completed), costs nothing;
- the `/timing` endpoints are never called (GitHub is closing them down);
- reading stops at `max-requests` (and before the client's rate-limit margin); what was left is reported.
`retry-after` and the secondary limit are honoured by the client (charon_ci.github).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from charon_ci import gha, github, registry
from charon_ci.metrics import roles as roles_mod
from charon_ci.metrics.model import (
    Attempt,
    History,
    Job,
    Listing,
    ListingQuery,
    Reusable,
    Run,
    Workflow,
    format_time,
    latest_attempt,
    parse_attempt,
    parse_job,
    parse_run,
    parse_workflow,
)
from charon_ci.metrics.roles import Roles
from charon_ci.metrics.settings import MetricsSettings
from charon_ci.prune.model import PackageVersion
from charon_ci.prune.reachability import ManifestFacts
from charon_ci.prune.sources import GhcrPackage, ManifestSource, owner_type_from_event

PER_PAGE = 100
T = TypeVar("T")
BUDGET = "request budget (max-requests or the rate limit) spent"
NOT_COMPLETED = "not completed"


class Fetcher(Protocol):
    """Answers for `collect`: the live API (`ApiFetcher`) or a dump file (charon_ci.metrics.dump)."""

    def workflows(self) -> dict[int, Workflow]: ...

    def list_runs(self, since: float, until: float) -> tuple[list[Run], Listing]: ...

    def can_afford(self, requests: int) -> bool: ...

    def jobs(self, run: Run) -> tuple[Job, ...] | None:
        """Every job of every attempt; None when they cannot be had (not in a dump)."""
        ...

    def attempt(self, run: Run, number: int) -> Attempt | None: ...

    @property
    def unavailable(self) -> str:
        """Why `jobs` / `attempt` answered None."""
        ...


class _Malformed(github.UnexpectedResponse):
    pass


def _parse_each(items: Iterable[object], parse: Callable[[object], T], what: str) -> list[T]:
    try:
        return [parse(item) for item in items]
    except ValueError as exc:
        raise _Malformed(None, f"{what}: {exc}") from None


@dataclass
class ApiFetcher:
    client: github.GithubClient
    repository: str
    max_requests: int
    log: Callable[[str], None] = gha.info
    start: int = field(init=False)

    def __post_init__(self) -> None:
        self.start = self.client.stats.total
        owner, _, name = self.repository.partition("/")
        self._base = github.api_path("repos", owner, name, "actions")

    @property
    def used(self) -> int:
        return self.client.stats.total - self.start

    @property
    def unavailable(self) -> str:
        return BUDGET

    def can_afford(self, requests: int) -> bool:
        return self.used + requests <= self.max_requests and self.client.can_spend(requests)

    def workflows(self) -> dict[int, Workflow]:
        found: dict[int, Workflow] = {}
        for page in self.client.iter_pages(f"{self._base}/workflows", items_key="workflows", per_page=PER_PAGE):
            for flow in _parse_each(page.items, parse_workflow, "workflows"):
                found[flow.id] = flow
        return found

    def list_runs(self, since: float, until: float) -> tuple[list[Run], Listing]:
        """Every run created in [since, until], below the 1,000-per-query cap (see the module docstring)."""
        listing = Listing()
        seen: dict[int, Run] = {}
        upper = until
        while True:
            created = f"{format_time(since)}..{format_time(upper)}"
            total = 0
            fetched = 0
            pages = 0
            oldest: float | None = None
            for page in self.client.iter_pages(
                f"{self._base}/runs", params={"created": created}, items_key="workflow_runs", per_page=PER_PAGE
            ):
                pages += 1
                if page.total_count is not None and pages == 1:
                    total = page.total_count
                for run in _parse_each(page.items, parse_run, "workflow runs"):
                    fetched += 1
                    oldest = run.created_at if oldest is None else min(oldest, run.created_at)
                    if since <= run.created_at <= until + 0.999:
                        seen.setdefault(run.id, run)
            listing.queries.append(ListingQuery(created, total, fetched, pages))
            if fetched >= total or fetched == 0 or oldest is None:
                if fetched < total:
                    listing.cut += total - fetched
                    listing.cut_reason = f"GitHub counted {total} runs for created={created} but listed none"
                break
            # GitHub stopped at its cap: continue with the runs created up to the oldest one read (its
            # second included, so runs sharing it are not lost; the repeats are dropped by id).
            next_upper = float(int(oldest))
            if next_upper < upper:
                upper = next_upper
                continue
            # More runs were created in one second than a query lists: count them, keep those read, and go on
            # below that second. Only that second's unread runs are lost, and they are reported.
            second = format_time(upper)
            in_second = self._count(f"{second}..{second}")
            listing.queries.append(ListingQuery(f"{second}..{second}", in_second, 0, 1))
            read_in_second = sum(1 for run in seen.values() if int(run.created_at) == int(upper))
            listing.cut += max(0, in_second - read_in_second)
            listing.cut_reason = (
                f"{in_second} runs were created in the second {second} and GitHub lists at most {fetched} for one query"
            )
            if upper - 1 < since:
                break
            upper -= 1
        self.log(
            f"listed {len(seen)} runs created {format_time(since)}..{format_time(until)} in "
            f"{sum(q.pages for q in listing.queries)} requests over {len(listing.queries)} queries"
            + (f"; {listing.cut} could not be read ({listing.cut_reason})" if listing.cut else "")
        )
        runs = sorted(seen.values(), key=lambda run: (run.created_at, run.id))
        return runs, listing

    def _count(self, created: str) -> int:
        """How many runs GitHub counts for a `created` range: one page of one run."""
        params = {"created": created}
        pages = self.client.iter_pages(f"{self._base}/runs", params=params, items_key="workflow_runs", per_page=1)
        first = next(iter(pages))
        return first.total_count or 0

    def jobs(self, run: Run) -> tuple[Job, ...]:
        jobs: list[Job] = []
        seen: set[tuple[int, int]] = set()
        for page in self.client.iter_pages(
            f"{self._base}/runs/{run.id}/jobs", params={"filter": "all"}, items_key="jobs", per_page=PER_PAGE
        ):
            for job in _parse_each(page.items, parse_job, f"jobs of run {run.id}"):
                if (job.id, job.run_attempt) not in seen:
                    seen.add((job.id, job.run_attempt))
                    jobs.append(job)
        return tuple(jobs)

    def attempt(self, run: Run, number: int) -> Attempt:
        body = self.client.get(f"{self._base}/runs/{run.id}/attempts/{number}")
        try:
            return parse_attempt(body)
        except ValueError as exc:
            raise _Malformed(None, f"attempt {number} of run {run.id}: {exc}") from None


# ------------------------------------------------------------------------------------------ collecting


def probe_runs(newest_first: Iterable[Run]) -> dict[int, Run]:
    """workflow id -> the run whose steps tell what the workflow does: its newest successful run, else its
    newest completed one."""
    succeeded: dict[int, Run] = {}
    completed: dict[int, Run] = {}
    for run in newest_first:
        if not run.completed:
            continue
        completed.setdefault(run.workflow_id, run)
        if run.conclusion == "success":
            succeeded.setdefault(run.workflow_id, run)
    return {workflow_id: succeeded.get(workflow_id, run) for workflow_id, run in completed.items()}


def earlier_attempts_needed(run: Run, build: frozenset[int]) -> range:
    """The earlier attempts of `run` worth one `GET .../attempts/{n}` each. A build run's every attempt is timed
    and counted (its start and conclusion). Any other run's attempts only matter through the jobs they ran,
    which the jobs list (filter=all) gives; an attempt's own start is needed only to tell the jobs carried into
    it from the ones it ran, which attempt 1 never has and the latest attempt's start comes with the run."""
    return range(1 if run.workflow_id in build else 2, run.run_attempt)


@dataclass
class Collected:
    history: History
    roles: Roles
    reused: int = 0  # runs taken from the previous metrics JSON at no cost
    read: int = 0  # runs whose jobs were fetched now
    pull_runs: int = 0  # completed pull-workflow runs in the window
    pull_sampled: list[int] = field(default_factory=list)  # the ones chosen to be read (newest first)


def collect(
    fetcher: Fetcher,
    settings: MetricsSettings,
    reusable: Reusable | None,
    since: float,
    until: float,
    log: Callable[[str], None] = gha.info,
) -> Collected:
    """List the window, decide the roles, and read the jobs the measures need, most needed first."""
    workflows = fetcher.workflows()
    build = roles_mod.match_workflows(settings.build_workflows, workflows, "build-workflows")
    build_jobs = (
        roles_mod.match_workflows(settings.build_job_workflows, workflows, "build-job-workflows")
        if settings.build_job_workflows
        else build
    )
    named_pull = (
        roles_mod.match_workflows(settings.pull_workflows, workflows, "pull-workflows")
        if settings.pull_workflows is not None
        else None
    )
    named_prune = (
        roles_mod.match_workflows(settings.prune_workflows, workflows, "prune-workflows")
        if settings.prune_workflows is not None
        else None
    )
    runs, listing = fetcher.list_runs(since, until)
    history = History(settings.repository, since, until, workflows, runs, listing=listing)
    result = Collected(history, Roles(build, build_jobs))
    previous = reusable.runs if reusable is not None else {}

    def read(run: Run) -> bool:
        if run.id in history.jobs:
            return True
        if not run.completed:
            history.unread[run.id] = NOT_COMPLETED
            return False
        record = previous.get(run.id)
        known: Mapping[int, Attempt] = {}
        if record is not None:
            if record.run_attempt == run.run_attempt and record.status == "completed":
                history.jobs[run.id] = record.jobs
                history.attempts[run.id] = {**record.attempts, run.run_attempt: latest_attempt(run)}
                result.reused += 1
                return True
            known = {n: a for n, a in record.attempts.items() if n < record.run_attempt or record.status == "completed"}
        missing = [n for n in earlier_attempts_needed(run, build) if n not in known]
        if not fetcher.can_afford(1 + len(missing)):
            history.unread[run.id] = fetcher.unavailable
            return False
        jobs = fetcher.jobs(run)
        attempts: dict[int, Attempt] = {n: a for n, a in known.items() if n < run.run_attempt}
        for number in missing:
            got = fetcher.attempt(run, number)
            if got is None:
                jobs = None
                break
            attempts[number] = got
        if jobs is None:
            history.unread[run.id] = fetcher.unavailable
            return False
        attempts[run.run_attempt] = latest_attempt(run)
        history.jobs[run.id] = jobs
        history.attempts[run.id] = attempts
        result.read += 1
        return True

    newest_first = sorted(runs, key=lambda run: (run.created_at, run.id), reverse=True)

    # 0. Every run the previous metrics measured and GitHub still shows unchanged: known, at no cost.
    for run in newest_first:
        record = previous.get(run.id)
        if record is not None and record.run_attempt == run.run_attempt and run.completed:
            read(run)

    # 1. Pull and prune workflows not named: look at one completed run of each workflow, the newest that
    # succeeded (a failed or skipped run may have skipped the very job that pulls), else the newest.
    probed: dict[int, tuple[bool, bool]] = {}
    if named_pull is None or named_prune is None:
        cached = reusable.probed if reusable is not None else {}
        for workflow_id, probe in sorted(probe_runs(newest_first).items()):
            if workflow_id in cached:
                probed[workflow_id] = cached[workflow_id]
                result.roles.recognised[workflow_id] = "recognised by an earlier metrics run"
                continue
            if not read(probe):
                result.roles.recognised[workflow_id] = f"not looked at: {history.unread.get(probe.id, '')}"
                continue
            is_pull, is_prune, how = roles_mod.recognise(
                workflow_id, history.jobs[probe.id], settings.pull_step_pattern, settings.prune_step_pattern
            )
            probed[workflow_id] = (is_pull, is_prune)
            result.roles.recognised[workflow_id] = how
    result.roles.probed = probed
    result.roles.pull = named_pull if named_pull is not None else frozenset(w for w, (p, _) in probed.items() if p)
    result.roles.prune = named_prune if named_prune is not None else frozenset(w for w, (_, q) in probed.items() if q)

    # 2. Build runs (timed), 3. other build-job runs (counted), 4. prune runs, 5. pull runs: those known from
    # the previous metrics (free), then the newest `pull-sample` of those not read yet.
    for run in newest_first:
        if run.workflow_id in build:
            read(run)
    for run in newest_first:
        if run.workflow_id in build_jobs and run.workflow_id not in build:
            read(run)
    for run in newest_first:
        if run.workflow_id in result.roles.prune:
            read(run)
    pull_runs = [run for run in newest_first if run.workflow_id in result.roles.pull and run.completed]
    result.pull_runs = len(pull_runs)
    for run in pull_runs:
        if run.id in previous and run.id not in history.jobs:
            read(run)
    unread = [run for run in pull_runs if run.id not in history.jobs]
    chosen = unread if settings.pull_sample == 0 else unread[: settings.pull_sample]
    result.pull_sampled = [run.id for run in chosen]
    for run in chosen:
        read(run)
    for run in runs:
        if run.workflow_id in result.roles.pull and not run.completed:
            history.unread.setdefault(run.id, NOT_COMPLETED)
    budget_cut = sum(1 for why in history.unread.values() if why == BUDGET)
    log(
        f"jobs read for {result.read} runs, {result.reused} taken from the previous metrics"
        + (f"; {budget_cut} runs left unread: {BUDGET}" if budget_cut else "")
    )
    return result


# ------------------------------------------------------------------------------------------ the package


@dataclass
class StorageFacts:
    versions: list[PackageVersion]
    manifests: dict[str, ManifestFacts]
    unreadable: dict[str, str]
    list_requests: int = 0
    manifest_reads: int = 0
    reused_manifests: int = 0


def read_manifests(
    digests: Iterable[str],
    reader: Callable[[list[str]], tuple[list[ManifestFacts], dict[str, str]]],
    cache: Mapping[str, ManifestFacts],
) -> tuple[dict[str, ManifestFacts], dict[str, str], int, int]:
    """Facts for `digests` and every manifest their indexes list, from `cache` where known (a digest names
    its content, so a cached fact never goes stale), else read. Returns (facts, unreadable, reads, reused)."""
    facts: dict[str, ManifestFacts] = {}
    unreadable: dict[str, str] = {}
    reads = reused = 0
    wanted = list(dict.fromkeys(digests))
    while wanted:
        fresh: list[str] = []
        for digest in wanted:
            if digest in facts or digest in unreadable:
                continue
            if digest in cache:
                facts[digest] = cache[digest]
                reused += 1
            else:
                fresh.append(digest)
        if fresh:
            got, failed = reader(fresh)
            reads += len(fresh)
            facts.update((item.digest, item) for item in got)
            unreadable.update(failed)
        wanted = [
            child.digest
            for digest in wanted
            if digest in facts
            for child in facts[digest].children
            if child.digest not in facts and child.digest not in unreadable
        ]
    return facts, unreadable, reads, reused


def fetch_storage(
    settings: MetricsSettings,
    client: github.GithubClient,
    env: Mapping[str, str],
    cache: Mapping[str, ManifestFacts],
) -> StorageFacts:
    """Every version of the package (prune's listing), and the manifests of each (prune's reader)."""
    package = GhcrPackage(client, settings.owner, settings.package)
    package.detect_scope(owner_type_from_event(env, settings.owner))
    versions = package.list_versions()
    regclient = registry.RegistryClient(
        settings.registry_host,
        username=env.get("GITHUB_ACTOR", "") or settings.owner,
        password=settings.github_token or None,
    )
    source = ManifestSource(regclient, f"{settings.owner}/{settings.package}".lower())
    facts, unreadable, reads, reused = read_manifests((v.digest for v in versions), source.read, cache)
    gha.info(
        f"package {settings.owner}/{settings.package}: {len(versions)} versions in {package.list_requests} "
        f"requests; {reads} manifests read from {settings.registry_host}, {reused} known from the previous metrics"
        + (f"; {len(unreadable)} could not be read" if unreadable else "")
    )
    return StorageFacts(versions, facts, unreadable, package.list_requests, reads, reused)
