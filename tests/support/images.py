"""Real images, pushed through the registry HTTP API: blobs first, then manifests, the way buildx does.

Nothing here uses charon_ci's registry client: the client is tested against images built independently.
Every image is pullable by a real engine (gzipped tar layers, configs whose `rootfs.diff_ids` match), and
every push returns what was pushed (digests and sizes of the index, children, configs, layers; tags) so a
test can compare the client's view against ground truth.

    factory = ImageFactory(registry.host)
    image = factory.push_image(repo, "pr-1-abc1234", revision="a" * 40)
    index = factory.push_index(repo, "sha-abc1234", attestations=True)
    factory.push_referrer(repo, index.children[0])          # OCI 1.1 manifest with `subject`
    factory.push_cosign(repo, index.digest, "sig")           # tag sha256-<hex>.sig
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import requests

Style = Literal["oci", "docker"]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
IN_TOTO = "application/vnd.in-toto+json"
COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
REVISION_LABEL = "org.opencontainers.image.revision"
EMPTY_JSON = b"{}"

_TYPES: dict[Style, dict[str, str]] = {
    "oci": {"manifest": OCI_MANIFEST, "index": OCI_INDEX, "config": OCI_CONFIG, "layer": OCI_LAYER},
    "docker": {"manifest": DOCKER_MANIFEST, "index": DOCKER_LIST, "config": DOCKER_CONFIG, "layer": DOCKER_LAYER},
}


class PushError(RuntimeError):
    pass


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def make_layer(files: Mapping[str, bytes]) -> tuple[bytes, str]:
    """A gzipped tar of `files` (path -> content), byte-for-byte reproducible; returns (blob, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            content = files[name]
            info = tarfile.TarInfo(name.lstrip("/"))
            info.size, info.mode, info.mtime = len(content), 0o755, 0
            tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), sha256(tar_bytes)


@dataclass(frozen=True)
class Blob:
    media_type: str
    digest: str
    size: int
    data: bytes = field(repr=False)
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)

    def descriptor(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class PushedImage:
    """One image manifest as pushed (a platform image, an attestation, a referrer, a signature)."""

    registry: str
    repository: str
    digest: str
    size: int
    media_type: str
    manifest: bytes = field(repr=False)
    config: Blob
    layers: tuple[Blob, ...]
    platform: str | None  # "linux/arm64"; "unknown/unknown" for attestations; None for artifacts
    tags: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    subject: str | None = None
    artifact_type: str | None = None

    @property
    def reference(self) -> str:
        """`host/repo@digest`, what a test pulls."""
        return f"{self.registry}/{self.repository}@{self.digest}"

    def tagged(self, tag: str) -> str:
        return f"{self.registry}/{self.repository}:{tag}"

    @property
    def revision(self) -> str | None:
        return self.labels.get(REVISION_LABEL)

    @property
    def blobs(self) -> dict[str, int]:
        """Config and layer digests with sizes (a digest listed twice appears once)."""
        return {b.digest: b.size for b in (self.config, *self.layers)}

    @property
    def blob_bytes(self) -> int:
        return sum(self.blobs.values())

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True)
class PushedIndex:
    """A multi-platform index as pushed: platform children, buildx attestations, tags."""

    registry: str
    repository: str
    digest: str
    size: int
    media_type: str
    manifest: bytes = field(repr=False)
    children: tuple[PushedImage, ...]
    attestations: tuple[PushedImage, ...] = ()
    tags: tuple[str, ...] = ()

    @property
    def reference(self) -> str:
        return f"{self.registry}/{self.repository}@{self.digest}"

    def tagged(self, tag: str) -> str:
        return f"{self.registry}/{self.repository}:{tag}"

    def child(self, platform: str) -> PushedImage:
        for image in self.children:
            if image.platform == platform:
                return image
        raise KeyError(platform)

    @property
    def manifests(self) -> tuple[PushedImage, ...]:
        return self.children + self.attestations

    @property
    def blobs(self) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for image in self.manifests:
            sizes.update(image.blobs)
        return sizes

    @property
    def manifest_sizes(self) -> dict[str, int]:
        return {self.digest: self.size, **{m.digest: m.size for m in self.manifests}}

    @property
    def total_bytes(self) -> int:
        """Every blob once plus every manifest: what charon_ci's `ImageSize.total_bytes` must say."""
        return sum(self.blobs.values()) + sum(self.manifest_sizes.values())

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


Pushed = PushedImage | PushedIndex


class ImageFactory:
    """Pushes real images to the registry at `host` (plain http: the loopback test registry)."""

    def __init__(self, host: str, session: requests.Session | None = None) -> None:
        self.host = host
        self.url = f"http://{host}"
        self.session = session or requests.Session()

    # --- raw API ---------------------------------------------------------------------------------------

    def push_blob(
        self, repository: str, data: bytes, media_type: str, annotations: Mapping[str, str] | None = None
    ) -> Blob:
        digest = sha256(data)
        head = self.session.head(f"{self.url}/v2/{repository}/blobs/{digest}", timeout=30)
        if head.status_code != 200:
            start = self.session.post(f"{self.url}/v2/{repository}/blobs/uploads/", timeout=30)
            if start.status_code != 202:
                raise PushError(f"starting a blob upload: {start.status_code} {start.text[:300]}")
            location = requests.compat.urljoin(self.url, start.headers["Location"])
            separator = "&" if "?" in location else "?"
            done = self.session.put(
                f"{location}{separator}digest={digest}",
                data=data,
                headers={"Content-Type": "application/octet-stream"},
                timeout=60,
            )
            if done.status_code != 201:
                raise PushError(f"finishing a blob upload: {done.status_code} {done.text[:300]}")
        return Blob(media_type, digest, len(data), data, dict(annotations or {}))

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        response = self.session.put(
            f"{self.url}/v2/{repository}/manifests/{reference}",
            data=body,
            headers={"Content-Type": media_type},
            timeout=30,
        )
        if response.status_code != 201:
            raise PushError(f"PUT manifest {repository}:{reference}: {response.status_code} {response.text[:500]}")
        digest = sha256(body)
        if response.headers.get("Docker-Content-Digest") != digest:
            raise PushError(f"registry stored {response.headers.get('Docker-Content-Digest')}, expected {digest}")
        return digest

    def _put_all(
        self, repository: str, body: bytes, media_type: str, tags: Iterable[str]
    ) -> tuple[str, tuple[str, ...]]:
        # by digest first: an untagged push is exactly what `tags=()` gives, and tags are added after
        digest = self.put_manifest(repository, sha256(body), body, media_type)
        tags = tuple(tags)
        for tag in tags:
            self.put_manifest(repository, tag, body, media_type)
        return digest, tags

    def tag(self, pushed: Pushed, tag: str) -> None:
        """Point another tag at something already pushed (same bytes, same digest)."""
        self.put_manifest(pushed.repository, tag, pushed.manifest, pushed.media_type)

    # --- images ----------------------------------------------------------------------------------------

    def push_image(
        self,
        repository: str,
        tag: str | Iterable[str] | None = None,
        *,
        platform: str = "linux/amd64",
        revision: str | None = None,
        labels: Mapping[str, str] | None = None,
        files: Mapping[str, bytes] | None = None,
        base_files: Mapping[str, bytes] | None = None,
        style: Style = "oci",
        created: str | None = None,
    ) -> PushedImage:
        """A single-platform image; `tag=None` pushes it untagged (an orphan, by digest only).

        Its top layer holds `files` (default: a unique /charon-test file, so every push is a new image);
        `base_files` adds a layer below it, shared with every image that uses the same base files.
        """
        types = _TYPES[style]
        all_labels = dict(labels or {})
        if revision is not None:
            all_labels[REVISION_LABEL] = revision
        layer_files = [files if files is not None else {"charon-test": f"{uuid.uuid4()}\n".encode()}]
        if base_files is not None:
            layer_files.insert(0, base_files)
        layers: list[Blob] = []
        diff_ids: list[str] = []
        for content in layer_files:
            blob, diff_id = make_layer(content)
            layers.append(self.push_blob(repository, blob, types["layer"]))
            diff_ids.append(diff_id)
        os_name, architecture, *variant = platform.split("/")
        config_doc: dict[str, Any] = {
            "architecture": architecture,
            "os": os_name,
            "created": created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "config": {"Labels": all_labels, "Cmd": ["/charon-test"], "Env": ["PATH=/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": f"charon-ci test factory, layer {i}"} for i in range(len(diff_ids))],
        }
        if variant:
            config_doc["variant"] = variant[0]
        config = self.push_blob(repository, canonical_json(config_doc), types["config"])
        body = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": types["manifest"],
                "config": config.descriptor(),
                "layers": [layer.descriptor() for layer in layers],
            }
        )
        digest, tags = self._put_all(repository, body, types["manifest"], _tags(tag))
        return PushedImage(
            self.host,
            repository,
            digest,
            len(body),
            types["manifest"],
            body,
            config,
            tuple(layers),
            platform,
            tags,
            all_labels,
        )

    def push_index(
        self,
        repository: str,
        tag: str | Iterable[str] | None = None,
        *,
        platforms: Iterable[str] = ("linux/amd64", "linux/arm64"),
        revision: str | None = None,
        labels: Mapping[str, str] | None = None,
        base_files: Mapping[str, bytes] | None = None,
        attestations: bool = False,
        style: Style = "oci",
        children: Iterable[PushedImage] | None = None,
    ) -> PushedIndex:
        """A multi-platform index, each platform its own config and layer (plus `base_files`, shared).

        `attestations=True` adds, per platform, a buildx-style attestation manifest (in-toto layers,
        platform unknown/unknown, annotated with the digest of the image it attests). `children` reuses
        images already pushed instead of making new ones (indexes that share children).
        """
        types = _TYPES[style]
        if children is None:
            images = tuple(
                self.push_image(
                    repository, None, platform=p, revision=revision, labels=labels, base_files=base_files, style=style
                )
                for p in platforms
            )
        else:
            images = tuple(children)
        proofs = tuple(self._push_attestation(repository, image) for image in images) if attestations else ()
        entries: list[dict[str, Any]] = []
        for image in images:
            assert image.platform is not None
            os_name, architecture, *variant = image.platform.split("/")
            platform: dict[str, str] = {"architecture": architecture, "os": os_name}
            if variant:
                platform["variant"] = variant[0]
            entries.append(image.descriptor(platform=platform))
        for image, proof in zip(images, proofs, strict=False):  # no proofs without attestations
            entries.append(
                proof.descriptor(
                    platform={"architecture": "unknown", "os": "unknown"},
                    annotations={
                        "vnd.docker.reference.digest": image.digest,
                        "vnd.docker.reference.type": "attestation-manifest",
                    },
                )
            )
        body = canonical_json({"schemaVersion": 2, "mediaType": types["index"], "manifests": entries})
        digest, tags = self._put_all(repository, body, types["index"], _tags(tag))
        return PushedIndex(self.host, repository, digest, len(body), types["index"], body, images, proofs, tags)

    def _push_attestation(self, repository: str, image: PushedImage) -> PushedImage:
        """What buildx pushes for `--provenance`/`--sbom`: an OCI manifest of in-toto statements."""
        statements = []
        for predicate_type in ("https://slsa.dev/provenance/v0.2", "https://spdx.dev/Document"):
            statement = {
                "_type": "https://in-toto.io/Statement/v0.1",
                "predicateType": predicate_type,
                "subject": [{"name": image.reference, "digest": {"sha256": image.digest.split(":", 1)[1]}}],
                "predicate": {"nonce": str(uuid.uuid4())},
            }
            statements.append(
                self.push_blob(
                    repository, canonical_json(statement), IN_TOTO, {"in-toto.io/predicate-type": predicate_type}
                )
            )
        config_doc = {
            "architecture": "unknown",
            "os": "unknown",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [s.digest for s in statements]},
        }
        config = self.push_blob(repository, canonical_json(config_doc), OCI_CONFIG)
        body = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config.descriptor(),
                "layers": [s.descriptor() for s in statements],
            }
        )
        digest, _ = self._put_all(repository, body, OCI_MANIFEST, ())
        return PushedImage(
            self.host, repository, digest, len(body), OCI_MANIFEST, body, config, tuple(statements), "unknown/unknown"
        )

    # --- referrers and signatures ----------------------------------------------------------------------

    def push_referrer(
        self,
        repository: str,
        subject: Pushed,
        *,
        artifact_type: str = "application/vnd.example.sbom.v1+json",
        payload: bytes | None = None,
        update_referrers_tag: bool = True,
    ) -> PushedImage:
        """An OCI 1.1 artifact manifest whose `subject` is `subject`, untagged.

        The registry here (distribution 2.8) has no referrers API, so like an OCI 1.1 client we also keep
        the fallback index at tag `sha256-<hex of subject>` up to date (`update_referrers_tag`).
        """
        empty = self.push_blob(repository, EMPTY_JSON, OCI_EMPTY)
        layer = self.push_blob(repository, payload or canonical_json({"id": str(uuid.uuid4())}), artifact_type)
        body = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": artifact_type,
                "config": empty.descriptor(),
                "layers": [layer.descriptor()],
                "subject": subject.descriptor(),
                "annotations": {"org.opencontainers.image.created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
            }
        )
        digest, _ = self._put_all(repository, body, OCI_MANIFEST, ())
        referrer = PushedImage(
            self.host, repository, digest, len(body), OCI_MANIFEST, body, empty, (layer,), None,
            subject=subject.digest, artifact_type=artifact_type,
        )  # fmt: skip
        if update_referrers_tag:
            self._add_to_referrers_tag(repository, subject.digest, referrer.descriptor(artifactType=artifact_type))
        return referrer

    def _add_to_referrers_tag(self, repository: str, subject_digest: str, descriptor: dict[str, Any]) -> None:
        tag = subject_digest.replace(":", "-")
        current = self.session.get(
            f"{self.url}/v2/{repository}/manifests/{tag}", headers={"Accept": OCI_INDEX}, timeout=30
        )
        entries = current.json()["manifests"] if current.status_code == 200 else []
        entries = [e for e in entries if e["digest"] != descriptor["digest"]] + [descriptor]
        body = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
        self.put_manifest(repository, tag, body, OCI_INDEX)

    def push_cosign(self, repository: str, subject_digest: str, kind: Literal["sig", "att"] = "sig") -> PushedImage:
        """What `cosign sign` / `cosign attest` push: a manifest at tag `sha256-<hex>.sig` / `.att`."""
        tag = f"{subject_digest.replace(':', '-')}.{kind}"
        if kind == "sig":
            payload = canonical_json(
                {
                    "critical": {
                        "identity": {"docker-reference": f"{self.host}/{repository}"},
                        "image": {"docker-manifest-digest": subject_digest},
                        "type": "cosign container image signature",
                    },
                    "optional": None,
                }
            )
            annotations = {"dev.cosignproject.cosign/signature": base64.b64encode(uuid.uuid4().bytes).decode()}
            layer = self.push_blob(repository, payload, COSIGN_SIMPLESIGNING, annotations)
        else:
            envelope = {
                "payloadType": "application/vnd.in-toto+json",
                "payload": base64.b64encode(canonical_json({"subject": [{"digest": subject_digest}]})).decode(),
                "signatures": [{"sig": base64.b64encode(uuid.uuid4().bytes).decode()}],
            }
            layer = self.push_blob(
                repository, canonical_json(envelope), DSSE_ENVELOPE, {"predicateType": "https://slsa.dev/provenance/v1"}
            )
        config_doc = {
            "architecture": "",
            "os": "",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
        }
        config = self.push_blob(repository, canonical_json(config_doc), OCI_CONFIG)
        body = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config.descriptor(),
                "layers": [layer.descriptor()],
            }
        )
        digest, tags = self._put_all(repository, body, OCI_MANIFEST, [tag])
        return PushedImage(
            self.host, repository, digest, len(body), OCI_MANIFEST, body, config, (layer,), None, tags,
            subject=subject_digest,
        )  # fmt: skip


def _tags(tag: str | Iterable[str] | None) -> tuple[str, ...]:
    if tag is None:
        return ()
    if isinstance(tag, str):
        return (tag,)
    return tuple(tag)


# --- the engine side ---------------------------------------------------------------------------------------


def pull(docker_client: Any, reference: str, platform: str | None = None) -> Any:
    """Pull through the engine and return the image; errors reported inside the stream are raised."""
    if "@" in reference:
        repository, _, tag = reference.partition("@")
    elif ":" in reference.rsplit("/", 1)[-1]:
        repository, _, tag = reference.rpartition(":")
    else:  # `host:port/repo`: the colon is the port's
        repository, tag = reference, "latest"
    for event in docker_client.api.pull(repository, tag=tag, platform=platform, stream=True, decode=True):
        if isinstance(event, dict) and event.get("error"):
            raise PushError(f"pull {reference}: {event['error']}")
    return docker_client.images.get(reference)


def save_image_archive(docker_client: Any, reference: str, path: Path) -> Path:
    """Write a pulled image as a docker-archive tar (what `docker save` gives), like a CI artifact."""
    # by name, not `Image.save(named=True)`: that names the archive after the image's first tag, which may
    # be another of its tags
    with path.open("wb") as out:
        for chunk in docker_client.api.get_image(reference):
            out.write(chunk)
    return path
