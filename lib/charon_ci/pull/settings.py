"""action-pull-image's inputs as one typed object, and the small parsers they need.

`PullSettings` is built once by `charon_ci.pull.command` and read by everything below it, so no module
under the command imports it (the settings type lives here, not there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from charon_ci import gha, oci
from charon_ci.tag import tagging

OnMismatch = Literal["fail", "warn"]

DEFAULT_REGISTRY = "docker.io"
DEFAULT_REGISTRY_TIMEOUT = 120.0
DEFAULT_MAX_ARTIFACT_SIZE = 4 * 1024**3
DEFAULT_ALLOWED_CONCLUSIONS = frozenset({"success"})
RUN_CONCLUSIONS = frozenset(
    {"success", "failure", "neutral", "cancelled", "skipped", "timed_out", "action_required", "stale"}
)

TIMEOUT_ACCEPTED = "whole seconds (90), or hours, minutes and seconds such as 90s, 5m, 1m30s, 1h; 0 = one attempt"
SIZE_ACCEPTED = "a whole number of bytes, or with a unit: 512MiB, 4GiB, 2GB (KiB MiB GiB TiB or KB MB GB TB)"
_TIMEOUT_RE = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_SIZE_RE = re.compile(r"(\d+)\s*([KMGT]i?B)?", re.IGNORECASE)
_SIZE_UNITS = {
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
}  # fmt: skip
_MAX_TIMEOUT = 24 * 3600
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class ImageReference:
    """An image reference as the user wrote it: `name` (`ghcr.io/owner/app`, `charon`), and a tag and/or digest.

    `host` and `repository` are what the registry API uses (docker's rules: `charon` is
    `docker.io/library/charon`).
    """

    name: str
    tag: str | None
    digest: str | None
    host: str
    repository: str

    @property
    def reference(self) -> str:
        """What the engine pulls: by digest when there is one, else by tag."""
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag or 'latest'}"

    @property
    def tagged(self) -> str | None:
        return f"{self.name}:{self.tag}" if self.tag else None

    def with_tag(self, tag: str) -> ImageReference:
        return ImageReference(self.name, tag, self.digest, self.host, self.repository)

    def with_digest(self, digest: str) -> ImageReference:
        return ImageReference(self.name, self.tag, digest, self.host, self.repository)

    def __str__(self) -> str:
        if self.tag and self.digest:
            return f"{self.name}:{self.tag}@{self.digest}"
        return self.reference


def split_name(name: str) -> tuple[str, str]:
    """(registry host, repository path) of an image name without tag or digest, by docker's rule: the first
    path part is a host when it has a `.` or `:` or is `localhost`."""
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, path = first, rest
    else:
        host, path = DEFAULT_REGISTRY, name
    if host in ("docker.io", "index.docker.io") and "/" not in path:
        path = f"library/{path}"
    return host, path


def parse_image(text: str, input_name: str) -> ImageReference:
    """`name:tag`, `name@sha256:...` or `name:tag@sha256:...`; a name alone is refused (say which tag)."""
    accepted = (
        "an image reference with a tag or digest, e.g. ghcr.io/owner/app:pr-1-abc1234 or ghcr.io/owner/app@sha256:..."
    )
    value = text.strip()
    digest: str | None = None
    if "@" in value:
        value, digest = value.split("@", 1)
        if not oci.is_digest(digest):
            raise gha.InputError(input_name, accepted + " (the digest is not sha256:<64 hex>)", text)
    tag: str | None = None
    last = value.rsplit("/", 1)[-1]
    if ":" in last:
        value, tag = value.rsplit(":", 1)
        if not tagging.is_valid_tag(tag):
            raise gha.InputError(input_name, accepted + " (the tag is not a valid tag)", text)
    if tag is None and digest is None:
        raise gha.InputError(input_name, accepted + " (no tag: give one, or use image-name to compute it)", text)
    return _reference(value, tag, digest, input_name, accepted, text)


def parse_image_name(text: str, input_name: str) -> ImageReference:
    """An image name without tag or digest (the tag is computed as action-tag computes it)."""
    accepted = "an image name without tag or digest, e.g. ghcr.io/owner/app"
    return _reference(text.strip(), None, None, input_name, accepted, text)


def _reference(
    name: str, tag: str | None, digest: str | None, input_name: str, accepted: str, raw: str
) -> ImageReference:
    problem = tagging.validate_image_name(name) if name else "empty"
    if problem is not None:
        raise gha.InputError(input_name, f"{accepted} ({problem})", raw)
    host, repository = split_name(name)
    if not oci.is_repository(repository):
        raise gha.InputError(input_name, f"{accepted} (not a repository path)", raw)
    return ImageReference(name, tag, digest, host, repository)


def parse_local_tag(text: str) -> str:
    """`name[:tag]` to re-tag the image as (`charon:local`); docker's default tag `latest` when none."""
    accepted = "a local image name with an optional tag, e.g. charon:local"
    value = text.strip()
    name, tag = value, "latest"
    if ":" in value.rsplit("/", 1)[-1]:
        name, tag = value.rsplit(":", 1)
    if "@" in value or not tagging.is_valid_tag(tag):
        raise gha.InputError("local-tag", accepted, text)
    problem = tagging.validate_image_name(name) if name else "empty"
    if problem is not None:
        raise gha.InputError("local-tag", f"{accepted} ({problem})", text)
    return f"{name}:{tag}"


def parse_timeout(text: str, input_name: str) -> float:
    value = text.strip()
    if value.isascii() and value.isdigit():
        seconds = int(value)
    else:
        match = _TIMEOUT_RE.fullmatch(value)
        if not value or not value.isascii() or match is None:
            raise gha.InputError(input_name, TIMEOUT_ACCEPTED, text)
        hours, minutes, secs = (int(part) if part else 0 for part in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if seconds > _MAX_TIMEOUT:
        raise gha.InputError(input_name, TIMEOUT_ACCEPTED + " (at most 24h)", text)
    return float(seconds)


def parse_size(text: str, input_name: str) -> int:
    value = text.strip()
    match = _SIZE_RE.fullmatch(value) if value.isascii() else None
    if match is None:
        raise gha.InputError(input_name, SIZE_ACCEPTED, text)
    number = int(match.group(1))
    unit = (match.group(2) or "").lower()
    size = number * _SIZE_UNITS.get(unit, 1)
    if size <= 0:
        raise gha.InputError(input_name, SIZE_ACCEPTED + " (more than 0)", text)
    return size


def parse_revision(text: str, input_name: str) -> str:
    """A commit sha, full (40 hex) or abbreviated to at least its first 7 hex digits; lowercased."""
    value = text.strip().lower()
    if not 7 <= len(value) <= 40 or not _HEX.issuperset(value):
        raise gha.InputError(input_name, "a commit sha: 40 hex digits, or at least its first 7", text)
    return value


@dataclass(frozen=True)
class PullSettings:
    """Everything action-pull-image was asked to do. Secrets are left out of `repr`."""

    image: ImageReference | None
    image_name: ImageReference | None
    expected_digest: str | None
    expected_revision: str | None
    on_mismatch: OnMismatch
    local_tag: str | None
    registry_timeout: float
    registry_username: str
    registry_password: str = field(repr=False)
    github_token: str = field(repr=False)
    run_id: int | None
    artifact_name: str | None
    artifact_file: str | None
    max_artifact_size: int
    allowed_conclusions: frozenset[str]
    main_branch: str
    dev_branch: str
    nightly: bool
    docker_host: str
    runner_temp: Path
    actor: str = ""

    @property
    def name(self) -> ImageReference:
        chosen = self.image or self.image_name
        if chosen is None:
            raise ValueError("PullSettings needs image or image_name")  # parse_inputs requires one
        return chosen
