"""OCI distribution client: read manifests and tags, find referrers, measure sizes, delete manifests.

The I/O edge for registries (ghcr.io, Docker Hub, a loopback `docker-registry`). Parsing lives in
`charon_ci.oci`. Authentication follows the registry's own `WWW-Authenticate` challenge: anonymous, basic,
or a bearer token fetched from the realm it names (with basic credentials when we have them), cached per
scope. Credentials and tokens are never put in messages or logs.
"""

from __future__ import annotations

import base64
import email.utils
import ipaddress
import json
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urljoin, urlsplit

import requests
import requests.auth

from charon_ci import oci
from charon_ci.oci import Descriptor, ImageIndex, ImageManifest, ImageSize, Manifest

DEFAULT_TIMEOUT = 30.0
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_TAG_PAGES = 10_000
MAX_INDEX_DEPTH = 4  # an index of indexes of indexes...; deeper nesting is refused, not followed forever
_TOKEN_TTL_DEFAULT = 60  # seconds; what the distribution token spec says to assume without expires_in
_TOKEN_EXPIRY_MARGIN = 10
# The longest wait a `Retry-After` hint is read as: a garbled or hostile value cannot ask for days.
MAX_RETRY_AFTER = 3600.0
# Docker Hub's API does not live at the name people write in image references.
_HOST_ALIASES = {"docker.io": "registry-1.docker.io", "index.docker.io": "registry-1.docker.io"}
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class RegistryError(Exception):
    """A request the registry refused or could not answer; `status` and `code` come from its answer.

    `retry_after`: the seconds the answer's `Retry-After` header asked the client to wait before trying again
    (429 and 503 carry it), at most MAX_RETRY_AFTER; None when it sent none or none that can be read.
    """

    def __init__(
        self, message: str, *, status: int | None = None, code: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after


class NotFound(RegistryError):
    """The repository, manifest or blob does not exist (or the token may not see it)."""


class ManifestUnknown(NotFound):
    pass


class NameUnknown(NotFound):
    """The repository does not exist."""


class Unauthorized(RegistryError):
    """401 or 403: no credentials, wrong credentials, or not allowed to do this."""


class Unsupported(RegistryError):
    """The registry does not offer this operation (ghcr.io answers 405 to a manifest DELETE)."""


class DigestMismatch(RegistryError):
    """The bytes received do not hash to the digest asked for or announced."""


class InvalidResponse(RegistryError):
    """An answer that is not what the distribution spec says it must be."""


class RateLimited(RegistryError):
    pass


class RegistryUnavailable(RegistryError):
    """Connection failures, timeouts and 5xx answers that persisted through the retries."""


@dataclass(frozen=True)
class Referrer:
    """A manifest that refers to another: found by the referrers API, the OCI referrers tag, or a cosign tag."""

    descriptor: Descriptor
    source: Literal["referrers-api", "referrers-tag", "cosign-tag"]
    tag: str | None = None


class ExplicitCredentialsOnly(requests.auth.AuthBase):
    """Pass as `auth=` on every request: an auth object stops requests from adding `~/.netrc` or `$NETRC`
    credentials, which would replace the token we set (requests' `trust_env`). Redirects must then be
    followed by hand too, since requests looks the netrc up again for each new host. The environment's
    proxies and CA bundle still apply."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


NO_NETRC = ExplicitCredentialsOnly()


def same_origin(first: str, second: str) -> bool:
    """Same scheme, host and port: where credentials meant for one may go."""
    a, b = urlsplit(first), urlsplit(second)
    return (a.scheme.lower(), a.hostname, a.port) == (b.scheme.lower(), b.hostname, b.port)


def is_loopback(host: str) -> bool:
    name = urlsplit(f"//{host}").hostname or ""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _check_repository(repository: str) -> None:
    if not oci.is_repository(repository):
        raise ValueError(f"not a repository name: {repository!r}")


def _check_reference(reference: str) -> None:
    if not (oci.is_tag(reference) or oci.is_digest(reference)):
        raise ValueError(f"not a tag or digest: {reference!r}")


def _check_digest(digest: str) -> None:
    if not oci.is_digest(digest):
        raise ValueError(f"not a digest: {digest!r}")


@dataclass
class _Token:
    header: str
    expires_at: float


class RegistryClient:
    """A client for one registry host, e.g. `RegistryClient("ghcr.io", username="x", password=token)`.

    `plain_http=None` uses http only for loopback hosts (as docker does), https otherwise.
    """

    def __init__(
        self,
        host: str,
        *,
        username: str | None = None,
        password: str | None = None,
        plain_http: bool | None = None,
        session: requests.Session | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not host or "/" in host or any(c.isspace() for c in host):
            raise ValueError(f"not a registry host: {host!r}")
        self.host = host
        api_host = _HOST_ALIASES.get(host, host)
        use_http = is_loopback(api_host) if plain_http is None else plain_http
        self.base_url = f"{'http' if use_http else 'https'}://{api_host}"
        self._netloc = urlsplit(self.base_url).netloc
        self._credentials = (username or "", password) if password else None
        self._session = session or requests.Session()
        self._timeout = timeout
        self._retries = max(0, retries)
        self._sleep = sleep
        self._clock = clock
        self._tokens: dict[str, _Token] = {}
        # our scope -> the scope the registry's challenge asked for instead (then used up front)
        self._challenge_scopes: dict[str, str] = {}
        self._bearer: Mapping[str, str] | None = None  # realm/service of the last bearer challenge
        self._basic = False  # the registry asked for basic auth once: send it up front from then on
        self._referrers_api_missing = False  # learnt from a 404: later lookups go straight to the tag schemas

    def __repr__(self) -> str:  # no credentials in reprs
        return f"RegistryClient({self.host!r}, authenticated={self._credentials is not None})"

    # --- reading manifests -----------------------------------------------------------------------------

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest or index at a tag or digest, its digest checked against the bytes received."""
        _check_repository(repository)
        _check_reference(reference)
        response = self._request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            scope=f"repository:{repository}:pull",
            headers={"Accept": oci.ACCEPT_MANIFEST},
            stream=True,
        )
        body = self._read_limited(response, oci.MAX_MANIFEST_BYTES)
        digest = self._verified_digest(body, reference, response.headers.get("Docker-Content-Digest"))
        try:
            return oci.parse_manifest(body, response.headers.get("Content-Type"), digest)
        except oci.InvalidManifest as exc:
            raise InvalidResponse(f"{self.host}/{repository}@{reference}: {exc}") from None

    def resolve(self, repository: str, reference: str) -> Descriptor:
        """Digest, media type and size of a tag or digest by HEAD (falls back to GET if no digest header)."""
        _check_repository(repository)
        _check_reference(reference)
        response = self._request(
            "HEAD",
            f"/v2/{repository}/manifests/{reference}",
            scope=f"repository:{repository}:pull",
            headers={"Accept": oci.ACCEPT_MANIFEST},
        )
        digest = response.headers.get("Docker-Content-Digest", "")
        media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip()
        length = response.headers.get("Content-Length", "")
        whole_length = length.isascii() and length.isdigit()  # `²` is a digit to isdigit, not to int()
        if not oci.is_digest(digest) or media_type not in oci.MANIFEST_TYPES or not whole_length:
            manifest = self.get_manifest(repository, reference)
            return Descriptor(manifest.media_type, manifest.digest, manifest.size)
        if oci.is_digest(reference) and digest != reference:
            raise DigestMismatch(f"{self.host}/{repository}@{reference}: registry answered with digest {digest}")
        return Descriptor(media_type, digest, int(length))

    def exists(self, repository: str, reference: str) -> bool:
        try:
            self.resolve(repository, reference)
        except NotFound:
            return False
        return True

    def children(self, repository: str, index: ImageIndex) -> list[Manifest]:
        """The manifests an index lists (platform images and attestations), in its order."""
        return [self.get_manifest(repository, child.digest) for child in index.manifests]

    def get_blob(self, repository: str, digest: str, max_bytes: int = oci.MAX_MANIFEST_BYTES) -> bytes:
        """A small blob (an image config), verified against its digest."""
        _check_repository(repository)
        _check_digest(digest)
        response = self._request(
            "GET", f"/v2/{repository}/blobs/{digest}", scope=f"repository:{repository}:pull", stream=True
        )
        body = self._read_limited(response, max_bytes)
        if not oci.digest_matches(body, digest):
            raise DigestMismatch(f"{self.host}/{repository}: blob {digest} does not match its content")
        return body

    def get_config(self, repository: str, manifest: ImageManifest) -> dict[str, object]:
        """The image config JSON (labels are under `config.Labels`)."""
        body = self.get_blob(repository, manifest.config.digest)
        try:
            document = json.loads(body)
        except ValueError:
            raise InvalidResponse(f"{self.host}/{repository}: config {manifest.config.digest} is not JSON") from None
        if not isinstance(document, dict):
            raise InvalidResponse(f"{self.host}/{repository}: config {manifest.config.digest} is not an object")
        return document

    # --- tags and referrers ----------------------------------------------------------------------------

    def iter_tags(self, repository: str, page_size: int | None = 100) -> Iterator[str]:
        """Every tag of the repository, following `Link: <...>; rel="next"` pages."""
        _check_repository(repository)
        path: str | None = f"/v2/{repository}/tags/list" + (f"?n={page_size}" if page_size else "")
        seen: set[str] = set()
        while path is not None:
            if path in seen or len(seen) >= MAX_TAG_PAGES:
                raise InvalidResponse(f"{self.host}/{repository}: tag pagination does not end")
            seen.add(path)
            response = self._request("GET", path, scope=f"repository:{repository}:pull")
            document = self._json(response, f"{repository} tags")
            tags = document.get("tags") or []
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise InvalidResponse(f"{self.host}/{repository}: tags is not a list of strings")
            yield from tags
            path = self._same_registry_path(oci.parse_link_next(response.headers.get("Link"), response.url))

    def list_tags(self, repository: str, page_size: int | None = 100) -> list[str]:
        return list(self.iter_tags(repository, page_size))

    def referrers(
        self,
        repository: str,
        digest: str,
        *,
        artifact_type: str | None = None,
        known_tags: Collection[str] | None = None,
    ) -> list[Referrer]:
        """Manifests whose subject is `digest`, plus cosign's `sha256-<hex>.sig/.att/.sbom` tags.

        Uses the referrers API when the registry has it; otherwise (404) the OCI `sha256-<hex>` referrers
        tag. cosign's tags are looked up either way. Pass `known_tags` (the repository's tag list) to look
        only at tags that exist instead of probing each candidate.
        """
        _check_repository(repository)
        _check_digest(digest)
        found: list[Referrer] = []
        api = self._referrers_api(repository, digest, artifact_type)
        if api is not None:
            found += [Referrer(d, "referrers-api") for d in api.manifests]
        else:
            tag = oci.referrers_tag(digest)
            index = self._optional_manifest(repository, tag, known_tags)
            if isinstance(index, ImageIndex):
                found += [
                    Referrer(d, "referrers-tag", tag)
                    for d in index.manifests
                    if artifact_type is None or d.artifact_type == artifact_type
                ]
        for suffix in oci.COSIGN_SUFFIXES:
            tag = oci.cosign_tag(digest, suffix)
            if known_tags is not None and tag not in known_tags:
                continue
            try:
                descriptor = self.resolve(repository, tag)
            except NotFound:
                continue
            if all(r.descriptor.digest != descriptor.digest for r in found):
                found.append(Referrer(descriptor, "cosign-tag", tag))
        return found

    def _referrers_api(self, repository: str, digest: str, artifact_type: str | None) -> ImageIndex | None:
        if self._referrers_api_missing:
            return None
        query = f"?artifactType={quote(artifact_type, safe='')}" if artifact_type else ""
        try:
            response = self._request(
                "GET",
                f"/v2/{repository}/referrers/{digest}{query}",
                scope=f"repository:{repository}:pull",
                headers={"Accept": oci.OCI_INDEX},
                stream=True,
            )
        except (NotFound, Unsupported):
            self._referrers_api_missing = True  # the spec's signal that the registry has no referrers API
            return None
        body = self._read_limited(response, oci.MAX_MANIFEST_BYTES)
        try:
            index = oci.parse_manifest(body, response.headers.get("Content-Type"))
        except oci.InvalidManifest:
            return None  # some registries answer 200 with an HTML page or an error document here
        if not isinstance(index, ImageIndex):
            return None
        if artifact_type and "artifactType" not in response.headers.get("OCI-Filters-Applied", ""):
            kept = tuple(d for d in index.manifests if d.artifact_type == artifact_type)
            index = ImageIndex(index.media_type, index.digest, index.size, kept, raw=index.raw)
        return index

    def _optional_manifest(
        self, repository: str, reference: str, known_tags: Collection[str] | None
    ) -> Manifest | None:
        if known_tags is not None and reference not in known_tags:
            return None
        try:
            return self.get_manifest(repository, reference)
        except NotFound:
            return None

    # --- sizes -----------------------------------------------------------------------------------------

    def size(self, repository: str, reference: str | Manifest, already_counted: Iterable[str] = ()) -> ImageSize:
        """Bytes of an image or index: config and layer blobs (each digest once) plus the manifests.

        An index counts every manifest it lists, attestations included, because deleting the index
        leaves them for garbage collection too. `already_counted` digests are left out of `new_bytes`.
        """
        root = self.get_manifest(repository, reference) if isinstance(reference, str) else reference
        descendants = list(self._descendants(repository, root, depth=0, seen={root.digest}))
        return oci.image_size(root, descendants, already_counted)

    def _descendants(self, repository: str, manifest: Manifest, depth: int, seen: set[str]) -> Iterator[Manifest]:
        if not isinstance(manifest, ImageIndex):
            return
        if depth >= MAX_INDEX_DEPTH:
            raise InvalidResponse(f"{self.host}/{repository}@{manifest.digest}: indexes nested too deep")
        for child in manifest.manifests:
            if child.digest in seen:
                continue
            seen.add(child.digest)
            fetched = self.get_manifest(repository, child.digest)
            yield fetched
            yield from self._descendants(repository, fetched, depth + 1, seen)

    # --- deleting --------------------------------------------------------------------------------------

    def delete_manifest(self, repository: str, digest: str) -> None:
        """Delete a manifest by digest. Raises ManifestUnknown if it is gone, Unsupported if not allowed."""
        _check_repository(repository)
        _check_digest(digest)
        path = f"/v2/{repository}/manifests/{digest}"
        response = self._request("DELETE", path, scope=f"repository:{repository}:delete")
        if response.status_code not in (200, 202, 204):
            raise InvalidResponse(f"{self.host}/{repository}@{digest}: DELETE answered {response.status_code}")

    # --- HTTP ------------------------------------------------------------------------------------------

    def _same_registry_path(self, url: str | None) -> str | None:
        """Pagination links may only lead back to this registry: credentials go nowhere else."""
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.netloc != self._netloc or not parts.path.startswith("/v2/"):
            raise InvalidResponse(f"{self.host}: pagination link leads outside the registry")
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def _request(
        self,
        method: str,
        path: str,
        *,
        scope: str,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        url = self.base_url + path
        what = f"{method} {self.host}{path.split('?', 1)[0]}"
        authorization = self._cached_authorization(scope)
        challenged = False
        while True:
            sent = dict(headers or {})
            if authorization:
                sent["Authorization"] = authorization
            response = self._send(method, url, sent, stream, what)
            if response.status_code == 401 and not challenged:
                challenged = True
                response.close()
                authorization = self._answer_challenge(response.headers.get("WWW-Authenticate", ""), scope, what)
                if authorization is not None:
                    continue
                raise Unauthorized(f"{what}: authentication required and no credentials given", status=401)
            if response.status_code < 400:
                return response
            raise self._error(response, what)

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        stream: bool,
        what: str,
        params: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """One request with retries; redirects followed by hand, credentials kept to the origin they were
        meant for (a blob redirect to object storage gets no Authorization header)."""
        attempt = 0
        while True:
            try:
                response = self._follow(method, url, headers, stream, what, params)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt >= self._retries:
                    failure = exc.__class__.__name__
                    raise RegistryUnavailable(f"{what}: {failure} after {attempt + 1} attempts") from None
                self._sleep(min(2**attempt, 30))
                attempt += 1
                continue
            if response.status_code in RETRY_STATUSES and attempt < self._retries:
                delay = self._retry_delay(response, attempt)
                response.close()
                self._sleep(delay)
                attempt += 1
                continue
            return response

    def _follow(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        stream: bool,
        what: str,
        params: Mapping[str, str] | None,
    ) -> requests.Response:
        sent = dict(headers)
        current_method, current_url, query = method, url, params
        for _ in range(MAX_REDIRECTS + 1):
            response = self._session.request(
                current_method,
                current_url,
                params=query,
                headers=sent,
                timeout=self._timeout,
                stream=stream,
                allow_redirects=False,
                auth=NO_NETRC,
            )
            location = response.headers.get("Location")
            if response.status_code not in REDIRECT_STATUSES or not location:
                return response
            response.close()
            target = urljoin(response.url, location)
            if urlsplit(target).scheme.lower() not in ("http", "https"):
                raise InvalidResponse(f"{what}: redirect to a non-http(s) URL", status=response.status_code)
            if not same_origin(target, current_url):
                sent.pop("Authorization", None)  # the token is for the registry, not where it sends us
            if response.status_code == 303 or (response.status_code in (301, 302) and current_method != "HEAD"):
                current_method = "GET"
            current_url, query = target, None
        raise InvalidResponse(f"{what}: more than {MAX_REDIRECTS} redirects")

    @staticmethod
    def _retry_delay(response: requests.Response, attempt: int) -> float:
        retry_after = response.headers.get("Retry-After", "")
        if retry_after.isascii() and retry_after.isdigit():
            return float(min(int(retry_after), 60))
        return float(min(2**attempt, 30))

    def _cached_authorization(self, scope: str) -> str | None:
        scope = self._challenge_scopes.get(scope, scope)
        token = self._tokens.get(scope)
        if token is not None and token.expires_at > self._clock():
            return token.header
        if self._bearer is not None:
            # the registry already told us where tokens come from: ask before the request, not after a 401
            return self._fetch_token(self._bearer, scope)
        if self._basic and self._credentials is not None:
            return self._basic_header()
        return None

    def _answer_challenge(self, header: str, scope: str, what: str) -> str | None:
        challenges = {c.scheme: c for c in oci.parse_www_authenticate(header)}
        if "bearer" in challenges:
            params = challenges["bearer"].params
            if not params.get("realm"):
                raise InvalidResponse(f"{what}: bearer challenge without a realm", status=401)
            self._bearer = {"realm": params["realm"], "service": params.get("service", "")}
            wanted = params.get("scope") or scope
            if wanted != scope:
                self._challenge_scopes[scope] = wanted
            # a 401 despite a token we held means the registry no longer accepts it
            self._tokens.pop(wanted, None)
            return self._fetch_token(self._bearer, wanted)
        if "basic" in challenges and self._credentials is not None:
            self._basic = True
            return self._basic_header()
        return None

    def _basic_header(self) -> str:
        user, password = self._credentials or ("", "")
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")

    def _fetch_token(self, bearer: Mapping[str, str], scope: str) -> str:
        cached = self._tokens.get(scope)
        if cached is not None and cached.expires_at > self._clock():
            return cached.header
        realm = bearer["realm"]
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidResponse(f"{self.host}: token realm is not an http(s) URL")
        headers: dict[str, str] = {}
        if self._credentials is not None:
            if parts.scheme != "https" and not is_loopback(parts.netloc):
                raise InvalidResponse(f"{self.host}: refusing to send credentials to a plain-http token realm")
            headers["Authorization"] = self._basic_header()
        params = {"scope": scope}
        if bearer.get("service"):
            params["service"] = bearer["service"]
        what = f"GET token for {scope}"
        response = self._send("GET", realm, headers, False, what, params)
        if response.status_code in (401, 403):
            raise Unauthorized(f"{what}: the token service refused the credentials", status=response.status_code)
        if response.status_code >= 400:
            raise self._error(response, what)
        document = self._json(response, "token")
        token = document.get("token") or document.get("access_token")
        if not isinstance(token, str) or not token:
            raise InvalidResponse(f"{what}: no token in the answer")
        expires_in = document.get("expires_in")
        ttl = expires_in if isinstance(expires_in, int) and expires_in > 0 else _TOKEN_TTL_DEFAULT
        header = f"Bearer {token}"
        self._tokens[scope] = _Token(header, self._clock() + max(ttl - _TOKEN_EXPIRY_MARGIN, 1))
        return header

    def _read_limited(self, response: requests.Response, limit: int) -> bytes:
        chunks: list[bytes] = []
        total = 0
        try:
            for chunk in response.iter_content(64 * 1024):
                total += len(chunk)
                if total > limit:
                    raise InvalidResponse(f"{self.host}: answer larger than {limit} bytes")
                chunks.append(chunk)
        except requests.RequestException as exc:
            raise RegistryUnavailable(f"{self.host}: reading the answer failed: {exc.__class__.__name__}") from None
        finally:
            response.close()
        return b"".join(chunks)

    def _verified_digest(self, body: bytes, reference: str, announced: str | None) -> str:
        if oci.is_digest(reference):
            if not oci.digest_matches(body, reference):
                raise DigestMismatch(f"{self.host}: manifest {reference} does not match its content")
            return reference
        if announced:
            if not oci.digest_matches(body, announced):
                raise DigestMismatch(f"{self.host}: Docker-Content-Digest {announced} does not match the manifest")
            return announced
        return oci.digest_of(body)

    def _json(self, response: requests.Response, what: str) -> dict[str, object]:
        try:
            document = response.json()
        except ValueError:
            raise InvalidResponse(f"{self.host}: {what} answer is not JSON", status=response.status_code) from None
        if not isinstance(document, dict):
            raise InvalidResponse(f"{self.host}: {what} answer is not a JSON object", status=response.status_code)
        return document

    @staticmethod
    def _error(response: requests.Response, what: str) -> RegistryError:
        status = response.status_code
        hint = retry_after_seconds(response.headers.get("Retry-After"))
        code: str | None = None
        detail = ""
        try:
            errors = response.json().get("errors")
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                code = str(errors[0].get("code") or "") or None
                detail = str(errors[0].get("message") or "")[:200]
        except (ValueError, AttributeError):
            pass
        finally:
            response.close()
        message = f"{what}: {status}" + (f" {code}" if code else "") + (f" ({detail})" if detail else "")
        if code == "MANIFEST_UNKNOWN" or (status == 404 and "/manifests/" in what and code is None):
            return ManifestUnknown(message, status=status, code=code, retry_after=hint)
        if code == "NAME_UNKNOWN":
            return NameUnknown(message, status=status, code=code, retry_after=hint)
        if status == 404:
            return NotFound(message, status=status, code=code, retry_after=hint)
        if status in (401, 403) or code in ("UNAUTHORIZED", "DENIED"):
            return Unauthorized(message, status=status, code=code, retry_after=hint)
        if status == 405 or code == "UNSUPPORTED":
            return Unsupported(message, status=status, code=code, retry_after=hint)
        if status == 429 or code == "TOOMANYREQUESTS":
            return RateLimited(message, status=status, code=code, retry_after=hint)
        if status >= 500:
            return RegistryUnavailable(message, status=status, code=code, retry_after=hint)
        return RegistryError(message, status=status, code=code, retry_after=hint)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """The wait a `Retry-After` header asks for, in seconds: delta-seconds or an HTTP date (RFC 9110 10.2.3),
    at most MAX_RETRY_AFTER, never negative; None when the header is absent or unreadable."""
    text = (value or "").strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return min(float(text), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT; one without a zone is not one
        return None
    seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


def parse_image_reference(reference: str, default_registry: str = "docker.io") -> tuple[str, str, str]:
    """Split `host/repo:tag` or `host/repo@sha256:...` into (host, repository, tag-or-digest).

    Follows docker's rule: the first path part is a host if it has a `.` or `:` or is `localhost`.
    """
    text = reference.strip()
    digest: str | None = None
    if "@" in text:
        text, digest = text.split("@", 1)
        _check_digest(digest)
    first, _, rest = text.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, path = first, rest
    else:
        host, path = default_registry, text
    tag = "latest"
    if ":" in path.rsplit("/", 1)[-1]:
        path, tag = path.rsplit(":", 1)
        if not oci.is_tag(tag):
            raise ValueError(f"not a tag: {tag!r}")
    if host in ("docker.io", "index.docker.io") and "/" not in path:
        path = f"library/{path}"
    _check_repository(path)
    return host, path, digest or tag
