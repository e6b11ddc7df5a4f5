"""Request contract: every query and path parameter a client sends is checked against the operation's
declared parameters in GitHub's OpenAPI subset.

GitHub ignores query parameters it does not know, so a client that sends one (`direction` on the repository
artifacts list, say) believes it asked for something it never gets. The fake records each such parameter as a
violation and drops it before the handler runs, so it is not honoured either. Declared parameters must fit
their schema (type, enum, integer format) and the ranges GitHub documents in prose (`per_page` 1..100,
`page` from 1): GitHub answers `per_page=0` or `per_page=1000` without complaint, silently not doing what
was asked, which is exactly what a strict test world must surface.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Ranges GitHub states in the parameters' descriptions, not in their schemas.
DOCUMENTED_RANGES: dict[str, tuple[int, int | None]] = {"per_page": (1, 100), "page": (1, None)}
_INT_FORMATS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}

# Parameters GitHub honours although its description leaves them out, each with the report that shows it.
# Anything here is treated as declared with the referenced component's schema.
UNDESCRIBED_BUT_HONOURED: dict[str, dict[str, str]] = {
    # github/rest-api-description#1651: "`page` and `per_page` are missing but actually functional".
    "packages/get-all-package-versions-for-package-owned-by-user": {
        "page": "#/components/parameters/page",
        "per_page": "#/components/parameters/per-page",
    },
}


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    location: str  # "query" | "path" | "header" | "cookie"
    required: bool
    schema: dict[str, Any]


@dataclass(frozen=True)
class RequestFindings:
    """What is wrong with one request, and the query parameters to drop before the handler sees them."""

    problems: list[str] = field(default_factory=list)
    ignored: frozenset[str] = frozenset()


def collect_parameters(operation_id: str, path_item: Mapping[str, Any], operation: Mapping[str, Any],
                       resolve: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[tuple[str, str], ParameterSpec]:
    """(location, name) -> spec: the path item's parameters, overridden by the operation's own (OAS 3.0)."""
    found: dict[tuple[str, str], ParameterSpec] = {}
    raw = list(path_item.get("parameters", [])) + list(operation.get("parameters", []))
    raw += [{"$ref": ref} for ref in UNDESCRIBED_BUT_HONOURED.get(operation_id, {}).values()]
    for item in raw:
        param = resolve(item)
        schema = resolve(param.get("schema", {})) if isinstance(param.get("schema"), dict) else {}
        spec = ParameterSpec(param["name"], param["in"], bool(param.get("required")), schema)
        found[(spec.location, spec.name)] = spec
    return found


def _integer_problem(name: str, text: str, schema: Mapping[str, Any]) -> str | None:
    body = text[1:] if text.startswith("-") else text
    if not (body.isascii() and body.isdigit()):
        return f"{name}={text!r} is not an integer"
    value = int(text)
    bounds = _INT_FORMATS.get(str(schema.get("format", "")))
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        return f"{name}={text} does not fit {schema['format']}"
    low, high = DOCUMENTED_RANGES.get(name, (None, None))
    low = schema.get("minimum", low)
    high = schema.get("maximum", high)
    if (low is not None and value < low) or (high is not None and value > high):
        shown = f"{low if low is not None else ''}..{high if high is not None else ''}"
        return f"{name}={text} is out of range {shown}"
    return None


def value_problem(spec: ParameterSpec, text: str) -> str | None:
    """Why `text` does not fit the parameter's schema, or None. `created` and other search-syntax strings are
    only checked for their enum (their `format: date-time` does not describe the qualifier syntax GitHub takes)."""
    schema = spec.schema
    kind = schema.get("type")
    if kind is None and "oneOf" in schema:  # workflow_id: an integer id or a file name
        return None
    if kind == "integer":
        return _integer_problem(spec.name, text, schema)
    if kind == "boolean":
        return None if text in {"true", "false"} else f"{spec.name}={text!r} is not true or false"
    enum = schema.get("enum")
    if enum is not None and text not in enum:
        return f"{spec.name}={text!r} is not one of {', '.join(map(str, enum))}"
    return None


def check_request(declared: Mapping[tuple[str, str], ParameterSpec], path_params: Mapping[str, str],
                  query: Mapping[str, list[str]]) -> RequestFindings:
    problems: list[str] = []
    ignored: set[str] = set()
    for name, values in query.items():
        spec = declared.get(("query", name))
        if spec is None:
            problems.append(f"undeclared query parameter {name!r} (GitHub ignores it; so does the fake)")
            ignored.add(name)
            continue
        if len(values) > 1:
            problems.append(f"query parameter {name!r} sent {len(values)} times")
        problems += [problem for value in values if (problem := value_problem(spec, value)) is not None]
    for (location, name), spec in declared.items():
        if location == "query" and spec.required and name not in query:
            problems.append(f"required query parameter {name!r} is missing")
        if location == "path" and name in path_params:
            problem = value_problem(spec, path_params[name])
            if problem is not None:
                problems.append(f"path parameter {problem}")
    return RequestFindings(problems, frozenset(ignored))
