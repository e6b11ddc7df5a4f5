"""Proving the image is the one the build made: before pulling (manifest and config read through the registry
client, as `docker buildx imagetools inspect` does, so a stale image costs one small request and not a
gigabyte) and after (the engine's own view of what it pulled or loaded).

`read_remote` does the registry I/O; `check_revision` and `check_digest` are pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from charon_ci import oci
from charon_ci.oci import ImageIndex, ImageManifest, Platform
from charon_ci.pull.settings import ImageReference
from charon_ci.registry import DigestMismatch, RegistryClient, RegistryError

REVISION_LABEL = "org.opencontainers.image.revision"


class NoMatchingPlatform(RegistryError):
    """The index has no image for the engine's platform (a permanent reason to look elsewhere)."""


@dataclass(frozen=True)
class RemoteImage:
    """What the registry holds at a reference: `digest` is what the reference names (an index or a manifest),
    `manifest_digest` the platform manifest the engine will pull, `labels` its config's labels."""

    digest: str
    manifest_digest: str
    config_digest: str
    labels: Mapping[str, str]
    platform: str | None


@dataclass(frozen=True)
class RevisionProof:
    status: Literal["match", "mismatch", "missing"]
    expected: str
    found: str | None

    @property
    def ok(self) -> bool:
        return self.status == "match"


def read_remote(client: RegistryClient, image: ImageReference, platform: Platform) -> RemoteImage:
    """The manifest at `image.reference` (the engine's platform's child of an index) and its config's labels."""
    reference = image.digest or image.tag or "latest"
    top = client.get_manifest(image.repository, reference)
    manifest = top
    chosen_platform: str | None = None
    if isinstance(top, ImageIndex):
        child = top.for_platform(platform)
        if child is None:
            offered = ", ".join(str(d.platform) for d in top.platform_manifests if d.platform) or "none"
            raise NoMatchingPlatform(
                f"{image.host}/{image.repository}@{top.digest} has no image for {platform} (it has: {offered})"
            )
        manifest = client.get_manifest(image.repository, child.digest)
        chosen_platform = str(child.platform)
    if not isinstance(manifest, ImageManifest):
        raise DigestMismatch(f"{image.host}/{image.repository}: an index lists another index as a platform image")
    config = client.get_config(image.repository, manifest)
    inner = config.get("config")
    raw_labels = inner.get("Labels") if isinstance(inner, dict) else None
    labels = {str(k): str(v) for k, v in raw_labels.items()} if isinstance(raw_labels, dict) else {}
    return RemoteImage(top.digest, manifest.digest, manifest.config.digest, labels, chosen_platform)


def check_revision(labels: Mapping[str, str], expected: str) -> RevisionProof:
    """The revision label against `expected` (40 hex, or at least its first 7). A label holding an abbreviated
    sha of at least 7 digits matches when one is a prefix of the other."""
    found = labels.get(REVISION_LABEL)
    if found is None or not found.strip():
        return RevisionProof("missing", expected, None)
    value = found.strip().lower()
    shorter, longer = sorted((value, expected.lower()), key=len)
    matches = len(shorter) >= 7 and longer.startswith(shorter) and all(c in "0123456789abcdef" for c in value)
    return RevisionProof("match" if matches else "mismatch", expected, found)


def check_digest(repo_digests: Iterable[str], expected: str) -> bool:
    """Whether the engine records `expected` among the image's `name@digest` entries."""
    if not oci.is_digest(expected):
        return False
    return any(entry.rpartition("@")[2] == expected for entry in repo_digests)


def describe(proof: RevisionProof, what: str, origin: str) -> str:
    """One sentence for a failed proof, naming the image, the label and where the expected value came from."""
    if proof.status == "missing":
        return (
            f"{what} has no {REVISION_LABEL} label, so it cannot be proven to be the build of {proof.expected[:12]} "
            f"({origin}). Label the build with action-tag's labels output."
        )
    shown = "".join(ch if ch.isalnum() else "?" for ch in (proof.found or "")[:64])
    return (
        f"{what} has {REVISION_LABEL}={shown}, but {proof.expected[:12]} was expected ({origin}): the image is "
        "stale or another build's."
    )
