"""The OCI registry client and its parsing core.

Unit tests use a small HTTP server on 127.0.0.1 that plays token service and registry (auth challenges,
pagination, faults the loopback registry cannot produce). Integration tests read, measure and delete real
images pushed to the loopback `docker-registry` by tests/support/images.py.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from charon_ci import oci
from charon_ci.registry import (
    MAX_RETRY_AFTER,
    DigestMismatch,
    InvalidResponse,
    ManifestUnknown,
    NameUnknown,
    RateLimited,
    RegistryClient,
    RegistryUnavailable,
    Unauthorized,
    Unsupported,
    parse_image_reference,
    retry_after_seconds,
)
from tests.support import services
from tests.support.images import ImageFactory, PushedImage, PushedIndex
from tests.support.services import Registry


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha(data), "size": len(data), **extra}


IMAGE = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": oci.OCI_MANIFEST,
        "config": descriptor(oci.OCI_CONFIG, b"config"),
        "layers": [descriptor(oci.OCI_LAYER_GZIP, b"layer-1"), descriptor(oci.OCI_LAYER_GZIP, b"layer-2")],
    }
).encode()


# --- parsing ----------------------------------------------------------------------------------------------


def test_parse_index_with_buildx_attestation() -> None:
    amd64 = descriptor(oci.OCI_MANIFEST, b"amd64", platform={"os": "linux", "architecture": "amd64"})
    arm64 = descriptor(oci.OCI_MANIFEST, b"arm64", platform={"os": "linux", "architecture": "arm64", "variant": "v8"})
    proof = descriptor(
        oci.OCI_MANIFEST,
        b"proof",
        platform={"os": "unknown", "architecture": "unknown"},
        annotations={"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": sha(b"amd64")},
    )
    body = json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [amd64, arm64, proof]}).encode()
    index = oci.parse_manifest(body, oci.OCI_INDEX)
    assert isinstance(index, oci.ImageIndex)
    assert index.digest == sha(body) and index.size == len(body)
    assert [str(d.platform) for d in index.platform_manifests] == ["linux/amd64", "linux/arm64/v8"]
    assert [d.digest for d in index.attestation_manifests] == [sha(b"proof")]
    assert index.attestation_manifests[0].attests == sha(b"amd64")
    assert index.platform_manifests[0].attests is None
    assert index.for_platform(oci.Platform.parse("linux/arm64")) == index.manifests[1]
    assert index.for_platform(oci.Platform.parse("linux/arm64/v7")) is None
    assert index.for_platform(oci.Platform.parse("linux/s390x")) is None


def test_parse_docker_image_manifest_and_blob_sizes() -> None:
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": oci.DOCKER_MANIFEST,
            "config": descriptor(oci.DOCKER_CONFIG, b"c"),
            # the same layer twice (a Dockerfile can produce that): stored once, counted once
            "layers": [descriptor(oci.DOCKER_LAYER_GZIP, b"ll"), descriptor(oci.DOCKER_LAYER_GZIP, b"ll")],
        }
    ).encode()
    manifest = oci.parse_manifest(body, oci.DOCKER_MANIFEST + "; charset=utf-8")
    assert isinstance(manifest, oci.ImageManifest)
    assert manifest.media_type == oci.DOCKER_MANIFEST
    assert manifest.config.size == 1 and [layer.size for layer in manifest.layers] == [2, 2]
    assert manifest.blob_bytes == 3


def test_parse_referrer_with_subject_and_artifact_type() -> None:
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": oci.OCI_MANIFEST,
            "artifactType": "application/spdx+json",
            "config": descriptor(oci.OCI_EMPTY, b"{}"),
            "layers": [descriptor("application/spdx+json", b"sbom")],
            "subject": descriptor(oci.OCI_MANIFEST, b"amd64"),
            "annotations": {"org.opencontainers.image.created": "2026-02-04T00:00:00Z"},
        }
    ).encode()
    manifest = oci.parse_manifest(body)
    assert manifest.subject is not None and manifest.subject.digest == sha(b"amd64")
    assert manifest.artifact_type == "application/spdx+json"
    assert manifest.annotations == {"org.opencontainers.image.created": "2026-02-04T00:00:00Z"}


def test_media_type_may_be_absent_then_shape_decides() -> None:
    bare_index = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    assert oci.parse_manifest(bare_index, "application/octet-stream").media_type == oci.OCI_INDEX
    bare_image = json.dumps({k: v for k, v in json.loads(IMAGE).items() if k != "mediaType"}).encode()
    assert oci.parse_manifest(bare_image, None).media_type == oci.OCI_MANIFEST
    assert oci.parse_manifest(bare_image, oci.DOCKER_MANIFEST).media_type == oci.DOCKER_MANIFEST


@pytest.mark.parametrize(
    ("body", "content_type", "complaint"),
    [
        (b"<html>", None, "not JSON"),
        (b"[]", None, "not a JSON object"),
        (json.dumps({"schemaVersion": 1, "name": "x"}).encode(), None, "schemaVersion"),
        (IMAGE, oci.OCI_INDEX, "contradicts"),
        (json.dumps({"schemaVersion": 2, "mediaType": "text/plain"}).encode(), None, "unsupported"),
        (json.dumps({"schemaVersion": 2, "config": {}}).encode(), None, "unknown manifest type"),
        (IMAGE.replace(b'"size": 6', b'"size": -6'), None, "size"),
        (IMAGE.replace(sha(b"config").encode(), b"sha256:XYZ"), None, "digest"),
        (json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": oci.OCI_MANIFEST}]}).encode(), None, "digest"),
        (b" " * (oci.MAX_MANIFEST_BYTES + 1), None, "larger"),
    ],
)
def test_invalid_manifests_are_refused_with_a_reason(body: bytes, content_type: str | None, complaint: str) -> None:
    with pytest.raises(oci.InvalidManifest, match=complaint):
        oci.parse_manifest(body, content_type)


def test_names_tags_digests() -> None:
    assert oci.is_repository("wikid82/charon") and oci.is_repository("a/b-c/d__e.f")
    for bad in ("Wikid82/charon", "a//b", "-a", "a/", "a b", "a/../b", "x" * 256):
        assert not oci.is_repository(bad), bad
    assert oci.is_tag("pr-123-abc1234") and oci.is_tag("_x") and oci.is_tag("a" * 128)
    for bad in ("", "-x", ".x", "a" * 129, "a/b", "a:b"):
        assert not oci.is_tag(bad), bad
    digest = sha(b"x")
    assert oci.is_digest(digest) and not oci.is_digest(digest.upper()) and not oci.is_digest(digest[:-1])
    assert oci.referrers_tag(digest) == "sha256-" + digest[7:]
    assert oci.cosign_tag(digest, "sig") == "sha256-" + digest[7:] + ".sig"
    assert oci.subject_of_tag(oci.cosign_tag(digest, "att")) == (digest, "att")
    assert oci.subject_of_tag(oci.referrers_tag(digest)) == (digest, None)
    assert oci.subject_of_tag("sha-abc1234") is None
    with pytest.raises(ValueError, match="suffix"):
        oci.cosign_tag(digest, "sbom.json")


def test_image_size_counts_each_blob_once_and_leaves_out_already_counted() -> None:
    shared = descriptor(oci.OCI_LAYER_GZIP, b"base" * 100)

    def image(own: bytes) -> oci.ImageManifest:
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": oci.OCI_MANIFEST,
                "config": descriptor(oci.OCI_CONFIG, own),
                "layers": [shared, descriptor(oci.OCI_LAYER_GZIP, own * 10)],
            }
        ).encode()
        manifest = oci.parse_manifest(body)
        assert isinstance(manifest, oci.ImageManifest)
        return manifest

    amd64, arm64 = image(b"amd"), image(b"arm")
    index = oci.parse_manifest(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [descriptor(oci.OCI_MANIFEST, amd64.raw), descriptor(oci.OCI_MANIFEST, arm64.raw)],
            }
        ).encode()
    )
    size = oci.image_size(index, [amd64, arm64])
    assert size.blob_bytes == 400 + (3 + 30) * 2  # the shared base once
    assert size.manifest_bytes == index.size + amd64.size + arm64.size
    assert size.new_bytes == size.total_bytes
    kept = oci.image_size(amd64)
    assert kept.total_bytes == 400 + 3 + 30 + amd64.size
    after_kept = oci.image_size(index, [amd64, arm64], already_counted=kept.digests)
    assert after_kept.new_bytes == 3 + 30 + index.size + arm64.size  # what deleting the index frees


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:wikid82/charon:pull"',
            [
                (
                    "bearer",
                    {"realm": "https://ghcr.io/token", "service": "ghcr.io", "scope": "repository:wikid82/charon:pull"},
                )
            ],
        ),
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            'scope="repository:library/alpine:pull,push",error="insufficient_scope"',
            [
                (
                    "bearer",
                    {
                        "realm": "https://auth.docker.io/token",
                        "service": "registry.docker.io",
                        "scope": "repository:library/alpine:pull,push",
                        "error": "insufficient_scope",
                    },
                )
            ],
        ),
        ('Basic realm="Registry Realm"', [("basic", {"realm": "Registry Realm"})]),
        (
            'basic realm="a, \\"b\\"", Bearer realm=https://t/x',
            [("basic", {"realm": 'a, "b"'}), ("bearer", {"realm": "https://t/x"})],
        ),
        ("", []),
    ],
)
def test_parse_www_authenticate(header: str, expected: list[tuple[str, dict[str, str]]]) -> None:
    assert [(c.scheme, dict(c.params)) for c in oci.parse_www_authenticate(header)] == expected


_param_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)


@given(realm=_param_text, service=_param_text, scope=_param_text)
def test_www_authenticate_round_trips_any_quoted_value(realm: str, service: str, scope: str) -> None:
    def quote(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    header = f"Bearer realm={quote(realm)}, service={quote(service)},scope={quote(scope)}"
    (challenge,) = oci.parse_www_authenticate(header)
    assert challenge.scheme == "bearer"
    assert dict(challenge.params) == {"realm": realm, "service": service, "scope": scope}


def test_link_next() -> None:
    base = "https://r.example/v2/a/tags/list?n=2"
    assert (
        oci.parse_link_next('</v2/a/tags/list?last=b&n=2>; rel="next"', base)
        == "https://r.example/v2/a/tags/list?last=b&n=2"
    )
    assert (
        oci.parse_link_next('<https://o.example/x>; rel="prev", <y?z=1>; rel=next', base)
        == "https://r.example/v2/a/tags/y?z=1"
    )
    assert oci.parse_link_next('</x>; rel="prev"', base) is None
    assert oci.parse_link_next(None, base) is None


def test_parse_image_reference() -> None:
    digest = sha(b"x")
    assert parse_image_reference("ghcr.io/wikid82/charon:pr-1-abc1234") == ("ghcr.io", "wikid82/charon", "pr-1-abc1234")
    assert parse_image_reference(f"ghcr.io/wikid82/charon@{digest}") == ("ghcr.io", "wikid82/charon", digest)
    assert parse_image_reference("127.0.0.1:5000/a/b") == ("127.0.0.1:5000", "a/b", "latest")
    assert parse_image_reference("alpine") == ("docker.io", "library/alpine", "latest")
    assert parse_image_reference("wikid82/charon:dev") == ("docker.io", "wikid82/charon", "dev")
    for bad in ("ghcr.io/Wikid82/charon", "ghcr.io/a/b:-x", "ghcr.io/a/b@sha256:1", ""):
        with pytest.raises(ValueError, match="not a"):
            parse_image_reference(bad)


def test_client_refuses_bad_names_before_any_request() -> None:
    client = RegistryClient("127.0.0.1:9", retries=0)  # nothing listens there: a request would fail differently
    with pytest.raises(ValueError, match="repository"):
        client.get_manifest("../etc", "latest")
    with pytest.raises(ValueError, match="tag or digest"):
        client.get_manifest("a/b", "x/../y")
    with pytest.raises(ValueError, match="digest"):
        client.delete_manifest("a/b", "latest")  # registries delete by digest only
    with pytest.raises(ValueError, match="host"):
        RegistryClient("ghcr.io/evil")


def test_scheme_defaults() -> None:
    assert RegistryClient("127.0.0.1:5000").base_url == "http://127.0.0.1:5000"
    assert RegistryClient("localhost:5000").base_url == "http://localhost:5000"
    assert RegistryClient("ghcr.io").base_url == "https://ghcr.io"
    assert RegistryClient("docker.io").base_url == "https://registry-1.docker.io"
    assert RegistryClient("ghcr.io", plain_http=True).base_url == "http://ghcr.io"


# --- a fake registry + token service, for what the real registry cannot show ---------------------------


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    authorization: str | None


Reply = tuple[int, dict[str, str], bytes]


@dataclass
class FakeRegistry:
    """`route(method, path, query, authorization) -> (status, headers, body)`, every request logged."""

    route: Callable[[str, str, dict[str, list[str]], str | None], Reply]
    seen: list[Seen] = field(default_factory=list)
    host: str = ""

    def paths(self, prefix: str = "") -> list[str]:
        return [f"{s.method} {s.path}" for s in self.seen if s.path.startswith(prefix)]


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    state = FakeRegistry(route=lambda *_: (500, {}, b"no route"))

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            authorization = self.headers.get("Authorization")
            state.seen.append(Seen(self.command, parts.path, query, authorization))
            status, headers, body = state.route(self.command, parts.path, query, authorization)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = do_DELETE = _serve

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.host = f"127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def manifest_reply(body: bytes = IMAGE, media_type: str = oci.OCI_MANIFEST, digest: str | None = None) -> Reply:
    return 200, {"Content-Type": media_type, "Docker-Content-Digest": digest or sha(body)}, body


def error_reply(status: int, code: str, message: str = "") -> Reply:
    return (
        status,
        {"Content-Type": "application/json"},
        json.dumps({"errors": [{"code": code, "message": message}]}).encode(),
    )


class TokenService:
    """A bearer token realm like ghcr.io/token: checks basic credentials, issues one token per scope."""

    def __init__(self, fake: FakeRegistry, credentials: tuple[str, str] | None, expires_in: int = 300) -> None:
        self.fake, self.credentials, self.expires_in = fake, credentials, expires_in
        self.issued: dict[str, str] = {}  # token -> scope

    def challenge(self, scope: str) -> dict[str, str]:
        realm = f"http://{self.fake.host}/token"
        return {"WWW-Authenticate": f'Bearer realm="{realm}",service="fake.test",scope="{scope}"'}

    def token_reply(self, query: dict[str, list[str]], authorization: str | None) -> Reply:
        if self.credentials is not None:
            expected = "Basic " + base64.b64encode(":".join(self.credentials).encode()).decode()
            if authorization != expected:
                return 401, {}, b'{"errors":[{"code":"UNAUTHORIZED"}]}'
        assert query["service"] == ["fake.test"]
        token = f"tok-{len(self.issued)}-secret"
        self.issued[token] = query["scope"][0]
        return (
            200,
            {"Content-Type": "application/json"},
            json.dumps({"token": token, "expires_in": self.expires_in}).encode(),
        )

    def allows(self, authorization: str | None, scope: str) -> bool:
        if not authorization or not authorization.startswith("Bearer "):
            return False
        return self.issued.get(authorization.removeprefix("Bearer ")) == scope


def bearer_registry(fake: FakeRegistry, tokens: TokenService, serve: Callable[[str, str], Reply]) -> None:
    def route(method: str, path: str, query: dict[str, list[str]], authorization: str | None) -> Reply:
        if path == "/token":
            return tokens.token_reply(query, authorization)
        repository = path.removeprefix("/v2/").split("/manifests/")[0].split("/tags/")[0]
        scope = f"repository:{repository}:{'delete' if method == 'DELETE' else 'pull'}"
        if not tokens.allows(authorization, scope):
            status, _, body = error_reply(401, "UNAUTHORIZED", "authentication required")
            return status, {"Content-Type": "application/json", **tokens.challenge(scope)}, body
        return serve(method, path)

    fake.route = route


def test_bearer_challenge_flow_with_credentials_and_token_cache(fake: FakeRegistry) -> None:
    tokens = TokenService(fake, credentials=("octocat", "ghs_githubtoken"))
    bearer_registry(fake, tokens, lambda method, path: manifest_reply())
    client = RegistryClient(fake.host, username="octocat", password="ghs_githubtoken")

    assert client.get_manifest("owner/app", "v1").digest == sha(IMAGE)
    assert client.get_manifest("owner/app", "v2").digest == sha(IMAGE)
    assert client.resolve("owner/app", "v3").digest == sha(IMAGE)
    assert fake.paths() == [
        "GET /v2/owner/app/manifests/v1",  # 401 with the challenge
        "GET /token",
        "GET /v2/owner/app/manifests/v1",
        "GET /v2/owner/app/manifests/v2",  # token reused for the same scope
        "HEAD /v2/owner/app/manifests/v3",
    ]
    assert fake.seen[1].query["scope"] == ["repository:owner/app:pull"]
    # another repository: a new scope, and the realm is known, so the token is fetched before the request
    client.get_manifest("owner/other", "v1")
    assert fake.paths()[5:] == ["GET /token", "GET /v2/owner/other/manifests/v1"]
    assert fake.seen[5].query["scope"] == ["repository:owner/other:pull"]


def test_anonymous_bearer_token_is_requested_without_credentials(fake: FakeRegistry) -> None:
    tokens = TokenService(fake, credentials=None)
    bearer_registry(fake, tokens, lambda method, path: manifest_reply())
    RegistryClient(fake.host).get_manifest("library/alpine", "latest")
    (token_request,) = [s for s in fake.seen if s.path == "/token"]
    assert token_request.authorization is None


def test_token_expiry_fetches_a_new_token(fake: FakeRegistry) -> None:
    now = [1000.0]
    tokens = TokenService(fake, credentials=None, expires_in=60)
    bearer_registry(fake, tokens, lambda method, path: manifest_reply())
    client = RegistryClient(fake.host, clock=lambda: now[0])
    client.get_manifest("a/b", "x")
    now[0] += 45  # within expires_in minus the safety margin
    client.get_manifest("a/b", "x")
    assert fake.paths("/token") == ["GET /token"]
    now[0] += 10
    client.get_manifest("a/b", "x")
    assert fake.paths("/token") == ["GET /token"] * 2


def test_revoked_token_is_replaced_once(fake: FakeRegistry) -> None:
    tokens = TokenService(fake, credentials=None)
    bearer_registry(fake, tokens, lambda method, path: manifest_reply())
    client = RegistryClient(fake.host)
    client.get_manifest("a/b", "x")
    tokens.issued.clear()  # the registry forgets every token
    client.get_manifest("a/b", "x")
    assert fake.paths() == ["GET /v2/a/b/manifests/x", "GET /token", "GET /v2/a/b/manifests/x"] * 2


def test_refused_credentials_are_unauthorized_and_secrets_stay_out_of_messages(fake: FakeRegistry) -> None:
    tokens = TokenService(fake, credentials=("octocat", "right"))
    bearer_registry(fake, tokens, lambda method, path: manifest_reply())
    client = RegistryClient(fake.host, username="octocat", password="wrong-secret-value")
    with pytest.raises(Unauthorized) as refused:
        client.get_manifest("a/b", "x")
    assert "wrong-secret-value" not in str(refused.value) and "wrong-secret-value" not in repr(client)


def test_token_never_appears_in_errors(fake: FakeRegistry) -> None:
    tokens = TokenService(fake, credentials=None)
    bearer_registry(fake, tokens, lambda method, path: error_reply(403, "DENIED", "requested access is denied"))
    client = RegistryClient(fake.host)
    with pytest.raises(Unauthorized) as denied:
        client.get_manifest("a/b", "x")
    assert denied.value.status == 403 and denied.value.code == "DENIED"
    (token,) = tokens.issued
    assert token not in str(denied.value) and token not in repr(client)


def test_challenge_scope_is_what_the_token_asks_for(fake: FakeRegistry) -> None:
    tokens = TokenService(fake, credentials=None)
    bearer_registry(fake, tokens, lambda method, path: (202, {}, b""))
    RegistryClient(fake.host).delete_manifest("a/b", sha(IMAGE))
    assert [s.query["scope"] for s in fake.seen if s.path == "/token"] == [["repository:a/b:delete"]]


def test_basic_challenge(fake: FakeRegistry) -> None:
    expected = "Basic " + base64.b64encode(b"user:pass").decode()

    def route(method: str, path: str, query: dict[str, list[str]], authorization: str | None) -> Reply:
        if authorization != expected:
            return 401, {"WWW-Authenticate": 'Basic realm="Registry Realm"'}, b""
        return manifest_reply()

    fake.route = route
    client = RegistryClient(fake.host, username="user", password="pass")
    client.get_manifest("a/b", "1")
    client.get_manifest("a/b", "2")
    assert [s.authorization for s in fake.seen] == [None, expected, expected]  # sent up front once asked
    with pytest.raises(Unauthorized, match="no credentials"):
        RegistryClient(fake.host).get_manifest("a/b", "1")


def test_credentials_are_not_sent_to_a_plain_http_realm_elsewhere(fake: FakeRegistry) -> None:
    fake.route = lambda *_: (401, {"WWW-Authenticate": 'Bearer realm="http://auth.example.test/token"'}, b"")
    with pytest.raises(InvalidResponse, match="plain-http"):
        RegistryClient(fake.host, username="u", password="p").get_manifest("a/b", "1")
    assert fake.paths() == ["GET /v2/a/b/manifests/1"]


def test_a_netrc_adds_no_credentials_to_a_redirect_elsewhere(
    fake: FakeRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests reads `$NETRC` for every new host it is redirected to; a blob redirect to storage on
    another host must carry neither the registry's credentials nor the netrc's."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine localhost login thief password netrc-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    expected = "Basic " + base64.b64encode(b"user:pass").decode()
    port = fake.host.rsplit(":", 1)[1]

    def route(method: str, path: str, query: dict[str, list[str]], authorization: str | None) -> Reply:
        if path == "/storage/manifest":
            return manifest_reply()
        if authorization != expected:
            return 401, {"WWW-Authenticate": 'Basic realm="Registry Realm"'}, b""
        return 307, {"Location": f"http://localhost:{port}/storage/manifest"}, b""

    fake.route = route
    assert RegistryClient(fake.host, username="user", password="pass").get_manifest("a/b", "1").digest == sha(IMAGE)
    assert [(s.path, s.authorization) for s in fake.seen] == [
        ("/v2/a/b/manifests/1", None),
        ("/v2/a/b/manifests/1", expected),
        ("/storage/manifest", None),
    ]


def test_digest_is_verified(fake: FakeRegistry) -> None:
    fake.route = lambda *_: manifest_reply(digest=sha(b"something else"))
    client = RegistryClient(fake.host)
    with pytest.raises(DigestMismatch, match="Docker-Content-Digest"):
        client.get_manifest("a/b", "tag")
    fake.route = lambda *_: manifest_reply(digest="")
    with pytest.raises(DigestMismatch, match="does not match its content"):
        client.get_manifest("a/b", sha(b"asked for this"))
    assert client.get_manifest("a/b", sha(IMAGE)).digest == sha(IMAGE)  # no header: the bytes decide


def test_oversized_manifest_is_not_read_to_the_end(fake: FakeRegistry) -> None:
    fake.route = lambda *_: (200, {"Content-Type": oci.OCI_MANIFEST}, b" " * (oci.MAX_MANIFEST_BYTES + 10))
    with pytest.raises(InvalidResponse, match="larger than"):
        RegistryClient(fake.host).get_manifest("a/b", "big")


def test_tag_pagination_follows_link(fake: FakeRegistry) -> None:
    pages = {None: (["a", "b"], "b"), "b": (["c", "d"], "d"), "d": (["e"], None)}

    def route(method: str, path: str, query: dict[str, list[str]], authorization: str | None) -> Reply:
        tags, last = pages[query.get("last", [None])[0]]
        assert query["n"] == ["2"]
        headers = {"Content-Type": "application/json"}
        if last:
            headers["Link"] = f'</v2/a/b/tags/list?n=2&last={last}>; rel="next"'
        return 200, headers, json.dumps({"name": "a/b", "tags": tags}).encode()

    fake.route = route
    assert RegistryClient(fake.host).list_tags("a/b", page_size=2) == ["a", "b", "c", "d", "e"]
    assert len(fake.seen) == 3


@pytest.mark.parametrize(
    ("link", "complaint"),
    [
        ('<http://elsewhere.test/v2/a/b/tags/list?last=x>; rel="next"', "outside the registry"),
        ('</v2/a/b/tags/list?n=2>; rel="next"', "does not end"),
    ],
)
def test_tag_pagination_refuses_foreign_or_looping_links(fake: FakeRegistry, link: str, complaint: str) -> None:
    fake.route = lambda *_: (200, {"Link": link}, b'{"name":"a/b","tags":["x"]}')
    with pytest.raises(InvalidResponse, match=complaint):
        RegistryClient(fake.host).list_tags("a/b", page_size=2)


def test_referrers_api_is_used_when_the_registry_has_it(fake: FakeRegistry) -> None:
    subject = sha(b"subject")
    sbom = descriptor(oci.OCI_MANIFEST, b"sbom", artifactType="application/spdx+json")
    sig = descriptor(oci.OCI_MANIFEST, b"sig", artifactType="application/vnd.dev.sigstore.bundle.v0.3+json")
    listing = json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [sbom, sig]}).encode()

    def route(method: str, path: str, query: dict[str, list[str]], authorization: str | None) -> Reply:
        if path == f"/v2/a/b/referrers/{subject}":
            return 200, {"Content-Type": oci.OCI_INDEX}, listing
        return error_reply(404, "MANIFEST_UNKNOWN")

    fake.route = route
    client = RegistryClient(fake.host)
    found = client.referrers("a/b", subject)
    assert [(r.descriptor.digest, r.source) for r in found] == [
        (sha(b"sbom"), "referrers-api"),
        (sha(b"sig"), "referrers-api"),
    ]
    # no OCI-Filters-Applied header: the client filters itself
    only_sbom = client.referrers("a/b", subject, artifact_type="application/spdx+json")
    assert [r.descriptor.digest for r in only_sbom] == [sha(b"sbom")]
    # the referrers tag is not consulted when the API answered; cosign tags are probed by HEAD
    assert not any(s.path.endswith(oci.referrers_tag(subject)) for s in fake.seen)
    assert {s.path.rsplit("/", 1)[1] for s in fake.seen if s.method == "HEAD"} == {
        oci.cosign_tag(subject, suffix) for suffix in oci.COSIGN_SUFFIXES
    }


def test_retries_transient_failures_then_gives_a_typed_error(fake: FakeRegistry) -> None:
    answers = [(503, {"Retry-After": "7"}, b""), (502, {}, b""), manifest_reply()]
    fake.route = lambda *_: answers.pop(0)
    slept: list[float] = []
    assert RegistryClient(fake.host, sleep=slept.append).get_manifest("a/b", "x").digest == sha(IMAGE)
    assert slept == [7.0, 2.0]

    fake.route = lambda *_: error_reply(429, "TOOMANYREQUESTS", "slow down")
    with pytest.raises(RateLimited, match="429 TOOMANYREQUESTS"):
        RegistryClient(fake.host, sleep=slept.append, retries=2).get_manifest("a/b", "x")
    fake.route = lambda *_: (500, {}, b"")
    with pytest.raises(RegistryUnavailable):
        RegistryClient(fake.host, sleep=slept.append, retries=1).get_manifest("a/b", "x")


def test_errors_carry_the_retry_after_hint(fake: FakeRegistry) -> None:
    """The caller that retries under its own deadline (retries=0) learns when the registry wants it back."""
    client = RegistryClient(fake.host, retries=0)
    limited = error_reply(429, "TOOMANYREQUESTS", "slow down")
    fake.route = lambda *_: (429, {**limited[1], "Retry-After": "12"}, limited[2])
    with pytest.raises(RateLimited) as refused:
        client.get_manifest("a/b", "x")
    assert refused.value.retry_after == 12.0
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    fake.route = lambda *_: (503, {"Retry-After": later}, b"")
    with pytest.raises(RegistryUnavailable) as unavailable:
        client.resolve("a/b", "x")
    assert unavailable.value.retry_after is not None and 25.0 <= unavailable.value.retry_after <= 30.0
    fake.route = lambda *_: (429, {"Retry-After": "99999999"}, b"")
    with pytest.raises(RateLimited) as huge:
        client.get_manifest("a/b", "x")
    assert huge.value.retry_after == MAX_RETRY_AFTER
    fake.route = lambda *_: limited
    with pytest.raises(RateLimited) as silent:
        client.get_manifest("a/b", "x")
    assert silent.value.retry_after is None
    with pytest.raises(RegistryUnavailable) as down:
        RegistryClient("127.0.0.1:9", retries=0).get_manifest("a/b", "x")
    assert down.value.retry_after is None  # no answer, no hint


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        (" 120 ", 120.0),
        ("3601", 3600.0),  # capped
        ("9" * 400, 3600.0),
        ("-5", None),
        ("1.5", None),  # delta-seconds is a whole number
        ("\u00b2", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),  # an HTTP date, 30 s after `now`
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # already passed: no wait
        ("Wed, 21 Oct 2015 07:28:30 -0000", None),  # no zone: not an HTTP date
        ("Wed, 21 Oct 2999 07:28:30 GMT", 3600.0),
    ],
)
def test_retry_after_header_values(header: str | None, seconds: float | None) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert retry_after_seconds(header, now=now) == seconds


def test_connection_refused_is_registry_unavailable() -> None:
    with pytest.raises(RegistryUnavailable, match="ConnectionError after 2 attempts"):
        RegistryClient("127.0.0.1:9", retries=1, sleep=lambda _: None).get_manifest("a/b", "x")


def test_ghcr_style_delete_refusal_is_unsupported(fake: FakeRegistry) -> None:
    fake.route = lambda *_: error_reply(405, "UNSUPPORTED", "The operation is unsupported.")
    with pytest.raises(Unsupported):
        RegistryClient(fake.host).delete_manifest("a/b", sha(IMAGE))


# --- the real registry ------------------------------------------------------------------------------------


class CountingSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[str] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        self.requests.append(f"{method!s} {urlsplit(str(url)).path}")
        return super().request(method, url, *args, **kwargs)


@pytest.mark.services
@pytest.mark.parametrize("style", ["oci", "docker"])
def test_reads_a_real_image(registry: Registry, image_factory: ImageFactory, repository: str, style: str) -> None:
    pushed = image_factory.push_image(repository, "pr-7-abc1234", revision="c" * 40, style=style)  # type: ignore[arg-type]
    client = registry.client()
    manifest = client.get_manifest(repository, "pr-7-abc1234")
    assert isinstance(manifest, oci.ImageManifest)
    assert (manifest.digest, manifest.media_type, manifest.size) == (pushed.digest, pushed.media_type, pushed.size)
    assert (manifest.config.digest, manifest.config.size) == (pushed.config.digest, pushed.config.size)
    assert [(layer.digest, layer.size) for layer in manifest.layers] == [(b.digest, b.size) for b in pushed.layers]
    config = client.get_config(repository, manifest)
    assert config["config"]["Labels"]["org.opencontainers.image.revision"] == "c" * 40  # type: ignore[index]
    resolved = client.resolve(repository, "pr-7-abc1234")
    assert (resolved.digest, resolved.media_type, resolved.size) == (pushed.digest, pushed.media_type, pushed.size)
    assert client.get_manifest(repository, pushed.digest).raw == pushed.manifest


@pytest.mark.services
@pytest.mark.parametrize("style", ["oci", "docker"])
def test_reads_a_real_two_platform_index_and_its_children(
    registry: Registry, image_factory: ImageFactory, repository: str, style: str
) -> None:
    pushed = image_factory.push_index(repository, "sha-abc1234", revision="d" * 40, style=style)  # type: ignore[arg-type]
    client = registry.client()
    index = client.get_manifest(repository, "sha-abc1234")
    assert isinstance(index, oci.ImageIndex)
    assert (index.digest, index.media_type) == (pushed.digest, pushed.media_type)
    assert [(str(d.platform), d.digest) for d in index.manifests] == [(c.platform, c.digest) for c in pushed.children]
    children = client.children(repository, index)
    assert [c.digest for c in children] == [c.digest for c in pushed.children]
    for child, expected in zip(children, pushed.children, strict=True):
        assert isinstance(child, oci.ImageManifest)
        assert child.config.digest == expected.config.digest
        assert client.get_config(repository, child)["architecture"] == expected.platform.split("/")[1]  # type: ignore[union-attr]


@pytest.mark.services
def test_reads_buildx_attestations(registry: Registry, image_factory: ImageFactory, repository: str) -> None:
    pushed = image_factory.push_index(repository, "v1.2.3", attestations=True)
    index = registry.client().get_manifest(repository, "v1.2.3")
    assert isinstance(index, oci.ImageIndex)
    assert [d.digest for d in index.platform_manifests] == [c.digest for c in pushed.children]
    assert [(d.digest, d.attests) for d in index.attestation_manifests] == [
        (a.digest, c.digest) for a, c in zip(pushed.attestations, pushed.children, strict=True)
    ]
    assert all(d.platform is not None and d.platform.is_unknown for d in index.attestation_manifests)
    proof = registry.client().get_manifest(repository, index.attestation_manifests[0].digest)
    assert isinstance(proof, oci.ImageManifest)
    assert {layer.media_type for layer in proof.layers} == {oci.IN_TOTO}


@pytest.mark.services
def test_referrers_through_the_tag_schemas(registry: Registry, image_factory: ImageFactory, repository: str) -> None:
    pushed = image_factory.push_index(repository, "main")
    sbom = image_factory.push_referrer(repository, pushed.children[0], artifact_type="application/spdx+json")
    provenance = image_factory.push_referrer(
        repository, pushed.children[0], artifact_type="application/vnd.in-toto+json"
    )
    signature = image_factory.push_cosign(repository, pushed.digest, "sig")
    attestation = image_factory.push_cosign(repository, pushed.digest, "att")
    client = registry.client()

    child_refs = client.referrers(repository, pushed.children[0].digest)
    assert [(r.descriptor.digest, r.source, r.descriptor.artifact_type) for r in child_refs] == [
        (sbom.digest, "referrers-tag", "application/spdx+json"),
        (provenance.digest, "referrers-tag", "application/vnd.in-toto+json"),
    ]
    only = client.referrers(repository, pushed.children[0].digest, artifact_type="application/spdx+json")
    assert [r.descriptor.digest for r in only] == [sbom.digest]
    referrer = client.get_manifest(repository, sbom.digest)
    assert referrer.subject is not None and referrer.subject.digest == pushed.children[0].digest

    index_refs = client.referrers(repository, pushed.digest)
    assert [(r.descriptor.digest, r.source, r.tag) for r in index_refs] == [
        (signature.digest, "cosign-tag", signature.tags[0]),
        (attestation.digest, "cosign-tag", attestation.tags[0]),
    ]
    assert client.referrers(repository, pushed.children[1].digest) == []

    # with the tag list in hand, nothing is probed that is not there
    session = CountingSession()
    counted = registry.client(session=session)
    tags = counted.list_tags(repository)
    session.requests.clear()
    assert [r.descriptor.digest for r in counted.referrers(repository, pushed.digest, known_tags=tags)] == [
        signature.digest,
        attestation.digest,
    ]
    assert session.requests == [
        f"GET /v2/{repository}/referrers/{pushed.digest}",  # 404 here: no referrers API in distribution 2.8
        f"HEAD /v2/{repository}/manifests/{signature.tags[0]}",
        f"HEAD /v2/{repository}/manifests/{attestation.tags[0]}",
    ]
    session.requests.clear()
    assert counted.referrers(repository, pushed.children[1].digest, known_tags=tags) == []
    assert session.requests == []  # the API is known to be missing, and no tag names this digest


@pytest.mark.services
def test_sizes_count_shared_blobs_once(registry: Registry, image_factory: ImageFactory, repository: str) -> None:
    base = {"usr/lib/shared.so": b"\x7fELF" + b"s" * 5000}
    first = image_factory.push_index(repository, "sha-1111111", base_files=base, attestations=True)
    second = image_factory.push_index(repository, "sha-2222222", base_files=base)
    client = registry.client()

    size = client.size(repository, "sha-1111111")
    assert size.total_bytes == first.total_bytes
    assert dict(size.blobs) == first.blobs
    base_layer = first.children[0].layers[0]
    assert all(c.layers[0].digest == base_layer.digest for c in (*first.children, *second.children))
    blob_sum_with_repeats = sum(b.size for image in first.manifests for b in (image.config, *image.layers))
    assert size.blob_bytes == blob_sum_with_repeats - base_layer.size  # two platforms, base counted once

    # "bytes freed by deleting `second` while `first` is kept": the shared base is not freed
    freed = client.size(repository, "sha-2222222", already_counted=size.digests)
    second_own = {**second.blobs, **second.manifest_sizes}
    del second_own[base_layer.digest]
    assert freed.new_bytes == sum(second_own.values())
    assert freed.total_bytes == second.total_bytes

    image = image_factory.push_image(repository, "single")
    assert client.size(repository, "single").total_bytes == image.blob_bytes + image.size


@pytest.mark.services
def test_tags_and_typed_errors(registry: Registry, image_factory: ImageFactory, repository: str) -> None:
    image = image_factory.push_image(repository, ["pr-1-aaaaaaa", "pr-1-bbbbbbb"])
    image_factory.push_image(repository, None)  # untagged: not in the tag list
    client = registry.client()
    assert sorted(client.list_tags(repository)) == ["pr-1-aaaaaaa", "pr-1-bbbbbbb"]
    assert client.exists(repository, image.digest) and not client.exists(repository, "pr-2-ccccccc")
    with pytest.raises(ManifestUnknown) as unknown:
        client.get_manifest(repository, "pr-2-ccccccc")
    assert (unknown.value.status, unknown.value.code) == (404, "MANIFEST_UNKNOWN")
    with pytest.raises(NameUnknown):
        client.list_tags(repository + "-missing")


@pytest.mark.services
def test_delete_by_digest(registry: Registry, image_factory: ImageFactory, repository: str) -> None:
    pushed: PushedIndex = image_factory.push_index(repository, ["sha-3333333", "pr-3-3333333"])
    kept: PushedImage = image_factory.push_image(repository, "keep")
    client = registry.client()
    client.delete_manifest(repository, pushed.digest)
    with pytest.raises(ManifestUnknown):
        client.get_manifest(repository, pushed.digest)
    with pytest.raises(ManifestUnknown):
        client.get_manifest(repository, "sha-3333333")
    assert client.list_tags(repository) == ["keep"]  # every tag of the digest went with it
    # the platform manifests stay: deleting an index is not deleting its children
    assert [client.get_manifest(repository, c.digest).digest for c in pushed.children] == [
        c.digest for c in pushed.children
    ]
    with pytest.raises(ManifestUnknown):
        client.delete_manifest(repository, pushed.digest)
    assert client.get_manifest(repository, "keep").digest == kept.digest


def test_basic_auth_against_a_real_registry() -> None:
    with services.running_registry(credentials=("charon", "s3cret-pass")) as locked:
        factory = ImageFactory(locked.host)
        factory.session.auth = ("charon", "s3cret-pass")
        pushed = factory.push_image("private/app", "v1")
        with pytest.raises(Unauthorized, match="no credentials"):
            locked.client().get_manifest("private/app", "v1")
        with pytest.raises(Unauthorized) as refused:
            locked.client(username="charon", password="wrong-pass").get_manifest("private/app", "v1")
        assert refused.value.status == 401 and "wrong-pass" not in str(refused.value)
        session = CountingSession()
        client = locked.client(username="charon", password="s3cret-pass", session=session)
        assert client.get_manifest("private/app", "v1").digest == pushed.digest
        assert client.list_tags("private/app") == ["v1"]
        # one challenge, then credentials go up front
        assert session.requests == ["GET /v2/private/app/manifests/v1"] * 2 + ["GET /v2/private/app/tags/list"]


def test_a_netrc_for_the_registry_host_does_not_replace_the_given_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With requests trusting the environment, a `$NETRC` entry for the registry host replaced the
    Authorization header the client set: the explicit credentials must win, and the netrc stay unread."""
    with services.running_registry(credentials=("charon", "s3cret-pass")) as locked:
        factory = ImageFactory(locked.host)
        factory.session.auth = ("charon", "s3cret-pass")
        pushed = factory.push_image("private/app", "v1")
        netrc = tmp_path / "netrc"
        host = locked.host.rsplit(":", 1)[0]
        netrc.write_text(f"machine {host} login charon password from-netrc\n")
        netrc.chmod(0o600)
        monkeypatch.setenv("NETRC", str(netrc))
        client = locked.client(username="charon", password="s3cret-pass")
        assert client.get_manifest("private/app", "v1").digest == pushed.digest
        with pytest.raises(Unauthorized, match="no credentials"):
            locked.client().get_manifest("private/app", "v1")  # and none taken from the netrc


def test_non_ascii_digit_retry_after_falls_back_to_backoff(fake: FakeRegistry) -> None:
    # `²` passes str.isdigit but not int(); a registry sending it must not crash the client.
    answers = [(503, {"Retry-After": "\u00b2"}, b""), manifest_reply()]
    fake.route = lambda *_: answers.pop(0)
    slept: list[float] = []
    assert RegistryClient(fake.host, sleep=slept.append).get_manifest("a/b", "x").digest == sha(IMAGE)
    assert slept == [1.0]
