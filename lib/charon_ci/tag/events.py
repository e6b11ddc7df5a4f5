"""Reads a GitHub event (name, payload, runner variables) into a typed build context.

The context says *what was built*: a pull request's head commit, a ref (branch or tag) at a commit, or a
nightly run. For `workflow_run` it describes the upstream run instead, rebuilt from `workflow_run.event`,
`head_branch`, `head_sha` and `pull_requests`, so the consumer reaches the same facts as the build did.

Everything here is a pure function of its arguments except `read_event`, which opens `GITHUB_EVENT_PATH`.
Payload text is never trusted: shas must be 40 hex digits, numbers real integers, and ref names are only
ever compared or sanitised (see `tagging`), never echoed raw into outputs.
"""

from __future__ import annotations

import json
import re

from charon_ci.records import Record
from charon_ci.tag.tagging import TagError, validate_sha

# `typing` costs about 3 ms to import and this module is on `charon-ci tag`'s start-up path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from charon_ci.tag.tagging import RefType

__all__ = [
    "SUPPORTED_EVENTS",
    "BuildContext",
    "NightlyBuild",
    "PullLookup",
    "PullRequestBuild",
    "RefBuild",
    "Upstream",
    "parse_event",
    "read_event",
    "split_ref",
    "utc_date",
]

PULL_REQUEST_EVENTS = frozenset({"pull_request", "pull_request_target"})
SUPPORTED_EVENTS = (
    "pull_request", "pull_request_target", "push", "release", "schedule", "workflow_dispatch",
    "repository_dispatch", "workflow_run",
)  # fmt: skip
# Events a workflow_run consumer can rebuild (pull_request_target cannot be: see _upstream_build).
_UPSTREAM_EVENTS = ("pull_request", "push", "release", "schedule", "workflow_dispatch", "repository_dispatch")
_LOGIN = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})"
_REPOSITORY = r"[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}"
_TIMESTAMP = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})"


class PullLookup(Record):
    """What the API needs to find a fork's pull request that `workflow_run.pull_requests` left out:
    the repository the PR targets (where the workflow ran), the login owning the fork, the fork's branch
    name (untrusted text: only ever sent as a query value) and the commit the run built.
    """

    __slots__ = ("base_repository", "head_branch", "head_owner", "head_sha")
    base_repository: str
    head_owner: str
    head_branch: str
    head_sha: str

    def __init__(self, base_repository: str, head_owner: str, head_branch: str, head_sha: str) -> None:
        self._init(base_repository=base_repository, head_owner=head_owner, head_branch=head_branch, head_sha=head_sha)


class PullRequestBuild(Record):
    """A build of a pull request's head commit. `number` is None until `lookup` has been done."""

    __slots__ = ("head_sha", "lookup", "number")
    head_sha: str
    number: int | None
    lookup: PullLookup | None

    def __init__(self, head_sha: str, number: int | None, lookup: PullLookup | None = None) -> None:
        self._init(head_sha=head_sha, number=number, lookup=lookup)


class RefBuild(Record):
    """A build of a branch or tag. `ref_type` is None when unknown (a consumer sees `head_branch` only).
    `marked_prerelease` is a release event's "pre-release" checkbox, only to warn when it disagrees with
    the version's own.
    """

    __slots__ = ("marked_prerelease", "name", "ref_type", "sha")
    name: str
    ref_type: RefType | None
    sha: str
    marked_prerelease: bool | None

    def __init__(self, name: str, ref_type: RefType | None, sha: str, marked_prerelease: bool | None = None) -> None:
        self._init(name=name, ref_type=ref_type, sha=sha, marked_prerelease=marked_prerelease)


class NightlyBuild(Record):
    """A nightly build. Its date is the UTC date of the run's `created_at` (kept across re-runs); the build
    itself has no run timestamp in its payload, so it looks its own run up by `run_id` (see tag.command).
    """

    __slots__ = ("created_at", "run_id", "sha")
    sha: str
    created_at: str | None
    run_id: int | None

    def __init__(self, sha: str, created_at: str | None, run_id: int | None = None) -> None:
        self._init(sha=sha, created_at=created_at, run_id=run_id)


class Upstream(Record):
    """The run a `workflow_run` event reports on."""

    __slots__ = ("conclusion", "created_at", "event", "head_branch", "head_repository", "head_sha", "run_id")
    run_id: int
    event: str
    head_branch: str | None
    head_sha: str
    head_repository: str
    conclusion: str | None
    created_at: str

    def __init__(
        self,
        run_id: int,
        event: str,
        head_branch: str | None,
        head_sha: str,
        head_repository: str,
        conclusion: str | None,
        created_at: str,
    ) -> None:
        self._init(
            run_id=run_id, event=event, head_branch=head_branch, head_sha=head_sha, head_repository=head_repository,
            conclusion=conclusion, created_at=created_at,
        )  # fmt: skip


class BuildContext(Record):
    """What was built and why: `event_name` is this run's own event, `source_event` the one whose tags
    apply (the upstream's for workflow_run), `repository` the owner/name where images are built, `ref` the
    full ref when known.
    """

    __slots__ = ("build", "event_name", "ref", "repository", "source_event", "upstream", "warnings")
    event_name: str
    source_event: str
    repository: str
    build: PullRequestBuild | RefBuild | NightlyBuild
    ref: str | None
    upstream: Upstream | None
    warnings: tuple[str, ...]

    def __init__(
        self,
        event_name: str,
        source_event: str,
        repository: str,
        build: PullRequestBuild | RefBuild | NightlyBuild,
        ref: str | None = None,
        upstream: Upstream | None = None,
        warnings: tuple[str, ...] = (),
    ) -> None:
        self._init(
            event_name=event_name, source_event=source_event, repository=repository, build=build, ref=ref,
            upstream=upstream, warnings=warnings,
        )  # fmt: skip

    @property
    def sha(self) -> str:
        return self.build.head_sha if isinstance(self.build, PullRequestBuild) else self.build.sha

    @property
    def pr_number(self) -> int | None:
        return self.build.number if isinstance(self.build, PullRequestBuild) else None

    @property
    def branch(self) -> str | None:
        """The ref name unless it is known to be a tag (a consumer cannot tell: see tagging.classify_ref)."""
        if isinstance(self.build, RefBuild) and self.build.ref_type != "tag":
            return self.build.name
        return None


def read_event(env: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    """`GITHUB_EVENT_NAME` and the JSON object at `GITHUB_EVENT_PATH`."""
    name = env.get("GITHUB_EVENT_NAME", "").strip()
    if not name:
        raise TagError("No event", "GITHUB_EVENT_NAME is not set: run inside a GitHub workflow or set it.")
    path = env.get("GITHUB_EVENT_PATH", "").strip()
    if not path:
        raise TagError("No event payload", "GITHUB_EVENT_PATH is not set: it must name the event's JSON file.")
    try:
        with open(path, encoding="utf-8") as handle:
            payload = json.load(handle)
    except OSError as failure:
        raise TagError("Cannot read event payload", f"GITHUB_EVENT_PATH cannot be read: {failure.strerror}.") from None
    except (ValueError, UnicodeDecodeError) as failure:
        raise TagError("Malformed event payload", f"GITHUB_EVENT_PATH is not valid JSON: {failure}.") from None
    except RecursionError:
        raise TagError("Malformed event payload", "GITHUB_EVENT_PATH is nested too deeply to be an event.") from None
    if not isinstance(payload, dict):
        raise TagError("Malformed event payload", "GITHUB_EVENT_PATH must hold a JSON object.")
    return name, payload


def parse_event(
    event_name: str, payload: Mapping[str, Any], env: Mapping[str, str], *, nightly: bool = False
) -> BuildContext:
    """The build context of `event_name`. `env` supplies GITHUB_SHA, GITHUB_REF, GITHUB_REPOSITORY and
    GITHUB_RUN_ID where the payload lacks them. `nightly` marks workflow_dispatch runs as nightly builds.
    """
    reader = _Payload(event_name, payload)
    repository = _repository(reader, env)
    if event_name in PULL_REQUEST_EVENTS:
        number = reader.positive_int("pull_request.number")
        head_sha = validate_sha(reader.text("pull_request.head.sha"), f"{event_name} pull_request.head.sha")
        return BuildContext(event_name, event_name, repository, PullRequestBuild(head_sha, number))
    if event_name == "push":
        return _push(reader, env, repository)
    if event_name == "release":
        return _release(reader, env, repository)
    if event_name == "schedule" or (event_name == "workflow_dispatch" and nightly):
        return BuildContext(
            event_name, event_name, repository, NightlyBuild(_env_sha(env, event_name), None, _run_id(env))
        )
    if event_name in {"workflow_dispatch", "repository_dispatch"}:
        ref = env.get("GITHUB_REF", "").strip() or reader.optional_text("ref") or ""
        name, ref_type = split_ref(ref, f"GITHUB_REF of the {event_name} run")
        build = RefBuild(name, ref_type, _env_sha(env, event_name))
        return BuildContext(event_name, event_name, repository, build, ref=ref)
    if event_name == "workflow_run":
        return _workflow_run(reader, repository, nightly=nightly)
    raise TagError(
        "Unsupported event",
        f"charon-ci tag does not tag {event_name[:60]!r} events; supported: {', '.join(SUPPORTED_EVENTS)}.",
    )


def split_ref(ref: str, what: str) -> tuple[str, RefType]:
    """`refs/heads/x` -> (x, branch), `refs/tags/x` -> (x, tag); anything else is refused."""
    for prefix, ref_type in (("refs/heads/", "branch"), ("refs/tags/", "tag")):
        if ref.startswith(prefix) and len(ref) > len(prefix):
            return ref[len(prefix) :], ref_type  # type: ignore[return-value]
    raise TagError("Unsupported ref", f"{what} must be refs/heads/<branch> or refs/tags/<tag>; got {ref[:80]!r}.")


def utc_date(timestamp: str, what: str) -> str:
    """`YYYY-MM-DD` in UTC of an RFC 3339 timestamp (`2020-10-05T23:33:24-02:00` -> `2020-10-06`)."""
    if not isinstance(timestamp, str) or not re.fullmatch(_TIMESTAMP, timestamp):
        raise TagError("Invalid timestamp", f"{what} must be an RFC 3339 timestamp; got {str(timestamp)[:40]!r}.")
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        raise TagError("Invalid timestamp", f"{what} is not a real date and time: {timestamp!r}.") from None
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


# --- events -----------------------------------------------------------------------------------------------


def _push(reader: _Payload, env: Mapping[str, str], repository: str) -> BuildContext:
    ref = reader.text("ref")
    if reader.optional("deleted") is True:
        raise TagError("Nothing was built", f"This push deleted {ref[:80]!r}: there is no commit to tag.")
    name, ref_type = split_ref(ref, "push ref")
    after = reader.optional_text("after") or env.get("GITHUB_SHA", "")
    sha = validate_sha(after, "push after (or GITHUB_SHA)")
    return BuildContext("push", "push", repository, RefBuild(name, ref_type, sha), ref=ref)


def _release(reader: _Payload, env: Mapping[str, str], repository: str) -> BuildContext:
    action = reader.optional_text("action") or ""
    if action in {"deleted", "unpublished"}:
        raise TagError("Nothing to build", f"A release {action!r} event has no build to tag.")
    tag_name = reader.text("release.tag_name")
    marked = reader.optional("release.prerelease")
    build = RefBuild(tag_name, "tag", _env_sha(env, "release"), marked if isinstance(marked, bool) else None)
    return BuildContext("release", "release", repository, build, ref=f"refs/tags/{tag_name}")


def _workflow_run(reader: _Payload, repository: str, *, nightly: bool) -> BuildContext:
    upstream = Upstream(
        run_id=reader.positive_int("workflow_run.id"),
        event=reader.text("workflow_run.event"),
        head_branch=reader.optional_text("workflow_run.head_branch"),
        head_sha=validate_sha(reader.text("workflow_run.head_sha"), "workflow_run.head_sha"),
        head_repository=reader.optional_text("workflow_run.head_repository.full_name") or repository,
        conclusion=reader.optional_text("workflow_run.conclusion"),
        created_at=reader.text("workflow_run.created_at"),
    )
    warnings: list[str] = []
    if upstream.conclusion != "success":
        warnings.append(
            f"The upstream run {upstream.run_id} has conclusion {upstream.conclusion!r}, not 'success': its "
            "images may not exist. Gate consumers on github.event.workflow_run.conclusion == 'success'."
        )
    build = _upstream_build(reader, upstream, repository, nightly=nightly)
    return BuildContext("workflow_run", upstream.event, repository, build, upstream=upstream, warnings=tuple(warnings))


def _upstream_build(
    reader: _Payload, upstream: Upstream, repository: str, *, nightly: bool
) -> PullRequestBuild | RefBuild | NightlyBuild:
    event = upstream.event
    if event == "pull_request":
        return _upstream_pull_request(reader, upstream, repository)
    if event == "pull_request_target":
        # Such runs carry the base branch's commit as head_sha and head_commit (actions/checkout#2454), so
        # the PR head the build tagged is not in the payload, and guessing would pull another PR's image.
        raise TagError(
            "Cannot rebuild a pull_request_target tag",
            "A workflow_run for a pull_request_target run names the base branch's commit, not the pull "
            "request's head, so its tag cannot be rebuilt. Build images in a pull_request workflow.",
        )
    if event == "schedule" or (event == "workflow_dispatch" and nightly):
        utc_date(upstream.created_at, "workflow_run.created_at")
        return NightlyBuild(upstream.head_sha, upstream.created_at, upstream.run_id)
    if event in {"push", "release", "workflow_dispatch", "repository_dispatch"}:
        if not upstream.head_branch:
            raise TagError("Malformed event payload", f"workflow_run.head_branch is empty for a {event} run.")
        # release runs are always for a tag, repository_dispatch runs for the default branch; a push or a
        # dispatch names a branch or a tag in head_branch and the payload does not say which.
        ref_type: RefType | None = {"release": "tag", "repository_dispatch": "branch"}.get(event)  # type: ignore[assignment]
        return RefBuild(upstream.head_branch, ref_type, upstream.head_sha)
    raise TagError(
        "Unsupported upstream event",
        f"The upstream run was triggered by {event[:60]!r}; a workflow_run consumer can rebuild the tags of "
        f"{', '.join(_UPSTREAM_EVENTS)} runs.",
    )


def _upstream_pull_request(reader: _Payload, upstream: Upstream, repository: str) -> PullRequestBuild:
    """The PR from `pull_requests` whose head is the run's commit; a lookup when there is none (forks)."""
    base_id = reader.optional("workflow_run.repository.id")
    head_repo_id = reader.optional("workflow_run.head_repository.id")
    numbers: set[int] = set()
    for index, entry in enumerate(reader.optional_list("workflow_run.pull_requests")):
        where = f"workflow_run.pull_requests[{index}]"
        if not isinstance(entry, dict):
            raise TagError("Malformed event payload", f"{where} is not an object.")
        item = _Payload("workflow_run", entry)
        number = item.positive_int("number", where)
        sha = item.optional_text("head.sha") or ""
        if sha.lower() != upstream.head_sha:
            continue  # lists open PRs whose head matches the branch now, not necessarily this run's commit
        if head_repo_id is not None and item.optional("head.repo.id") not in (None, head_repo_id):
            continue
        if base_id is not None and item.optional("base.repo.id") not in (None, base_id):
            continue  # a PR inside the fork itself, not one against this repository
        numbers.add(number)
    if len(numbers) == 1:
        return PullRequestBuild(upstream.head_sha, numbers.pop())
    if len(numbers) > 1:
        raise TagError(
            "Ambiguous pull request",
            f"Commit {upstream.head_sha[:7]} is the head of pull requests {sorted(numbers)}; the upstream run "
            "belongs to one of them and the payload does not say which. Refusing to guess.",
        )
    login = reader.optional_text("workflow_run.head_repository.owner.login") or upstream.head_repository.split("/")[0]
    if not re.fullmatch(_LOGIN, login):
        raise TagError("Malformed event payload", "workflow_run.head_repository.owner.login is not a GitHub login.")
    if not upstream.head_branch:
        raise TagError("Malformed event payload", "workflow_run.head_branch is empty for a pull_request run.")
    base = reader.optional_text("workflow_run.repository.full_name") or repository
    if not re.fullmatch(_REPOSITORY, base):
        raise TagError("Malformed event payload", "workflow_run.repository.full_name is not owner/name.")
    return PullRequestBuild(upstream.head_sha, None, PullLookup(base, login, upstream.head_branch, upstream.head_sha))


# --- small readers ----------------------------------------------------------------------------------------


def _repository(reader: _Payload, env: Mapping[str, str]) -> str:
    repository = env.get("GITHUB_REPOSITORY", "").strip() or reader.optional_text("repository.full_name") or ""
    if not re.fullmatch(_REPOSITORY, repository):
        raise TagError(
            "No repository",
            f"GITHUB_REPOSITORY must be owner/name (or the payload carry repository.full_name); "
            f"got {repository[:80]!r}.",
        )
    return repository


def _env_sha(env: Mapping[str, str], event_name: str) -> str:
    return validate_sha(env.get("GITHUB_SHA", "").strip(), f"GITHUB_SHA of the {event_name} run")


def _run_id(env: Mapping[str, str]) -> int | None:
    value = env.get("GITHUB_RUN_ID", "").strip()
    return int(value) if value.isascii() and value.isdigit() and int(value) > 0 else None


_MAX_NUMBER = 2**53  # JSON's largest exact integer; GitHub numbers and ids are far below it


class _Payload:
    """Typed access to dotted paths of an event payload, with errors that name the field."""

    def __init__(self, event_name: str, data: Mapping[str, Any]) -> None:
        self.event_name = event_name
        self.data = data

    def optional(self, path: str) -> Any:
        value: Any = self.data
        for key in path.split("."):
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value

    def _fail(self, path: str, expected: str, where: str | None = None) -> TagError:
        field = f"{where}.{path}" if where else path
        return TagError("Malformed event payload", f"The {self.event_name} payload has no usable {field} ({expected}).")

    def text(self, path: str) -> str:
        value = self.optional(path)
        if not isinstance(value, str) or not value:
            raise self._fail(path, "a non-empty string")
        return value

    def optional_text(self, path: str) -> str | None:
        value = self.optional(path)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._fail(path, "a string")
        return value or None

    def positive_int(self, path: str, where: str | None = None) -> int:
        value = self.optional(path)
        # bool is an int in Python; JSON true is not a number. The cap keeps `pr-{N}-{sha7}` short.
        if type(value) is not int or not 0 < value <= _MAX_NUMBER:
            raise self._fail(path, "a positive integer", where)
        return value

    def optional_list(self, path: str) -> list[Any]:
        value = self.optional(path)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._fail(path, "a list")
        return value
