"""Which image to get and how to prove it: the reference, the expected revision, where the artifact lives.

The tag, the artifact name and the expected commit come from action-tag's own code (`charon_ci.tag.command.
compute`) applied to this job's event, so a `workflow_run` consumer gets the upstream build's answer and a
`needs:` job in the build's workflow gets this run's, exactly as the build computed them. The artifact's run
id comes from the event (`workflow_run.id`), the `run-id` input, or this run (`GITHUB_RUN_ID`): never from
anything inside an artifact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from charon_ci import gha
from charon_ci.pull.settings import ImageReference, PullSettings
from charon_ci.tag import command as tag_command
from charon_ci.tag import events
from charon_ci.tag.events import BuildContext
from charon_ci.tag.tagging import TagError


@dataclass(frozen=True)
class PullTarget:
    """The image to get (`image`), the proof it must pass, and where its artifact would be."""

    image: ImageReference
    expected_revision: str
    revision_origin: str  # says where expected_revision came from, for messages
    artifact_repository: str | None
    run_id: int | None
    run_origin: str
    artifact_name: str | None
    fork: str | None  # the fork's owner/name when the build ran for a fork (it cannot push to GHCR)
    upstream_note: str | None = None  # "upstream run 123 (pull_request, success)" under workflow_run

    @property
    def artifact_first(self) -> bool:
        return self.fork is not None


@dataclass(frozen=True)
class _Event:
    context: BuildContext
    result: tag_command.TagResult
    payload: Mapping[str, Any]


def resolve(settings: PullSettings, env: Mapping[str, str]) -> PullTarget:
    """The target for these settings and this job's event; one clear ActionFailure when it cannot be known."""
    event_name = env.get("GITHUB_EVENT_NAME", "").strip()
    needs_event = settings.image is None or settings.expected_revision is None or event_name == "workflow_run"
    event: _Event | None = None
    if needs_event:
        event = _read_event(settings, env)
    elif settings.artifact_name is None and event_name:
        # Only the artifact's default name would come from the event: without it, the registry still works.
        try:
            event = _read_event(settings, env)
        except gha.ActionFailure as failure:
            gha.info(f"no default artifact name from the {event_name} event: {failure.message}")
    if event is not None and event.context.upstream is not None:
        _check_trust(settings, event.context)

    if settings.image is not None:
        image = settings.image
    elif event is not None:
        image = settings.name.with_tag(event.result.tags.primary)
    else:
        raise ValueError("image-name needs the event")
    if settings.expected_digest is not None:
        if image.digest is not None and image.digest != settings.expected_digest:
            raise gha.InputError(
                "expected-digest", f"the digest in input 'image' ({image.digest}) or empty", settings.expected_digest
            )
        image = image.with_digest(settings.expected_digest)

    if settings.expected_revision is not None:
        revision, revision_origin = settings.expected_revision, "input expected-revision"
    elif event is not None:
        revision = event.context.sha
        upstream = event.context.upstream
        revision_origin = (
            f"the head commit of upstream run {upstream.run_id}"
            if upstream
            else f"the {event.context.event_name} build's commit"
        )
    else:
        raise ValueError("the default expected revision needs the event")

    run_id, run_origin = _run_id(settings, env, event)
    artifact_name = settings.artifact_name
    if artifact_name is None and event is not None:
        artifact_name = tag_command.artifact_name(event.result.tags.primary)
    repository = event.context.repository if event is not None else env.get("GITHUB_REPOSITORY", "").strip() or None
    fork = _fork(event) if event is not None else None
    note = None
    if event is not None and event.context.upstream is not None:
        upstream = event.context.upstream
        note = f"upstream run {upstream.run_id} ({upstream.event}, {upstream.conclusion or 'no conclusion'})"
    return PullTarget(image, revision, revision_origin, repository, run_id, run_origin, artifact_name, fork, note)


def _read_event(settings: PullSettings, env: Mapping[str, str]) -> _Event:
    inputs = tag_command.TagInputs(
        (settings.name.name,), settings.main_branch, settings.dev_branch, settings.nightly, settings.github_token
    )
    context, result = tag_command.compute(inputs, env)
    try:
        _, payload = events.read_event(env)
    except TagError as failure:  # compute read it a moment ago; a file that changed since is still an error
        raise gha.ActionFailure(failure.title, failure.message) from None
    return _Event(context, result, payload)


def _check_trust(settings: PullSettings, context: BuildContext) -> None:
    upstream = context.upstream
    if upstream is None:
        return
    conclusion = upstream.conclusion or "none"
    if conclusion not in settings.allowed_conclusions:
        raise gha.ActionFailure(
            "Upstream run not successful",
            f"The upstream run {upstream.run_id} concluded {conclusion!r}; its image is not pulled (allowed: "
            f"{', '.join(sorted(settings.allowed_conclusions))}; input allowed-conclusions). Gate the job on "
            "github.event.workflow_run.conclusion == 'success'.",
        )


def _run_id(settings: PullSettings, env: Mapping[str, str], event: _Event | None) -> tuple[int | None, str]:
    if settings.run_id is not None:
        return settings.run_id, "input run-id"
    if event is not None and event.context.upstream is not None:
        return event.context.upstream.run_id, "workflow_run.id"
    own = env.get("GITHUB_RUN_ID", "").strip()
    if own.isascii() and own.isdigit() and int(own) > 0:
        return int(own), "this run (GITHUB_RUN_ID)"
    return None, "none (no run-id input, no workflow_run event, no GITHUB_RUN_ID)"


def _fork(event: _Event) -> str | None:
    """The head repository when the build ran for a fork: under workflow_run the upstream's head repository;
    for a pull request event its head repository (null when the fork was deleted)."""
    context = event.context
    if context.upstream is not None:
        upstream_head = context.upstream.head_repository
        return upstream_head if upstream_head.lower() != context.repository.lower() else None
    if context.event_name in events.PULL_REQUEST_EVENTS:
        pull = event.payload.get("pull_request")
        head = pull.get("head") if isinstance(pull, Mapping) else None
        repo = head.get("repo") if isinstance(head, Mapping) else None
        full_name = repo.get("full_name") if isinstance(repo, Mapping) else None
        if not isinstance(full_name, str) or not full_name:
            return "a deleted fork"
        return full_name if full_name.lower() != context.repository.lower() else None
    return None
