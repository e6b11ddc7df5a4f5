"""Online prune: list, look up what is in use, read the manifests the plan asks for, plan, then delete.

The executor deletes in the plan's order (oldest group first, an index before its children), and:
- stops before the primary rate budget runs out (`GithubClient.can_spend`, which keeps a margin);
- spaces DELETEs so no minute holds more than `DELETES_PER_MINUTE` of them: GitHub's secondary limit is 900
  points a minute and a DELETE costs 5, so 180 would be the ceiling; pacing keeps us under it instead of
  learning about it from a 403;
- treats GitHub's refusals as outcomes: 404 = someone else (another run, GHCR's own cascade) already
  deleted it; 400 = the last tagged version or a public version past 5,000 downloads: reported, and
  everything that was to go with it (its children) stays, since it still references them;
- looks at the newest page of versions every minute: a version pushed meanwhile may reuse a platform
  manifest we planned to delete (shared children, reproducible builds); such manifests are then kept.
Two runs at once stay correct (each deletes only what its own plan proved unreachable; a 404 is "already
gone"), though they share one secondary-limit budget: use a concurrency group.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from charon_ci import gha, github, registry
from charon_ci.github import GithubClient
from charon_ci.prune.model import InUse, PackageVersion, shown
from charon_ci.prune.policy import Decision, Plan, plan, plan_with_reads
from charon_ci.prune.reachability import ManifestFacts, ManifestGraph, short_digest
from charon_ci.prune.report import Outcome, log_plan
from charon_ci.prune.sources import (
    DeleteResult,
    DockerHub,
    GhcrPackage,
    HubError,
    InUseLookup,
    ManifestSource,
    bytes_freed,
    owner_type_from_event,
)

if TYPE_CHECKING:
    from charon_ci.prune.settings import PruneSettings

Reporter = Callable[["PruneSettings", Plan, Outcome, Mapping[str, str]], int]

DELETES_PER_MINUTE = 172  # 172 x 5 = 860 points, under the 900 a minute GitHub allows
FRESHNESS_INTERVAL = 60.0  # seconds between looks at the newest versions while deleting
MAX_CONSECUTIVE_ERRORS = 5


@dataclass
class Runtime:
    """Time sources, injectable so tests and benches can run minutes of pacing on a simulated clock."""

    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.wall(), UTC)


@dataclass
class Pacer:
    """Starts at most `per_minute` operations in any minute, evenly spaced (no bursts)."""

    per_minute: float
    runtime: Runtime
    _next: float | None = None
    waited: float = 0.0

    def wait(self) -> None:
        now = self.runtime.monotonic()
        if self._next is not None and now < self._next:
            pause = self._next - now
            self.runtime.sleep(pause)
            self.waited += pause
            now = self._next
        self._next = now + 60.0 / self.per_minute


class Deleter(Protocol):
    def delete(self, version: PackageVersion) -> DeleteResult: ...


class Freshness(Protocol):
    def referenced_since(self, known: set[int], pending: Mapping[str, Decision]) -> dict[str, str]:
        """Digests of pending deletions that something new references (digest -> why)."""
        ...


@dataclass
class Budget:
    """The primary rate budget of the client that deletes (None: no GitHub budget, e.g. Docker Hub)."""

    client: GithubClient | None

    def allows(self, requests: int) -> bool:
        return self.client is None or self.client.can_spend(requests)

    def describe(self) -> str:
        reading = self.client.rate_limit if self.client is not None else None
        if reading is None:
            return "rate budget unknown"
        margin = self.client.rate_margin if self.client is not None else 0
        return f"{reading.remaining} of {reading.limit} requests left, margin {margin}"


@dataclass
class Executor:
    deleter: Deleter
    budget: Budget
    pacer: Pacer
    runtime: Runtime
    freshness: Freshness | None = None
    known_ids: set[int] = field(default_factory=set)
    log: Callable[[str], None] = gha.info

    def run(self, result: Plan) -> Outcome:
        outcome = Outcome()
        pending: dict[str, Decision] = {d.version.digest: d for d in result.delete}
        held: dict[str, str] = {}  # digest -> why it is no longer deleted
        errors_in_a_row = 0
        last_look = self.runtime.monotonic()
        for decision in result.delete:
            digest = decision.version.digest
            if digest in held:
                continue
            if self.freshness is not None and self.runtime.monotonic() - last_look >= FRESHNESS_INTERVAL:
                last_look = self.runtime.monotonic()
                live = {d: pending[d] for d in pending if d not in held}
                for found, why in self.freshness.referenced_since(self.known_ids, live).items():
                    self._hold(found, why, result, pending, held)
                if digest in held:
                    continue
            if not self.budget.allows(1):
                outcome.stopped_because = f"rate budget nearly spent ({self.budget.describe()})"
                break
            self.pacer.wait()
            answer = self.deleter.delete(decision.version)
            pending.pop(digest, None)
            if answer.status == "deleted":
                outcome.deleted.append(decision)
                errors_in_a_row = 0
                self.log(f"deleted {_name(decision)}: {decision.summary}")
                continue
            if answer.status == "gone":
                outcome.already_gone.append(decision)
                errors_in_a_row = 0
                self.log(f"already gone {_name(decision)}")
                continue
            why = f"{answer.status}: {answer.detail}".strip(": ")
            outcome.failed.append((decision, why))
            # It is still there, so whatever was to go with it is still referenced.
            self._hold(digest, f"kept: {short_digest(digest)} could not be deleted", result, pending, held, root=True)
            if answer.status == "forbidden":
                outcome.stopped_because = f"the token may not delete ({answer.detail})"
                outcome.fatal = True
                break
            if answer.status == "rate-limited":
                outcome.stopped_because = f"rate limited ({answer.detail})"
                break
            if answer.status == "error":
                errors_in_a_row += 1
                if errors_in_a_row >= MAX_CONSECUTIVE_ERRORS:
                    outcome.stopped_because = f"{errors_in_a_row} deletions in a row failed ({answer.detail})"
                    outcome.fatal = True
                    break
            else:
                errors_in_a_row = 0
        done = {d.version.digest for d in outcome.deleted} | {d.version.digest for d in outcome.already_gone}
        done |= {d.version.digest for d, _ in outcome.failed}
        for decision in result.delete:
            digest = decision.version.digest
            if digest in done:
                continue
            if digest in held:
                outcome.failed.append((decision, held[digest]))
            else:
                outcome.remaining.append(decision)
        return outcome

    def _hold(
        self,
        digest: str,
        why: str,
        result: Plan,
        pending: Mapping[str, Decision],
        held: dict[str, str],
        root: bool = False,
    ) -> None:
        """Keep `digest` (unless it is the failed one itself) and everything the plan deletes with it."""
        stack = [digest]
        while stack:
            current = stack.pop()
            if current in held:
                continue
            if current != digest or not root:
                if current not in pending:
                    continue
                held[current] = why
                self.log(f"holding back {short_digest(current)}: {why}")
            stack.extend(result.delete_edges.get(current, ()))


def _name(decision: Decision) -> str:
    tags = ",".join(shown(tag) for tag in decision.version.tags) or "untagged"
    return f"{tags} ({short_digest(decision.version.digest)})"


# ------------------------------------------------------------------------------------------ GHCR wiring


@dataclass
class GhcrDeleter:
    package: GhcrPackage

    def delete(self, version: PackageVersion) -> DeleteResult:
        return self.package.delete_version(version.id)


@dataclass
class HubDeleter:
    """Hub deletes tags: a version goes when every one of its tags is gone. Each tag is read immediately
    before its DELETE and left alone if it was pushed again since the listing (it may name a new image)."""

    hub: DockerHub

    def delete(self, version: PackageVersion) -> DeleteResult:
        results: list[DeleteResult] = []
        for tag in version.tags:
            result = self.hub.delete_tag_if_unchanged(tag, version.digest)
            results.append(result)
            if result.status not in ("deleted", "gone", "changed"):
                break  # refused or failing: the executor decides whether to go on
        bad = [r for r in results if r.status not in ("deleted", "gone")]
        if bad:
            deleted = [shown(tag) for tag, r in zip(version.tags, results, strict=False) if r.status == "deleted"]
            also = f" (deleted: {', '.join(deleted)})" if deleted else ""
            return DeleteResult(bad[0].status, bad[0].detail + also, bad[0].http_status)
        if all(r.status == "gone" for r in results):
            return DeleteResult("gone", "tags already deleted", 404)
        return DeleteResult("deleted")


@dataclass
class GhcrFreshness:
    """Reads the newest page; a version we did not list, or a listed one whose tags changed, may now need
    what we planned to delete."""

    package: GhcrPackage
    manifests: ManifestSource
    listed: Mapping[int, PackageVersion]
    looks: int = 0

    def referenced_since(self, known: set[int], pending: Mapping[str, Decision]) -> dict[str, str]:
        self.looks += 1
        held: dict[str, str] = {}
        newest = self.package.newest_versions()
        fresh: list[PackageVersion] = []
        for version in newest:
            before = self.listed.get(version.id)
            if before is None:
                fresh.append(version)
            elif before.tags != version.tags and version.digest in pending:
                now_tagged = ", ".join(shown(tag) for tag in version.tags) or "untagged"
                held[version.digest] = f"its tags changed during the run ({now_tagged})"
        if not fresh:
            return held
        graph = ManifestGraph()
        to_read = [v.digest for v in fresh]
        seen: set[str] = set()
        while to_read:
            facts, _ = self.manifests.read(to_read)
            seen.update(to_read)
            graph = graph.with_facts(facts, {})
            to_read = []
            for item in facts:
                for child in item.children:
                    if child.digest in pending:
                        held[child.digest] = f"referenced by {short_digest(item.digest)}, pushed during the run"
                    if child.may_have_children and child.digest not in seen and child.digest not in pending:
                        to_read.append(child.digest)
        return held


def _read_sizes(
    result: Plan, graph: ManifestGraph, reader: Callable[[Sequence[str]], tuple[list[ManifestFacts], dict[str, str]]]
) -> tuple[ManifestGraph, bool]:
    """Read the image manifests whose blobs decide the bytes freed: every deleted one, every kept one."""
    wanted = [
        d.version.digest
        for d in (*result.delete, *result.keep)
        if d.version.digest not in graph.manifests and d.version.digest not in graph.unreadable
    ]
    if not wanted:
        return graph, True
    facts, failed = reader(wanted)
    return graph.with_facts(facts, failed), not failed


def measured_bytes(graph: ManifestGraph, deleted: Iterable[str], kept: Iterable[str]) -> int:
    gone = [graph.manifests[d] for d in deleted if d in graph.manifests]
    stay = [graph.manifests[d] for d in kept if d in graph.manifests]
    return bytes_freed(gone, stay)


# ------------------------------------------------------------------------------------------ the run


@dataclass
class OnlineStats:
    """Request counts for the log and the bench."""

    list_requests: int = 0
    delete_requests: int = 0
    in_use_requests: int = 0
    manifest_reads: int = 0
    size_reads: int = 0
    freshness_looks: int = 0
    planning_seconds: float = 0.0
    pacing_wait: float = 0.0
    extra: dict[str, int] = field(default_factory=dict)


def run_online(
    settings: PruneSettings,
    env: Mapping[str, str],
    report: Reporter,
    runtime: Runtime | None = None,
    stats: OnlineStats | None = None,
) -> int:
    runtime = runtime or Runtime()
    stats = stats if stats is not None else OnlineStats()

    def client(token: str) -> GithubClient:
        return github.GithubClient(token, api_url=settings.github_api_url, sleep=runtime.sleep, clock=runtime.wall)

    in_use_client = client(settings.github_token)
    run_id = env.get("GITHUB_RUN_ID", "")
    lookup = InUseLookup(in_use_client, settings.repository, own_run_id=int(run_id) if run_id.isdigit() else None)
    deleter: Deleter
    budget: Budget
    freshness: Freshness | None = None
    graph: ManifestGraph | None
    now = runtime.now()

    if settings.registry == "ghcr":
        gh = in_use_client if settings.token == settings.github_token else client(settings.token)
        package = GhcrPackage(gh, settings.owner, settings.package)
        package.detect_scope(owner_type_from_event(env, settings.owner))
        with gha.group(f"Listing {settings.owner}/{settings.package} versions"):
            versions = package.list_versions()
            gha.info(f"{len(versions)} versions in {package.list_requests} requests")
        in_use = _in_use(lookup)
        regclient = registry.RegistryClient(
            settings.registry_host or "ghcr.io",
            username=settings.username or settings.owner,
            password=settings.token,
            sleep=runtime.sleep,
        )
        source = ManifestSource(regclient, f"{settings.owner}/{settings.package}".lower())
        started = time.process_time()
        result, graph = plan_with_reads(versions, settings.policy, in_use, now, source.read)
        stats.planning_seconds = time.process_time() - started
        stats.manifest_reads = source.reads
        deleter = GhcrDeleter(package)
        budget = Budget(gh)
        freshness = GhcrFreshness(package, source, {v.id: v for v in versions})
        if settings.measure_bytes and result.delete:
            sized_graph, complete = _read_sizes(result, graph, source.read)
        else:  # nothing to measure, or not wanted (each read counts as a download on GHCR)
            sized_graph, complete = graph, settings.measure_bytes
        stats.size_reads = source.reads - stats.manifest_reads
    else:
        hub = DockerHub(settings.owner, settings.package, api_url=settings.dockerhub_api_url, sleep=runtime.sleep)
        gha.set_secret(settings.token)
        try:
            hub.login(settings.username, settings.token)
            versions = hub.list_versions()
        except HubError as exc:
            raise gha.ActionFailure("Docker Hub request failed", str(exc)) from None
        in_use = _in_use(lookup)
        # Hub lists tags, not manifests: untagged manifests are Hub's business and nothing here can make a
        # tagged image lose a platform, so there is no graph to read.
        result = plan(versions, settings.policy, in_use, now, ManifestGraph())
        graph = None
        deleter = HubDeleter(hub)
        budget = Budget(None)
        sized_graph, complete = ManifestGraph(), False
        stats.list_requests = hub.requests

    log_plan(result, settings.dry_run)
    if graph is not None:
        gha.info(
            f"read {stats.manifest_reads} manifests to plan and {stats.size_reads} more to measure sizes"
            + (f"; {len(result.blocked_by)} could not be read" if result.blocked_by else "")
        )
    planned_bytes = (
        measured_bytes(sized_graph, (d.version.digest for d in result.delete), (d.version.digest for d in result.keep))
        if complete and graph is not None
        else None
    )
    if settings.dry_run:
        outcome = Outcome(remaining=list(result.delete), bytes_planned=planned_bytes)
    else:
        pacer = Pacer(DELETES_PER_MINUTE, runtime)
        executor = Executor(deleter, budget, pacer, runtime, freshness, {v.id for v in versions})
        with gha.group(f"Deleting {len(result.delete)} versions, oldest first"):
            outcome = executor.run(result)
        stats.pacing_wait = pacer.waited
        outcome.bytes_planned = planned_bytes
        if complete and graph is not None:
            gone = {d.version.digest for d in outcome.deleted}
            outcome.bytes_freed = measured_bytes(
                sized_graph, gone, (v.digest for v in versions if v.digest not in gone)
            )
    if settings.registry == "ghcr":
        stats.list_requests = package.list_requests
        stats.delete_requests = package.delete_requests
        stats.freshness_looks = freshness.looks if isinstance(freshness, GhcrFreshness) else 0
    else:
        stats.delete_requests = hub.requests - stats.list_requests
    stats.in_use_requests = lookup.requests
    code = report(settings, result, outcome, env)
    return 1 if outcome.fatal else code


def _in_use(lookup: InUseLookup) -> InUse:
    with gha.group("What is in use"):
        facts = lookup.facts()
        gha.info(f"open pull requests: {', '.join(f'#{n}' for n in sorted(facts.open_pull_requests)) or 'none'}")
        gha.info(f"queued or running workflow runs: {facts.active_runs}")
    return facts
