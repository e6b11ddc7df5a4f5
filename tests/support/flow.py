"""The flow, played here: build once, test many, prune, measure, on one machine through the real action.yml files.

One story, used by `bash .ci/demo` (`python -m tests.support.flow`) and by tests/e2e/test_flow.py:

1. A `pull_request` build of PR #12 at commit A runs action-tag (action.yml), builds a tiny real image with
   `podman build` (labelled with action-tag's labels, so its revision is A), pushes its tags to the loopback
   registry and "uploads" `docker save` of it, zipped as upload-artifact v4 zips, under action-tag's
   `artifact-name` to the fake GitHub's run.
2. A `workflow_run` consumer runs action-pull-image (action.yml): the same tag, from the registry, revision A.
3. The tag is deleted from the registry; a second consumer of the same build gets the image from the artifact.
4. PR #12 gets commit B: built, pushed, uploaded, pulled from the registry.
5. A fork's PR #42 at commit F: its build cannot push (a fork's token is read-only), so it only uploads; its
   consumer gets the image from the artifact without asking the registry.
6. action-prune runs on the resulting registry (the fake's GHCR package backed by the real registry), dated
   three days later: PR #12's image is past its 24 h but in use by the open PR, so it is kept; the closed PR's
   and the expired images go. A consumer re-run after the cleanup still pulls PR #12's image.
7. action-metrics reads the runs the story left in the fake GitHub: one build per commit.

Every build and consumer is a fresh runner: the image it made or got is removed from the engine afterwards, so
each pull or load is real. Each hand-off is printed as it happens (`say`), checked, and listed in the summary.
A failed check stops the story with FlowFailure (the demo then exits 1).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.fixtures.events import derive
from tests.support import artifacts, images, services
from tests.support.composite import ActionResult, ActionRunner
from tests.support.composite_fixtures import REPO_ROOT
from tests.support.fakegithub import FakeGitHub, Package
from tests.support.fakegithub.state import Pull, Run

OWNER = "wikid82"
REPO_NAME = "charon"
REPO = f"{OWNER}/{REPO_NAME}"
# The repository the real event examples were captured in; the story's payloads are moved to REPO.
EXAMPLE_REPO_OWNER, EXAMPLE_REPO_NAME = "Codertocat", "Hello-World"
FORK_OWNER = "forker"
MAIN_SHA = "9c0ffee0d15ea5e0ddba11c0ffee0d15ea5e0dd0"  # the default branch's head: what workflow_run jobs run at
SHA_A = "a1a2a3a4a5a6a7a8a9a0b1b2b3b4b5b6b7b8b9b0"
SHA_B = "b1b2b3b4b5b6b7b8b9b0c1c2c3c4c5c6c7c8c9c0"
SHA_FORK = "f0f1f2f3f4f5f6f7f8f9e0e1e2e3e4e5e6e7e8e9"
PR_SAME = 12
PR_FORK = 42
PR_CLOSED = 7
BRANCH_SAME = "feature/flow-demo"
BRANCH_FORK = "feature/dns"  # the consumers' branch filter (spec 7.4) is [main, development, 'feature/**']
LOCAL_TAG = "charon:local"
ARCHIVE_FILE = "image.tar"
DAY = 86400.0
CLEANUP_DELAY_DAYS = 3  # the cleanup runs as if this many days after the builds
# What the spec's container-prune.yml keeps: its retention (spec 5.2) and action-prune's default protection.
RETENTION = "pr-*=24h\nfeature-*=7d\nsha-*=30d\nnightly-*=7d"

ACTION_TAG = REPO_ROOT / "action-tag"
ACTION_PULL = REPO_ROOT / "action-pull-image"
ACTION_PRUNE = REPO_ROOT / "action-prune"
ACTION_METRICS = REPO_ROOT / "action-metrics"
VENV_BIN = REPO_ROOT / ".venv" / "bin"
# action-prune is a container action; here its image's entrypoint is the same `charon-ci prune` it execs.
PRUNE_ENTRYPOINT = [str(VENV_BIN / "charon-ci"), "prune"]

WORKFLOWS = {  # file -> name, as in examples/workflows/
    "docker-build.yml": "Docker Build, Publish & Test",
    "waf-integration.yml": "Integration Test: WAF",
    "cerberus-integration.yml": "Integration Test: Cerberus",
    "container-prune.yml": "Container Registry Cleanup",
}


class FlowFailure(RuntimeError):
    """A hand-off did not happen as it must; the message says which and what was seen."""


# --- what the story records ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Build:
    label: str
    run_id: int
    sha: str
    tag: str
    tags: tuple[str, ...]  # image:tag, every tag action-tag gave
    artifact_name: str
    image_id: str  # the engine's id of the image podman built (its config digest)
    pushed_digest: str | None  # None: not pushed (a fork's build)
    archive_bytes: int
    labels: Mapping[str, str]


@dataclass(frozen=True)
class Consumer:
    label: str
    run_id: int
    upstream: Build
    source: str
    image: str
    revision: str
    image_id: str
    label_revision: str  # read from the engine after the action: the label of the image it tagged local-tag
    attempts: int
    seconds: float  # the action's own `seconds` output
    registry_asked: bool  # the registry saw a manifest request for the tag during this consumer


@dataclass(frozen=True)
class PruneOutcome:
    outputs: Mapping[str, str]
    plan: Mapping[str, Any]
    kept: Mapping[str, tuple[str, ...]]  # digest -> tags
    deleted: Mapping[str, tuple[str, ...]]
    remaining: frozenset[str]  # digests still in the package after the run


@dataclass(frozen=True)
class MetricsOutcome:
    outputs: Mapping[str, str]
    report: Mapping[str, Any]
    builds_per_commit: Mapping[str, int]  # head sha -> build jobs


@dataclass
class HandOff:
    number: int
    giver: str
    taker: str
    image: str
    how: str
    proof: str


@dataclass
class FlowReport:
    handoffs: list[HandOff] = field(default_factory=list)
    builds: dict[str, Build] = field(default_factory=dict)
    consumers: dict[str, Consumer] = field(default_factory=dict)
    prune: PruneOutcome | None = None
    after_prune: Consumer | None = None
    metrics: MetricsOutcome | None = None
    history: dict[str, str] = field(default_factory=dict)  # tag -> digest of the images pushed before the story
    seconds: float = 0.0


# --- the world the story plays in --------------------------------------------------------------------------------


@dataclass
class FlowWorld:
    """Running services: the loopback registry, a Docker-API engine that may pull from it over http, the fake
    GitHub, and one ActionRunner (one RUNNER_TEMP, so charon-ci's bootstrap is made once and reused)."""

    gh: FakeGitHub
    registry: services.Registry
    docker_host: str
    engine: Any  # docker.DockerClient on docker_host
    runner: ActionRunner
    workdir: Path
    package_name: str = REPO_NAME
    action_ref: str = "main"  # shown in step names the way GitHub shows `uses: wikid82/charon-ci/...@REF`

    @property
    def image_name(self) -> str:
        return f"{self.registry.host}/{OWNER}/{self.package_name}"

    @property
    def registry_repository(self) -> str:
        return f"{OWNER}/{self.package_name}"


def _retarget(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The real example payload moved from Codertocat/Hello-World to this story's repository."""
    text = json.dumps(payload)
    for old, new in (
        (f"{EXAMPLE_REPO_OWNER}/{EXAMPLE_REPO_NAME}", REPO),
        (EXAMPLE_REPO_NAME, REPO_NAME),
        (f'"{EXAMPLE_REPO_OWNER}"', f'"{OWNER}"'),
        (f"/{EXAMPLE_REPO_OWNER}", f"/{OWNER}"),
    ):
        text = text.replace(old, new)
    moved: dict[str, Any] = json.loads(text)
    _mark_organization(moved)
    return moved


def _mark_organization(value: Any) -> None:
    """The story's owner is an organization (as wikid82's GHCR package is looked up under /orgs)."""
    if isinstance(value, dict):
        if value.get("login") == OWNER and "type" in value:
            value["type"] = "Organization"
        for item in value.values():
            _mark_organization(item)
    elif isinstance(value, list):
        for item in value:
            _mark_organization(item)


def _tail(result: ActionResult, limit: int = 3000) -> str:
    return (result.stdout[-limit:] + "\n" + result.stderr[-limit:]).strip()


def _short(digest: str | None) -> str:
    return (digest or "-").replace("sha256:", "")[:12]


class Story:
    """Plays the story step by step; each step returns what it saw and raises FlowFailure when a check fails."""

    def __init__(self, world: FlowWorld, say: Callable[[str], None]) -> None:
        self.world = world
        self.gh = world.gh
        self._say = say
        self.report = FlowReport()
        self._started = time.monotonic()
        self._events = 0
        self.package: Package | None = None
        self._pulls: dict[int, Pull] = {}

    # --- output -------------------------------------------------------------------------------------------
    def say(self, kind: str, text: str) -> None:
        self._say(f"[{time.monotonic() - self._started:5.1f}s] {kind:<9} {text}")

    def hand_off(self, giver: str, taker: str, image: str, how: str, proof: str) -> None:
        number = len(self.report.handoffs) + 1
        self.report.handoffs.append(HandOff(number, giver, taker, image, how, proof))
        self.say(f"hand-off {number}", f"{giver} -> {taker}: {image} via {how}; {proof}")

    def check(self, condition: bool, what: str) -> None:
        if not condition:
            raise FlowFailure(what)

    # --- the fake GitHub side -------------------------------------------------------------------------------------
    def _event_file(self, payload: Mapping[str, Any]) -> Path:
        self._events += 1
        path = self.world.workdir / f"event-{self._events}.json"
        path.write_text(json.dumps(payload))
        return path

    def _job_env(self, event: str, payload: Mapping[str, Any], *, sha: str, ref: str,
                 run_id: int | None) -> dict[str, str]:  # fmt: skip
        env = {
            **self.gh.env(),
            "GITHUB_EVENT_NAME": event,
            "GITHUB_EVENT_PATH": str(self._event_file(payload)),
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_REPOSITORY_OWNER": OWNER,
            "GITHUB_SHA": sha,
            "GITHUB_REF": ref,
            "GITHUB_RUN_ATTEMPT": "1",
            "GITHUB_ACTOR": OWNER,
            "DOCKER_HOST": self.world.docker_host,
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        }
        if run_id is not None:
            env["GITHUB_RUN_ID"] = str(run_id)
        return env

    def _start_run(self, workflow: str, *, event: str, sha: str, branch: str, head_repo: str | None = None,
                   pulls: tuple[Pull, ...] = ()) -> Run:  # fmt: skip
        """The run GitHub starts for this job (in progress until `_finish_run`)."""
        flow = self.gh.add_workflow(REPO, workflow, name=WORKFLOWS[workflow])
        return self.gh.add_run(REPO, flow, event=event, status="in_progress", head_sha=sha, head_branch=branch,
                               head_repo=head_repo, pull_requests=pulls)  # fmt: skip

    def _finish_run(self, run: Run, *, ok: bool, job: str, steps: list[str], failed_step: int | None = None) -> None:
        """Completes the run as GitHub would list it afterwards: one job, its `uses:` steps named as GitHub names
        them (what action-metrics recognises pull and prune steps by)."""
        finished = max(self.gh.clock.now(), run.run_started_at + 1)
        shown: list[dict[str, object]] = []
        for index, name in enumerate(steps):
            failed = failed_step is not None and index == failed_step
            skipped = failed_step is not None and index > failed_step
            conclusion = "failure" if failed else "skipped" if skipped else "success"
            shown.append({"name": name, "status": "completed", "conclusion": conclusion})
        self.gh.add_job(run, job, conclusion="success" if ok else "failure", created_at=run.run_started_at,
                        started_at=run.run_started_at, completed_at=finished, steps=shown)  # fmt: skip
        with self.gh.state.lock:
            run.status, run.conclusion, run.updated_at = "completed", "success" if ok else "failure", finished

    def uses(self, action: str) -> str:
        return f"Run {OWNER}/charon-ci/{action}@{self.world.action_ref}"

    # --- the world before the story -------------------------------------------------------------------------------
    def setup(self) -> None:
        world = self.world
        assert world.registry.storage_dir is not None
        self.gh.add_org(OWNER)
        self.gh.add_repo(REPO, owner_type="Organization")
        for file_name, name in WORKFLOWS.items():
            self.gh.add_workflow(REPO, file_name, name=name)
        self.package = self.gh.add_container_package(
            OWNER, world.package_name, registry_url=world.registry.url, repository=world.registry_repository,
            storage_dir=world.registry.storage_dir, repo=REPO,
        )  # fmt: skip
        self._pulls[PR_SAME] = self.gh.add_pull(REPO, BRANCH_SAME, head_sha=SHA_A, number=PR_SAME)
        self._pulls[PR_FORK] = self.gh.add_pull(REPO, BRANCH_FORK, head_sha=SHA_FORK, head_owner=FORK_OWNER,
                                                number=PR_FORK)  # fmt: skip
        self.gh.add_pull(REPO, "feature/old-idea", head_sha="7" * 40, number=PR_CLOSED, state="closed")
        # What the registry already holds: main's image (protected), a closed PR's, an expired sha image.
        factory = images.ImageFactory(world.registry.host)
        now = time.time()
        history = [
            (["latest", f"sha-{MAIN_SHA[:7]}"], MAIN_SHA, 10),
            ([f"pr-{PR_CLOSED}-{'7' * 7}"], "7" * 40, 5),
            ([f"sha-{'3' * 7}"], "3" * 40, 40),
        ]
        for tags, revision, age_days in history:
            pushed = factory.push_image(world.registry_repository, tags, revision=revision)
            moment = now - age_days * DAY
            self.package.set_version(pushed.digest, created_at=moment, updated_at=moment)
            for tag in tags:
                self.report.history[tag] = pushed.digest
        shown = ", ".join(f"{','.join(tags)} ({age} days)" for tags, _, age in history)
        self.say(
            "world",
            f"fake GitHub {self.gh.url} (repository {REPO}, GHCR package {OWNER}/{world.package_name} "
            f"backed by the registry {world.registry.host}); the registry already holds {shown}; "
            f"PR #{PR_SAME} (feature branch) and fork PR #{PR_FORK} are open, PR #{PR_CLOSED} is closed",
        )

    # --- the build ---------------------------------------------------------------------------------------------
    def build(self, label: str, number: int, sha: str, branch: str, *, fork_owner: str | None = None) -> Build:
        """The build job of docker-build.yml for a pull_request event: tag, build, push (not a fork), upload."""
        world = self.world
        pull = self._pulls[number]
        with self.gh.state.lock:  # a new commit on the PR (synchronize): its head moves
            if pull.head_sha != sha:
                pull.head_sha = sha
                pull.commits.append(sha)
                pull.updated_at = self.gh.clock.now()
        head_repo = f"{fork_owner}/{REPO_NAME}" if fork_owner else None
        pulls = () if fork_owner else (self._pulls[number],)  # GitHub lists no PRs on a fork's run
        run = self._start_run("docker-build.yml", event="pull_request", sha=sha, branch=branch, head_repo=head_repo,
                              pulls=pulls)  # fmt: skip
        payload = _retarget(derive.pull_request(number, sha, branch, fork_owner=fork_owner))
        derive.validate("pull_request", payload)
        merge_sha = uuid.uuid5(uuid.NAMESPACE_OID, sha).hex + "00000000"  # the merge commit GitHub checks out
        env = self._job_env("pull_request", payload, sha=merge_sha, ref=f"refs/pull/{number}/merge", run_id=run.id)
        tagged = world.runner.run(ACTION_TAG, {"images": world.image_name}, env=env)
        self.check(tagged.succeeded, f"{label}: action-tag failed:\n{_tail(tagged)}")
        out = tagged.outputs
        self.check(out["sha"] == sha, f"{label}: action-tag says the built commit is {out['sha']}, not the head {sha}")
        tags = tuple(line for line in out["tags"].splitlines() if line)
        labels = dict(line.split("=", 1) for line in out["labels"].splitlines() if "=" in line)
        self.check(labels.get(images.REVISION_LABEL) == sha, f"{label}: revision label {labels} is not {sha}")
        self.say("build", f"{label}: action-tag gave tag {out['tag']}, artifact-name {out['artifact-name']}")

        image_id = self._podman_build(label, sha, tags, labels)
        primary = f"{world.image_name}:{out['tag']}"
        pushed_digest = None
        if fork_owner is None:
            pushed_digest = self._push(label, tags)
            self.hand_off(label, "registry", primary, "push", f"digest {_short(pushed_digest)}")
        else:
            self.say("build", f"{label}: no push (a fork's pull_request token cannot write packages)")
        archive = world.workdir / f"{out['artifact-name']}.tar"
        images.save_image_archive(world.engine, primary, archive)
        zipped = artifacts.upload_artifact_zip(world.workdir / f"{out['artifact-name']}.zip", {ARCHIVE_FILE: archive})
        for reference in tags:  # the build's runner is gone: nothing of it stays in the engine
            world.engine.api.remove_image(reference, force=True)
        self._finish_run(run, ok=True, job="build", steps=[
            "Run actions/checkout", self.uses("action-tag"), "Build and push", "Save the amd64 image",
            "Run actions/upload-artifact"])  # fmt: skip
        self.gh.add_artifact(run, out["artifact-name"], zipped.read_bytes())
        self.hand_off(label, "artifact", primary, f"artifact {out['artifact-name']} of run {run.id}",
                      f"docker save, {zipped.stat().st_size} bytes zipped")  # fmt: skip
        build = Build(label, run.id, sha, out["tag"], tags, out["artifact-name"], image_id, pushed_digest,
                      zipped.stat().st_size, labels)  # fmt: skip
        self.report.builds[label] = build
        return build

    def _podman_build(self, label: str, sha: str, tags: tuple[str, ...], labels: Mapping[str, str]) -> str:
        context = Path(tempfile.mkdtemp(prefix="context-", dir=self.world.workdir))
        (context / "Containerfile").write_text("FROM scratch\nCOPY revision /revision\n")
        (context / "revision").write_text(f"{sha}\n")
        iidfile = context.parent / f"{context.name}.iid"
        command = ["podman", "--url", self.world.docker_host, "build", "--isolation", "chroot", "--iidfile",
                   str(iidfile), "-f", str(context / "Containerfile")]  # fmt: skip
        for key, value in labels.items():
            command += ["--label", f"{key}={value}"]
        for reference in tags:
            command += ["--tag", reference]
        done = subprocess.run([*command, str(context)], capture_output=True, text=True, timeout=300, check=False)
        self.check(done.returncode == 0, f"{label}: podman build failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        image_id = iidfile.read_text().strip()
        image_id = image_id if image_id.startswith("sha256:") else f"sha256:{image_id}"
        seen = self.world.engine.api.inspect_image(tags[0])
        self.check(seen["Id"] == image_id, f"{label}: the engine has {seen['Id']} under {tags[0]}, built {image_id}")
        self.say("build", f"{label}: podman built {_short(image_id)} (FROM scratch, revision label {sha[:7]})")
        return image_id

    def _push(self, label: str, tags: tuple[str, ...]) -> str:
        digests = set()
        for reference in tags:
            repository, _, tag = reference.rpartition(":")
            for event in self.world.engine.api.push(repository, tag=tag, stream=True, decode=True):
                if isinstance(event, dict) and event.get("error"):
                    raise FlowFailure(f"{label}: push {reference}: {event['error']}")
            digests.add(self._registry_digest(tag))
        self.check(len(digests) == 1, f"{label}: the pushed tags name different manifests: {sorted(digests)}")
        return digests.pop()

    def _registry_digest(self, tag: str) -> str:
        answer = requests.head(
            f"{self.world.registry.url}/v2/{self.world.registry_repository}/manifests/{tag}",
            headers={"Accept": ", ".join([images.OCI_MANIFEST, images.DOCKER_MANIFEST, images.OCI_INDEX,
                                          images.DOCKER_LIST])},
            timeout=10,
        )  # fmt: skip
        if answer.status_code != 200:
            raise FlowFailure(f"the registry does not serve tag {tag}: HTTP {answer.status_code}")
        return str(answer.headers["Docker-Content-Digest"])

    def _registry_has(self, tag: str) -> bool:
        try:
            self._registry_digest(tag)
        except FlowFailure:
            return False
        return True

    def delete_from_registry(self, build: Build) -> None:
        """The registry loses the build's image (DELETE by digest, which untags it too)."""
        assert build.pushed_digest is not None
        url = f"{self.world.registry.url}/v2/{self.world.registry_repository}/manifests/{build.pushed_digest}"
        answer = requests.delete(url, timeout=10)
        self.check(answer.status_code == 202, f"deleting {build.tag} from the registry: HTTP {answer.status_code}")
        self.check(not self._registry_has(build.tag), f"the registry still serves {build.tag} after the delete")
        self.say("registry", f"tag {build.tag} deleted (its manifest {_short(build.pushed_digest)} is gone)")

    # --- the consumers -------------------------------------------------------------------------------------------
    def consume(self, label: str, workflow: str, upstream: Build, *, expect: str) -> Consumer:
        """A workflow_run consumer of `upstream`'s build run: action-pull-image, then the proofs checked here."""
        world = self.world
        fork = upstream.pushed_digest is None
        number = PR_FORK if fork else PR_SAME
        branch = BRANCH_FORK if fork else BRANCH_SAME
        payload = derive.workflow_run(
            "pull_request", branch, upstream.sha, repository=REPO, run_id=upstream.run_id,
            pull_requests=() if fork else [(number, upstream.sha, branch)],
            head_owner=FORK_OWNER if fork else None,
        )  # fmt: skip
        payload["workflow_run"]["name"] = payload["workflow"]["name"] = WORKFLOWS["docker-build.yml"]
        derive.validate("workflow_run", payload)
        run = self._start_run(workflow, event="workflow_run", sha=MAIN_SHA, branch="main")
        env = self._job_env("workflow_run", payload, sha=MAIN_SHA, ref="refs/heads/main", run_id=run.id)
        log_before = self._registry_log_size()
        result = world.runner.run(ACTION_PULL, {"image-name": world.image_name, "local-tag": LOCAL_TAG}, env=env)
        registry_asked = self._registry_log_mentions(log_before, f"/manifests/{upstream.tag}")
        self._finish_run(run, ok=result.succeeded, job="test", failed_step=None if result.succeeded else 0,
                         steps=[self.uses("action-pull-image"), "Run the integration tests"])  # fmt: skip
        self.check(result.succeeded, f"{label}: action-pull-image failed:\n{_tail(result)}")
        out = result.outputs
        expected_image = f"{world.image_name}:{upstream.tag}"
        try:
            local = world.engine.api.inspect_image(LOCAL_TAG)
        except Exception as missing:  # docker.errors.ImageNotFound and the transport's errors
            raise FlowFailure(f"{label}: the engine has no {LOCAL_TAG} after action-pull-image: {missing}") from None
        label_revision = str((local.get("Config") or {}).get("Labels", {}).get(images.REVISION_LABEL, ""))
        consumer = Consumer(label, run.id, upstream, out["source"], out["image"], out["revision"], out["image-id"],
                            label_revision, int(out["attempts"] or 0), float(out["seconds"] or 0),
                            registry_asked)  # fmt: skip
        for reference in (LOCAL_TAG, expected_image):  # this runner is gone too
            with contextlib.suppress(Exception):
                world.engine.api.remove_image(reference, force=True)
        self.check(consumer.image == expected_image,
                   f"{label}: got {consumer.image}, the build tagged {expected_image}")  # fmt: skip
        self.check(consumer.source == expect, f"{label}: came from the {consumer.source}, expected the {expect}")
        self.check(
            consumer.revision == upstream.sha == consumer.label_revision,
            f"{label}: revision {consumer.revision} / label {consumer.label_revision}, built {upstream.sha}",
        )
        self.check(
            consumer.image_id == upstream.image_id == local["Id"],
            f"{label}: image {consumer.image_id} ({local['Id']} in the engine), built {upstream.image_id}",
        )
        proof = (f"revision {consumer.revision[:7]} proven, image {_short(consumer.image_id)} = the build's, "
                 f"{consumer.seconds:.1f}s")  # fmt: skip
        if fork:
            proof += f"; {consumer.attempts} attempt, registry {'asked' if registry_asked else 'not asked'}"
        self.hand_off(f"{expect} of {upstream.label}", label, expected_image, f"action-pull-image ({expect})", proof)
        self.report.consumers[label] = consumer
        return consumer

    def _registry_log(self) -> Path:
        """The registry's access log (services.py writes it beside its config): who asked for what."""
        config = self.world.registry.config_path
        log = config.parent / "registry.log" if config is not None else None
        if log is None or not log.is_file():
            raise FlowFailure(f"the registry's access log is not known (config {config}): cannot tell who asked it")
        return log

    def _registry_log_size(self) -> int:
        return self._registry_log().stat().st_size

    def _registry_log_mentions(self, offset: int, text: str) -> bool:
        with self._registry_log().open("rb") as handle:
            handle.seek(offset)
            return text.encode() in handle.read()

    # --- cleanup and measure --------------------------------------------------------------------------------
    def prune(self) -> PruneOutcome:
        world = self.world
        assert self.package is not None
        # Three days later: the fake GHCR dates the story's own versions that far back (prune reads created_at).
        moment = time.time() - CLEANUP_DELAY_DAYS * DAY
        for build in self.report.builds.values():
            if build.pushed_digest is not None and self._registry_has(build.tag):
                self.package.set_version(build.pushed_digest, created_at=moment, updated_at=moment)
        self.say("prune", f"{CLEANUP_DELAY_DAYS} days later, the daily cleanup (spec 5.2 retention, min-age 48h)")
        inputs = {
            "package": world.package_name, "owner": OWNER, "repository": REPO, "registry-host": world.registry.host,
            "token": self.gh.token, "github-token": self.gh.token, "github-api-url": self.gh.url,
            "retention": RETENTION, "dry-run": "false",
            "plan-file": str(world.workdir / "prune-plan.json"),
        }  # fmt: skip
        run = self._start_run("container-prune.yml", event="schedule", sha=MAIN_SHA, branch="main")
        env = self._job_env("schedule", _retarget(derive.schedule()), sha=MAIN_SHA, ref="refs/heads/main",
                            run_id=run.id)  # fmt: skip
        result = world.runner.run(ACTION_PRUNE, inputs, env=env, docker_entrypoint=PRUNE_ENTRYPOINT)
        self._finish_run(run, ok=result.succeeded, job="ghcr", steps=[self.uses("action-prune")],
                         failed_step=None if result.succeeded else 0)  # fmt: skip
        self.check(result.succeeded, f"prune failed:\n{_tail(result)}")
        plan = json.loads(Path(result.outputs["plan-path"]).read_text())
        kept = {item["digest"]: tuple(item["tags"]) for item in plan["keep"]}
        deleted = {item["digest"]: tuple(item["tags"]) for item in plan["delete"] if item.get("result") == "deleted"}
        for item in plan["keep"]:
            self.say("prune", f"keep {','.join(item['tags']) or 'untagged'}: {item['summary']}")
        for item in plan["delete"]:
            self.say("prune", f"{item.get('result', '?')} {','.join(item['tags']) or 'untagged'}: {item['summary']}")
        remaining = frozenset(record.name for record in self.package.versions())
        outcome = PruneOutcome(dict(result.outputs), plan, kept, deleted, remaining)
        self.report.prune = outcome
        current = self.report.builds.get("PR #12 @B")
        if current is not None and current.pushed_digest is not None:
            self.check(current.pushed_digest in kept and current.pushed_digest in remaining,
                       f"prune did not keep the open PR's current image {current.tag}")  # fmt: skip
            self.hand_off("prune", "registry", f"{world.image_name}:{current.tag}", "kept",
                          f"{result.outputs['deleted-count']} deleted, {result.outputs['kept-count']} kept; "
                          f"{current.tag} kept: {'; '.join(self._reasons(plan, current.pushed_digest))}")  # fmt: skip
        return outcome

    @staticmethod
    def _reasons(plan: Mapping[str, Any], digest: str) -> list[str]:
        for item in plan["keep"]:
            if item["digest"] == digest:
                return [str(reason) for reason in item["reasons"]]
        return []

    def metrics(self) -> MetricsOutcome:
        world = self.world
        inputs = {
            "build-workflows": "docker-build.yml", "package": world.package_name, "owner": OWNER,
            "registry-host": world.registry.host, "repository": REPO, "github-token": self.gh.token,
            "report-dir": str(world.workdir / "metrics"),
        }  # fmt: skip
        env = self._job_env("schedule", _retarget(derive.schedule()), sha=MAIN_SHA, ref="refs/heads/main", run_id=None)
        result = world.runner.run(ACTION_METRICS, inputs, env=env)
        self.check(result.succeeded, f"metrics failed:\n{_tail(result)}")
        report = json.loads(Path(result.outputs["report-path"]).read_text())  # report-dir is absolute
        per_commit = {row["head_sha"]: int(row["builds"]) for row in report["builds_per_commit"]["most"]}
        outcome = MetricsOutcome(dict(result.outputs), report, per_commit)
        self.report.metrics = outcome
        commits = {build.sha for build in self.report.builds.values()}
        self.check(
            per_commit == dict.fromkeys(commits, 1),
            f"metrics counted builds per commit {per_commit}, the story built each of {sorted(commits)} once",
        )
        self.hand_off("fake GitHub runs", "metrics", "-", "action-metrics",
                      f"{len(per_commit)} commits, builds per commit {result.outputs['builds-per-commit']}, "
                      f"pull success {result.outputs['pull-success-rate'] or '-'}, "
                      f"cleanup success {result.outputs['cleanup-success-rate'] or '-'}")  # fmt: skip
        return outcome

    # --- the whole story -----------------------------------------------------------------------------------------
    def play(self) -> FlowReport:
        self.setup()
        build_a = self.build("PR #12 @A", PR_SAME, SHA_A, BRANCH_SAME)
        self.consume("WAF @A", "waf-integration.yml", build_a, expect="registry")
        self.delete_from_registry(build_a)
        self.consume("Cerberus @A", "cerberus-integration.yml", build_a, expect="artifact")
        build_b = self.build("PR #12 @B", PR_SAME, SHA_B, BRANCH_SAME)
        self.consume("WAF @B", "waf-integration.yml", build_b, expect="registry")
        build_fork = self.build("fork PR #42 @F", PR_FORK, SHA_FORK, BRANCH_FORK, fork_owner=FORK_OWNER)
        fork = self.consume("WAF @F", "waf-integration.yml", build_fork, expect="artifact")
        self.check(
            fork.attempts == 1 and not fork.registry_asked,
            f"the fork's consumer asked the registry ({fork.attempts} attempts) for an image it cannot hold",
        )
        self.prune()
        self.report.after_prune = self.consume("WAF @B re-run", "waf-integration.yml", build_b, expect="registry")
        self.metrics()
        self.report.seconds = time.monotonic() - self._started
        return self.report


def summary_table(report: FlowReport) -> str:
    rows = [("#", "from", "to", "image", "how", "proof")]
    rows += [(str(h.number), h.giver, h.taker, h.image.rsplit("/", 1)[-1], h.how, h.proof) for h in report.handoffs]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)] + [row[-1]]
        lines.append(" | ".join(cells).rstrip())
        if index == 0:
            lines.append("-+-".join("-" * width for width in widths) + "-+-" + "-" * 5)
    return "\n".join(lines)


# --- the demo: `bash .ci/demo` ---------------------------------------------------------------------------------


def _action_ref() -> str:
    done = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=False)  # fmt: skip
    head = done.stdout.strip()
    return head if done.returncode == 0 and len(head) == 40 else "main"


@contextlib.contextmanager
def demo_world(runner_temp: Path) -> Iterator[FlowWorld]:
    """Fresh loopback services for one demo; `runner_temp` outlives it, so a second demo reuses the bootstrap."""
    running = services.start_services()
    gh = FakeGitHub().start()
    workdir = Path(tempfile.mkdtemp(prefix="charon-flow-"))
    client = running.engine.client()
    try:
        yield FlowWorld(gh, running.registry, running.engine.docker_host, client, ActionRunner(runner_temp), workdir,
                        action_ref=_action_ref())  # fmt: skip
    finally:
        client.close()
        gh.stop()
        running.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _fresh_runner_temp(root: Path) -> Path:
    """RUNNER_TEMP for the demo: kept between demos for charon-ci's bootstrap venv, emptied of old jobs."""
    root.mkdir(parents=True, exist_ok=True)
    for entry in root.iterdir():
        if entry.name != "charon-ci":
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink()
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bash .ci/demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runner-temp",
        type=Path,
        default=REPO_ROOT / ".ci" / "state" / "demo-runner-temp",
        help="RUNNER_TEMP of the simulated jobs (kept: a second demo reuses the bootstrap)",
    )
    args = parser.parse_args(argv)

    def say(line: str) -> None:
        print(line, flush=True)

    started = time.monotonic()
    print("charon-ci: the flow, played here (build once, test many, prune, measure)", flush=True)
    story: Story | None = None
    try:
        with demo_world(_fresh_runner_temp(args.runner_temp)) as world:
            story = Story(world, say)
            report = story.play()
            problems = world.gh.problems()
            if problems:
                raise FlowFailure("the fake GitHub saw problems: " + "; ".join(problems[:5]))
    except (FlowFailure, services.ServiceError) as failure:
        if story is not None and story.report.handoffs:
            print("\n" + summary_table(story.report))
        print(f"\nFAILED after {time.monotonic() - started:.1f}s: {failure}", file=sys.stderr, flush=True)
        return 1
    print("\n" + summary_table(report))
    print(f"\n{len(report.handoffs)} hand-offs, all checked; played in {time.monotonic() - started:.1f}s "
          f"(services included)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
