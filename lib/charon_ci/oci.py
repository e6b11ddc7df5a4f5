"""OCI distribution data, parsed without I/O: media types, digests, manifests and indexes, auth challenges.

The registry client (`charon_ci.registry`) fetches bytes; everything here turns bytes and header values into
typed objects, so it can be tested on its own and reused by callers that already hold a manifest.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
IN_TOTO = "application/vnd.in-toto+json"

IMAGE_MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = IMAGE_MANIFEST_TYPES | INDEX_TYPES
# Order matters only to registries that ignore q-values: indexes first so a multi-arch tag is never
# down-converted to one platform's manifest.
ACCEPT_MANIFEST = ", ".join([OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST])

# buildx marks the attestation manifests it puts next to the platform images of an index like this.
REFERENCE_TYPE_ANNOTATION = "vnd.docker.reference.type"
REFERENCE_DIGEST_ANNOTATION = "vnd.docker.reference.digest"
ATTESTATION_MANIFEST = "attestation-manifest"

# The OCI spec recommends that registries refuse manifests larger than 4 MiB; we refuse to read more.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024

_DIGEST_RE = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_REPOSITORY_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_REPOSITORY_MAX = 255  # distribution's limit for the whole name


class InvalidManifest(ValueError):
    """Bytes that are not a manifest or index this package understands."""


def is_digest(value: str) -> bool:
    return bool(_DIGEST_RE.match(value))


def is_tag(value: str) -> bool:
    return bool(_TAG_RE.match(value))


def is_repository(value: str) -> bool:
    return len(value) <= _REPOSITORY_MAX and bool(_REPOSITORY_RE.match(value))


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    if algorithm not in {"sha256", "sha512"}:
        raise ValueError(f"unsupported digest algorithm: {algorithm}")
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def digest_matches(data: bytes, digest: str) -> bool:
    if not is_digest(digest):
        return False
    algorithm = digest.split(":", 1)[0]
    return digest_of(data, algorithm) == digest


def referrers_tag(digest: str) -> str:
    """The OCI 1.1 fallback tag whose index lists the referrers of `digest` (`sha256-<hex>`)."""
    if not is_digest(digest):
        raise ValueError(f"not a digest: {digest!r}")
    algorithm, hex_part = digest.split(":", 1)
    return f"{algorithm}-{hex_part}"


def cosign_tag(digest: str, suffix: str) -> str:
    """cosign's tag for a signature/attestation/SBOM of `digest`: `sha256-<hex>.sig` and friends."""
    if suffix not in COSIGN_SUFFIXES:
        raise ValueError(f"unknown cosign suffix: {suffix!r}")
    return f"{referrers_tag(digest)}.{suffix}"


COSIGN_SUFFIXES = ("sig", "att", "sbom")
_COSIGN_TAG_RE = re.compile(r"^(sha256)-([a-f0-9]{64})(?:\.(sig|att|sbom))?$")


def subject_of_tag(tag: str) -> tuple[str, str | None] | None:
    """For `sha256-<hex>[.sig|.att|.sbom]` the subject digest and the suffix (None for the OCI referrers tag)."""
    match = _COSIGN_TAG_RE.match(tag)
    if not match:
        return None
    return f"{match.group(1)}:{match.group(2)}", match.group(3)


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """`linux/arm64` or `linux/arm/v7`."""
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"not a platform (os/arch[/variant]): {text!r}")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @property
    def is_unknown(self) -> bool:
        return self.os == "unknown" and self.architecture == "unknown"

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    artifact_type: str | None = None

    @property
    def is_attestation(self) -> bool:
        return self.annotations.get(REFERENCE_TYPE_ANNOTATION) == ATTESTATION_MANIFEST

    @property
    def attests(self) -> str | None:
        """The digest of the platform manifest a buildx attestation manifest describes."""
        return self.annotations.get(REFERENCE_DIGEST_ANNOTATION) if self.is_attestation else None


@dataclass(frozen=True)
class ImageManifest:
    """One image (or artifact): a config blob and layer blobs."""

    media_type: str
    digest: str
    size: int
    config: Descriptor
    layers: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    raw: bytes = field(default=b"", repr=False, hash=False)

    is_index = False

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        return (self.config, *self.layers)

    @property
    def blob_bytes(self) -> int:
        """Config and layers; a blob listed twice counts once."""
        return sum(blob_sizes([self]).values())


@dataclass(frozen=True)
class ImageIndex:
    """A multi-platform image: descriptors of platform manifests (and, from buildx, attestation manifests)."""

    media_type: str
    digest: str
    size: int
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    raw: bytes = field(default=b"", repr=False, hash=False)

    is_index = True

    @property
    def platform_manifests(self) -> tuple[Descriptor, ...]:
        return tuple(d for d in self.manifests if not d.is_attestation)

    @property
    def attestation_manifests(self) -> tuple[Descriptor, ...]:
        return tuple(d for d in self.manifests if d.is_attestation)

    def for_platform(self, platform: Platform) -> Descriptor | None:
        for child in self.platform_manifests:
            p = child.platform
            if (
                p
                and (p.os, p.architecture) == (platform.os, platform.architecture)
                and platform.variant in (None, p.variant)
            ):
                return child
        return None


Manifest = ImageManifest | ImageIndex


def _required(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidManifest(f"{where}: {key} must be a non-empty string")
    return value


def _optional(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    return None if obj.get(key) is None else _required(obj, key, where)


def _annotations(obj: Mapping[str, Any], where: str) -> dict[str, str]:
    value = obj.get("annotations")
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidManifest(f"{where}: annotations must map strings to strings")
    return dict(value)


def _platform(obj: Any, where: str) -> Platform | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise InvalidManifest(f"{where}: platform must be an object")
    variant = _optional(obj, "variant", where)
    return Platform(_required(obj, "os", where), _required(obj, "architecture", where), variant)


def parse_descriptor(obj: Any, where: str = "descriptor") -> Descriptor:
    if not isinstance(obj, dict):
        raise InvalidManifest(f"{where}: must be an object")
    media_type = _required(obj, "mediaType", where)
    digest = _required(obj, "digest", where)
    if not is_digest(digest):
        raise InvalidManifest(f"{where}: digest is not sha256:<64 hex> or sha512:<128 hex>")
    size = obj.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidManifest(f"{where}: size must be a non-negative integer")
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        platform=_platform(obj.get("platform"), where),
        annotations=_annotations(obj, where),
        artifact_type=_optional(obj, "artifactType", where),
    )


def _media_type(document: Mapping[str, Any], content_type: str | None) -> str:
    declared = document.get("mediaType")
    header = (content_type or "").split(";", 1)[0].strip().lower() or None
    if declared is not None and not isinstance(declared, str):
        raise InvalidManifest("mediaType must be a string")
    if declared and header and header in MANIFEST_TYPES and declared != header:
        raise InvalidManifest(f"mediaType {declared} contradicts Content-Type {header}")
    media_type = declared or (header if header in MANIFEST_TYPES else None)
    if media_type is None:
        # OCI lets mediaType be absent; the shape then decides.
        if "manifests" in document:
            return OCI_INDEX
        if "config" in document and "layers" in document:
            return OCI_MANIFEST
        raise InvalidManifest(f"unknown manifest type (Content-Type {header or 'missing'})")
    if media_type not in MANIFEST_TYPES:
        raise InvalidManifest(f"unsupported manifest media type {media_type}")
    return media_type


def parse_manifest(body: bytes, content_type: str | None = None, digest: str | None = None) -> Manifest:
    """Parse manifest bytes. `digest` defaults to the sha256 of the bytes; it is not verified here."""
    if len(body) > MAX_MANIFEST_BYTES:
        raise InvalidManifest(f"manifest larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidManifest(f"manifest is not JSON: {exc.__class__.__name__}") from None
    if not isinstance(document, dict):
        raise InvalidManifest("manifest is not a JSON object")
    if document.get("schemaVersion") != 2:
        raise InvalidManifest("only schemaVersion 2 manifests are supported")
    media_type = _media_type(document, content_type)
    own_digest = digest or digest_of(body)
    subject = parse_descriptor(document["subject"], "subject") if document.get("subject") is not None else None
    artifact_type = _optional(document, "artifactType", "manifest")
    annotations = _annotations(document, "manifest")
    if media_type in INDEX_TYPES:
        children = document.get("manifests")
        if not isinstance(children, list):
            raise InvalidManifest("index: manifests must be a list")
        return ImageIndex(
            media_type=media_type,
            digest=own_digest,
            size=len(body),
            manifests=tuple(parse_descriptor(c, f"manifests[{i}]") for i, c in enumerate(children)),
            subject=subject,
            artifact_type=artifact_type,
            annotations=annotations,
            raw=body,
        )
    layers = document.get("layers")
    if not isinstance(layers, list):
        raise InvalidManifest("manifest: layers must be a list")
    return ImageManifest(
        media_type=media_type,
        digest=own_digest,
        size=len(body),
        config=parse_descriptor(document.get("config"), "config"),
        layers=tuple(parse_descriptor(layer, f"layers[{i}]") for i, layer in enumerate(layers)),
        subject=subject,
        artifact_type=artifact_type,
        annotations=annotations,
        raw=body,
    )


def blob_sizes(manifests: Iterable[ImageManifest]) -> dict[str, int]:
    """Every config and layer blob of these manifests, each digest once, with its size."""
    sizes: dict[str, int] = {}
    for manifest in manifests:
        for blob in manifest.blobs:
            sizes.setdefault(blob.digest, blob.size)
    return sizes


@dataclass(frozen=True)
class ImageSize:
    """What an image or index occupies: blobs and manifests reachable from it, each digest once.

    `new_bytes` leaves out blobs the caller said were already counted (for example, blobs of images that
    are kept), so summing `new_bytes` over images while growing that set gives the bytes deletion frees.
    """

    digest: str
    blobs: Mapping[str, int]
    manifests: Mapping[str, int]
    already_counted: frozenset[str] = frozenset()

    @property
    def blob_bytes(self) -> int:
        return sum(self.blobs.values())

    @property
    def manifest_bytes(self) -> int:
        return sum(self.manifests.values())

    @property
    def total_bytes(self) -> int:
        return self.blob_bytes + self.manifest_bytes

    @property
    def new_bytes(self) -> int:
        blobs = sum(size for digest, size in self.blobs.items() if digest not in self.already_counted)
        manifests = sum(size for digest, size in self.manifests.items() if digest not in self.already_counted)
        return blobs + manifests

    @property
    def digests(self) -> frozenset[str]:
        return frozenset(self.blobs) | frozenset(self.manifests)


def image_size(root: Manifest, children: Iterable[Manifest] = (), already_counted: Iterable[str] = ()) -> ImageSize:
    """Size of `root` (and of `children`, the manifests its index lists, fetched by the caller)."""
    manifests = {root.digest: root.size}
    images = [root] if isinstance(root, ImageManifest) else []
    for child in children:
        manifests.setdefault(child.digest, child.size)
        if isinstance(child, ImageManifest):
            images.append(child)
    return ImageSize(root.digest, blob_sizes(images), manifests, frozenset(already_counted))


# --- HTTP header values ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "bearer", "basic"
    params: Mapping[str, str] = field(default_factory=dict, hash=False)


_HTTP_TCHAR = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_CHALLENGE_PART = re.compile(
    rf"\s*(?:(?P<key>{_HTTP_TCHAR})\s*=\s*(?:\"(?P<quoted>(?:[^\"\\]|\\.)*)\"|(?P<bare>[^\s,]*))|(?P<scheme>{_HTTP_TCHAR}))\s*,?"
)


def parse_www_authenticate(value: str) -> list[Challenge]:
    """Parse `WWW-Authenticate` (RFC 9110 challenges): `Bearer realm="...",service="...",scope="..."`."""
    challenges: list[Challenge] = []
    scheme: str | None = None
    params: dict[str, str] = {}
    position = 0
    while position < len(value):
        match = _CHALLENGE_PART.match(value, position)
        if not match or match.end() == position:
            break  # malformed rest: keep what was understood
        position = match.end()
        if match.group("scheme"):
            # "Bearer realm=..." : a scheme then a space then params; token68 values are not used by registries
            if scheme is not None:
                challenges.append(Challenge(scheme, params))
            scheme, params = match.group("scheme").lower(), {}
        elif scheme is not None:
            quoted = match.group("quoted")
            text: str = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else match.group("bare")
            params[match.group("key").lower()] = text
    if scheme is not None:
        challenges.append(Challenge(scheme, params))
    return challenges


_LINK_RE = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")


def parse_link_next(header: str | None, base_url: str) -> str | None:
    """The absolute URL of `rel="next"` in a `Link` header, resolved against the request URL."""
    if not header:
        return None
    for target, params in _LINK_RE.findall(header):
        target = str(target)
        rels = re.findall(r";\s*rel\s*=\s*\"?([^\";]+)\"?", params)
        if any("next" in rel.split() for rel in rels):
            return urljoin(base_url, target)
    return None
