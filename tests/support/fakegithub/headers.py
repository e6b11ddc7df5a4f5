"""Response header contract: what GitHub's clients read from headers must be as well-formed as the bodies.

- Headers an operation declares for a status (`Location` on the artifact 302, `Link` on pull lists,
  `X-RateLimit-*` on `/rate_limit`) must fit their schema; `Location` is required on every redirect.
- `Link`, wherever it appears, must parse as RFC 8288 (`<URI>; rel="next", <URI>; rel="last"`), with absolute
  http(s) targets (GitHub always sends absolute URLs) and each of GitHub's relations at most once.
- `x-ratelimit-limit/remaining/used/reset` are non-negative integers and `retry-after` is delay-seconds,
  wherever they appear: clients do arithmetic on them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

REDIRECTS = frozenset({301, 302, 303, 307, 308})
RATE_INTEGER_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-used", "x-ratelimit-reset")
PAGINATION_RELATIONS = frozenset({"next", "prev", "first", "last"})

# RFC 9110 token and quoted-string, the two forms a link-param value may take.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PARAM = re.compile(rf"\s*;\s*(?P<name>{_TOKEN})\s*(?:=\s*(?P<value>{_TOKEN}|{_QUOTED}))?")
_TARGET = re.compile(r"\s*<(?P<uri>[^<>\s]*)>")
_SEPARATOR = re.compile(r"\s*,")


def _absolute_http(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in {"http", "https"} and bool(parts.netloc)


def parse_link(header: str) -> tuple[list[tuple[str, dict[str, str]]], str | None]:
    """RFC 8288 link-values as (target, params); the second item says where parsing failed, if it did."""
    links: list[tuple[str, dict[str, str]]] = []
    position = 0
    while True:
        target = _TARGET.match(header, position)
        if target is None:
            return links, f"expected '<URI>' at offset {position}: {header[position:position + 40]!r}"
        position = target.end()
        params: dict[str, str] = {}
        while (param := _PARAM.match(header, position)) is not None:
            value = param.group("value") or ""
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params.setdefault(param.group("name").lower(), value)  # RFC 8288: later duplicates are ignored
            position = param.end()
        links.append((target.group("uri"), params))
        if header[position:].strip() == "":
            return links, None
        separator = _SEPARATOR.match(header, position)
        if separator is None:
            return links, f"unexpected text at offset {position}: {header[position:position + 40]!r}"
        position = separator.end()


def link_problems(header: str) -> list[str]:
    links, failure = parse_link(header)
    if failure is not None:
        return [f"Link header is not RFC 8288: {failure}"]
    problems: list[str] = []
    seen: set[str] = set()
    for uri, params in links:
        if not _absolute_http(uri):
            problems.append(f"Link target {uri!r} is not an absolute http(s) URL")
        relations = params.get("rel", "").split()
        if not relations:
            problems.append(f"Link to {uri!r} has no rel")
        for relation in relations:
            if relation.lower() in seen and relation.lower() in PAGINATION_RELATIONS:
                problems.append(f"Link rel {relation!r} appears twice")
            seen.add(relation.lower())
    return problems


def _integer(value: str) -> bool:
    return value.isascii() and value.isdigit()


def header_problems(status: int, headers: Mapping[str, str], declared: Mapping[str, Any],
                    resolve: Callable[[dict[str, Any]], dict[str, Any]]) -> list[str]:
    """Problems with a response's headers (names in `headers` are lower-case)."""
    problems: list[str] = []
    for name, raw in declared.items():
        spec = resolve(raw)
        schema = resolve(spec.get("schema", {}))
        value = headers.get(name.lower())
        if value is None:
            if spec.get("required"):
                problems.append(f"declared header {name} is missing")
            continue
        if schema.get("type") == "integer" and not _integer(value):
            problems.append(f"header {name}: {value!r} is not an integer")
    if status in REDIRECTS:
        location = headers.get("location")
        if location is None:
            problems.append(f"a {status} redirect has no Location")
        elif not _absolute_http(location):
            problems.append(f"Location {location!r} is not an absolute http(s) URL")
    link = headers.get("link")
    if link is not None:
        problems += link_problems(link)
    for name in RATE_INTEGER_HEADERS:
        value = headers.get(name)
        if value is not None and not _integer(value):
            problems.append(f"header {name}: {value!r} is not a non-negative integer")
    retry_after = headers.get("retry-after")
    if retry_after is not None and not _integer(retry_after):
        problems.append(f"header retry-after: {retry_after!r} is not a number of seconds")
    return problems
