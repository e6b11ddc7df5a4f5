"""Random interleavings of a real prune run with other clients' pushes, re-tags and deletes, judged by a model.

Each schedule builds a small package in the real loopback registry behind the fake GitHub (tagged indexes
with platform children, some shared, orphans, a cosign signature; ages from hours to months), then runs
`charon-ci prune` in-process on a simulated clock while a hook of the fake applies 1-4 events between two of
the run's requests to the versions endpoints: a push (a new index that may reuse any existing platform
manifest), a re-tag (a protected, in-use or expiring tag onto any version) or a delete (any version). The
versions list is served in small pages, sometimes shuffled, and the freshness bound varies.

At every DELETE, before the fake serves it, the model judges the version on the registry as it is at that
moment, with its own reading of the rules (protected tags, the open PR, retention globs, min-age) and the
true manifest graph: it must not be kept. What happened after the look the deletion rests on began cannot be
known to any client (GitHub has no conditional DELETE), so the model also judges the state at that look's
start, and a deletion is wrong when both say keep. Separately: a version whose own tags keep it when the run
reads it just before its DELETE must never be deleted, and no DELETE comes later than the stated bound after
the look it rests on.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from charon_ci.prune.apply import Runtime
from tests.support.fakegithub import Clock, FakeGitHub, Package
from tests.support.fakegithub.packages import VersionsRequest
from tests.support.images import ImageFactory, PushError, canonical_json
from tests.support.prune_world import OWNER, REPO, run_prune
from tests.support.services import Registry

pytestmark = pytest.mark.services

SCHEDULES = int(os.environ.get("CHARON_SCHEDULES", "300"))  # fewer while debugging one seed
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DAY = 86400.0
MIN_AGE = 2 * DAY
LIFETIMES = {"pr-": 1 * DAY, "feature-": 7 * DAY, "sha-": 30 * DAY, "nightly-": 7 * DAY}
PROTECTED_RE = re.compile(r"latest|dev|v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?|v?\d+\.\d+")
REFERRER_TAG_RE = re.compile(r"sha256-([0-9a-f]{64})(?:\.sig|\.att|\.sbom)?")
OPEN_PR = 12


# ------------------------------------------------------------------------------------------ the model


@dataclass(frozen=True)
class Seen:
    """The package at one moment: digest -> (tags, created_at), and the simulated time."""

    versions: dict[str, tuple[tuple[str, ...], float]]
    at: float


def tag_keeps(tag: str, created_at: float, now: float) -> bool:
    if PROTECTED_RE.fullmatch(tag) or re.fullmatch(rf"pr-{OPEN_PR}-.*", tag):
        return True
    if REFERRER_TAG_RE.fullmatch(tag):
        return False  # follows its subject
    for prefix, lifetime in LIFETIMES.items():
        if tag.startswith(prefix):
            return now - created_at < lifetime
    return True  # no rule: never deleted


def own_reason(seen: Seen, digest: str) -> bool:
    """Kept for itself: a tag that keeps it, or younger than min-age."""
    tags, created = seen.versions[digest]
    return seen.at - created < MIN_AGE or any(tag_keeps(tag, created, seen.at) for tag in tags)


def kept(seen: Seen, graph: dict[str, tuple[tuple[str, ...], str | None]]) -> set[str]:
    """Everything a kept version reaches: index children, manifests whose subject it is, referrer tags."""
    referrers: dict[str, set[str]] = {}
    for digest in seen.versions:
        subject = graph[digest][1]
        if subject:
            referrers.setdefault(subject, set()).add(digest)
        for tag in seen.versions[digest][0]:
            match = REFERRER_TAG_RE.fullmatch(tag)
            if match:
                referrers.setdefault(f"sha256:{match.group(1)}", set()).add(digest)
    reached = {d for d in seen.versions if own_reason(seen, d)}
    todo = list(reached)
    while todo:
        digest = todo.pop()
        for nxt in set(graph[digest][0]) | referrers.get(digest, set()):
            if nxt in seen.versions and nxt not in reached:
                reached.add(nxt)
                todo.append(nxt)
    return reached


# ------------------------------------------------------------------------------------------ the world


@dataclass
class Schedule:
    seed: int
    gh: FakeGitHub
    registry: Registry
    images: ImageFactory
    clock: Clock
    rng: random.Random
    package: Package = field(init=False)
    repository: str = field(init=False)
    graph: dict[str, tuple[tuple[str, ...], str | None]] = field(default_factory=dict)  # digest -> children, subject
    bodies: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    platforms: list[str] = field(default_factory=list)
    events: dict[int, str] = field(default_factory=dict)  # request number -> event kind
    fired: list[str] = field(default_factory=list)
    basis: Seen | None = None
    group_open: bool = False
    listed_at: float = 0.0
    checks: dict[int, Seen] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    raced: int = 0
    judged: int = 0
    bound: float = 30.0  # the run's freshness bound, simulated seconds

    def __post_init__(self) -> None:
        assert self.registry.storage_dir is not None
        name = f"mix-{self.seed}-{uuid.uuid4().hex[:6]}"
        self.repository = f"{OWNER}/{name}"
        self.package = self.gh.add_container_package(
            OWNER, name, registry_url=self.registry.url, repository=self.repository,
            storage_dir=self.registry.storage_dir,
        )  # fmt: skip
        layer = self.images.push_blob(
            self.repository, b"charon interleavings layer\n", "application/vnd.oci.image.layer.v1.tar"
        )
        config = self.images.push_blob(
            self.repository, b'{"architecture":"amd64","os":"linux"}', "application/vnd.oci.image.config.v1+json"
        )
        self._blobs = (config.descriptor(), layer.descriptor())

    # --- pushes -----------------------------------------------------------------------------------------
    def _put(
        self, body: bytes, media_type: str, tags: list[str], children: tuple[str, ...], subject: str | None
    ) -> str:
        digest = self.images.put_manifest(
            self.repository, f"sha256:{hashlib.sha256(body).hexdigest()}", body, media_type
        )
        for tag in tags:
            self.images.put_manifest(self.repository, tag, body, media_type)
        self.graph[digest] = (children, subject)
        self.bodies[digest] = (body, media_type)
        return digest

    def image(self, tags: tuple[str, ...] = (), subject: str | None = None) -> str:
        config, layer = self._blobs
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer],
                               "annotations": {"seed": uuid.uuid4().hex}}  # fmt: skip
        if subject is not None:
            body_subject, media_type = self.bodies[subject]
            doc["subject"] = {"mediaType": media_type, "digest": subject, "size": len(body_subject)}
        return self._put(canonical_json(doc), OCI_MANIFEST, list(tags), (), subject)

    def index(self, tags: list[str], children: list[str]) -> str:
        entries = []
        for n, child in enumerate(children):
            body, media_type = self.bodies[child]
            platform = {"architecture": ["amd64", "arm64", "s390x"][n % 3], "os": "linux"}
            entries.append({"mediaType": media_type, "digest": child, "size": len(body), "platform": platform})
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": entries,
            "annotations": {"seed": uuid.uuid4().hex},
        }
        return self._put(canonical_json(doc), OCI_INDEX, tags, tuple(children), None)

    def platform_pair(self) -> list[str]:
        fresh = [self.image() for _ in range(self.rng.choice([1, 2]))]
        self.platforms.extend(fresh)
        if self.platforms[: -len(fresh)] and self.rng.random() < 0.3:
            fresh.append(self.rng.choice(self.platforms[: -len(fresh)]))  # shared with an earlier index
        return fresh

    def random_tag(self) -> str:
        sha = f"{self.rng.getrandbits(28):07x}"
        return self.rng.choice([
            f"sha-{sha}", f"pr-7-{sha}", f"pr-{OPEN_PR}-{sha}", f"feature-x-{sha}", f"nightly-{sha}",
            f"v1.{self.rng.randrange(50)}.0", "latest", "edge",
        ])  # fmt: skip

    def build(self) -> None:
        ages: dict[str, float] = {}
        latest = self.index(["latest"], self.platform_pair())
        ages.update({d: 1 * DAY for d in (latest, *self.graph[latest][0])})
        for _ in range(self.rng.randrange(2, 5)):
            drawn = (self.random_tag() for _ in range(self.rng.choice([1, 1, 2])))
            tags = [tag for tag in dict.fromkeys(drawn) if tag != "latest"] or [f"sha-{self.rng.getrandbits(28):07x}"]
            age = self.rng.choice([0.5, 3, 10, 40, 90]) * DAY
            digest = self.index(tags, self.platform_pair())
            for part in (digest, *self.graph[digest][0]):
                ages.setdefault(part, age)
            if self.rng.random() < 0.4:  # a cosign signature, by its fallback tag
                ages[self.image((f"{digest.replace(':', '-')}.sig",))] = age
            if self.rng.random() < 0.3:  # an SBOM naming the index as its OCI subject, untagged
                ages[self.image(subject=digest)] = age
        for _ in range(self.rng.randrange(0, 3)):
            ages[self.image()] = self.rng.choice([1, 60]) * DAY
        now = self.clock.now()
        for digest, age in ages.items():
            self.package.set_version(digest, created_at=now - age)

    # --- the other clients ----------------------------------------------------------------------------
    def seen(self) -> Seen:
        return Seen({r.name: (tuple(r.tags), r.created_at) for r in self.package.versions()}, self.clock.now())

    def apply(self, kind: str) -> None:
        present = [r for r in self.package.versions()]
        if kind == "push":
            children = [r.name for r in present if r.name in self.platforms]
            reuse = self.rng.sample(children, min(len(children), self.rng.choice([1, 2])))
            self.index([self.random_tag()] if self.rng.random() < 0.7 else [], reuse or [self.image()])
        elif kind == "retag" and present:
            target = self.rng.choice(present).name
            body, media_type = self.bodies[target]
            tag = self.rng.choice([f"v9.{self.rng.randrange(99)}.0", f"pr-{OPEN_PR}-{self.rng.getrandbits(28):07x}",
                                   f"sha-{self.rng.getrandbits(28):07x}"])  # fmt: skip
            try:
                self.images.put_manifest(self.repository, tag, body, media_type)
            except PushError:  # an index whose platform is gone cannot be tagged, by the registry either
                kind = "retag refused"
        elif kind == "delete" and present:
            # Often one of the newest rows: on an early page, it shifts every later page of a listing.
            newest = present[: max(1, len(present) // 3)]
            self.package.backend.delete(self.rng.choice(newest if self.rng.random() < 0.5 else present))
        self.fired.append(kind)

    def hook(self, request: VersionsRequest) -> None:
        try:
            kind = self.events.pop(request.number, None)
            if kind is not None:
                self.apply(kind)
            if request.kind == "list":
                now = self.clock.now()
                if (request.page or 1) == 1 and (not self.group_open or now > self.listed_at):
                    # The first of listings in a row (no other request, no time between them): the run plans on
                    # their union, which rests on this one.
                    self.basis = self.seen()
                    self.group_open = True
                self.listed_at = now
                return
            self.group_open = False
            if request.kind == "get" and request.version_id is not None:
                self.checks[request.version_id] = self.seen()
            elif request.kind == "delete":
                self.judge(request)
        except Exception as exc:  # the fake would only answer 500: keep the reason
            self.problems.append(f"hook failed: {type(exc).__name__}: {exc}")
            raise

    def judge(self, request: VersionsRequest) -> None:
        now = self.seen()
        target = next((r.name for r in self.package.versions() if r.id == request.version_id), None)
        if target is None:
            return  # already gone: this DELETE deletes nothing
        self.judged += 1
        assert self.basis is not None
        if now.at - self.basis.at > self.bound + 1e-6:
            self.problems.append(f"DELETE of {target[:19]} rests on a look {now.at - self.basis.at:.1f} s old")
        must_now = target in kept(now, self.graph)
        must_then = target in self.basis.versions and target in kept(self.basis, self.graph)
        if must_now and must_then:
            self.problems.append(f"deleted {target[:19]} {now.versions[target][0]} though it was kept at the look")
        elif must_now:
            self.raced += 1  # made necessary after the look began: unknowable, counted
        checked = self.checks.get(request.version_id or -1)
        if checked is None:
            self.problems.append(f"DELETE of {target[:19]} without a read of it first")
        elif target in checked.versions and own_reason(checked, target):
            self.problems.append(f"deleted {target[:19]} {checked.versions[target][0]}: its own tags kept it when read")


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeGitHub, Clock, str]]:
    clock = Clock(frozen=True)
    with FakeGitHub(clock=clock) as gh:
        token = "ghp_" + "i" * 36
        gh.add_token(token, login="charon-bot", rate_limit=10**9)
        repo = gh.add_repo(REPO)
        gh.add_pull(repo, "feature-12", number=OPEN_PR, state="open")
        gh.add_pull(repo, "feature-7", number=7, state="closed")
        yield gh, clock, token


def test_random_interleavings_never_delete_what_must_stay(
    fake: tuple[FakeGitHub, Clock, str], registry: Registry, image_factory: ImageFactory, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    gh, clock, token = fake
    totals = {"deleted": 0, "judged": 0, "raced": 0, "events": 0, "listings>2": 0, "held": 0, "looks": 0}
    seeds = range(int(os.environ.get("CHARON_FIRST_SCHEDULE", "0")), SCHEDULES)
    for seed in seeds:
        rng = random.Random(seed)  # noqa: S311 - reproducible schedules
        schedule = Schedule(seed, gh, registry, image_factory, clock, rng)
        schedule.build()
        controls = schedule.package.backend.controls
        controls.page_cap = rng.choice([2, 3, 4, 100])
        if rng.random() < 0.5:
            controls.shuffle_rows(seed)
        schedule.bound = rng.choice([0.0, 1.0, 2.0, 30.0])
        for _ in range(rng.randrange(1, 5)):
            schedule.events[rng.randrange(1, 40)] = rng.choice(["push", "retag", "delete", "delete"])
        if rng.random() < 0.5:  # while the first listing is being read
            schedule.events[rng.randrange(2, 6)] = rng.choice(["push", "delete", "delete"])
        controls.on_request(schedule.hook)
        runtime = Runtime(sleep=clock.sleep, monotonic=clock.now, wall=clock.now)
        runtime.freshness_bound = schedule.bound
        inputs = {
            "package": schedule.repository.split("/", 1)[1], "owner": OWNER, "repository": REPO,
            "registry-host": registry.host, "token": token, "github-token": token, "github-api-url": gh.url,
            "dry-run": "false",
        }  # fmt: skip
        code, out, stats = run_prune(tmp_path / str(seed), inputs, runtime)
        log = capsys.readouterr().out
        context = f"seed {seed}, events {schedule.fired}, page cap {controls.page_cap}, bound {schedule.bound}"
        assert not schedule.problems, f"{context}: {schedule.problems}\n{log[-4000:]}"
        assert code == 0, f"{context}\n{log[-4000:]}"
        assert not gh.problems(), f"{context}: {gh.problems()}"
        totals["deleted"] += int(out["deleted-count"])
        totals["judged"] += schedule.judged
        totals["raced"] += schedule.raced
        totals["events"] += len([kind for kind in schedule.fired if kind != "retag refused"])
        totals["listings>2"] += stats.listings > 2
        totals["held"] += int(out["failed-count"])
        totals["looks"] += stats.freshness_looks
        gh.requests.clear()
    summary = f"{len(seeds)} schedules: {totals}"
    with capsys.disabled():
        print(summary)
    # The schedules did real work: deletions, events that landed, shifted listings, holds, mid-run looks.
    assert totals["deleted"] > 2 * len(seeds) and totals["events"] > len(seeds), summary
    assert totals["listings>2"] > len(seeds) // 10 and totals["held"] > len(seeds) // 10, summary
    assert totals["looks"] > len(seeds) // 2 and totals["raced"] < totals["judged"] // 20, summary
