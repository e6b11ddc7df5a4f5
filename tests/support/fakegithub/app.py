"""The request pipeline of the API host: route, faults, auth, primary and secondary limits, handler,
ETag/304, rate-limit headers, contract check, request log. Independent of the HTTP server."""

from __future__ import annotations

import hashlib
import secrets
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from . import api_actions, api_packages, api_pulls
from .context import Context
from .contract import Contract, Violation
from .faults import Faults, Refusal
from .overlay import shared_overlay
from .ratelimit import ANONYMOUS_LIMIT, PrimaryLimits, Snapshot
from .routes import DOCS, ApiError, Halt, Request, Response, Router, not_found

RATE_LIMIT_OPERATION = "rate-limit/get"
RATE_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
SECONDARY_DOCS = RATE_DOCS + "#about-secondary-rate-limits"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class RequestRecord:
    """One request as the fake saw it. `status` is None when a fault reset the connection."""

    method: str
    path: str  # raw path without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    host: str  # "api" or "storage" (the signed artifact URL host)
    operation: str | None = None
    status: int | None = None
    token: str | None = None
    at: float = 0.0  # simulated epoch seconds when it arrived
    response_headers: dict[str, str] = field(default_factory=dict)

    @property
    def reset(self) -> bool:
        return self.status is None


def parse_authorization(value: str | None) -> tuple[bool, str | None]:
    """(present, token) for `Bearer X` / `token X`; (True, None) when present but malformed."""
    if value is None:
        return False, None
    scheme, _, credential = value.strip().partition(" ")
    if scheme.lower() in {"bearer", "token"} and credential.strip():
        return True, credential.strip()
    return True, None


def request_id() -> str:
    parts = [secrets.token_hex(2).upper(), secrets.token_hex(2).upper(), secrets.token_hex(3).upper(),
             secrets.token_hex(3).upper(), secrets.token_hex(4).upper()]
    return ":".join(parts)


class Api:
    def __init__(self, ctx: Context, contract: Contract, faults: Faults, limits: PrimaryLimits) -> None:
        self.ctx = ctx
        self.contract = contract
        self.faults = faults
        self.limits = limits
        self.router = Router()
        api_packages.register(self.router)
        api_actions.register(self.router)
        api_pulls.register(self.router)
        self.router.add("GET", "/rate_limit", RATE_LIMIT_OPERATION, self._rate_limit, "none")
        self.log: list[RequestRecord] = []
        self.violations: list[Violation] = []
        self.internal_errors: list[str] = []
        # operationId (None: unknown route) -> responses checked against the contract, to prove the check ran.
        self.checked: Counter[str | None] = Counter()
        # Test hook: operationId -> function(body bytes) -> bytes, applied before the contract check.
        self.corruptors: dict[str, Callable[[bytes], bytes]] = {}
        # Test hook: operationId -> function(headers) -> headers, applied before the contract check.
        self.header_corruptors: dict[str, Callable[[dict[str, str]], dict[str, str]]] = {}
        self.overlay = shared_overlay()

    # --- budget keys -----------------------------------------------------------------------------------------
    @staticmethod
    def budget_key(request: Request) -> tuple[str, int]:
        if request.token is not None:
            return f"token:{request.token.value}", request.token.rate_limit
        return f"ip:{request.client}", ANONYMOUS_LIMIT

    def _rate_limit(self, ctx: Context, request: Request) -> Response:
        snap = self.limits.peek(*self.budget_key(request))
        core = {"limit": snap.limit, "remaining": snap.remaining, "reset": snap.reset, "used": snap.used}
        reset_minute = int(ctx.clock.now()) + 60

        def fixed(limit: int, reset: int = reset_minute) -> dict[str, int]:
            return {"limit": limit, "remaining": limit, "reset": reset, "used": 0}

        body = {
            "resources": {
                "core": core, "search": fixed(30), "code_search": fixed(10), "graphql": fixed(5000, snap.reset),
                "integration_manifest": fixed(5000, snap.reset), "source_import": fixed(100),
                "code_scanning_upload": fixed(1000, snap.reset), "actions_runner_registration": fixed(10000),
                "scim": fixed(15000, snap.reset), "dependency_snapshots": fixed(100),
            },
            "rate": core,
        }
        return Response.json(200, body)

    # --- the pipeline ----------------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response | None:
        """The response to send, or None to drop the connection without one."""
        record = RequestRecord(request.method, request.path, {k: list(v) for k, v in request.query.items()},
                               request.headers, "api", at=self.ctx.clock.now())
        self.log.append(record)
        matched = self.router.match(request.method, request.path)
        if matched is not None:
            request.operation = matched[0].operation
            request.params = matched[1]
        record.operation = request.operation
        findings = self.contract.check_request(request.operation, request.params, request.query)
        # GitHub ignores parameters it does not declare: so must the handlers.
        request.query = {k: v for k, v in request.query.items() if k not in findings.ignored}
        decision = self.faults.decide(request.method, request.operation, request.path)
        if decision.delay > 0:
            time.sleep(decision.delay)
        if decision.reset:
            return None
        snapshot: Snapshot | None = None
        budget: tuple[str, int] | None = None
        try:
            present, value = parse_authorization(request.headers.get("authorization"))
            record.token = value
            if present:
                token = self.ctx.state.tokens.get(value or "")
                if token is None:
                    budget = self.budget_key(request)  # charged to the client address, like GitHub
                    _, snapshot = self.limits.spend(*budget)
                    raise ApiError(401, "Bad credentials", DOCS)
                request.token = token
            if matched is None:
                budget = self.budget_key(request)
                _, snapshot = self.limits.spend(*budget)
                raise not_found()
            route = matched[0]
            if route.auth == "required" and request.token is None:
                raise ApiError(401, "Requires authentication", DOCS)
            budget = self.budget_key(request)
            if request.operation == RATE_LIMIT_OPERATION:
                snapshot = self.limits.peek(*budget)
            else:
                allowed, snapshot = self.limits.spend(*budget)
                if not allowed:
                    raise ApiError(self._primary_status(), self._exhausted_message(request), RATE_DOCS)
                if decision.secondary is not None:
                    raise self._secondary_refusal(decision.secondary)
                who = budget[0]
                refusal = self.faults.spend_secondary(who, request.operation or request.path, request.method)
                if refusal is not None:
                    raise self._secondary_refusal(refusal)
            if decision.status is not None:
                raise ApiError(decision.status, "Server Error" if decision.status < 503 else "Service Unavailable")
            if request.method in WRITE_METHODS and request.token is not None and request.token.read_only:
                raise ApiError(403, "Resource not accessible by integration", DOCS)
            response = route.handler(self.ctx, request)
        except Halt as halt:
            response = halt.response
        except Exception:  # a bug in the fake or its environment: fail the test, answer like GitHub's 500
            self.internal_errors.append(f"{request.method} {request.path}:\n{traceback.format_exc()}")
            response = ApiError(500, "Server Error").response
        response = self._conditional(request, response, budget)
        if snapshot is not None and budget is not None and response.status == 304:
            snapshot = self.limits.refund(*budget)
        if snapshot is not None:
            response.headers.update(snapshot.headers())
        response.headers.setdefault("x-github-request-id", request_id())
        response.headers.setdefault("x-github-api-version-selected", "2022-11-28")
        response = self._enforce_contract(request, response)
        for problem in findings.problems:
            self.violations.append(Violation(request.operation, request.method, request.path, response.status,
                                             problem, "request"))
        record.status = response.status
        record.response_headers = dict(response.headers)
        return response

    def _primary_status(self) -> int:
        status = self.ctx.settings.primary_limit_status
        if status not in {403, 429}:
            raise ValueError(f"Settings.primary_limit_status must be 403 or 429, not {status}")
        return status

    @staticmethod
    def _secondary_refusal(refusal: Refusal) -> ApiError:
        headers = {"retry-after": str(refusal.retry_after)} if refusal.retry_after is not None else None
        return ApiError(refusal.status, "You have exceeded a secondary rate limit. Please wait a few minutes before "
                        "you try again. If you reach out to GitHub Support for help, please include the request ID "
                        f"{request_id()}.", SECONDARY_DOCS, headers)

    @staticmethod
    def _exhausted_message(request: Request) -> str:
        tail = f" If you reach out to GitHub Support for help, please include the request ID {request_id()}."
        token = request.token
        if token is None:
            return (f"API rate limit exceeded for {request.client}. (But here's the good news: Authenticated "
                    "requests get a higher rate limit. Check out the documentation for more details.)" + tail)
        kind = "installation" if token.kind == "installation" else "user"
        return f"API rate limit exceeded for {kind} ID {token.user_id}." + tail

    @staticmethod
    def _conditional(request: Request, response: Response, budget: tuple[str, int] | None) -> Response:
        if request.method != "GET" or response.status != 200 or not response.body:
            return response
        etag = 'W/"' + hashlib.sha256(response.body).hexdigest() + '"'
        response.headers["etag"] = etag
        wanted = request.headers.get("if-none-match")
        if wanted and etag in {tag.strip() for tag in wanted.split(",")}:
            return Response.empty(304, {"etag": etag})
        return response

    def _enforce_contract(self, request: Request, response: Response) -> Response:
        corrupt = self.corruptors.get(request.operation or "")
        if corrupt is not None and response.body:
            response.body = corrupt(response.body)
        corrupt_headers = self.header_corruptors.get(request.operation or "")
        if corrupt_headers is not None:
            response.headers = corrupt_headers(dict(response.headers))
        problem = self.contract.check(request.operation, response.status, response.headers.get("content-type"),
                                      response.body, response.headers)
        if problem is None:  # runs/jobs bodies also answer to the stricter overlay (overlay.py)
            problem = self.overlay.check(request.operation, response.status, response.body)
        self.checked[request.operation] += 1
        if problem is None:
            return response
        self.violations.append(Violation(request.operation, request.method, request.path, response.status, problem))
        broken = ApiError(500, f"fake GitHub served a response that breaks the OpenAPI contract: {problem}").response
        broken.headers.update({k: v for k, v in response.headers.items() if k.startswith("x-")})
        return broken
