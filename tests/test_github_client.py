"""The GitHub REST client against scripted real HTTP servers on 127.0.0.1 (the API) and 127.0.0.2 (storage).

Sleeps are recorded, never slept: the retry tests assert the waits the client asked for, not wall time.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from charon_ci import __version__, gha
from charon_ci.github import (
    BadRequest,
    Conflict,
    DownloadTooLarge,
    Forbidden,
    GithubClient,
    GithubError,
    NotFound,
    RateBudgetExhausted,
    RateLimit,
    RateLimited,
    RedirectError,
    RetryPolicy,
    ServerError,
    TransportError,
    Unauthorized,
    UnexpectedResponse,
    Unprocessable,
    api_path,
    scrub_url,
)
from tests.support.fakegithub import Clock, FakeGitHub
from tests.support.fakegithub.fixtures import serve_fake_github
from tests.support.fakegithub.packages import MemoryBackend

TOKEN = "ghs_unitTestToken0123456789abcdef"
NOW = 1_700_000_000.0

# --- a scripted HTTP server ----------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON value, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    fault: str | None = None  # "reset": TCP RST instead of an answer; "truncate": body cut short


@dataclass
class Seen:
    method: str
    target: str  # path with query, as sent
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path


Script = Reply | Callable[[Seen], Reply]


class _Dropped(Exception):
    pass


class ScriptedServer:
    """Each (METHOD, path) answers from its script in order; the last entry repeats. Unscripted: 404."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.scripts: dict[tuple[str, str], list[Script]] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(
                    self.command,
                    self.path,
                    {key.lower(): value for key, value in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                reply = server._next(seen)
                if reply.fault == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    raise _Dropped
                if isinstance(reply.body, bytes):
                    payload, content_type = reply.body, "application/octet-stream"
                elif reply.body is None:
                    payload, content_type = b"", "application/json"
                else:
                    payload, content_type = json.dumps(reply.body).encode(), "application/json; charset=utf-8"
                self.send_response(reply.status)
                headers = {"Content-Type": content_type, **reply.headers}
                declared = len(payload) + (100 if reply.fault == "truncate" else 0)
                headers["Content-Length"] = str(declared)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)
                self.wfile.flush()
                if reply.fault == "truncate":
                    self.close_connection = True

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = _serve

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # scripted resets surface here; they are the point, not a failure

        self._httpd = Server((host, 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    def on(self, method: str, path: str, *replies: Script) -> None:
        self.scripts[(method, path)] = list(replies)

    def _next(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
            script = self.scripts.get((seen.method, seen.path))
            if not script:
                return Reply(404, {"message": "unscripted", "documentation_url": "https://docs.example/none"})
            entry = script.pop(0) if len(script) > 1 else script[0]
        return entry(seen) if callable(entry) else entry

    def count(self, method: str | None = None) -> int:
        return sum(1 for seen in self.seen if method is None or seen.method == method)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def api() -> Iterator[ScriptedServer]:
    server = ScriptedServer("127.0.0.1")
    yield server
    server.close()


@pytest.fixture
def storage() -> Iterator[ScriptedServer]:
    server = ScriptedServer("127.0.0.2")
    yield server
    server.close()


@dataclass
class Harness:
    client: GithubClient
    sleeps: list[float]
    logs: list[str]


def harness(api_url: str, **options: Any) -> Harness:
    sleeps: list[float] = []
    logs: list[str] = []
    client = GithubClient(
        TOKEN,
        api_url=api_url,
        sleep=sleeps.append,
        rng=random.Random(1234),  # noqa: S311 - jitter in a test
        clock=lambda: NOW,
        log=logs.append,
        notify=logs.append,
        **options,
    )
    return Harness(client, sleeps, logs)


@pytest.fixture
def gh(api: ScriptedServer) -> Iterator[Harness]:
    made = harness(api.url)
    yield made
    made.client.close()


def rate_headers(
    remaining: int, reset: float = NOW + 3600, limit: int = 5000, resource: str = "core"
) -> dict[str, str]:
    return {
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-reset": str(int(reset)),
        "x-ratelimit-used": str(limit - remaining),
        "x-ratelimit-resource": resource,
    }


# --- construction and headers --------------------------------------------------------------------------


def test_every_api_request_carries_github_headers_and_the_bearer_token(api: ScriptedServer, gh: Harness) -> None:
    api.on("GET", "/repos/o/r", Reply(200, {"id": 1}))
    assert gh.client.get("/repos/o/r") == {"id": 1}
    (seen,) = api.seen
    assert seen.headers["accept"] == "application/vnd.github+json"
    assert seen.headers["x-github-api-version"] == "2022-11-28"
    assert seen.headers["user-agent"] == f"charon-ci/{__version__}"
    assert seen.headers["authorization"] == f"Bearer {TOKEN}"


def test_ghes_base_url_keeps_its_api_prefix(api: ScriptedServer) -> None:
    api.on("GET", "/api/v3/repos/o/r/actions/runs", Reply(200, {"total_count": 0, "workflow_runs": []}))
    client = GithubClient.from_env({"GITHUB_API_URL": f"{api.url}/api/v3/"}, token=TOKEN, log=lambda _: None)
    assert client.api_url == f"{api.url}/api/v3"
    assert client.get("repos/o/r/actions/runs") == {"total_count": 0, "workflow_runs": []}
    assert [seen.path for seen in api.seen] == ["/api/v3/repos/o/r/actions/runs"]
    assert client.display_url(f"{api.url}/api/v3/repos/o/r?per_page=5") == "/repos/o/r?per_page=5"


def test_from_env_defaults_to_api_github_com_and_github_token() -> None:
    client = GithubClient.from_env({"GITHUB_TOKEN": TOKEN})
    assert client.api_url == "https://api.github.com"
    assert "ghs_" not in repr(client)
    assert client.url_for("/rate_limit") == "https://api.github.com/rate_limit"


@pytest.mark.parametrize(
    "bad", ["ftp://ghe.example.com/api/v3", "ghe.example.com", "https://h/api?x=1", "https://u:p@h/"]
)
def test_bad_api_url_is_a_clean_failure(bad: str) -> None:
    with pytest.raises(gha.ActionFailure) as caught:
        GithubClient("t", api_url=bad)
    assert caught.value.title == "Invalid GITHUB_API_URL"
    assert "u:p" not in caught.value.message


def test_token_is_masked_before_any_other_output(api: ScriptedServer, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("GET", "/user", Reply(200, {"login": "x"}, rate_headers(10)))
    client = GithubClient.from_env({"GITHUB_API_URL": api.url, "GITHUB_TOKEN": f" {TOKEN}\n"})  # real gha.debug
    client.get("/user")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"::add-mask::{TOKEN}"
    assert any(line.startswith("::debug::GET") for line in lines[1:])
    assert not any(TOKEN in line for line in lines[1:])


def test_token_with_inner_whitespace_is_refused_after_masking(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(gha.ActionFailure) as caught:
        GithubClient("abc def")
    assert "abc" not in caught.value.message
    assert capsys.readouterr().out.startswith("::add-mask::abc def\n")


def test_no_token_means_no_authorization_header(api: ScriptedServer) -> None:
    api.on("GET", "/meta", Reply(200, {}))
    GithubClient("", api_url=api.url, log=lambda _: None).get("/meta")
    assert "authorization" not in api.seen[0].headers


# --- retries ---------------------------------------------------------------------------------------------


def test_429_honours_retry_after(api: ScriptedServer, gh: Harness) -> None:
    api.on("GET", "/x", Reply(429, {"message": "slow down"}, {"retry-after": "7"}), Reply(200, []))
    assert gh.client.get("/x") == []
    assert gh.sleeps == [7.0]
    assert api.count() == 2


def test_primary_rate_limit_403_waits_until_the_reset_epoch(api: ScriptedServer, gh: Harness) -> None:
    limited = Reply(403, {"message": "API rate limit exceeded for installation ID 1."}, rate_headers(0, NOW + 5))
    api.on("GET", "/x", limited, Reply(200, {"ok": True}, rate_headers(4999, NOW + 3600)))
    assert gh.client.get("/x") == {"ok": True}
    assert gh.sleeps == [6.0]  # reset - now, plus one second of clock slack
    assert gh.client.rate_limit == RateLimit(5000, 4999, int(NOW + 3600), 1, "core")


def test_secondary_rate_limit_without_headers_waits_at_least_a_minute_then_longer(
    api: ScriptedServer, gh: Harness
) -> None:
    secondary = Reply(403, {"message": "You have exceeded a secondary rate limit. Please wait a few minutes."})
    api.on("DELETE", "/v/1", secondary, secondary, Reply(204))
    assert gh.client.delete("/v/1").status == 204
    assert len(gh.sleeps) == 2
    assert 60.0 <= gh.sleeps[0] < 62.0
    assert 120.0 <= gh.sleeps[1] < 122.0


def test_abuse_detection_wording_is_a_secondary_limit(api: ScriptedServer, gh: Harness) -> None:
    abuse = Reply(403, {"message": "You have triggered an abuse detection mechanism. Please wait a few minutes."})
    api.on("GET", "/x", abuse, Reply(200, 1))
    assert gh.client.get("/x") == 1
    assert len(gh.sleeps) == 1 and 60.0 <= gh.sleeps[0] < 62.0


def test_secondary_limit_with_retry_after_uses_the_header(api: ScriptedServer, gh: Harness) -> None:
    api.on(
        "GET",
        "/x",
        Reply(403, {"message": "You have exceeded a secondary rate limit"}, {"retry-after": "3"}),
        Reply(200, 1),
    )
    assert gh.client.get("/x") == 1
    assert gh.sleeps == [3.0]


def test_rate_limit_longer_than_the_wait_cap_raises_with_reset_time_and_no_sleep(
    api: ScriptedServer, gh: Harness
) -> None:
    api.on("GET", "/x", Reply(403, {"message": "API rate limit exceeded"}, rate_headers(0, NOW + 1800)))
    with pytest.raises(RateLimited) as caught:
        gh.client.get("/x")
    assert gh.sleeps == []
    assert api.count() == 1
    assert caught.value.reset_at == NOW + 1801
    assert caught.value.status == 403
    assert "API rate limit exceeded" in str(caught.value)


def test_total_wait_cap_is_shared_by_all_retries_of_one_call(api: ScriptedServer) -> None:
    made = harness(api.url, retry=RetryPolicy(max_total_wait=100))
    api.on("GET", "/x", Reply(429, {"message": "later"}, {"retry-after": "60"}))
    with pytest.raises(RateLimited):
        made.client.get("/x")
    assert made.sleeps == [60.0]  # a second 60 s wait would pass 100 s
    assert api.count() == 2


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, BadRequest), (401, Unauthorized), (403, Forbidden), (404, NotFound), (409, Conflict), (422, Unprocessable)],
)
def test_client_errors_are_not_retried_and_carry_githubs_message(
    api: ScriptedServer, gh: Harness, status: int, kind: type[GithubError]
) -> None:
    body = {
        "message": f"refused {status}",
        "documentation_url": "https://docs.github.com/rest/x",
        "errors": [{"code": "invalid"}],
    }
    api.on("GET", "/repos/o/r/thing", Reply(status, body, {"x-github-request-id": "AB:CD"}))
    with pytest.raises(kind) as caught:
        gh.client.get("/repos/o/r/thing")
    error = caught.value
    assert type(error) is kind
    assert api.count() == 1 and gh.sleeps == []
    assert (error.status, error.message, error.documentation_url) == (
        status,
        f"refused {status}",
        body["documentation_url"],
    )
    assert (error.method, error.path, error.request_id) == ("GET", "/repos/o/r/thing", "AB:CD")
    assert error.errors == [{"code": "invalid"}]


def test_5xx_is_retried_up_to_the_attempt_limit_with_full_jitter(api: ScriptedServer, gh: Harness) -> None:
    api.on("GET", "/x", Reply(502, b"<html>bad gateway</html>"))
    with pytest.raises(ServerError) as caught:
        gh.client.get("/x")
    assert api.count() == 5 == caught.value.attempts
    assert caught.value.message == "Bad Gateway"
    assert len(gh.sleeps) == 4
    for number, slept in enumerate(gh.sleeps, start=1):
        assert 0.0 <= slept <= 2.0 ** (number - 1)
    assert gh.client.stats.retries == 4


def test_5xx_then_success_returns_the_answer(api: ScriptedServer, gh: Harness) -> None:
    api.on("GET", "/x", Reply(500), Reply(503, None, {"retry-after": "2"}), Reply(200, {"n": 3}))
    assert gh.client.get("/x") == {"n": 3}
    assert gh.sleeps[1] == 2.0 and len(gh.sleeps) == 2


def test_connection_reset_is_retried_for_get(api: ScriptedServer, gh: Harness) -> None:
    api.on("GET", "/x", Reply(fault="reset"), Reply(fault="truncate", body=b"0123456789"), Reply(200, [1, 2]))
    assert gh.client.get("/x") == [1, 2]
    assert api.count() == 3
    assert gh.client.stats.transport_errors == 2


def test_post_is_not_repeated_after_an_ambiguous_failure(api: ScriptedServer, gh: Harness) -> None:
    api.on("POST", "/restore", Reply(502))
    with pytest.raises(ServerError):
        gh.client.post("/restore", json={"a": 1})
    api.on("POST", "/reset", Reply(fault="reset"), Reply(200, {}))
    with pytest.raises(TransportError) as caught:
        gh.client.post("/reset")
    assert api.count("POST") == 2 and gh.sleeps == []
    assert caught.value.status is None


def test_post_is_repeated_after_a_rate_limit_refusal(api: ScriptedServer, gh: Harness) -> None:
    api.on("POST", "/restore", Reply(429, {"message": "x"}, {"retry-after": "1"}), Reply(201, {"done": True}))
    assert gh.client.post("/restore", json={}) == {"done": True}
    assert json.loads(api.seen[1].body) == {}


def test_refused_connection_is_retried_even_for_post() -> None:
    with socket.socket() as placeholder:  # a port nobody listens on
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    made = harness(f"http://127.0.0.1:{port}")
    with pytest.raises(TransportError) as caught:
        made.client.post("/x", json={})
    assert made.client.stats.total == 5 and len(made.sleeps) == 4
    assert not caught.value.ambiguous_retry


def test_delete_404_after_a_retried_delete_is_reported_not_raised(api: ScriptedServer, gh: Harness) -> None:
    api.on("DELETE", "/v/1", Reply(502), Reply(404, {"message": "Not Found"}))
    answer = gh.client.delete("/v/1")
    assert (answer.status, answer.attempts, answer.ambiguous_retry) == (404, 2, True)
    api.on("DELETE", "/v/2", Reply(404, {"message": "Package version not found"}))
    with pytest.raises(NotFound) as caught:
        gh.client.delete("/v/2")
    assert caught.value.message == "Package version not found"
    assert gh.client.delete("/v/2", allow_statuses={404}).status == 404


def test_a_github_error_is_one_clean_error_line_under_run_action(
    api: ScriptedServer, gh: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    api.on("GET", "/repos/o/r", Reply(401, {"message": "Bad credentials"}))
    capsys.readouterr()
    assert gha.run_action(lambda: gh.client.get("/repos/o/r") and None) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert line == "::error title=GitHub rejected the token (401)::Bad credentials"


# --- rate-limit budget and counters ---------------------------------------------------------------------


def test_budget_is_tracked_from_every_response(api: ScriptedServer) -> None:
    made = harness(api.url, rate_margin=10)
    client = made.client
    assert client.rate_limit is None and client.can_spend(10_000)
    api.on("GET", "/x", Reply(200, [], rate_headers(30, limit=1000)))
    client.get("/x")
    assert client.rate_limit == RateLimit(1000, 30, int(NOW + 3600), 970, "core")
    assert client.spendable() == 20
    assert client.can_spend(20) and not client.can_spend(21)
    assert client.can_spend(25, margin=5)
    client.reserve(20)
    with pytest.raises(RateBudgetExhausted) as caught:
        client.reserve(21)
    assert caught.value.reset_at == NOW + 3600
    assert api.count() == 1  # reserve never asks GitHub


def test_a_passed_reset_restores_the_whole_limit(api: ScriptedServer, gh: Harness) -> None:
    api.on("GET", "/x", Reply(200, [], rate_headers(0, reset=NOW - 1)))
    gh.client.get("/x")
    assert gh.client.spendable() == 5000 - gh.client.rate_margin


def test_refresh_rate_limit_reads_every_resource(api: ScriptedServer, gh: Harness) -> None:
    body = {
        "resources": {
            "core": {"limit": 1000, "remaining": 900, "reset": 1700003600, "used": 100},
            "search": {"limit": 30, "remaining": 30, "reset": 1700000060, "used": 0},
        },
        "rate": {"limit": 1000, "remaining": 900, "reset": 1700003600, "used": 100},
    }
    api.on("GET", "/rate_limit", Reply(200, body))
    limits = gh.client.refresh_rate_limit()
    assert limits["core"] == RateLimit(1000, 900, 1700003600, 100, "core")
    assert limits["search"].remaining == 30


def test_request_counters(api: ScriptedServer, gh: Harness) -> None:
    api.on("GET", "/x", Reply(500), Reply(200, []))
    api.on("DELETE", "/x", Reply(204))
    gh.client.get("/x")
    gh.client.delete("/x")
    stats = gh.client.stats.as_dict()
    assert stats["total"] == 3 == api.count()
    assert stats["by_method"] == {"GET": 2, "DELETE": 1}
    assert stats["by_status"] == {"200": 1, "204": 1, "500": 1}
    assert stats["retries"] == 1


# --- pagination ------------------------------------------------------------------------------------------


def paged(server: ScriptedServer, path: str, pages: list[Any], *, cursor: str = "after") -> None:
    """Serve `pages` in order with Link headers whose next URLs use an opaque cursor (no page numbers)."""

    def reply_for(index: int) -> Callable[[Seen], Reply]:
        def make(_: Seen) -> Reply:
            headers: dict[str, str] = {}
            if index + 1 < len(pages):
                nxt = f"{server.url}{path}?per_page=2&{cursor}=tok{index + 1}"
                headers["Link"] = f'<{nxt}>; rel="next", <{server.url}{path}?per_page=2&{cursor}=end>; rel="last"'
            return Reply(200, pages[index], headers)

        return make

    server.on("GET", path, *[reply_for(i) for i in range(len(pages))])


def test_pagination_follows_link_next_for_arrays(api: ScriptedServer, gh: Harness) -> None:
    paged(api, "/orgs/o/packages/container/app/versions", [[1, 2], [3, 4], [5]])
    items = list(gh.client.paginate("/orgs/o/packages/container/app/versions", params={"state": "active"}))
    assert items == [1, 2, 3, 4, 5]
    targets = [seen.target for seen in api.seen]
    assert targets[0] == "/orgs/o/packages/container/app/versions?state=active&per_page=100"
    assert targets[1:] == [
        "/orgs/o/packages/container/app/versions?per_page=2&after=tok1",
        "/orgs/o/packages/container/app/versions?per_page=2&after=tok2",
    ]


def test_pagination_of_wrapped_bodies_names_the_key(api: ScriptedServer, gh: Harness) -> None:
    runs = [
        {"total_count": 3, "workflow_runs": [{"id": 1}, {"id": 2}]},
        {"total_count": 3, "workflow_runs": [{"id": 3}]},
    ]
    paged(api, "/repos/o/r/actions/runs", runs)
    pages = list(gh.client.iter_pages("/repos/o/r/actions/runs", items_key="workflow_runs", per_page=2))
    assert [page.total_count for page in pages] == [3, 3]
    assert [run["id"] for page in pages for run in page.items] == [1, 2, 3]
    assert pages[0].has_next and not pages[1].has_next
    assert api.seen[0].target == "/repos/o/r/actions/runs?per_page=2"
    with pytest.raises(UnexpectedResponse) as caught:
        list(gh.client.paginate("/repos/o/r/actions/runs"))
    assert "workflow_runs" in caught.value.message


def test_pagination_limits_stop_fetching(api: ScriptedServer, gh: Harness) -> None:
    paged(api, "/l", [[1, 2], [3, 4], [5, 6]])
    assert list(gh.client.paginate("/l", max_items=3)) == [1, 2, 3]
    assert api.count() == 2
    api.seen.clear()
    paged(api, "/l", [[1, 2], [3, 4], [5, 6]])
    assert list(gh.client.paginate("/l", max_pages=1)) == [1, 2]
    assert api.count() == 1


# --- redirects, downloads and scrubbing ------------------------------------------------------------------


def test_artifact_redirect_to_another_host_drops_authorization_and_logs_no_signature(
    api: ScriptedServer, storage: ScriptedServer, gh: Harness, tmp_path: Path
) -> None:
    payload = bytes(range(256)) * 1000
    signed = f"{storage.url}/blob/artifact.zip?sig=SECRETSIG&se=2030-01-01"
    api.on("GET", "/repos/o/r/actions/artifacts/7/zip", Reply(302, None, {"Location": signed}))
    storage.on("GET", "/blob/artifact.zip", Reply(200, payload))
    result = gh.client.download("/repos/o/r/actions/artifacts/7/zip", tmp_path / "a.zip")
    assert (tmp_path / "a.zip").read_bytes() == payload
    assert (result.size, result.sha256) == (len(payload), hashlib.sha256(payload).hexdigest())
    assert api.seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    (fetched,) = storage.seen
    assert "authorization" not in fetched.headers
    assert "x-github-api-version" not in fetched.headers
    assert fetched.target == "/blob/artifact.zip?sig=SECRETSIG&se=2030-01-01"
    assert any("127.0.0.2" in line for line in gh.logs)
    assert not any("SECRETSIG" in line or TOKEN in line for line in gh.logs)
    assert result.display_url == f"{storage.url}/blob/artifact.zip?REDACTED"
    assert gh.client.stats.redirects == 1 and gh.client.stats.total == 2
    assert list(tmp_path.iterdir()) == [tmp_path / "a.zip"]


def test_authorization_never_goes_to_another_host_even_when_asked(storage: ScriptedServer, gh: Harness) -> None:
    storage.on("GET", "/file", Reply(200, {"x": 1}))
    gh.client.request("GET", f"{storage.url}/file", headers={"Authorization": f"Bearer {TOKEN}"})
    assert "authorization" not in storage.seen[0].headers


def test_same_origin_redirect_keeps_authorization(api: ScriptedServer, gh: Harness) -> None:
    api.on("GET", "/repos/old/name", Reply(301, {"message": "Moved"}, {"Location": "/repositories/42"}))
    api.on("GET", "/repositories/42", Reply(200, {"id": 42}))
    assert gh.client.get("/repos/old/name") == {"id": 42}
    assert api.seen[1].headers["authorization"] == f"Bearer {TOKEN}"


def test_redirect_loop_is_refused(api: ScriptedServer, gh: Harness) -> None:
    api.on("GET", "/loop", Reply(302, None, {"Location": "/loop"}))
    with pytest.raises(RedirectError):
        gh.client.get("/loop")
    assert api.count() == 6


def test_download_larger_than_allowed_leaves_nothing(
    api: ScriptedServer, storage: ScriptedServer, gh: Harness, tmp_path: Path
) -> None:
    api.on("GET", "/zip", Reply(302, None, {"Location": f"{storage.url}/big?sig=s"}))
    storage.on("GET", "/big", Reply(200, b"x" * 5000))
    with pytest.raises(DownloadTooLarge):
        gh.client.download("/zip", tmp_path / "big.zip", max_bytes=4999)
    assert list(tmp_path.iterdir()) == []
    assert storage.count() == 1  # not retried


def test_download_restarts_from_the_api_after_a_broken_transfer(
    api: ScriptedServer, storage: ScriptedServer, gh: Harness, tmp_path: Path
) -> None:
    api.on("GET", "/zip", Reply(302, None, {"Location": f"{storage.url}/blob?sig=s"}))
    storage.on("GET", "/blob", Reply(200, b"partial", fault="truncate"), Reply(200, b"complete"))
    result = gh.client.download("/zip", tmp_path / "a.zip")
    assert (tmp_path / "a.zip").read_bytes() == b"complete" and result.size == 8
    assert api.count() == 2 and storage.count() == 2
    assert list(tmp_path.iterdir()) == [tmp_path / "a.zip"]


def test_download_error_from_storage_is_typed(
    api: ScriptedServer, storage: ScriptedServer, gh: Harness, tmp_path: Path
) -> None:
    api.on("GET", "/zip", Reply(302, None, {"Location": f"{storage.url}/blob?sig=EXPIRED"}))
    storage.on("GET", "/blob", Reply(403, b"<Error>AuthenticationFailed</Error>"))
    with pytest.raises(Forbidden) as caught:
        gh.client.download("/zip", tmp_path / "a.zip")
    assert "EXPIRED" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_scrub_url() -> None:
    api = "https://api.github.com"
    assert scrub_url("https://api.github.com/x?per_page=100&page=2&token=abc", api) == (
        "https://api.github.com/x?per_page=100&page=2&token=REDACTED"
    )
    assert scrub_url("https://blob.core.windows.net/c/a.zip?sv=1&sig=abc%2F#frag", api) == (
        "https://blob.core.windows.net/c/a.zip?REDACTED"
    )
    assert scrub_url("https://user:pw@example.com/p") == "https://example.com/p"


def test_transport_error_text_has_no_query_string() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    made = harness(f"http://127.0.0.1:{port}", retry=RetryPolicy(max_attempts=1))
    with pytest.raises(TransportError) as caught:
        made.client.get(f"http://127.0.0.1:{port}/x?sig=SECRETSIG")
    assert "SECRETSIG" not in str(caught.value)
    assert "Connection refused" in str(caught.value) or "NewConnectionError" in str(caught.value)


def test_api_path_encodes_each_segment() -> None:
    assert api_path("orgs", "o", "packages", "container", "team/app", "versions", 5) == (
        "/orgs/o/packages/container/team%2Fapp/versions/5"
    )


def test_importing_the_module_loads_no_http_stack() -> None:
    code = "import sys, charon_ci.github; print(','.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
        .stdout.strip()
        .split(",")
    )
    assert "requests" not in loaded and "urllib3" not in loaded


def test_link_header_with_commas_inside_urls(api: ScriptedServer, gh: Harness) -> None:
    nxt = f"{api.url}/runs?status=queued,in_progress&cursor=b"
    api.on("GET", "/runs", Reply(200, [], {"Link": f'<{api.url}/runs?page=1>; rel="first", <{nxt}>; rel="next"'}))
    (page,) = gh.client.iter_pages("/runs", max_pages=1)
    assert page.response.next_url == nxt


# --- against the fake GitHub (tests/support/fakegithub) --------------------------------------------------

VERSIONS_OPERATION = "packages/get-all-package-versions-for-package-owned-by-org"
VERSIONS_PATH = "/orgs/acme/packages/container/app/versions"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    # Frozen clock: the client's recorded sleeps advance it, so rate-limit windows pass without real waiting.
    yield from serve_fake_github(clock=Clock(frozen=True))


def fake_client(fake: FakeGitHub, sleeps: list[float], **options: Any) -> GithubClient:
    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        fake.clock.sleep(seconds)

    return GithubClient.from_env(
        fake.env(),
        sleep=sleep,
        clock=fake.clock.now,
        rng=random.Random(99),  # noqa: S311 - jitter in a test
        log=lambda _: None,
        notify=lambda _: None,
        **options,
    )


def add_versions(fake: FakeGitHub, count: int) -> set[int]:
    package = fake.add_package("acme", "app")
    backend = package.backend
    assert isinstance(backend, MemoryBackend)
    return {backend.add_version(f"sha256:{index:064x}", [f"v{index}"]).id for index in range(count)}


def test_fake_pagination_over_1234_versions_takes_exactly_13_requests(fake: FakeGitHub) -> None:
    ids = add_versions(fake, 1234)
    client = fake_client(fake, [])
    versions = list(client.paginate(VERSIONS_PATH))
    assert len(versions) == 1234 and {version["id"] for version in versions} == ids
    assert fake.count("GET", operation=VERSIONS_OPERATION) == 13 == len(fake.requests)
    assert client.stats.total == 13 and client.stats.by_method == {"GET": 13}
    assert all(record.query.get("per_page") == ["100"] for record in fake.requests)
    assert fake.contract_checks[VERSIONS_OPERATION] == 13


def test_fake_artifact_download_goes_to_storage_without_the_token(fake: FakeGitHub, tmp_path: Path) -> None:
    run = fake.add_run("acme/app")
    artifact = fake.add_artifact(run, "image", files={"image.tar": b"layer" * 10_000})
    client = fake_client(fake, [])
    result = client.download(f"/repos/acme/app/actions/artifacts/{artifact.id}/zip", tmp_path / "image.zip")
    assert (tmp_path / "image.zip").read_bytes() == artifact.data
    assert result.sha256 == hashlib.sha256(artifact.data).hexdigest()
    (api_call,) = fake.requests
    assert (api_call.status, api_call.headers["authorization"]) == (302, f"Bearer {fake.token}")
    (fetch,) = fake.storage_requests
    assert fetch.status == 200 and "authorization" not in fetch.headers
    assert "sig=" not in result.display_url and result.display_url.endswith("/image.zip?REDACTED")


def test_fake_fault_injection_still_returns_the_full_list(fake: FakeGitHub) -> None:
    ids = add_versions(fake, 1234)
    fake.faults.seed(20240601)
    fake.faults.errors(0.2, status=502)
    fake.faults.resets(0.1)
    sleeps: list[float] = []
    client = fake_client(fake, sleeps, retry=RetryPolicy(max_attempts=8))
    versions = list(client.paginate(VERSIONS_PATH))
    assert {version["id"] for version in versions} == ids and len(versions) == 1234
    failed = [record for record in fake.requests if record.status != 200]
    assert any(record.reset for record in failed) and any(record.status == 502 for record in failed)
    assert len(fake.requests) == 13 + len(failed) == client.stats.total
    assert client.stats.retries == len(failed) == len(sleeps)


def test_fake_secondary_limit_is_waited_out_and_every_delete_lands(fake: FakeGitHub) -> None:
    ids = sorted(add_versions(fake, 11))[:10]  # GitHub refuses to delete the last tagged version
    fake.faults.secondary_limit(points_per_minute=20, status=429)  # a DELETE costs 5: four a minute
    sleeps: list[float] = []
    client = fake_client(fake, sleeps)
    for version_id in ids:
        assert client.delete(f"{VERSIONS_PATH}/{version_id}").status == 204
    refused = fake.count("DELETE", status=429)
    assert fake.count("DELETE", status=204) == 10 and refused >= 2
    assert len(sleeps) == refused and all(1 <= wait <= 60 for wait in sleeps)  # retry-after, not the 60 s guess


def test_fake_primary_limit_exhausted_raises_with_the_reset_time(fake: FakeGitHub) -> None:
    add_versions(fake, 3)
    snapshot = fake.set_rate_limit(remaining=0)
    sleeps: list[float] = []
    client = fake_client(fake, sleeps, retry=RetryPolicy(max_total_wait=60))
    with pytest.raises(RateLimited) as caught:
        list(client.paginate(VERSIONS_PATH))
    assert len(fake.requests) == 1 and sleeps == []
    assert caught.value.reset_at == snapshot.reset + 1
    assert client.rate_limit is not None and client.rate_limit.remaining == 0
    assert not client.can_spend(1)


def test_fake_budget_follows_the_servers_count(fake: FakeGitHub) -> None:
    add_versions(fake, 250)
    fake.set_rate_limit(limit=1000, remaining=100)
    client = fake_client(fake, [], rate_margin=90)
    list(client.paginate(VERSIONS_PATH))
    server = fake.rate_limit()
    assert client.rate_limit == RateLimit(server.limit, server.remaining, server.reset, server.used, "core")
    assert client.rate_limit.remaining == 97
    assert client.spendable() == 7 and client.can_spend(7) and not client.can_spend(8)


def test_non_ascii_digits_in_rate_headers_are_ignored_not_a_crash(api: ScriptedServer, gh: Harness) -> None:
    # `²` (a Latin-1 header byte) passes str.isdigit but not int(): it must read as "no header".
    odd = {"retry-after": "\u00b2", "x-ratelimit-reset": "\u00b2", "x-ratelimit-remaining": "0"}
    api.on("GET", "/x", Reply(429, {"message": "slow down"}, odd), Reply(200, []))
    assert gh.client.get("/x") == []
    assert len(gh.sleeps) == 1 and gh.sleeps[0] >= 60.0  # the secondary-limit default, not the header


@pytest.mark.parametrize("status", [403, 429])
def test_fake_primary_limit_as_403_or_429_is_waited_out_until_the_reset(fake: FakeGitHub, status: int) -> None:
    add_versions(fake, 3)
    fake.settings.primary_limit_status = status
    snapshot = fake.set_rate_limit(remaining=0)
    fake.clock.advance(snapshot.reset - fake.clock.now() - 30)  # the window ends in 30 s
    sleeps: list[float] = []
    client = fake_client(fake, sleeps)
    assert len(list(client.paginate(VERSIONS_PATH))) == 3
    assert [record.status for record in fake.requests] == [status, 200]
    assert sleeps == [31.0]  # x-ratelimit-reset, plus a second of slack; no retry-after to read
    assert client.rate_limit is not None and client.rate_limit.remaining == 4999


@pytest.mark.parametrize("status", [403, 429])
def test_fake_secondary_limit_without_retry_after_waits_at_least_a_minute(fake: FakeGitHub, status: int) -> None:
    ids = sorted(add_versions(fake, 11))[:10]
    fake.faults.secondary_limit(points_per_minute=20, status=status, retry_after=False)  # four DELETEs a minute
    sleeps: list[float] = []
    client = fake_client(fake, sleeps, retry=RetryPolicy(max_total_wait=600))
    for version_id in ids:
        assert client.delete(f"{VERSIONS_PATH}/{version_id}").status == 204
    refused = fake.calls("DELETE", status=status)
    assert len(refused) >= 2 and all("retry-after" not in record.response_headers for record in refused)
    assert fake.count("DELETE", status=204) == 10
    assert len(sleeps) == len(refused) and all(wait >= 60.0 for wait in sleeps)


def test_fake_secondary_limit_on_the_last_request_of_the_budget_waits_for_the_reset(fake: FakeGitHub) -> None:
    add_versions(fake, 3)
    snapshot = fake.set_rate_limit(remaining=1)
    fake.faults.secondary_next(1, status=403)  # no retry-after, and x-ratelimit-remaining is now 0
    sleeps: list[float] = []
    client = fake_client(fake, sleeps)
    with pytest.raises(RateLimited) as caught:  # the reset is an hour away: past the 300 s cap
        client.get(VERSIONS_PATH)
    assert sleeps == [] and caught.value.reset_at == snapshot.reset + 1
    fake.clock.advance(snapshot.reset - fake.clock.now() - 10)
    fake.faults.secondary_next(1, status=403)
    fake.set_rate_limit(remaining=1)
    assert len(client.get(VERSIONS_PATH)) == 3
    assert sleeps == [11.0]


def test_fake_secondary_limits_without_retry_after_stop_at_the_wait_cap(fake: FakeGitHub) -> None:
    add_versions(fake, 3)
    rule = fake.faults.secondary_next(5, status=429)
    sleeps: list[float] = []
    client = fake_client(fake, sleeps, retry=RetryPolicy(max_total_wait=200))
    with pytest.raises(RateLimited) as caught:
        client.get(VERSIONS_PATH)
    # 60 s, then 120 s (doubling): a third wait of 240 s would pass the 200 s cap, so the call gives up.
    assert [round(wait) for wait in sleeps] == [60, 120] and rule.fired == 3
    assert caught.value.secondary and caught.value.status == 429
