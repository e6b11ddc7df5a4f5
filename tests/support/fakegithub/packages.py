"""Package versions: an in-memory backend and one backed by a real distribution registry's storage.

For container packages GitHub models one version per manifest digest: `name` is the digest and
`metadata.container.tags` the tags pointing at it. The registry backend reads the registry's filesystem
storage on every call, so whatever a test pushed (tagged indexes, their untagged platform and attestation
children, orphans) shows up without registration; DELETE goes through the registry's HTTP API.
"""

from __future__ import annotations

import os
import random
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from .clock import Clock, to_epoch
from .state import Ids

Moment = float | str


@dataclass
class VersionRecord:
    id: int
    name: str
    tags: list[str] = field(default_factory=list)
    created_at: float = 0.0
    updated_at: float = 0.0
    downloads: int = 0  # GitHub refuses to delete a public version with more than 5,000
    deleted_at: float | None = None
    description: str | None = None


class VersionGone(Exception):
    """The version no longer exists in the backing store."""


def newest_first(records: list[VersionRecord]) -> list[VersionRecord]:
    return sorted(records, key=lambda record: (record.created_at, record.id), reverse=True)


@dataclass(frozen=True)
class VersionsRequest:
    """A request about to be served on a package's versions endpoints, as a hook sees it."""

    kind: Literal["list", "get", "delete"]
    number: int  # 1-based count of versions requests this package has served so far, this one included
    page: int | None = None  # list: the page asked for
    version_id: int | None = None  # get / delete: the id in the path
    login: str | None = None  # who asks


VersionsHook = Callable[[VersionsRequest], None]


@dataclass
class VersionsControls:
    """What a test can change about how one package's versions are served (GitHub promises none of the
    orders or page sizes the default gives, and other clients act between any two requests).

    - `shuffle_rows(seed)`: every list page is served in a random order (the rows of a page stay the same:
      GitHub documents no order, and observed order is by push time);
    - `page_cap`: serve at most this many rows a page whatever `per_page` asks (to put a given version at
      a page boundary without pushing hundreds of images);
    - `admins`: when set, only these logins may delete; anyone else gets 404 "Package not found." on DELETE
      (what GHCR answers a token without admin rights on the package), while reads still work;
    - `on_request(hook)`: `hook(VersionsRequest)` runs before each list / get / delete is served, under the
      fake's state lock, so it can push, re-tag or delete in between two requests of the client under test.
    """

    shuffle: random.Random | None = None
    page_cap: int | None = None
    admins: set[str] | None = None
    hooks: list[VersionsHook] = field(default_factory=list)
    served: int = 0

    def shuffle_rows(self, seed: int = 0) -> None:
        self.shuffle = random.Random(seed)  # noqa: S311 - a reproducible order, not a secret

    def on_request(self, hook: VersionsHook) -> VersionsHook:
        self.hooks.append(hook)
        return hook

    def before(self, kind: Literal["list", "get", "delete"], *, page: int | None = None,
               version_id: int | None = None, login: str | None = None) -> None:
        self.served += 1
        seen = VersionsRequest(kind, self.served, page, version_id, login)
        for hook in list(self.hooks):
            hook(seen)

    def may_delete(self, login: str | None) -> bool:
        return self.admins is None or login in self.admins


class PackageBackend(Protocol):
    controls: VersionsControls

    def versions(self) -> list[VersionRecord]: ...
    def deleted(self) -> list[VersionRecord]: ...
    def delete(self, record: VersionRecord) -> None: ...
    def set_version(self, name: str, *, created_at: Moment | None = None, updated_at: Moment | None = None,
                    downloads: int | None = None) -> VersionRecord: ...


class MemoryBackend:
    """Versions a test adds by hand (any package type), e.g. 1,234 of them for pagination tests."""

    def __init__(self, ids: Ids, clock: Clock) -> None:
        self._ids = ids
        self._clock = clock
        self._active: dict[int, VersionRecord] = {}
        self._deleted: dict[int, VersionRecord] = {}
        self.controls = VersionsControls()

    def add_version(self, name: str, tags: list[str] | tuple[str, ...] = (), *, created_at: Moment | None = None,
                    updated_at: Moment | None = None, downloads: int = 0) -> VersionRecord:
        created = self._clock.now() if created_at is None else to_epoch(created_at)
        record = VersionRecord(self._ids.next("version"), name, list(tags), created,
                               created if updated_at is None else to_epoch(updated_at), downloads)
        self._active[record.id] = record
        return record

    def versions(self) -> list[VersionRecord]:
        return newest_first(list(self._active.values()))

    def deleted(self) -> list[VersionRecord]:
        return newest_first(list(self._deleted.values()))

    def delete(self, record: VersionRecord) -> None:
        if self._active.pop(record.id, None) is None:
            raise VersionGone(record.name)
        record.deleted_at = self._clock.now()
        self._deleted[record.id] = record

    def set_version(self, name: str, *, created_at: Moment | None = None, updated_at: Moment | None = None,
                    downloads: int | None = None) -> VersionRecord:
        for record in self._active.values():
            if record.name == name or str(record.id) == name:
                _apply(record, created_at, updated_at, downloads)
                return record
        raise KeyError(f"no version {name!r}")


def _apply(record: VersionRecord, created_at: Moment | None, updated_at: Moment | None, downloads: int | None) -> None:
    if created_at is not None:
        record.created_at = to_epoch(created_at)
    if updated_at is not None:
        record.updated_at = to_epoch(updated_at)
    if downloads is not None:
        record.downloads = downloads


@dataclass
class _DigestMeta:
    id: int
    created_at: float
    updated_at: float
    downloads: int = 0


class RegistryBackend:
    """Versions = manifest revisions of one repository in a distribution (2.8) registry."""

    def __init__(self, ids: Ids, clock: Clock, registry_url: str, repository: str, storage_dir: Path | str) -> None:
        self._ids = ids
        self._clock = clock
        self.registry_url = registry_url.rstrip("/")
        if "://" not in self.registry_url:
            self.registry_url = "http://" + self.registry_url
        self.repository = repository
        self.storage_dir = Path(storage_dir)
        self._meta: dict[str, _DigestMeta] = {}  # stable per digest, survives deletion
        self._deleted: dict[str, VersionRecord] = {}
        self.controls = VersionsControls()

    @property
    def _manifests(self) -> Path:
        return self.storage_dir / "docker" / "registry" / "v2" / "repositories" / self.repository / "_manifests"

    def scan(self) -> dict[str, list[str]]:
        """digest -> tags, read from the registry's storage (revisions whose link file still exists)."""
        found: dict[str, list[str]] = {}
        revisions = self._manifests / "revisions"
        if revisions.is_dir():
            for algorithm in sorted(os.listdir(revisions)):
                for hex_digest in sorted(os.listdir(revisions / algorithm)):
                    link = revisions / algorithm / hex_digest / "link"
                    if link.is_file():
                        found[link.read_text().strip()] = []
        tags_dir = self._manifests / "tags"
        if tags_dir.is_dir():
            for tag in sorted(os.listdir(tags_dir)):
                current = tags_dir / tag / "current" / "link"
                if current.is_file():
                    digest = current.read_text().strip()
                    if digest in found:
                        found[digest].append(tag)
        return found

    def _meta_for(self, digest: str) -> _DigestMeta:
        meta = self._meta.get(digest)
        if meta is None:
            now = self._clock.now()  # first seen
            meta = _DigestMeta(self._ids.next("version"), now, now)
            self._meta[digest] = meta
        return meta

    def versions(self) -> list[VersionRecord]:
        records = []
        for digest, tags in self.scan().items():
            meta = self._meta_for(digest)
            self._deleted.pop(digest, None)  # pushed again
            records.append(VersionRecord(meta.id, digest, tags, meta.created_at, meta.updated_at, meta.downloads))
        return newest_first(records)

    def deleted(self) -> list[VersionRecord]:
        return newest_first(list(self._deleted.values()))

    def version_id(self, digest: str) -> int:
        """The package version id GitHub would show for this digest (assigned on first sight)."""
        return self._meta_for(digest).id

    def set_version(self, name: str, *, created_at: Moment | None = None, updated_at: Moment | None = None,
                    downloads: int | None = None) -> VersionRecord:
        meta = self._meta_for(name)
        if created_at is not None:
            meta.created_at = to_epoch(created_at)
            if updated_at is None and meta.updated_at < meta.created_at:
                meta.updated_at = meta.created_at
        if updated_at is not None:
            meta.updated_at = to_epoch(updated_at)
        if downloads is not None:
            meta.downloads = downloads
        return VersionRecord(meta.id, name, self.scan().get(name, []), meta.created_at, meta.updated_at,
                             meta.downloads)

    def delete(self, record: VersionRecord) -> None:
        request = urllib.request.Request(
            f"{self.registry_url}/v2/{self.repository}/manifests/{record.name}", method="DELETE",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise VersionGone(record.name) from exc
            raise RuntimeError(f"registry DELETE {record.name} answered {exc.code}: {exc.read()[:300]!r}") from exc
        if status != 202:
            raise RuntimeError(f"registry DELETE {record.name} answered {status}")
        record.deleted_at = self._clock.now()
        self._deleted[record.name] = record
