"""Online prune: list, look up what is in use, read the manifests the plan asks for, plan, then delete.

The listing: GitHub pages the versions list by page number, so a version deleted by someone else between
two page reads makes another one vanish from the listing (charon_ci.prune.drift). The list is read until a
listing is followed by one that lost nothing; the plan covers every version either saw. If the list keeps
losing rows (three listings), every untagged version is kept, and the log and plan say so.

The executor deletes in the plan's order (oldest group first, an index before its children), and:
- rests every GHCR DELETE on fresh facts: a complete look at every version (settled as above) begun at most
  `Runtime.freshness_bound` seconds earlier, the first one included, and a read of that very version just
  before its DELETE. A look that shows pushes or re-tags plans again on what it saw (same time, same in-use
  facts, manifests of new versions read) and holds back every pending deletion the new plan keeps; the
  read holds back a version whose tags changed, and skips one already gone. Pages that did not change
  answer 304, which costs no rate budget;
- stops before the primary rate budget runs out (`GithubClient.can_spend`, which keeps a margin);
- spaces DELETEs so no minute holds more than `DELETES_PER_MINUTE` of them: GitHub's secondary limit is 900
  points a minute per endpoint and a DELETE costs 5, so 180 would be the ceiling; pacing keeps us under it
  instead of learning about it from a 403 (the reads go to other endpoints);
- treats GitHub's refusals as outcomes: 404 = someone else (another run, GHCR's own cascade) already
  deleted it, unless the version can still be read: then the token lacks admin rights on the package, and
  the run stops and fails naming that permission; 400 = the last tagged version or a public version past
  5,000 downloads: reported, and everything that was to go with it (its children) stays, since it still
  references them.
Two runs at once stay correct (each deletes only what its own plan proved unreachable; a 404 is "already
gone"), though they share one secondary-limit budget: use a concurrency group.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, Protocol

from charon_ci import gha, github, registry
from charon_ci.github import GithubClient
from charon_ci.prune.drift import Settled, drift, settle
from charon_ci.prune.model import InUse, PackageVersion, shown
from charon_ci.prune.policy import Decision, Plan, Policy, plan, plan_with_reads
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
FRESHNESS_BOUND = 30.0  # seconds: every GHCR DELETE rests on a look at all versions begun at most this long ago
MAX_LISTINGS = 3  # listings in a row while the versions list keeps losing rows under us
MAX_CONSECUTIVE_ERRORS = 5


@dataclass
class Runtime:
    """Time sources and the freshness bound, injectable so tests and benches can run minutes of pacing on a
    simulated clock."""

    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    freshness_bound: float = FRESHNESS_BOUND

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


@dataclass(frozen=True)
class Recheck:
    """A version as read just before its DELETE, compared with the plan."""

    status: Literal["unchanged", "gone", "changed", "unknown"]
    detail: str = ""


class LookFailed(Exception):
    """The versions list could not be read: nothing more may be deleted on stale facts."""


class Watch(Protocol):
    """Keeps a run's facts fresh: looks at every version, and reads one version before its DELETE."""

    basis: float  # monotonic time at which the look the remaining deletions rest on began
    look_cost: int  # requests the last look took

    def look(self, pending: Mapping[str, Decision], done: Set[int]) -> dict[str, str]:
        """Look again; pending digests that must now stay (digest -> why). Raises LookFailed."""
        ...

    def recheck(self, version: PackageVersion) -> Recheck: ...


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
    watch: Watch | None = None
    log: Callable[[str], None] = gha.info

    def run(self, result: Plan) -> Outcome:
        outcome = Outcome()
        pending: dict[str, Decision] = {d.version.digest: d for d in result.delete}
        held: dict[str, str] = {}  # digest -> why it is no longer deleted
        done: set[int] = set()  # ids this run deleted or found gone
        errors_in_a_row = 0
        bound = self.runtime.freshness_bound
        if self.watch is not None:
            self.log(
                f"every DELETE rests on a look at all versions begun at most {bound:g} s earlier "
                "and on a read of that version just before it"
            )
        for decision in result.delete:
            digest = decision.version.digest
            if digest in held:
                continue
            watch = self.watch
            stale = watch is not None and self.runtime.monotonic() - watch.basis >= bound
            cost = 1 + (0 if watch is None else 1 + (watch.look_cost if stale else 0))
            if not self.budget.allows(cost):
                outcome.stopped_because = f"rate budget nearly spent ({self.budget.describe()})"
                break
            self.pacer.wait()
            if watch is not None:
                if self.runtime.monotonic() - watch.basis >= bound:
                    live = {d: pending[d] for d in pending if d not in held}
                    try:
                        found = watch.look(live, done)
                    except LookFailed as exc:
                        outcome.stopped_because = (
                            f"cannot look at the versions again ({exc}): not deleting on stale facts"
                        )
                        break
                    for held_digest, why in found.items():
                        self._hold(held_digest, why, result, pending, held)
                    if digest in held:
                        continue
                seen = watch.recheck(decision.version)
                if seen.status == "gone":
                    pending.pop(digest, None)
                    done.add(decision.version.id)
                    outcome.already_gone.append(decision)
                    self.log(f"already gone {_name(decision)}")
                    continue
                if seen.status == "changed":
                    self._hold(digest, seen.detail, result, pending, held)
                    continue
                if seen.status == "unknown":
                    outcome.failed.append((decision, f"not checked: {seen.detail}"))
                    pending.pop(digest, None)
                    self._hold(digest, f"kept: {short_digest(digest)} could not be checked", result, pending, held,
                               root=True)  # fmt: skip
                    errors_in_a_row += 1
                    if errors_in_a_row >= MAX_CONSECUTIVE_ERRORS:
                        outcome.stopped_because = (
                            f"{errors_in_a_row} checks or deletions in a row failed ({seen.detail})"
                        )
                        outcome.fatal = True
                        break
                    continue
            answer = self.deleter.delete(decision.version)
            pending.pop(digest, None)
            if answer.status == "deleted":
                outcome.deleted.append(decision)
                done.add(decision.version.id)
                errors_in_a_row = 0
                self.log(f"deleted {_name(decision)}: {decision.summary}")
                continue
            if answer.status == "gone":
                outcome.already_gone.append(decision)
                done.add(decision.version.id)
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
        settled = {d.version.digest for d in outcome.deleted} | {d.version.digest for d in outcome.already_gone}
        settled |= {d.version.digest for d, _ in outcome.failed}
        for decision in result.delete:
            digest = decision.version.digest
            if digest in settled:
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


def read_settled(
    package: GhcrPackage,
    known: Mapping[int, PackageVersion] | None = None,
    done: Set[int] = frozenset(),
) -> Settled:
    """List until a listing is followed by one that lost nothing (charon_ci.prune.drift), at most
    MAX_LISTINGS times; the union of what they saw, over `known`."""
    looks = [package.list_versions()]
    while True:
        looks.append(package.list_versions())
        settled = settle(looks, known, done)
        if settled.trusted or len(looks) >= MAX_LISTINGS:
            return settled


def unsettled_reason(settled: Settled) -> str:
    return (
        f"the versions list lost rows while it was read, {settled.looks} listings in a row "
        f"({settled.describe()}): a version may be missing from it, and what it references would look unused"
    )


@dataclass
class Replanner:
    """Plans again on a fresh listing with the first plan's time, policy and in-use facts, reading only the
    manifests it has not read yet."""

    policy: Policy
    in_use: InUse
    now: datetime
    read: Callable[[Sequence[str]], tuple[list[ManifestFacts], dict[str, str]]]
    graph: ManifestGraph = field(default_factory=ManifestGraph)

    def __call__(self, versions: Sequence[PackageVersion], keep_untagged: str | None = None) -> Plan:
        result, self.graph = plan_with_reads(
            versions, self.policy, self.in_use, self.now, self.read, self.graph, keep_untagged=keep_untagged
        )
        return result


@dataclass
class GhcrWatch:
    """Looks at every version again (`look`) and reads one version before its DELETE (`recheck`)."""

    package: GhcrPackage
    replan: Callable[[Sequence[PackageVersion], str | None], Plan]
    known: dict[int, PackageVersion]
    runtime: Runtime
    basis: float
    look_cost: int = 1
    looks: int = 0
    look_requests: int = 0
    log: Callable[[str], None] = gha.info

    def look(self, pending: Mapping[str, Decision], done: Set[int]) -> dict[str, str]:
        self.looks += 1
        started = self.runtime.monotonic()
        before = self.package.list_requests
        try:
            settled = read_settled(self.package, self.known, done)
        except github.GithubError as exc:
            raise LookFailed(exc.message) from None
        finally:
            self.look_cost = max(1, self.package.list_requests - before)
            self.look_requests += self.package.list_requests - before
        self.basis = started
        since = drift((v for i, v in self.known.items() if i not in done), settled.versions, done)
        self.known = {v.id: v for v in settled.versions}
        if not (since.added or since.retagged or settled.changed or not settled.trusted):
            return {}
        keep_untagged = None if settled.trusted else unsettled_reason(settled)
        self.log(
            f"look {self.looks} at all versions: {since.describe()}"
            + (f"; while listing: {settled.describe()}" if settled.changed else "")
            + ("; planning again" if keep_untagged is None else "; keeping every untagged version")
        )
        try:
            fresh = self.replan(settled.versions, keep_untagged)
        except github.GithubError as exc:
            raise LookFailed(exc.message) from None
        still = fresh.delete_digests
        kept = {d.version.digest: d for d in fresh.keep}
        held: dict[str, str] = {}
        for digest in pending:
            if digest not in still:
                decision = kept.get(digest)
                held[digest] = "kept on a fresh look: " + (decision.summary if decision else "no longer listed")
        return held

    def recheck(self, version: PackageVersion) -> Recheck:
        try:
            now = self.package.read_version(version.id)
        except github.GithubError as exc:
            return Recheck("unknown", exc.message)
        if now is None:
            return Recheck("gone")
        self.known[now.id] = now
        if set(now.tags) != set(version.tags):
            tags = ", ".join(shown(tag) for tag in now.tags) or "untagged"
            return Recheck("changed", f"its tags changed during the run (now: {tags})")
        return Recheck("unchanged")


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

    list_requests: int = 0  # every versions list page requested (initial listings and looks)
    unchanged_pages: int = 0  # of those, answered 304 (not charged to the rate budget)
    listings: int = 0  # listings the plan rests on (two, unless the list changed while it was read)
    version_reads: int = 0  # single-version reads: one before each DELETE, one after each 404
    delete_requests: int = 0
    in_use_requests: int = 0
    manifest_reads: int = 0
    size_reads: int = 0
    freshness_looks: int = 0  # looks at every version while deleting
    look_requests: int = 0  # list pages those looks requested
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
    watch: GhcrWatch | None = None
    graph: ManifestGraph | None
    now = runtime.now()

    if settings.registry == "ghcr":
        gh = in_use_client if settings.token == settings.github_token else client(settings.token)
        package = GhcrPackage(gh, settings.owner, settings.package)
        package.detect_scope(owner_type_from_event(env, settings.owner))
        keep_untagged: str | None = None
        with gha.group(f"Listing {settings.owner}/{settings.package} versions"):
            listed_at = runtime.monotonic()
            settled = read_settled(package)
            versions = list(settled.versions)
            gha.info(f"{len(versions)} versions in {package.list_requests} requests ({settled.looks} listings)")
            if not settled.trusted:
                keep_untagged = unsettled_reason(settled)
            elif settled.changed:
                gha.info(
                    f"the versions list changed while it was read ({settled.describe()}); "
                    f"planning on every version seen in {settled.looks} listings"
                )
        if keep_untagged is not None:
            gha.info(f"keeping every untagged version: {keep_untagged}")
        in_use = _in_use(lookup)
        regclient = registry.RegistryClient(
            settings.registry_host or "ghcr.io",
            username=settings.username or settings.owner,
            password=settings.token,
            sleep=runtime.sleep,
        )
        source = ManifestSource(regclient, f"{settings.owner}/{settings.package}".lower())
        replanner = Replanner(settings.policy, in_use, now, source.read)
        started = time.process_time()
        result = replanner(versions, keep_untagged)
        graph = replanner.graph
        stats.planning_seconds = time.process_time() - started
        stats.manifest_reads = source.reads
        deleter = GhcrDeleter(package)
        budget = Budget(gh)
        watch = GhcrWatch(
            package, replanner, {v.id: v for v in versions}, runtime, basis=listed_at, look_cost=package.list_requests
        )
        stats.listings = settled.looks
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
        executor = Executor(deleter, budget, pacer, runtime, watch)
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
        stats.unchanged_pages = package.unchanged_pages
        stats.version_reads = package.read_requests
        stats.delete_requests = package.delete_requests
        if watch is not None:
            stats.freshness_looks = watch.looks
            stats.look_requests = watch.look_requests
    else:
        stats.delete_requests = hub.requests - stats.list_requests
    stats.in_use_requests = lookup.requests
    code = report(settings, result, outcome, env)
    if outcome.fatal:
        gha.error(f"stopped: {outcome.stopped_because}", title="charon-ci prune")
        return 1
    return code


def _in_use(lookup: InUseLookup) -> InUse:
    with gha.group("What is in use"):
        facts = lookup.facts()
        gha.info(f"open pull requests: {', '.join(f'#{n}' for n in sorted(facts.open_pull_requests)) or 'none'}")
        gha.info(f"queued or running workflow runs: {facts.active_runs}")
    return facts
