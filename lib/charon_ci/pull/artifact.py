"""TEMPORARY stand-in for pull-artifact's module (branch `pull-artifact` owns this file and replaces it on merge).

Only the interface matters here: list one run's artifacts, choose one by name or glob, download it through the
302 without the token, check its sha256 against the API's digest.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

from charon_ci import github
from charon_ci.github import GithubClient


class ArtifactError(Exception):
    """A permanent failure of the artifact source, in plain words naming what was tried."""


@dataclass(frozen=True)
class ArtifactQuery:
    repository: str
    run_id: int
    name: str
    max_size: int
    download_dir: Path


@dataclass(frozen=True)
class DownloadedArtifact:
    path: Path
    artifact_id: int
    name: str
    size: int
    digest_verified: bool


def fetch_artifact(client: GithubClient, query: ArtifactQuery) -> DownloadedArtifact:
    owner, name = query.repository.split("/", 1)
    path = github.api_path("repos", owner, name, "actions", "runs", query.run_id, "artifacts")
    try:
        listed = list(client.paginate(path, items_key="artifacts", max_pages=10))
    except (github.NotFound, github.Forbidden, github.Unauthorized) as refused:
        raise ArtifactError(
            f"listing the artifacts of run {query.run_id} of {query.repository} failed ({refused})"
        ) from None
    chosen = [a for a in listed if isinstance(a, dict) and fnmatch.fnmatchcase(str(a.get("name")), query.name)]
    if not chosen:
        raise ArtifactError(f"run {query.run_id} of {query.repository} has no artifact named {query.name!r}")
    if len(chosen) > 1:
        raise ArtifactError(f"{len(chosen)} artifacts of run {query.run_id} match {query.name!r}")
    item = chosen[0]
    if item.get("expired"):
        raise ArtifactError(f"artifact {item['name']!r} of run {query.run_id} has expired")
    if int(item["size_in_bytes"]) > query.max_size:
        raise ArtifactError(f"artifact {item['name']!r} is larger than max-artifact-size")
    query.download_dir.mkdir(parents=True, exist_ok=True)
    target = query.download_dir / f"artifact-{item['id']}.zip"
    try:
        download = client.download(
            github.api_path("repos", owner, name, "actions", "artifacts", item["id"], "zip"),
            target,
            max_bytes=query.max_size,
        )
    except github.GithubError as failed:
        raise ArtifactError(f"downloading artifact {item['name']!r} failed ({failed})") from None
    digest = item.get("digest")
    if isinstance(digest, str) and digest != f"sha256:{download.sha256}":
        target.unlink(missing_ok=True)
        raise ArtifactError(f"artifact {item['name']!r} does not match its digest {digest}")
    return DownloadedArtifact(target, int(item["id"]), str(item["name"]), download.size, isinstance(digest, str))
