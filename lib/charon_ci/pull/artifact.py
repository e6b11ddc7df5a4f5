"""Fetch a build's image artifact: find it among one run's artifacts, refuse what must not be used, download
it (the 302 to signed storage is followed without the token) and verify it against what the API recorded.

The run id is the caller's (the event's `workflow_run.id` or the `run-id` input), never read from an
artifact. Everything an artifact says about itself (its name, its listed run) is untrusted text: messages
quote it escaped.
"""

from __future__ import annotations

import fnmatch
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from charon_ci import gha, github

DEFAULT_DISK_RESERVE = 64 * 1024 * 1024  # free space kept on the runner's disk beyond the download
_GLOB_CHARS = frozenset("*?[")
_LISTED_NAMES = 10
_NAMING_PAGES = 3
_SHOWN = 120
_HEX = frozenset("0123456789abcdef")


class ArtifactError(gha.ActionFailure):
    """The artifact could not be used; `str()` says in plain words what was tried and why it failed.

    Permanent for this run of the action: the client has already retried what was worth retrying.
    """

    def __init__(self, message: str, *, title: str = "Image artifact not usable") -> None:
        super().__init__(title, message)


class ArchiveError(ArtifactError):
    """The artifact was downloaded, but its contents were refused or the engine could not load them."""

    def __init__(self, message: str, *, title: str = "Image artifact refused") -> None:
        super().__init__(message, title=title)


@dataclass(frozen=True)
class ArtifactQuery:
    repository: str  # "owner/name" whose run made the artifact
    run_id: int  # from the event (workflow_run.id) or the run-id input, never from the artifact
    name: str  # exact name or glob
    max_size: int  # bytes (max-artifact-size)
    download_dir: Path  # under RUNNER_TEMP
    disk_reserve: int = DEFAULT_DISK_RESERVE  # bytes that must stay free beside the download


@dataclass(frozen=True)
class DownloadedArtifact:
    path: Path
    artifact_id: int
    name: str
    size: int
    digest_verified: bool  # False when the API gave no digest (pre-v4 artifact)
    sha256: str = ""  # of the downloaded bytes, hex
    head_sha: str | None = None  # the commit the run built, as the API lists it (not read from the artifact)

    @property
    def verification(self) -> str:
        """One line for the log and job summary: what was checked about these bytes, and what could not be."""
        if self.digest_verified:
            return f"sha256 {self.sha256} matches the digest GitHub recorded at upload"
        return (
            f"sha256 {self.sha256} NOT verified: GitHub recorded no digest for this artifact (uploaded by "
            "upload-artifact v3 or older); only its size was bounded by max-artifact-size"
        )

    def discard(self) -> None:
        """Remove the downloaded file (after loading it, or when giving up on it)."""
        self.path.unlink(missing_ok=True)


def _shown(text: object) -> str:
    value = repr(text)
    return value if len(value) <= _SHOWN else value[: _SHOWN - 3] + "..."


def _size_text(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} bytes" if unit == "bytes" else f"{size} bytes ({value:.1f} {unit})"
        value /= 1024
    raise AssertionError("unreachable")


def _check_query(query: ArtifactQuery) -> tuple[str, str]:
    owner, slash, name = query.repository.partition("/")
    if not slash or not owner or not name or "/" in name:
        raise ArtifactError(f"the repository {_shown(query.repository)} is not in the form owner/name")
    if query.run_id <= 0:
        raise ArtifactError(f"the run id {query.run_id} is not a workflow run id (a positive number)")
    if not query.name:
        raise ArtifactError("no artifact name was given")
    if query.max_size <= 0:
        raise ArtifactError(f"the largest artifact allowed ({query.max_size} bytes) must be positive")
    return owner, name


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _access_advice(query: ArtifactQuery) -> str:
    return (
        f"the job's token needs `permissions: actions: read` on {query.repository} to list and download its "
        "artifacts (for a private repository GitHub answers 404, not 403, when it is missing)"
    )


def _explain_list_failure(query: ArtifactQuery, failure: github.GithubError) -> ArtifactError:
    what = f"Listing the artifacts of run {query.run_id} of {query.repository}"
    if isinstance(failure, github.RateLimited):
        return ArtifactError(f"{what} hit GitHub's rate limit: {failure}")
    if failure.status == 404:
        return ArtifactError(
            f"{what} failed: GitHub answered 404 Not Found. Either that run does not exist there, or "
            f"{_access_advice(query)}."
        )
    if failure.status in (401, 403):
        return ArtifactError(f"{what} was refused ({failure.status}: {failure.message}): {_access_advice(query)}.")
    return ArtifactError(f"{what} failed: {failure}")


def _explain_download_failure(
    query: ArtifactQuery, item: Mapping[str, Any], failure: github.GithubError
) -> ArtifactError:
    what = f"Downloading the artifact {_shown(item.get('name'))} (id {item.get('id')}) of run {query.run_id}"
    if isinstance(failure, github.DownloadTooLarge):
        return ArtifactError(f"{what} stopped: the storage sent more than the artifact's size ({failure.message}).")
    if failure.status == 410:
        return ArtifactError(
            f"{what} failed: GitHub answered 410 Gone, the artifact has expired (artifacts are kept 1 to 90 days, "
            "as the build's retention-days says). Re-run the build to make a new one."
        )
    if failure.status in (401, 403, 404) and not isinstance(failure, github.RateLimited):
        return ArtifactError(f"{what} was refused ({failure.status}: {failure.message}): {_access_advice(query)}.")
    return ArtifactError(f"{what} failed: {failure}")


def _matches(pattern: str, name: str) -> bool:
    if _GLOB_CHARS.isdisjoint(pattern):
        return name == pattern
    return fnmatch.fnmatchcase(name, pattern)


def _list(
    client: github.GithubClient,
    query: ArtifactQuery,
    owner: str,
    repo: str,
    *,
    by_name: bool,
    max_pages: int | None = None,
) -> list[dict[str, Any]]:
    path = github.api_path("repos", owner, repo, "actions", "runs", query.run_id, "artifacts")
    params = {"name": query.name} if by_name else None
    try:
        listed = list(client.paginate(path, params=params, items_key="artifacts", max_pages=max_pages))
    except github.GithubError as failure:
        raise _explain_list_failure(query, failure) from None
    return [item for item in listed if isinstance(item, dict)]


def _of_this_run(item: Mapping[str, Any], run_id: int) -> bool:
    """An artifact listed under the run, whose own record does not say another run made it."""
    run = item.get("workflow_run")
    return not isinstance(run, dict) or run.get("id") in (None, run_id)


def choose_artifact(items: list[dict[str, Any]], query: ArtifactQuery, now: float) -> dict[str, Any]:
    """The one artifact to download, or the reason there is none (pure: listing in, choice out)."""
    where = f"run {query.run_id} of {query.repository}"
    ours = [item for item in items if _of_this_run(item, query.run_id)]
    matching = [item for item in ours if isinstance(item.get("name"), str) and _matches(query.name, item["name"])]
    if not matching:
        names = sorted({str(item.get("name")) for item in ours})
        if not names and items:
            raise ArtifactError(
                f"GitHub listed {len(items)} artifact(s) under {where}, but their records say another run made "
                f"them; none is used. Looked for {_shown(query.name)}."
            )
        if not names:
            raise ArtifactError(
                f"{where} has no artifacts (the build uploaded none, or they were deleted); looked for "
                f"{_shown(query.name)}."
            )
        listed = ", ".join(_shown(n) for n in names[:_LISTED_NAMES]) + (" ..." if len(names) > _LISTED_NAMES else "")
        raise ArtifactError(f"{where} has no artifact named {_shown(query.name)}; it has: {listed}.")
    distinct = sorted({item["name"] for item in matching})
    if len(distinct) > 1:
        listed = ", ".join(_shown(n) for n in distinct[:_LISTED_NAMES])
        raise ArtifactError(
            f"the artifact name {_shown(query.name)} matches {len(distinct)} artifacts of {where} ({listed}); "
            "give a name that matches one"
        )

    def expired(item: Mapping[str, Any]) -> bool:
        expires = _timestamp(item.get("expires_at"))
        return bool(item.get("expired")) or (expires is not None and expires <= now)

    usable = [item for item in matching if not expired(item)]
    if not usable:
        newest = max(matching, key=lambda item: (_timestamp(item.get("created_at")) or 0.0, item.get("id") or 0))
        expires = _timestamp(newest.get("expires_at"))
        when = f" on {_when(expires)}" if expires is not None else ""
        raise ArtifactError(
            f"the artifact {_shown(newest['name'])} of {where} expired{when} (artifacts are kept 1 to 90 days, as the "
            "build's retention-days says). Re-run the build to make a new one."
        )
    # v4 refuses a second artifact of the same name in a run; older runs could have several: take the newest.
    chosen = max(usable, key=lambda item: (_timestamp(item.get("created_at")) or 0.0, item.get("id") or 0))
    if not isinstance(chosen.get("id"), int) or not isinstance(chosen.get("size_in_bytes"), int):
        raise ArtifactError(f"GitHub listed the artifact {_shown(chosen['name'])} without an id or size")
    if chosen["size_in_bytes"] > query.max_size:
        raise ArtifactError(
            f"the artifact {_shown(chosen['name'])} of {where} is {_size_text(chosen['size_in_bytes'])}, over "
            f"max-artifact-size, which is {_size_text(query.max_size)}; raise max-artifact-size to accept it"
        )
    return chosen


def _expected_sha256(item: Mapping[str, Any]) -> str | None:
    digest = item.get("digest")
    if digest is None:
        return None
    algorithm, _, hexdigest = str(digest).partition(":")
    if algorithm != "sha256" or len(hexdigest) != 64 or not _HEX.issuperset(hexdigest):
        raise ArtifactError(
            f"GitHub recorded the digest {_shown(digest)} for the artifact {_shown(item.get('name'))}, "
            "which is not a sha256 digest this action can check; refused"
        )
    return hexdigest


def _check_disk(query: ArtifactQuery, needed: int, name: str) -> None:
    query.download_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(query.download_dir).free
    if free < needed + query.disk_reserve:
        raise ArtifactError(
            f"not enough free disk in {query.download_dir} for the artifact {_shown(name)}: it needs "
            f"{_size_text(needed)} and {_size_text(query.disk_reserve)} kept free, but only {_size_text(free)} is free"
        )


def fetch_artifact(
    client: github.GithubClient, query: ArtifactQuery, *, clock: Callable[[], float] = time.time
) -> DownloadedArtifact:
    """Find the run's artifact named `query.name`, download it into `query.download_dir` and verify it.

    Raises `ArtifactError` naming what was tried: no such artifact, several, expired, too large, no disk
    space, no `actions: read`, or bytes that do not match the digest GitHub recorded.
    """
    owner, repo = _check_query(query)
    # An exact name narrows the listing on GitHub's side; a glob needs every artifact of the run.
    exact = _GLOB_CHARS.isdisjoint(query.name)
    items = _list(client, query, owner, repo, by_name=exact)
    if exact and not any(_of_this_run(item, query.run_id) and item.get("name") == query.name for item in items):
        # Not there: list what the run has, so the message can name it (a name mismatch is a common slip).
        items = _list(client, query, owner, repo, by_name=False, max_pages=_NAMING_PAGES)
    chosen = choose_artifact(items, query, clock())
    artifact_id: int = chosen["id"]
    name: str = chosen["name"]
    listed_size: int = chosen["size_in_bytes"]
    expected = _expected_sha256(chosen)
    # With a digest (upload-artifact v4+) the listed size is the zip's exact size; older artifacts listed
    # the files' total, so then only max-artifact-size bounds the download.
    limit = listed_size if expected is not None else query.max_size
    _check_disk(query, listed_size, name)
    destination = query.download_dir / f"artifact-{artifact_id}"
    # Built from the id, not taken from `archive_download_url`: the token goes only where we chose.
    url = github.api_path("repos", owner, repo, "actions", "artifacts", artifact_id, "zip")
    try:
        download = client.download(url, destination, max_bytes=limit)
    except github.GithubError as failure:
        raise _explain_download_failure(query, chosen, failure) from None
    try:
        if expected is not None and download.size != listed_size:
            raise ArtifactError(
                f"the artifact {_shown(name)} (id {artifact_id}) downloaded as {download.size} bytes, but GitHub "
                f"lists it as {listed_size}; refused"
            )
        if expected is not None and download.sha256 != expected:
            raise ArtifactError(
                f"the artifact {_shown(name)} (id {artifact_id}) downloaded with sha256 {download.sha256}, but GitHub "
                f"recorded sha256:{expected}; refused: the bytes are not what the build uploaded"
            )
    except ArtifactError:
        destination.unlink(missing_ok=True)
        raise
    run = chosen.get("workflow_run")
    head_sha = run.get("head_sha") if isinstance(run, dict) else None
    return DownloadedArtifact(
        path=destination,
        artifact_id=artifact_id,
        name=name,
        size=download.size,
        digest_verified=expected is not None,
        sha256=download.sha256,
        head_sha=head_sha if isinstance(head_sha, str) else None,
    )
