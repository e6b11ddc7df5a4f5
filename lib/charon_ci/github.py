"""GitHub REST client shared by every charon-ci action.

One `requests.Session` per client. What it adds over plain `requests`:
- retries with exponential backoff and full jitter on 5xx, connection failures, 429 and rate-limit 403s,
  honouring `retry-after` and `x-ratelimit-reset` (GitHub's "best practices for using the REST API");
  other 4xx are never retried, and POST/PATCH are not repeated once the server may have acted on them;
- a visible rate-limit budget (`rate_limit`, `can_spend`, `reserve`) and request counters;
- `Link: rel="next"` pagination for both bare arrays and `{"total_count", "<key>": [...]}` bodies;
- redirects followed by hand so the token only ever goes to the API's own origin (artifact zips answer 302
  to a signed storage URL), and URLs logged with their query strings scrubbed (signatures live there);
- typed errors carrying GitHub's own `message` and `documentation_url`.

`requests` is imported only when a client is built: importing this module for its types or errors costs
almost nothing, and `charon-ci tag` never pays for an HTTP stack it does not use.
"""

from __future__ import annotations

import email.utils
import hashlib
import json as jsonlib
import os
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

from charon_ci import __version__, gha

if TYPE_CHECKING:
    import requests

__all__ = [
    "API_VERSION",
    "DEFAULT_API_URL",
    "BadRequest",
    "Conflict",
    "Download",
    "DownloadTooLarge",
    "Forbidden",
    "GithubClient",
    "GithubError",
    "GithubResponse",
    "NotFound",
    "Page",
    "RateBudgetExhausted",
    "RateLimit",
    "RateLimited",
    "RedirectError",
    "RequestStats",
    "RetryPolicy",
    "ServerError",
    "TransportError",
    "Unauthorized",
    "UnexpectedResponse",
    "Unprocessable",
    "api_path",
    "scrub_url",
]

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
MEDIA_TYPE = "application/vnd.github+json"
USER_AGENT = f"charon-ci/{__version__}"

# Methods GitHub treats as idempotent: repeating them after an ambiguous failure cannot do harm twice.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
# 501 and 505 describe the request, not a passing outage: repeating it will not help.
_PERMANENT_5XX = frozenset({501, 505})
# Query parameters of API URLs that are safe to show in logs; every other value is redacted.
_LOGGABLE_PARAMS = frozenset(
    {
        "per_page", "page", "name", "status", "event", "branch", "created", "head_sha", "head", "base",
        "state", "exclude_pull_requests", "check_suite_id", "package_type", "visibility", "sort",
        "direction", "filter", "attempt_number",
    }
)  # fmt: skip
_ERROR_BODY_LIMIT = 64 * 1024
# GitHub's older wording of a secondary rate limit, still seen on some endpoints and GHES.
_ABUSE_MESSAGE = "abuse detection mechanism"
_LINK_ENTRY = re.compile(r"<([^>]*)>([^<,]*(?:,(?!\s*<)[^<,]*)*)")
_QUERY_IN_TEXT = re.compile(r"\?[^\s'\")]+")

T = TypeVar("T")


# --- URLs ------------------------------------------------------------------------------------------------


def api_path(*segments: str | int) -> str:
    """`/a/b/c` from path segments, each percent-encoded whole (package names may contain `/`)."""
    return "/" + "/".join(quote(str(segment), safe="") for segment in segments)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"https": 443, "http": 80}.get(scheme)
    except ValueError:  # a malformed port: an origin nothing can equal
        port = -1
    return scheme, (parts.hostname or "").lower(), port


def scrub_url(url: str, api_url: str | None = None) -> str:
    """A URL fit for a log line: no user info, no fragment, and no query values that could be secrets.

    On the API's own origin known-harmless parameters (`per_page`, `page`, ...) keep their values and the
    rest read `REDACTED`; anywhere else (signed storage URLs) the whole query becomes `REDACTED`.
    """
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = parts.query
    if query:
        if api_url is not None and _origin(url) == _origin(api_url):
            pairs = parse_qsl(query, keep_blank_values=True)
            query = "&".join(
                f"{quote(key, safe='')}={quote(value, safe='.,:-_') if key in _LOGGABLE_PARAMS else 'REDACTED'}"
                for key, value in pairs
            )
        else:
            query = "REDACTED"
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


# --- errors ----------------------------------------------------------------------------------------------


class GithubError(gha.ActionFailure):
    """A request GitHub (or the transport) refused. `message` is GitHub's own JSON `message` when it sent one.

    It is an `ActionFailure`, so an unhandled one becomes a single clean `::error` line under `run_action`.
    """

    default_title = "GitHub API request failed"

    def __init__(
        self,
        status: int | None,
        message: str,
        documentation_url: str | None = None,
        method: str = "",
        path: str = "",
        *,
        request_id: str | None = None,
        errors: list[Any] | None = None,
        attempts: int = 1,
        ambiguous_retry: bool = False,
    ) -> None:
        self.status = status
        self.documentation_url = documentation_url
        self.method = method
        self.path = path
        self.request_id = request_id
        self.errors = errors or []
        self.attempts = attempts
        # True when an earlier attempt may have taken effect on the server (a 5xx or a broken connection).
        self.ambiguous_retry = ambiguous_retry
        super().__init__(self.default_title, message)

    def __str__(self) -> str:
        where = f"{self.method} {self.path}".strip()
        status = f"HTTP {self.status}" if self.status is not None else "no response"
        text = f"{where}: {status}: {self.message}" if where else f"{status}: {self.message}"
        if self.errors:
            text += f" {jsonlib.dumps(self.errors, separators=(',', ':'))[:500]}"
        if self.attempts > 1:
            text += f" (after {self.attempts} attempts)"
        if self.documentation_url:
            text += f" (see {self.documentation_url})"
        return text


class BadRequest(GithubError):
    default_title = "GitHub refused the request (400)"


class Unauthorized(GithubError):
    default_title = "GitHub rejected the token (401)"


class Forbidden(GithubError):
    default_title = "GitHub denied access (403)"


class NotFound(GithubError):
    default_title = "GitHub resource not found (404)"


class Conflict(GithubError):
    default_title = "GitHub reported a conflict (409)"


class Unprocessable(GithubError):
    default_title = "GitHub could not process the request (422)"


class ServerError(GithubError):
    default_title = "GitHub server error"


class RateLimited(GithubError):
    """Rate limited for longer than the client may wait. `reset_at` (epoch seconds) says when to come back."""

    default_title = "GitHub rate limit exceeded"

    def __init__(
        self,
        status: int | None,
        message: str,
        documentation_url: str | None = None,
        method: str = "",
        path: str = "",
        *,
        reset_at: float | None = None,
        secondary: bool = False,
        **extra: Any,
    ) -> None:
        self.reset_at = reset_at
        self.secondary = secondary
        super().__init__(status, message, documentation_url, method, path, **extra)

    def __str__(self) -> str:
        text = super().__str__()
        if self.reset_at is not None:
            text += f"; retry after {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(self.reset_at))}"
        return text


class RateBudgetExhausted(RateLimited):
    """Raised by `reserve` before any request: spending more would eat into the kept margin."""

    default_title = "GitHub rate-limit budget exhausted"


class TransportError(GithubError):
    """No usable HTTP answer: connection refused or reset, timeout, truncated body, TLS failure."""

    default_title = "Could not reach GitHub"


class RedirectError(GithubError):
    default_title = "GitHub redirect not followed"


class UnexpectedResponse(GithubError):
    default_title = "Unexpected answer from GitHub"


class DownloadTooLarge(GithubError):
    default_title = "Download larger than allowed"


_ERROR_CLASSES: dict[int, type[GithubError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: Unprocessable,
    429: RateLimited,
}


# --- data ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Waits are per request; `max_total_wait` bounds all waits of one call together."""

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 32.0
    max_total_wait: float = 300.0
    # GitHub: with no header saying otherwise, wait at least a minute after a secondary rate limit.
    secondary_min_wait: float = 60.0

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max_delay, base_delay * 2**(retry_number - 1))]."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** max(0, retry_number - 1))
        return rng.uniform(0.0, ceiling)

    def secondary_wait(self, previous_hits: int, rng: random.Random) -> float:
        """At least `secondary_min_wait`, doubling on each further refusal, plus a little jitter."""
        return self.secondary_min_wait * 2.0**previous_hits + rng.uniform(0.0, self.base_delay)


@dataclass(frozen=True)
class RateLimit:
    """One `x-ratelimit-*` reading. `reset` is epoch seconds."""

    limit: int
    remaining: int
    reset: int
    used: int | None = None
    resource: str = "core"

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimit | None:
        try:
            limit = int(headers["x-ratelimit-limit"])
            remaining = int(headers["x-ratelimit-remaining"])
            reset = int(headers["x-ratelimit-reset"])
        except (KeyError, ValueError):
            return None
        used_text = headers.get("x-ratelimit-used")
        used = int(used_text) if used_text is not None and _is_whole_number(used_text) else None
        return cls(limit, remaining, reset, used, headers.get("x-ratelimit-resource") or "core")


@dataclass
class RequestStats:
    """Counts of HTTP requests sent (every redirect hop and retry counts), for logs and benches."""

    total: int = 0
    by_method: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    retries: int = 0
    redirects: int = 0
    transport_errors: int = 0
    waited_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_method": dict(self.by_method),
            "by_status": {str(status): count for status, count in sorted(self.by_status.items())},
            "retries": self.retries,
            "redirects": self.redirects,
            "transport_errors": self.transport_errors,
            "waited_seconds": round(self.waited_seconds, 3),
        }


@dataclass(frozen=True)
class GithubResponse:
    """A final (non-redirect) answer. `url` is the real URL: show `display_url` instead."""

    method: str
    url: str
    display_url: str
    status: int
    headers: Mapping[str, str]
    content: bytes
    attempts: int = 1
    ambiguous_retry: bool = False

    def json(self) -> Any:
        try:
            return jsonlib.loads(self.content)
        except ValueError as bad:
            raise UnexpectedResponse(
                self.status, f"the body is not JSON ({bad})", None, self.method, self.display_url
            ) from None

    @property
    def next_url(self) -> str | None:
        return _link_targets(self.headers.get("link", "")).get("next")


@dataclass(frozen=True)
class Page:
    """One page of a paginated list. `total_count` is set for wrapped bodies that carry one."""

    items: list[Any]
    number: int
    total_count: int | None
    response: GithubResponse

    @property
    def has_next(self) -> bool:
        return self.response.next_url is not None


@dataclass(frozen=True)
class Download:
    path: Path
    size: int
    sha256: str
    display_url: str


def _link_targets(header: str) -> dict[str, str]:
    """`rel -> url` from an RFC 8288 `Link` header; a comma inside `<...>` does not split entries."""
    targets: dict[str, str] = {}
    for match in _LINK_ENTRY.finditer(header):
        url, params = match.group(1), match.group(2)
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "rel":
                for rel in value.strip().strip('"').split():
                    targets.setdefault(rel.lower(), url)
    return targets


def _is_whole_number(text: str) -> bool:
    """ASCII digits only: `str.isdigit` also accepts `²` (a Latin-1 header byte), which `int()` rejects."""
    return text.isascii() and text.isdigit()


def _parse_retry_after(value: str | None, now: float) -> float | None:
    """`retry-after` as seconds: GitHub sends an integer; an HTTP date is accepted too."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if _is_whole_number(text):
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def _error_fields(content: bytes, fallback: str) -> tuple[str, str | None, list[Any]]:
    """GitHub's `message`, `documentation_url` and `errors` from an error body."""
    try:
        body = jsonlib.loads(content)
    except ValueError:
        return fallback, None, []
    if not isinstance(body, dict):
        return fallback, None, []
    message = body.get("message")
    docs = body.get("documentation_url")
    errors = body.get("errors")
    return (
        message if isinstance(message, str) and message else fallback,
        docs if isinstance(docs, str) else None,
        errors if isinstance(errors, list) else [],
    )


class _KeepHeaders:
    """An explicit no-op auth, so requests never adds `~/.netrc` credentials behind our back."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


@dataclass
class _Attempts:
    """Book-keeping for one logical call across its retries."""

    count: int = 0
    waited: float = 0.0
    ambiguous: bool = False
    secondary_hits: int = 0


# --- client ----------------------------------------------------------------------------------------------


class GithubClient:
    """A GitHub REST API client; see the module docstring. Build with `from_env` inside an action."""

    def __init__(
        self,
        token: str,
        *,
        api_url: str = DEFAULT_API_URL,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        rate_margin: int = 50,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        log: Callable[[str], None] = gha.debug,
        notify: Callable[[str], None] = gha.info,
        user_agent: str = USER_AGENT,
        session: requests.Session | None = None,
    ) -> None:
        # Mask first: nothing below may print before the runner knows to hide the token.
        token = token.strip()
        gha.set_secret(token)
        lines = token.splitlines()
        for line in lines if len(lines) > 1 else ():
            gha.set_secret(line.strip())
        if any(ch.isspace() for ch in token):
            raise gha.ActionFailure("Invalid GitHub token", "The GitHub token contains whitespace or line breaks.")
        self._token = token
        self._api_url = _checked_api_url(api_url)
        self._api_origin = _origin(self._api_url)
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.rate_margin = rate_margin
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._clock = clock
        self._log = log
        self._notify = notify
        self._rate_limits: dict[str, RateLimit] = {}
        self._latest_resource: str | None = None
        self.stats = RequestStats()
        if session is None:
            import requests

            session = requests.Session()
        session.headers["User-Agent"] = user_agent
        self._session = session

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, token: str | None = None, **options: Any
    ) -> GithubClient:
        """A client for the runner's API (`GITHUB_API_URL`, GHES too); token from `token` or `GITHUB_TOKEN`."""
        environ = os.environ if env is None else env
        chosen = token if token is not None else environ.get("GITHUB_TOKEN", "")
        api_url = environ.get("GITHUB_API_URL", "").strip() or DEFAULT_API_URL
        return cls(chosen, api_url=api_url, **options)

    def __repr__(self) -> str:
        return f"GithubClient(api_url={self._api_url!r}, authenticated={bool(self._token)})"

    def __enter__(self) -> GithubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    @property
    def api_url(self) -> str:
        return self._api_url

    def url_for(self, path_or_url: str) -> str:
        """Absolute URL: an `http(s)://` URL as is, else the path appended to the API base (GHES keeps /api/v3)."""
        if path_or_url.startswith(("https://", "http://")):
            return path_or_url
        return self._api_url + "/" + path_or_url.lstrip("/")

    def display_url(self, url: str) -> str:
        """`url` scrubbed for logs; API URLs are shown relative to the API base."""
        shown = scrub_url(url, self._api_url)
        base = scrub_url(self._api_url)
        if shown.startswith(base + "/") or shown.startswith(base + "?"):
            return shown[len(base) :]
        return shown

    def _is_api_origin(self, url: str) -> bool:
        return _origin(url) == self._api_origin

    # --- rate-limit budget ---------------------------------------------------------------------------

    @property
    def rate_limit(self) -> RateLimit | None:
        """The latest `core` reading (or of whatever resource was last seen); None before any response."""
        if "core" in self._rate_limits:
            return self._rate_limits["core"]
        return self._rate_limits.get(self._latest_resource or "")

    @property
    def rate_limits(self) -> dict[str, RateLimit]:
        return dict(self._rate_limits)

    def spendable(self, resource: str = "core", *, margin: int | None = None) -> int | None:
        """Requests left before the margin is reached; None while the budget is unknown."""
        reading = self._rate_limits.get(resource)
        if reading is None:
            return None
        kept = self.rate_margin if margin is None else margin
        remaining = reading.limit if reading.reset <= self._clock() else reading.remaining
        return max(0, remaining - kept)

    def can_spend(self, n: int = 1, *, resource: str = "core", margin: int | None = None) -> bool:
        """True if `n` more requests leave at least the margin (also True while the budget is unknown)."""
        left = self.spendable(resource, margin=margin)
        return left is None or left >= n

    def reserve(self, n: int, *, resource: str = "core", margin: int | None = None) -> None:
        """Claim `n` requests of the budget before starting a batch, or raise `RateBudgetExhausted`."""
        if self.can_spend(n, resource=resource, margin=margin):
            return
        reading = self._rate_limits[resource]
        kept = self.rate_margin if margin is None else margin
        raise RateBudgetExhausted(
            None,
            f"{n} more requests would leave fewer than {kept} of the {reading.limit} allowed "
            f"({reading.remaining} remaining for '{resource}')",
            reset_at=float(reading.reset),
        )

    def refresh_rate_limit(self) -> dict[str, RateLimit]:
        """Read `GET /rate_limit` (it does not count against the limit) into the budget."""
        body = self.get("/rate_limit")
        resources = body.get("resources") if isinstance(body, dict) else None
        if isinstance(resources, dict):
            for name, values in resources.items():
                if not isinstance(values, dict):
                    continue
                try:
                    reading = RateLimit(
                        int(values["limit"]), int(values["remaining"]), int(values["reset"]),
                        int(values["used"]) if "used" in values else None, name,
                    )  # fmt: skip
                except (KeyError, TypeError, ValueError):
                    continue
                self._rate_limits[name] = reading
        return self.rate_limits

    def _observe(self, headers: Mapping[str, str]) -> None:
        reading = RateLimit.from_headers(headers)
        if reading is not None:
            self._rate_limits[reading.resource] = reading
            self._latest_resource = reading.resource

    # --- requests ------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        allow_statuses: Iterable[int] = (),
        idempotent: bool | None = None,
    ) -> GithubResponse:
        """Send one logical request (retried as the policy allows) and return its final answer.

        Raises a `GithubError` subclass for 4xx/5xx, except statuses in `allow_statuses`. A DELETE answered
        404 after an ambiguous earlier attempt is returned, not raised: the first attempt most likely
        deleted it; `status` and `ambiguous_retry` let the caller decide.
        """
        method = method.upper()
        allowed = frozenset(allow_statuses)

        def keep(response: requests.Response, state: _Attempts) -> GithubResponse:
            return self._wrap(method, response, state)

        return self._perform(
            method,
            self.url_for(path_or_url),
            params=params,
            json_body=json,
            headers=headers,
            allowed=allowed,
            idempotent=method in IDEMPOTENT_METHODS if idempotent is None else idempotent,
            stream=False,
            consume=keep,
        )

    def get(self, path_or_url: str, *, params: Mapping[str, Any] | None = None) -> Any:
        """GET and decode JSON."""
        return self.request("GET", path_or_url, params=params).json()

    def post(self, path_or_url: str, *, json: Any = None) -> Any:
        """POST; repeated only when GitHub certainly did not act (rate limits, refused connections)."""
        response = self.request("POST", path_or_url, json=json)
        return response.json() if response.content else None

    def delete(self, path_or_url: str, *, allow_statuses: Iterable[int] = ()) -> GithubResponse:
        """DELETE (idempotent on GitHub, so retried); see `request` for 404 after a retry."""
        return self.request("DELETE", path_or_url, allow_statuses=allow_statuses)

    def iter_pages(
        self,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        items_key: str | None = None,
        per_page: int = 100,
        max_pages: int | None = None,
    ) -> Iterator[Page]:
        """Pages of a list, following `Link: rel="next"` (never page arithmetic).

        `items_key` names the list in wrapped bodies such as `{"total_count": N, "workflow_runs": [...]}`;
        leave it None for bare arrays.
        """
        if not 1 <= per_page <= 100:
            raise ValueError("per_page must be between 1 and 100")
        query: dict[str, Any] = dict(params or {})
        query.setdefault("per_page", per_page)
        url: str | None = self.url_for(path_or_url)
        number = 0
        while url is not None and (max_pages is None or number < max_pages):
            # The next link already carries every parameter: send the caller's only on the first page.
            response = self.request("GET", url, params=query if number == 0 else None)
            number += 1
            body = response.json()
            items, total = _page_items(body, items_key, response)
            yield Page(items=items, number=number, total_count=total, response=response)
            url = response.next_url

    def paginate(
        self,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        items_key: str | None = None,
        per_page: int = 100,
        max_pages: int | None = None,
        max_items: int | None = None,
    ) -> Iterator[Any]:
        """Every item across pages; stops fetching once `max_items` have been yielded."""
        if max_items is not None and max_items <= 0:
            return
        count = 0
        for page in self.iter_pages(
            path_or_url, params=params, items_key=items_key, per_page=per_page, max_pages=max_pages
        ):
            for item in page.items:
                yield item
                count += 1
                if max_items is not None and count >= max_items:
                    return

    def download(
        self,
        url_or_path: str,
        dest_file: str | os.PathLike[str],
        *,
        max_bytes: int | None = None,
        chunk_size: int = 1 << 16,
    ) -> Download:
        """Stream a body (e.g. an artifact zip behind a 302) into `dest_file`, atomically.

        The bytes go to a temporary file next to `dest_file`, renamed into place only when complete, so a
        failure or an oversized body leaves nothing behind. Each retry starts again from `url_or_path`,
        which matters because signed storage URLs expire after a minute.
        """
        dest = Path(dest_file)
        partial = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        url = self.url_for(url_or_path)

        def consume(response: requests.Response, _state: _Attempts) -> Download:
            shown = self.display_url(response.url)
            declared = response.headers.get("content-length", "")
            if max_bytes is not None and _is_whole_number(declared) and int(declared) > max_bytes:
                raise DownloadTooLarge(
                    response.status_code, f"{declared} bytes declared, at most {max_bytes} allowed", None, "GET", shown
                )
            digest = hashlib.sha256()
            size = 0
            with open(partial, "wb") as handle:
                for chunk in response.iter_content(chunk_size):
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise DownloadTooLarge(
                            response.status_code, f"more than {max_bytes} bytes received", None, "GET", shown
                        )
                    digest.update(chunk)
                    handle.write(chunk)
            return Download(dest, size, digest.hexdigest(), shown)

        try:
            result = self._perform(
                "GET",
                url,
                params=None,
                json_body=None,
                # Exact bytes, so the size and sha256 match what GitHub reports for the artifact.
                headers={"Accept-Encoding": "identity"},
                allowed=frozenset(),
                idempotent=True,
                stream=True,
                consume=consume,
            )
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)
        self._log(f"downloaded {result.size} bytes from {result.display_url}")
        return result

    # --- internals -----------------------------------------------------------------------------------

    def _wrap(self, method: str, response: requests.Response, state: _Attempts) -> GithubResponse:
        return GithubResponse(
            method=method,
            url=response.url,
            display_url=self.display_url(response.url),
            status=response.status_code,
            headers=response.headers,
            content=response.content,
            attempts=state.count,
            ambiguous_retry=state.ambiguous,
        )

    def _headers_for(self, url: str, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers: dict[str, str] = {}
        on_api = self._is_api_origin(url)
        if on_api:
            headers["Accept"] = MEDIA_TYPE
            headers["X-GitHub-Api-Version"] = API_VERSION
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
        for key, value in (extra or {}).items():
            if key.lower() == "authorization" and not on_api:
                continue  # never hand credentials to another host, whoever asked
            headers[key] = value
        return headers

    def _send_chain(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None,
        json_body: Any,
        headers: Mapping[str, str] | None,
        stream: bool,
    ) -> requests.Response:
        """One attempt: send and follow redirects by hand, re-deciding the headers for every hop."""
        hops = 0
        current_method, current_url, body, query = method, url, json_body, params
        while True:
            self.stats.total += 1
            self.stats.by_method[current_method] += 1
            started = time.monotonic()
            response = self._session.request(
                current_method,
                current_url,
                params=query,
                json=body,
                headers=self._headers_for(current_url, headers),
                auth=_KeepHeaders(),
                allow_redirects=False,
                stream=stream,
                timeout=self.timeout,
            )
            self.stats.by_status[response.status_code] += 1
            if self._is_api_origin(response.url):
                self._observe(response.headers)
            self._log(
                f"{current_method} {self.display_url(response.url)} -> {response.status_code} "
                f"in {time.monotonic() - started:.2f} s{self._budget_note()}"
            )
            location = response.headers.get("location")
            if response.status_code not in REDIRECT_STATUSES or not location:
                return response
            response.close()
            hops += 1
            target = urljoin(response.url, location)
            if hops > MAX_REDIRECTS or urlsplit(target).scheme.lower() not in {"http", "https"}:
                raise RedirectError(
                    response.status_code,
                    f"not following redirect {hops} to {scrub_url(target, self._api_url)}",
                    None,
                    method,
                    self.display_url(url),
                )
            self.stats.redirects += 1
            if response.status_code == 303 or (response.status_code in {301, 302} and current_method != "HEAD"):
                current_method, body = ("GET" if current_method != "HEAD" else "HEAD"), None
            current_url, query = target, None

    def _budget_note(self) -> str:
        reading = self.rate_limit
        if reading is None:
            return ""
        return f" ({reading.resource} {reading.remaining}/{reading.limit} left)"

    def _perform(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None,
        json_body: Any,
        headers: Mapping[str, str] | None,
        allowed: frozenset[int],
        idempotent: bool,
        stream: bool,
        consume: Callable[[requests.Response, _Attempts], T],
    ) -> T:
        import requests

        policy = self.retry
        state = _Attempts()
        shown = self.display_url(url if not params else f"{url}?{urlencode(params, doseq=True)}")
        while True:
            state.count += 1
            response: requests.Response | None = None
            try:
                response = self._send_chain(
                    method, url, params=params, json_body=json_body, headers=headers, stream=stream
                )
                status = response.status_code
                settled = status < 400 or status in allowed
                already_gone = method == "DELETE" and status == 404 and state.ambiguous
                if settled or already_gone:
                    return consume(response, state)
                content = _read_limited(response) if stream else response.content
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as broken:
                self.stats.transport_errors += 1
                reached = _may_have_reached_server(broken)
                retryable = not isinstance(broken, requests.exceptions.SSLError) and (idempotent or not reached)
                failure = TransportError(
                    None,
                    _describe_transport(broken),
                    None,
                    method,
                    shown,
                    attempts=state.count,
                    ambiguous_retry=state.ambiguous,
                )
                if not retryable or state.count >= policy.max_attempts:
                    raise failure from None
                pause = policy.backoff(state.count, self._rng)
                if not self._wait(pause, state, f"{type(broken).__name__} on {method} {shown}"):
                    raise failure from None
                state.ambiguous = state.ambiguous or reached
                continue
            finally:
                if response is not None and stream:
                    response.close()

            error, wait = self._judge(method, shown, response, content, state, idempotent)
            if wait is None or state.count >= policy.max_attempts:
                raise error
            if not self._wait(wait, state, f"HTTP {status} on {method} {shown}"):
                raise error
            if status >= 500:
                state.ambiguous = True

    def _judge(
        self,
        method: str,
        shown: str,
        response: requests.Response,
        content: bytes,
        state: _Attempts,
        idempotent: bool,
    ) -> tuple[GithubError, float | None]:
        """The error for a failed answer, and how long to wait before retrying it (None: do not retry)."""
        status = response.status_code
        headers = response.headers
        message, docs, errors = _error_fields(content, response.reason or f"HTTP {status}")
        common: dict[str, Any] = {
            "request_id": headers.get("x-github-request-id"),
            "errors": errors,
            "attempts": state.count,
            "ambiguous_retry": state.ambiguous,
        }
        now = self._clock()
        retry_after = _parse_retry_after(headers.get("retry-after"), now)
        exhausted = headers.get("x-ratelimit-remaining") == "0"
        reset_text = headers.get("x-ratelimit-reset", "")
        reset = float(reset_text) if _is_whole_number(reset_text) else None
        lowered = message.lower()
        secondary = "secondary rate limit" in lowered or _ABUSE_MESSAGE in lowered
        rate_limited = status == 429 or (
            status == 403 and (exhausted or retry_after is not None or "rate limit" in lowered or secondary)
        )
        if rate_limited:
            # GitHub's order: retry-after; else the reset time when nothing remains; else at least a minute.
            if retry_after is not None:
                wait = retry_after
            elif exhausted and reset is not None:
                wait = max(0.0, reset - now) + 1.0
            else:
                secondary = True
                wait = self.retry.secondary_wait(state.secondary_hits, self._rng)
                state.secondary_hits += 1
            error: GithubError = RateLimited(
                status, message, docs, method, shown, reset_at=now + wait, secondary=secondary, **common
            )
            # Refused before being processed, so even a POST may be repeated.
            return error, wait
        error = _ERROR_CLASSES.get(status, ServerError if status >= 500 else GithubError)(
            status, message, docs, method, shown, **common
        )
        if status >= 500 and status not in _PERMANENT_5XX and idempotent:
            wait = retry_after if retry_after is not None else self.retry.backoff(state.count, self._rng)
            return error, wait
        return error, None

    def _wait(self, seconds: float, state: _Attempts, reason: str) -> bool:
        """Sleep before a retry unless it would pass the policy's total wait; False means give up."""
        if state.waited + seconds > self.retry.max_total_wait:
            self._log(
                f"not retrying {reason}: {seconds:.1f} s wait would pass the {self.retry.max_total_wait:.0f} s cap"
            )
            return False
        text = f"retrying {reason} in {seconds:.1f} s (attempt {state.count + 1} of {self.retry.max_attempts})"
        # A long silent pause looks like a hang in the job log: say why.
        (self._notify if seconds >= 10 else self._log)(text)
        self._sleep(seconds)
        state.waited += seconds
        self.stats.waited_seconds += seconds
        self.stats.retries += 1
        return True


def _checked_api_url(api_url: str) -> str:
    parts = urlsplit(api_url.strip())
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname or parts.query or parts.fragment:
        raise gha.ActionFailure(
            "Invalid GITHUB_API_URL",
            f"GITHUB_API_URL must be an http(s) URL without query, like {DEFAULT_API_URL} or "
            f"https://ghe.example.com/api/v3; got {scrub_url(api_url)!r}.",
        )
    if parts.username or parts.password:
        raise gha.ActionFailure("Invalid GITHUB_API_URL", "GITHUB_API_URL must not carry credentials.")
    return urlunsplit((parts.scheme.lower(), parts.netloc, parts.path.rstrip("/"), "", ""))


def _page_items(body: Any, items_key: str | None, response: GithubResponse) -> tuple[list[Any], int | None]:
    if items_key is None:
        if isinstance(body, list):
            return body, None
        keys = ", ".join(sorted(k for k, v in body.items() if isinstance(v, list))) if isinstance(body, dict) else ""
        raise UnexpectedResponse(
            response.status, f"expected a JSON array; the body is wrapped (list keys: {keys or 'none'})",
            None, "GET", response.display_url,
        )  # fmt: skip
    if not isinstance(body, dict) or not isinstance(body.get(items_key), list):
        raise UnexpectedResponse(
            response.status, f"expected an object with a '{items_key}' list", None, "GET", response.display_url
        )
    total = body.get("total_count")
    return body[items_key], total if isinstance(total, int) else None


def _read_limited(response: requests.Response) -> bytes:
    try:
        return response.raw.read(_ERROR_BODY_LIMIT, decode_content=True) or b""
    except Exception:  # an error body we cannot read still has a status worth reporting
        return b""


def _may_have_reached_server(broken: Exception) -> bool:
    """False only when the request certainly never left: refused, unresolvable, or connect timeout."""
    import requests
    from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

    if isinstance(broken, requests.exceptions.ConnectTimeout):
        return False
    reason: object = broken.args[0] if broken.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return not isinstance(reason, NewConnectionError | ConnectTimeoutError)


def _describe_transport(broken: Exception) -> str:
    """The innermost cause, with any query string (it may be a signature) cut out."""
    from urllib3.exceptions import MaxRetryError

    reason: BaseException = broken
    while True:
        inner = reason.args[0] if reason.args else None
        if isinstance(inner, MaxRetryError) and inner.reason is not None:
            inner = inner.reason
        elif reason.args and isinstance(reason.args[-1], BaseException):
            inner = reason.args[-1]
        if not isinstance(inner, BaseException) or inner is reason:
            break
        reason = inner
    return _QUERY_IN_TEXT.sub("?REDACTED", f"{type(reason).__name__}: {reason}")[:300]
