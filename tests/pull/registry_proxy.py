"""A fault-injecting HTTP proxy in front of the real loopback registry, for action-pull-image's tests.

Both the action's registry client and the engine's pull go through it, so a rule can make the registry answer
503 twice, 429 `toomanyrequests`, `manifest unknown` only to the engine, or serve the wrong bytes for a digest,
while everything else is the real registry's answer. Every request is logged with the wall-clock time its
answer was sent (the bench measures from it).
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization"}


@dataclass
class Rule:
    """Answer `status` (with a distribution error body) to the next `count` requests that match."""

    path: re.Pattern[str]
    status: int
    count: int
    agent: re.Pattern[str] | None = None
    code: str = "UNAVAILABLE"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # served instead of an error document (tampering)
    fired: int = 0

    def matches(self, path: str, agent: str) -> bool:
        if self.fired >= self.count or not self.path.search(path):
            return False
        return self.agent is None or bool(self.agent.search(agent))


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    status: int
    agent: str
    at: float  # time.time() when the answer was sent
    injected: bool


class RegistryProxy:
    """`RegistryProxy(upstream_host).start()`; `.host` goes into image references."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.rules: list[Rule] = []
        self.log: list[Seen] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                return

            def _serve(self) -> None:
                proxy._handle(self)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> RegistryProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- rules ---------------------------------------------------------------------------------------------

    def fail_next(
        self,
        count: int,
        status: int = 503,
        *,
        path: str = r"/manifests/",
        agent: str | None = None,
        code: str = "UNAVAILABLE",
        headers: dict[str, str] | None = None,
    ) -> Rule:
        rule = Rule(re.compile(path), status, count, re.compile(agent) if agent else None, code, dict(headers or {}))
        with self._lock:
            self.rules.append(rule)
        return rule

    def serve_instead(self, path: str, body: bytes, content_type: str, *, count: int = 1000) -> Rule:
        """Answer 200 with `body` (and the asked-for digest in Docker-Content-Digest) to matching requests."""
        rule = Rule(re.compile(path), 200, count, headers={"Content-Type": content_type}, body=body)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.log.clear()

    def seen(self, path: str = "", *, agent: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self.log if re.search(path, s.path) and (agent is None or re.search(agent, s.agent))]

    # --- serving -------------------------------------------------------------------------------------------

    def _rule_for(self, path: str, agent: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(path, agent):
                    rule.fired += 1
                    return rule
        return None

    def _record(self, handler: BaseHTTPRequestHandler, status: int, injected: bool) -> None:
        seen = Seen(handler.command, handler.path, status, handler.headers.get("User-Agent", ""), time.time(), injected)
        with self._lock:
            self.log.append(seen)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        agent = handler.headers.get("User-Agent", "")
        rule = self._rule_for(handler.path, agent)
        if rule is not None:
            self._answer_rule(handler, rule)
            return
        connection = http.client.HTTPConnection(self.upstream, timeout=120)
        try:
            # header by header: clients send Accept several times (a dict would keep only the last)
            connection.putrequest(handler.command, handler.path, skip_host=True, skip_accept_encoding=True)
            connection.putheader("Host", self.upstream)
            for key, value in handler.headers.items():
                if key.lower() not in HOP_BY_HOP | {"host", "content-length"}:
                    connection.putheader(key, value)
            if body or handler.command in ("POST", "PUT", "PATCH"):
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body or None)
            answer = connection.getresponse()
            payload = answer.read()
            handler.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in HOP_BY_HOP | {"content-length"}:
                    handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(payload)
            self._record(handler, answer.status, False)
        finally:
            connection.close()

    def _answer_rule(self, handler: BaseHTTPRequestHandler, rule: Rule) -> None:
        if rule.body is not None:
            payload = rule.body
            headers = dict(rule.headers)
            digest = handler.path.rsplit("/", 1)[-1]
            if digest.startswith("sha256:"):
                headers["Docker-Content-Digest"] = digest
        else:
            message = {503: "service unavailable", 429: "too many requests", 404: "manifest unknown"}.get(
                rule.status, "injected"
            )
            payload = json.dumps({"errors": [{"code": rule.code, "message": message, "detail": None}]}).encode()
            headers = {"Content-Type": "application/json", **rule.headers}
        handler.send_response(rule.status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(payload)
        self._record(handler, rule.status, True)
