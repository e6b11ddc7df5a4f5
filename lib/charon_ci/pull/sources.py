"""Getting the image: the registry, then the build's artifact (the artifact first for a fork's build, which
cannot push to GHCR), each proven before it is tagged `local-tag`.

Registry attempts are retried with full-jitter backoff under `registry-timeout` while the failure is
transient; a permanent one (`manifest unknown`, denied, ...) moves to the artifact at once. A failed proof
(revision mismatch under `on-mismatch: fail`, a missing label, a digest that does not match) ends the run: it
means a wrong image is there, not that none is. Whatever was pulled or loaded for a failed proof is untagged
again, and `local-tag` is only ever set on a proven image.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from charon_ci import gha
from charon_ci.pull import verify
from charon_ci.pull.engine import Engine, PullFailed, labels_of, repo_digests
from charon_ci.pull.progress import PullProgress
from charon_ci.pull.retry import Backoff, Deadline
from charon_ci.pull.settings import PullSettings
from charon_ci.pull.target import PullTarget
from charon_ci.registry import DigestMismatch, RateLimited, RegistryClient, RegistryError, RegistryUnavailable

Source = Literal["registry", "artifact"]
_REGISTRY_REQUEST_TIMEOUT = 30.0


class SourceUnavailable(Exception):
    """This source has no usable image; `message` says what was tried and what answered."""

    def __init__(self, source: Source, message: str) -> None:
        super().__init__(message)
        self.source = source
        self.message = message


class ProofFailed(gha.ActionFailure):
    """The image is there but is not the one the build made."""


@dataclass(frozen=True)
class Obtained:
    """A proven image in the engine."""

    source: Source
    reference: str
    image_id: str
    digest: str | None
    revision: str | None
    reason: str
    proof: verify.RevisionProof
    note: str = ""  # what was verified about an artifact's bytes


@dataclass
class Attempts:
    """What was tried, for the outputs, the summary and the final error."""

    registry: int = 0
    artifact: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.registry + self.artifact


@dataclass
class Toolkit:
    """The edges a test may replace: time and randomness."""

    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)
    backoff: Backoff = field(default_factory=Backoff)


def obtain(
    settings: PullSettings,
    target: PullTarget,
    engine: Engine,
    env: Mapping[str, str],
    attempts: Attempts,
    toolkit: Toolkit | None = None,
) -> Obtained:
    """The proven image from the first source that has it, or an ActionFailure naming everything tried."""
    tools = toolkit or Toolkit()
    order: tuple[Source, ...] = ("artifact", "registry") if target.artifact_first else ("registry", "artifact")
    if target.fork is not None:
        gha.notice(
            f"The build ran for the fork {target.fork}, which cannot push to GHCR: its artifact is tried first.",
            title="action-pull-image",
        )
    reason = (
        f"the build ran for the fork {target.fork}, which cannot push to GHCR"
        if target.artifact_first
        else "the registry is the first source"
    )
    for source in order:
        try:
            if source == "registry":
                return _from_registry(settings, target, engine, attempts, tools, reason)
            return _from_artifact(settings, target, engine, env, attempts, reason)
        except SourceUnavailable as unavailable:
            attempts.failures.append(f"{unavailable.source}: {unavailable.message}")
            gha.info(f"{unavailable.source}: {unavailable.message}")
            reason = f"the {unavailable.source} failed: {unavailable.message}"
    raise gha.ActionFailure(
        "Image not found",
        f"{target.image} could not be obtained from any source. Tried " + "; ".join(attempts.failures) + ".",
    )


# --- the registry ---------------------------------------------------------------------------------------------


def registry_auth(settings: PullSettings, host: str) -> tuple[dict[str, str] | None, str]:
    """Credentials for the engine's pull (None: let the SDK use the job's docker config) and where they came from."""
    if settings.registry_password:
        return {"username": settings.registry_username or "token", "password": settings.registry_password}, (
            "inputs registry-username/registry-password"
        )
    if host == "ghcr.io" and settings.github_token:
        return {"username": settings.actor or "github-actions", "password": settings.github_token}, "the job token"
    return None, "the job's docker config (or none)"


def _docker_config_credentials(host: str) -> tuple[str, str] | None:
    """What `docker login` (docker/login-action) stored for `host`, through the SDK's own reader."""
    try:
        from docker.auth import load_config, resolve_authconfig

        found = resolve_authconfig(load_config(), host)
    except Exception:  # a broken config file or credential helper: go on anonymously, the engine will say more
        return None
    if isinstance(found, Mapping) and found.get("password"):
        return str(found.get("username") or found.get("Username") or ""), str(found["password"])
    return None


def _registry_client(settings: PullSettings, host: str, auth: Mapping[str, str] | None) -> RegistryClient:
    credentials = (auth["username"], auth["password"]) if auth else _docker_config_credentials(host)
    username, password = credentials if credentials else (None, None)
    timeout = min(_REGISTRY_REQUEST_TIMEOUT, max(5.0, settings.registry_timeout))
    # retries=0: this module retries, under its own deadline, with full jitter.
    return RegistryClient(host, username=username, password=password, retries=0, timeout=timeout)


def _transient(failure: RegistryError) -> bool:
    return isinstance(failure, RegistryUnavailable | RateLimited)


def _from_registry(
    settings: PullSettings,
    target: PullTarget,
    engine: Engine,
    attempts: Attempts,
    tools: Toolkit,
    reason: str,
) -> Obtained:
    image = target.image
    auth, auth_origin = registry_auth(settings, image.host)
    client = _registry_client(settings, image.host, auth)
    platform = engine.platform()
    deadline = Deadline(settings.registry_timeout, tools.clock)
    warned = False
    gha.info(f"registry: reading {image} for {platform} (credentials: {auth_origin})")
    while True:
        attempts.registry += 1
        try:
            remote = verify.read_remote(client, image, platform)
            if image.tag and image.digest:
                _check_tag_names_digest(client, image.tag, image.digest, target)
            proof = verify.check_revision(remote.labels, target.expected_revision)
            if not proof.ok and not warned:
                _judge(proof, settings, f"{image} in the registry", target)  # fails here under on-mismatch: fail
                warned = True
            progress = PullProgress(image.reference)
            engine.pull(image, auth=auth, progress=progress)
            progress.done()
            break
        except DigestMismatch as lying:
            raise ProofFailed("Digest mismatch", f"{lying}. Nothing was pulled.") from None
        except RegistryError as failure:
            transient, message = _transient(failure), str(failure)
        except PullFailed as failure:
            transient, message = failure.transient, f"the engine's pull of {image.reference} failed: {failure}"
        if not transient:
            raise SourceUnavailable("registry", f"{message} (permanent, attempt {attempts.registry})")
        wait = deadline.wait_before_retry(attempts.registry, tools.backoff, tools.rng)
        if wait is None:
            raise SourceUnavailable(
                "registry",
                f"{message} (still failing after {attempts.registry} attempts in {deadline.elapsed():.1f} s; "
                f"registry-timeout {settings.registry_timeout:g} s)",
            )
        gha.info(f"registry attempt {attempts.registry} failed ({message}); retrying in {wait:.1f} s")
        tools.sleep(wait)
    inspected = engine.inspect(image.reference)
    if inspected is None:
        raise SourceUnavailable("registry", f"the engine reported {image.reference} pulled, but does not have it")
    image_id = str(inspected.get("Id", ""))
    if image.digest and not verify.check_digest(repo_digests(inspected), image.digest):
        engine.untag(image.reference)
        raise ProofFailed(
            "Digest mismatch",
            f"The engine's image for {image.reference} does not record digest {image.digest} "
            f"(it has {', '.join(repo_digests(inspected)) or 'none'}); it was removed again.",
        )
    local = _prove_local(
        inspected, settings, target, f"{image.reference} as pulled", [image.reference], engine, quiet=warned
    )
    note = "" if attempts.registry == 1 else f", attempt {attempts.registry}"
    return Obtained("registry", image.reference, image_id, remote.digest, local.found, reason + note, local)


def _check_tag_names_digest(client: RegistryClient, tag: str, digest: str, target: PullTarget) -> None:
    """A tag given beside an expected digest should name it; when it names another image, say so (the digest
    is what is pulled)."""
    try:
        named = client.resolve(target.image.repository, tag).digest
    except RegistryError:
        return
    if named != digest:
        gha.warning(
            f"Tag {tag} of {target.image.name} now names {named}, not the expected digest {digest}: pulling the "
            "expected digest.",
            title="action-pull-image",
        )


# --- the artifact ---------------------------------------------------------------------------------------------


def _from_artifact(
    settings: PullSettings,
    target: PullTarget,
    engine: Engine,
    env: Mapping[str, str],
    attempts: Attempts,
    reason: str,
) -> Obtained:
    from charon_ci import github
    from charon_ci.pull.archive import load_artifact
    from charon_ci.pull.artifact import ArtifactError, ArtifactQuery, fetch_artifact

    if target.run_id is None:
        raise SourceUnavailable("artifact", f"no run to look in: {target.run_origin}")
    if target.artifact_name is None or target.artifact_repository is None:
        raise SourceUnavailable(
            "artifact", "no artifact name (input artifact-name) and no event to derive it from as action-tag does"
        )
    expected_image = target.image.tagged or target.image.reference
    where = (
        f"artifact {target.artifact_name!r} of run {target.run_id} ({target.run_origin}) in "
        f"{target.artifact_repository}"
    )
    gha.info(f"artifact: looking for {where}")
    attempts.artifact += 1
    settings.runner_temp.mkdir(parents=True, exist_ok=True)
    download_dir = Path(tempfile.mkdtemp(prefix="charon-ci-artifact-", dir=settings.runner_temp))
    try:
        with github.GithubClient.from_env(env, token=settings.github_token) as client:
            query = ArtifactQuery(
                target.artifact_repository, target.run_id, target.artifact_name, settings.max_artifact_size,
                download_dir,
            )  # fmt: skip
            downloaded = fetch_artifact(client, query)
        gha.info(f"artifact {downloaded.name!r} (id {downloaded.artifact_id}): {downloaded.verification}")
        if not downloaded.digest_verified:
            gha.notice(
                f"Artifact {downloaded.name!r}: {downloaded.verification}. The revision label is still checked.",
                title="action-pull-image",
            )
        loaded = load_artifact(engine.api, downloaded, member=settings.artifact_file, expected_image=expected_image)
    except ArtifactError as refused:
        raise SourceUnavailable("artifact", f"{where}: {refused}") from None
    except github.GithubError as failed:
        raise SourceUnavailable("artifact", f"{where}: {failed}") from None
    finally:
        shutil.rmtree(download_dir, ignore_errors=True)
    inspected = engine.inspect(loaded.image_id)
    if inspected is None:
        raise SourceUnavailable(
            "artifact", f"{where}: the engine reported {loaded.image_id} loaded, but does not have it"
        )
    names = list(loaded.repo_tags)
    if target.image.digest:
        gha.notice(
            f"The expected digest {target.image.digest} names a registry manifest; an image loaded from an archive "
            "has none, so only its revision label proves it.",
            title="action-pull-image",
        )
    local = _prove_local(inspected, settings, target, f"the image in {where}", names, engine)
    reference = expected_image if expected_image in names else loaded.image_id
    note = f"artifact {downloaded.name} (id {downloaded.artifact_id}): {downloaded.verification}"
    return Obtained("artifact", reference, loaded.image_id, None, local.found, reason, local, note)


# --- proofs ---------------------------------------------------------------------------------------------------


def _judge(proof: verify.RevisionProof, settings: PullSettings, what: str, target: PullTarget) -> None:
    """Fail (on-mismatch: fail) or warn about a revision that does not prove the image."""
    message = verify.describe(proof, what, target.revision_origin)
    title = "Revision label missing" if proof.status == "missing" else "Revision mismatch"
    if settings.on_mismatch == "fail":
        raise ProofFailed(title, message)
    gha.warning(message + " Continuing: on-mismatch is warn.", title=title)


def _prove_local(
    inspected: Mapping[str, Any],
    settings: PullSettings,
    target: PullTarget,
    what: str,
    names: list[str],
    engine: Engine,
    *,
    quiet: bool = False,
) -> verify.RevisionProof:
    """The revision check on the engine's own image; on failure, the names this run gave it are removed.
    `quiet`: the same finding was already warned about before the pull."""
    proof = verify.check_revision(labels_of(inspected), target.expected_revision)
    if proof.ok or (quiet and settings.on_mismatch == "warn"):
        return proof
    try:
        _judge(proof, settings, what, target)
    except ProofFailed:
        for name in names:
            engine.untag(name)
        raise
    return proof
