"""GitHub's page-number pagination: `per_page` (default 30, values above 100 count as 100), 1-based `page`,
and a `Link` header with absolute URLs that keep every other query parameter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import urlencode

T = TypeVar("T")

DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100


def _int(values: list[str] | None, default: int) -> int:
    if not values:
        return default
    try:
        return int(values[-1])
    except ValueError:
        return default


@dataclass(frozen=True)
class PageRequest:
    page: int
    per_page: int

    @classmethod
    def from_query(cls, query: dict[str, list[str]]) -> PageRequest:
        per_page = _int(query.get("per_page"), DEFAULT_PER_PAGE)
        if per_page < 1:
            per_page = DEFAULT_PER_PAGE
        page = max(1, _int(query.get("page"), 1))
        return cls(page, min(per_page, MAX_PER_PAGE))


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    link: str | None


def paginate(items: Sequence[T], query: dict[str, list[str]], url_base: str, path: str) -> Page[T]:
    """Slice `items` for the requested page; `url_base + path` is where Link URLs point."""
    request = PageRequest.from_query(query)
    start = (request.page - 1) * request.per_page
    last = max(1, -(-len(items) // request.per_page))
    window = items[start:start + request.per_page]

    def url(page: int) -> str:
        params = [(key, value) for key, values in query.items() if key != "page" for value in values]
        params.append(("page", str(page)))
        return f"{url_base}{path}?{urlencode(params)}"

    links: list[str] = []
    if len(items) > request.per_page or request.page > 1:
        if request.page > 1:
            links.append(f'<{url(min(request.page - 1, last))}>; rel="prev"')
        if request.page < last:
            links.append(f'<{url(request.page + 1)}>; rel="next"')
            links.append(f'<{url(last)}>; rel="last"')
        if request.page > 1:
            links.append(f'<{url(1)}>; rel="first"')
    return Page(window, ", ".join(links) or None)
