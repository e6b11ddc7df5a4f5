"""`charon-ci tag`: the immutable image tags and OCI labels for this event (action-tag).

Reads the inputs once into `TagInputs`, the event into a `BuildContext` (charon_ci.tag.events), asks the API
only for what a payload leaves out (a fork's PR number, a nightly run's date), lets the taxonomy decide
(charon_ci.tag.tagging) and writes every output in one go. Without GITHUB_OUTPUT it prints them as JSON.
"""

from __future__ import annotations

import re
import sys
import time

from charon_ci import gha
from charon_ci.records import Record
from charon_ci.tag import events, tagging
from charon_ci.tag.events import BuildContext, NightlyBuild, PullRequestBuild, RefBuild
from charon_ci.tag.tagging import Kind, TagError, TagSet

# Typing-only: collections.abc and typing cost milliseconds at start-up.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "ARTIFACT_PREFIX",
    "TagInputs",
    "TagResult",
    "artifact_name",
    "compute",
    "decide_tags",
    "parse_inputs",
    "run",
]

HELP = """usage: charon-ci tag

Computes the immutable image tags and OCI labels for the current GitHub event, the same in the build and in
every workflow_run consumer. Reads INPUT_IMAGES, INPUT_MAIN-BRANCH, INPUT_DEV-BRANCH, INPUT_NIGHTLY,
INPUT_GITHUB-TOKEN and GITHUB_EVENT_NAME, GITHUB_EVENT_PATH, GITHUB_SHA, GITHUB_REF, GITHUB_REPOSITORY,
GITHUB_API_URL; writes outputs to GITHUB_OUTPUT, or prints them as JSON when it is not set.
"""

_SERVER_URL = r"https?://[A-Za-z0-9.-]+(?::[0-9]+)?(?:/[A-Za-z0-9._~/-]*)?"
# The build uploads its image archive under `image-<primary tag>` and action-pull-image looks for the same
# name, so neither side types it (Charon's consumers once loaded `charon-image.tar` from a build that wrote
# `charon-pr-image.tar`). Tags are [A-Za-z0-9_.-], all allowed in artifact names.
ARTIFACT_PREFIX = "image-"


def artifact_name(primary_tag: str) -> str:
    """The artifact name for a build whose primary tag is `primary_tag` (`pr-42-abc1234` -> `image-pr-42-abc1234`)."""
    return ARTIFACT_PREFIX + primary_tag


class TagInputs(Record):
    __slots__ = ("dev_branch", "github_token", "images", "main_branch", "nightly")
    images: tuple[str, ...]
    main_branch: str
    dev_branch: str
    nightly: bool
    github_token: str

    def __init__(
        self, images: tuple[str, ...], main_branch: str, dev_branch: str, nightly: bool, github_token: str
    ) -> None:
        self._init(
            images=images, main_branch=main_branch, dev_branch=dev_branch, nightly=nightly, github_token=github_token
        )

    def __repr__(self) -> str:  # never show the token
        return f"TagInputs(images={self.images!r}, main_branch={self.main_branch!r}, dev_branch={self.dev_branch!r})"


class TagResult(Record):
    __slots__ = ("images", "labels", "sha", "tags")
    tags: TagSet
    sha: str
    images: tuple[str, ...]
    labels: dict[str, str]

    def __init__(self, tags: TagSet, sha: str, images: tuple[str, ...], labels: dict[str, str]) -> None:
        self._init(tags=tags, sha=sha, images=images, labels=labels)

    def outputs(self) -> dict[str, str]:
        pr_number = self.tags.pr_number
        return {
            "tag": self.tags.primary,
            "artifact-name": artifact_name(self.tags.primary),
            "tag-names": "\n".join(self.tags.names),
            "tags": "\n".join(tagging.image_references(self.images, self.tags.names)),
            "labels": tagging.format_labels(self.labels),
            "json": self.to_json(),
            "sha": self.sha,
            "short-sha": tagging.short_sha(self.sha),
            "pr-number": "" if pr_number is None else str(pr_number),
            "kind": str(self.tags.kind),
        }

    def document(self) -> dict[str, object]:
        return {
            "tag": self.tags.primary,
            "artifact-name": artifact_name(self.tags.primary),
            "tag-names": list(self.tags.names),
            "tags": tagging.image_references(self.images, self.tags.names),
            "labels": dict(self.labels),
            "sha": self.sha,
            "short-sha": tagging.short_sha(self.sha),
            "pr-number": self.tags.pr_number,
            "kind": str(self.tags.kind),
        }

    def to_json(self, indent: int | None = None) -> str:
        import json

        # ASCII only, so no payload text can carry a line break or a look-alike character into a log.
        return json.dumps(self.document(), indent=indent, ensure_ascii=True)


def parse_inputs(env: Mapping[str, str]) -> TagInputs:
    reader = gha.Inputs(env)
    images: list[str] = []
    for image in reader.lines("images"):
        problem = tagging.validate_image_name(image)
        if problem is not None:
            raise gha.InputError(
                "images", f"image names without tag or digest, e.g. ghcr.io/owner/app ({problem})", image
            )
        if image not in images:
            images.append(image)
    main_branch = reader.text("main-branch", "main")
    dev_branch = reader.text("dev-branch", "development")
    if dev_branch == main_branch:
        raise gha.InputError("dev-branch", "a branch name other than main-branch", dev_branch)
    nightly = reader.boolean("nightly", False)
    # Composite actions map the input; a bare CLI run may have only the runner's GITHUB_TOKEN.
    token = reader.text("github-token") or env.get("GITHUB_TOKEN", "").strip()
    return TagInputs(tuple(images), main_branch, dev_branch, nightly, token)


def decide_tags(context: BuildContext, inputs: TagInputs) -> TagSet:
    """The taxonomy applied to a resolved build (PR number and nightly date known)."""
    build = context.build
    if isinstance(build, PullRequestBuild):
        if build.number is None:
            raise ValueError("the pull request number must be looked up first")
        return tagging.pull_request_tags(build.number, build.head_sha)
    if isinstance(build, NightlyBuild):
        if build.created_at is None:
            raise ValueError("the nightly run's created_at must be looked up first")
        return tagging.nightly_tags(events.utc_date(build.created_at, "the run's created_at"))
    return tagging.classify_ref(
        build.name, build.ref_type, build.sha, main_branch=inputs.main_branch, dev_branch=inputs.dev_branch
    )


def resolve(context: BuildContext, inputs: TagInputs, env: Mapping[str, str]) -> BuildContext:
    """Fills in from the API what the payload left out; a context that needs nothing is returned as is."""
    build = context.build
    needs_pull = isinstance(build, PullRequestBuild) and build.number is None
    needs_date = isinstance(build, NightlyBuild) and build.created_at is None
    if not (needs_pull or needs_date):
        return context
    from charon_ci import github
    from charon_ci.tag import lookups

    with github.GithubClient.from_env(env, token=inputs.github_token) as client:
        if isinstance(build, PullRequestBuild) and build.lookup is not None:
            number = lookups.find_pull_request(client, build.lookup)
            gha.info(f"Found pull request #{number} for fork commit {build.head_sha[:7]} through the API.")
            return context.replace(build=build.replace(number=number))
        if isinstance(build, NightlyBuild):
            if build.run_id is None:
                raise gha.ActionFailure(
                    "No run id",
                    "Nightly tags are dated by the run's created_at, read through the API by GITHUB_RUN_ID, "
                    "which is not set.",
                )
            created = lookups.run_created_at(client, context.repository, build.run_id)
            return context.replace(build=build.replace(created_at=created))
    raise ValueError("a pull request build without a number has no lookup")


def compute(inputs: TagInputs, env: Mapping[str, str]) -> tuple[BuildContext, TagResult]:
    try:
        event_name, payload = events.read_event(env)
        context = events.parse_event(event_name, payload, env, nightly=inputs.nightly)
        context = resolve(context, inputs, env)
        tags = decide_tags(context, inputs)
    except TagError as failure:
        raise gha.ActionFailure(failure.title, failure.message) from None
    labels = tagging.oci_labels(
        sha=context.sha, source_url=_source_url(env, context.repository), created=_created(env), version=tags.version
    )
    return context, TagResult(tags, context.sha, inputs.images, labels)


def main(env: Mapping[str, str]) -> int:
    inputs = parse_inputs(env)
    context, result = compute(inputs, env)
    for warning in context.warnings:
        gha.warning(warning, title="action-tag")
    build = context.build
    if isinstance(build, RefBuild) and build.marked_prerelease is not None and result.tags.kind is Kind.RELEASE:
        versioned_as_prerelease = len(result.tags.names) == 1
        if build.marked_prerelease != versioned_as_prerelease:
            gha.warning(
                f"The release is {'' if build.marked_prerelease else 'not '}marked pre-release but its version "
                f"says otherwise; tags follow the version ({', '.join(result.tags.names)}), which is all a "
                "workflow_run consumer can see.",
                title="action-tag",
            )
    for note in result.tags.notes:
        gha.notice(note, title="action-tag")
    origin = (
        f"upstream run {context.upstream.run_id} ({context.source_event})" if context.upstream else context.event_name
    )
    gha.info(f"{origin}: kind {result.tags.kind}, commit {result.sha}, tag {result.tags.primary}")
    gha.info("tags: " + " ".join(result.tags.names))
    if not env.get("GITHUB_OUTPUT", "").strip():
        sys.stdout.write(result.to_json(indent=2) + "\n")
        return 0
    gha.write_outputs(result.outputs(), env)
    return 0


def run(argv: Sequence[str]) -> int:
    return gha.run_command("tag", HELP, argv, main)


def _source_url(env: Mapping[str, str], repository: str) -> str:
    server = env.get("GITHUB_SERVER_URL", "").strip().rstrip("/") or "https://github.com"
    if not re.fullmatch(_SERVER_URL, server):
        raise gha.ActionFailure(
            "Invalid GITHUB_SERVER_URL", f"GITHUB_SERVER_URL must be an http(s) URL; got {server[:80]!r}."
        )
    return f"{server}/{repository}"


def _created(env: Mapping[str, str]) -> str:
    """Build time for `org.opencontainers.image.created`: SOURCE_DATE_EPOCH when set (reproducible builds),
    else now. Not taken from the event: the OCI meaning is when the image was built, and tags never use it.
    """
    epoch_text = env.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch_text:
        if not (epoch_text.isascii() and epoch_text.isdigit()):
            raise gha.ActionFailure("Invalid SOURCE_DATE_EPOCH", "SOURCE_DATE_EPOCH must be whole seconds since 1970.")
        epoch = int(epoch_text)
        if epoch > 253402300799:  # 9999-12-31T23:59:59Z
            raise gha.ActionFailure("Invalid SOURCE_DATE_EPOCH", "SOURCE_DATE_EPOCH is past the year 9999.")
    else:
        epoch = int(time.time())
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
