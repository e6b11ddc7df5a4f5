"""The test world of action-pull-image: the real loopback registry behind a fault proxy, a podman engine of its
own that may pull over plain http from both (and from a port where nothing listens: a registry that is down),
the fake GitHub for runs and artifacts, and helpers that make artifacts the way builds do (`docker save` of a
real image, zipped as upload-artifact v4 zips it).
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fixtures.events import derive
from tests.pull.registry_proxy import RegistryProxy
from tests.support import images
from tests.support.composite import ActionResult, ActionRunner
from tests.support.composite_fixtures import REPO_ROOT
from tests.support.fakegithub import FakeGitHub
from tests.support.images import ImageFactory, PushedImage
from tests.support.services import Registry

ACTION = REPO_ROOT / "action-pull-image"
REPO = "octo-org/octo-repo"
SHA = "5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b"
OTHER_SHA = "0badc0de0badc0de0badc0de0badc0de0badc0d"
DEFAULT_BRANCH_SHA = "d" * 40
PR = 17
BRANCH = "feature/pull"
TAG = f"pr-{PR}-{SHA[:7]}"
ARTIFACT = f"image-{TAG}"
LOCAL = "charon:local"
AUTH = ("ci-user", "ci-pass-9f3e1b")  # the basic-auth registry's only account


@dataclass
class PullWorld:
    registry: Registry
    proxy: RegistryProxy
    engine: Any  # docker.DockerClient of the world's own podman engine
    docker_host: str
    factory: ImageFactory
    down_host: str  # in the engine's insecure list, but nothing listens there
    auth_registry: Registry | None = None  # a second registry that requires basic auth (AUTH)
    auth_factory: ImageFactory | None = None

    def name(self, repository: str, host: str | None = None) -> str:
        return f"{host or self.proxy.host}/{repository}"

    def has(self, reference: str) -> bool:
        try:
            self.engine.api.inspect_image(reference)
        except Exception:
            return False
        return True

    def image_id(self, reference: str) -> str:
        return str(self.engine.api.inspect_image(reference)["Id"])

    def forget(self, *references: str) -> None:
        """Remove images from the engine, so the next pull or load is real."""
        for reference in references:
            if self.has(reference):
                self.engine.api.remove_image(reference, force=True)

    def push(self, repository: str, tag: str | None = TAG, **options: Any) -> PushedImage:
        return self.factory.push_image(repository, tag, **options)

    def saved_archive(self, pushed: PushedImage, save_as: str, path: Path) -> bytes:
        """`docker save save_as` of a real image (pulled by digest, tagged `save_as`), then removed again."""
        pulled = images.pull(self.engine, f"{self.proxy.host}/{pushed.repository}@{pushed.digest}")
        repository, _, tag = save_as.rpartition(":")
        pulled.tag(repository, tag)
        images.save_image_archive(self.engine, save_as, path)
        self.forget(save_as, f"{self.proxy.host}/{pushed.repository}@{pushed.digest}")
        self.proxy.clear()
        return path.read_bytes()


def zip_like_upload_artifact(files: dict[str, bytes]) -> bytes:
    """A zip as upload-artifact v4 writes it: deflate at its default level 6, paths relative to the root."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def pr_consumer(run_id: int, sha: str = SHA, *, conclusion: str = "success") -> dict[str, Any]:
    """A workflow_run event on a same-repository PR build (PR 17 at `sha`)."""
    payload = derive.workflow_run(
        "pull_request", BRANCH, sha, pull_requests=[(PR, sha, BRANCH)], run_id=run_id, conclusion=conclusion
    )
    derive.validate("workflow_run", payload)
    return payload


def run_pull(
    runner: ActionRunner,
    gh: FakeGitHub,
    world: PullWorld,
    tmp_path: Path,
    inputs: dict[str, str],
    *,
    event: str = "workflow_run",
    payload: dict[str, Any],
    env: dict[str, str] | None = None,
) -> ActionResult:
    """action-pull-image/action.yml run as the runner runs it, against the world's engine and the fake GitHub."""
    event_path = tmp_path / f"event-{len(list(tmp_path.glob('event-*')))}.json"
    event_path.write_text(json.dumps(payload))
    job_env = {
        **gh.env(),
        "GITHUB_EVENT_NAME": event,
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_SHA": DEFAULT_BRANCH_SHA if event == "workflow_run" else SHA,
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_ACTOR": "octocat",
        "DOCKER_HOST": world.docker_host,
        **(env or {}),
    }
    return runner.run(ACTION, inputs, env=job_env)
