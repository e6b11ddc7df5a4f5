"""The contract: every response the fake serves, and every request it receives, checked against GitHub's
OpenAPI subset.

Responses: validators are compiled once per (operation, status) and cached, so checking costs one jsonschema
pass per response. Statuses an operation does not declare (a 401 on an operation that lists none, a refusal
such as the 400 "last tagged version", injected 5xx) must still carry GitHub's error shape: `basic-error`,
and every error body carries `message` and `documentation_url` (the schema leaves both optional; GitHub
always sends them and clients print them). Headers are checked too (headers.py).

Requests: query and path parameters against the operation's declared parameters (parameters.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import FormatChecker
from jsonschema.exceptions import best_match
from jsonschema.validators import extend
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry, Resource

from .headers import header_problems
from .parameters import ParameterSpec, RequestFindings, check_request, collect_parameters

ENV_OPENAPI = "CHARON_GITHUB_OPENAPI"  # optional override of the spec's location
_SPEC_URN = "urn:github-rest-subset"
_ERROR_SCHEMA = "#/components/schemas/basic-error"


def find_spec_path() -> Path:
    """The OpenAPI subset: $CHARON_GITHUB_OPENAPI, else the one in the shared reference data."""
    override = os.environ.get(ENV_OPENAPI, "").strip()
    if override:
        return Path(override)
    from tests.support.shared import OPENAPI_SUBSET

    return OPENAPI_SUBSET


@dataclass(frozen=True)
class Violation:
    """One served response, or one received request, that broke the contract: the test that caused it must
    fail. `side` is "response" (the fake is wrong) or "request" (the client sent what GitHub does not take)."""

    operation_id: str | None
    method: str
    path: str
    status: int
    problem: str
    side: str = "response"

    def __str__(self) -> str:
        return f"{self.side}: {self.method} {self.path} -> {self.status} ({self.operation_id}): {self.problem}"


def _nullable_enum(validator: Any, enums: Any, instance: Any, schema: dict[str, Any]) -> Any:
    # OAS 3.0.3: "nullable: true" adds null to the allowed values, enum included. GitHub relies on it
    # (a queued job's `conclusion` is null; its enum lists no null), but plain jsonschema `enum` rejects it.
    if instance is None and schema.get("nullable") is True:
        return
    yield from _BASE_ENUM(validator, enums, instance, schema)


_BASE_ENUM = OAS30Validator.VALIDATORS["enum"]
_BASE_REF = OAS30Validator.VALIDATORS["$ref"]
_MEMO_LIMIT = 200_000
_valid_by_ref: set[tuple[str, str]] = set()


def _memo_ref(validator: Any, ref: str, instance: Any, schema: dict[str, Any]) -> Any:
    # Listings repeat the same users and repositories many times over (each run carries four users and two
    # repositories); remember which (schema, object) pairs already passed instead of re-walking them.
    # Only successes are remembered: errors must be reported with their own paths.
    if not isinstance(instance, dict):
        yield from _BASE_REF(validator, ref, instance, schema)
        return
    key = (ref, json.dumps(instance, sort_keys=True, separators=(",", ":")))
    if key in _valid_by_ref:
        return
    errors = list(_BASE_REF(validator, ref, instance, schema))
    if errors:
        yield from errors
        return
    if len(_valid_by_ref) >= _MEMO_LIMIT:
        _valid_by_ref.clear()
    _valid_by_ref.add(key)


ResponseValidator = extend(OAS30Validator, {"enum": _nullable_enum, "$ref": _memo_ref})


def _uri_like(value: object) -> bool:
    # openapi-schema-validator leaves "uri" unchecked; GitHub's uris are absolute http(s) URLs.
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return parts.scheme in {"http", "https"} and bool(parts.netloc)


def _format_checker() -> FormatChecker:
    checker = FormatChecker()
    checker.checkers = dict(oas30_format_checker.checkers)
    checker.checks("uri")(_uri_like)
    return checker


@dataclass(frozen=True)
class OperationSpec:
    operation_id: str
    method: str
    path: str  # the OpenAPI template, e.g. /repos/{owner}/{repo}/pulls
    responses: dict[str, Any]
    parameters: dict[tuple[str, str], ParameterSpec]


class Contract:
    """The OpenAPI document and cached response validators."""

    def __init__(self, spec_path: Path | None = None) -> None:
        self.spec_path = spec_path or find_spec_path()
        self.document: dict[str, Any] = json.loads(self.spec_path.read_text(encoding="utf-8"))
        self._registry: Registry[Any] = Registry().with_resource(_SPEC_URN, Resource.opaque(self.document))
        self._validators: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._format_checker = _format_checker()
        self._valid_bodies: set[tuple[int, bytes]] = set()

    @cached_property
    def operations(self) -> dict[str, OperationSpec]:
        found: dict[str, OperationSpec] = {}
        for path, item in self.document["paths"].items():
            for method, operation in item.items():
                if method in {"get", "put", "post", "patch", "delete", "head"}:
                    operation_id = operation["operationId"]
                    parameters = collect_parameters(operation_id, item, operation, self._resolve)
                    found[operation_id] = OperationSpec(operation_id, method.upper(), path, operation["responses"],
                                                        parameters)
        return found

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            pointer = node["$ref"].removeprefix("#/").split("/")
            target: Any = self.document
            for part in pointer:
                target = target[part]
            node = target
        return node

    def validator(self, schema_ref_or_inline: dict[str, Any], key: str) -> Any:
        with self._lock:
            cached = self._validators.get(key)
            if cached is None:
                schema = _absolutize(schema_ref_or_inline)
                cached = ResponseValidator(schema, registry=self._registry, format_checker=self._format_checker)
                self._validators[key] = cached
            return cached

    def error_validator(self) -> Any:
        return self.validator({"$ref": _ERROR_SCHEMA}, "basic-error")

    def check_request(self, operation_id: str | None, path_params: dict[str, str],
                      query: dict[str, list[str]]) -> RequestFindings:
        """What the request sends that the operation does not declare or accept (unknown routes: nothing)."""
        operation = self.operations.get(operation_id or "")
        if operation is None:
            return RequestFindings()
        return check_request(operation.parameters, path_params, query)

    def check(self, operation_id: str | None, status: int, content_type: str | None, body: bytes,
              headers: dict[str, str] | None = None) -> str | None:
        """None when the response fits the contract, else a one-line description of what is wrong.
        `headers` (lower-case names) are checked when given."""
        problems: list[str] = []
        declared_headers: dict[str, Any] = {}
        if operation_id is not None and operation_id in self.operations:
            raw = self.operations[operation_id].responses.get(str(status))
            if raw is not None:
                declared_headers = self._resolve(raw).get("headers", {})
        if headers is not None:
            problems += header_problems(status, headers, declared_headers, self._resolve)
        body_problem = self._check_body(operation_id, status, content_type, body)
        if body_problem is not None:
            problems.insert(0, body_problem)
        elif status >= 400 and body:
            problems += _error_field_problems(body)
        return "; ".join(problems) if problems else None

    def _check_body(self, operation_id: str | None, status: int, content_type: str | None,
                    body: bytes) -> str | None:
        declared: dict[str, Any] | None = None
        if status == 304:
            # GitHub answers any conditional GET with 304 and no body, declared or not.
            return None if not body else "a 304 must not carry a body"
        if operation_id is not None:
            operation = self.operations.get(operation_id)
            if operation is None:
                return f"unknown operation {operation_id!r}"
            raw = operation.responses.get(str(status))
            if raw is not None:
                declared = self._resolve(raw)
            elif status < 400:
                return f"status {status} is not declared for {operation_id}"
        if declared is None:
            # Undeclared error (or unknown route): GitHub's error shape.
            return self._check_json(body, content_type, self.error_validator(), "error body")
        content = declared.get("content")
        if not content:
            return None if not body else f"status {status} declares no body but {len(body)} bytes were served"
        media = (content_type or "").split(";")[0].strip().lower()
        if media not in content:
            return f"content type {content_type!r} is not one of {sorted(content)}"
        schema = content[media].get("schema")
        if schema is None:
            return None
        return self._check_json(body, content_type, self.validator(schema, f"{operation_id}:{status}:{media}"), "body")

    def _check_json(self, body: bytes, content_type: str | None, validator: Any, what: str) -> str | None:
        if not (content_type or "").lower().startswith("application/json"):
            return f"{what} has content type {content_type!r}, expected application/json"
        try:
            document = json.loads(body)
        except ValueError as exc:
            return f"{what} is not JSON: {exc}"
        # The same body served again (polling, re-listing) was already proven valid.
        seen = (id(validator), hashlib.sha256(body).digest())
        if seen in self._valid_bodies:
            return None
        error = best_match(validator.iter_errors(document))
        if error is None:
            if len(self._valid_bodies) >= _MEMO_LIMIT:
                self._valid_bodies.clear()
            self._valid_bodies.add(seen)
            return None
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        return f"{what} fails the schema at {where}: {error.message[:300]}"


def _error_field_problems(body: bytes) -> list[str]:
    try:
        document = json.loads(body)
    except ValueError:
        return []  # already reported as not JSON, or a declared non-JSON body
    if not isinstance(document, dict):
        return ["error body is not a JSON object"]
    return [f"error body has no string {key!r}" for key in ("message", "documentation_url")
            if not isinstance(document.get(key), str)]


def _absolutize(schema: Any) -> Any:
    """Point local `#/...` references at the registered document."""
    if isinstance(schema, dict):
        return {
            key: (_SPEC_URN + value if key == "$ref" and isinstance(value, str) and value.startswith("#") else
                  _absolutize(value))
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_absolutize(item) for item in schema]
    return schema


_shared: Contract | None = None
_shared_lock = threading.Lock()


def shared_contract() -> Contract:
    """One Contract per process: compiled validators are reused by every FakeGitHub."""
    global _shared  # noqa: PLW0603 - a process-wide cache is the point
    with _shared_lock:
        if _shared is None:
            _shared = Contract()
        return _shared
