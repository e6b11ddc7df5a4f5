"""action-prune against Docker Hub's API (a small local fake of login, tag list and tag delete), with in-use
facts from the fake GitHub. Hub deletes tags, not digests: a version (digest) goes when all its tags go."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from charon_ci import gha
from charon_ci.prune.apply import Runtime, run_online
from charon_ci.prune.command import parse_settings, report
from charon_ci.prune.sources import DockerHub, HubError
from tests.support.composite import parse_commands, parse_file_command
from tests.support.fakegithub import FakeGitHub

USER, PAT, JWT = "wikid82", "dckr_pat_example", "hub-jwt-token"


class FakeHub:
    """Login, paginated tags (absolute `next` links), read and delete a tag; 429s when asked.

    Hooks for what a real Hub (or a hostile one) can do: `after_listing` runs once the last list page is
    served (a push during the run), `login_redirect` answers the login with a 307 there, `next_base`
    replaces the scheme and host of `next` links, `retry_after` is the header the 429s carry."""

    def __init__(self, page_size: int = 2) -> None:
        self.tags: dict[str, dict[str, Any]] = {}
        self.page_size = page_size
        self.log: list[tuple[str, str, int]] = []
        self.authorizations: list[str | None] = []
        self.throttle_next = 0
        self.retry_after = "1"
        self.after_listing: Callable[[], None] | None = None
        self.login_redirect: str | None = None
        self.next_base: str | None = None
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def answer(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
                hub.log.append((self.command, self.path, status))
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def authorized(self) -> bool:
                hub.authorizations.append(self.headers.get("Authorization"))
                return self.headers.get("Authorization") == f"Bearer {JWT}"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                hub.authorizations.append(self.headers.get("Authorization"))
                if hub.login_redirect is not None:
                    self.answer(307, None, {"Location": hub.login_redirect})
                elif self.path == "/v2/users/login" and body == {"username": USER, "password": PAT}:
                    self.answer(200, {"token": JWT})
                else:
                    self.answer(401, {"detail": "Incorrect authentication credentials"})

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if not self.authorized():
                    return self.answer(401, {"detail": "authentication required"})
                if hub.throttle_next:
                    hub.throttle_next -= 1
                    return self.answer(429, {"detail": "slow down"}, {"retry-after": hub.retry_after})
                prefix = f"/v2/namespaces/{USER}/repositories/charon/tags/"
                if parts.path.startswith(prefix):
                    tag = unquote(parts.path[len(prefix) :])
                    if tag not in hub.tags:
                        return self.answer(404, {"message": "object not found", "errinfo": {}})
                    return self.answer(200, hub.tags[tag])
                if parts.path != f"/v2/namespaces/{USER}/repositories/charon/tags":
                    return self.answer(404, {"message": "object not found"})
                query = parse_qs(parts.query)
                size = min(int(query.get("page_size", ["10"])[0]), hub.page_size)
                page = int(query.get("page", ["1"])[0])
                names = sorted(hub.tags, key=lambda n: hub.tags[n]["last_updated"], reverse=True)
                window = names[(page - 1) * size : page * size]
                more = page * size < len(names)
                base = (hub.next_base or f"http://{self.headers['Host']}") + parts.path
                if not more and hub.after_listing is not None:
                    hook, hub.after_listing = hub.after_listing, None
                    hook()
                self.answer(200, {
                    "count": len(names),
                    "next": f"{base}?page={page + 1}&page_size={size}" if more else None,
                    "previous": None,
                    "results": [hub.tags[n] for n in window],
                })  # fmt: skip
                return None

            def do_DELETE(self) -> None:
                if not self.authorized():
                    return self.answer(401, {"detail": "authentication required"})
                prefix = f"/v2/namespaces/{USER}/repositories/charon/tags/"
                tag = unquote(self.path[len(prefix) :]) if self.path.startswith(prefix) else ""
                if tag not in hub.tags:
                    return self.answer(404, {"message": "tag not found"})
                del hub.tags[tag]
                return self.answer(204)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, name: str, digest_seed: int, age: timedelta, tag_id: int) -> None:
        pushed = (datetime.now(UTC) - age).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.tags[name] = {
            "id": tag_id, "name": name, "digest": f"sha256:{digest_seed:064x}", "last_updated": pushed,
            "tag_last_pushed": pushed, "tag_status": "active", "v2": True, "full_size": 1000,
            "media_type": "application/vnd.oci.image.index.v1+json", "content_type": "image",
            "images": [{"architecture": a, "os": "linux", "digest": f"sha256:{digest_seed + i + 100:064x}"}
                       for i, a in enumerate(("amd64", "arm64"))],
        }  # fmt: skip


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    fake = FakeHub()
    fake.thread.start()
    yield fake
    fake.server.shutdown()


def populate(hub: FakeHub) -> None:
    day = timedelta(days=1)
    hub.add("latest", 1, 3 * day, 1)
    hub.add("sha-aaaaaaa", 1, 3 * day, 2)
    hub.add("sha-bbbbbbb", 2, 40 * day, 3)  # expired
    hub.add("pr-7-ccccccc", 3, 5 * day, 4)  # closed PR: expired
    hub.add("pr-12-ddddddd", 4, 5 * day, 5)  # open PR: in use
    hub.add("sha-eeeeeee", 5, 40 * day, 6)  # expired, but its digest is also a release
    hub.add("v1.0.0", 5, 40 * day, 7)
    hub.add("sha-fffffff", 6, 41 * day, 8)  # two expired tags on one digest: both go
    hub.add("feature-f-fffffff", 6, 41 * day, 9)


def run(hub: FakeHub, gh: FakeGitHub, tmp_path: Path, **extra: str) -> tuple[int, dict[str, str]]:
    folder = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    folder.mkdir()
    (folder / "output").write_text("")
    env = {
        "INPUT_REGISTRY": "dockerhub", "INPUT_PACKAGE": "charon", "INPUT_OWNER": USER, "INPUT_TOKEN": PAT,
        "INPUT_DOCKERHUB-API-URL": hub.url, "INPUT_GITHUB-TOKEN": gh.token, "INPUT_GITHUB-API-URL": gh.url,
        "INPUT_REPOSITORY": "wikid82/charon", "GITHUB_OUTPUT": str(folder / "output"),
        "GITHUB_STEP_SUMMARY": str(folder / "summary.md"), "INPUT_PLAN-FILE": str(folder / "plan.json"),
        **{f"INPUT_{k.upper()}": v for k, v in extra.items()},
    }  # fmt: skip
    code = gha.run_action(lambda: run_online(parse_settings(env), env, report, Runtime(sleep=lambda s: None)), env)
    return code, parse_file_command((folder / "output").read_text())


def test_hub_prunes_tags_by_digest_and_keeps_what_is_used(
    hub: FakeHub, fake_github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(hub)
    repo = fake_github.add_repo("wikid82/charon")
    fake_github.add_pull(repo, "twelve", number=12, state="open")
    hub.throttle_next = 1  # one 429 with retry-after on the first list page: retried, not fatal
    code, out = run(hub, fake_github, tmp_path)
    assert code == 0 and out["planned-count"] == "3" and not [m for m in hub.log if m[0] == "DELETE"]

    code, out = run(hub, fake_github, tmp_path, **{"dry-run": "false"})
    stdout = capsys.readouterr().out
    assert code == 0, stdout[-2000:]
    assert sorted(hub.tags) == ["latest", "pr-12-ddddddd", "sha-aaaaaaa", "sha-eeeeeee", "v1.0.0"]
    assert out["deleted-count"] == "3" and out["failed-count"] == "0"
    deleted = sorted(unquote(path.rsplit("/", 1)[-1]) for method, path, status in hub.log if method == "DELETE")
    assert deleted == ["feature-f-fffffff", "pr-7-ccccccc", "sha-bbbbbbb", "sha-fffffff"]
    assert "in use (open PR #12)" in stdout and "v1.0.0 protected" in stdout
    assert PAT not in stdout.replace(f"::add-mask::{PAT}", ""), "the Docker Hub token is masked, never printed"
    assert not [c for c in parse_commands(stdout) if c.name == "error"]


def test_hub_login_refused_is_a_clean_failure(
    hub: FakeHub, fake_github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(hub)
    code, _ = run(hub, fake_github, tmp_path, token="wrong")
    errors = [c for c in parse_commands(capsys.readouterr().out) if c.name == "error"]
    assert code == 1 and len(errors) == 1 and "login failed (HTTP 401)" in errors[0].message
    assert len(hub.tags) == 9


def test_hub_client_pagination_and_grouping(hub: FakeHub) -> None:
    populate(hub)
    client = DockerHub(USER, "charon", api_url=hub.url, sleep=lambda s: None)
    with pytest.raises(HubError):
        client.list_versions()  # no token yet: 401
    client.login(USER, PAT)
    versions = client.list_versions()
    assert len([m for m in hub.log if m[0] == "GET"]) >= 5  # 9 tags, 2 a page
    by_digest = {v.digest: v.tags for v in versions}
    assert by_digest[f"sha256:{6:064x}"] == ("feature-f-fffffff", "sha-fffffff")
    assert len(versions) == 6
    assert client.delete_tag("no-such-tag").status == "gone"


def test_a_tag_pushed_again_after_listing_is_not_deleted(
    hub: FakeHub, fake_github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hub deletes by tag name: a 40-day-old `sha-bbbbbbb` pushed again as a new image after the listing
    must not take the fresh image with it (min-age 48h protects it); nor may a tag re-pushed onto the
    same digest, which makes the image young again in Hub's eyes."""
    populate(hub)
    fake_github.add_repo("wikid82/charon")

    def push_during_the_run() -> None:
        hub.add("sha-bbbbbbb", 99, timedelta(minutes=1), 3)  # a new digest under the old name
        hub.add("pr-7-ccccccc", 3, timedelta(minutes=1), 4)  # the same digest, pushed again

    hub.after_listing = push_during_the_run
    code, out = run(hub, fake_github, tmp_path, **{"dry-run": "false"})
    stdout = capsys.readouterr().out
    assert code == 0, stdout[-2000:]
    assert hub.tags["sha-bbbbbbb"]["digest"] == f"sha256:{99:064x}" and "pr-7-ccccccc" in hub.tags
    assert "sha-fffffff" not in hub.tags and "feature-f-fffffff" not in hub.tags
    assert out["deleted-count"] == "2" and out["failed-count"] == "2"  # sha-fffffff and pr-12 (no open PR here)
    assert f"sha-bbbbbbb now points at sha256:{99:064x}"[:40] in stdout
    assert "pr-7-ccccccc was pushed again during the run" in stdout
    # Each DELETE comes right after the read of the same tag.
    requests = [(method, unquote(path).rsplit("/", 1)[-1]) for method, path, _ in hub.log if "/tags/" in path]
    for position, (method, tag) in enumerate(requests):
        if method == "DELETE":
            assert requests[position - 1] == ("GET", tag)


def test_an_unwritable_plan_file_stops_the_run_before_any_request(
    hub: FakeHub, fake_github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(hub)
    fake_github.add_repo("wikid82/charon")
    code, out = run(hub, fake_github, tmp_path, **{"dry-run": "false", "plan-file": "/"})
    errors = [c for c in parse_commands(capsys.readouterr().out) if c.name == "error"]
    assert code == 1 and len(errors) == 1 and errors[0].properties["title"] == "Invalid input 'plan-file'"
    assert hub.log == [] and len(hub.tags) == 9 and out == {}


def test_a_netrc_never_replaces_the_hub_token(
    hub: FakeHub, fake_github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests reads `$NETRC` for the host and puts its credentials over the Authorization we set."""
    populate(hub)
    fake_github.add_repo("wikid82/charon")
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password netrc-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    code, out = run(hub, fake_github, tmp_path)
    assert code == 0 and out["planned-count"] == "4"
    assert hub.authorizations and all(a is None or a == f"Bearer {JWT}" for a in hub.authorizations)


def test_hub_client_caps_retry_after(hub: FakeHub) -> None:
    populate(hub)
    slept: list[float] = []
    client = DockerHub(USER, "charon", api_url=hub.url, sleep=slept.append)
    client.login(USER, PAT)
    hub.throttle_next, hub.retry_after = 2, "86400"
    assert len(client.list_versions()) == 6
    assert slept == [60.0, 60.0], "a day-long retry-after would park the run: it waits at most a minute"


def test_hub_client_refuses_a_next_link_to_another_scheme_or_host(hub: FakeHub) -> None:
    """The token goes with every request: a `next` link elsewhere (or downgraded to http) would carry it."""
    populate(hub)
    client = DockerHub(USER, "charon", api_url=hub.url, sleep=lambda _: None)
    client.login(USER, PAT)
    for elsewhere in (hub.url.replace("http://", "https://"), hub.url.replace("127.0.0.1", "localhost")):
        hub.next_base = elsewhere
        with pytest.raises(HubError, match="another scheme or host"):
            client.list_versions()
    assert len([m for m in hub.log if m[0] == "GET"]) == 2, "only the first page was read each time"


def test_hub_login_is_never_redirected(hub: FakeHub) -> None:
    """A 307 keeps the method and body: following it would post the password wherever it points."""
    thief = FakeHub()
    thief.thread.start()
    try:
        hub.login_redirect = f"{thief.url}/v2/users/login"
        with pytest.raises(HubError, match="redirect"):
            DockerHub(USER, "charon", api_url=hub.url, sleep=lambda _: None).login(USER, PAT)
        assert thief.log == [], "the password went to the redirect target"
    finally:
        thief.server.shutdown()
