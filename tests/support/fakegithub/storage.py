"""The artifact storage host: a second loopback address serving signed, expiring artifact URLs.

Like GitHub's blob storage, it serves the zip only to a request WITHOUT an `Authorization` header; a
request that carries one is refused (400) and recorded as a token leak, which fails the test at teardown
unless the test takes it with `gh.take_token_leaks()`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import quote

from .app import RequestRecord
from .clock import Clock
from .routes import Request, Response
from .state import State

XML = "application/xml"


def _error(status: int, code: str, message: str) -> Response:
    body = f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return Response(status, body.encode(), {"content-type": XML})


class ArtifactStorage:
    def __init__(self, state: State, clock: Clock, ttl: float) -> None:
        self._state = state
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self.ttl = ttl
        self.base_url = ""  # set once the server is bound
        self.log: list[RequestRecord] = []
        self.token_leaks: list[RequestRecord] = []

    def _signature(self, artifact_id: int, expires: int) -> str:
        return hmac.new(self._key, f"{artifact_id}:{expires}".encode(), hashlib.sha256).hexdigest()

    def sign(self, artifact_id: int) -> str:
        expires = int(self._clock.now() + self.ttl)
        name = quote(self._state.artifacts[artifact_id].name, safe="")
        return (f"{self.base_url}/artifacts/{artifact_id}/{name}.zip"
                f"?se={expires}&sp=r&sig={self._signature(artifact_id, expires)}")

    def handle(self, request: Request) -> Response:
        record = RequestRecord(request.method, request.path, request.query, request.headers, "storage",
                               at=self._clock.now())
        self.log.append(record)
        response = self._answer(request, record)
        record.status = response.status
        record.response_headers = dict(response.headers)
        return response

    def _answer(self, request: Request, record: RequestRecord) -> Response:
        if "authorization" in request.headers:
            self.token_leaks.append(record)
            return _error(400, "InvalidAuthenticationInfo",
                          "Only one auth mechanism allowed; only the signature query parameter is accepted.")
        parts = request.path.strip("/").split("/")
        if request.method != "GET" or len(parts) != 3 or parts[0] != "artifacts" or not parts[1].isdigit():
            return _error(404, "ResourceNotFound", "The specified resource does not exist.")
        artifact_id = int(parts[1])
        expires_raw = request.arg("se") or ""
        signature = request.arg("sig") or ""
        if not expires_raw.isdigit() or not hmac.compare_digest(signature, self._signature(artifact_id,
                                                                                            int(expires_raw))):
            return _error(403, "AuthenticationFailed", "Signature did not match.")
        if self._clock.now() > int(expires_raw):
            return _error(403, "AuthenticationFailed", "Signature not valid in the specified time frame.")
        with self._state.lock:
            item = self._state.artifacts.get(artifact_id)
            # An expired artifact's blob is deleted, even behind a URL signed just before.
            data = None if item is None or item.expired else item.data
            name = "" if item is None else item.name
        if data is None:
            return _error(404, "BlobNotFound", "The specified blob does not exist.")
        return Response(200, data, {"content-type": "application/zip",
                                    "content-disposition": f'attachment; filename="{quote(name)}.zip"'})
