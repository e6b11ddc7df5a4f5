"""Request/response types, GitHub's error shape, and the table mapping raw paths to operations.

Paths are matched before percent-decoding, so a package name sent as `app%2Fweb` stays one segment.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

if TYPE_CHECKING:
    from .state import Token

DOCS = "https://docs.github.com/rest"
JSON_TYPE = "application/json; charset=utf-8"


@dataclass
class Request:
    method: str
    path: str  # raw, still percent-encoded, without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    client: str = "127.0.0.1"
    operation: str | None = None
    params: dict[str, str] = field(default_factory=dict)  # decoded path parameters
    token: Token | None = None

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str) -> bool:
        return (self.arg(name) or "").lower() == "true"


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, document: Any, headers: dict[str, str] | None = None) -> Response:
        data = json.dumps(document, separators=(",", ":")).encode()
        return cls(status, data, {"content-type": JSON_TYPE, **(headers or {})})

    @classmethod
    def empty(cls, status: int, headers: dict[str, str] | None = None) -> Response:
        return cls(status, b"", dict(headers or {}))


class Halt(Exception):
    """Raised by a handler to answer with `response` at once."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class ApiError(Halt):
    """Answered as GitHub's basic-error body: {"message", "documentation_url", "status"}."""

    def __init__(self, status: int, message: str, documentation_url: str = DOCS,
                 headers: dict[str, str] | None = None) -> None:
        body = {"message": message, "documentation_url": documentation_url, "status": str(status)}
        super().__init__(Response.json(status, body, headers))
        self.status = status
        self.message = message


def not_found(message: str = "Not Found") -> ApiError:
    return ApiError(404, message)


Handler = Callable[[Any, Request], Response]  # (context, request)


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    operation: str
    handler: Handler
    auth: str  # "required" | "repo" (only for private repositories) | "none"


def template_regex(template: str) -> re.Pattern[str]:
    """`/repos/{owner}/{repo}/pulls` -> a regex with one named group per `{param}` segment."""
    parts = re.split(r"(\{[a-z_]+\})", template)
    pattern = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{pattern}$")


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, template: str, operation: str, handler: Handler, auth: str) -> None:
        self.routes.append(Route(method, template_regex(template), operation, handler, auth))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method != method:
                continue
            found = route.pattern.match(path)
            if found:
                return route, {key: unquote(value) for key, value in found.groupdict().items()}
        return None
