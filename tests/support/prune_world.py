"""A Charon-like container package in the real loopback registry, behind the fake GitHub, for prune tests.

`build_charon_world` pushes real images (two-platform indexes with buildx attestations, a cosign signature,
an OCI referrer with its fallback tag, shared platform children, orphans), sets each version's `created_at`
in the fake, adds open and closed PRs and an in-progress run, and returns what a correct prune must delete
and keep. With `shuffle` set, the fake serves every page of the versions list in a seeded random order
(GitHub promises none). `retag` points another tag at a pushed manifest, as `imagetools create` or
`crane tag` would; `run_prune` runs the command in-process with the runner's files. Used by the tests in
tests/prune/ and by bench/prune.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from charon_ci import gha, oci
from charon_ci.prune.apply import OnlineStats, Runtime, run_online
from charon_ci.prune.command import parse_settings, report
from tests.support.composite import parse_file_command
from tests.support.fakegithub import FakeGitHub, Package
from tests.support.images import ImageFactory, PushedImage, PushedIndex
from tests.support.services import Registry

DAY = 86400.0
HOUR = 3600.0
OWNER = "wikid82"
REPO = "wikid82/charon"
# Retries and backoff without real waiting: the fake answers at once.
NO_WAIT = Runtime(sleep=lambda seconds: None)
INDEX_ACCEPT = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"


def sha40(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()  # noqa: S324 - a fake git sha, not security


@dataclass
class World:
    package: Package
    package_name: str
    repository: str  # in the registry: OWNER/package_name
    keep: set[str] = field(default_factory=set)  # digests that must survive
    delete: set[str] = field(default_factory=set)  # digests a correct run deletes
    kept_tags: dict[str, list[str]] = field(default_factory=dict)  # tag -> platforms to pull
    active_run_sha: str = ""

    @property
    def all_digests(self) -> set[str]:
        return self.keep | self.delete

    def listed(self) -> set[str]:
        """The digests the package lists now (what a run has not deleted)."""
        return {record.name for record in self.package.versions()}


def _fallback_index_digest(registry: Registry, repository: str, subject: str) -> str:
    tag = subject.replace(":", "-")
    answer = requests.head(
        f"{registry.url}/v2/{repository}/manifests/{tag}", headers={"Accept": INDEX_ACCEPT}, timeout=10
    )
    answer.raise_for_status()
    return str(answer.headers["Docker-Content-Digest"])


def retag(registry: Registry, images: ImageFactory, repository: str, digest: str, tag: str) -> None:
    """Point `tag` at the manifest `digest` (same bytes, so the same digest): a re-tag, no new version."""
    answer = requests.get(
        f"{registry.url}/v2/{repository}/manifests/{digest}", headers={"Accept": oci.ACCEPT_MANIFEST}, timeout=10
    )
    answer.raise_for_status()
    images.put_manifest(repository, tag, answer.content, answer.headers["Content-Type"])


def build_charon_world(
    gh: FakeGitHub, registry: Registry, images: ImageFactory, now: float | None = None, shuffle: int | None = None
) -> World:
    """About 45 versions; see the module docstring. Ages are relative to `now` (default: the real time)."""
    assert registry.storage_dir is not None
    now = time.time() if now is None else now
    name = f"charon-{uuid.uuid4().hex[:8]}"
    repository = f"{OWNER}/{name}"
    package = gh.add_container_package(
        OWNER, name, registry_url=registry.url, repository=repository, storage_dir=registry.storage_dir
    )
    if shuffle is not None:
        package.backend.controls.shuffle_rows(shuffle)
    world = World(package, name, repository)
    ages: dict[str, float] = {}

    def index(tags: list[str], age_days: float, *, keep: bool, attestations: bool = True, **kw: Any) -> PushedIndex:
        pushed = images.push_index(repository, tags, attestations=attestations, revision=sha40(str(tags)), **kw)
        parts = [pushed.digest, *(c.digest for c in pushed.children), *(a.digest for a in pushed.attestations)]
        for digest in parts:
            ages.setdefault(digest, age_days)
            (world.keep if keep else world.delete).add(digest)
        if keep:
            for tag in tags:
                world.kept_tags[tag] = ["linux/amd64", "linux/arm64"]
        return pushed

    def single(tags: list[str], age_days: float, *, keep: bool) -> PushedImage:
        pushed = images.push_image(repository, tags or None, revision=sha40(str(tags) + str(age_days)))
        ages[pushed.digest] = age_days
        (world.keep if keep else world.delete).add(pushed.digest)
        if keep:
            for tag in tags:
                world.kept_tags[tag] = ["linux/amd64"]
        return pushed

    # Kept: protected tags, with a cosign signature and an OCI referrer (plus its fallback tag index).
    latest = index(["latest", f"sha-{sha40('main-9')[:7]}"], 3, keep=True)
    release = index(["v1.2.3", "1.2"], 100, keep=True)
    signature = images.push_cosign(repository, release.digest)
    ages[signature.digest] = 100
    world.keep.add(signature.digest)
    sbom = images.push_referrer(repository, latest)
    fallback = _fallback_index_digest(registry, repository, latest.digest)
    for digest in (sbom.digest, fallback):
        ages[digest] = 3
        world.keep.add(digest)
    # `dev` (protected) shares its amd64 image with an expired sha image: that child must stay.
    dev = index(["dev"], 40, keep=True, attestations=False)
    old_sha = images.push_index(
        repository,
        [f"sha-{sha40('main-1')[:7]}"],
        children=[dev.child("linux/amd64"), images.push_image(repository, None, platform="linux/arm64")],
        attestations=True,
    )
    for digest in [old_sha.digest, old_sha.children[1].digest, *(a.digest for a in old_sha.attestations)]:
        ages[digest] = 45
        world.delete.add(digest)
    # In use: an open PR's old image, and the image of a run still in progress.
    index([f"pr-12-{sha40('pr12')[:7]}"], 5, keep=True)
    world.active_run_sha = sha40("feature-x")
    index([f"feature-x-{world.active_run_sha[:7]}"], 10, keep=True, attestations=False)
    # Not expired yet, and too young for anything.
    index([f"feature-new-{sha40('fn')[:7]}"], 3, keep=True, attestations=False)
    single([], 1 / 24, keep=True)  # a push in progress: an untagged manifest an hour old
    # Expired: a closed PR (with an OCI referrer whose fallback index goes too), an old feature branch,
    # old nightlies, orphans.
    closed = index([f"pr-7-{sha40('pr7')[:7]}"], 5, keep=False)
    closed_sbom = images.push_referrer(repository, closed)
    closed_fallback = _fallback_index_digest(registry, repository, closed.digest)
    for digest in (closed_sbom.digest, closed_fallback):
        ages[digest] = 5
        world.delete.add(digest)
    index([f"feature-old-{sha40('fo')[:7]}"], 10, keep=False, attestations=False)
    single(["nightly-2026-01-01"], 20, keep=False)
    single(["nightly-2026-01-02"], 19, keep=False)
    single([], 60, keep=False)
    single([], 61, keep=False)

    for digest, age_days in ages.items():
        package.set_version(digest, created_at=now - age_days * DAY)
    repo = gh.add_repo(REPO)
    gh.add_pull(repo, "feature-12", number=12, state="open", head_sha=sha40("pr12"))
    gh.add_pull(repo, "feature-7", number=7, state="closed", head_sha=sha40("pr7"))
    gh.add_run(repo, status="in_progress", conclusion=None, head_branch="feature-x", head_sha=world.active_run_sha)
    gh.add_run(repo, status="completed", conclusion="success", head_sha=sha40("pr7"))
    assert not world.keep & world.delete
    return world


def action_inputs(gh: FakeGitHub, registry: Registry, world: World, **extra: str) -> dict[str, str]:
    return {
        "package": world.package_name,
        "owner": OWNER,
        "repository": REPO,
        "registry-host": registry.host,
        "token": gh.token,
        "github-token": gh.token,
        "github-api-url": gh.url,
        **extra,
    }


def input_env(inputs: dict[str, str]) -> dict[str, str]:
    return {f"INPUT_{name.upper()}": value for name, value in inputs.items()}


def run_prune(
    folder: Path, inputs: dict[str, str], runtime: Runtime | None = None
) -> tuple[int, dict[str, str], OnlineStats]:
    """One in-process run with the runner's files in a new folder under `folder`; returns exit code,
    outputs and request counts. The log goes to stdout (read it with capsys)."""
    run = Path(folder) / f"run-{len(list(Path(folder).glob('run-*')))}"
    run.mkdir(parents=True)
    env = {
        **input_env(inputs),
        "GITHUB_OUTPUT": str(run / "output"),
        "GITHUB_STEP_SUMMARY": str(run / "summary.md"),
        "INPUT_PLAN-FILE": str(run / "plan.json"),
    }
    (run / "output").write_text("")
    stats = OnlineStats()

    def body() -> int:
        return run_online(parse_settings(env), env, report, runtime=runtime or Runtime(), stats=stats)

    code = gha.run_action(body, env)
    return code, parse_file_command((run / "output").read_text()), stats
