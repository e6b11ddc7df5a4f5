"""Where a prune run's facts come from, and where its deletions go: the I/O edge of charon_ci.prune.policy.

- GHCR package versions (list, delete) through the GitHub REST client, for an organization or a user;
- in-use facts: the repository's open pull requests and its queued / in-progress workflow runs;
- manifests read from the registry, turned into `ManifestFacts` for the reachability graph;
- Docker Hub: log in, list tags (grouped by digest into versions), delete a tag once it is read unchanged.

Every GitHub refusal is returned as a `DeleteResult`, never raised: the executor decides what it means.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urljoin, urlsplit

from charon_ci import gha, github, oci, registry
from charon_ci.prune.listing import parse_versions
from charon_ci.prune.model import InUse, PackageVersion, shown
from charon_ci.prune.reachability import ChildRef, ManifestFacts

# Workflow-run states in which a run may still pull an image (everything before `completed`).
ACTIVE_RUN_STATES = ("in_progress", "queued", "waiting", "requested", "pending")


# --------------------------------------------------------------------------------------------- GitHub


# "changed": not deleted because it changed since the plan was made (a Hub tag pushed again).
DeleteStatus = Literal["deleted", "gone", "refused", "changed", "forbidden", "rate-limited", "error"]


@dataclass(frozen=True)
class DeleteResult:
    status: DeleteStatus
    detail: str = ""
    http_status: int | None = None


# What a token without admin rights on a package needs, named when GHCR refuses it (with a 404).
ADMIN_NEEDED = (
    "the token needs admin rights on the package: for GITHUB_TOKEN, give this repository the Admin role under "
    "the package's Package settings > Manage Actions access (and `packages: write` in the workflow); for a "
    "personal access token, `delete:packages` and admin on the package"
)
PAGE_SIZE = 100
MAX_PAGES = 10_000


@dataclass(frozen=True)
class _CachedPage:
    etag: str
    items: list[Any]
    next_url: str | None


@dataclass
class GhcrPackage:
    """One container package's versions endpoint. `scope` is `orgs/OWNER`, `users/OWNER` or `user`.

    Listing sends each page's last ETag (`If-None-Match`): a page that did not change answers 304, which
    GitHub does not charge to the rate budget, so looking again at a package costs little when little changed.
    """

    client: github.GithubClient
    owner: str
    name: str
    scope: str = ""
    list_requests: int = 0
    unchanged_pages: int = 0  # list requests answered 304 (not charged)
    read_requests: int = 0  # single-version reads
    delete_requests: int = 0
    _pages: dict[str, _CachedPage] = field(default_factory=dict, repr=False)

    @property
    def versions_path(self) -> str:
        # Package names may contain `/`: it is sent URL-encoded (GitHub's documented form).
        return f"/{self.scope}/packages/container/{quote(self.name, safe='')}/versions"

    def detect_scope(self, owner_type: str | None) -> None:
        """`Organization` / `User` from the event payload when known; else the first list request decides."""
        if owner_type == "Organization":
            self.scope = f"orgs/{self.owner}"
        elif owner_type == "User":
            self.scope = f"users/{self.owner}"

    def list_versions(self) -> list[PackageVersion]:
        """Every active version, all pages (100 a page, `Link: next` followed), in no particular order."""
        scopes = [self.scope] if self.scope else [f"orgs/{self.owner}", f"users/{self.owner}"]
        for position, scope in enumerate(scopes):
            self.scope = scope
            try:
                items = self._all_items()
            except github.NotFound:
                if position + 1 < len(scopes):
                    continue  # not an organization: try the user's packages
                raise github.GithubError(
                    404,
                    f"package '{self.name}' of '{self.owner}' not found (or the token may not see it)",
                    None,
                    "GET",
                    self.versions_path,
                ) from None
            try:
                return parse_versions(items, "GitHub's package versions")
            except ValueError as exc:
                raise github.UnexpectedResponse(None, str(exc), None, "GET", self.versions_path) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _all_items(self) -> list[Any]:
        first = self.client.url_for(self.versions_path)
        url: str | None = first
        items: list[Any] = []
        pages = 0
        while url is not None:
            pages += 1
            if pages > MAX_PAGES:
                raise github.UnexpectedResponse(None, "the versions list does not end", None, "GET", self.versions_path)
            cached = self._pages.get(url)
            self.list_requests += 1
            response = self.client.request(
                "GET",
                url,
                params={"per_page": PAGE_SIZE} if url == first else None,
                headers={"If-None-Match": cached.etag} if cached is not None else None,
                allow_statuses=(304,),
            )
            if response.status == 304 and cached is not None:
                self.unchanged_pages += 1
                page_items, next_url = cached.items, cached.next_url
                if next_url is None and len(page_items) >= PAGE_SIZE:
                    # The last page, full and unchanged: whether a page follows now is only in a fresh Link.
                    self._pages.pop(url, None)
                    pages -= 1
                    continue
            else:
                body = response.json()
                if not isinstance(body, list):
                    raise github.UnexpectedResponse(
                        response.status, "expected a JSON list of package versions", None, "GET", self.versions_path
                    )
                page_items, next_url = body, response.next_url
                etag = response.headers.get("etag")
                if etag:
                    self._pages[url] = _CachedPage(etag, body, next_url)
            items.extend(page_items)
            url = next_url
        return items

    def read_version(self, version_id: int) -> PackageVersion | None:
        """The version as GitHub shows it now; None when it no longer exists."""
        self.read_requests += 1
        response = self.client.request("GET", f"{self.versions_path}/{version_id}", allow_statuses=(404,))
        if response.status == 404:
            return None
        body = response.json()
        if isinstance(body, dict) and body.get("deleted_at"):
            return None  # deleted, still readable while it can be restored
        try:
            [version] = parse_versions([body], "GitHub's package version")
        except ValueError as exc:
            raise github.UnexpectedResponse(None, str(exc), None, "GET", self.versions_path) from None
        if version.id != version_id:
            raise github.UnexpectedResponse(None, f"asked for version {version_id}, got {version.id}", None, "GET",
                                            self.versions_path)  # fmt: skip
        return version

    def delete_version(self, version_id: int) -> DeleteResult:
        self.delete_requests += 1
        try:
            response = self.client.delete(f"{self.versions_path}/{version_id}", allow_statuses=(404,))
        except github.RateLimited as exc:
            return DeleteResult("rate-limited", exc.message, exc.status)
        except github.BadRequest as exc:
            # "You cannot delete the last tagged version of a package", or over 5,000 downloads.
            return DeleteResult("refused", exc.message, 400)
        except (github.Forbidden, github.Unauthorized) as exc:
            return DeleteResult("forbidden", f"{exc.message}; {ADMIN_NEEDED}", exc.status)
        except github.GithubError as exc:
            return DeleteResult("error", exc.message, exc.status)
        if response.status != 404:
            return DeleteResult("deleted", "", response.status)
        # 404 means "already gone" (another run, GHCR's own cascade) or, from a token without admin rights on
        # the package, "Package not found.": only a look at the version tells them apart.
        try:
            still = self.read_version(version_id)
        except github.GithubError as exc:
            return DeleteResult("error", f"DELETE answered 404 and the version could not be read: {exc.message}", 404)
        if still is None:
            return DeleteResult("gone", "already deleted (another run, or GHCR removed it with its index)", 404)
        return DeleteResult("forbidden", f"DELETE answered 404 but the version is still there: {ADMIN_NEEDED}", 404)


def owner_type_from_event(env: Mapping[str, str], owner: str) -> str | None:
    """`Organization` or `User` from the event payload's repository owner, when it is this owner."""
    path = env.get("GITHUB_EVENT_PATH", "")
    if not path:
        return None
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
        repo_owner = event["repository"]["owner"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(repo_owner, dict) or str(repo_owner.get("login", "")).lower() != owner.lower():
        return None
    kind = repo_owner.get("type")
    return kind if kind in ("Organization", "User") else None


@dataclass
class InUseLookup:
    client: github.GithubClient
    repository: str
    requests: int = 0
    own_run_id: int | None = None  # this prune run is in progress too, and uses no image: not counted

    def facts(self) -> InUse:
        """Open PR numbers and the head shas of runs that have not completed."""
        owner, _, name = self.repository.partition("/")
        prs: set[int] = set()
        for page in self.client.iter_pages(github.api_path("repos", owner, name, "pulls"), params={"state": "open"}):
            self.requests += 1
            prs.update(int(item["number"]) for item in page.items if isinstance(item, dict) and "number" in item)
        shas: set[str] = set()
        runs = 0
        for state in ACTIVE_RUN_STATES:
            path = github.api_path("repos", owner, name, "actions", "runs")
            for page in self.client.iter_pages(path, params={"status": state}, items_key="workflow_runs"):
                self.requests += 1
                for run in page.items:
                    if not isinstance(run, dict) or (self.own_run_id is not None and run.get("id") == self.own_run_id):
                        continue
                    if run.get("status") != "completed":
                        runs += 1
                        if isinstance(run.get("head_sha"), str):
                            shas.add(run["head_sha"].lower())
        return InUse(frozenset(prs), frozenset(shas), runs)


# --------------------------------------------------------------------------------------------- registry


def manifest_facts(manifest: oci.Manifest) -> ManifestFacts:
    """What reachability and size accounting need from one manifest."""
    subject = manifest.subject.digest if manifest.subject is not None else None
    if isinstance(manifest, oci.ImageIndex):
        children = tuple(
            ChildRef(
                entry.digest,
                may_have_children=entry.media_type not in oci.IMAGE_MANIFEST_TYPES,
                # A platform image or a buildx attestation belongs to this index; any other entry (a
                # referrers index lists artifacts) may carry a subject of its own and must be read.
                platform=entry.is_attestation or (entry.platform is not None and not entry.platform.is_unknown),
            )
            for entry in manifest.manifests
        )
        return ManifestFacts(manifest.digest, children, subject, is_index=True)
    blobs = tuple((blob.digest, blob.size) for blob in manifest.blobs)
    return ManifestFacts(manifest.digest, (), subject, blobs)


@dataclass
class ManifestSource:
    """Reads manifests by digest from one repository; each failure becomes a reason, not an exception."""

    client: registry.RegistryClient
    repository: str
    reads: int = 0
    read_log: list[str] = field(default_factory=list)

    def read(self, digests: Sequence[str]) -> tuple[list[ManifestFacts], dict[str, str]]:
        facts: list[ManifestFacts] = []
        failed: dict[str, str] = {}
        for digest in digests:
            self.reads += 1
            self.read_log.append(digest)
            try:
                facts.append(manifest_facts(self.client.get_manifest(self.repository, digest)))
            except registry.NotFound:
                failed[digest] = "manifest unknown to the registry"
            except registry.RegistryError as exc:
                failed[digest] = f"{type(exc).__name__}: {exc}"[:200]
            except ValueError as exc:
                failed[digest] = f"not readable: {exc}"[:200]
        return facts, failed


def blob_sizes(facts: Iterable[ManifestFacts]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for item in facts:
        sizes.update(item.blobs)
    return sizes


def bytes_freed(deleted: Iterable[ManifestFacts], kept: Iterable[ManifestFacts]) -> int:
    """Bytes of blobs the deleted image manifests use and no kept one does (each blob once)."""
    still_used = {digest for item in kept for digest, _ in item.blobs}
    gone = blob_sizes(deleted)
    return sum(size for digest, size in gone.items() if digest not in still_used)


# --------------------------------------------------------------------------------------------- Docker Hub


class HubError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


HUB_MAX_RETRY_AFTER = 60.0  # seconds: a longer `retry-after` is waited this long, then retried
HUB_MAX_REDIRECTS = 3


@dataclass(frozen=True)
class HubTag:
    """One tag as Hub lists it: the digest it points at and when it was last pushed."""

    name: str
    digest: str
    pushed: datetime


@dataclass
class DockerHub:
    """The Docker Hub API (not the registry API): login, tags of a repository, read and delete a tag.

    Hub deletes tags, not digests: a digest goes away (from the Hub's point of view) once no tag points at
    it, and Hub itself decides when the untagged manifests and layers are collected. Multi-arch images are
    one tag on an index, so deleting the tag removes the whole image, never one platform of it.

    Credentials go to `api_url`'s origin only: the password only to its login (never re-posted by a
    redirect), the token only with requests to the same scheme, host and port (pagination links and
    redirects elsewhere are refused), and never any `~/.netrc` credentials.
    """

    namespace: str
    repository: str
    api_url: str = "https://hub.docker.com"
    session: Any = None
    timeout: float = 30.0
    retries: int = 3
    sleep: Callable[[float], None] | None = None
    token: str | None = None
    requests: int = 0
    tags_by_digest: dict[str, list[str]] = field(default_factory=dict)
    listed: dict[str, HubTag] = field(default_factory=dict)  # tag name -> as listed

    def __post_init__(self) -> None:
        parts = urlsplit(self.api_url)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError("Docker Hub API URL must be http(s)")
        if self.session is None:
            import requests

            self.session = requests.Session()

    @property
    def _tags_path(self) -> str:
        return f"/v2/namespaces/{quote(self.namespace, safe='')}/repositories/{quote(self.repository, safe='')}/tags"

    def _send(self, method: str, path: str, *, follow_redirects: bool = True, **kwargs: Any) -> Any:
        import time

        import requests

        headers = dict(kwargs.pop("headers", {}) or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        url = path if path.startswith(("http://", "https://")) else self.api_url.rstrip("/") + path
        if not registry.same_origin(url, self.api_url):
            raise HubError("Docker Hub pagination link leads to another scheme or host; not followed")
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._follow(method, url, headers, follow_redirects, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt > self.retries:
                    raise HubError(f"{method} {urlsplit(url).path}: {type(exc).__name__}") from None
                (self.sleep or time.sleep)(min(2.0**attempt, 30.0))
                continue
            if response.status_code in (429, 500, 502, 503, 504) and attempt <= self.retries:
                (self.sleep or time.sleep)(_retry_delay(response.headers.get("retry-after", ""), attempt))
                continue
            return response

    def _follow(self, method: str, url: str, headers: Mapping[str, str], follow: bool, **kwargs: Any) -> Any:
        """Redirects by hand: only a GET, only to the same origin; a login is never re-posted anywhere."""
        for _ in range(HUB_MAX_REDIRECTS + 1):
            self.requests += 1
            response = self.session.request(
                method,
                url,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
                auth=registry.NO_NETRC,
                **kwargs,
            )
            location = response.headers.get("location")
            if response.status_code not in registry.REDIRECT_STATUSES or not location:
                return response
            response.close()
            target = urljoin(url, location)
            if not follow or method != "GET" or not registry.same_origin(target, self.api_url):
                raise HubError(
                    f"{method} {urlsplit(url).path} answered a redirect (HTTP {response.status_code}); not followed",
                    response.status_code,
                )
            url = target
        raise HubError(f"{method} {urlsplit(url).path}: more than {HUB_MAX_REDIRECTS} redirects")

    @staticmethod
    def _json(response: Any, what: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise HubError(f"{what}: the answer is not a JSON object", response.status_code)
        return body

    def login(self, username: str, password: str) -> None:
        response = self._send(
            "POST", "/v2/users/login", follow_redirects=False, json={"username": username, "password": password}
        )
        if response.status_code != 200:
            raise HubError(f"Docker Hub login failed (HTTP {response.status_code})", response.status_code)
        token = self._json(response, "Docker Hub login").get("token")
        if not isinstance(token, str) or not token:
            raise HubError("Docker Hub login answered without a token")
        gha.set_secret(token)
        self.token = token

    def list_versions(self) -> list[PackageVersion]:
        """Tags grouped by digest: one version per digest, created = the newest push of any of its tags
        (Hub keeps no creation time per digest; a re-pushed tag counts as new, which only ever keeps more)."""
        path: str | None = f"{self._tags_path}?page_size=100"
        pushed: dict[str, datetime] = {}
        ids: dict[str, int] = {}
        tags: dict[str, list[str]] = {}
        pages = 0
        while path is not None:
            pages += 1
            if pages > 10_000:
                raise HubError("Docker Hub tag pagination does not end")
            response = self._send("GET", path)
            if response.status_code != 200:
                raise HubError(f"listing Docker Hub tags failed (HTTP {response.status_code})", response.status_code)
            body = self._json(response, "listing Docker Hub tags")
            results = body.get("results") or []
            for item in results if isinstance(results, list) else []:
                listed = _hub_tag(item)
                if listed is None:
                    continue  # a tag without a digest (still being pushed) is left alone
                self.listed[listed.name] = listed
                tags.setdefault(listed.digest, []).append(listed.name)
                pushed[listed.digest] = max(pushed.get(listed.digest, listed.pushed), listed.pushed)
                tag_id = item.get("id")
                ids.setdefault(listed.digest, tag_id if type(tag_id) is int and 0 < tag_id < 2**63 else 0)
            next_link = body.get("next")
            path = next_link if isinstance(next_link, str) and next_link else None
        self.tags_by_digest = {digest: sorted(names) for digest, names in tags.items()}
        return [
            PackageVersion(ids[digest] or -index, digest, tuple(self.tags_by_digest[digest]), pushed[digest])
            for index, digest in enumerate(sorted(tags), start=1)
        ]

    def read_tag(self, tag: str) -> HubTag | None:
        """The tag as it is now (None: it no longer exists)."""
        response = self._send("GET", f"{self._tags_path}/{quote(tag, safe='')}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise HubError(f"reading Docker Hub tag failed (HTTP {response.status_code})", response.status_code)
        current = _hub_tag(self._json(response, "reading a Docker Hub tag"))
        if current is None or current.name != tag:
            raise HubError("reading a Docker Hub tag: the answer names no digest for it")
        return current

    def delete_tag(self, tag: str) -> DeleteResult:
        try:
            response = self._send("DELETE", f"{self._tags_path}/{quote(tag, safe='')}")
        except HubError as exc:
            return DeleteResult("error", str(exc))
        if response.status_code in (200, 202, 204):
            return DeleteResult("deleted", "", response.status_code)
        if response.status_code == 404:
            return DeleteResult("gone", "tag already deleted", 404)
        if response.status_code in (401, 403):
            return DeleteResult("forbidden", "the Docker Hub token may not delete tags", response.status_code)
        if response.status_code == 429:
            return DeleteResult("rate-limited", "Docker Hub rate limit", 429)
        return DeleteResult("error", f"HTTP {response.status_code}", response.status_code)

    def delete_tag_if_unchanged(self, tag: str, digest: str) -> DeleteResult:
        """Read the tag, then delete it only if it still points at `digest` and was not pushed again since
        the listing: Hub deletes by name, so a tag re-pushed meanwhile would take the new image with it.
        (Hub offers no conditional delete: the read comes immediately before the DELETE.)"""
        try:
            current = self.read_tag(tag)
        except HubError as exc:
            return DeleteResult("error", f"could not check {shown(tag)} before deleting it: {exc}")
        if current is None:
            return DeleteResult("gone", "tag already deleted", 404)
        before = self.listed.get(tag)
        if current.digest != digest:
            return DeleteResult("changed", f"{shown(tag)} now points at {current.digest[:19]} (pushed during the run)")
        if before is not None and current.pushed > before.pushed:
            return DeleteResult("changed", f"{shown(tag)} was pushed again during the run")
        return self.delete_tag(tag)


def _retry_delay(header: str, attempt: int) -> float:
    """`retry-after` seconds, capped (a server must not park the run for a day); else exponential."""
    if header.isascii() and header.isdigit():
        return min(float(int(header)), HUB_MAX_RETRY_AFTER)
    return min(2.0**attempt, 30.0)


def _hub_tag(item: Any) -> HubTag | None:
    if not isinstance(item, dict):
        return None
    name, digest = item.get("name"), item.get("digest")
    if not isinstance(name, str) or not isinstance(digest, str) or not oci.is_digest(digest):
        return None
    when = _hub_time(item.get("tag_last_pushed")) or _hub_time(item.get("last_updated"))
    return HubTag(name, digest, when) if when is not None else None


def _hub_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
